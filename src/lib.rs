//! dregsy keeps container registries in sync.
//!
//! Data flows one way: [`config`] (YAML → validated values) → [`scheduler`] (which tasks run
//! when) → [`plan`] (mappings → image jobs) → [`relay`] (copies jobs) → [`report`] (what
//! happened). [`registry`] is the OCI distribution client the planner and the native relay use;
//! [`listers`] list a source's repositories for regex mappings; [`layout`] reads and writes OCI
//! image layouts on disk, a side's alternative to a registry. [`commands`] holds the
//! subcommands beside syncing (`dregsy plan`, `dregsy tags`).

pub mod cli;
pub mod clients;
pub mod cloud;
pub mod commands;
pub mod config;
pub mod cosign;
pub mod credentials;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod http_client;
pub mod layout;
pub mod listers;
pub mod logging;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod relay;
pub mod report;
pub mod scheduler;
pub mod shard;
pub mod signals;
pub mod status;
pub mod stop;
pub mod store;
pub mod sync;
pub mod watch;
