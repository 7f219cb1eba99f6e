//! One image job: its copy through the relay, its result for the report, and its log line.

use std::time::Instant;

use crate::clients::Clients;
use crate::config::{Location, Task};
use crate::plan::ImageJob;
use crate::relay::{BlobTally, CopyOutcome, CopySlots, JobError, Relay, Sides};
use crate::report::{ImageReport, ImageResult, human_bytes};

/// Runs one image job and logs its line; `None` when a stop kept it from starting its copy or
/// aborted it.
pub(super) async fn copy_one(
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
    let mut travelled = Travelled::default();
    let result = match relay.copy(job, sides, slots).await {
        Ok(CopyOutcome::UpToDate) => ImageResult::UpToDate,
        Ok(CopyOutcome::Copied {
            bytes,
            blobs,
            referrers,
        }) => {
            travelled = Travelled {
                blobs,
                referrers,
                image_held: false,
            };
            ImageResult::Copied { bytes }
        }
        // Counted as copied: the run wrote to the target, and its bytes count as sent.
        Ok(CopyOutcome::ReferrersCopied { bytes, referrers }) => {
            travelled = Travelled {
                blobs: None,
                referrers,
                image_held: true,
            };
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
    log_image(task, &report, &travelled);
    Some(report)
}

/// What a relay told about a copy beyond its bytes, for the image's log line.
#[derive(Debug, Default)]
pub struct Travelled {
    /// How the image's blobs reached the target, when the relay can tell (native only).
    pub blobs: Option<BlobTally>,
    /// Referrers and legacy cosign tags copied with the image (`referrers: true`).
    pub referrers: usize,
    /// The target held the image already: only referrers were copied.
    pub image_held: bool,
}

/// The result of a job that did not succeed: left for the next run when a registry's rate
/// limit ran out, failed (with the failure's kind) otherwise.
pub(super) fn result_of(error: JobError) -> ImageResult {
    match error {
        JobError::RateLimited { registry, error } => ImageResult::NotAttempted {
            registry,
            reason: error.to_string(),
        },
        failure => ImageResult::Failed {
            kind: failure.kind(),
            reason: failure.to_string(),
        },
    }
}

/// The error of a task's source or target registry whose rate limit ran out, if one did.
pub(super) fn exhausted_side(task: &Task, clients: &Clients) -> Option<JobError> {
    [&task.source, &task.target]
        .into_iter()
        .filter_map(Location::registry_location)
        .find_map(|l| clients.rate_limits().exhausted(l.host.api_host()))
        .map(JobError::from)
}

/// The message of an `image copied` line: what was sent, and, when no blob data was sent
/// (or only part of it), why: blobs another image had sent already, or that the target held;
/// and the referrers that travelled with the image (docs/behaviour.md#referrers).
pub fn copied_message(bytes: u64, travelled: &Travelled) -> String {
    let referrers = match travelled.referrers {
        1 => "1 referrer".to_string(),
        n => format!("{n} referrers"),
    };
    if travelled.image_held {
        return format!(
            "image up to date; {referrers} copied ({} transferred)",
            human_bytes(bytes)
        );
    }
    let mut message = blobs_message(bytes, travelled.blobs.as_ref());
    if travelled.referrers > 0 {
        message.push_str(&format!(", with {referrers}"));
    }
    message
}

/// [`copied_message`] for the image itself.
fn blobs_message(bytes: u64, blobs: Option<&BlobTally>) -> String {
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
pub(super) fn log_image(task: &Task, image: &ImageReport, travelled: &Travelled) {
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
            copied_message(*bytes, travelled)
        ),
        ImageResult::Skipped { reason } => tracing::info!(
            task = %task.name,
            source = %image.source,
            target = %image.target,
            "image skipped: {reason}"
        ),
        ImageResult::Failed { reason, .. } => tracing::error!(
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
            blobs_message(528, Some(&shared)),
            "image copied (528 B of manifests transferred; 2 blobs already sent by another image)"
        );
        let mixed = BlobTally {
            sent: 1,
            by_another_image: 0,
            on_target: 1,
            manifest_bytes: 500,
        };
        assert_eq!(
            blobs_message(2548, Some(&mixed)),
            "image copied (2.5 KiB transferred; 1 blob already on the target)"
        );
        assert_eq!(
            blobs_message(0, None),
            "image copied (bytes sent not counted by this relay)"
        );
        assert_eq!(
            blobs_message(2048, None),
            "image copied (2.0 KiB transferred)"
        );
    }

    #[test]
    fn referrers_that_travelled_are_named() {
        let with = Travelled {
            blobs: None,
            referrers: 2,
            image_held: false,
        };
        assert_eq!(
            copied_message(2048, &with),
            "image copied (2.0 KiB transferred), with 2 referrers"
        );
        let only = Travelled {
            blobs: None,
            referrers: 1,
            image_held: true,
        };
        assert_eq!(
            copied_message(14, &only),
            "image up to date; 1 referrer copied (14 B transferred)"
        );
    }
}
