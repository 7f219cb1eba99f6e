//! Runs one task once: every mapping is planned and its images copied by the relay.
//!
//! One failure never aborts a task or the run: it is logged with the task, mapping and image,
//! the task is marked failed, and work goes on; the exit code says so at the end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::clients::Clients;
use crate::config::{Location, Mapping, Site, Task};
use crate::listers::Listers;
use crate::plan::{
    self, ImageJob, RegistryLocation, RepositoryList, RepositoryPlan, RepositorySource, TagSource,
};
use crate::progress::TaskProgress;
use crate::registry::{RegistryHost, Repository};
use crate::relay::{BlobTally, CopyOutcome, CopySlots, JobError, Relay, Sides};
use crate::report::{ImageReport, ImageResult, TaskReport, human_bytes};
use crate::shard::Shard;
use crate::stop::Stop;
use crate::store::ImageStore;

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
    let outcomes: Vec<Result<MappingOutcome, ()>> =
        futures_util::stream::iter(task.mappings.iter().enumerate())
            .map(|(index, mapping)| async move {
                if stop.is_requested() {
                    return Ok(MappingOutcome::default());
                }
                tracing::info!(from = %mapping.rule.from(), to = %mapping.rule.to(), "mapping");
                let services = RunContext {
                    clients,
                    listers,
                    share,
                };
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
    if shard.is_sharded() {
        tracing::info!(
            task = %task.name,
            shard = %shard,
            "shard {shard}: {} of {} repositories are ours",
            share.ours.load(Ordering::Relaxed),
            share.total.load(Ordering::Relaxed),
        );
    }
    report.finished = SystemTime::now();
    report.interrupted = stop.is_requested();
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
    tracing::info!(
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

/// Where a side's images are: its registry (through the run's client for it) or its directory
/// of OCI image layouts, and how its repositories are named.
///
/// # Errors
/// The registry's client cannot be made.
pub async fn store(
    clients: &Clients,
    location: &Location,
) -> Result<(RegistryLocation, ImageStore), String> {
    match &location.site {
        Site::Layout(dir) => {
            let named = RegistryLocation {
                host: RegistryHost::layout(&location.registry),
                prefix: String::new(),
            };
            Ok((named, ImageStore::for_layout(dir.clone())))
        }
        Site::Registry(named) => {
            let client = clients.get(&named.host, location).await?;
            Ok((named.clone(), ImageStore::Registry(client)))
        }
    }
}

/// Lists source tags through the side's store (registry or layouts), for the planner.
/// Remembers which repositories could not be listed because the registry's rate limit ran out,
/// so they are reported as left for the next run rather than as failures.
pub struct StoreTags<'a> {
    registry: &'a ImageStore,
    rate_limited: std::sync::Mutex<Vec<(String, JobError)>>,
}

impl<'a> StoreTags<'a> {
    /// Lists tags through `registry`, noting the repositories its rate limit kept unlisted.
    pub fn new(registry: &'a ImageStore) -> Self {
        StoreTags {
            registry,
            rate_limited: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The repositories whose listing met a used-up rate limit, with that error.
    fn rate_limited(self) -> Vec<(String, JobError)> {
        self.rate_limited.into_inner().unwrap_or_default()
    }
}

impl TagSource for StoreTags<'_> {
    async fn list_tags(&self, repository: &Repository) -> Result<Vec<String>, String> {
        self.registry.list_tags(repository).await.map_err(|e| {
            let reason = e.to_string();
            if let error @ JobError::RateLimited { .. } = JobError::from(e)
                && let Ok(mut limited) = self.rate_limited.lock()
            {
                limited.push((repository.to_string(), error));
            }
            reason
        })
    }
}

/// Lists a source's repositories through the run's listers, for the planner.
pub struct ListedRepositories<'a> {
    /// The run's listers (their caches are shared by every task).
    pub listers: &'a Listers,
    /// The run's registry clients.
    pub clients: &'a Clients,
    /// The source side whose repositories are listed.
    pub location: &'a Location,
}

impl RepositorySource for ListedRepositories<'_> {
    async fn list_repositories(&self) -> Result<std::sync::Arc<RepositoryList>, String> {
        self.listers.list(self.location, self.clients).await
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

/// What a mapping's planning uses besides the task: the run's clients and listers, and the
/// shard's tally of repositories.
#[derive(Clone, Copy)]
struct RunContext<'a> {
    clients: &'a Clients,
    listers: &'a Listers,
    share: &'a Share,
}

/// Plans one mapping of a task: the clients of both sides and the mapping's plan, with the
/// planner's warnings and debug lines logged.
///
/// # Errors
///
/// When a side's registry is invalid, its client cannot be made, or the mapping cannot be
/// planned; the message says which side.
pub async fn plan_task_mapping(
    task: &Task,
    mapping: &Mapping,
    clients: &Clients,
    listers: &Listers,
) -> Result<(ImageStore, ImageStore, plan::MappingPlan), String> {
    plan_noting_limits(task, mapping, clients, listers)
        .await
        .map(|planned| (planned.source, planned.target, planned.plan))
}

/// A planned mapping, with the source repositories a used-up rate limit kept from being
/// listed (their tags are unknown: they are left for the next run).
struct Planned {
    source: ImageStore,
    target: ImageStore,
    plan: plan::MappingPlan,
    rate_limited: Vec<(String, JobError)>,
}

async fn plan_noting_limits(
    task: &Task,
    mapping: &Mapping,
    clients: &Clients,
    listers: &Listers,
) -> Result<Planned, String> {
    let (source_location, source) = store(clients, &task.source)
        .await
        .map_err(|e| format!("source registry: {e}"))?;
    let (target_location, target) = store(clients, &task.target)
        .await
        .map_err(|e| format!("target registry: {e}"))?;
    // Cloud tokens are renewed before each mapping, as by the original's refresh hook.
    clients.refresh(&task.source).await?;
    clients.refresh(&task.target).await?;
    let repositories = ListedRepositories {
        listers,
        clients,
        location: &task.source,
    };
    let tags = StoreTags::new(&source);
    let plan = plan::plan_mapping(
        mapping,
        &source_location,
        &target_location,
        &tags,
        &repositories,
    )
    .await?;
    let rate_limited = tags.rate_limited();
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
    Ok(Planned {
        source,
        target,
        plan,
        rate_limited,
    })
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
    services: RunContext<'_>,
    slots: JobLimits<'_>,
    progress: &TaskProgress,
    stop: &Stop,
) -> Result<MappingOutcome, String> {
    let side = |registry: &str, path: &str| format!("{}{path}", registry.trim_end_matches('/'));
    // A mapping whose registry's rate limit already ran out is not even planned: planning
    // would ask that registry for tags.
    if let Some(error) = exhausted_side(task, services.clients) {
        let report = ImageReport {
            source: side(&task.source.registry, mapping.rule.from()),
            target: side(&task.target.registry, mapping.rule.to()),
            result: result_of(error),
            duration: Default::default(),
        };
        log_image(task, &report, None);
        progress.mapping_planned(1, 0);
        progress.image_done(false);
        return Ok(MappingOutcome {
            images: vec![report],
            repository_failures: 0,
        });
    }
    let planning = plan_noting_limits(task, mapping, services.clients, services.listers);
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
        return Err(reason);
    }
    // Another shard copies (and reports) the repositories it owns.
    let ours: Vec<&RepositoryPlan> = plan
        .repositories
        .iter()
        .filter(|repo| services.share.shard.owns(repo.target_name()))
        .collect();
    let share = services.share;
    share.ours.fetch_add(ours.len(), Ordering::Relaxed);
    share
        .total
        .fetch_add(plan.repositories.len(), Ordering::Relaxed);
    let jobs: Vec<&ImageJob> = ours.iter().flat_map(|repo| repo.jobs.iter()).collect();
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
    // A repository whose tags could not be listed because the source's rate limit ran out
    // is left for the next run (reported like an image), not failed.
    let limited = |repo: &RepositoryPlan| {
        rate_limited
            .iter()
            .find(|(path, _)| repo.source.as_ref().is_some_and(|r| r.to_string() == *path))
            .map(|(_, error)| error.clone())
    };
    // Counted once nothing can fail the whole mapping any more: from here on, failures are
    // per repository or per image.
    let invalid_tags: usize = ours.iter().map(|r| r.invalid.len()).sum();
    let (limited_repositories, failed_repositories) = ours
        .iter()
        .filter(|r| r.error.is_some())
        .fold((0, 0), |(limited_n, failed_n), r| match limited(r) {
            Some(_) => (limited_n + 1, failed_n),
            None => (limited_n, failed_n + 1),
        });
    progress.mapping_planned(
        jobs.len() + invalid_tags + limited_repositories,
        failed_repositories,
    );
    // A repository that could not be planned fails as a repository; every tag that cannot
    // form a reference fails as an image of its own; the rest still sync.
    let mut outcome = MappingOutcome::default();
    for repo in &ours {
        let source_name = side(&task.source.registry, &repo.source_path);
        let target_name = side(&task.target.registry, &repo.target_path);
        let mut not_synced = Vec::new();
        if let Some(error) = &repo.error {
            match limited(repo) {
                Some(limit) => not_synced.push(result_of(limit)),
                None => {
                    tracing::error!(
                        task = %task.name,
                        source = %source_name,
                        target = %target_name,
                        "repository failed: {error}"
                    );
                    outcome.repository_failures += 1;
                }
            }
        }
        for (tag, reason) in &repo.invalid {
            not_synced.push(ImageResult::Failed {
                reason: format!("tag '{tag}': {reason}"),
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
            log_image(task, &report, None);
            progress.image_done(failed);
            outcome.images.push(report);
        }
    }
    // `buffered` starts a job only when a slot frees up; a job waiting for its slot wakes up
    // when a stop is requested and starts nothing.
    let sides = &sides;
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
                log_image(task, &report, None);
                progress.image_done(false);
                return Some(report);
            }
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
        Err(error) => result_of(error),
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

/// The result of a job that did not succeed: left for the next run when a registry's rate
/// limit ran out, failed otherwise.
fn result_of(error: JobError) -> ImageResult {
    match error {
        JobError::RateLimited { registry, reason } => {
            ImageResult::NotAttempted { registry, reason }
        }
        JobError::Failed(reason) => ImageResult::Failed { reason },
    }
}

/// The error of a task's source or target registry whose rate limit ran out, if one did.
fn exhausted_side(task: &Task, clients: &Clients) -> Option<JobError> {
    [&task.source, &task.target]
        .into_iter()
        .filter_map(Location::registry_location)
        .find_map(|l| clients.rate_limits().exhausted(l.host.api_host()))
        .map(JobError::from)
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
        // The run says it once per registry at its end; per image it is a detail.
        ImageResult::NotAttempted { reason, .. } => tracing::debug!(
            task = %task.name,
            source = %image.source,
            target = %image.target,
            "image not attempted: {reason}"
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
