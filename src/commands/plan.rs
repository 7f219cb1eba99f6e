//! `dregsy plan -config=x.yaml [-run=…] [-shard=…] [--json]`: what a sync would do, copying
//! nothing.
//!
//! For every selected task and mapping it lists and matches the source repositories (regex
//! `from`), expands the tag filters, and asks both registries with HEAD requests whether each
//! image is already up to date, exactly as the relay decides it before copying. It prints the
//! repositories matched, each tag selected with its target reference and whether a sync would
//! copy it, and each tag dropped with the entry that dropped it. With `referrers: true`, each
//! image also shows what would travel with it: the referrers and legacy cosign tags the source
//! holds for it (docs/behaviour.md#referrers). Periodic tasks are planned
//! once, like one-off ones. When sharded (`-shard`, or the environment as for a sync), each
//! target repository shows its owning shard, and a shard's view shows only its share
//! (docs/behaviour.md#sharding).
//!
//! Exit code 0 when everything could be planned and checked, 1 for a config or usage error or
//! when any mapping, repository or check failed (each is printed with its reason).

use std::io::Write;

use futures_util::StreamExt;

use crate::clients::{Clients, ProcessEnvironment};
use crate::commands::flags::{Arg, ArgsError, Flags};
use crate::config::{self, Config, Task};
use crate::listers::Listers;
use crate::plan::{ImageJob, MappingPlan, RepositoryPlan};
use crate::relay;
use crate::relay::manifest_cache::ManifestCache;
use crate::relay::native::Travelling;
use crate::shard::{self, Shard};
use crate::store::ImageStore;

mod render;

const USAGE: &str = "\
usage: dregsy plan -config=FILE [-run=REGEX] [-shard=INDEX/COUNT|all/COUNT] [--json]

Shows what a sync with FILE would do, without copying anything: per task and mapping, the
source repositories matched, the tags selected and their target references, the tags dropped
and by which filter, and which images are already up to date on the target.

  -config FILE   the config file
  -run REGEX     only tasks whose whole name matches ('!' inverts), as for a sync
  -shard I/N     only the target repositories shard I of N copies, each with its shard;
                 all/N shows every repository with its owning shard (default: from
                 JOB_COMPLETION_INDEX or HOSTNAME with DREGSY_SHARDS, as for a sync)
  --json         print one JSON document instead of text
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The `-config` path (required).
    pub config: String,
    /// The `-run` task filter; empty selects every task.
    pub run: String,
    /// `-shard` as written (empty: from the environment).
    pub shard: String,
    /// `--json`: print the plan as JSON instead of text.
    pub json: bool,
}

/// Which shards the plan shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardView {
    /// How many shards share the target repositories (1: no sharding).
    pub count: u32,
    /// The shard whose share is shown; `None` shows every repository with its owner.
    pub only: Option<u32>,
}

impl ShardView {
    /// From `-shard` (`INDEX/COUNT`, `all/COUNT`, or empty) and the environment, with the
    /// precedence a sync uses ([`Shard::from_sources`]).
    ///
    /// # Errors
    /// The messages of [`Shard::from_sources`], naming the flag or variable.
    pub fn resolve(flag: &str, env: impl Fn(&str) -> Option<String>) -> Result<ShardView, String> {
        if let Some(count) = flag.trim().strip_prefix("all/") {
            // `all/N` is `0/N` for validation, then shows every shard.
            let shard = Shard::parse(&format!("0/{count}")).map_err(|e| format!("-shard: {e}"))?;
            return Ok(ShardView {
                count: shard.count(),
                only: None,
            });
        }
        let shard = Shard::from_sources(flag, env)?;
        Ok(ShardView {
            count: shard.count(),
            only: Some(shard.index()),
        })
    }

    fn sharded(&self) -> bool {
        self.count > 1
    }
}

/// The flags [`parse`] knows, for the "did you mean" of an undefined one.
const FLAGS: [&str; 6] = ["h", "help", "json", "config", "run", "shard"];

/// Parses Go-style `-config=x` / `-config x` / `--config=x`, `-run`, `--json`, `-h`.
/// `None` asks for help.
///
/// # Errors
///
/// A flag that is not defined, or one missing its value; `-config` not given.
pub fn parse(args: &[String]) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        config: String::new(),
        run: String::new(),
        shard: String::new(),
        json: false,
    };
    let mut flags = Flags::new(args);
    while let Some(arg) = flags.next_arg() {
        let (name, inline) = match arg {
            Arg::Flag { name, inline } => (name, inline),
            Arg::Positional(other) => return Err(format!("unexpected argument '{other}'")),
        };
        match name {
            "h" | "help" => return Ok(None),
            "json" if inline.is_none() => parsed.json = true,
            "config" => parsed.config = flags.value(name, inline).map_err(|e| e.to_string())?,
            "run" => parsed.run = flags.value(name, inline).map_err(|e| e.to_string())?,
            "shard" => parsed.shard = flags.value(name, inline).map_err(|e| e.to_string())?,
            _ => return Err(ArgsError::undefined(name, &FLAGS).to_string()),
        }
    }
    // Words after `--` are arguments too, not something to ignore.
    if let Some((_, word)) = flags.first_after_end() {
        return Err(format!("unexpected argument '{word}'"));
    }
    if parsed.config.is_empty() {
        return Err("missing -config=FILE".into());
    }
    Ok(Some(parsed))
}

/// Runs the command; returns the exit code.
pub fn main(args: &[String]) -> u8 {
    let args = match crate::commands::flags::parsed_or_exit(parse(args), USAGE) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let config = match config::load(std::path::Path::new(&args.config)) {
        Ok((config, notices)) => {
            crate::logging::log_notices(&notices);
            config
        }
        Err(e) => {
            crate::logging::log_notices(&e.notices);
            eprintln!("{e}");
            return 1;
        }
    };
    // What the sync would refuse before any task runs, the plan refuses too.
    if let Err(e) = relay::check_features(&config) {
        eprintln!("{e}");
        return 1;
    }
    let shards = match ShardView::resolve(&args.shard, |name| std::env::var(name).ok()) {
        Ok(shards) => shards,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let filter = match crate::commands::flags::compile_filter(&args.run) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    let tasks = match crate::commands::flags::select_tasks(&config, &args.run, &filter) {
        Ok(tasks) => tasks,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let environment = ProcessEnvironment::from_process();
    let report = runtime.block_on(plan_tasks(&config, &tasks, shards, &environment));
    let output = if args.json {
        format!("{}\n", report.to_json())
    } else {
        report.to_text()
    };
    let _ = std::io::stdout().lock().write_all(output.as_bytes());
    if report.failures() > 0 { 1 } else { 0 }
}

/// The plan of a whole config.
#[derive(Debug)]
pub struct Report {
    /// The selected tasks, in config order.
    pub tasks: Vec<TaskPlan>,
    /// Which shard owns each target repository (`-shard`, or none).
    pub shards: ShardView,
}

/// One task's plan.
#[derive(Debug)]
pub struct TaskPlan {
    /// The task's `name`.
    pub name: String,
    /// The source registry as written.
    pub source: String,
    /// The target registry as written.
    pub target: String,
    /// Where each side's credentials come from ([`crate::credentials::Source`]), or why
    /// they could not be looked up.
    pub source_credentials: Result<String, String>,
    /// As `source_credentials`, for the target.
    pub target_credentials: Result<String, String>,
    /// The task's mappings, in config order.
    pub mappings: Vec<MappingResult>,
}

/// One mapping's plan, or why it has none.
#[derive(Debug)]
pub struct MappingResult {
    /// The mapping's `from`, normalised.
    pub from: String,
    /// The mapping's `to`, normalised.
    pub to: String,
    /// The mapping's `referrers`: referrers travel with its images.
    pub referrers: bool,
    /// The plan with the check of each job (one list per repository, in job order), or why the
    /// mapping could not be planned.
    pub outcome: Result<(MappingPlan, Vec<Vec<Checked>>), String>,
    /// The planner's warnings for a mapping that failed after it was planned (it selected no
    /// image): they say why (a repository list cut at `maxItems`, say).
    pub warnings: Vec<String>,
    /// Repositories left out because another shard owns them.
    pub other_shards: usize,
}

/// What the checks of one image job found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// What a sync would do with the image.
    pub status: Status,
    /// With `referrers: true`: what would travel with it (when its referrers cannot be read,
    /// `status` is the failure, as the sync would fail the image).
    pub referrers: Option<Travelling>,
}

/// What a sync would do with one image job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The target already holds the source's digest.
    UpToDate,
    /// A sync would copy the image.
    Copy,
    /// Would be left out on purpose (`min-age`): the reason, e.g. "too young, 3 h left".
    Skip(String),
    /// The check failed (source image missing, registry unreachable…).
    Failed(String),
}

impl Status {
    fn word(&self) -> &'static str {
        match self {
            Status::UpToDate => "up to date",
            Status::Copy => "copy",
            Status::Skip(_) => "skip",
            Status::Failed(_) => "failed",
        }
    }
}

/// How many up-to-date checks run at once per mapping.
const PARALLEL_CHECKS: usize = 8;

/// Plans every task, mapping by mapping; with a shard's view, only its repositories are
/// checked and shown. Credentials and cloud APIs are found through `environment`.
pub async fn plan_tasks(
    config: &Config,
    tasks: &[&Task],
    shards: ShardView,
    environment: &ProcessEnvironment,
) -> Report {
    let clients = Clients::new(config, environment);
    let listers = Listers::new(config.lister);
    // The sync's own cache: what a plan learns about indexes, a sync need not ask again.
    let manifests = ManifestCache::open(&config.native.cache_dir);
    let mut report = Report {
        tasks: Vec::new(),
        shards,
    };
    for task in tasks {
        let mut task_plan = TaskPlan {
            name: task.name.clone(),
            source: task.source.registry.clone(),
            target: task.target.registry.clone(),
            source_credentials: credential_source(&clients, &task.source).await,
            target_credentials: credential_source(&clients, &task.target).await,
            mappings: Vec::new(),
        };
        for mapping in &task.mappings {
            let mut warnings = Vec::new();
            let mut other_shards = 0;
            let outcome =
                match crate::sync::plan_task_mapping(task, mapping, &clients, &listers).await {
                    Ok((source, target, mut plan)) => {
                        // Judged on the whole plan: a shard that owns none of the mapping's
                        // repositories is not a mapping that selected nothing.
                        match crate::sync::empty_selection(task, mapping, &plan) {
                            Some(reason) => {
                                warnings = plan.warnings;
                                Err(reason)
                            }
                            None => {
                                if let Some(only) = shards.only {
                                    let planned = plan.repositories.len();
                                    plan.repositories.retain(|r| {
                                        shard::owner(r.target_name(), shards.count) == only
                                    });
                                    other_shards = planned - plan.repositories.len();
                                }
                                let statuses =
                                    check_all(config, &plan, &source, &target, &manifests).await;
                                Ok((plan, statuses))
                            }
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
            task_plan.mappings.push(MappingResult {
                from: mapping.rule.from().to_string(),
                to: mapping.rule.to().to_string(),
                referrers: mapping.referrers,
                outcome,
                warnings,
                other_shards,
            });
        }
        report.tasks.push(task_plan);
    }
    report
}

/// Where a side's credentials come from, for display; a directory of OCI image layouts has
/// none (docs/configuration.md#oci-image-layouts).
async fn credential_source(
    clients: &Clients,
    location: &crate::config::Location,
) -> Result<String, String> {
    if location.layout().is_some() {
        return Ok("none (a directory of OCI image layouts)".to_string());
    }
    let resolution = clients.resolve(location).await.map_err(|e| e.to_string())?;
    Ok(resolution.source.to_string())
}

/// The checks of every job, repository by repository.
async fn check_all(
    config: &Config,
    plan: &MappingPlan,
    source: &ImageStore,
    target: &ImageStore,
    manifests: &ManifestCache,
) -> Vec<Vec<Checked>> {
    let mut all = Vec::with_capacity(plan.repositories.len());
    for repo in &plan.repositories {
        let tags = &referrer_tags(repo, source).await;
        let checked = futures_util::stream::iter(repo.jobs.iter())
            .map(|job: &ImageJob| async move {
                let status = status_of(config, job, source, target, manifests).await;
                let referrers = match tags {
                    Some(Ok(tags)) => relay::referrers_to_travel(job, source, manifests, tags)
                        .await
                        .map(Some)
                        .map_err(|e| e.to_string()),
                    Some(Err(e)) => Err(e.clone()),
                    None => Ok(None),
                };
                match referrers {
                    // The sync fails an image whose referrers cannot be read.
                    Err(e) if !matches!(status, Status::Failed(_)) => Checked {
                        status: Status::Failed(format!("referrers: {e}")),
                        referrers: None,
                    },
                    Err(_) => Checked {
                        status,
                        referrers: None,
                    },
                    Ok(referrers) => Checked { status, referrers },
                }
            })
            .buffered(PARALLEL_CHECKS)
            .collect()
            .await;
        all.push(checked);
    }
    all
}

/// The source repository's tags for `referrers: true` (legacy and fallback tags): the
/// planner's list, else one listing as the sync makes; `None` when referrers do not travel.
async fn referrer_tags(
    repo: &RepositoryPlan,
    source: &ImageStore,
) -> Option<Result<std::sync::Arc<std::collections::HashSet<String>>, String>> {
    let job = repo.jobs.iter().find(|j| j.referrers)?;
    if let Some(listed) = &job.listed_tags {
        return Some(Ok(listed.set().clone()));
    }
    Some(
        source
            .list_tags(&job.source.repository)
            .await
            .map(|tags| std::sync::Arc::new(tags.into_iter().collect()))
            .map_err(|e| format!("cannot list the tags for referrers: {e}")),
    )
}

/// What a sync would do with `job`'s image.
async fn status_of(
    config: &Config,
    job: &ImageJob,
    source: &ImageStore,
    target: &ImageStore,
    manifests: &ManifestCache,
) -> Status {
    match relay::up_to_date(config.relay, job, source, target, manifests).await {
        Ok(true) => Status::UpToDate,
        Ok(false) => match relay::skip_reason(job, source, manifests).await {
            Ok(None) => match relay::verify_refusal(job, source, manifests).await {
                // As the copy would find when it writes.
                Ok(None) => match target.writable() {
                    Ok(()) => Status::Copy,
                    Err(e) => Status::Failed(e.to_string()),
                },
                Ok(Some(refusal)) => Status::Failed(refusal),
                Err(e) => Status::Failed(e.to_string()),
            },
            Ok(Some(reason)) => Status::Skip(reason),
            Err(e) => Status::Failed(e.to_string()),
        },
        Err(e) => Status::Failed(e.to_string()),
    }
}

/// Counts across the whole plan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Images a sync would copy.
    pub copy: usize,
    /// Images already up to date.
    pub up_to_date: usize,
    /// Left out on purpose (`min-age`).
    pub skipped: usize,
    /// Failed repositories, invalid tags and failed checks.
    pub failed: usize,
    /// Tags the filters dropped.
    pub dropped: usize,
}

impl Report {
    /// Failed mappings, repositories, invalid tags and checks.
    pub fn failures(&self) -> usize {
        let totals = self.totals();
        let mappings = self.mappings().filter(|m| m.outcome.is_err()).count();
        totals.failed + mappings
    }

    fn mappings(&self) -> impl Iterator<Item = &MappingResult> {
        self.tasks.iter().flat_map(|t| t.mappings.iter())
    }

    /// The repositories shown, across all mappings.
    fn repositories(&self) -> usize {
        self.mappings()
            .filter_map(|m| m.outcome.as_ref().ok())
            .map(|(plan, _)| plan.repositories.len())
            .sum()
    }

    /// The counts across every mapping of every task.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for mapping in self.mappings() {
            let Ok((plan, statuses)) = &mapping.outcome else {
                continue;
            };
            for (repo, statuses) in plan.repositories.iter().zip(statuses) {
                totals.failed += usize::from(repo.error.is_some()) + repo.invalid.len();
                totals.dropped += repo.dropped.len();
                for checked in statuses {
                    match checked.status {
                        Status::UpToDate => totals.up_to_date += 1,
                        Status::Copy => totals.copy += 1,
                        Status::Skip(_) => totals.skipped += 1,
                        Status::Failed(_) => totals.failed += 1,
                    }
                }
            }
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::commands::flags::strings;

    #[test]
    fn argument_forms() {
        let want = Args {
            config: "x.yaml".into(),
            run: "a|b".into(),
            shard: "1/3".into(),
            json: true,
        };
        for form in [
            strings(&["-config=x.yaml", "-run=a|b", "-shard=1/3", "--json"]),
            strings(&[
                "--config", "x.yaml", "--run", "a|b", "-shard", "1/3", "-json",
            ]),
        ] {
            assert_eq!(parse(&form), Ok(Some(want.clone())), "{form:?}");
        }
        assert_eq!(parse(&strings(&["--help"])), Ok(None));
        assert!(parse(&strings(&["--json"])).is_err(), "config is required");
        assert!(parse(&strings(&["-config"])).is_err());
        assert!(parse(&strings(&["-config=x", "-bogus"])).is_err());
        assert_eq!(
            parse(&strings(&["-config=x", "--", "extra"])),
            Err("unexpected argument 'extra'".to_string())
        );
    }

    #[test]
    fn shard_views() {
        let no_env = |_: &str| None;
        assert_eq!(
            ShardView::resolve("", no_env),
            Ok(ShardView {
                count: 1,
                only: Some(0)
            })
        );
        assert_eq!(
            ShardView::resolve("all/3", no_env),
            Ok(ShardView {
                count: 3,
                only: None
            })
        );
        assert_eq!(
            ShardView::resolve("2/3", no_env),
            Ok(ShardView {
                count: 3,
                only: Some(2)
            })
        );
        for bad in ["3/3", "all/0", "all/x", "x/2"] {
            let error = ShardView::resolve(bad, no_env).expect_err(bad);
            assert!(error.starts_with("-shard: "), "{bad}: {error}");
        }
    }
}
