//! Turns the YAML tree into raw config values with the original's decoding rules
//! (docs/configuration.md#value-types-and-how-errors-are-reported): strings take the scalar's
//! source text, ints accept truncated floats but no quoted strings, booleans are YAML 1.1,
//! durations follow Go with bare integers as seconds, and unknown keys are kept as warnings
//! instead of being silently dropped.
//!
//! Nothing is validated here beyond types; `validate` checks meaning, in the original's order.

use super::duration::{self, DurationValue};
use super::notice::Notice;
use super::raw::{
    RawConfig, RawDaemon, RawDocker, RawLister, RawLocation, RawMapping, RawNative, RawPlatform,
    RawSkopeo, RawSupply, RawTask, RawVerify,
};
use super::unknown_key::{self, Misspelt};
use super::yaml::{Node, NodeKind, parse_bool, parse_float, parse_int};

/// The keys of one section and what each sets in its raw value: the one list of a section's
/// keys. Unknown-key warnings, their suggestions and [`KNOWN_KEYS`] come from these tables.
type Fields<T> = &'static [(&'static str, Setter<T>)];
/// Decodes a key's value node into the section's raw value.
type Setter<T> = fn(&mut Decoder, &Node, &mut T);

/// The keys of the top level.
const TOP_LEVEL_FIELDS: Fields<RawConfig> = &[
    ("relay", |d, v, config| {
        config.relay = Some(d.string(v));
        config.relay_line = v.line;
    }),
    ("watch", |d, v, config| {
        config.watch = match v.kind {
            NodeKind::Null => None,
            _ => Some(d.bool(v)),
        }
    }),
    ("docker", |d, v, config| config.docker = d.docker(v)),
    ("skopeo", |d, v, config| config.skopeo = d.skopeo(v)),
    ("dockerhost", |d, v, config| config.dockerhost = d.string(v)),
    ("api-version", |d, v, config| {
        config.api_version = d.string(v)
    }),
    ("lister", |d, v, config| {
        d.section(
            v,
            "sync.ListerConfig",
            "'lister'",
            LISTER_FIELDS,
            &mut config.lister,
        );
    }),
    ("native", |d, v, config| {
        config.native.line = v.line;
        d.section(
            v,
            "native settings",
            "'native'",
            NATIVE_FIELDS,
            &mut config.native,
        );
    }),
    ("health", |d, v, config| {
        d.section(
            v,
            "health settings",
            "'health'",
            HEALTH_FIELDS,
            &mut config.daemon,
        );
    }),
    ("shutdown-grace", |d, v, config| {
        config.daemon.shutdown_grace = d.duration(v, "shutdown-grace")
    }),
    ("auth-file", |d, v, config| {
        config.auth_file = Some((d.string(v), v.line))
    }),
    ("credential-helper-timeout", |d, v, config| {
        config.credential_helper_timeout = d
            .duration(v, "credential-helper-timeout")
            .map(|duration| (duration, v.line))
    }),
    ("referrers", |d, v, config| {
        d.supply(&mut config.supply, "referrers", v, "")
    }),
    ("min-age", |d, v, config| {
        d.supply(&mut config.supply, "min-age", v, "")
    }),
    ("tasks", |d, v, config| {
        for (index, item) in d.list(v, "[]*sync.Task").into_iter().enumerate() {
            let task = d.task(item, index);
            config.tasks.push(task);
        }
    }),
];
/// The keys of `docker:`.
const DOCKER_FIELDS: Fields<RawDocker> = &[
    ("dockerhost", |d, v, docker| docker.dockerhost = d.string(v)),
    ("api-version", |d, v, docker| {
        docker.api_version = d.string(v)
    }),
    ("ping-attempts", |d, v, docker| {
        docker.ping_attempts = Some(d.int(v))
    }),
    ("ping-interval", |d, v, docker| {
        docker.ping_interval = d.duration(v, "docker.ping-interval")
    }),
    ("timeout", |d, v, docker| {
        docker.timeout = d.duration(v, "docker.timeout")
    }),
];
/// The keys of `skopeo:`.
const SKOPEO_FIELDS: Fields<RawSkopeo> = &[
    ("binary", |d, v, skopeo| skopeo.binary = d.string(v)),
    ("certs-dir", |d, v, skopeo| skopeo.certs_dir = d.string(v)),
    ("timeout", |d, v, skopeo| {
        skopeo.timeout = d.duration(v, "skopeo.timeout")
    }),
    ("parallel-images", |d, v, skopeo| {
        skopeo.parallel_images = Some(d.int(v))
    }),
];
/// The keys of the global `lister:`.
const LISTER_FIELDS: Fields<RawLister> = &[
    ("maxItems", |d, v, lister| lister.max_items = d.int(v)),
    ("cacheDuration", |d, v, lister| {
        lister.cache_duration = d.duration(v, "lister.cacheDuration")
    }),
];
/// The keys of `native:`.
const NATIVE_FIELDS: Fields<RawNative> = &[
    ("parallel-images", |d, v, native| {
        native.parallel_images = Some(d.int(v))
    }),
    ("parallel-blobs", |d, v, native| {
        native.parallel_blobs = Some(d.int(v))
    }),
    ("tries", |d, v, native| {
        native.tries_written = true;
        native.tries = Some(d.int(v));
    }),
    ("retries", |d, v, native| {
        d.notices.push(Notice::warn(format!(
            "'native.retries' on line {} is the old name of 'native.tries' (it always counted tries, the first one included): rename it",
            v.line
        )));
        // The new name wins when both are set.
        if !native.tries_written {
            native.tries = Some(d.int(v));
        }
    }),
    ("connect-timeout", |d, v, native| {
        native.connect_timeout = d.duration(v, "native.connect-timeout")
    }),
    ("stall-timeout", |d, v, native| {
        native.stall_timeout = d.duration(v, "native.stall-timeout")
    }),
    ("commit-timeout", |d, v, native| {
        native.commit_timeout = d.duration(v, "native.commit-timeout")
    }),
    ("chunk-size", |d, v, native| {
        native.chunk_size = Some((d.string(v), v.line))
    }),
    ("cache-dir", |d, v, native| {
        native.cache_dir = Some((d.string(v), v.line))
    }),
    ("include-foreign-layers", |d, v, native| {
        native.include_foreign_layers = Some(d.bool(v))
    }),
];
/// The keys of `health:`.
const HEALTH_FIELDS: Fields<RawDaemon> = &[("listen", |d, v, daemon| {
    daemon.health_listen = Some((d.string(v), v.line))
})];
/// The keys of a task.
const TASK_FIELDS: Fields<RawTask> = &[
    ("name", |d, v, task| task.name = d.string(v)),
    ("interval", |d, v, task| task.interval = d.int(v)),
    ("verbose", |d, v, task| task.verbose = d.bool(v)),
    ("source", |d, v, task| {
        task.source = d.location(v, &format!("{}.source", task.path))
    }),
    ("target", |d, v, task| {
        task.target = d.location(v, &format!("{}.target", task.path))
    }),
    ("mappings", |d, v, task| {
        for (i, item) in d.list(v, "[]*sync.Mapping").into_iter().enumerate() {
            let mapping = d.mapping(item, &format!("{}.mappings[{i}]", task.path));
            task.mappings.push(mapping);
        }
    }),
    ("referrers", |d, v, task| {
        d.supply(&mut task.supply, "referrers", v, &task.path)
    }),
    ("min-age", |d, v, task| {
        d.supply(&mut task.supply, "min-age", v, &task.path)
    }),
    ("verify", |d, v, task| {
        d.supply(&mut task.supply, "verify", v, &task.path)
    }),
];
/// The keys of a task's `source` and `target`.
const LOCATION_FIELDS: Fields<RawLocation> = &[
    ("registry", |d, v, location| location.registry = d.string(v)),
    ("auth", |d, v, location| location.auth = d.string(v)),
    ("auth-refresh", |d, v, location| {
        location.auth_refresh = d.duration(v, &format!("{}.auth-refresh", location.path))
    }),
    ("skip-tls-verify", |d, v, location| {
        location.skip_tls_verify = d.bool(v)
    }),
    ("lister", |d, v, location| location.lister = d.string_map(v)),
    ("listertype", |d, v, location| {
        location.listertype = d.string(v)
    }),
    ("auth-file", |d, v, location| {
        location.auth_file = d.string(v)
    }),
    ("credentials-file", |d, v, location| {
        location.credentials_file = d.string(v)
    }),
];
/// The keys of a mapping.
const MAPPING_FIELDS: Fields<RawMapping> = &[
    ("from", |d, v, mapping| mapping.from = d.string(v)),
    ("to", |d, v, mapping| mapping.to = d.string(v)),
    ("tags", |d, v, mapping| {
        let items = d.list(v, "[]string");
        mapping.tag_lines = items.iter().map(|item| item.line).collect();
        mapping.tags = items.into_iter().map(|item| d.string(item)).collect();
    }),
    ("platform", |d, v, mapping| {
        mapping.platform = match &v.kind {
            NodeKind::Seq(items) => {
                RawPlatform::List(items.iter().map(|item| d.string(item)).collect())
            }
            _ => RawPlatform::One(d.string(v)),
        }
    }),
    ("referrers", |d, v, mapping| {
        d.supply(&mut mapping.supply, "referrers", v, &mapping.path)
    }),
    ("min-age", |d, v, mapping| {
        d.supply(&mut mapping.supply, "min-age", v, &mapping.path)
    }),
    ("verify", |d, v, mapping| {
        d.supply(&mut mapping.supply, "verify", v, &mapping.path)
    }),
];
/// The keys of a task's or mapping's `verify:`.
const VERIFY_FIELDS: Fields<RawVerify> =
    &[("cosign-key", |d, v, verify| verify.cosign_key = d.string(v))];

/// Every key the decoder knows, by section (`""` is the top level; `docker`, `skopeo`,
/// `lister`, `native` and `health` are top-level maps), read from the sections' tables above.
/// A test holds `docs/configuration.md` to it: a new key goes into its table and into that
/// page.
pub static KNOWN_KEYS: std::sync::LazyLock<Vec<(&str, Vec<&str>)>> =
    std::sync::LazyLock::new(|| {
        vec![
            ("", keys(TOP_LEVEL_FIELDS)),
            ("docker", keys(DOCKER_FIELDS)),
            ("skopeo", keys(SKOPEO_FIELDS)),
            ("lister", keys(LISTER_FIELDS)),
            ("native", keys(NATIVE_FIELDS)),
            ("health", keys(HEALTH_FIELDS)),
            ("tasks[]", keys(TASK_FIELDS)),
            ("tasks[].source, tasks[].target", keys(LOCATION_FIELDS)),
            ("tasks[].mappings[]", keys(MAPPING_FIELDS)),
            (
                "tasks[].verify, tasks[].mappings[].verify",
                keys(VERIFY_FIELDS),
            ),
        ]
    });

/// The keys of a section's table.
fn keys<T>(fields: Fields<T>) -> Vec<&'static str> {
    fields.iter().map(|(key, _)| *key).collect()
}

/// Collects type errors (all of them, as yaml.v2 does) and unknown-key warnings.
pub struct Decoder {
    pub errors: Vec<(usize, String)>,
    pub notices: Vec<Notice>,
    /// Unknown keys close to a known key of their section, each with that key: the top
    /// level's `task:` (no tasks left: the config asked for something it cannot do) and a
    /// task's `mapings:` (a task without mappings) are looked up here.
    pub misspelt: Vec<Misspelt>,
    /// Unknown keys that are config errors, not warnings: `(line, message)`. A misspelt key
    /// guarding what gets copied (see [`unknown_key::guarded_message`]), or a key of a
    /// deeper section written where it is not valid (see [`unknown_key::misplaced_home`]).
    pub key_errors: Vec<(usize, String)>,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            errors: Vec::new(),
            notices: Vec::new(),
            misspelt: Vec::new(),
            key_errors: Vec::new(),
        }
    }

    fn type_error(&mut self, node: &Node, into: &str) {
        self.type_error_hinted(node, into, "");
    }

    /// A type error in yaml.v2's words (`cannot unmarshal !!str `x` into …`, which tests and
    /// docs/compatibility.md rely on), followed by `hint`.
    fn type_error_hinted(&mut self, node: &Node, into: &str, hint: &str) {
        let value = match node.text() {
            Some(text) => format!(" `{}`", shorten(text)),
            None => String::new(),
        };
        self.errors.push((
            node.line,
            format!(
                "cannot unmarshal {}{} into {}{hint}",
                node.yaml_type(),
                value,
                into
            ),
        ));
    }

    /// The type error of a duration key, naming the key and how to write one.
    fn duration_error(&mut self, node: &Node, path: &str) {
        self.type_error_hinted(
            node,
            "time.Duration",
            &format!(
                ": '{path}' is a duration, a number with a unit: e.g. '72h', '30m' or '90s' \
                 (units ns, us, ms, s, m, h; there is no day unit, 3 days is '72h')"
            ),
        );
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
                        self.duration_error(node, path);
                        None
                    }
                }
            }
            _ => {
                self.duration_error(node, path);
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
        known: &[&'static str],
    ) -> Option<Vec<(&'n str, &'n Node)>> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Map(pairs) => {
                let mut out = Vec::new();
                for (key, value) in pairs {
                    let name = key.text().unwrap_or("");
                    if known.contains(&name) {
                        out.push((name, value));
                        continue;
                    }
                    let at = if path.is_empty() {
                        "at the top level".to_string()
                    } else {
                        format!("in {path}")
                    };
                    let shown = format!("'{}' {at} (line {})", shorten(name), key.line);
                    let deeper = [
                        keys(TASK_FIELDS),
                        keys(MAPPING_FIELDS),
                        keys(LOCATION_FIELDS),
                    ];
                    if let Some(home) = unknown_key::misplaced_home(path, name, &deeper) {
                        self.key_errors
                            .push((key.line, unknown_key::misplaced_message(&shown, home)));
                        continue;
                    }
                    let suggestion = crate::spelling::closest(name, known);
                    if let Some(meant) = suggestion {
                        self.misspelt.push(Misspelt {
                            path: path.to_string(),
                            key: shorten(name),
                            meant,
                            line: key.line,
                        });
                    }
                    match unknown_key::guarded_message(&shown, suggestion) {
                        Some(message) => self.key_errors.push((key.line, message)),
                        None => self
                            .notices
                            .push(Notice::warn(unknown_key::warning(&shown, suggestion))),
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

    /// Decodes the map `node` into `out` with the section's table: unknown keys are warned
    /// about, known ones decoded in document order. `None` when the node is null or not a map
    /// (a type error naming `into`).
    fn section<T>(
        &mut self,
        node: &Node,
        into: &str,
        path: &str,
        fields: Fields<T>,
        out: &mut T,
    ) -> Option<()> {
        for (key, value) in self.fields(node, into, path, &keys(fields))? {
            if let Some((_, set)) = fields.iter().find(|(name, _)| *name == key) {
                set(self, value, out);
            }
        }
        Some(())
    }

    /// Decodes the whole document.
    pub fn config(&mut self, root: &Node) -> RawConfig {
        let mut config = RawConfig::default();
        self.section(root, "config.SyncConfig", "", TOP_LEVEL_FIELDS, &mut config);
        config
    }

    fn docker(&mut self, node: &Node) -> Option<RawDocker> {
        let mut docker = RawDocker {
            line: node.line,
            ..RawDocker::default()
        };
        self.section(
            node,
            "docker.RelayConfig",
            "'docker'",
            DOCKER_FIELDS,
            &mut docker,
        )?;
        Some(docker)
    }

    fn skopeo(&mut self, node: &Node) -> Option<RawSkopeo> {
        let mut skopeo = RawSkopeo {
            line: node.line,
            ..RawSkopeo::default()
        };
        self.section(
            node,
            "skopeo.RelayConfig",
            "'skopeo'",
            SKOPEO_FIELDS,
            &mut skopeo,
        )?;
        Some(skopeo)
    }

    fn task(&mut self, node: &Node, index: usize) -> Option<RawTask> {
        let path = format!("tasks[{index}]");
        let mut task = RawTask {
            line: node.line,
            path: path.clone(),
            ..RawTask::default()
        };
        self.section(node, "sync.Task", &path, TASK_FIELDS, &mut task)?;
        task.misspelt_mappings = self
            .misspelt
            .iter()
            .find(|m| m.path == path && m.meant == "mappings")
            .map(|m| (m.key.clone(), m.line));
        Some(task)
    }

    fn location(&mut self, node: &Node, path: &str) -> Option<RawLocation> {
        let mut location = RawLocation {
            line: node.line,
            path: path.to_string(),
            ..RawLocation::default()
        };
        self.section(node, "sync.Location", path, LOCATION_FIELDS, &mut location)?;
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
                let verify_path = format!("'{}'", name("verify"));
                let mut verify = RawVerify {
                    line: value.line,
                    ..RawVerify::default()
                };
                supply.verify = self
                    .section(
                        value,
                        "verify settings",
                        &verify_path,
                        VERIFY_FIELDS,
                        &mut verify,
                    )
                    .map(|()| verify);
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
        let mut mapping = RawMapping {
            line: node.line,
            path: path.to_string(),
            ..RawMapping::default()
        };
        self.section(node, "sync.Mapping", path, MAPPING_FIELDS, &mut mapping)?;
        mapping.tags_line = key_line(node, "tags");
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
            "cannot unmarshal !!str `1d` into time.Duration: 'lister.cacheDuration' is a \
             duration, a number with a unit: e.g. '72h', '30m' or '90s' (units ns, us, ms, s, \
             m, h; there is no day unit, 3 days is '72h')"
        );
        let (_, decoder) =
            decode("tasks:\n- name: t\n  mappings:\n  - from: x\n    min-age: 3 days\n");
        let (line, message) = &decoder.errors[0];
        assert_eq!(*line, 5);
        assert!(
            message.starts_with("cannot unmarshal !!str `3 days` into time.Duration: 'tasks[0].mappings[0].min-age' is a duration"),
            "{message}"
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
