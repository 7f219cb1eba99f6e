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
use crate::registry::{RegistryHost, Repository};
use crate::relay::{CopyOutcome, CopySlots, Relay, Sides};
use crate::report::{ImageReport, ImageResult, TaskReport, human_bytes};
use crate::stop::Stop;
use crate::store::ImageStore;

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
    let progress = &TaskProgress::start(&task.name);
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
    let outcomes: Vec<Result<Vec<ImageReport>, ()>> =
        futures_util::stream::iter(task.mappings.iter().enumerate())
            .map(|(index, mapping)| async move {
                if stop.is_requested() {
                    return Ok(Vec::new());
                }
                tracing::info!(from = %mapping.rule.from(), to = %mapping.rule.to(), "mapping");
                let services = Services { clients, listers };
                run_mapping(task, mapping, relay, services, slots, progress, stop)
                    .await
                    .map_err(|reason| {
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
            Ok(images) => report.images.extend(images),
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
        failed = report.failed_images() + report.mapping_failures,
        bytes = report.bytes(),
        seconds = started.elapsed().as_secs_f64(),
        "task done: {} copied ({}), {} up to date, {} skipped, {} failed",
        report.copied(),
        human_bytes(report.bytes()),
        report.up_to_date(),
        report.skipped(),
        report.failed_images() + report.mapping_failures,
    );
    report
}

/// Where a side's images are: its registry (through the run's client for it) or its directory
/// of OCI image layouts, and how its repositories are named.
///
/// # Errors
/// The registry value is not a valid host, or its client cannot be made.
pub async fn store(
    clients: &Clients,
    location: &Location,
) -> Result<(RegistryLocation, ImageStore), String> {
    if let Some(dir) = location.layout() {
        let named = RegistryLocation {
            host: RegistryHost::layout(&location.registry),
            prefix: String::new(),
        };
        return Ok((named, ImageStore::for_layout(dir)));
    }
    let named = RegistryLocation::parse(&location.registry)?;
    let client = clients.get(&named.host, location).await?;
    Ok((named, ImageStore::Registry(client)))
}

/// Lists source tags through the side's store (registry or layouts), for the planner.
pub struct StoreTags<'a>(pub &'a ImageStore);

impl TagSource for StoreTags<'_> {
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
) -> Result<(ImageStore, ImageStore, plan::MappingPlan), String> {
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
    let plan = plan::plan_mapping(
        mapping,
        &source_location,
        &target_location,
        &StoreTags(&source),
        &repositories,
    )
    .await?;
    for warning in &plan.warnings {
        tracing::warn!(task = %task.name, from = %mapping.rule.from(), "{warning}");
    }
    for repo in &plan.repositories {
        let path = repo.source_path.as_str();
        for dropped in &repo.dropped {
            tracing::debug!(repository = %path, tag = %dropped.tag, filter = %dropped.by, "tag dropped by filter");
        }
        if repo.error.is_none() {
            tracing::debug!(repository = %path, "expanded tags: {:?}", repo.tags);
        }
    }
    Ok((source, target, plan))
}

async fn run_mapping(
    task: &Task,
    mapping: &Mapping,
    relay: &Relay,
    services: Services<'_>,
    slots: Slots<'_>,
    progress: &TaskProgress,
    stop: &Stop,
) -> Result<Vec<ImageReport>, String> {
    let planning = plan_task_mapping(task, mapping, services.clients, services.listers);
    let Some(planned) = stop.until_aborted(planning).await else {
        return Ok(Vec::new());
    };
    let (source, target, plan) = planned?;
    let jobs: Vec<&ImageJob> = plan.jobs().collect();
    // ECR targets must exist before anything is pushed (the original's ensureTargetExists).
    services
        .clients
        .cloud()
        .ensure_repositories(&task.target, jobs.iter().map(|j| &j.target.repository))
        .await?;
    progress.planned(jobs.len());
    // A repository that could not be planned, and every tag that cannot form a reference,
    // fails as an image of its own; the rest still sync.
    let side = |registry: &str, path: &str| format!("{}{path}", registry.trim_end_matches('/'));
    let mut failures = Vec::new();
    for repo in &plan.repositories {
        let source_name = side(&task.source.registry, &repo.source_path);
        let target_name = side(&task.target.registry, &repo.target_path);
        if let Some(error) = &repo.error {
            failures.push((source_name.clone(), target_name.clone(), error.clone()));
        }
        for (tag, reason) in &repo.invalid {
            failures.push((
                source_name.clone(),
                target_name.clone(),
                format!("tag '{tag}': {reason}"),
            ));
        }
    }
    let mut images: Vec<ImageReport> = failures
        .into_iter()
        .map(|(source, target, reason)| {
            let report = ImageReport {
                source,
                target,
                result: ImageResult::Failed { reason },
                duration: Default::default(),
            };
            log_image(task, &report);
            report
        })
        .collect();
    let sides = Sides {
        source: &source,
        target: &target,
        source_location: &task.source,
        target_location: &task.target,
        source_credentials: services.clients.credentials(&task.source).await?,
        target_credentials: services.clients.credentials(&task.target).await?,
        verbose: task.verbose,
    };
    // `buffered` starts a job only when a slot frees up; a job waiting for its slot wakes up
    // when a stop is requested and starts nothing.
    let sides = &sides;
    let copies = futures_util::stream::iter(jobs.iter().copied())
        .map(|job| async move {
            let _slot = stop.until_requested(slots.check.acquire()).await?;
            let copy_slots = CopySlots::new(slots.copy, stop);
            let report = copy_one(task, job, relay, sides, &copy_slots).await?;
            progress.image_done();
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
    images.extend(done);
    Ok(images)
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
    let result = match relay.copy(job, sides, slots).await {
        Ok(CopyOutcome::UpToDate) => ImageResult::UpToDate,
        Ok(CopyOutcome::Copied { bytes }) => ImageResult::Copied { bytes },
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
    log_image(task, &report);
    Some(report)
}

/// One line per image: what happened, with bytes and time.
fn log_image(task: &Task, image: &ImageReport) {
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
            "image copied ({} transferred)",
            human_bytes(*bytes)
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
