//! Runs one task once (SPEC §3.2): every mapping is planned and its images copied by the relay.
//!
//! One failure never aborts a task or the run: it is logged with the task, mapping and image,
//! the task is marked failed, and work goes on; the exit code says so at the end.

use std::time::{Instant, SystemTime};

use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::clients::Clients;
use crate::config::{Mapping, Task};
use crate::plan::{self, ImageJob, RegistryLocation, TagSource};
use crate::progress::TaskProgress;
use crate::registry::{Registry, Repository};
use crate::relay::{CopyOutcome, Relay, Sides};
use crate::report::{ImageReport, ImageResult, TaskReport, human_bytes};
use crate::stop::StopFlag;

/// One run of one task: every mapping, every image; never stops at the first failure.
///
/// Once `stop` is set, no new mapping or image job starts; jobs in flight go on, and the
/// report says the run was interrupted.
pub async fn run_task(
    task: &Task,
    relay: &Relay,
    clients: &Clients,
    stop: &StopFlag,
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
    // Mappings are planned and copied concurrently; the image slots bound how many copies
    // run at once across all of them, so many small mappings cost no more than one big one.
    let image_slots = Semaphore::new(relay.parallel_images());
    let image_slots = &image_slots;
    let outcomes: Vec<Result<Vec<ImageReport>, ()>> =
        futures_util::stream::iter(task.mappings.iter().enumerate())
            .map(|(index, mapping)| async move {
                if stop.is_requested() {
                    return Ok(Vec::new());
                }
                tracing::info!(from = %mapping.rule.from(), to = %mapping.rule.to(), "mapping");
                run_mapping(task, mapping, relay, clients, image_slots, progress, stop)
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
            .buffered(relay.parallel_images())
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
        failed = report.failed_images() + report.mapping_failures,
        bytes = report.bytes(),
        seconds = started.elapsed().as_secs_f64(),
        "task done: {} copied ({}), {} up to date, {} failed",
        report.copied(),
        human_bytes(report.bytes()),
        report.up_to_date(),
        report.failed_images() + report.mapping_failures,
    );
    report
}

/// Lists source tags through the registry client, for the planner.
struct RegistryTags<'a>(&'a Registry);

impl TagSource for RegistryTags<'_> {
    async fn list_tags(&self, repository: &Repository) -> Result<Vec<String>, String> {
        self.0
            .list_tags(repository)
            .await
            .map_err(|e| e.to_string())
    }
}

async fn run_mapping(
    task: &Task,
    mapping: &Mapping,
    relay: &Relay,
    clients: &Clients,
    image_slots: &Semaphore,
    progress: &TaskProgress,
    stop: &StopFlag,
) -> Result<Vec<ImageReport>, String> {
    let source_location = RegistryLocation::parse(&task.source.registry)
        .map_err(|e| format!("source registry: {e}"))?;
    let target_location = RegistryLocation::parse(&task.target.registry)
        .map_err(|e| format!("target registry: {e}"))?;
    let source = clients.get(&source_location.host, &task.source)?;
    let target = clients.get(&target_location.host, &task.target)?;
    // Cloud tokens are renewed before each mapping, as the original's refresh hook (§6.2).
    clients.cloud().refresh(&task.source).await?;
    clients.cloud().refresh(&task.target).await?;
    let plan = plan::plan_mapping(
        mapping,
        &source_location,
        &target_location,
        &RegistryTags(&source),
    )
    .await?;
    // ECR targets must exist before anything is pushed (the original's ensureTargetExists).
    clients
        .cloud()
        .ensure_repositories(&task.target, plan.jobs.iter().map(|j| &j.target.repository))
        .await?;
    progress.planned(plan.jobs.len());
    for dropped in &plan.dropped {
        tracing::debug!(tag = %dropped.tag, filter = %dropped.by, "tag dropped by filter");
    }
    let mut images: Vec<ImageReport> = plan
        .invalid
        .iter()
        .map(|(tag, reason)| {
            let report = ImageReport {
                source: format!("{}/{}", task.source.registry, mapping.rule.from()),
                target: format!("{}/{}", task.target.registry, mapping.rule.to()),
                result: ImageResult::Failed {
                    reason: format!("tag '{tag}': {reason}"),
                },
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
        source_credentials: clients.cloud().credentials(&task.source).await?,
        target_credentials: clients.cloud().credentials(&task.target).await?,
        verbose: task.verbose,
    };
    // `buffered` starts a job only when a slot frees up, so checking the stop flag at the start
    // of each job is what keeps new work from starting.
    let sides = &sides;
    let copies = futures_util::stream::iter(plan.jobs.iter())
        .map(|job| async move {
            // Waiting for a slot can take long; a stop requested meanwhile starts nothing new.
            let _slot = image_slots.acquire().await.ok();
            if stop.is_requested() {
                return None;
            }
            let report = copy_one(task, job, relay, sides).await;
            progress.image_done();
            Some(report)
        })
        .buffered(relay.parallel_images());
    let done: Vec<ImageReport> = copies.filter_map(std::future::ready).collect().await;
    let not_started = plan.jobs.len() - done.len();
    if not_started > 0 {
        tracing::info!(
            task = %task.name,
            from = %mapping.rule.from(),
            "stopping: {not_started} image job(s) of this mapping not started"
        );
    }
    images.extend(done);
    Ok(images)
}

async fn copy_one(task: &Task, job: &ImageJob, relay: &Relay, sides: &Sides<'_>) -> ImageReport {
    let started = Instant::now();
    // D16: a verbose task shows its per-tag details at info level.
    let platform = job.platform.as_config_text();
    if sides.verbose {
        tracing::info!(task = %task.name, source = %job.source, target = %job.target, platform = %platform, "syncing tag");
    } else {
        tracing::debug!(task = %task.name, source = %job.source, target = %job.target, platform = %platform, "syncing tag");
    }
    let result = match relay.copy(job, sides).await {
        Ok(CopyOutcome::UpToDate) => ImageResult::UpToDate,
        Ok(CopyOutcome::Copied { bytes }) => ImageResult::Copied { bytes },
        Err(reason) => ImageResult::Failed { reason },
    };
    let report = ImageReport {
        source: job.source.to_string(),
        target: job.target.to_string(),
        result,
        duration: started.elapsed(),
    };
    log_image(task, &report);
    report
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
        ImageResult::Failed { reason } => tracing::error!(
            task = %task.name,
            source = %image.source,
            target = %image.target,
            "image failed: {reason}"
        ),
    }
}
