//! What a run did: per image and per task, for the log, the exit code and (later) metrics and
//! the status endpoint. Plain data; nothing here talks to the network or the log.

use std::time::{Duration, SystemTime};

/// The result of one image job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageResult {
    /// The target already held the same digest; nothing was written.
    UpToDate,
    /// The image was written; `bytes` counts blob bytes transferred (mounted and existing
    /// blobs cost nothing and are not counted).
    Copied { bytes: u64 },
    /// The job failed; the reason names what went wrong and where.
    Failed { reason: String },
    /// The image was left out on purpose, not for an error (`min-age`: "too young, N h left");
    /// nothing was written.
    Skipped { reason: String },
}

/// One image job's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReport {
    pub source: String,
    pub target: String,
    pub result: ImageResult,
    pub duration: Duration,
}

/// One run of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    pub task: String,
    pub started: SystemTime,
    pub finished: SystemTime,
    pub images: Vec<ImageReport>,
    /// Mappings that failed before any image job could be made (listing, planning).
    pub mapping_failures: usize,
    /// A stop (SIGINT/SIGTERM) came while this run was going: some work may not have been
    /// done, so the counts are incomplete.
    pub interrupted: bool,
}

impl TaskReport {
    pub fn new(task: &str) -> Self {
        let now = SystemTime::now();
        TaskReport {
            task: task.to_string(),
            started: now,
            finished: now,
            images: Vec::new(),
            mapping_failures: 0,
            interrupted: false,
        }
    }

    /// The task's `failed` flag of the original: any failure in this run.
    pub fn failed(&self) -> bool {
        self.mapping_failures > 0 || self.failed_images() > 0
    }

    pub fn copied(&self) -> usize {
        self.count(|r| matches!(r, ImageResult::Copied { .. }))
    }

    pub fn up_to_date(&self) -> usize {
        self.count(|r| matches!(r, ImageResult::UpToDate))
    }

    /// Images left out on purpose (see [`ImageResult::Skipped`]).
    pub fn skipped(&self) -> usize {
        self.count(|r| matches!(r, ImageResult::Skipped { .. }))
    }

    pub fn failed_images(&self) -> usize {
        self.count(|r| matches!(r, ImageResult::Failed { .. }))
    }

    /// Blob bytes transferred in this run.
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

/// What a whole run (all selected tasks) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
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
            ImageResult::Failed { reason: "x".into() },
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
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
