//! dregsy keeps container registries in sync.
//!
//! Data flows one way: [`config`] (YAML → validated values) → [`scheduler`] (which tasks run
//! when) → [`sync`] (one task's run) → [`plan`] (mappings → image jobs) → [`relay`] (copies
//! jobs) → [`report`] (what happened).
//!
//! Module dependencies point one way too, with no cycles (`tests/module_cycles.rs`), from the
//! command line down:
//! - [`cli`] reads the command line and starts [`daemon`] (the reload loop) or one of
//!   [`commands`] (`dregsy plan`, `dregsy tags`, and the flag toolkit they share);
//! - [`scheduler`] runs tasks when due and reports to [`status`] (served by [`health`]);
//!   [`signals`] and [`watch`] end or restart a run;
//! - [`sync`] runs one task: [`plan`] then [`relay`], collecting a [`report`];
//! - [`listers`] list a source's repositories for regex mappings; [`clients`] hands out
//!   registry clients with the credentials of [`credentials`] and [`cloud`];
//! - [`config`] parses into plain values, among them [`plan`]'s value types of a mapping (tag
//!   filters, mapping rules, platform choice), which the planner applies;
//! - [`layout`] reads and writes OCI image layouts on disk, a side's alternative to a registry;
//! - at the bottom: [`registry`] (the OCI distribution client), [`failure`] (the error type
//!   above it, which keeps the registry's error kind), [`report`], [`stop`], [`spelling`].

#![warn(missing_docs, clippy::missing_errors_doc)]

/// The version logged at every start and printed by `--version`.
pub const VERSION: &str = match option_env!("DREGSY_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

pub mod cli;
pub mod clients;
pub mod cloud;
pub mod commands;
pub mod config;
pub mod cosign;
pub mod credentials;
pub mod daemon;
pub mod failure;
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
pub mod spelling;
pub mod status;
pub mod stop;
pub mod store;
pub mod sync;
pub mod watch;
