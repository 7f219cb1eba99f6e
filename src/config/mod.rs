//! The config file: read, decode and validate into plain typed values (docs/configuration.md).
//!
//! Every quirk of the original's config handling lives here and nowhere else. Loading does no
//! network I/O and no logging: it returns the config together with the notices (warnings, info
//! notes) that the original would log while validating, in the same order.

mod auth;
mod decode;
mod duration;
mod notice;
pub mod substitute;
mod validate;
pub mod yaml;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use auth::Auth;
pub use decode::KNOWN_KEYS;
pub use duration::DurationValue;
pub use notice::{Level, Notice};

use crate::plan::mapping::MappingRule;
use crate::plan::tags::TagSet;

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
    pub relay: RelayKind,
    /// `watch: true` restarts on config changes (only meaningful with periodic tasks).
    pub watch: bool,
    pub docker: DockerSettings,
    pub skopeo: SkopeoSettings,
    pub lister: ListerSettings,
    pub native: NativeSettings,
    pub daemon: DaemonSettings,
    /// How long a credential helper may take to answer (`credential-helper-timeout`).
    pub credential_helper_timeout: Duration,
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
    pub binary: String,
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
    pub name: String,
    /// `None` for a one-off task; at least 30 s otherwise.
    pub interval: Option<Duration>,
    pub verbose: bool,
    pub source: Location,
    pub target: Location,
    pub mappings: Vec<Mapping>,
    /// Where the task starts in the file.
    pub line: usize,
}

impl Task {
    pub fn is_periodic(&self) -> bool {
        self.interval.is_some()
    }
}

/// A source or target registry.
#[derive(Debug, Clone)]
pub struct Location {
    /// The registry as written (host, optional port, optional path prefix, optional `http://`).
    pub registry: String,
    pub auth: Auth,
    /// ECR token refresh interval (at least one hour), when set.
    pub auth_refresh: Option<Duration>,
    /// The cloud registry this is (ECR, public ECR, GCR/GAR), detected from `registry`.
    pub cloud: Option<crate::cloud::CloudRegistry>,
    pub skip_tls_verify: bool,
    /// How repositories are listed for a regex `from`, when the task needs it.
    pub lister: Option<ListerSource>,
    /// The Docker/podman credential file looked at first when `auth` is omitted: the side's
    /// `auth-file`, else the top-level one (`docs/behaviour.md`, "Credentials").
    pub auth_file: Option<PathBuf>,
    /// The side's `credentials-file`: one user's `user:password` (or JSON) in a file.
    pub credentials_file: Option<PathBuf>,
    pub line: usize,
}

impl Location {
    /// The directory of OCI image layouts this side is (`registry: oci:<dir>`), or `None` for a
    /// registry (docs/configuration.md#oci-image-layouts).
    pub fn layout(&self) -> Option<PathBuf> {
        crate::layout::parse_location(&self.registry).and_then(Result::ok)
    }
}

/// The per-location lister choice (docs/configuration.md#source-and-target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListerSource {
    Catalog,
    DockerHub,
    Index {
        search: String,
    },
    /// A `listertype` value that names no lister; an error only if the task needs a lister.
    Invalid(String),
}

/// One image mapping of a task.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// `from` and `to`, parsed and normalised.
    pub rule: MappingRule,
    /// The tag list as written, for messages.
    pub tag_entries: Vec<String>,
    /// The parsed tag filters.
    pub tags: TagSet,
    pub platform: PlatformChoice,
    /// Copy the referrers (signatures, SBOMs, attestations) of every copied manifest, and
    /// cosign's legacy `.sig`/`.att`/`.sbom` tags (`referrers`, from the mapping, else the
    /// task, else the top level; off by default: docs/configuration.md#referrers).
    pub referrers: bool,
    /// Leave out images built less than this long ago (`min-age`, inherited like `referrers`;
    /// `None` for no minimum: docs/configuration.md#min-age).
    pub min_age: Option<Duration>,
    /// Copy only images signed with this key (`verify`, from the mapping, else the task:
    /// docs/configuration.md#verify).
    pub verify: Option<Verify>,
    pub line: usize,
}

/// A signature check before mirroring: `verify: {cosign-key: PATH}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verify {
    /// The key file, as configured.
    pub key_file: PathBuf,
    /// The key it holds, read and checked when the config was loaded.
    pub key: crate::cosign::PublicKey,
}

/// Which platform of a multi-platform source a mapping copies (docs/behaviour.md#platform-choice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformChoice {
    /// No `platform` key: the platform of the machine dregsy runs on.
    Host,
    /// `platform: all`: the whole index, byte for byte.
    All,
    /// `os[/arch[/variant]]`.
    Specific {
        os: String,
        arch: String,
        variant: String,
    },
    /// `platform: [linux/amd64, linux/arm64]` (our extension): an index with only these
    /// platforms' manifests, rewritten (docs/behaviour.md#platform-choice).
    Subset(Vec<crate::registry::Platform>),
}

impl PlatformChoice {
    /// Parses a `platform` value; the error says what is accepted.
    pub fn parse(value: &str) -> Result<PlatformChoice, String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(PlatformChoice::Host);
        }
        if value == "all" {
            return Ok(PlatformChoice::All);
        }
        let parts: Vec<&str> = value.split('/').collect();
        let valid_part = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if parts.len() > 3 || !parts.iter().all(|p| valid_part(p)) {
            return Err(format!(
                "invalid platform '{value}': expected 'os', 'os/arch', 'os/arch/variant' or 'all'"
            ));
        }
        Ok(PlatformChoice::Specific {
            os: parts[0].to_string(),
            arch: parts.get(1).unwrap_or(&"").to_string(),
            variant: parts.get(2).unwrap_or(&"").to_string(),
        })
    }

    /// Parses a `platform` list. A list of one `all` is `all`.
    ///
    /// # Errors
    /// An empty list, `all` beside platforms, a malformed or repeated platform.
    pub fn parse_list(values: &[String]) -> Result<PlatformChoice, String> {
        if values.is_empty() {
            return Err(
                "'platform' is an empty list: name the platforms to copy, e.g. [linux/amd64, linux/arm64], or remove the key for the host's platform"
                    .into(),
            );
        }
        if values.iter().any(|v| v.trim() == "all") {
            return if values.len() == 1 {
                Ok(PlatformChoice::All)
            } else {
                Err("'platform' lists 'all' beside other platforms: write 'platform: all' for every platform, or list only the platforms to copy".into())
            };
        }
        let mut platforms: Vec<crate::registry::Platform> = Vec::with_capacity(values.len());
        for value in values {
            let value = value.trim();
            // The same spelling rules as a single platform, then the engine's normal form.
            PlatformChoice::parse(value)?;
            if value.is_empty() {
                return Err("'platform' lists an empty platform".into());
            }
            let platform = crate::registry::Platform::parse(value).map_err(|e| e.to_string())?;
            if platforms.iter().any(|p| p.matches(&platform)) {
                return Err(format!("'platform' lists {platform} twice"));
            }
            platforms.push(platform);
        }
        Ok(PlatformChoice::Subset(platforms))
    }

    /// The value as a user writes it, for logs (`""` for the host default, as the original logs it).
    pub fn as_config_text(&self) -> String {
        match self {
            PlatformChoice::Host => String::new(),
            PlatformChoice::All => "all".into(),
            PlatformChoice::Subset(platforms) => format!(
                "[{}]",
                platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            PlatformChoice::Specific { os, arch, variant } => [os, arch, variant]
                .into_iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("/"),
        }
    }
}

/// A config that could not be loaded, with where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
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
pub fn load(path: &Path) -> Result<(Config, Vec<Notice>), ConfigError> {
    let text = read(path)?;
    load_str(path, &text)
}

/// Decodes and validates config text that was read from `path`.
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
        None => decode::RawConfig::default(),
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
    // A misspelt `tasks` key leaves a config that does nothing although it asked for
    // something: that must not end as a quiet success (docs/behaviour.md#exit-codes).
    if raw.tasks.is_empty()
        && let Some((key, line)) = decoder.misspelt_tasks.first()
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
