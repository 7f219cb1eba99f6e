//! The config as written: what the decoder ([`super::decode`]) reads from the YAML tree, with
//! types checked and nothing validated yet; `validate` makes the config's values of it.

use super::duration::DurationValue;

/// The top level, as written.
#[derive(Debug, Default)]
pub struct RawConfig {
    pub relay: Option<String>,
    pub relay_line: usize,
    pub watch: Option<bool>,
    pub docker: Option<RawDocker>,
    pub skopeo: Option<RawSkopeo>,
    pub dockerhost: String,
    pub api_version: String,
    pub lister: RawLister,
    pub native: RawNative,
    pub daemon: RawDaemon,
    /// `auth-file` (our extension): a Docker/podman credential file for every side, with its line.
    pub auth_file: Option<(String, usize)>,
    /// `credential-helper-timeout` (our extension), with its line.
    pub credential_helper_timeout: Option<(DurationValue, usize)>,
    /// The supply-chain settings every task inherits (our extension).
    pub supply: RawSupply,
    pub tasks: Vec<Option<RawTask>>,
}

/// `referrers`, `min-age` and `verify` as written at one level (top, task or mapping), each
/// with its line; `None` when not set there, so the level above applies.
#[derive(Debug, Default, Clone)]
pub struct RawSupply {
    pub referrers: Option<(bool, usize)>,
    pub min_age: Option<(DurationValue, usize)>,
    pub verify: Option<RawVerify>,
}

/// `verify: {cosign-key: PATH}`.
#[derive(Debug, Default, Clone)]
pub struct RawVerify {
    /// `cosign-key`, empty when missing.
    pub cosign_key: String,
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct RawDocker {
    pub dockerhost: String,
    pub api_version: String,
    /// Our extensions: the startup ping's bound and the per-image time limit.
    pub ping_attempts: Option<i64>,
    pub ping_interval: Option<DurationValue>,
    pub timeout: Option<DurationValue>,
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct RawSkopeo {
    pub binary: String,
    pub certs_dir: String,
    /// Our extensions: the per-copy time limit and how many copies run at once.
    pub timeout: Option<DurationValue>,
    pub parallel_images: Option<i64>,
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct RawLister {
    pub max_items: i64,
    pub cache_duration: Option<DurationValue>,
}

/// Settings of the native relay (our extension, so no compatibility constraints).
#[derive(Debug, Default)]
pub struct RawNative {
    pub parallel_images: Option<i64>,
    pub parallel_blobs: Option<i64>,
    /// `tries`, or its old name `retries`.
    pub tries: Option<i64>,
    /// Whether `tries` itself was written: it wins over `retries`.
    pub tries_written: bool,
    pub connect_timeout: Option<DurationValue>,
    pub stall_timeout: Option<DurationValue>,
    pub commit_timeout: Option<DurationValue>,
    /// `chunk-size` as written (bytes, or a number with `KiB`/`MiB`/`GiB`), with its line.
    pub chunk_size: Option<(String, usize)>,
    /// `cache-dir`, with its line.
    pub cache_dir: Option<(String, usize)>,
    pub include_foreign_layers: Option<bool>,
    pub line: usize,
}

/// Daemon settings (our extension): `health: {listen: …}` and `shutdown-grace`.
#[derive(Debug, Default)]
pub struct RawDaemon {
    /// `health.listen`, with its line.
    pub health_listen: Option<(String, usize)>,
    pub shutdown_grace: Option<DurationValue>,
}

#[derive(Debug, Default)]
pub struct RawTask {
    pub name: String,
    pub interval: i64,
    pub verbose: bool,
    pub source: Option<RawLocation>,
    pub target: Option<RawLocation>,
    pub mappings: Vec<Option<RawMapping>>,
    pub supply: RawSupply,
    pub line: usize,
    /// `tasks[i]`, for messages.
    pub path: String,
    /// An unknown key of the task that looks like a misspelt `mappings` (`mapings:`), with
    /// its line: named when the task has no mappings.
    pub misspelt_mappings: Option<(String, usize)>,
}

#[derive(Debug, Default)]
pub struct RawLocation {
    pub registry: String,
    pub auth: String,
    pub auth_refresh: Option<DurationValue>,
    pub skip_tls_verify: bool,
    /// `lister:` as key/value text; `None` when the key is absent.
    pub lister: Option<Vec<(String, String)>>,
    pub listertype: String,
    /// Our extensions: a credential file for this side, and a `user:password` file.
    pub auth_file: String,
    pub credentials_file: String,
    pub line: usize,
    /// `tasks[i].source` or `tasks[i].target`, for messages.
    pub path: String,
}

#[derive(Debug, Default)]
pub struct RawMapping {
    pub from: String,
    pub to: String,
    pub tags: Vec<String>,
    /// The line of the `tags` key, and of each entry, for messages that point at them.
    pub tags_line: Option<usize>,
    pub tag_lines: Vec<usize>,
    pub platform: RawPlatform,
    pub supply: RawSupply,
    pub line: usize,
    /// `tasks[i].mappings[j]`, for messages.
    pub path: String,
}

/// `platform:` as written: one value (empty when absent), or a list (our extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawPlatform {
    One(String),
    List(Vec<String>),
}

impl Default for RawPlatform {
    fn default() -> Self {
        RawPlatform::One(String::new())
    }
}
