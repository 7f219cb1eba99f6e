//! Relays execute image jobs. `native` is our in-process engine and the default; the skopeo
//! and docker relays of the original are kept for compatibility, with the up-to-date
//! pre-check of docs/behaviour.md#up-to-date-checks in front of them.

pub mod age;
mod check;
pub mod docker;
pub mod manifest_cache;
pub mod native;
pub mod skopeo;
pub mod trust;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::config::{Config, Location, PlatformChoice, RelayKind};
use crate::failure::Failure;
use crate::plan::ImageJob;
use crate::registry::Credentials;
use crate::stop::Stop;
use crate::store::ImageStore;
use docker::DockerRelay;
use manifest_cache::ManifestCache;
use native::NativeRelay;
use skopeo::SkopeoRelay;

/// The fewest image jobs in flight at once (see [`Relay::parallel_checks`]).
const MIN_PARALLEL_CHECKS: usize = 16;

/// What a successful job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOutcome {
    /// The target already held the wanted digest.
    UpToDate,
    /// Manifests were written.
    Copied {
        /// What was sent to the target, blobs and manifests (the referrers' included).
        bytes: u64,
        /// How each blob got there, when the relay can tell (the native relay only).
        blobs: Option<BlobTally>,
        /// Referrers and legacy cosign tags copied with the image (`referrers: true`).
        referrers: usize,
    },
    /// The target held the image already; referrers or legacy cosign tags it lacked were
    /// copied (`referrers: true`: images are often signed after they were mirrored).
    ReferrersCopied {
        /// What was sent to the target.
        bytes: u64,
        /// How many referrers and legacy cosign tags were copied.
        referrers: usize,
    },
    /// Left out on purpose before anything was written (`min-age`).
    Skipped {
        /// Why, e.g. "too young, 3 h left".
        reason: String,
    },
    /// A stop was requested while the job waited for a copy slot: nothing was written.
    NotStarted,
    /// The copy was in flight when the stop aborted it (docs/behaviour.md#signals-and-restarts):
    /// no tag was moved, and what the relay started outside the registries is ended (skopeo)
    /// or left for [`Relay::clean_up_abandoned`] (docker).
    Aborted,
}

/// How the blobs of one copied image reached the target, so a copy that sent no blob data
/// can say why instead of reporting "0 B transferred".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobTally {
    /// Blobs streamed from the source by this job.
    pub sent: usize,
    /// Blobs another image of the same run (or an earlier run of the daemon) had already sent
    /// to this target, found through the relay's record of blobs in flight and mounted or
    /// found present.
    pub by_another_image: usize,
    /// Blobs the target held before (a `HEAD` found them, or a mount from the source
    /// repository on the same registry succeeded).
    pub on_target: usize,
    /// Of the bytes sent, those of manifests.
    pub manifest_bytes: u64,
}

/// Why an image job did not succeed: a [`Failure`], typed up to the report, which counts the
/// rate-limited ones apart from the failed ones, and these by kind.
pub type JobError = Failure;

/// One job's way to the bound on copies running at once (`parallel-images`). Up-to-date checks
/// run before a job asks for a slot, so a run with little to copy is not held up by it; once a
/// stop is requested, a job still waiting wakes up and starts no copy. The time spent waiting is
/// kept, so that the job's reported time is its own work. It also carries the stop to the
/// relay, for copies in flight to end when it aborts them.
pub struct CopySlots<'a> {
    slots: &'a Semaphore,
    stop: &'a Stop,
    waited_micros: AtomicU64,
}

impl<'a> CopySlots<'a> {
    /// A job's way to the run's copy `slots`, obeying `stop`.
    pub fn new(slots: &'a Semaphore, stop: &'a Stop) -> Self {
        CopySlots {
            slots,
            stop,
            waited_micros: AtomicU64::new(0),
        }
    }

    /// Waits for a slot; `None` as soon as a stop is requested (also when one was before).
    pub async fn enter(&self) -> Option<SemaphorePermit<'a>> {
        let started = Instant::now();
        let permit = self
            .stop
            .until_requested(self.slots.acquire())
            .await
            .and_then(Result::ok);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.waited_micros.fetch_add(micros, Ordering::Relaxed);
        permit
    }

    /// The stop this job's copy obeys once it is in flight.
    pub fn stop(&self) -> &'a Stop {
        self.stop
    }

    /// How long this job waited for a slot.
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.waited_micros.load(Ordering::Relaxed))
    }
}

/// Everything a relay needs to know about the two sides of a job.
pub struct Sides<'a> {
    /// The source's store (a registry client or a layout), for up-to-date checks (and, for the
    /// native relay, the copy itself).
    pub source: &'a ImageStore,
    /// The target's store.
    pub target: &'a ImageStore,
    /// The config's view of the source: credentials, TLS choice.
    pub source_location: &'a Location,
    /// The config's view of the target.
    pub target_location: &'a Location,
    /// The credentials external tools (skopeo, the Docker daemon) get for the source: the
    /// config's `auth`, or the cloud token current when the mapping started.
    pub source_credentials: Option<Credentials>,
    /// The credentials external tools get for the target.
    pub target_credentials: Option<Credentials>,
    /// The task's `verbose` flag (docs/configuration.md#tasks).
    pub verbose: bool,
}

impl Sides<'_> {
    /// Whether a job may still ask both registries.
    ///
    /// # Errors
    ///
    /// [`JobError::RateLimited`] once the rate limit of either registry ran out in this run
    /// (docs/behaviour.md, "Rate limits").
    pub fn check_rate_limits(&self) -> Result<(), JobError> {
        match [self.source, self.target]
            .iter()
            .find_map(|r| r.rate_limit_exhausted())
        {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

/// The relay a config selects, with the manifest cache its up-to-date checks share.
pub struct Relay {
    engine: Engine,
    manifests: ManifestCache,
}

enum Engine {
    Native(NativeRelay),
    Skopeo(SkopeoRelay),
    Docker(DockerRelay),
}

impl Relay {
    /// Creates the config's relay, after the checks the original makes at that point; the
    /// compatibility relays check their tool (`skopeo --version`, a daemon ping) here, so a
    /// missing one stops the run before any task starts.
    ///
    /// # Errors
    ///
    /// When the config asks for something the relay cannot do ([`check_config`]), or the
    /// compatibility relay's tool is missing or its daemon unreachable.
    pub async fn new(config: &Config) -> Result<Relay, String> {
        check_config(config)?;
        if config.relay != RelayKind::Native {
            tracing::info!(
                relay = config.relay.name(),
                "relay '{}' runs for compatibility; 'relay: native' copies registry to registry \
                 in-process, without {}, keeps digests and skips what is unchanged",
                config.relay.name(),
                match config.relay {
                    RelayKind::Docker => "a Docker daemon",
                    _ => "skopeo",
                }
            );
        }
        let engine = match config.relay {
            RelayKind::Native => Engine::Native(NativeRelay::new(config.native.clone())),
            RelayKind::Skopeo => Engine::Skopeo(SkopeoRelay::new(&config.skopeo).await?),
            RelayKind::Docker => Engine::Docker(DockerRelay::new(&config.docker).await?),
        };
        Ok(Relay {
            engine,
            manifests: ManifestCache::open(&config.native.cache_dir),
        })
    }

    /// How many images may be copied at once.
    pub fn parallel_images(&self) -> usize {
        match &self.engine {
            Engine::Native(native) => native.parallel_images(),
            Engine::Skopeo(skopeo) => skopeo.parallel_images(),
            Engine::Docker(docker) => docker.parallel_images(),
        }
    }

    /// How many image jobs may be in flight at once, most of them in their up-to-date check:
    /// a few `HEAD` requests each, far cheaper than a copy, and on a run with nothing to do the
    /// whole work. Far-away registries make each check a round trip, so many go at once.
    pub fn parallel_checks(&self) -> usize {
        (self.parallel_images() * 4).max(MIN_PARALLEL_CHECKS)
    }

    /// After a stop aborted the copies in flight: undoes what they left behind outside the
    /// registries (the docker relay's pulled images and tags). The native relay leaves nothing
    /// (an unfinished copy moved no tag); the skopeo relay kills and reaps its skopeo and
    /// removes its auth files in the aborted job itself.
    pub async fn clean_up_abandoned(&self) {
        if let Engine::Docker(docker) = &self.engine {
            docker.remove_abandoned().await;
        }
    }

    /// Copies one image job. Errors name the image and say what failed.
    /// `slots` is taken after the up-to-date check, for the copy itself; when the stop it
    /// carries aborts the copy, the outcome is [`CopyOutcome::Aborted`].
    ///
    /// # Errors
    ///
    /// As the relay's own `copy`: the message names the image and says what failed.
    pub async fn copy(
        &self,
        job: &ImageJob,
        sides: &Sides<'_>,
        slots: &CopySlots<'_>,
    ) -> Result<CopyOutcome, JobError> {
        let stop = slots.stop();
        let aborted = Ok(CopyOutcome::Aborted);
        let manifests = &self.manifests;
        match &self.engine {
            // Dropping a native copy is safe: it puts a manifest only after everything the
            // manifest references is in place.
            Engine::Native(native) => stop
                .until_aborted(native.copy(job, sides.source, sides.target, manifests, slots))
                .await
                .unwrap_or(aborted),
            // Not dropped from outside: it kills and reaps its skopeo itself.
            Engine::Skopeo(skopeo) => skopeo.copy(job, sides, manifests, slots).await,
            // What a dropped copy added to the daemon is removed by `clean_up_abandoned`.
            Engine::Docker(docker) => stop
                .until_aborted(docker.copy(job, sides, manifests, slots))
                .await
                .unwrap_or(aborted),
        }
    }
}

/// Whether the target already holds what `job` would copy, decided as the `kind` of relay decides
/// it before copying (docs/behaviour.md#up-to-date-checks), with HEAD requests only (plus one GET
/// of a source index when a single platform is wanted and `manifests` does not know the answer
/// yet). `dregsy plan` uses it to say what a sync would skip, without creating the relay (no
/// skopeo or Docker daemon needed).
///
/// # Errors
///
/// When a side cannot be asked (refused, unreachable, the source image missing).
pub async fn up_to_date(
    kind: RelayKind,
    job: &ImageJob,
    source: &ImageStore,
    target: &ImageStore,
    manifests: &ManifestCache,
) -> Result<bool, JobError> {
    match kind {
        RelayKind::Native | RelayKind::Skopeo => {
            check::same_digest(job, source, target, manifests).await
        }
        RelayKind::Docker => {
            let target_ref =
                crate::registry::TagOrDigest::tag(&docker::target_tag(&job.target.target))
                    .map_err(JobError::from)?;
            check::same_image(job, &target_ref, source, target, manifests).await
        }
    }
}

/// Refuses mappings that use what only the native relay does (platform lists, referrers,
/// `min-age`, `verify`) under another relay, and what the native relay does not do yet. Both
/// `dregsy plan` and the sync call it, so neither pretends to honour such a mapping.
///
/// # Errors
/// The first such mapping, named by task and number, and what to do.
pub fn check_features(config: &Config) -> Result<(), String> {
    for task in &config.tasks {
        for (index, mapping) in task.mappings.iter().enumerate() {
            let mut used = Vec::new();
            if matches!(mapping.platform, PlatformChoice::Subset(_)) {
                used.push("a 'platform' list");
            }
            if mapping.referrers {
                used.push("'referrers'");
            }
            if mapping.min_age.is_some() {
                used.push("'min-age'");
            }
            if mapping.verify.is_some() {
                used.push("'verify'");
            }
            if used.is_empty() {
                continue;
            }
            let at = format!("task '{}', mapping #{}", task.name, index + 1);
            if config.relay != RelayKind::Native {
                return Err(format!(
                    "cannot create sync relay: relay '{}' does not support {} ({at}); use 'relay: native'",
                    config.relay.name(),
                    used.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// For `dregsy plan`: why a job whose target is not up to date would be left out instead of
/// copied (`min-age`: "too young, N h left"), or `None` when it would be copied.
///
/// # Errors
/// The source cannot be read, or the image's age cannot be told.
pub async fn skip_reason(
    job: &ImageJob,
    source: &ImageStore,
    manifests: &ManifestCache,
) -> Result<Option<String>, JobError> {
    let Some(min_age) = job.min_age else {
        return Ok(None);
    };
    let manifest = check::wanted_manifest(job, source, manifests).await?;
    let created = age::image_created(source, &job.source.repository, &manifest).await?;
    Ok(age::time_left(created, chrono::Utc::now(), min_age).map(age::too_young_text))
}

/// What `dregsy plan` shows for a job with `verify` that the target lacks: the refusal the copy
/// would meet (docs/configuration.md#verify), or `None` when a signature with the key is found
/// (or the job has no `verify`).
///
/// # Errors
/// The source image cannot be read.
pub async fn verify_refusal(
    job: &ImageJob,
    source: &ImageStore,
    manifests: &ManifestCache,
) -> Result<Option<String>, JobError> {
    let Some(verify) = &job.verify else {
        return Ok(None);
    };
    let manifest = check::wanted_manifest(job, source, manifests).await?;
    match trust::verify_job(job, source, &manifest, verify).await {
        Ok(()) => Ok(None),
        Err(e) => Ok(Some(e.to_string())),
    }
}

/// What `dregsy plan` shows for a job with `referrers: true`: what would travel with its image
/// ([`native::Travelling`]), found in `source`, whose repository's tags are `tags`.
///
/// # Errors
/// The source image or its referrers cannot be read (the copy would fail the same way).
pub async fn referrers_to_travel(
    job: &ImageJob,
    source: &ImageStore,
    manifests: &ManifestCache,
    tags: &std::collections::HashSet<String>,
) -> Result<native::Travelling, JobError> {
    native::travelling(job, source, manifests, tags).await
}

/// The checks the original makes when it creates the relay, before any
/// task runs: a config that loads can still be one no relay can execute.
///
/// # Errors
///
/// When a task needs what the configured relay cannot do (e.g. `platform: all` with the
/// docker relay); the message names the task.
pub fn check_config(config: &Config) -> Result<(), String> {
    check_features(config)?;
    let platform_all = config
        .tasks
        .iter()
        .flat_map(|t| &t.mappings)
        .any(|m| m.platform == PlatformChoice::All);
    if config.relay == RelayKind::Docker && platform_all {
        return Err(
            "cannot create sync relay: relay 'docker' does not support mappings with 'platform: all'"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    #[tokio::test]
    async fn a_job_waiting_for_a_copy_slot_wakes_up_on_stop() {
        let slots = Semaphore::new(1);
        let stop = Stop::new();
        // The only slot is taken by a copy in flight, which goes on after the stop.
        let in_flight = CopySlots::new(&slots, &stop)
            .enter()
            .await
            .expect("a free slot");
        let waiting = CopySlots::new(&slots, &stop);
        let enter = waiting.enter();
        tokio::pin!(enter);
        assert!((&mut enter).now_or_never().is_none(), "no slot is free");
        stop.request();
        // The bound only turns a hang into a failure.
        let entered = tokio::time::timeout(Duration::from_secs(10), enter)
            .await
            .expect("the waiting job wakes up while the slot is still taken");
        assert!(entered.is_none(), "a stopped job starts no copy");
        drop(in_flight);
        assert!(
            waiting.enter().await.is_none(),
            "nor does one that asks after the stop, with a slot free"
        );
    }
}
