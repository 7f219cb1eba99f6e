//! The top-level settings sections (`relay`, `docker`, `lister`, `skopeo`, `native`, `health`,
//! `shutdown-grace`) in the original's order, with its error texts and our extensions' bounds
//! (docs/configuration.md#top-level).

use std::time::Duration;

use super::Failure;
use crate::config::notice::Notice;
use crate::config::raw::RawConfig;
use crate::config::size::parse_chunk_size;
use crate::config::{
    CacheDir, DaemonSettings, DockerSettings, DurationValue, ListerSettings, NativeSettings,
    RelayKind, SkopeoSettings,
};

/// Step 2: the relay, with our default (docs/configuration.md#top-level).
pub(super) fn relay(
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
    for (key, value) in [
        ("dockerhost", &raw.dockerhost),
        ("api-version", &raw.api_version),
    ] {
        if !value.is_empty() {
            notices.push(Notice::warn(match raw.docker {
                None => format!(
                    "the top-level '{key}' setting is deprecated, use 'docker' config item instead"
                ),
                Some(_) => format!(
                    "discarding deprecated top-level '{key}' setting and using 'docker' config item instead"
                ),
            }));
        }
    }
    match &raw.docker {
        None => {
            if !has_deprecated {
                notices.push(Notice::warn(
                    "not specifying the 'docker' config item is deprecated",
                ));
            }
            docker.dockerhost = raw.dockerhost.clone();
            docker.api_version = raw.api_version.clone();
        }
        Some(section) => {
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
pub(super) fn lister(raw: &RawConfig, notices: &mut Vec<Notice>) -> ListerSettings {
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
pub(super) fn skopeo(raw: &RawConfig) -> Result<SkopeoSettings, Failure> {
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
pub(super) fn timeout(
    line: Option<usize>,
    key: &str,
    value: Option<DurationValue>,
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

/// The `native:` section: the native relay's concurrency, tries, time limits, chunk size,
/// cache directory and foreign layers (docs/configuration.md#the-native-engine-native).
pub(super) fn native(raw: &RawConfig) -> Result<NativeSettings, Failure> {
    let mut settings = NativeSettings::default();
    let line = Some(raw.native.line);
    if let Some(v) = raw.native.parallel_images {
        settings.parallel_images = in_range(line, "native.parallel-images", v, 256)? as usize;
    }
    if let Some(v) = raw.native.parallel_blobs {
        settings.parallel_blobs = in_range(line, "native.parallel-blobs", v, 256)? as usize;
    }
    if let Some(v) = raw.native.tries {
        settings.tries = in_range(line, "native.tries", v, 20)? as u32;
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
pub(super) fn daemon(
    raw: &RawConfig,
    notices: &mut Vec<Notice>,
) -> Result<DaemonSettings, Failure> {
    let mut settings = DaemonSettings::default();
    if let Some((listen, line)) = &raw.daemon.health_listen {
        settings.health_listen = Some(
            crate::config::parse_listen_address(listen)
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
