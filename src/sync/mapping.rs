//! Runs one mapping of a task: plans it, reports what cannot be copied (repositories that could
//! not be planned, tags that form no reference, registries whose rate limit ran out), and copies
//! the shard's image jobs within the task's bounds.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;

use super::image::{Travelled, copy_one, exhausted_side, log_image, result_of};
use super::planning::{Planned, empty_selection, plan_noting_limits};
use super::{JobLimits, MappingOutcome, TaskRun};
use crate::clients::Clients;
use crate::config::{Mapping, Task};
use crate::failure::{Failure, FailureKind};
use crate::plan::{ImageJob, RepositoryPlan};
use crate::progress::TaskProgress;
use crate::relay::{CopySlots, JobError, Relay, Sides};
use crate::report::{ImageReport, ImageResult};
use crate::stop::Stop;
use crate::store::ImageStore;

/// `registry` and `path` as one name for the log (`host:5000/mirror/app`).
fn side(registry: &str, path: &str) -> String {
    format!("{}{path}", registry.trim_end_matches('/'))
}

/// Plans and copies one mapping.
///
/// # Errors
///
/// When the mapping fails as a whole: a side's client or credentials cannot be had, it cannot
/// be planned, it selected no image, or the target's repositories cannot be created.
pub(super) async fn run_mapping(
    task: &Task,
    mapping: &Mapping,
    run: TaskRun<'_>,
) -> Result<MappingOutcome, Failure> {
    let TaskRun {
        relay,
        slots,
        progress,
        stop,
        ..
    } = run;
    // A mapping whose registry's rate limit already ran out is not even planned: planning
    // would ask that registry for tags.
    if let Some(error) = exhausted_side(task, run.clients) {
        return Ok(left_for_next_run(task, mapping, error, progress));
    }
    let planning = plan_noting_limits(task, mapping, run.clients, run.listers);
    let Some(planned) = stop.until_aborted(planning).await else {
        return Ok(MappingOutcome::default());
    };
    let Planned {
        source,
        target,
        plan,
        rate_limited,
    } = planned?;
    // Judged on the whole plan, every shard's share: a shard that owns none of a mapping's
    // repositories did what the config asked.
    if let Some(reason) = empty_selection(task, mapping, &plan) {
        return Err(Failure::Failed(reason));
    }
    // Another shard copies (and reports) the repositories it owns.
    let ours: Vec<&RepositoryPlan> = plan
        .repositories
        .iter()
        .filter(|repo| run.share.shard.owns(repo.target_name()))
        .collect();
    let share = run.share;
    share.ours.fetch_add(ours.len(), Ordering::Relaxed);
    share
        .total
        .fetch_add(plan.repositories.len(), Ordering::Relaxed);
    let jobs: Vec<&ImageJob> = ours.iter().flat_map(|repo| repo.jobs.iter()).collect();
    // ECR targets must exist before anything is pushed (the original's ensureTargetExists).
    run.clients
        .cloud()
        .ensure_repositories(&task.target, jobs.iter().map(|j| &j.target.repository))
        .await?;
    let sides = sides_of(task, &source, &target, run.clients).await?;
    // Counted once nothing can fail the whole mapping any more: from here on, failures are
    // per repository or per image.
    let mut outcome = not_planned(task, &ours, &rate_limited, jobs.len(), progress);
    let done = copy_jobs(task, &jobs, relay, &sides, slots, progress, stop).await;
    let not_started = jobs.len() - done.len();
    if not_started > 0 {
        tracing::info!(
            task = %task.name,
            from = %mapping.rule.from(),
            "stopping: {not_started} image job(s) of this mapping not started or aborted"
        );
    }
    outcome.images.extend(done);
    Ok(outcome)
}

/// The outcome of a mapping a registry's used-up rate limit keeps from being planned: one
/// image left for the next run, named by the mapping's paths.
fn left_for_next_run(
    task: &Task,
    mapping: &Mapping,
    error: JobError,
    progress: &TaskProgress,
) -> MappingOutcome {
    let report = ImageReport {
        source: side(&task.source.registry, mapping.rule.from()),
        target: side(&task.target.registry, mapping.rule.to()),
        result: result_of(error),
        duration: Default::default(),
    };
    log_image(task, &report, &Travelled::default());
    progress.mapping_planned(1, 0);
    progress.image_done(false);
    MappingOutcome {
        images: vec![report],
        repository_failures: Vec::new(),
    }
}

/// Both sides of the task's jobs, with the credentials external tools get for each.
async fn sides_of<'a>(
    task: &'a Task,
    source: &'a ImageStore,
    target: &'a ImageStore,
    clients: &Clients,
) -> Result<Sides<'a>, Failure> {
    Ok(Sides {
        source,
        target,
        source_location: &task.source,
        target_location: &task.target,
        source_credentials: clients.credentials(&task.source).await?,
        target_credentials: clients.credentials(&task.target).await?,
        verbose: task.verbose,
    })
}

/// The rate-limit error that kept `repo`'s tags from being listed, if one did.
fn rate_limit_of(rate_limited: &[(String, JobError)], repo: &RepositoryPlan) -> Option<JobError> {
    rate_limited
        .iter()
        .find(|(path, _)| repo.source.as_ref().is_some_and(|r| r.to_string() == *path))
        .map(|(_, error)| error.clone())
}

/// Reports what of the shard's repositories cannot be copied, and tells the progress how much
/// there is to do (`jobs` image jobs besides). A repository that could not be planned fails as
/// a repository, unless a used-up rate limit kept its tags from being listed: then it is left
/// for the next run (reported like an image). Every tag that cannot form a reference fails as
/// an image of its own; the rest still sync.
fn not_planned(
    task: &Task,
    ours: &[&RepositoryPlan],
    rate_limited: &[(String, JobError)],
    jobs: usize,
    progress: &TaskProgress,
) -> MappingOutcome {
    let invalid_tags: usize = ours.iter().map(|r| r.invalid.len()).sum();
    let (limited_repositories, failed_repositories) = ours
        .iter()
        .filter(|r| r.error.is_some())
        .fold((0, 0), |(limited_n, failed_n), r| {
            match rate_limit_of(rate_limited, r) {
                Some(_) => (limited_n + 1, failed_n),
                None => (limited_n, failed_n + 1),
            }
        });
    progress.mapping_planned(
        jobs + invalid_tags + limited_repositories,
        failed_repositories,
    );
    let mut outcome = MappingOutcome::default();
    for repo in ours {
        let source_name = side(&task.source.registry, &repo.source_path);
        let target_name = side(&task.target.registry, &repo.target_path);
        let mut not_synced = Vec::new();
        if let Some(error) = &repo.error {
            match rate_limit_of(rate_limited, repo) {
                Some(limit) => not_synced.push(result_of(limit)),
                None => {
                    tracing::error!(
                        task = %task.name,
                        source = %source_name,
                        target = %target_name,
                        "repository failed: {error}"
                    );
                    outcome.repository_failures.push(error.kind());
                }
            }
        }
        for (tag, reason) in &repo.invalid {
            not_synced.push(ImageResult::Failed {
                reason: format!("tag '{tag}': {reason}"),
                kind: FailureKind::Other,
            });
        }
        for result in not_synced {
            let failed = matches!(result, ImageResult::Failed { .. });
            let report = ImageReport {
                source: source_name.clone(),
                target: target_name.clone(),
                result,
                duration: Default::default(),
            };
            log_image(task, &report, &Travelled::default());
            progress.image_done(failed);
            outcome.images.push(report);
        }
    }
    outcome
}

/// Runs the image jobs within the task's bounds; the reports of those that ran (a stop keeps
/// the rest from starting, or aborts them).
async fn copy_jobs(
    task: &Task,
    jobs: &[&ImageJob],
    relay: &Relay,
    sides: &Sides<'_>,
    slots: JobLimits<'_>,
    progress: &TaskProgress,
    stop: &Stop,
) -> Vec<ImageReport> {
    // `buffered` starts a job only when a slot frees up; a job waiting for its slot wakes up
    // when a stop is requested and starts nothing.
    let copies = futures_util::stream::iter(jobs.iter().copied())
        .map(|job| async move {
            // Waiting for a slot can take long; a stop requested meanwhile starts nothing new.
            let _slot = stop.until_requested(slots.check.acquire()).await?;
            // Once a registry's rate limit ran out, the jobs left are not sent there at all.
            if let Err(error) = sides.check_rate_limits() {
                let report = ImageReport {
                    source: job.source.to_string(),
                    target: job.target.to_string(),
                    result: result_of(error),
                    duration: Default::default(),
                };
                log_image(task, &report, &Travelled::default());
                progress.image_done(false);
                return Some(report);
            }
            let copy_slots = CopySlots::new(slots.copy, stop);
            let report = copy_one(task, job, relay, sides, &copy_slots).await?;
            progress.image_done(matches!(report.result, ImageResult::Failed { .. }));
            Some(report)
        })
        .buffered(relay.parallel_checks());
    copies.filter_map(std::future::ready).collect().await
}
