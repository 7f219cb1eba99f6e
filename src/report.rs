//! What a run did: per image and per task, for the log, the exit code and (later) metrics and
//! the status endpoint. Plain data; nothing here talks to the network or the log.

use std::time::{Duration, SystemTime};

use crate::failure::FailureKind;

/// The result of one image job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageResult {
    /// The target already held the same digest; nothing was written.
    UpToDate,
    /// The image was written; `bytes` counts what was sent to the target: blob and manifest
    /// bytes (mounted and existing blobs cost nothing and are not counted; the skopeo relay
    /// cannot count and reports 0).
    Copied {
        /// Bytes sent to the target.
        bytes: u64,
    },
    /// The job failed; the reason names what went wrong and where.
    Failed {
        /// What went wrong and where.
        reason: String,
        /// What kind of failure it was, for the counts by kind.
        kind: FailureKind,
    },
    /// The job was not done because the rate limit of `registry` (a host) ran out in this
    /// run (docs/behaviour.md, "Rate limits"); it waits for the next run. The run logs one
    /// line per registry for all of these, not one per image.
    NotAttempted {
        /// The registry host whose rate limit ran out.
        registry: String,
        /// What the registry said, or how long it asked to wait.
        reason: String,
    },
    /// The image was left out on purpose, not for an error (`min-age`: "too young, N h left");
    /// nothing was written.
    Skipped {
        /// Why.
        reason: String,
    },
}

impl ImageResult {
    /// A stable name of the result, for metrics labels and machine-readable output:
    /// `copied`, `up_to_date`, `skipped`, `failed` or `not_attempted`.
    pub fn label(&self) -> &'static str {
        match self {
            ImageResult::UpToDate => "up_to_date",
            ImageResult::Copied { .. } => "copied",
            ImageResult::Skipped { .. } => "skipped",
            ImageResult::Failed { .. } => "failed",
            ImageResult::NotAttempted { .. } => "not_attempted",
        }
    }
}

/// One image job's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReport {
    /// The source image as logged (`registry/repository:tag`).
    pub source: String,
    /// The target image as logged.
    pub target: String,
    /// What happened.
    pub result: ImageResult,
    /// The job's own time, without waiting for a copy slot.
    pub duration: Duration,
}

/// One run of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    /// The task's name.
    pub task: String,
    /// When the run started.
    pub started: SystemTime,
    /// When it finished (equal to `started` until then).
    pub finished: SystemTime,
    /// Every image job's outcome, in the order they finished per mapping.
    pub images: Vec<ImageReport>,
    /// Mappings that failed before any image job could be made (listing, planning), or
    /// that selected no image at all.
    pub mapping_failures: usize,
    /// Repositories of a planned mapping that could not be planned (the tag listing failed,
    /// an invalid path): not images, so not counted as failed images.
    pub repository_failures: usize,
    /// The kind of each mapping and repository failure, in no particular order (a failed
    /// image's kind is in its [`ImageResult::Failed`]).
    pub failure_kinds: Vec<FailureKind>,
    /// A stop (SIGINT/SIGTERM) came while this run was going: some work may not have been
    /// done, so the counts are incomplete.
    pub interrupted: bool,
}

impl TaskReport {
    /// An empty report of a run of `task` starting now.
    pub fn new(task: &str) -> Self {
        let now = SystemTime::now();
        TaskReport {
            task: task.to_string(),
            started: now,
            finished: now,
            images: Vec::new(),
            mapping_failures: 0,
            repository_failures: 0,
            failure_kinds: Vec::new(),
            interrupted: false,
        }
    }

    /// The run's result as `/status` and the metrics name it: `interrupted` (a stop cut it
    /// short), `failed` (any failure), or `ok`.
    pub fn result(&self) -> &'static str {
        if self.interrupted {
            "interrupted"
        } else if self.failed() {
            "failed"
        } else {
            "ok"
        }
    }

    /// The task's `failed` flag of the original: any failure in this run. Images left
    /// undone by a used-up rate limit count too: the target is not in sync (exit 1).
    pub fn failed(&self) -> bool {
        self.failures() > 0 || self.not_attempted() > 0
    }

    /// Everything that failed in this run: images, repositories and mappings. Images left
    /// for the next run by a rate limit are counted apart ([`Self::not_attempted`]).
    pub fn failures(&self) -> usize {
        self.mapping_failures + self.repository_failures + self.failed_images()
    }

    /// Every failure of this run (those [`Self::failures`] counts) by kind, one entry per
    /// kind of [`FailureKind::ALL`], in that order, zeros included.
    pub fn failures_by_kind(&self) -> Vec<(FailureKind, usize)> {
        let image_kinds = self.images.iter().filter_map(|i| match &i.result {
            ImageResult::Failed { kind, .. } => Some(*kind),
            _ => None,
        });
        let kinds: Vec<FailureKind> = image_kinds
            .chain(self.failure_kinds.iter().copied())
            .collect();
        FailureKind::ALL
            .iter()
            .map(|&kind| (kind, kinds.iter().filter(|k| **k == kind).count()))
            .collect()
    }

    /// Images copied in this run.
    pub fn copied(&self) -> usize {
        self.count(|r| matches!(r, ImageResult::Copied { .. }))
    }

    /// Images found up to date in this run.
    pub fn up_to_date(&self) -> usize {
        self.count(|r| matches!(r, ImageResult::UpToDate))
    }

    /// Images left out on purpose (see [`ImageResult::Skipped`]).
    pub fn skipped(&self) -> usize {
        self.count(|r| matches!(r, ImageResult::Skipped { .. }))
    }

    /// Image jobs that failed in this run.
    pub fn failed_images(&self) -> usize {
        self.count(|r| matches!(r, ImageResult::Failed { .. }))
    }

    /// Images left for the next run because a registry's rate limit ran out.
    pub fn not_attempted(&self) -> usize {
        self.count(|r| matches!(r, ImageResult::NotAttempted { .. }))
    }

    /// Per registry host whose rate limit ran out: how many images were left, and the
    /// reason of the first of them; in the order the hosts first appear.
    pub fn not_attempted_by_registry(&self) -> Vec<(String, usize, String)> {
        let mut hosts: Vec<(String, usize, String)> = Vec::new();
        for image in &self.images {
            if let ImageResult::NotAttempted { registry, reason } = &image.result {
                match hosts.iter_mut().find(|(host, _, _)| host == registry) {
                    Some((_, count, _)) => *count += 1,
                    None => hosts.push((registry.clone(), 1, reason.clone())),
                }
            }
        }
        hosts
    }

    /// Bytes sent to the target in this run (blobs and manifests).
    pub fn bytes(&self) -> u64 {
        self.images
            .iter()
            .map(|i| match i.result {
                ImageResult::Copied { bytes } => bytes,
                _ => 0,
            })
            .sum()
    }

    fn count(&self, pred: impl Fn(&ImageResult) -> bool) -> usize {
        self.images.iter().filter(|i| pred(&i.result)).count()
    }
}

#[cfg(test)]
impl ImageResult {
    /// A failed image of `kind`, for tests of the report's readers.
    pub(crate) fn failed(kind: FailureKind) -> ImageResult {
        ImageResult::Failed {
            reason: format!("a failure of kind {kind}"),
            kind,
        }
    }
}

#[cfg(test)]
impl TaskReport {
    /// A report of `task` with one image per result, for tests of the report's readers.
    pub(crate) fn with_results(task: &str, results: Vec<ImageResult>) -> TaskReport {
        let mut report = TaskReport::new(task);
        report.images = results
            .into_iter()
            .map(|result| ImageReport {
                source: "s".into(),
                target: "t".into(),
                result,
                duration: Duration::ZERO,
            })
            .collect();
        report
    }
}

/// What a whole run (all selected tasks) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// Each selected task's report, in config order.
    pub tasks: Vec<TaskReport>,
    /// Any task failed: exit code 1 (docs/behaviour.md#exit-codes).
    pub failed: bool,
}

/// Bytes in a unit a person reads at a glance.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_flags() {
        let mut report = TaskReport::new("t");
        assert!(!report.failed());
        for result in [
            ImageResult::UpToDate,
            ImageResult::Copied { bytes: 10 },
            ImageResult::Copied { bytes: 5 },
            ImageResult::Failed {
                reason: "x".into(),
                kind: FailureKind::NotFound,
            },
            ImageResult::NotAttempted {
                registry: "r.io".into(),
                reason: "rate limit of r.io exhausted".into(),
            },
            ImageResult::NotAttempted {
                registry: "r.io".into(),
                reason: "later".into(),
            },
            ImageResult::Skipped {
                reason: "too young, 3 h left".into(),
            },
        ] {
            report.images.push(ImageReport {
                source: "s".into(),
                target: "t".into(),
                result,
                duration: Duration::ZERO,
            });
        }
        assert_eq!(
            (
                report.up_to_date(),
                report.copied(),
                report.failed_images(),
                report.skipped()
            ),
            (1, 2, 1, 1)
        );
        assert_eq!(report.bytes(), 15);
        assert!(report.failed());
        assert_eq!(report.not_attempted(), 2);
        assert_eq!(
            report.not_attempted_by_registry(),
            vec![(
                "r.io".to_string(),
                2,
                "rate limit of r.io exhausted".to_string()
            )]
        );
        let labels: Vec<_> = report.images.iter().map(|i| i.result.label()).collect();
        assert_eq!(
            labels,
            [
                "up_to_date",
                "copied",
                "copied",
                "failed",
                "not_attempted",
                "not_attempted",
                "skipped"
            ]
        );
    }

    #[test]
    fn images_left_by_a_rate_limit_fail_the_task() {
        let mut report = TaskReport::new("t");
        report.images.push(ImageReport {
            source: "s".into(),
            target: "t".into(),
            result: ImageResult::NotAttempted {
                registry: "r.io".into(),
                reason: "x".into(),
            },
            duration: Duration::ZERO,
        });
        assert!(report.failed());
        assert_eq!(report.failed_images(), 0);
    }

    #[test]
    fn failures_are_counted_by_kind_images_mappings_and_repositories_alike() {
        let mut report = TaskReport::with_results(
            "t",
            vec![
                ImageResult::failed(FailureKind::NotFound),
                ImageResult::failed(FailureKind::NotFound),
                ImageResult::NotAttempted {
                    registry: "r.io".into(),
                    reason: "later".into(),
                },
            ],
        );
        report.mapping_failures = 1;
        report.repository_failures = 1;
        report.failure_kinds = vec![FailureKind::Auth, FailureKind::Network];
        let counts = report.failures_by_kind();
        assert_eq!(
            counts,
            [
                (FailureKind::Auth, 1),
                (FailureKind::NotFound, 2),
                (FailureKind::Tls, 0),
                (FailureKind::RateLimit, 0),
                (FailureKind::Network, 1),
                (FailureKind::Other, 0),
            ]
        );
        let total: usize = counts.iter().map(|(_, n)| n).sum();
        assert_eq!(total, report.failures());
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
