//! Validation in the original's order, with its error texts (docs/configuration.md), plus our
//! decisions on durations, the default relay, `auth` and `platform` (docs/compatibility.md).
//!
//! The first error wins, as in the original. Errors carry the line of the task, location or
//! mapping they are about, so the user finds the spot.
//!
//! This file holds the order, the tasks and their mappings; [`settings`] the top-level
//! sections, [`side`] a task's source and target (where the `registry` value is parsed, once),
//! [`supply`] the supply-chain settings each level inherits.

mod settings;
mod side;
mod supply;

use std::path::PathBuf;
use std::time::Duration;

use super::notice::Notice;
use super::raw::{RawConfig, RawMapping, RawPlatform, RawTask};
use super::{Config, Mapping, PlatformChoice, RelayKind, Task};
use crate::plan::mapping::MappingRule;
use crate::plan::tags::{TagSet, describe_errors};
use supply::{Supply, supply};

/// A validation error: the line it is about, when known, and the message.
type Failure = (Option<usize>, String);

/// Validates decoded values into a [`Config`], pushing the notices the original would log.
pub fn validate(raw: RawConfig, notices: &mut Vec<Notice>) -> Result<Config, Failure> {
    // The original's note about `watch` comes first; it is only worth saying when a task is
    // periodic, since `watch` does nothing for one-off tasks (docs/behaviour.md#logging).
    let watch_note_at = notices.len();
    let watch = raw.watch.unwrap_or(false);
    let (relay, docker) = settings::relay(&raw, notices)?;
    let lister = settings::lister(&raw, notices);
    let native = settings::native(&raw)?;
    let daemon = settings::daemon(&raw, notices)?;
    let skopeo = settings::skopeo(&raw)?;
    let credential_helper_timeout = match raw.credential_helper_timeout {
        None => super::DEFAULT_CREDENTIAL_HELPER_TIMEOUT,
        Some((value, line)) => {
            settings::timeout(Some(line), "credential-helper-timeout", Some(value))?
                .unwrap_or(super::DEFAULT_CREDENTIAL_HELPER_TIMEOUT)
        }
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
    let source = side::location(raw.source, auth_file, notices).map_err(|(l, e)| {
        (
            l.or(line),
            format!("source registry in task '{name}' invalid: {e}"),
        )
    })?;
    let target = side::location(raw.target, auth_file, notices).map_err(|(l, e)| {
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
    if mappings.is_empty() {
        return Err(no_mappings(&name, raw.line, raw.misspelt_mappings));
    }
    if mappings.iter().any(|m| m.rule.is_regex_from()) {
        side::repo_list_source(&source).map_err(|e| {
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

/// A task without mappings would sync nothing although it names a source and a target: the
/// original ran it and reported success; doing nothing must not pass for success
/// (docs/compatibility.md), so it is an error pointing at a misspelt `mappings` key if there
/// is one, else at the task.
fn no_mappings(task: &str, line: usize, misspelt: Option<(String, usize)>) -> Failure {
    match misspelt {
        Some((key, key_line)) => (
            Some(key_line),
            format!(
                "task '{task}' (line {line}) has no mappings, so it would sync nothing: the \
                 unknown key '{key}' looks like a misspelt 'mappings'; rename it to 'mappings'"
            ),
        ),
        None => (
            Some(line),
            format!(
                "task '{task}' has no mappings, so it would sync nothing: add a 'mappings:' \
                 list (e.g. 'mappings: [{{from: library/busybox}}]') or remove the task"
            ),
        ),
    }
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
