//! The native relay: copies images registry to registry in-process, only what changed
//! (docs/behaviour.md#up-to-date-checks; README.md, "The native engine").
//!
//! Per job: HEAD the source, decide which manifest the target must hold (the whole index, or
//! one platform's manifest), HEAD the target, and stop there when the digests agree. Otherwise
//! copy children before parents and blobs before manifests, so a target tag never points at
//! something missing, even when the copy is interrupted. Blobs stream through, verified by size
//! and digest on the way; a blob several images share is transferred once per run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt;
use futures_util::future::try_join_all;
use tokio::sync::Semaphore;

use super::manifest_cache::ManifestCache;
use super::{CopyOutcome, CopySlots, check};
use crate::config::NativeSettings;
use crate::plan::ImageJob;
use crate::progress;
use crate::registry::{
    Descriptor, Digest, ErrorKind, Manifest, MountOutcome, Registry, Repository, TagOrDigest,
    UploadSession,
};

/// How deep indexes may nest (an index of indexes is legal but rare; deeper is a loop or abuse).
const MAX_INDEX_DEPTH: usize = 3;

/// One blob on one target registry, locked while it is being made present; the value is a
/// repository known to hold it there (a mount source for the next repository that needs it).
type BlobSlot = Arc<tokio::sync::Mutex<Option<Repository>>>;

/// The in-process engine. One per run (or per daemon lifetime): it holds the per-target record
/// of which repository holds which blob, and the concurrency bounds.
pub struct NativeRelay {
    settings: NativeSettings,
    blob_slots: Arc<Semaphore>,
    blobs: Mutex<HashMap<(String, Digest), BlobSlot>>,
}

impl NativeRelay {
    /// A relay with the config's concurrency and retry bounds.
    pub fn new(settings: NativeSettings) -> Self {
        NativeRelay {
            blob_slots: Arc::new(Semaphore::new(settings.parallel_blobs)),
            settings,
            blobs: Mutex::new(HashMap::new()),
        }
    }

    /// How many images may be copied at once.
    pub fn parallel_images(&self) -> usize {
        self.settings.parallel_images
    }

    /// Copies one image job. Errors name the image and say what failed.
    ///
    /// The up-to-date decision is [`check::wanted_source`]'s, with `manifests` (index digest
    /// and platform → child) so that a run with nothing to do sends no manifest GET.
    pub async fn copy(
        &self,
        job: &ImageJob,
        source: &Registry,
        target: &Registry,
        manifests: &ManifestCache,
        slots: &CopySlots<'_>,
    ) -> Result<CopyOutcome, String> {
        let src_repo = &job.source.repository;
        let dst_repo = &job.target.repository;
        // Both sides at once: on a no-op run their HEADs are all the work, and far-away
        // registries make each one a round trip.
        let (wanted, existing) = tokio::join!(
            check::wanted_source(job, source, manifests),
            target.head_manifest(dst_repo, &job.target.target),
        );
        let wanted = wanted?;
        let existing = existing.map_err(|e| e.to_string())?;
        if check::holds(existing.as_ref(), &wanted) {
            return Ok(CopyOutcome::UpToDate);
        }
        let Some(_slot) = slots.enter().await else {
            return Ok(CopyOutcome::NotStarted);
        };
        let digest = wanted.digest.clone();
        let manifest = match wanted.manifest() {
            Some(m) => m,
            None => source
                .get_manifest(src_repo, &TagOrDigest::Digest(digest))
                .await
                .map_err(|e| e.to_string())?,
        };
        let copy = Copy {
            relay: self,
            source,
            target,
            src_repo,
            dst_repo,
            same_registry: job.source.registry == job.target.registry,
        };
        let bytes = copy.manifest_tree(&manifest, &job.target.target, 0).await?;
        Ok(CopyOutcome::Copied { bytes })
    }

    /// The slot of one blob on one target registry.
    fn blob_entry(&self, target: &Registry, digest: &Digest) -> BlobSlot {
        let key = (target.host().to_string(), digest.clone());
        match self.blobs.lock() {
            Ok(mut blobs) => blobs.entry(key).or_default().clone(),
            // A poisoned map only loses sharing, never correctness: use a fresh entry.
            Err(_) => Arc::default(),
        }
    }
}

/// One copy in progress between two repositories.
struct Copy<'a> {
    relay: &'a NativeRelay,
    source: &'a Registry,
    target: &'a Registry,
    src_repo: &'a Repository,
    dst_repo: &'a Repository,
    same_registry: bool,
}

impl Copy<'_> {
    /// Copies a manifest and everything it references, then puts it as `push_as`.
    /// Returns the blob bytes transferred.
    async fn manifest_tree(
        &self,
        manifest: &Manifest,
        push_as: &TagOrDigest,
        depth: usize,
    ) -> Result<u64, String> {
        manifest.check_pushable().map_err(|e| e.to_string())?;
        let mut bytes = 0;
        if manifest.is_index() {
            if depth >= MAX_INDEX_DEPTH {
                return Err(format!(
                    "index {} nests deeper than {MAX_INDEX_DEPTH} levels",
                    manifest.digest
                ));
            }
            for child in manifest.children().map_err(|e| e.to_string())? {
                let child_ref = TagOrDigest::Digest(child.digest.clone());
                let present = self
                    .target
                    .head_manifest(self.dst_repo, &child_ref)
                    .await
                    .map_err(|e| e.to_string())?;
                if present.is_some() {
                    continue;
                }
                let child_manifest = self
                    .source
                    .get_manifest(self.src_repo, &child_ref)
                    .await
                    .map_err(|e| e.to_string())?;
                bytes +=
                    Box::pin(self.manifest_tree(&child_manifest, &child_ref, depth + 1)).await?;
            }
        } else {
            let blobs = manifest.blobs().map_err(|e| e.to_string())?;
            let blobs = self.distributable(blobs).await?;
            let copied = try_join_all(blobs.iter().map(|blob| self.blob(blob))).await?;
            bytes += copied.iter().sum::<u64>();
        }
        self.target
            .put_manifest(self.dst_repo, push_as, manifest)
            .await
            .map_err(|e| e.to_string())?;
        Ok(bytes)
    }

    /// The blobs of an image the target must hold. Foreign and non-distributable layers
    /// (Windows base layers: fetched from their `urls`, not from registries) are left out, as
    /// skopeo does; the manifest still lists them, byte for byte. With
    /// `native.include-foreign-layers` they are copied when the source holds them
    /// (docs/behaviour.md#manifests-and-media-types).
    async fn distributable(&self, blobs: Vec<Descriptor>) -> Result<Vec<Descriptor>, String> {
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
                    .head_blob(self.src_repo, &blob.digest)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some();
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

    /// Makes one blob present in the target repository; returns the bytes transferred.
    async fn blob(&self, blob: &Descriptor) -> Result<u64, String> {
        let entry = self.relay.blob_entry(self.target, &blob.digest);
        // Jobs needing the same blob on the same target wait here for the one in flight, then
        // find it present (same repository) or mount it (another repository).
        let mut holder = entry.lock().await;
        if holder.as_ref() == Some(self.dst_repo) {
            return Ok(0);
        }
        let transferred = self.blob_unlocked(blob, holder.as_ref()).await?;
        *holder = Some(self.dst_repo.clone());
        Ok(transferred)
    }

    async fn blob_unlocked(
        &self,
        blob: &Descriptor,
        known_holder: Option<&Repository>,
    ) -> Result<u64, String> {
        let digest = &blob.digest;
        if self
            .target
            .head_blob(self.dst_repo, digest)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Ok(0);
        }
        let mut mount_from: Vec<&Repository> = Vec::new();
        if self.same_registry && self.src_repo != self.dst_repo {
            mount_from.push(self.src_repo);
        }
        if let Some(holder) = known_holder.filter(|h| *h != self.dst_repo && *h != self.src_repo) {
            mount_from.push(holder);
        }
        let mut session = None;
        for from in mount_from {
            match self.target.mount_blob(self.dst_repo, digest, from).await {
                Ok(MountOutcome::Mounted) => return Ok(0),
                // Not mountable there: the registry opened an upload session instead; use it.
                Ok(MountOutcome::NotMounted(opened)) => session = Some(opened),
                Err(e) if e.kind() == ErrorKind::Unauthorized => return Err(e.to_string()),
                Err(e) => tracing::debug!(digest = %digest, "mount failed, transferring: {e}"),
            }
        }
        self.transfer(blob, session).await
    }

    /// Streams a blob from the source into the target, retrying transient failures: the
    /// transport cannot replay a streamed body, so the whole transfer is the unit of retry.
    async fn transfer(
        &self,
        blob: &Descriptor,
        mut session: Option<UploadSession>,
    ) -> Result<u64, String> {
        let _slot = self
            .relay
            .blob_slots
            .acquire()
            .await
            .map_err(|_| "the blob transfer pool was closed".to_string())?;
        let attempts = self.relay.settings.retries.max(1);
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            let result = async {
                let stream = self.source.get_blob(self.src_repo, &blob.digest).await?;
                let size = stream.size();
                let stream = stream.inspect_ok(|chunk| progress::transferred(chunk.len() as u64));
                match session.take() {
                    Some(open) => {
                        self.target
                            .upload_blob(open, &blob.digest, size, stream)
                            .await
                    }
                    None => {
                        self.target
                            .push_blob(self.dst_repo, &blob.digest, size, stream)
                            .await
                    }
                }
            }
            .await;
            match result {
                Ok(()) => return Ok(blob.size),
                Err(e) if e.is_transient() && attempt < attempts => {
                    tracing::debug!(
                        digest = %blob.digest,
                        attempt,
                        "blob transfer failed, retrying: {e}"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}
