//! The config file: read, decode and validate into plain typed values (docs/configuration.md).
//!
//! Every quirk of the original's config handling lives here and nowhere else. Loading does no
//! network I/O and no logging: it returns the config together with the notices (warnings, info
//! notes) that the original would log while validating, in the same order.

mod auth;
mod cloud_kind;
mod decode;
mod duration;
mod notice;
mod raw;
mod size;
pub mod substitute;
mod unknown_key;
mod validate;
pub mod yaml;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use auth::Auth;
pub use cloud_kind::CloudRegistry;
pub use decode::KNOWN_KEYS;
pub use duration::DurationValue;
pub use notice::{Level, Notice};
use unknown_key::Misspelt;

// The mapping and registry location types belong to the planner, which applies them; the
// config parses into them.
pub use crate::plan::RegistryLocation;
pub use crate::plan::mapping::{Mapping, PlatformChoice, Verify};

/// Config files larger than this are refused: real ones are a few kilobytes, and a huge file is
/// almost always the wrong file (and would make every restart slow).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// How long a credential helper may take when `credential-helper-timeout` is not set.
pub const DEFAULT_CREDENTIAL_HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Which engine copies images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayKind {
    /// Our in-process registry engine (the default: docs/configuration.md#top-level).
    Native,
    /// One `skopeo copy` per tag, as the original.
    Skopeo,
    /// Pull, tag and push through a Docker Engine API.
    Docker,
}

impl RelayKind {
    /// The relay's name as `relay:` spells it.
    pub fn name(self) -> &'static str {
        match self {
            RelayKind::Native => "native",
            RelayKind::Skopeo => "skopeo",
            RelayKind::Docker => "docker",
        }
    }
}

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, for messages and the config watch.
    pub file: PathBuf,
    /// The engine that copies images (`relay`; default native).
    pub relay: RelayKind,
    /// `watch: true` restarts on config changes (only meaningful with periodic tasks).
    pub watch: bool,
    /// The docker relay's settings (`docker:`).
    pub docker: DockerSettings,
    /// The skopeo relay's settings (`skopeo:`).
    pub skopeo: SkopeoSettings,
    /// The repository listers' settings (`lister:`).
    pub lister: ListerSettings,
    /// The native relay's settings (`native:`).
    pub native: NativeSettings,
    /// The health endpoint and the stop's grace period (`health:`, `shutdown-grace`).
    pub daemon: DaemonSettings,
    /// How long a credential helper may take to answer (`credential-helper-timeout`).
    pub credential_helper_timeout: Duration,
    /// The tasks, in file order.
    pub tasks: Vec<Task>,
}

/// The `docker:` section (or the deprecated top-level keys it was built from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSettings {
    /// The daemon's address; empty means `DOCKER_HOST`, then the default socket.
    pub dockerhost: String,
    /// The Engine API version to speak; empty means 1.41, as the original.
    pub api_version: String,
    /// How often the startup ping is tried (our extension; the original tried 30 times).
    pub ping_attempts: u32,
    /// The pause between two pings (the original waited 10 s).
    pub ping_interval: Duration,
    /// How long one image may take: pull, tag, push and clean-up together.
    pub timeout: Duration,
}

impl Default for DockerSettings {
    fn default() -> Self {
        DockerSettings {
            dockerhost: String::new(),
            api_version: String::new(),
            ping_attempts: 10,
            ping_interval: Duration::from_secs(3),
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// The `skopeo:` section. Empty values mean the defaults (`skopeo` in PATH, `/etc/skopeo/certs.d`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkopeoSettings {
    /// The `skopeo` binary to run; empty: `skopeo` in `PATH`.
    pub binary: String,
    /// The directory of per-registry certificates; empty: `/etc/skopeo/certs.d`.
    pub certs_dir: String,
    /// How long one `skopeo copy` may run before it is killed (our extension).
    pub timeout: Duration,
    /// How many `skopeo copy` processes run at once (our extension; the original ran one).
    pub parallel_images: usize,
}

impl Default for SkopeoSettings {
    fn default() -> Self {
        SkopeoSettings {
            binary: String::new(),
            certs_dir: String::new(),
            timeout: Duration::from_secs(30 * 60),
            parallel_images: 1,
        }
    }
}

impl SkopeoSettings {
    /// The skopeo executable: the configured one, else `skopeo` from `PATH`.
    pub fn binary(&self) -> &str {
        if self.binary.is_empty() {
            "skopeo"
        } else {
            &self.binary
        }
    }

    /// The certificates directory: per-host CA and client certificates, used by every relay.
    pub fn certs_dir(&self) -> &str {
        if self.certs_dir.is_empty() {
            "/etc/skopeo/certs.d"
        } else {
            &self.certs_dir
        }
    }
}

/// The global `lister:` settings, already resolved to their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListerSettings {
    /// `None` means unlimited (a negative `maxItems`).
    pub max_items: Option<usize>,
    /// `None` means no caching (a negative `cacheDuration`).
    pub cache_duration: Option<Duration>,
}

impl Default for ListerSettings {
    fn default() -> Self {
        ListerSettings {
            max_items: Some(100),
            cache_duration: Some(Duration::from_secs(3600)),
        }
    }
}

/// Concurrency, retry and time bounds of the native relay, where it keeps its manifest cache
/// and whether it copies foreign layers (`native:` section, our extension;
/// docs/configuration.md#the-native-engine-native).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeSettings {
    /// Images copied at the same time.
    pub parallel_images: usize,
    /// Blobs transferred at the same time, across all images.
    pub parallel_blobs: usize,
    /// Tries in all of one request, or of one blob transfer with its requests, on transient
    /// errors (1 = no retry). `native.tries`, formerly `native.retries`.
    pub tries: u32,
    /// To open a connection and finish the TLS handshake (`native.connect-timeout`).
    pub connect_timeout: Duration,
    /// A transfer with no bytes moving for this long has stalled (`native.stall-timeout`).
    pub stall_timeout: Duration,
    /// How long a registry may take to answer once it received a whole blob, plus a minute per
    /// GiB of the blob (`native.commit-timeout`).
    pub commit_timeout: Duration,
    /// `native.chunk-size`: upload blobs in chunks (PATCH) of this many bytes instead of one
    /// request per blob, for registries or proxies that limit request bodies (HTTP 413).
    /// `None` (the default): one request per blob, chunks only when a registry asks for them.
    pub chunk_size: Option<u64>,
    /// Where facts about manifests are kept between runs (`cache-dir`).
    pub cache_dir: CacheDir,
    /// Copy foreign and non-distributable layers when the source holds them
    /// (`include-foreign-layers`, default false: they are left out, as skopeo does).
    pub include_foreign_layers: bool,
}

impl Default for NativeSettings {
    fn default() -> Self {
        let timeouts = crate::registry::Timeouts::default();
        NativeSettings {
            parallel_images: 8,
            parallel_blobs: 6,
            tries: 5,
            connect_timeout: timeouts.connect,
            stall_timeout: timeouts.stall,
            commit_timeout: timeouts.commit,
            chunk_size: None,
            cache_dir: CacheDir::Default,
            include_foreign_layers: false,
        }
    }
}

/// `native.cache-dir`: where the manifest cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDir {
    /// Not set: `$XDG_CACHE_HOME/dregsy`, else `~/.cache/dregsy`.
    Default,
    /// A directory given in the config (relative paths: to the working directory).
    Path(PathBuf),
    /// `-`: no cache; every run asks the registries.
    Off,
}

/// How the daemon serves health checks and stops (our extension: `health:`, `shutdown-grace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Where `/healthz`, `/readyz` and `/status` are served; `None` (the default) serves nothing.
    pub health_listen: Option<SocketAddr>,
    /// How long copies in flight may go on after SIGINT/SIGTERM before they are aborted.
    pub shutdown_grace: Duration,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            health_listen: None,
            shutdown_grace: Duration::from_secs(60),
        }
    }
}

/// Parses a listen address: `host:port` with an IP address, or `:port` for every interface
/// (Go's spelling, which the `-health` flag also accepts).
///
/// # Errors
///
/// When `text` is neither `host:port` with an IP address nor `:port`.
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse().map_err(|_| {
        format!(
            "invalid listen address '{text}': expected IP:PORT, e.g. '127.0.0.1:8080', '0.0.0.0:8080' or ':8080'"
        )
    })
}

/// One sync task.
#[derive(Debug, Clone)]
pub struct Task {
    /// The task's `name`, unique in the file.
    pub name: String,
    /// `None` for a one-off task; at least 30 s otherwise.
    pub interval: Option<Duration>,
    /// `verbose`: per-image lines and the tools' output at info level instead of debug.
    pub verbose: bool,
    /// Where images come from.
    pub source: Location,
    /// Where images go.
    pub target: Location,
    /// The image mappings, in file order.
    pub mappings: Vec<Mapping>,
    /// Where the task starts in the file.
    pub line: usize,
}

impl Task {
    /// Whether the task runs every `interval` rather than once.
    pub fn is_periodic(&self) -> bool {
        self.interval.is_some()
    }
}

/// A source or target registry.
#[derive(Debug, Clone)]
pub struct Location {
    /// The `registry` value as written (host, optional port, optional path prefix, optional
    /// `http://`; a public-ECR `account[:region]@` removed), for messages and logs.
    pub registry: String,
    /// What `registry` names, parsed when the config was loaded.
    pub site: Site,
    /// The side's `auth` value, decoded.
    pub auth: Auth,
    /// ECR token refresh interval (at least one hour), when set.
    pub auth_refresh: Option<Duration>,
    /// The cloud registry this is (ECR, public ECR, GCR/GAR), detected from `registry`;
    /// `None` for a directory of OCI image layouts.
    pub cloud: Option<CloudRegistry>,
    /// `skip-tls-verify`: accept any certificate, and fall back to plain HTTP when the
    /// registry does not speak TLS.
    pub skip_tls_verify: bool,
    /// How repositories are listed for a regex `from`, when the task needs it.
    pub lister: Option<ListerChoice>,
    /// The Docker/podman credential file looked at first when `auth` is omitted: the side's
    /// `auth-file`, else the top-level one (`docs/behaviour.md`, "Credentials").
    pub auth_file: Option<PathBuf>,
    /// The side's `credentials-file`: one user's `user:password` (or JSON) in a file.
    pub credentials_file: Option<PathBuf>,
    /// Where the side starts in the file.
    pub line: usize,
}

impl Location {
    /// The directory of OCI image layouts this side is (`registry: oci:<dir>`), or `None` for a
    /// registry (docs/configuration.md#oci-image-layouts).
    pub fn layout(&self) -> Option<PathBuf> {
        match &self.site {
            Site::Layout(dir) => Some(dir.clone()),
            Site::Registry(_) => None,
        }
    }

    /// The registry this side is (host, port, scheme and path prefix), or `None` for a
    /// directory of OCI image layouts.
    pub fn registry_location(&self) -> Option<&RegistryLocation> {
        match &self.site {
            Site::Registry(location) => Some(location),
            Site::Layout(_) => None,
        }
    }
}

/// What a side's `registry` value names (docs/configuration.md#source-and-target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// `[scheme://]host[:port][/prefix]`: a registry.
    Registry(RegistryLocation),
    /// `oci:<dir>`: a directory of OCI image layouts (docs/configuration.md#oci-image-layouts).
    Layout(PathBuf),
}

/// The lister a side's config asks for, as written (`lister.type` or `listertype`;
/// docs/configuration.md#source-and-target). The lister actually used is a
/// `listers::ListerKind`, resolved from this and the registry (ECR lists through its API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListerChoice {
    /// `catalog`: the registry's `/v2/_catalog` (the default).
    Catalog,
    /// `dockerhub`: the Docker Hub API.
    DockerHub,
    /// `index`: the registry's `/v1/search` with `search`.
    Index {
        /// The search term (`lister.search`).
        search: String,
    },
    /// A `listertype` value that names no lister; an error only if the task needs a lister.
    Invalid(String),
}

/// A config that could not be loaded, with where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// The line the problem is on, when known.
    pub line: Option<usize>,
    /// The original's error text (tests and users match on it).
    pub message: String,
    /// Notices produced before the error, to be logged first.
    pub notices: Vec<Notice>,
}

impl std::fmt::Display for ConfigError {
    /// The message, then where: the file (unless the message already names it, so a path is
    /// never printed twice) and the line when known.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self.file.display().to_string();
        let names_file = self.message.contains(&format!("'{file}'"));
        match (self.line, names_file) {
            (Some(line), true) => write!(f, "{} (line {line})", self.message),
            (None, true) => write!(f, "{}", self.message),
            (Some(line), false) => {
                write!(f, "{} (config file '{file}', line {line})", self.message)
            }
            (None, false) => write!(f, "{} (config file '{file}')", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads, decodes and validates a config file.
///
/// # Errors
///
/// A [`ConfigError`] naming the file (and the line, when known) with the original's message:
/// the file cannot be read, is too large or not UTF-8, is not valid YAML, or fails validation.
pub fn load(path: &Path) -> Result<(Config, Vec<Notice>), ConfigError> {
    let text = read(path)?;
    load_str(path, &text)
}

/// Decodes and validates config text that was read from `path`.
///
/// # Errors
///
/// As [`load`], for everything after reading.
pub fn load_str(path: &Path, text: &str) -> Result<(Config, Vec<Notice>), ConfigError> {
    let fail = |line: Option<usize>, message: String, notices: Vec<Notice>| ConfigError {
        file: path.to_path_buf(),
        line,
        message,
        notices,
    };
    let mut root = yaml::parse(text).map_err(|e| {
        fail(
            (e.line > 0).then_some(e.line),
            format!("error parsing config file '{}': {e}", path.display()),
            Vec::new(),
        )
    })?;
    if let Some(root) = root.as_mut() {
        substitute::apply(root, &|name| std::env::var(name).ok())
            .map_err(|(line, message)| fail(Some(line), message, Vec::new()))?;
    }
    let mut decoder = decode::Decoder::new();
    let raw = match root {
        Some(root) => decoder.config(&root),
        None => raw::RawConfig::default(),
    };
    if !decoder.errors.is_empty() {
        let lines: Vec<String> = decoder
            .errors
            .iter()
            .map(|(line, message)| format!("  line {line}: {message}"))
            .collect();
        let first_line = decoder.errors.first().map(|(line, _)| *line);
        return Err(fail(
            first_line,
            format!(
                "error parsing config file '{}': yaml: unmarshal errors:\n{}",
                path.display(),
                lines.join("\n")
            ),
            decoder.notices,
        ));
    }
    let mut notices = decoder.notices;
    // A misspelt key that guards what gets copied (`verfy:`) must not leave images unchecked,
    // nor a mis-indented `to:` copy to the wrong place: every such key at once, so that a
    // mis-indented block is fixed in one go.
    if let Some((line, _)) = decoder.key_errors.first() {
        let messages: Vec<&str> = decoder.key_errors.iter().map(|(_, m)| m.as_str()).collect();
        return Err(fail(Some(*line), messages.join("\n"), notices));
    }
    // A misspelt `tasks` key leaves a config that does nothing although it asked for
    // something: that must not end as a quiet success (docs/behaviour.md#exit-codes).
    if raw.tasks.is_empty()
        && let Some(Misspelt { key, line, .. }) = decoder
            .misspelt
            .iter()
            .find(|m| m.path.is_empty() && m.meant == "tasks")
    {
        return Err(fail(
            Some(*line),
            format!(
                "the config has no tasks: the unknown key '{key}' looks like a misspelt 'tasks', \
                 so nothing would be synced; rename it to 'tasks'"
            ),
            notices,
        ));
    }
    match validate::validate(raw, &mut notices) {
        Ok(mut config) => {
            config.file = path.to_path_buf();
            Ok((config, notices))
        }
        Err((line, message)) => Err(fail(line, message, notices)),
    }
}

/// Reads a config file's text with the size and encoding checks of [`load`]; with
/// [`load_str`] it lets a caller keep the exact text it loaded (the config watch compares it).
///
/// # Errors
///
/// When the file cannot be read, is larger than [`MAX_CONFIG_BYTES`], or is not UTF-8.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    let fail = |message: String| ConfigError {
        file: path.to_path_buf(),
        line: None,
        message: format!("error loading config file '{}': {message}", path.display()),
        notices: Vec::new(),
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(io_message(&e)))?;
    if meta.is_dir() {
        return Err(fail("is a directory, not a config file".into()));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "the file is {} bytes, more than the limit of {} bytes; is this the right file?",
            meta.len(),
            MAX_CONFIG_BYTES
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(io_message(&e)))?;
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "the file is not valid UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
