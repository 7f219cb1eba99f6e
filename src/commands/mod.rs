//! Subcommands beside syncing: `dregsy plan` (what a sync would do) and `dregsy tags` (a
//! tag filter tried on a list of tags), each in its own module.

pub mod plan;
pub mod tags;
