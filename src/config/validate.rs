//! Validation in the original's order, with its error texts (docs/configuration.md), plus our
//! decisions on durations, the default relay, `auth` and `platform` (docs/compatibility.md).
//!
//! The first error wins, as in the original. Errors carry the line of the task, location or
//! mapping they are about, so the user finds the spot.

use std::path::PathBuf;
use std::time::Duration;

use super::notice::Notice;
use super::raw::{RawConfig, RawLocation, RawMapping, RawPlatform, RawSupply, RawTask};
use super::size::parse_chunk_size;
use super::{
    CacheDir, CloudRegistry, Config, DaemonSettings, DockerSettings, ListerChoice, ListerSettings,
    Location, Mapping, NativeSettings, PlatformChoice, RelayKind, SkopeoSettings, Task, Verify,
    auth,
};
use crate::plan::mapping::MappingRule;
use crate::plan::tags::{TagSet, describe_errors};
use crate::registry::RegistryHost;

type Failure = (Option<usize>, String);

/// Validates decoded values into a [`Config`], pushing the notices the original would log.
pub fn validate(raw: RawConfig, notices: &mut Vec<Notice>) -> Result<Config, Failure> {
    // The original's note about `watch` comes first; it is only worth saying when a task is
    // periodic, since `watch` does nothing for one-off tasks (docs/behaviour.md#logging).
    let watch_note_at = notices.len();
    let watch = raw.watch.unwrap_or(false);
    let (relay, docker) = relay(&raw, notices)?;
    let lister = lister(&raw, notices);
    let native = native(&raw)?;
    let daemon = daemon(&raw, notices)?;
    let skopeo = skopeo(&raw)?;
    let credential_helper_timeout = match raw.credential_helper_timeout {
        None => super::DEFAULT_CREDENTIAL_HELPER_TIMEOUT,
        Some((value, line)) => timeout(Some(line), "credential-helper-timeout", Some(value))?
            .unwrap_or(super::DEFAULT_CREDENTIAL_HELPER_TIMEOUT),
    };
    let auth_file = match &raw.auth_file {
        Some((path, line)) if path.trim().is_empty() => {
            return Err((
                Some(*line),
                "'auth-file' is empty: name a Docker/podman credential file or remove the key"
                    .into(),
            ));
        }
        Some((path, _)) => Some(PathBuf::from(path.trim())),
        None => None,
    };
    let global = supply(&raw.supply, &Supply::default())?;
    let mut tasks = Vec::with_capacity(raw.tasks.len());
    for (index, task) in raw.tasks.into_iter().enumerate() {
        let Some(task) = task else {
            return Err((None, format!("task #{} is empty (null)", index + 1)));
        };
        tasks.push(self::task(task, auth_file.as_ref(), &global, notices)?);
    }
    if relay == RelayKind::Docker
        && let Some((task, side)) = tasks.iter().find_map(|t| {
            [&t.source, &t.target]
                .into_iter()
                .find(|side| side.layout().is_some())
                .map(|side| (t, side))
        })
    {
        return Err((
            Some(side.line),
            format!(
                "task '{}': the docker relay cannot read or write OCI image layouts ('{}'); use \
                 'relay: native' or 'relay: skopeo'",
                task.name, side.registry
            ),
        ));
    }
    if raw.watch.is_none() && tasks.iter().any(Task::is_periodic) {
        notices.insert(
            watch_note_at,
            Notice::info(
                "automatic restart after config file change is currently off by default; \
                 you can activate this by adding 'watch: true' to your config",
            ),
        );
    }
    Ok(Config {
        file: Default::default(),
        relay,
        watch,
        docker,
        skopeo,
        lister,
        native,
        daemon,
        credential_helper_timeout,
        tasks,
    })
}

/// Step 2: the relay, with our default (docs/configuration.md#top-level).
fn relay(
    raw: &RawConfig,
    notices: &mut Vec<Notice>,
) -> Result<(RelayKind, DockerSettings), Failure> {
    let line = (raw.relay_line > 0).then_some(raw.relay_line);
    let has_deprecated = !raw.dockerhost.is_empty() || !raw.api_version.is_empty();
    let written = raw.relay.clone().unwrap_or_default();
    let kind = match written.as_str() {
        // Omitted means native, unless the config is clearly written for the docker relay.
        "" if raw.docker.is_some() || has_deprecated => RelayKind::Docker,
        "" | "native" => RelayKind::Native,
        "docker" => RelayKind::Docker,
        "skopeo" => RelayKind::Skopeo,
        other => {
            return Err((
                line,
                format!(
                    "invalid relay type: '{other}', must be either 'docker' or 'skopeo' (or 'native', the default)"
                ),
            ));
        }
    };
    let mut docker = DockerSettings::default();
    match kind {
        RelayKind::Docker => docker = docker_settings(raw, has_deprecated, notices)?,
        RelayKind::Skopeo | RelayKind::Native => {
            if !raw.dockerhost.is_empty() {
                return Err((
                    line,
                    format!(
                        "setting 'dockerhost' implies 'docker' relay, but relay is set to '{}'",
                        kind.name()
                    ),
                ));
            }
        }
    }
    Ok((kind, docker))
}

/// The docker relay's settings: the `docker` section, or the deprecated top-level
/// `dockerhost` and `api-version` when it is absent, with the original's deprecation notices.
fn docker_settings(
    raw: &RawConfig,
    has_deprecated: bool,
    notices: &mut Vec<Notice>,
) -> Result<DockerSettings, Failure> {
    let mut docker = DockerSettings::default();
    match &raw.docker {
        None => {
            if !has_deprecated {
                notices.push(Notice::warn(
                    "not specifying the 'docker' config item is deprecated",
                ));
            }
            for (key, value) in [
                ("dockerhost", &raw.dockerhost),
                ("api-version", &raw.api_version),
            ] {
                if !value.is_empty() {
                    notices.push(Notice::warn(format!(
                    "the top-level '{key}' setting is deprecated, use 'docker' config item instead"
                )));
                }
            }
            docker.dockerhost = raw.dockerhost.clone();
            docker.api_version = raw.api_version.clone();
        }
        Some(section) => {
            for (key, value) in [
                ("dockerhost", &raw.dockerhost),
                ("api-version", &raw.api_version),
            ] {
                if !value.is_empty() {
                    notices.push(Notice::warn(format!(
                    "discarding deprecated top-level '{key}' setting and using 'docker' config item instead"
                )));
                }
            }
            docker.dockerhost = section.dockerhost.clone();
            docker.api_version = section.api_version.clone();
            let line = Some(section.line);
            if let Some(n) = section.ping_attempts {
                docker.ping_attempts = in_range(line, "docker.ping-attempts", n, 100)? as u32;
            }
            if let Some(d) = timeout(line, "docker.ping-interval", section.ping_interval)? {
                docker.ping_interval = d;
            }
            if let Some(d) = timeout(line, "docker.timeout", section.timeout)? {
                docker.timeout = d;
            }
        }
    }
    Ok(docker)
}

/// Step 3: the global lister settings; never an error.
fn lister(raw: &RawConfig, notices: &mut Vec<Notice>) -> ListerSettings {
    let mut settings = ListerSettings::default();
    if raw.lister.max_items < 0 {
        notices.push(Notice::warn(
            "lister items set to unlimited, may cause excessive network traffic",
        ));
        settings.max_items = None;
    } else if raw.lister.max_items > 0 {
        settings.max_items = usize::try_from(raw.lister.max_items).ok();
    }
    if let Some(value) = raw.lister.cache_duration {
        if value.nanos() < 0 {
            notices.push(Notice::warn(
                "lister cache turned off, may cause excessive network traffic and/or rate limits",
            ));
            settings.cache_duration = None;
        } else if let Some(d) = value.positive() {
            settings.cache_duration = Some(d);
        }
    }
    settings
}

/// The `skopeo:` section with our extensions' bounds.
fn skopeo(raw: &RawConfig) -> Result<SkopeoSettings, Failure> {
    let mut settings = SkopeoSettings::default();
    let Some(section) = &raw.skopeo else {
        return Ok(settings);
    };
    let line = Some(section.line);
    settings.binary = section.binary.clone();
    settings.certs_dir = section.certs_dir.clone();
    if let Some(d) = timeout(line, "skopeo.timeout", section.timeout)? {
        settings.timeout = d;
    }
    if let Some(n) = section.parallel_images {
        settings.parallel_images = in_range(line, "skopeo.parallel-images", n, 64)? as usize;
    }
    Ok(settings)
}

/// A count that must lie in `1..=max`.
fn in_range(line: Option<usize>, key: &str, value: i64, max: i64) -> Result<i64, Failure> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err((
            line,
            format!("'{key}' must be between 1 and {max}, not {value}"),
        ))
    }
}

/// A time limit: omitted or 0 keeps the default; a limit cannot be turned off.
fn timeout(
    line: Option<usize>,
    key: &str,
    value: Option<super::DurationValue>,
) -> Result<Option<Duration>, Failure> {
    match value {
        None => Ok(None),
        Some(v) if v.nanos() < 0 => Err((
            line,
            format!("'{key}' must be a positive duration such as '10m'; it cannot be turned off"),
        )),
        Some(v) => Ok(v.positive()),
    }
}

fn native(raw: &RawConfig) -> Result<NativeSettings, Failure> {
    let mut settings = NativeSettings::default();
    let line = Some(raw.native.line);
    let positive = |key: &str, value: i64, max: i64| {
        if (1..=max).contains(&value) {
            Ok(value)
        } else {
            Err((
                line,
                format!("'native.{key}' must be between 1 and {max}, not {value}"),
            ))
        }
    };
    if let Some(v) = raw.native.parallel_images {
        settings.parallel_images = positive("parallel-images", v, 256)? as usize;
    }
    if let Some(v) = raw.native.parallel_blobs {
        settings.parallel_blobs = positive("parallel-blobs", v, 256)? as usize;
    }
    if let Some(v) = raw.native.tries {
        settings.tries = positive("tries", v, 20)? as u32;
    }
    let limits = [
        (
            "native.connect-timeout",
            raw.native.connect_timeout,
            &mut settings.connect_timeout,
        ),
        (
            "native.stall-timeout",
            raw.native.stall_timeout,
            &mut settings.stall_timeout,
        ),
        (
            "native.commit-timeout",
            raw.native.commit_timeout,
            &mut settings.commit_timeout,
        ),
    ];
    for (key, value, setting) in limits {
        if let Some(d) = timeout(line, key, value)? {
            *setting = d;
        }
    }
    if let Some((text, line)) = &raw.native.chunk_size {
        settings.chunk_size = Some(parse_chunk_size(text).map_err(|e| {
            (
                Some(*line),
                format!("'native.chunk-size': {e}, such as '8MiB' or '1048576'"),
            )
        })?);
    }
    if let Some((dir, line)) = &raw.native.cache_dir {
        settings.cache_dir = match dir.trim() {
            "" => {
                return Err((
                    Some(*line),
                    "'native.cache-dir' is empty: give a directory, or '-' to turn the cache off"
                        .to_string(),
                ));
            }
            "-" => CacheDir::Off,
            _ => CacheDir::Path(std::path::PathBuf::from(dir)),
        };
    }
    if let Some(include) = raw.native.include_foreign_layers {
        settings.include_foreign_layers = include;
    }
    Ok(settings)
}

/// Our daemon settings: the health endpoint's address and the shutdown grace period.
fn daemon(raw: &RawConfig, notices: &mut Vec<Notice>) -> Result<DaemonSettings, Failure> {
    let mut settings = DaemonSettings::default();
    if let Some((listen, line)) = &raw.daemon.health_listen {
        settings.health_listen = Some(
            super::parse_listen_address(listen)
                .map_err(|e| (Some(*line), format!("'health.listen': {e}")))?,
        );
    }
    if let Some(value) = raw.daemon.shutdown_grace {
        if value.nanos() < 0 {
            notices.push(Notice::warn(
                "shutdown grace period turned off: copies in flight are aborted at once on SIGINT/SIGTERM",
            ));
            settings.shutdown_grace = Duration::ZERO;
        } else if let Some(d) = value.positive() {
            settings.shutdown_grace = d;
        }
    }
    Ok(settings)
}

/// Step 4: one task.
fn task(
    raw: RawTask,
    auth_file: Option<&PathBuf>,
    global: &Supply,
    notices: &mut Vec<Notice>,
) -> Result<Task, Failure> {
    let line = Some(raw.line);
    if raw.name.is_empty() {
        return Err((line, "a task requires a name".into()));
    }
    if raw.interval > 0 && raw.interval < 30 {
        return Err((
            line,
            format!(
                "minimum task interval is 30 seconds: task '{}' has interval {}; use 0 (or no \
                 interval) for a one-off task",
                raw.name, raw.interval
            ),
        ));
    }
    if raw.interval < 0 {
        return Err((
            line,
            format!(
                "task interval needs to be 0 or a positive integer: task '{}' has interval {}",
                raw.name, raw.interval
            ),
        ));
    }
    let name = raw.name;
    let source = location(raw.source, auth_file, notices).map_err(|(l, e)| {
        (
            l.or(line),
            format!("source registry in task '{name}' invalid: {e}"),
        )
    })?;
    let target = location(raw.target, auth_file, notices).map_err(|(l, e)| {
        (
            l.or(line),
            format!("target registry in task '{name}' invalid: {e}"),
        )
    })?;
    let inherited = supply(&raw.supply, global)
        .map_err(|(l, e)| (l.or(line), format!("{e} (task '{name}')")))?;
    let mut mappings = Vec::with_capacity(raw.mappings.len());
    for (index, raw_mapping) in raw.mappings.into_iter().enumerate() {
        let mapping =
            mapping(raw_mapping, &inherited, notices, &name, index).map_err(|(l, e)| {
                (
                    l.or(line),
                    format!("{e} (task '{name}', mapping #{})", index + 1),
                )
            })?;
        mappings.push(mapping);
    }
    if mappings.iter().any(|m| m.rule.is_regex_from()) {
        repo_list_source(&source).map_err(|e| {
            (
                Some(source.line),
                format!("cannot create repo list for task '{name}': {e}"),
            )
        })?;
    }
    let interval = (raw.interval > 0).then(|| Duration::from_secs(raw.interval.unsigned_abs()));
    Ok(Task {
        name,
        interval,
        verbose: raw.verbose,
        source,
        target,
        mappings,
        line: raw.line,
    })
}

/// Step 5: a source or target.
fn location(
    raw: Option<RawLocation>,
    auth_file: Option<&PathBuf>,
    notices: &mut Vec<Notice>,
) -> Result<Location, Failure> {
    let Some(raw) = raw else {
        return Err((None, "location is nil".into()));
    };
    let line = Some(raw.line);
    if raw.registry.is_empty() {
        return Err((line, "registry not set".into()));
    }
    if let Some(layout) = crate::layout::parse_location(&raw.registry) {
        layout.map_err(|e| (line, e))?;
        layout_keys(&raw)?;
    }
    let lister = lister_map(&raw, line)?;
    let auth = auth::decode(&raw.auth).map_err(|e| (line, e))?;
    let credentials_file = match raw.credentials_file.trim() {
        "" => None,
        _ if !matches!(auth, super::Auth::Omitted) => {
            return Err((
                line,
                "both 'auth' and 'credentials-file' are set: keep one of them".into(),
            ));
        }
        path => Some(PathBuf::from(path)),
    };
    let auth_file = match raw.auth_file.trim() {
        "" => auth_file.cloned(),
        path => Some(PathBuf::from(path)),
    };
    // ECR detection and the `account[:region]@` strip for public ECR
    // (docs/configuration.md#source-and-target).
    let layout = crate::layout::parse_location(&raw.registry).is_some();
    let (registry, cloud) = if layout {
        (raw.registry.trim().to_string(), None)
    } else {
        CloudRegistry::detect(&raw.registry)
    };
    // `user:password@host` would carry a secret into every log line and metric label that
    // names the registry; the message shows the value with that part masked.
    // (A layout's path may hold an '@'.)
    if let Some((userinfo, host)) = registry.rsplit_once('@').filter(|_| !layout) {
        let scheme = userinfo.find("://").map_or("", |i| &userinfo[..i + 3]);
        return Err((
            line,
            format!(
                "registry '{scheme}***@{host}' holds user information: a registry is \
                 [scheme://]host[:port][/path]; put credentials in 'auth', \
                 'credentials-file' or a credential file"
            ),
        ));
    }
    let is_ecr = cloud.as_ref().is_some_and(CloudRegistry::is_ecr);
    let auth_refresh = auth_refresh(&raw, &registry, is_ecr, notices)?;
    if let Some(creds) = auth.credentials() {
        notices.push(
            Notice::info("using credentials from config")
                .with("registry", registry.clone())
                .with("username", creds.username().to_string()),
        );
    }
    // `listertype` is an undocumented spelling that applies only without a `lister:` map; its
    // value is checked when the repo list is built (step 7), as in the original.
    let lister = lister.or_else(|| {
        (!raw.listertype.is_empty()).then(|| {
            lister_source(&raw.listertype, String::new())
                .unwrap_or(ListerChoice::Invalid(raw.listertype.clone()))
        })
    });
    Ok(Location {
        registry,
        auth,
        auth_refresh,
        cloud,
        skip_tls_verify: raw.skip_tls_verify,
        lister,
        auth_file,
        credentials_file,
        line: raw.line,
    })
}

/// A side's `lister:` map (`type`, `search`; the last of a repeated key wins), `None` when
/// the key is absent.
fn lister_map(raw: &RawLocation, line: Option<usize>) -> Result<Option<ListerChoice>, Failure> {
    let lister = match &raw.lister {
        Some(pairs) => {
            let get = |key: &str| {
                pairs
                    .iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            let kind = get("type").unwrap_or_default();
            if kind.is_empty() {
                return Err((line, "no lister type set".into()));
            }
            match lister_source(&kind, get("search").unwrap_or_default()) {
                Some(source) => Some(source),
                None => return Err((line, format!("invalid lister type: {kind}"))),
            }
        }
        None => None,
    };
    Ok(lister)
}

/// `auth-refresh`: only for ECR, at least an hour (docs/configuration.md#source-and-target).
fn auth_refresh(
    raw: &RawLocation,
    registry: &str,
    is_ecr: bool,
    notices: &mut Vec<Notice>,
) -> Result<Option<Duration>, Failure> {
    let line = Some(raw.line);
    let auth_refresh = match raw.auth_refresh {
        None => None,
        Some(_) if !is_ecr => {
            return Err((
                line,
                format!(
                    "'{}' wants authentication refresh, but is not an ECR registry",
                    raw.registry
                ),
            ));
        }
        Some(value) => {
            let minimum = Duration::from_secs(3600);
            match value.positive() {
                Some(d) if d >= minimum => Some(d),
                _ => {
                    notices.push(
                        Notice::warn("auth-refresh too short, setting to minimum")
                            .with("registry", registry.to_string()),
                    );
                    Some(minimum)
                }
            }
        }
    };
    Ok(auth_refresh)
}

/// A side that is an OCI image layout (`registry: oci:<dir>`) has no network and no
/// credentials: every key about those is an error naming it (docs/configuration.md#oci-image-layouts).
fn layout_keys(raw: &RawLocation) -> Result<(), Failure> {
    let set = [
        ("auth", !raw.auth.is_empty()),
        ("auth-refresh", raw.auth_refresh.is_some()),
        ("skip-tls-verify", raw.skip_tls_verify),
        ("lister", raw.lister.is_some()),
        ("listertype", !raw.listertype.is_empty()),
        ("auth-file", !raw.auth_file.trim().is_empty()),
        ("credentials-file", !raw.credentials_file.trim().is_empty()),
    ];
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((key, _)) => Err((
            Some(raw.line),
            format!(
                "'{key}' does not apply to an OCI image layout ('{}'): remove it",
                raw.registry.trim()
            ),
        )),
        None => Ok(()),
    }
}

fn lister_source(kind: &str, search: String) -> Option<ListerChoice> {
    match kind {
        "catalog" => Some(ListerChoice::Catalog),
        "dockerhub" => Some(ListerChoice::DockerHub),
        "index" => Some(ListerChoice::Index { search }),
        _ => None,
    }
}

/// The supply-chain settings in force at one level, after inheritance (our extension:
/// docs/configuration.md#referrers, #min-age, #verify).
#[derive(Debug, Clone, Default)]
struct Supply {
    referrers: bool,
    min_age: Option<Duration>,
    verify: Option<Verify>,
}

/// The settings of one level: what it sets, else what it inherits from `above`. A key file is
/// read and checked here, so a wrong one stops the config at load.
fn supply(raw: &RawSupply, above: &Supply) -> Result<Supply, Failure> {
    let mut out = above.clone();
    if let Some((on, _)) = raw.referrers {
        out.referrers = on;
    }
    if let Some((value, line)) = raw.min_age {
        if value.nanos() < 0 {
            return Err((
                Some(line),
                "'min-age' must not be negative: write a minimum age such as '72h', or 0 for none"
                    .into(),
            ));
        }
        out.min_age = value.positive();
    }
    if let Some(verify) = &raw.verify {
        let line = Some(verify.line);
        let path = verify.cosign_key.trim();
        if path.is_empty() {
            return Err((
                line,
                "'verify' needs 'cosign-key': the path of a cosign public key (keyless \
                 verification with Fulcio and Rekor is not supported)"
                    .into(),
            ));
        }
        let key_file = PathBuf::from(path);
        let key = crate::cosign::PublicKey::load(&key_file)
            .map_err(|e| (line, format!("'verify.cosign-key': {e}")))?;
        out.verify = Some(Verify { key_file, key });
    }
    Ok(out)
}

/// Step 6: one mapping.
fn mapping(
    raw: Option<RawMapping>,
    inherited: &Supply,
    notices: &mut Vec<Notice>,
    task: &str,
    index: usize,
) -> Result<Mapping, Failure> {
    let Some(raw) = raw else {
        return Err((None, "mapping is nil".into()));
    };
    let line = Some(raw.line);
    let rule = MappingRule::parse(&raw.from, &raw.to).map_err(|e| (line, e))?;
    // Every bad entry at once, each with its line; the error points at the `tags` key.
    let tags = TagSet::parse_entries(&raw.tags).map_err(|errors| {
        (
            raw.tags_line.or(line),
            format!(
                "'tags' uses invalid format: {}",
                describe_errors(&errors, Some(&raw.tag_lines))
            ),
        )
    })?;
    for warning in tags.warnings() {
        let at = raw
            .tag_lines
            .get(warning.index)
            .map(|l| format!(", line {l}"))
            .unwrap_or_default();
        notices.push(Notice::warn(format!(
            "{} (task '{task}', mapping #{}{at})",
            warning.message,
            index + 1
        )));
    }
    let platform = match &raw.platform {
        RawPlatform::One(value) => PlatformChoice::parse(value),
        RawPlatform::List(values) => PlatformChoice::parse_list(values),
    }
    .map_err(|e| (line, e))?;
    let supply = supply(&raw.supply, inherited)?;
    Ok(Mapping {
        rule,
        tag_entries: raw.tags,
        tags,
        platform,
        referrers: supply.referrers,
        min_age: supply.min_age,
        verify: supply.verify,
        line: raw.line,
    })
}

/// Step 7: the checks of the original's repo list creation, for tasks with a regex `from`.
fn repo_list_source(source: &Location) -> Result<(), String> {
    // A layout lists its own repositories (its layout directories and reference names).
    if source.layout().is_some() {
        return Ok(());
    }
    let host = source.registry.split('/').next().unwrap_or_default();
    let docker_hub = RegistryHost::parse(host).is_ok_and(|h| h.is_docker_hub());
    match &source.lister {
        None | Some(ListerChoice::Catalog) if docker_hub => {
            Err("DockerHub only supports list types 'dockerhub' and 'index'".into())
        }
        Some(ListerChoice::Index { search }) if search.is_empty() => {
            Err("index lister requires a search expression".into())
        }
        Some(ListerChoice::Invalid(kind)) => Err(format!("invalid list source type '{kind}'")),
        _ => Ok(()),
    }
}
