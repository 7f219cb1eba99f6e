//! Runs the selected tasks: one-off tasks in config order (SPEC §1.4, §3.2).
//!
//! One failure never aborts a task or the run: it is logged with the task, mapping and image,
//! the task is marked failed, and work goes on; the exit code says so at the end.

use std::time::{Instant, SystemTime};

use futures_util::StreamExt;

use crate::config::{Config, Mapping, Task};
use crate::plan::pattern::Pattern;
use crate::plan::{self, ImageJob, RegistryLocation, TagSource};
use crate::registry::{Registry, Repository};
use crate::relay::{self, native::CopyOutcome, native::NativeRelay};
use crate::report::{ImageReport, ImageResult, RunOutcome, TaskReport, human_bytes};

/// Runs every task that `filter` selects, once.
pub async fn run(config: &Config, filter: &Pattern) -> Result<RunOutcome, String> {
    relay::check_config(config)?;
    let selected: Vec<&Task> = config
        .tasks
        .iter()
        .filter(|t| filter.matches(&t.name))
        .collect();
    if let Some(task) = selected.iter().find(|t| t.is_periodic()) {
        return Err(format!(
            "not supported yet: task '{}' has an 'interval', and periodic tasks need daemon mode, \
             which this version does not have; remove 'interval' to run the task once (e.g. from cron)",
            task.name
        ));
    }
    let relay = NativeRelay::new(config.native, config.skopeo.certs_dir());
    let mut outcome = RunOutcome::default();
    for task in selected {
        let report = run_task(task, &relay).await;
        outcome.failed |= report.failed();
        outcome.tasks.push(report);
    }
    Ok(outcome)
}

/// One run of one task: every mapping, every image; never stops at the first failure.
pub async fn run_task(task: &Task, relay: &NativeRelay) -> TaskReport {
    let started = Instant::now();
    tracing::info!(
        task = %task.name,
        source = %task.source.registry,
        target = %task.target.registry,
        "syncing task"
    );
    let mut report = TaskReport::new(&task.name);
    report.started = SystemTime::now();
    for (index, mapping) in task.mappings.iter().enumerate() {
        tracing::info!(from = %mapping.rule.from(), to = %mapping.rule.to(), "mapping");
        match run_mapping(task, mapping, relay).await {
            Ok(images) => report.images.extend(images),
            Err(reason) => {
                tracing::error!(
                    task = %task.name,
                    mapping = index + 1,
                    from = %mapping.rule.from(),
                    "mapping failed: {reason}"
                );
                report.mapping_failures += 1;
            }
        }
    }
    report.finished = SystemTime::now();
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
    relay: &NativeRelay,
) -> Result<Vec<ImageReport>, String> {
    let source_location = RegistryLocation::parse(&task.source.registry)
        .map_err(|e| format!("source registry: {e}"))?;
    let target_location = RegistryLocation::parse(&task.target.registry)
        .map_err(|e| format!("target registry: {e}"))?;
    let source = relay.client(&source_location.host, &task.source)?;
    let target = relay.client(&target_location.host, &task.target)?;
    let plan = plan::plan_mapping(
        mapping,
        &source_location,
        &target_location,
        &RegistryTags(&source),
    )
    .await?;
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
    let copies = futures_util::stream::iter(plan.jobs.iter())
        .map(|job| copy_one(task, job, relay, &source, &target))
        .buffered(relay.parallel_images());
    images.extend(copies.collect::<Vec<_>>().await);
    Ok(images)
}

async fn copy_one(
    task: &Task,
    job: &ImageJob,
    relay: &NativeRelay,
    source: &Registry,
    target: &Registry,
) -> ImageReport {
    let started = Instant::now();
    tracing::debug!(
        task = %task.name,
        source = %job.source,
        target = %job.target,
        platform = %job.platform.as_config_text(),
        "syncing tag"
    );
    let result = match relay.copy(job, source, target).await {
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
            "image copied ({})",
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
