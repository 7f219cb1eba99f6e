//! Referrers travel with their subject (`referrers: true`; docs/configuration.md#referrers;
//! README.md, "Signatures, SBOMs and trust").
//!
//! For every manifest a job copies (its subjects), the manifests that name it as `subject`
//! (cosign signatures, SBOMs, attestations) are read from the source, through the referrers API
//! or else the `sha256-<hex>` fallback tag, and written to the target: pushed with their
//! `subject`, which a registry with the referrers API indexes itself (it answers
//! `OCI-Subject`), else listed in the target's fallback tag, merged with what it already lists.
//! cosign's legacy `sha256-<hex>.sig`, `.att` and `.sbom` tags are copied as tags. Referrers of
//! referrers follow, to [`MAX_DEPTH`] levels.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Copy;
use crate::config::PlatformChoice;
use crate::plan::ImageJob;
use crate::registry::referrers::{self, PushedReferrer, Referrer};
use crate::registry::{Digest, ErrorKind, Manifest, Repository, TagOrDigest};
use crate::relay::BlobTally;
use crate::store::ImageStore;

/// How many levels of referrers are followed: a subject's referrers (1), theirs (2: a
/// signature on an SBOM), and one more.
pub(super) const MAX_DEPTH: usize = 3;
/// At most this many referrers per subject are copied; more is abuse or a loop.
const MAX_PER_SUBJECT: usize = 256;
/// Facts kept in [`super::NativeRelay`]'s record of complete referrer sets at most; above it
/// the record starts over (it only saves requests).
const MAX_HELD: usize = 100_000;

/// How long a source repository's tag list serves the jobs of that repository: about a run's
/// length. A legacy tag pushed meanwhile is found by the next run.
const TAGS_FRESH: Duration = Duration::from_secs(60);

/// One source repository's tag list, locked while it is being listed so that the jobs of a
/// repository list it once.
pub(super) type TagsSlot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<HashSet<String>>)>>>;

/// What the relay learns about referrers for the rest of its life (a run, or a daemon's).
#[derive(Default)]
pub(super) struct Records {
    /// Registries known to have (or lack) the referrers API, by host: a source without it is
    /// not asked again for every subject.
    api: Mutex<HashMap<String, bool>>,
    /// Referrer sets known to be complete in a target repository: a daemon's later runs skip
    /// the target's side of the check while the source lists the same referrers.
    held: Mutex<HashSet<HeldKey>>,
    /// Source tag lists, for legacy tags, by (registry, repository).
    tags: Mutex<HashMap<(String, Repository), TagsSlot>>,
}

/// A referrer set known complete in a target repository: (target host, repository, subject,
/// the referrers' digests in order).
pub(super) type HeldKey = (String, Repository, Digest, Vec<Digest>);

/// The manifests of a job whose referrers travel with it: the copied manifest; for an index
/// copied whole, also each child; for a platform subset, the kept children (the rewritten index
/// exists only in the target, so nothing refers to it).
pub(super) fn subjects(job: &ImageJob, copied: &Manifest) -> Result<Vec<Digest>, String> {
    if !copied.is_index() {
        return Ok(vec![copied.digest.clone()]);
    }
    let children: Vec<Digest> = copied
        .children()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|c| c.digest)
        .collect();
    if matches!(job.platform, PlatformChoice::Subset(_)) {
        return Ok(children);
    }
    let mut all = vec![copied.digest.clone()];
    all.extend(children);
    Ok(all)
}

impl Copy<'_> {
    /// Brings the referrers and legacy tags of `subjects` up to date in the target. Returns
    /// `None` when the target already had everything (nothing was written), else the blob bytes
    /// transferred.
    ///
    /// # Errors
    /// A referrers list or fallback tag that is not a referrers index, a listed referrer the
    /// source does not hold or that names another subject, a target fallback tag that holds
    /// something else, or what the registries reported.
    pub(super) async fn referrers(&self, subjects: &[Digest]) -> Result<Option<u64>, String> {
        let tags = self.source_tags().await?;
        let mut written = false;
        let mut bytes = 0;
        let mut queue: Vec<(Digest, usize)> = subjects.iter().map(|s| (s.clone(), 0)).collect();
        let mut seen = HashSet::new();
        while let Some((subject, depth)) = queue.pop() {
            if !seen.insert(subject.clone()) {
                continue;
            }
            for tag in referrers::legacy_tags(&subject) {
                if tags.contains(&tag)
                    && let Some(copied) = self.legacy_tag(&tag).await?
                {
                    written = true;
                    bytes += copied;
                }
            }
            let listed = self.source_referrers(&subject, &tags).await?;
            if listed.is_empty() {
                continue;
            }
            if let Some(copied) = self.subject_referrers(&subject, &listed).await? {
                written = true;
                bytes += copied;
            }
            if depth + 1 < MAX_DEPTH {
                queue.extend(listed.into_iter().map(|r| (r.digest, depth + 1)));
            }
        }
        Ok(written.then_some(bytes))
    }

    /// The source repository's tags, listed at most once per [`TAGS_FRESH`].
    async fn source_tags(&self) -> Result<Arc<HashSet<String>>, String> {
        let key = (self.source.name(), self.src_repo.clone());
        let slot: TagsSlot = match self.relay.referrer_records.tags.lock() {
            Ok(mut all) => all.entry(key).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let mut listed = slot.lock().await;
        if let Some((at, tags)) = listed.as_ref()
            && at.elapsed() < TAGS_FRESH
        {
            return Ok(tags.clone());
        }
        let tags: Arc<HashSet<String>> = Arc::new(
            self.source
                .list_tags(self.src_repo)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .collect(),
        );
        *listed = Some((Instant::now(), tags.clone()));
        Ok(tags)
    }

    /// Copies a legacy tag when the target's differs; `None` when it was up to date.
    async fn legacy_tag(&self, tag: &str) -> Result<Option<u64>, String> {
        let reference = TagOrDigest::tag(tag).map_err(|e| e.to_string())?;
        let (source, target) = tokio::join!(
            self.source.head_manifest(self.src_repo, &reference),
            self.target.head_manifest(self.dst_repo, &reference),
        );
        let Some(source) = source.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        if target
            .map_err(|e| e.to_string())?
            .is_some_and(|t| t.digest == source.digest)
        {
            return Ok(None);
        }
        let manifest = self
            .source
            .get_manifest(self.src_repo, &TagOrDigest::Digest(source.digest))
            .await
            .map_err(|e| e.to_string())?;
        // A referrer's blobs are counted in bytes only; the image line's tally is the image's.
        let mut tally = BlobTally::default();
        self.manifest_tree(&manifest, &reference, 0, &mut tally)
            .await
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// The referrers of `subject` in the source: the referrers API when the registry has it,
    /// else its fallback tag (read only when the tag exists: `tags`).
    async fn source_referrers(
        &self,
        subject: &Digest,
        tags: &HashSet<String>,
    ) -> Result<Vec<Referrer>, String> {
        let api = self.relay.referrers_api(self.source);
        if api != Some(false) {
            let listed = self
                .source
                .list_referrers(self.src_repo, subject, None)
                .await
                .map_err(|e| e.to_string())?;
            self.relay
                .remember_referrers_api(self.source, listed.is_some());
            if let Some(list) = listed {
                return Ok(list);
            }
        }
        let tag = referrers::fallback_tag(subject);
        if !tags.contains(&tag) {
            return Ok(Vec::new());
        }
        let what = format!(
            "the fallback tag {}/{}:{tag}",
            self.source.name(),
            self.src_repo
        );
        let index = self
            .source
            .get_manifest(
                self.src_repo,
                &TagOrDigest::tag(&tag).map_err(|e| e.to_string())?,
            )
            .await
            .map_err(|e| e.to_string())?;
        referrers::parse_index(&index.bytes, &what).map_err(|e| e.to_string())
    }

    /// Makes the target hold `listed`, the referrers of `subject`; `None` when it did already.
    async fn subject_referrers(
        &self,
        subject: &Digest,
        listed: &[Referrer],
    ) -> Result<Option<u64>, String> {
        if listed.len() > MAX_PER_SUBJECT {
            return Err(format!(
                "{subject} has {} referrers, more than the {MAX_PER_SUBJECT} dregsy copies",
                listed.len()
            ));
        }
        let held_key: HeldKey = (
            self.target.name(),
            self.dst_repo.clone(),
            subject.clone(),
            listed.iter().map(|r| r.digest.clone()).collect(),
        );
        if self.relay.referrers_held(&held_key) {
            return Ok(None);
        }
        let written = self.write_referrers(subject, listed).await?;
        self.relay.remember_referrers_held(held_key);
        Ok(written)
    }

    /// [`Copy::subject_referrers`] past the record of complete sets: asks the target.
    async fn write_referrers(
        &self,
        subject: &Digest,
        listed: &[Referrer],
    ) -> Result<Option<u64>, String> {
        let tag = referrers::fallback_tag(subject);
        let tag_ref = TagOrDigest::tag(&tag).map_err(|e| e.to_string())?;
        let what = format!(
            "the fallback tag {}/{}:{tag}",
            self.target.name(),
            self.dst_repo
        );
        // What the target lists already: its referrers API, else its fallback tag.
        let api = self
            .target
            .list_referrers(self.dst_repo, subject, None)
            .await
            .map_err(|e| e.to_string())?;
        let target_has_api = api.is_some();
        let fallback = match api {
            Some(_) => None,
            None => match self.target.get_manifest(self.dst_repo, &tag_ref).await {
                Ok(index) => Some(index),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e.to_string()),
            },
        };
        let present: Vec<Referrer> = match (&api, &fallback) {
            (Some(list), _) => list.clone(),
            (None, Some(index)) => {
                referrers::parse_index(&index.bytes, &what).map_err(|e| e.to_string())?
            }
            (None, None) => Vec::new(),
        };
        let missing: Vec<&Referrer> = listed
            .iter()
            .filter(|r| !present.iter().any(|p| p.digest == r.digest))
            .collect();
        if missing.is_empty() {
            return Ok(None);
        }
        let mut bytes = 0;
        let mut indexed = target_has_api;
        for referrer in missing {
            let manifest = match self
                .source
                .get_manifest(self.src_repo, &TagOrDigest::Digest(referrer.digest.clone()))
                .await
            {
                Ok(manifest) => manifest,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(format!(
                        "the referrers of {subject} list {}, which {}/{} does not hold",
                        referrer.digest,
                        self.source.name(),
                        self.src_repo
                    ));
                }
                Err(e) => return Err(e.to_string()),
            };
            referrers::entry_for(&manifest, subject).map_err(|e| e.to_string())?;
            bytes += self
                .contents(&manifest, 0, &mut BlobTally::default())
                .await
                .map_err(|e| e.to_string())?;
            let pushed = self
                .target
                .put_referrer(self.dst_repo, &manifest)
                .await
                .map_err(|e| e.to_string())?;
            indexed &= pushed == PushedReferrer::Indexed;
        }
        if !indexed {
            // The target does not index referrers itself: list them in its fallback tag,
            // keeping what it lists already (OCI distribution spec 1.1, "Referrers Tag Schema").
            let existing = fallback.as_ref().map(|m| m.bytes.as_ref());
            if let Some(bytes_to_put) =
                referrers::merge(existing, listed, &what).map_err(|e| e.to_string())?
            {
                let index = Manifest::from_bytes(
                    Some(crate::registry::media_type::OCI_INDEX),
                    bytes_to_put.into(),
                )
                .map_err(|e| e.to_string())?;
                self.target
                    .put_manifest(self.dst_repo, &tag_ref, &index)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(Some(bytes))
    }
}

impl super::NativeRelay {
    fn referrers_held(&self, key: &HeldKey) -> bool {
        self.referrer_records
            .held
            .lock()
            .is_ok_and(|held| held.contains(key))
    }

    fn remember_referrers_held(&self, key: HeldKey) {
        if let Ok(mut held) = self.referrer_records.held.lock() {
            if held.len() >= MAX_HELD {
                held.clear();
            }
            held.insert(key);
        }
    }

    /// Whether `registry` has the referrers API, when a request already told.
    fn referrers_api(&self, registry: &ImageStore) -> Option<bool> {
        self.referrer_records
            .api
            .lock()
            .ok()
            .and_then(|known| known.get(&registry.name()).copied())
    }

    fn remember_referrers_api(&self, registry: &ImageStore, has_it: bool) {
        if let Ok(mut known) = self.referrer_records.api.lock() {
            known.insert(registry.name(), has_it);
        }
    }
}
