//! Turns the YAML tree into raw config values with the original's decoding rules
//! (docs/configuration.md#value-types-and-how-errors-are-reported): strings take the scalar's
//! source text, ints accept truncated floats but no quoted strings, booleans are YAML 1.1,
//! durations follow Go with bare integers as seconds, and unknown keys are kept as warnings
//! instead of being silently dropped.
//!
//! Nothing is validated here beyond types; `validate` checks meaning, in the original's order.

use super::duration::{self, DurationValue};
use super::notice::Notice;
use super::yaml::{Node, NodeKind, parse_bool, parse_float, parse_int};

/// The keys of the top level.
const TOP_LEVEL_KEYS: &[&str] = &[
    "relay",
    "watch",
    "docker",
    "skopeo",
    "dockerhost",
    "api-version",
    "lister",
    "native",
    "health",
    "shutdown-grace",
    "auth-file",
    "credential-helper-timeout",
    "referrers",
    "min-age",
    "tasks",
];
/// The keys of `docker:`.
const DOCKER_KEYS: &[&str] = &[
    "dockerhost",
    "api-version",
    "ping-attempts",
    "ping-interval",
    "timeout",
];
/// The keys of `skopeo:`.
const SKOPEO_KEYS: &[&str] = &["binary", "certs-dir", "timeout", "parallel-images"];
/// The keys of the global `lister:`.
const LISTER_KEYS: &[&str] = &["maxItems", "cacheDuration"];
/// The keys of `native:`.
const NATIVE_KEYS: &[&str] = &[
    "parallel-images",
    "parallel-blobs",
    "tries",
    "retries",
    "connect-timeout",
    "stall-timeout",
    "commit-timeout",
    "chunk-size",
    "cache-dir",
    "include-foreign-layers",
];
/// The keys of `health:`.
const HEALTH_KEYS: &[&str] = &["listen"];
/// The keys of a task.
const TASK_KEYS: &[&str] = &[
    "name",
    "interval",
    "verbose",
    "source",
    "target",
    "mappings",
    "referrers",
    "min-age",
    "verify",
];
/// The keys of a task's `source` and `target`.
const LOCATION_KEYS: &[&str] = &[
    "registry",
    "auth",
    "auth-refresh",
    "skip-tls-verify",
    "lister",
    "listertype",
    "auth-file",
    "credentials-file",
];
/// The keys of a mapping.
const MAPPING_KEYS: &[&str] = &[
    "from",
    "to",
    "tags",
    "platform",
    "referrers",
    "min-age",
    "verify",
];
/// The keys of a task's or mapping's `verify:`.
const VERIFY_KEYS: &[&str] = &["cosign-key"];

/// Every key the decoder knows, by section (`""` is the top level; `docker`, `skopeo`,
/// `lister`, `native` and `health` are top-level maps). Unknown-key warnings and their
/// suggestions come from these lists, and a test holds `docs/configuration.md` to them: a new
/// key goes into its list here and into that page.
pub const KNOWN_KEYS: &[(&str, &[&str])] = &[
    ("", TOP_LEVEL_KEYS),
    ("docker", DOCKER_KEYS),
    ("skopeo", SKOPEO_KEYS),
    ("lister", LISTER_KEYS),
    ("native", NATIVE_KEYS),
    ("health", HEALTH_KEYS),
    ("tasks[]", TASK_KEYS),
    ("tasks[].source, tasks[].target", LOCATION_KEYS),
    ("tasks[].mappings[]", MAPPING_KEYS),
    ("tasks[].verify, tasks[].mappings[].verify", VERIFY_KEYS),
];

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

/// Collects type errors (all of them, as yaml.v2 does) and unknown-key warnings.
pub struct Decoder {
    pub errors: Vec<(usize, String)>,
    pub notices: Vec<Notice>,
    /// Unknown top-level keys that look like a misspelt `tasks` (`task:`, `taks:`), with
    /// their lines: with no tasks left, the config asked for something it cannot do.
    pub misspelt_tasks: Vec<(String, usize)>,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            errors: Vec::new(),
            notices: Vec::new(),
            misspelt_tasks: Vec::new(),
        }
    }

    fn type_error(&mut self, node: &Node, into: &str) {
        let value = match node.text() {
            Some(text) => format!(" `{}`", shorten(text)),
            None => String::new(),
        };
        self.errors.push((
            node.line,
            format!(
                "cannot unmarshal {}{} into {}",
                node.yaml_type(),
                value,
                into
            ),
        ));
    }

    fn string(&mut self, node: &Node) -> String {
        match &node.kind {
            NodeKind::Null => String::new(),
            NodeKind::Scalar { text, .. } => text.clone(),
            _ => {
                self.type_error(node, "string");
                String::new()
            }
        }
    }

    fn int(&mut self, node: &Node) -> i64 {
        match &node.kind {
            NodeKind::Null => 0,
            NodeKind::Scalar { text, plain: true } => {
                if let Some(v) = parse_int(text) {
                    v
                } else if let Some(f) = parse_float(text).filter(|f| f.is_finite()) {
                    f.trunc() as i64
                } else {
                    self.type_error(node, "int");
                    0
                }
            }
            _ => {
                self.type_error(node, "int");
                0
            }
        }
    }

    fn bool(&mut self, node: &Node) -> bool {
        match &node.kind {
            NodeKind::Null => false,
            NodeKind::Scalar { text, plain: true } if parse_bool(text).is_some() => {
                parse_bool(text).unwrap_or(false)
            }
            _ => {
                self.type_error(node, "bool");
                false
            }
        }
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<DurationValue> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Scalar { text, plain } => {
                let number = if *plain {
                    parse_int(text).or_else(|| {
                        parse_float(text)
                            .filter(|f| f.is_finite())
                            .map(|f| f.trunc() as i64)
                    })
                } else {
                    None
                };
                if let Some(n) = number {
                    let value = DurationValue::from_bare_number(n);
                    if n > 0 {
                        self.notices.push(Notice::warn(format!(
                            "'{path}' on line {} is a bare number: taking it as {n} seconds; write it with a unit, e.g. '{n}s' or '{}m'",
                            node.line,
                            (n / 60).max(1)
                        )));
                    }
                    return Some(value);
                }
                match duration::parse_go_duration(text) {
                    Ok(d) => Some(DurationValue::Nanos(d)),
                    Err(_) => {
                        self.type_error(node, "time.Duration");
                        None
                    }
                }
            }
            _ => {
                self.type_error(node, "time.Duration");
                None
            }
        }
    }

    /// The pairs of a mapping node, warning about keys not in `known` with a "did you mean".
    /// A null node is an absent mapping; another shape is a type error.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        into: &str,
        path: &str,
        known: &[&str],
    ) -> Option<Vec<(&'n str, &'n Node)>> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Map(pairs) => {
                let mut out = Vec::new();
                for (key, value) in pairs {
                    let name = key.text().unwrap_or("");
                    if known.contains(&name) {
                        out.push((name, value));
                    } else {
                        let suggestion = suggest(name, known);
                        if path.is_empty() && suggestion == Some("tasks") {
                            self.misspelt_tasks.push((shorten(name), key.line));
                        }
                        let hint = suggestion
                            .map(|s| format!("; did you mean '{s}'?"))
                            .unwrap_or_default();
                        let at = if path.is_empty() {
                            "at the top level".to_string()
                        } else {
                            format!("in {path}")
                        };
                        self.notices.push(Notice::warn(format!(
                            "unknown config key '{}' {at} (line {}) is ignored{hint}",
                            shorten(name),
                            key.line
                        )));
                    }
                }
                Some(out)
            }
            _ => {
                self.type_error(node, into);
                None
            }
        }
    }

    fn list<'n>(&mut self, node: &'n Node, into: &str) -> Vec<&'n Node> {
        match &node.kind {
            NodeKind::Null => Vec::new(),
            NodeKind::Seq(items) => items.iter().collect(),
            _ => {
                self.type_error(node, into);
                Vec::new()
            }
        }
    }

    /// Decodes the whole document.
    pub fn config(&mut self, root: &Node) -> RawConfig {
        let mut config = RawConfig::default();
        let Some(fields) = self.fields(root, "config.SyncConfig", "", TOP_LEVEL_KEYS) else {
            return config;
        };
        for (key, value) in fields {
            match key {
                "relay" => {
                    config.relay = Some(self.string(value));
                    config.relay_line = value.line;
                }
                "watch" => {
                    config.watch = match value.kind {
                        NodeKind::Null => None,
                        _ => Some(self.bool(value)),
                    }
                }
                "docker" => {
                    config.docker = self
                        .fields(value, "docker.RelayConfig", "'docker'", DOCKER_KEYS)
                        .map(|fields| {
                            let mut docker = RawDocker {
                                line: value.line,
                                ..RawDocker::default()
                            };
                            for (key, value) in fields {
                                match key {
                                    "dockerhost" => docker.dockerhost = self.string(value),
                                    "ping-attempts" => docker.ping_attempts = Some(self.int(value)),
                                    "ping-interval" => {
                                        docker.ping_interval =
                                            self.duration(value, "docker.ping-interval")
                                    }
                                    "timeout" => {
                                        docker.timeout = self.duration(value, "docker.timeout")
                                    }
                                    _ => docker.api_version = self.string(value),
                                }
                            }
                            docker
                        })
                }
                "skopeo" => {
                    config.skopeo = self
                        .fields(value, "skopeo.RelayConfig", "'skopeo'", SKOPEO_KEYS)
                        .map(|fields| {
                            let mut skopeo = RawSkopeo {
                                line: value.line,
                                ..RawSkopeo::default()
                            };
                            for (key, value) in fields {
                                match key {
                                    "binary" => skopeo.binary = self.string(value),
                                    "timeout" => {
                                        skopeo.timeout = self.duration(value, "skopeo.timeout")
                                    }
                                    "parallel-images" => {
                                        skopeo.parallel_images = Some(self.int(value))
                                    }
                                    _ => skopeo.certs_dir = self.string(value),
                                }
                            }
                            skopeo
                        })
                }
                "dockerhost" => config.dockerhost = self.string(value),
                "api-version" => config.api_version = self.string(value),
                "lister" => {
                    if let Some(fields) =
                        self.fields(value, "sync.ListerConfig", "'lister'", LISTER_KEYS)
                    {
                        for (key, value) in fields {
                            match key {
                                "maxItems" => config.lister.max_items = self.int(value),
                                _ => {
                                    config.lister.cache_duration =
                                        self.duration(value, "lister.cacheDuration")
                                }
                            }
                        }
                    }
                }
                "native" => {
                    config.native.line = value.line;
                    if let Some(fields) =
                        self.fields(value, "native settings", "'native'", NATIVE_KEYS)
                    {
                        let mut tries_line = None;
                        for (key, value) in fields {
                            let native = &mut config.native;
                            match key {
                                "cache-dir" => {
                                    native.cache_dir = Some((self.string(value), value.line))
                                }
                                "include-foreign-layers" => {
                                    native.include_foreign_layers = Some(self.bool(value))
                                }
                                "parallel-images" => native.parallel_images = Some(self.int(value)),
                                "parallel-blobs" => native.parallel_blobs = Some(self.int(value)),
                                "connect-timeout" => {
                                    native.connect_timeout =
                                        self.duration(value, "native.connect-timeout")
                                }
                                "stall-timeout" => {
                                    native.stall_timeout =
                                        self.duration(value, "native.stall-timeout")
                                }
                                "commit-timeout" => {
                                    native.commit_timeout =
                                        self.duration(value, "native.commit-timeout")
                                }
                                "chunk-size" => {
                                    native.chunk_size = Some((self.string(value), value.line));
                                }
                                "retries" => {
                                    self.notices.push(Notice::warn(format!(
                                        "'native.retries' on line {} is the old name of 'native.tries' (it always counted tries, the first one included): rename it",
                                        value.line
                                    )));
                                    // The new name wins when both are set.
                                    if tries_line.is_none() {
                                        native.tries = Some(self.int(value));
                                    }
                                }
                                _ => {
                                    tries_line = Some(value.line);
                                    native.tries = Some(self.int(value));
                                }
                            }
                        }
                    }
                }
                "health" => {
                    if let Some(fields) =
                        self.fields(value, "health settings", "'health'", HEALTH_KEYS)
                    {
                        for (_, value) in fields {
                            config.daemon.health_listen = Some((self.string(value), value.line));
                        }
                    }
                }
                "shutdown-grace" => {
                    config.daemon.shutdown_grace = self.duration(value, "shutdown-grace")
                }
                "auth-file" => config.auth_file = Some((self.string(value), value.line)),
                "credential-helper-timeout" => {
                    config.credential_helper_timeout = self
                        .duration(value, "credential-helper-timeout")
                        .map(|d| (d, value.line))
                }
                "referrers" | "min-age" => self.supply(&mut config.supply, key, value, ""),
                _ => {
                    for (index, item) in self.list(value, "[]*sync.Task").into_iter().enumerate() {
                        let task = self.task(item, index);
                        config.tasks.push(task);
                    }
                }
            }
        }
        config
    }

    fn task(&mut self, node: &Node, index: usize) -> Option<RawTask> {
        let path = format!("tasks[{index}]");
        let fields = self.fields(node, "sync.Task", &path, TASK_KEYS)?;
        let mut task = RawTask {
            line: node.line,
            ..RawTask::default()
        };
        for (key, value) in fields {
            match key {
                "name" => task.name = self.string(value),
                "interval" => task.interval = self.int(value),
                "verbose" => task.verbose = self.bool(value),
                "source" => task.source = self.location(value, &format!("{path}.source")),
                "target" => task.target = self.location(value, &format!("{path}.target")),
                "referrers" | "min-age" | "verify" => {
                    self.supply(&mut task.supply, key, value, &path)
                }
                _ => {
                    for (i, item) in self.list(value, "[]*sync.Mapping").into_iter().enumerate() {
                        let mapping = self.mapping(item, &format!("{path}.mappings[{i}]"));
                        task.mappings.push(mapping);
                    }
                }
            }
        }
        Some(task)
    }

    fn location(&mut self, node: &Node, path: &str) -> Option<RawLocation> {
        let fields = self.fields(node, "sync.Location", path, LOCATION_KEYS)?;
        let mut location = RawLocation {
            line: node.line,
            ..RawLocation::default()
        };
        for (key, value) in fields {
            match key {
                "registry" => location.registry = self.string(value),
                "auth" => location.auth = self.string(value),
                "auth-refresh" => {
                    location.auth_refresh = self.duration(value, &format!("{path}.auth-refresh"))
                }
                "skip-tls-verify" => location.skip_tls_verify = self.bool(value),
                "listertype" => location.listertype = self.string(value),
                "auth-file" => location.auth_file = self.string(value),
                "credentials-file" => location.credentials_file = self.string(value),
                _ => location.lister = self.string_map(value),
            }
        }
        Some(location)
    }

    /// One of `referrers`, `min-age`, `verify` at the level `path` (`""` for the top).
    fn supply(&mut self, supply: &mut RawSupply, key: &str, value: &Node, path: &str) {
        let name = |key: &str| {
            if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            }
        };
        match key {
            "referrers" => {
                supply.referrers = match value.kind {
                    NodeKind::Null => None,
                    _ => Some((self.bool(value), value.line)),
                }
            }
            "min-age" => {
                supply.min_age = self
                    .duration(value, &name("min-age"))
                    .map(|d| (d, value.line))
            }
            _ => {
                let verify_path = name("verify");
                let fields = self.fields(
                    value,
                    "verify settings",
                    &format!("'{verify_path}'"),
                    VERIFY_KEYS,
                );
                supply.verify = fields.map(|fields| {
                    let mut verify = RawVerify {
                        line: value.line,
                        ..RawVerify::default()
                    };
                    for (_, value) in fields {
                        verify.cosign_key = self.string(value);
                    }
                    verify
                });
            }
        }
    }

    fn string_map(&mut self, node: &Node) -> Option<Vec<(String, String)>> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Map(pairs) => Some(
                pairs
                    .iter()
                    .map(|(k, v)| (self.string(k), self.string(v)))
                    .collect(),
            ),
            _ => {
                self.type_error(node, "map[string]string");
                None
            }
        }
    }

    fn mapping(&mut self, node: &Node, path: &str) -> Option<RawMapping> {
        let fields = self.fields(node, "sync.Mapping", path, MAPPING_KEYS)?;
        let mut mapping = RawMapping {
            line: node.line,
            ..RawMapping::default()
        };
        for (key, value) in fields {
            match key {
                "from" => mapping.from = self.string(value),
                "to" => mapping.to = self.string(value),
                "platform" => {
                    mapping.platform = match &value.kind {
                        NodeKind::Seq(items) => {
                            RawPlatform::List(items.iter().map(|item| self.string(item)).collect())
                        }
                        _ => RawPlatform::One(self.string(value)),
                    }
                }
                "referrers" | "min-age" | "verify" => {
                    self.supply(&mut mapping.supply, key, value, path)
                }
                _ => {
                    let items = self.list(value, "[]string");
                    mapping.tag_lines = items.iter().map(|item| item.line).collect();
                    mapping.tags = items.into_iter().map(|item| self.string(item)).collect();
                    mapping.tags_line = key_line(node, "tags");
                }
            }
        }
        Some(mapping)
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

/// The line of key `name` in a mapping node.
fn key_line(node: &Node, name: &str) -> Option<usize> {
    match &node.kind {
        NodeKind::Map(pairs) => pairs
            .iter()
            .rev()
            .find(|(key, _)| key.text() == Some(name))
            .map(|(key, _)| key.line),
        _ => None,
    }
}

/// Keeps error messages readable when a huge value lands in the wrong place.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 60;
    if text.chars().count() <= LIMIT {
        text.to_string()
    } else {
        let head: String = text.chars().take(LIMIT).collect();
        format!("{head}...")
    }
}

/// The known key closest to a misspelt one, when it is close enough to be a likely typo.
fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn decode(text: &str) -> (RawConfig, Decoder) {
        let root = yaml::parse(text).expect("yaml").expect("document");
        let mut decoder = Decoder::new();
        let config = decoder.config(&root);
        (config, decoder)
    }

    #[test]
    fn tags_keep_raw_text() {
        let (config, decoder) = decode(
            "tasks:\n- name: 123\n  mappings:\n  - from: a\n    tags: [1.30, 1.0, 010, 0x1F, true, 1e3, ~]\n",
        );
        assert!(decoder.errors.is_empty(), "{:?}", decoder.errors);
        let task = config.tasks[0].as_ref().expect("task");
        assert_eq!(task.name, "123");
        let mapping = task.mappings[0].as_ref().expect("mapping");
        assert_eq!(
            mapping.tags,
            ["1.30", "1.0", "010", "0x1F", "true", "1e3", ""]
        );
    }

    #[test]
    fn int_and_bool_rules() {
        let (config, decoder) = decode(
            "watch: on\ntasks:\n- interval: 60.7\n  verbose: Yes\n- interval: \"60\"\n  verbose: \"true\"\n",
        );
        assert_eq!(config.watch, Some(true));
        let first = config.tasks[0].as_ref().expect("task");
        assert_eq!(first.interval, 60);
        assert!(first.verbose);
        let messages: Vec<&str> = decoder.errors.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(
            messages,
            [
                "cannot unmarshal !!str `60` into int",
                "cannot unmarshal !!str `true` into bool"
            ]
        );
        assert_eq!(decoder.errors[0].0, 5);
    }

    #[test]
    fn unknown_keys_warn_with_suggestion() {
        let (_, decoder) = decode("tasks:\n- name: x\n  intervall: 60\n");
        let warning = &decoder.notices[0].message;
        assert!(warning.contains("'intervall'"), "{warning}");
        assert!(warning.contains("tasks[0]"), "{warning}");
        assert!(warning.contains("did you mean 'interval'"), "{warning}");
        assert!(warning.contains("line 3"), "{warning}");
    }

    #[test]
    fn durations() {
        let (config, decoder) = decode("lister: {cacheDuration: 1h30m}\n");
        assert!(decoder.errors.is_empty());
        assert_eq!(
            config.lister.cache_duration,
            Some(DurationValue::Nanos(5_400_000_000_000))
        );
        let (config, decoder) = decode("lister: {cacheDuration: 60}\n");
        assert_eq!(
            config.lister.cache_duration,
            Some(DurationValue::Nanos(60_000_000_000))
        );
        assert!(decoder.notices[0].message.contains("60 seconds"));
        let (config, _) = decode("lister: {cacheDuration: -1}\n");
        assert_eq!(config.lister.cache_duration, Some(DurationValue::Off));
        let (_, decoder) = decode("lister: {cacheDuration: 1d}\n");
        assert_eq!(
            decoder.errors[0].1,
            "cannot unmarshal !!str `1d` into time.Duration"
        );
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        let (_, decoder) = decode("- a\n- b\n");
        assert_eq!(
            decoder.errors[0].1,
            "cannot unmarshal !!seq into config.SyncConfig"
        );
    }

    /// The first cells of the table rows of `docs/configuration.md`: the names in backticks.
    fn documented_names() -> std::collections::BTreeSet<&'static str> {
        include_str!("../../docs/configuration.md")
            .lines()
            .filter_map(|line| line.strip_prefix("| "))
            .filter_map(|row| row.split(" |").next())
            .flat_map(|cell| cell.split('`').skip(1).step_by(2))
            .collect()
    }

    /// The name a key's row carries: `section.key` for the top-level maps, else the key.
    fn row_name(section: &str, key: &str) -> String {
        if section.is_empty() || section.starts_with("tasks") {
            key.to_string()
        } else {
            format!("{section}.{key}")
        }
    }

    #[test]
    fn every_known_key_has_a_row_in_the_configuration_reference() {
        let documented = documented_names();
        let missing: Vec<String> = KNOWN_KEYS
            .iter()
            .flat_map(|(section, keys)| keys.iter().map(|key| row_name(section, key)))
            .filter(|name| !documented.contains(name.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/configuration.md has no table row for {missing:?}: add one (type, default, \
             what it does) under the section of the key"
        );
    }

    #[test]
    fn every_documented_section_key_is_known() {
        let known: Vec<String> = KNOWN_KEYS
            .iter()
            .flat_map(|(section, keys)| keys.iter().map(|key| row_name(section, key)))
            .collect();
        let unknown: Vec<&str> = documented_names()
            .into_iter()
            .filter(|name| {
                name.split_once('.')
                    .is_some_and(|(section, _)| KNOWN_KEYS.iter().any(|(s, _)| *s == section))
            })
            .filter(|name| !known.iter().any(|k| k == name))
            .collect();
        assert!(
            unknown.is_empty(),
            "docs/configuration.md documents {unknown:?}, which the decoder does not know"
        );
    }

    #[test]
    fn null_task_is_kept_for_validation() {
        let (config, decoder) = decode("tasks: [~]\n");
        assert!(decoder.errors.is_empty());
        assert!(config.tasks[0].is_none());
    }
}
