//! Subcommands beside syncing: `dregsy plan` (what a sync would do) and `dregsy tags` (a
//! tag filter tried on a list of tags), each in its own module, and the flag toolkit they share
//! with the sync command line ([`flags`]).

pub mod flags;
pub mod plan;
pub mod tags;
