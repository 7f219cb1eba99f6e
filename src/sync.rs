//! Runs one task once: every mapping is planned and its images copied by the relay.
//!
//! One failure never aborts a task or the run: it is logged with the task, mapping and image,
//! the task is marked failed, and work goes on; the exit code says so at the end.

use std::time::{Instant, SystemTime};

use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::clients::Clients;
use crate::config::{Location, Mapping, Task};
use crate::listers::Listers;
use crate::plan::{self, ImageJob, RegistryLocation, RepositoryList, RepositorySource, TagSource};
use crate::progress::TaskProgress;
use crate::registry::{Registry, Repository};
use crate::relay::{BlobTally, CopyOutcome, CopySlots, Relay, Sides};
use crate::report::{ImageReport, ImageResult, TaskReport, human_bytes};
use crate::stop::Stop;

/// One run of one task: every mapping, every image; never stops at the first failure.
///
/// Once `stop` is requested, no new mapping or image job starts and jobs waiting for a slot give
/// up; jobs in flight go on until the stop aborts them; the report says the run was interrupted.
pub async fn run_task(
    task: &Task,
    relay: &Relay,
    clients: &Clients,
    listers: &Listers,
    stop: &Stop,
) -> TaskReport {
    let started = Instant::now();
    tracing::info!(
        task = %task.name,
        source = %task.source.registry,
        target = %task.target.registry,
        "syncing task"
    );
    let mut report = TaskReport::new(&task.name);
    let progress = &TaskProgress::start(&task.name, task.mappings.len());
    report.started = SystemTime::now();
    // Mappings are planned and copied concurrently. Two bounds hold across all of them, so
    // many small mappings cost no more than one big one: the check slots bound image jobs in
    // flight (mostly up-to-date checks), the copy slots bound the copies among them.
    let check_slots = Semaphore::new(relay.parallel_checks());
    let copy_slots = Semaphore::new(relay.parallel_images());
    let slots = Slots {
        check: &check_slots,
        copy: &copy_slots,
    };
    let outcomes: Vec<Result<MappingOutcome, ()>> =
        futures_util::stream::iter(task.mappings.iter().enumerate())
            .map(|(index, mapping)| async move {
                if stop.is_requested() {
                    return Ok(MappingOutcome::default());
                }
                tracing::info!(from = %mapping.rule.from(), to = %mapping.rule.to(), "mapping");
                let services = Services { clients, listers };
                run_mapping(task, mapping, relay, services, slots, progress, stop)
                    .await
                    .map_err(|reason| {
                        progress.mapping_failed();
                        tracing::error!(
                            task = %task.name,
                            mapping = index + 1,
                            from = %mapping.rule.from(),
                            "mapping failed: {reason}"
                        );
                    })
            })
            .buffered(relay.parallel_checks())
            .collect()
            .await;
    for outcome in outcomes {
        match outcome {
            Ok(mapping) => {
                report.images.extend(mapping.images);
                report.repository_failures += mapping.repository_failures;
            }
            Err(()) => report.mapping_failures += 1,
        }
    }
    report.finished = SystemTime::now();
    report.interrupted = stop.is_requested();
    tracing::info!(
        task = %task.name,
        copied = report.copied(),
        up_to_date = report.up_to_date(),
        skipped = report.skipped(),
        failed = report.failures(),
        bytes = report.bytes(),
        seconds = started.elapsed().as_secs_f64(),
        "task done: {} copied ({} sent), {} up to date, {} skipped, {}",
        report.copied(),
        human_bytes(report.bytes()),
        report.up_to_date(),
        report.skipped(),
        describe_failures(&report),
    );
    report
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
    /// Repositories that could not be planned; each was logged as `repository failed`.
    repository_failures: usize,
}

/// Lists source tags through the registry client, for the planner.
pub struct RegistryTags<'a>(pub &'a Registry);

impl TagSource for RegistryTags<'_> {
    async fn list_tags(&self, repository: &Repository) -> Result<Vec<String>, String> {
        self.0
            .list_tags(repository)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Lists a source's repositories through the run's listers, for the planner.
pub struct ListedRepositories<'a> {
    pub listers: &'a Listers,
    pub clients: &'a Clients,
    pub location: &'a Location,
}

impl RepositorySource for ListedRepositories<'_> {
    async fn list_repositories(&self) -> Result<std::sync::Arc<RepositoryList>, String> {
        self.listers.list(self.location, self.clients).await
    }
}

/// The task's bounds on image jobs in flight and on copies among them.
#[derive(Clone, Copy)]
struct Slots<'a> {
    check: &'a Semaphore,
    copy: &'a Semaphore,
}

/// What a mapping's planning uses besides the task: the run's clients and listers.
#[derive(Clone, Copy)]
struct Services<'a> {
    clients: &'a Clients,
    listers: &'a Listers,
}

/// Plans one mapping of a task: the clients of both sides and the mapping's plan, with the
/// planner's warnings and debug lines logged.
pub async fn plan_task_mapping(
    task: &Task,
    mapping: &Mapping,
    clients: &Clients,
    listers: &Listers,
) -> Result<(Registry, Registry, plan::MappingPlan), String> {
    let source_location = RegistryLocation::parse(&task.source.registry)
        .map_err(|e| format!("source registry: {e}"))?;
    let target_location = RegistryLocation::parse(&task.target.registry)
        .map_err(|e| format!("target registry: {e}"))?;
    let source = clients.get(&source_location.host, &task.source).await?;
    let target = clients.get(&target_location.host, &task.target).await?;
    // Cloud tokens are renewed before each mapping, as by the original's refresh hook.
    clients.refresh(&task.source).await?;
    clients.refresh(&task.target).await?;
    let repositories = ListedRepositories {
        listers,
        clients,
        location: &task.source,
    };
    let plan = plan::plan_mapping(
        mapping,
        &source_location,
        &target_location,
        &RegistryTags(&source),
        &repositories,
    )
    .await?;
    for warning in &plan.warnings {
        tracing::warn!(task = %task.name, from = %mapping.rule.from(), "{warning}");
    }
    for repo in &plan.repositories {
        let path = repo.source_path.as_str();
        for warning in &repo.warnings {
            tracing::warn!(task = %task.name, repository = %path, "{warning}");
        }
        for dropped in &repo.dropped {
            tracing::debug!(repository = %path, tag = %dropped.tag, filter = %dropped.by, "tag dropped by filter");
        }
        if repo.error.is_none() {
            tracing::debug!(repository = %path, "expanded tags: {:?}", repo.tags);
        }
    }
    Ok((source, target, plan))
}

/// Why a planned mapping selected no image at all, or `None` when it selected some (or
/// failed in a way already reported: a repository that could not be planned).
///
/// Doing nothing where the config asked for something must not look like a success
/// (docs/behaviour.md#exit-codes), so the caller fails the mapping with this reason.
pub fn empty_selection(task: &Task, mapping: &Mapping, plan: &plan::MappingPlan) -> Option<String> {
    let selected_any = plan
        .repositories
        .iter()
        .any(|r| !r.jobs.is_empty() || !r.invalid.is_empty() || r.error.is_some());
    if selected_any {
        return None;
    }
    if plan.repositories.is_empty() {
        return Some(format!(
            "it selected no image: '{}' matched none of the {} repositories listed on the source",
            mapping.rule.from(),
            plan.listed_repositories.unwrap_or(0)
        ));
    }
    let entries = if mapping.tag_entries.is_empty() {
        "the tags list (empty: every tag)".to_string()
    } else {
        let quoted: Vec<String> = mapping
            .tag_entries
            .iter()
            .map(|e| format!("'{}'", e.trim()))
            .collect();
        format!("the tags entries {}", quoted.join(", "))
    };
    let repositories: Vec<String> = plan
        .repositories
        .iter()
        .map(|r| {
            let name = format!(
                "{}{}",
                task.source.registry.trim_end_matches('/'),
                r.source_path
            );
            match r.dropped.len() {
                0 => format!("{name} (it has no tags)"),
                1 => format!("{name} (1 tag listed)"),
                n => format!("{name} ({n} tags listed)"),
            }
        })
        .collect();
    Some(format!(
        "it selected no image: {entries} selected none of the tags of {}; try them with \
         'dregsy tags' or 'dregsy plan'",
        repositories.join(", ")
    ))
}

async fn run_mapping(
    task: &Task,
    mapping: &Mapping,
    relay: &Relay,
    services: Services<'_>,
    slots: Slots<'_>,
    progress: &TaskProgress,
    stop: &Stop,
) -> Result<MappingOutcome, String> {
    let planning = plan_task_mapping(task, mapping, services.clients, services.listers);
    let Some(planned) = stop.until_aborted(planning).await else {
        return Ok(MappingOutcome::default());
    };
    let (source, target, plan) = planned?;
    if let Some(reason) = empty_selection(task, mapping, &plan) {
        return Err(reason);
    }
    let jobs: Vec<&ImageJob> = plan.jobs().collect();
    // ECR targets must exist before anything is pushed (the original's ensureTargetExists).
    services
        .clients
        .cloud()
        .ensure_repositories(&task.target, jobs.iter().map(|j| &j.target.repository))
        .await?;
    let sides = Sides {
        source: &source,
        target: &target,
        source_location: &task.source,
        target_location: &task.target,
        source_credentials: services.clients.credentials(&task.source).await?,
        target_credentials: services.clients.credentials(&task.target).await?,
        verbose: task.verbose,
    };
    // Counted once nothing can fail the whole mapping any more: from here on, failures are
    // per repository or per image.
    let invalid_tags: usize = plan.repositories.iter().map(|r| r.invalid.len()).sum();
    let failed_repositories = plan
        .repositories
        .iter()
        .filter(|r| r.error.is_some())
        .count();
    progress.mapping_planned(jobs.len() + invalid_tags, failed_repositories);
    // A repository that could not be planned fails as a repository; every tag that cannot
    // form a reference fails as an image of its own; the rest still sync.
    let side = |registry: &str, path: &str| format!("{}{path}", registry.trim_end_matches('/'));
    let mut outcome = MappingOutcome::default();
    for repo in &plan.repositories {
        let source_name = side(&task.source.registry, &repo.source_path);
        let target_name = side(&task.target.registry, &repo.target_path);
        if let Some(error) = &repo.error {
            tracing::error!(
                task = %task.name,
                source = %source_name,
                target = %target_name,
                "repository failed: {error}"
            );
            outcome.repository_failures += 1;
        }
        for (tag, reason) in &repo.invalid {
            let report = ImageReport {
                source: source_name.clone(),
                target: target_name.clone(),
                result: ImageResult::Failed {
                    reason: format!("tag '{tag}': {reason}"),
                },
                duration: Default::default(),
            };
            log_image(task, &report, None);
            progress.image_done(true);
            outcome.images.push(report);
        }
    }
    // `buffered` starts a job only when a slot frees up; a job waiting for its slot wakes up
    // when a stop is requested and starts nothing.
    let sides = &sides;
    let copies = futures_util::stream::iter(jobs.iter().copied())
        .map(|job| async move {
            let _slot = stop.until_requested(slots.check.acquire()).await?;
            let copy_slots = CopySlots::new(slots.copy, stop);
            let report = copy_one(task, job, relay, sides, &copy_slots).await?;
            progress.image_done(matches!(report.result, ImageResult::Failed { .. }));
            Some(report)
        })
        .buffered(relay.parallel_checks());
    let done: Vec<ImageReport> = copies.filter_map(std::future::ready).collect().await;
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

/// Runs one image job and logs its line; `None` when a stop kept it from starting its copy or
/// aborted it.
async fn copy_one(
    task: &Task,
    job: &ImageJob,
    relay: &Relay,
    sides: &Sides<'_>,
    slots: &CopySlots<'_>,
) -> Option<ImageReport> {
    let started = Instant::now();
    // A verbose task shows its per-tag details at info level (docs/configuration.md#tasks).
    let platform = job.platform.as_config_text();
    if sides.verbose {
        tracing::info!(task = %task.name, source = %job.source, target = %job.target, platform = %platform, "syncing tag");
    } else {
        tracing::debug!(task = %task.name, source = %job.source, target = %job.target, platform = %platform, "syncing tag");
    }
    let mut blobs = None;
    let result = match relay.copy(job, sides, slots).await {
        Ok(CopyOutcome::UpToDate) => ImageResult::UpToDate,
        Ok(CopyOutcome::Copied {
            bytes,
            blobs: tally,
        }) => {
            blobs = tally;
            ImageResult::Copied { bytes }
        }
        Ok(CopyOutcome::Skipped { reason }) => ImageResult::Skipped { reason },
        Ok(CopyOutcome::NotStarted | CopyOutcome::Aborted) => return None,
        Err(reason) => ImageResult::Failed { reason },
    };
    let report = ImageReport {
        source: job.source.to_string(),
        target: job.target.to_string(),
        result,
        duration: started.elapsed().saturating_sub(slots.waited()),
    };
    log_image(task, &report, blobs.as_ref());
    Some(report)
}

/// The message of an `image copied` line: what was sent, and, when no blob data was sent
/// (or only part of it), why: blobs another image had sent already, or that the target held.
pub fn copied_message(bytes: u64, blobs: Option<&BlobTally>) -> String {
    let Some(tally) = blobs else {
        if bytes == 0 {
            // skopeo does not tell how much it sent; "0 B" would be a false statement.
            return "image copied (bytes sent not counted by this relay)".to_string();
        }
        return format!("image copied ({} transferred)", human_bytes(bytes));
    };
    let mut message = if tally.sent == 0 && bytes == tally.manifest_bytes {
        format!(
            "image copied ({} of manifests transferred",
            human_bytes(bytes)
        )
    } else {
        format!("image copied ({} transferred", human_bytes(bytes))
    };
    let blobs = |n: usize| {
        if n == 1 {
            "1 blob".to_string()
        } else {
            format!("{n} blobs")
        }
    };
    if tally.by_another_image > 0 {
        message.push_str(&format!(
            "; {} already sent by another image",
            blobs(tally.by_another_image)
        ));
    }
    if tally.on_target > 0 {
        message.push_str(&format!(
            "; {} already on the target",
            blobs(tally.on_target)
        ));
    }
    message.push(')');
    message
}

/// One line per image: what happened, with bytes and time; `blobs` says how a copied
/// image's blobs got to the target, when the relay knows.
fn log_image(task: &Task, image: &ImageReport, blobs: Option<&BlobTally>) {
    let seconds = image.duration.as_secs_f64();
    match &image.result {
        ImageResult::UpToDate => tracing::info!(
            task = %task.name,
            source = %image.source,
            target = %image.target,
            seconds,
            "image up to date"
        ),
        ImageResult::Copied { bytes } => tracing::info!(
            task = %task.name,
            source = %image.source,
            target = %image.target,
            bytes = *bytes,
            seconds,
            "{}",
            copied_message(*bytes, blobs)
        ),
        ImageResult::Skipped { reason } => tracing::info!(
            task = %task.name,
            source = %image.source,
            target = %image.target,
            "image skipped: {reason}"
        ),
        ImageResult::Failed { reason } => tracing::error!(
            task = %task.name,
            source = %image.source,
            target = %image.target,
            "image failed: {reason}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_that_sent_no_blob_says_why() {
        let shared = BlobTally {
            sent: 0,
            by_another_image: 2,
            on_target: 0,
            manifest_bytes: 528,
        };
        assert_eq!(
            copied_message(528, Some(&shared)),
            "image copied (528 B of manifests transferred; 2 blobs already sent by another image)"
        );
        let mixed = BlobTally {
            sent: 1,
            by_another_image: 0,
            on_target: 1,
            manifest_bytes: 500,
        };
        assert_eq!(
            copied_message(2548, Some(&mixed)),
            "image copied (2.5 KiB transferred; 1 blob already on the target)"
        );
        assert_eq!(
            copied_message(0, None),
            "image copied (bytes sent not counted by this relay)"
        );
        assert_eq!(
            copied_message(2048, None),
            "image copied (2.0 KiB transferred)"
        );
    }
}
