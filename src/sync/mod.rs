//! Runs one task once: every mapping is planned and its images copied by the relay.
//!
//! One failure never aborts a task or the run: it is logged with the task, mapping and image,
//! the task is marked failed, and work goes on; the exit code says so at the end.
//!
//! This file runs the task's mappings and sums up; `planning` plans a mapping through the
//! run's clients and listers, `mapping` runs one planned mapping, `image` one image job and
//! its log line.

mod image;
mod mapping;
mod planning;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::clients::Clients;
use crate::config::{Location, Mapping, Task};
use crate::failure::{Failure, FailureKind};
use crate::listers::Listers;
use crate::progress::TaskProgress;
use crate::relay::Relay;
use crate::report::{ImageReport, TaskReport, human_bytes};
use crate::shard::Shard;
use crate::stop::Stop;

pub use image::{Travelled, copied_message};
pub use planning::{ListedRepositories, StoreTags, empty_selection, plan_task_mapping, store};

/// One run of one task: every mapping, every image; never stops at the first failure.
///
/// Once `stop` is requested, no new mapping or image job starts and jobs waiting for a slot give
/// up; jobs in flight go on until the stop aborts them; the report says the run was interrupted.
///
/// Every mapping is planned whole, but only the repositories `shard` owns are copied; the
/// others are left to their shards, neither copied nor reported (docs/behaviour.md#sharding).
pub async fn run_task(
    task: &Task,
    relay: &Relay,
    clients: &Clients,
    listers: &Listers,
    shard: Shard,
    stop: &Stop,
) -> TaskReport {
    let started = Instant::now();
    tracing::info!(
        task = %task.name,
        source = %task.source.registry,
        target = %task.target.registry,
        "syncing task"
    );
    // A registry whose rate limit ran out in an earlier run is asked again once its wait
    // has passed.
    clients.rate_limits().start_run();
    let mut report = TaskReport::new(&task.name);
    let progress = &TaskProgress::start(&task.name, task.mappings.len());
    report.started = SystemTime::now();
    // Mappings are planned and copied concurrently. Two bounds hold across all of them, so
    // many small mappings cost no more than one big one: the check slots bound image jobs in
    // flight (mostly up-to-date checks), the copy slots bound the copies among them.
    let check_slots = Semaphore::new(relay.parallel_checks());
    let copy_slots = Semaphore::new(relay.parallel_images());
    let slots = JobLimits {
        check: &check_slots,
        copy: &copy_slots,
    };
    let share = &Share {
        shard,
        ours: AtomicUsize::new(0),
        total: AtomicUsize::new(0),
    };
    let run = TaskRun {
        relay,
        clients,
        listers,
        share,
        slots,
        progress,
        stop,
    };
    let outcomes = run_mappings(task, run).await;
    for outcome in outcomes {
        match outcome {
            Ok(mapping) => {
                report.images.extend(mapping.images);
                report.repository_failures += mapping.repository_failures.len();
                report.failure_kinds.extend(mapping.repository_failures);
            }
            Err(kind) => {
                report.mapping_failures += 1;
                report.failure_kinds.push(kind);
            }
        }
    }
    report.finished = SystemTime::now();
    report.interrupted = stop.is_requested();
    log_task_end(task, &report, clients, share, started);
    report
}

/// Runs every mapping of `task`, as many at once as image jobs may be in flight; a mapping
/// that fails as a whole is logged here and comes back as its failure's kind.
async fn run_mappings(task: &Task, run: TaskRun<'_>) -> Vec<Result<MappingOutcome, FailureKind>> {
    let TaskRun {
        relay,
        progress,
        stop,
        ..
    } = run;
    futures_util::stream::iter(task.mappings.iter().enumerate())
        .map(|(index, mapping)| async move {
            if stop.is_requested() {
                return Ok(MappingOutcome::default());
            }
            tracing::info!(from = %mapping.rule.from(), to = %mapping.rule.to(), "mapping");
            mapping::run_mapping(task, mapping, run)
                .await
                .map_err(|failure| mapping_failed(task, index, mapping, progress, &failure))
        })
        .buffered(relay.parallel_checks())
        .collect()
        .await
}

/// Logs a mapping that failed as a whole; its kind is what the report counts.
fn mapping_failed(
    task: &Task,
    index: usize,
    mapping: &Mapping,
    progress: &TaskProgress,
    failure: &Failure,
) -> FailureKind {
    progress.mapping_failed();
    tracing::error!(
        task = %task.name,
        mapping = index + 1,
        from = %mapping.rule.from(),
        "mapping failed: {failure}"
    );
    failure.kind()
}

/// The lines that end a task's run: the shard's share, the registries whose rate limit ran
/// out, the request budgets left, and the `task done` line with the counts.
fn log_task_end(
    task: &Task,
    report: &TaskReport,
    clients: &Clients,
    share: &Share,
    started: Instant,
) {
    if share.shard.is_sharded() {
        tracing::info!(
            task = %task.name,
            shard = %share.shard,
            "shard {}: {} of {} repositories are ours",
            share.shard,
            share.ours.load(Ordering::Relaxed),
            share.total.load(Ordering::Relaxed),
        );
    }
    for (registry, left, first_reason) in report.not_attempted_by_registry() {
        let reason = clients
            .rate_limits()
            .exhaustion_reason(&registry)
            .unwrap_or(first_reason);
        tracing::error!(
            task = %task.name,
            registry = %registry,
            images = left,
            "rate limit of {registry} exhausted; {left} images left for the next run ({reason})"
        );
    }
    log_budgets(task, clients);
    let not_attempted = match report.not_attempted() {
        0 => String::new(),
        n => format!(", {n} not attempted (rate limit)"),
    };
    // The summary of a run with failures is a warning, so that `LOG_LEVEL=warn` keeps it with
    // the failures it counts (docs/behaviour.md#logging); the original had no summary line.
    macro_rules! task_done {
        ($level:ident) => {
            tracing::$level!(
                task = %task.name,
                copied = report.copied(),
                up_to_date = report.up_to_date(),
                skipped = report.skipped(),
                failed = report.failures(),
                not_attempted = report.not_attempted(),
                bytes = report.bytes(),
                seconds = started.elapsed().as_secs_f64(),
                "task done: {} copied ({} sent), {} up to date, {} skipped, {}{not_attempted}",
                report.copied(),
                human_bytes(report.bytes()),
                report.up_to_date(),
                report.skipped(),
                describe_failures(report),
            )
        };
    }
    if report.failed() {
        task_done!(warn);
    } else {
        task_done!(info);
    }
}

/// `0 failed`, or what failed: `1 image, 2 repositories and 1 mapping failed`.
fn describe_failures(report: &TaskReport) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if report.failed_images() > 0 {
        parts.push(plural(report.failed_images(), "image", "images"));
    }
    if report.repository_failures > 0 {
        parts.push(plural(
            report.repository_failures,
            "repository",
            "repositories",
        ));
    }
    if report.mapping_failures > 0 {
        parts.push(plural(report.mapping_failures, "mapping", "mappings"));
    }
    match parts.len() {
        0 => "0 failed".to_string(),
        1 => format!("{} failed", parts[0]),
        _ => {
            let last = parts.pop().unwrap_or_default();
            format!("{} and {last} failed", parts.join(", "))
        }
    }
}

/// What one mapping's run produced.
#[derive(Default)]
struct MappingOutcome {
    images: Vec<ImageReport>,
    /// The kind of each repository that could not be planned; each was logged as
    /// `repository failed`.
    repository_failures: Vec<FailureKind>,
}

/// Logs the request budget the task's registries announced (`ratelimit-*` headers), so a
/// run that ends near a limit says so (docs/behaviour.md, "Rate limits").
fn log_budgets(task: &Task, clients: &Clients) {
    let mut hosts: Vec<String> = [&task.source, &task.target]
        .into_iter()
        .filter_map(Location::registry_location)
        .map(|l| l.host.api_host().to_owned())
        .collect();
    hosts.dedup();
    for host in hosts {
        if let Some(budget) = clients.rate_limits().budget(&host) {
            let limit = budget.limit.map(|l| format!(" of {l}")).unwrap_or_default();
            let window = budget
                .window
                .map(|w| format!(" per {} s", w.as_secs()))
                .unwrap_or_default();
            tracing::info!(
                task = %task.name,
                registry = %host,
                remaining = budget.remaining,
                limit = budget.limit,
                window_seconds = budget.window.map(|w| w.as_secs()),
                "rate limit of {host}: {}{limit} requests{window} left",
                budget.remaining
            );
        }
    }
}

/// The task's bounds on image jobs in flight and on copies among them.
#[derive(Clone, Copy)]
struct JobLimits<'a> {
    check: &'a Semaphore,
    copy: &'a Semaphore,
}

/// The task's shard and how many of the planned repositories it owned.
struct Share {
    shard: Shard,
    ours: AtomicUsize,
    total: AtomicUsize,
}

/// What the mappings of one task run share besides the task: the relay, the run's clients and
/// listers, the shard's tally of repositories, the bounds on image jobs, the progress and the
/// stop.
#[derive(Clone, Copy)]
struct TaskRun<'a> {
    relay: &'a Relay,
    clients: &'a Clients,
    listers: &'a Listers,
    share: &'a Share,
    slots: JobLimits<'a>,
    progress: &'a TaskProgress,
    stop: &'a Stop,
}
