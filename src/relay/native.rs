//! The native relay: copies images registry to registry in-process, only what changed
//! (docs/behaviour.md#up-to-date-checks; README.md, "The native engine").
//!
//! Per job: HEAD the source, decide which manifest the target must hold (the whole index, or
//! one platform's manifest), HEAD the target, and stop there when the digests agree. Otherwise
//! copy children before parents and blobs before manifests, so a target tag never points at
//! something missing, even when the copy is interrupted. Blobs stream through, verified by size
//! and digest on the way; a blob several images share is transferred once per run.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use futures_util::future::try_join_all;
use tokio::sync::Semaphore;

use super::manifest_cache::ManifestCache;
use super::{BlobTally, CopyOutcome, CopySlots, JobError, age, check, trust};
use crate::config::NativeSettings;
use crate::plan::ImageJob;
use crate::progress;
use crate::registry::{
    Descriptor, Digest, Manifest, Repository, TagOrDigest, Tries, UploadSession,
};
use crate::store::{ImageStore, Mount};

mod referrers;

pub use referrers::Travelling;
pub(crate) use referrers::travelling;

/// How deep indexes may nest (an index of indexes is legal but rare; deeper is a loop or abuse).
const MAX_INDEX_DEPTH: usize = 3;

/// One blob on one target registry, locked while it is being made present; the value is a
/// repository known to hold it there (a mount source for the next repository that needs it).
type BlobSlot = Arc<tokio::sync::Mutex<Option<Holder>>>;

/// A repository that holds a blob, and the client that put it there: only that client (same
/// credentials) is known to be allowed to read it, so only it mounts from there.
struct Holder {
    repository: Repository,
    client: ImageStore,
}

/// The in-process engine. One per run (or per daemon lifetime): it holds the per-target record
/// of which repository holds which blob, and the concurrency bounds.
pub struct NativeRelay {
    settings: NativeSettings,
    blob_slots: Arc<Semaphore>,
    blobs: Mutex<HashMap<(String, Digest), BlobSlot>>,
    /// Mounts a target registry refused, as (registry, from, to): not asked again this run.
    refused_mounts: Mutex<HashSet<(String, Repository, Repository)>>,
    /// What `referrers: true` learns along the way (source tag lists; the rest is in the
    /// manifest cache).
    referrer_records: Box<referrers::Records>,
}

impl NativeRelay {
    /// A relay with the config's concurrency bounds; retries follow each registry client's
    /// [`RetryPolicy`](crate::registry::RetryPolicy).
    pub fn new(settings: NativeSettings) -> Self {
        NativeRelay {
            blob_slots: Arc::new(Semaphore::new(settings.parallel_blobs)),
            settings,
            blobs: Mutex::new(HashMap::new()),
            refused_mounts: Mutex::new(HashSet::new()),
            referrer_records: Box::default(),
        }
    }

    /// How many images may be copied at once.
    pub fn parallel_images(&self) -> usize {
        self.settings.parallel_images
    }

    /// Copies one image job. Errors name the image and say what failed.
    ///
    /// The up-to-date decision is `check::wanted_source`'s, with `manifests` (index digest
    /// and platform → child) so that a run with nothing to do sends no manifest GET.
    ///
    /// # Errors
    ///
    /// When a check or a transfer fails; the message names the image and says what failed.
    pub async fn copy(
        &self,
        job: &ImageJob,
        source: &ImageStore,
        target: &ImageStore,
        manifests: &ManifestCache,
        slots: &CopySlots<'_>,
    ) -> Result<CopyOutcome, JobError> {
        let src_repo = &job.source.repository;
        let dst_repo = &job.target.repository;
        // Both sides at once: on a no-op run their HEADs are all the work, and far-away
        // registries make each one a round trip.
        let (wanted, existing) = tokio::join!(
            check::wanted_source(job, source, manifests),
            target.head_manifest(dst_repo, &job.target.target),
        );
        let wanted = wanted?;
        let existing = existing.map_err(JobError::from)?;
        let copy = Copy {
            relay: self,
            cache: manifests,
            source,
            target,
            src_repo,
            dst_repo,
        };
        if check::holds(existing.as_ref(), &wanted) {
            if !job.referrers {
                return Ok(CopyOutcome::UpToDate);
            }
            // The image is there; its referrers may be new (images are often signed later).
            let subjects = held_subjects(job, source, manifests, wanted).await?;
            let records = referrers::TargetRecords::Believed;
            let listed = job.listed_tags.as_ref();
            return Ok(match copy.referrers(&subjects, listed, records).await? {
                None => CopyOutcome::UpToDate,
                Some(written) => CopyOutcome::ReferrersCopied {
                    bytes: written.bytes,
                    referrers: written.manifests,
                },
            });
        }
        let Some(_slot) = slots.enter().await else {
            return Ok(CopyOutcome::NotStarted);
        };
        let digest = wanted.digest.clone();
        let from_index = wanted.rewritten_from.clone();
        let manifest = match wanted.manifest() {
            Some(m) => m,
            None => check::fetch_wanted(job, source, &digest, from_index.as_ref()).await?,
        };
        if let Some(skipped) = checks_before_writing(job, source, &manifest).await? {
            return Ok(skipped);
        }
        if from_index.is_some() {
            log_rewritten(job, &manifest);
        }
        let mut tally = BlobTally::default();
        let mut bytes = copy
            .manifest_tree(&manifest, &job.target.target, 0, &mut tally)
            .await?;
        let mut referrers = 0;
        if job.referrers {
            let written = copy
                .copied_referrers(job, &manifest, from_index.as_ref())
                .await?;
            bytes += written.bytes;
            referrers = written.manifests;
        }
        Ok(CopyOutcome::Copied {
            bytes,
            blobs: Some(tally),
            referrers,
        })
    }

    /// The slot of one blob on one target registry.
    fn blob_entry(&self, target: &ImageStore, digest: &Digest) -> BlobSlot {
        let key = (target.name(), digest.clone());
        match self.blobs.lock() {
            Ok(mut blobs) => blobs.entry(key).or_default().clone(),
            // A poisoned map only loses sharing, never correctness: use a fresh entry.
            Err(_) => Arc::default(),
        }
    }

    /// Whether `target` refused to mount from `from` into `to` earlier in the run.
    fn mount_refused(&self, target: &ImageStore, from: &Repository, to: &Repository) -> bool {
        let key = (target.name(), from.clone(), to.clone());
        self.refused_mounts
            .lock()
            .is_ok_and(|refused| refused.contains(&key))
    }

    fn remember_refused_mount(&self, target: &ImageStore, from: &Repository, to: &Repository) {
        if let Ok(mut refused) = self.refused_mounts.lock() {
            refused.insert((target.name(), from.clone(), to.clone()));
        }
    }
}

/// How one blob came to be in the target repository.
enum Arrival {
    /// Streamed from the source by this job: the bytes sent.
    Sent(u64),
    /// Another image had already sent it (this run, or an earlier run of the daemon).
    ByAnotherImage,
    /// The target held it already.
    OnTarget,
}

/// Says that a platform list rewrites the index `manifest` (docs/behaviour.md#platform-choice).
fn log_rewritten(job: &ImageJob, manifest: &Manifest) {
    tracing::info!(
        source = %job.source,
        target = %job.target,
        digest = %manifest.digest,
        "copying the platforms {} of the index: rewritten, so the target's index digest differs from the source's",
        job.platform.as_config_text()
    );
}

/// The checks before anything of `job` is written (docs/configuration.md#min-age, #verify):
/// `Some(outcome)` when the image is left out for now (too young).
async fn checks_before_writing(
    job: &ImageJob,
    source: &ImageStore,
    manifest: &Manifest,
) -> Result<Option<CopyOutcome>, JobError> {
    if let Some(min_age) = job.min_age {
        let created = age::image_created(source, &job.source.repository, manifest)
            .await
            .map_err(|e| e.context(format_args!("source image {}", job.source)))?;
        if let Some(left) = age::time_left(created, chrono::Utc::now(), min_age) {
            return Ok(Some(CopyOutcome::Skipped {
                reason: age::too_young_text(left),
            }));
        }
    }
    if let Some(verify) = &job.verify {
        trust::verify_job(job, source, manifest, verify).await?;
    }
    Ok(None)
}

/// The subjects of an up-to-date job, for its referrers: an image known not to be an index
/// is its own only subject; an index's children are in the manifest cache (content-addressed),
/// else in the manifest the decision downloaded or a GET of it.
async fn held_subjects(
    job: &ImageJob,
    source: &ImageStore,
    cache: &ManifestCache,
    wanted: check::Wanted,
) -> Result<Vec<Digest>, JobError> {
    let digest = wanted.digest.clone();
    let not_index = wanted.index == Some(false)
        || (wanted.index.is_none()
            && cache
                .media_type(&digest)
                .is_some_and(|t| !crate::registry::media_type::is_index(&t)));
    if not_index {
        return Ok(vec![digest]);
    }
    if let Some(children) = cache.children(&digest) {
        return Ok(referrers::subjects(job, &digest, Some(children)));
    }
    let from_index = wanted.rewritten_from.clone();
    let manifest = match wanted.manifest() {
        Some(manifest) => manifest,
        None => check::fetch_wanted(job, source, &digest, from_index.as_ref()).await?,
    };
    let children = referrers::children_of(&manifest)?;
    if let Some(children) = &children {
        cache.remember_children(&digest, children);
    }
    Ok(referrers::subjects(job, &digest, children))
}

/// One copy in progress between two repositories.
struct Copy<'a> {
    relay: &'a NativeRelay,
    /// Content-addressed facts, and what targets hold (`referrers: true`).
    cache: &'a ManifestCache,
    source: &'a ImageStore,
    target: &'a ImageStore,
    src_repo: &'a Repository,
    dst_repo: &'a Repository,
}

impl Copy<'_> {
    /// Copies a manifest and everything it references, then puts it as `push_as`.
    /// Returns the bytes sent, blobs and manifests; `tally` says how each blob got there.
    async fn manifest_tree(
        &self,
        manifest: &Manifest,
        push_as: &TagOrDigest,
        depth: usize,
        tally: &mut BlobTally,
    ) -> Result<u64, JobError> {
        let bytes = self.contents(manifest, depth, tally).await?;
        // An index's children are reached through it; only the image itself is a root.
        let put = if depth == 0 {
            self.target
                .put_manifest(self.dst_repo, push_as, manifest)
                .await
        } else {
            self.target
                .put_child_manifest(self.dst_repo, manifest)
                .await
        };
        put.map_err(JobError::from)?;
        // The manifest's bytes went over the wire too; count them as the blobs are counted.
        let manifest_bytes = manifest.bytes.len() as u64;
        progress::transferred(manifest_bytes);
        tally.manifest_bytes += manifest_bytes;
        Ok(bytes + manifest_bytes)
    }

    /// Makes everything `manifest` references present in the target: child manifests (with
    /// their own contents) or blobs. Returns the bytes transferred (child manifests included);
    /// `tally` says how each blob got there.
    async fn contents(
        &self,
        manifest: &Manifest,
        depth: usize,
        tally: &mut BlobTally,
    ) -> Result<u64, JobError> {
        manifest.check_pushable().map_err(JobError::from)?;
        let mut bytes = 0;
        if manifest.is_index() {
            if depth >= MAX_INDEX_DEPTH {
                return Err(format!(
                    "index {} nests deeper than {MAX_INDEX_DEPTH} levels",
                    manifest.digest
                )
                .into());
            }
            for child in manifest.children().map_err(JobError::from)? {
                // Jobs copying the same child into the same repository take turns, as for
                // blobs: while one job PUTs a manifest, Distribution's filesystem storage
                // rewrites its link, and another job's index PUT that reads the link then
                // fails (`MANIFEST_BLOB_UNKNOWN`). Manifest and blob digests never collide,
                // so the blob record serves.
                let entry = self.relay.blob_entry(self.target, &child.digest);
                let mut holder = entry.lock().await;
                if holder
                    .as_ref()
                    .is_some_and(|h| h.repository == *self.dst_repo)
                {
                    continue;
                }
                let child_ref = TagOrDigest::Digest(child.digest.clone());
                let present = self
                    .target
                    .head_manifest(self.dst_repo, &child_ref)
                    .await
                    .map_err(JobError::from)?;
                if present.is_none() {
                    let child_manifest = self
                        .source
                        .get_manifest(self.src_repo, &child_ref)
                        .await
                        .map_err(JobError::from)?;
                    bytes +=
                        Box::pin(self.manifest_tree(&child_manifest, &child_ref, depth + 1, tally))
                            .await?;
                }
                *holder = Some(Holder {
                    repository: self.dst_repo.clone(),
                    client: self.target.clone(),
                });
            }
        } else {
            let blobs = manifest.blobs().map_err(JobError::from)?;
            let blobs = self.distributable(blobs).await?;
            let arrivals = try_join_all(blobs.iter().map(|blob| self.blob(blob))).await?;
            for arrival in arrivals {
                match arrival {
                    Arrival::Sent(sent) => {
                        tally.sent += 1;
                        bytes += sent;
                    }
                    Arrival::ByAnotherImage => tally.by_another_image += 1,
                    Arrival::OnTarget => tally.on_target += 1,
                }
            }
        }
        Ok(bytes)
    }

    /// The blobs of an image the target must hold. Foreign and non-distributable layers
    /// (Windows base layers: fetched from their `urls`, not from registries) are left out, as
    /// skopeo does; the manifest still lists them, byte for byte. With
    /// `native.include-foreign-layers` they are copied when the source holds them
    /// (docs/behaviour.md#manifests-and-media-types).
    async fn distributable(&self, blobs: Vec<Descriptor>) -> Result<Vec<Descriptor>, JobError> {
        let include = self.relay.settings.include_foreign_layers;
        let mut kept = Vec::with_capacity(blobs.len());
        for blob in blobs {
            if !blob.is_foreign() {
                kept.push(blob);
                continue;
            }
            let held = include
                && self
                    .source
                    .head_blob(self.src_repo, &blob.digest, blob.size)
                    .await
                    .map_err(JobError::from)?;
            if held {
                kept.push(blob);
            } else {
                tracing::debug!(
                    digest = %blob.digest,
                    media_type = %blob.media_type,
                    "foreign layer left out of the copy"
                );
            }
        }
        Ok(kept)
    }

    /// Makes one blob present in the target repository; says how it got there.
    async fn blob(&self, blob: &Descriptor) -> Result<Arrival, JobError> {
        let entry = self.relay.blob_entry(self.target, &blob.digest);
        // Jobs needing the same blob on the same target wait here for the one in flight, then
        // find it present (same repository) or mount it (another repository).
        let mut holder = entry.lock().await;
        if holder
            .as_ref()
            .is_some_and(|h| h.repository == *self.dst_repo)
        {
            return Ok(Arrival::ByAnotherImage);
        }
        let readable = holder
            .as_ref()
            .filter(|h| h.client.same_client(self.target))
            .map(|h| &h.repository);
        let arrival = self.blob_unlocked(blob, readable).await?;
        *holder = Some(Holder {
            repository: self.dst_repo.clone(),
            client: self.target.clone(),
        });
        Ok(arrival)
    }

    /// Makes a blob the target repository lacks present: mounted from a repository of the
    /// same registry that the target credentials may read, else transferred. A mount is an
    /// optimisation: any refusal falls back to an upload, and the pair is not asked again this
    /// run (docs/behaviour.md, "HTTP: what dregsy requires of a registry, and what it
    /// tolerates").
    async fn blob_unlocked(
        &self,
        blob: &Descriptor,
        readable_holder: Option<&Repository>,
    ) -> Result<Arrival, JobError> {
        let digest = &blob.digest;
        if self
            .target
            .head_blob(self.dst_repo, digest, blob.size)
            .await
            .map_err(JobError::from)?
        {
            return Ok(Arrival::OnTarget);
        }
        let mut mount_from: Vec<&Repository> = Vec::new();
        // The source repository, when the target client is the source client (same registry,
        // same credentials), so it may read it.
        if self.source.same_client(self.target) && self.src_repo != self.dst_repo {
            mount_from.push(self.src_repo);
        }
        if let Some(holder) = readable_holder.filter(|h| *h != self.dst_repo && *h != self.src_repo)
        {
            mount_from.push(holder);
        }
        let mut session = None;
        for from in mount_from {
            if self.relay.mount_refused(self.target, from, self.dst_repo) {
                continue;
            }
            match self.target.mount_blob(self.dst_repo, digest, from).await {
                Ok(Mount::Mounted) if from == self.src_repo => {
                    return Ok(Arrival::OnTarget);
                }
                Ok(Mount::Mounted) => return Ok(Arrival::ByAnotherImage),
                // Not mountable there: a registry may have opened an upload session instead
                // (use it); a layout on another file system cannot link (copy instead).
                Ok(Mount::NotMounted(opened)) => {
                    tracing::debug!(digest = %digest, from = %from, "mount declined, uploading");
                    session = opened;
                }
                Err(e) => {
                    tracing::debug!(digest = %digest, from = %from, "mount refused, uploading: {e}");
                }
            }
            self.relay
                .remember_refused_mount(self.target, from, self.dst_repo);
            break;
        }
        if session.is_none()
            && self
                .target
                .link_held_blob(self.dst_repo, digest, blob.size)
                .await
                .map_err(JobError::from)?
        {
            return Ok(Arrival::OnTarget);
        }
        self.transfer(blob, session).await.map(Arrival::Sent)
    }

    /// Streams a blob from the source into the target. The transport cannot replay a streamed
    /// body, so the whole transfer is the unit of retry, under the one retry policy: the
    /// transfer and every request it makes draw from one [`Tries`], so a blob costs at most
    /// `native.tries` tries in all. Before sending a blob again, the target is asked whether
    /// the failed attempt stored it after all (an answer that came too late, say).
    async fn transfer(
        &self,
        blob: &Descriptor,
        mut session: Option<UploadSession>,
    ) -> Result<u64, JobError> {
        let _slot = self
            .relay
            .blob_slots
            .acquire()
            .await
            .map_err(|_| "the blob transfer pool was closed".to_string())?;
        // A layout's failures are never transient: the registry side's policy is the one
        // that counts (the target's, when both are registries).
        let policy = match (self.target.registry(), self.source.registry()) {
            (Some(registry), _) | (None, Some(registry)) => registry.retry_policy().clone(),
            (None, None) => self.target.retry_policy(),
        };
        let tries: Tries = policy.tries();
        let source = self.source.sharing_tries(&tries);
        let target = self.target.sharing_tries(&tries);
        let digest = &blob.digest;
        loop {
            let result = async {
                let stream = source.get_blob(self.src_repo, digest, blob.size).await?;
                let stream = stream.inspect_ok(|chunk| progress::transferred(chunk.len() as u64));
                target
                    .push_blob(
                        self.dst_repo,
                        digest,
                        blob.size,
                        Box::pin(stream),
                        session.take(),
                    )
                    .await
            }
            .await;
            let error = match result {
                Ok(()) => return Ok(blob.size),
                Err(e) => e,
            };
            let delay = if error.is_transient() {
                tries.next_delay(None)
            } else {
                None
            };
            let Some(delay) = delay else {
                return Err(error.into());
            };
            tracing::debug!(digest = %digest, ?delay, "blob transfer failed, trying again: {error}");
            tokio::time::sleep(delay).await;
            if target
                .head_blob(self.dst_repo, digest, blob.size)
                .await
                .map_err(|e| format!("{e} (after: {error})"))?
            {
                tracing::debug!(digest = %digest, "the failed attempt stored the blob after all");
                return Ok(blob.size);
            }
        }
    }
}
