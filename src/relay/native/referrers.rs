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
use super::ManifestCache;
use crate::config::PlatformChoice;
use crate::plan::{ImageJob, ListedTags};
use crate::registry::referrers::{self, PushedReferrer, Referrer};
use crate::registry::{Digest, ErrorKind, Manifest, ManifestHead, Repository, TagOrDigest};
use crate::relay::BlobTally;
use crate::relay::JobError;
use crate::relay::check;
use crate::store::ImageStore;

/// How many levels of referrers are followed: a subject's referrers (1), theirs (2: a
/// signature on an SBOM), and one more.
pub(super) const MAX_DEPTH: usize = 3;
/// At most this many referrers per subject are copied; more is abuse or a loop.
const MAX_PER_SUBJECT: usize = 256;

/// How long a source repository's tag list serves the jobs of that repository: about a run's
/// length. A legacy tag pushed meanwhile is found by the next run.
const TAGS_FRESH: Duration = Duration::from_secs(60);

/// One source repository's tag list, locked while it is being listed so that the jobs of a
/// repository list it once.
pub(super) type TagsSlot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<HashSet<String>>)>>>;

/// What the relay learns about referrers for the rest of its life (a run, or a daemon's).
/// Facts that outlive it (what a target holds, which registries have the API) are in the
/// manifest cache.
#[derive(Default)]
pub(super) struct Records {
    /// Source tag lists, for legacy and fallback tags, by (registry, repository).
    tags: Mutex<HashMap<(String, Repository), TagsSlot>>,
}

/// What copying referrers wrote to the target: the bytes sent and how many referrers and
/// legacy cosign tags, for the image's log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Written {
    /// Bytes sent: manifests and blobs.
    pub bytes: u64,
    /// Referrers and legacy cosign tags written.
    pub manifests: usize,
}

impl Written {
    /// Counts `more` in.
    fn add(&mut self, more: Written) {
        self.bytes += more.bytes;
        self.manifests += more.manifests;
    }
}

/// Whether the manifest cache's record of what a target holds may be believed: only while the
/// image itself was found up to date there (a repository emptied and filled again by this run
/// holds none of its referrers, whatever was recorded).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum TargetRecords {
    /// The image was up to date: records stand.
    Believed,
    /// The image was copied now: the target is asked.
    Ignored,
}

/// The manifests of a job whose referrers travel with it: the copied manifest; for an index
/// copied whole, also each child; for a platform subset, the kept children (the rewritten index
/// exists only in the target, so nothing refers to it). `children` lists an index's children
/// (`None`: not an index).
pub(super) fn subjects(
    job: &ImageJob,
    copied: &Digest,
    children: Option<Vec<Digest>>,
) -> Vec<Digest> {
    let Some(children) = children else {
        return vec![copied.clone()];
    };
    if matches!(job.platform, PlatformChoice::Subset(_)) {
        return children;
    }
    let mut all = vec![copied.clone()];
    all.extend(children);
    all
}

/// The children `manifest` lists, or `None` when it is not an index.
pub(super) fn children_of(manifest: &Manifest) -> Result<Option<Vec<Digest>>, JobError> {
    if !manifest.is_index() {
        return Ok(None);
    }
    let children = manifest.children().map_err(JobError::from)?;
    Ok(Some(children.into_iter().map(|c| c.digest).collect()))
}

/// What a target lists as the referrers of one subject.
struct TargetReferrers {
    /// Whether the target answered the referrers API (it indexes pushed referrers itself).
    api: bool,
    /// The referrers it lists.
    listed: Vec<Referrer>,
    /// Its fallback tag's index, when it has no API and the tag exists.
    fallback: Option<Manifest>,
}

/// How a complete referrer set is named in the manifest cache's record of a target: its
/// subject and a digest of its referrers' digests in order.
fn set_record(subject: &Digest, listed: &[Referrer]) -> String {
    let digests: Vec<String> = listed.iter().map(|r| r.digest.to_string()).collect();
    format!(
        "referrers {subject} {}",
        Digest::of(digests.join(",").as_bytes())
    )
}

/// The referrers of `subject` in `repo` of the source: the referrers API when the registry has
/// it, else its fallback tag (read only when the tag exists: `tags`). The fallback tag costs a
/// HEAD: the referrers its index lists are in the manifest cache under its digest.
///
/// # Errors
/// A referrers list or fallback tag that is not a referrers index, or what the registry
/// reported.
async fn source_referrers(
    source: &ImageStore,
    repo: &Repository,
    cache: &ManifestCache,
    subject: &Digest,
    tags: &HashSet<String>,
) -> Result<Vec<Referrer>, JobError> {
    let host = source.name();
    if cache.referrers_api(&host) != Some(false) {
        let listed = source
            .list_referrers(repo, subject, None)
            .await
            .map_err(JobError::from)?;
        cache.remember_referrers_api(&host, listed.is_some());
        if let Some(list) = listed {
            return Ok(list);
        }
    }
    let tag = referrers::fallback_tag(subject);
    if !tags.contains(&tag) {
        return Ok(Vec::new());
    }
    let what = format!("the fallback tag {host}/{repo}:{tag}");
    let tag_ref = TagOrDigest::tag(&tag).map_err(JobError::from)?;
    let Some(head) = source
        .head_manifest(repo, &tag_ref)
        .await
        .map_err(JobError::from)?
    else {
        // Deleted since the tag list was read.
        return Ok(Vec::new());
    };
    if let Some(list) = cache.fallback_referrers(&head.digest) {
        return Ok(list);
    }
    let index = headed(source, repo, head).await?;
    let list = referrers::parse_index(&index.bytes, &what).map_err(JobError::from)?;
    cache.remember_fallback_referrers(&index.digest, &list);
    Ok(list)
}

/// The source manifest a HEAD found: the one it had to GET already, else a GET by digest.
async fn headed(
    source: &ImageStore,
    repo: &Repository,
    head: ManifestHead,
) -> Result<Manifest, JobError> {
    match head.manifest {
        Some(manifest) => Ok(manifest),
        None => source
            .get_manifest(repo, &TagOrDigest::Digest(head.digest))
            .await
            .map_err(JobError::from),
    }
}

/// What `referrers: true` would carry with one image, as `dregsy plan` shows it: what the
/// source holds, whether or not the target has it already (a sync copies what it lacks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Travelling {
    /// The referrers of the image's subjects, and theirs to 3 levels.
    pub referrers: Vec<Referrer>,
    /// cosign's legacy tags of those manifests that the source holds.
    pub legacy_tags: Vec<String>,
    /// For a platform list: the referrers and legacy tags of the source index, which stay
    /// behind (docs/behaviour.md#referrers).
    pub left_behind: usize,
}

/// What `referrers: true` would carry with `job`'s image from `source`, whose repository's
/// tags are `tags` (docs/behaviour.md#referrers).
///
/// # Errors
/// The source image cannot be read, or its referrers cannot (as for a copy).
pub(crate) async fn travelling(
    job: &ImageJob,
    source: &ImageStore,
    cache: &ManifestCache,
    tags: &HashSet<String>,
) -> Result<Travelling, JobError> {
    let wanted = check::wanted_source(job, source, cache).await?;
    let (digest, from_index) = (wanted.digest.clone(), wanted.rewritten_from.clone());
    let manifest = match wanted.manifest() {
        Some(manifest) => manifest,
        None => check::fetch_wanted(job, source, &digest, from_index.as_ref()).await?,
    };
    let repo = &job.source.repository;
    let mut found = Travelling::default();
    let subjects = subjects(job, &manifest.digest, children_of(&manifest)?);
    let mut queue: Vec<(Digest, usize)> = subjects.into_iter().map(|s| (s, 0)).collect();
    let mut seen = HashSet::new();
    while let Some((subject, depth)) = queue.pop() {
        if !seen.insert(subject.clone()) {
            continue;
        }
        let legacy = referrers::legacy_tags(&subject);
        found
            .legacy_tags
            .extend(legacy.into_iter().filter(|t| tags.contains(t)));
        let listed = source_referrers(source, repo, cache, &subject, tags).await?;
        if depth + 1 < MAX_DEPTH {
            queue.extend(listed.iter().map(|r| (r.digest.clone(), depth + 1)));
        }
        found.referrers.extend(listed);
    }
    if let Some(index) = &from_index {
        let legacy = referrers::legacy_tags(index);
        found.left_behind = legacy.iter().filter(|t| tags.contains(*t)).count()
            + source_referrers(source, repo, cache, index, tags)
                .await?
                .len();
    }
    Ok(found)
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
    ///
    /// A no-op run costs per subject the referrers API request, or a HEAD of each fallback or
    /// legacy tag the source's tag list shows: what the target holds is in the manifest cache
    /// while `records` may be believed. The tag list is the planner's (`listed`) when it listed
    /// the repository, else one listing per repository shared by its jobs
    /// (docs/behaviour.md#referrers).
    pub(super) async fn referrers(
        &self,
        subjects: &[Digest],
        listed: Option<&ListedTags>,
        records: TargetRecords,
    ) -> Result<Option<Written>, JobError> {
        let tags = self.source_tags(listed).await?;
        let mut written: Option<Written> = None;
        let mut queue: Vec<(Digest, usize)> = subjects.iter().map(|s| (s.clone(), 0)).collect();
        let mut seen = HashSet::new();
        while let Some((subject, depth)) = queue.pop() {
            if !seen.insert(subject.clone()) {
                continue;
            }
            for tag in referrers::legacy_tags(&subject) {
                if tags.contains(&tag)
                    && let Some(bytes) = self.legacy_tag(&tag, records).await?
                {
                    written.get_or_insert_default().add(Written {
                        bytes,
                        manifests: 1,
                    });
                }
            }
            let listed = self.source_referrers(&subject, &tags).await?;
            if listed.is_empty() {
                continue;
            }
            if let Some(copied) = self.subject_referrers(&subject, &listed, records).await? {
                written.get_or_insert_default().add(copied);
            }
            if depth + 1 < MAX_DEPTH {
                queue.extend(listed.into_iter().map(|r| (r.digest, depth + 1)));
            }
        }
        Ok(written)
    }

    /// After `job` copied `manifest`: its referrers (the target is asked, whatever the manifest
    /// cache recorded), and for a platform list, whose source index is `rewritten_from`, a note
    /// that the source index's own stay behind. Returns what was written.
    ///
    /// # Errors
    /// As [`Copy::referrers`].
    pub(super) async fn copied_referrers(
        &self,
        job: &ImageJob,
        manifest: &Manifest,
        rewritten_from: Option<&Digest>,
    ) -> Result<Written, JobError> {
        let children = children_of(manifest)?;
        if let Some(children) = &children {
            self.cache.remember_children(&manifest.digest, children);
        }
        let subjects = subjects(job, &manifest.digest, children);
        let listed = job.listed_tags.as_ref();
        let written = self
            .referrers(&subjects, listed, TargetRecords::Ignored)
            .await?
            .unwrap_or_default();
        if let Some(index) = rewritten_from {
            self.note_left_behind(job, index, listed).await?;
        }
        Ok(written)
    }

    /// Logs, once per copy of a platform list, that the source index's own referrers and
    /// cosign tags stay behind: they name the source index, which the target does not hold (its
    /// index is rewritten), and a signature of it does not verify against the rewritten one
    /// (docs/behaviour.md#referrers). Costs the referrers request of the source index.
    async fn note_left_behind(
        &self,
        job: &ImageJob,
        index: &Digest,
        listed: Option<&ListedTags>,
    ) -> Result<(), JobError> {
        let tags = self.source_tags(listed).await?;
        let legacy_tags = referrers::legacy_tags(index)
            .iter()
            .filter(|t| tags.contains(*t))
            .count();
        let referrers = self.source_referrers(index, &tags).await?.len();
        if legacy_tags + referrers > 0 {
            tracing::info!(
                source = %job.source,
                target = %job.target,
                digest = %index,
                referrers,
                legacy_tags,
                "referrers of the source index not copied: they name the source index, which the platform list rewrote, so the target does not hold it and a signature of it does not verify against the rewritten index; the kept platforms' referrers were copied"
            );
        }
        Ok(())
    }

    /// The source repository's tags: the planner's list when it listed them (`planned`, which
    /// then also serves the repository's other jobs), else listed at most once per
    /// [`TAGS_FRESH`].
    async fn source_tags(
        &self,
        planned: Option<&ListedTags>,
    ) -> Result<Arc<HashSet<String>>, JobError> {
        let key = (self.source.name(), self.src_repo.clone());
        let slot: TagsSlot = match self.relay.referrer_records.tags.lock() {
            Ok(mut all) => all.entry(key).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let mut listed = slot.lock().await;
        if let Some(planned) = planned {
            *listed = Some((Instant::now(), planned.set().clone()));
            return Ok(planned.set().clone());
        }
        if let Some((at, tags)) = listed.as_ref()
            && at.elapsed() < TAGS_FRESH
        {
            return Ok(tags.clone());
        }
        let tags: Arc<HashSet<String>> = Arc::new(
            self.source
                .list_tags(self.src_repo)
                .await
                .map_err(JobError::from)?
                .into_iter()
                .collect(),
        );
        *listed = Some((Instant::now(), tags.clone()));
        Ok(tags)
    }

    /// Copies a legacy tag when the target's differs; `None` when it was up to date.
    async fn legacy_tag(&self, tag: &str, records: TargetRecords) -> Result<Option<u64>, JobError> {
        let reference = TagOrDigest::tag(tag).map_err(JobError::from)?;
        let Some(source) = self
            .source
            .head_manifest(self.src_repo, &reference)
            .await
            .map_err(JobError::from)?
        else {
            return Ok(None);
        };
        let record = format!("tag {tag} {}", source.digest);
        let host = self.target.name();
        if records == TargetRecords::Believed && self.cache.held(&host, self.dst_repo, &record) {
            return Ok(None);
        }
        let target = self
            .target
            .head_manifest(self.dst_repo, &reference)
            .await
            .map_err(JobError::from)?;
        if target.is_some_and(|t| t.digest == source.digest) {
            self.cache.remember_held(&host, self.dst_repo, &record);
            return Ok(None);
        }
        let manifest = headed(self.source, self.src_repo, source).await?;
        // A referrer's blobs are counted in bytes only; the image line's tally is the image's.
        let mut tally = BlobTally::default();
        let bytes = self
            .manifest_tree(&manifest, &reference, 0, &mut tally)
            .await?;
        self.cache.remember_held(&host, self.dst_repo, &record);
        Ok(Some(bytes))
    }

    /// The referrers of `subject` in the source ([`source_referrers`]).
    async fn source_referrers(
        &self,
        subject: &Digest,
        tags: &HashSet<String>,
    ) -> Result<Vec<Referrer>, JobError> {
        source_referrers(self.source, self.src_repo, self.cache, subject, tags).await
    }

    /// Makes the target hold `listed`, the referrers of `subject`; `None` when it did already.
    async fn subject_referrers(
        &self,
        subject: &Digest,
        listed: &[Referrer],
        records: TargetRecords,
    ) -> Result<Option<Written>, JobError> {
        if listed.len() > MAX_PER_SUBJECT {
            return Err(format!(
                "{subject} has {} referrers, more than the {MAX_PER_SUBJECT} dregsy copies",
                listed.len()
            )
            .into());
        }
        let host = self.target.name();
        let record = set_record(subject, listed);
        if records == TargetRecords::Believed && self.cache.held(&host, self.dst_repo, &record) {
            return Ok(None);
        }
        let written = self.write_referrers(subject, listed).await?;
        self.cache.remember_held(&host, self.dst_repo, &record);
        Ok(written)
    }

    /// [`Copy::subject_referrers`] past the record of complete sets: asks the target what it
    /// lists, copies the referrers it lacks, and lists them in its fallback tag where it does
    /// not index them itself.
    async fn write_referrers(
        &self,
        subject: &Digest,
        listed: &[Referrer],
    ) -> Result<Option<Written>, JobError> {
        let present = self.target_referrers(subject).await?;
        let missing: Vec<&Referrer> = listed
            .iter()
            .filter(|r| !present.listed.iter().any(|p| p.digest == r.digest))
            .collect();
        if missing.is_empty() {
            return Ok(None);
        }
        let mut bytes = 0;
        let mut indexed = present.api;
        let manifests = missing.len();
        for referrer in missing {
            let (copied, pushed) = self.copy_referrer(subject, referrer).await?;
            bytes += copied;
            indexed &= pushed == PushedReferrer::Indexed;
        }
        if !indexed {
            self.merge_fallback_tag(subject, present.fallback.as_ref(), listed)
                .await?;
        }
        Ok(Some(Written { bytes, manifests }))
    }

    /// What the target lists as referrers of `subject`: its referrers API, else its fallback
    /// tag (absent: none).
    async fn target_referrers(&self, subject: &Digest) -> Result<TargetReferrers, JobError> {
        if let Some(listed) = self
            .target
            .list_referrers(self.dst_repo, subject, None)
            .await
            .map_err(JobError::from)?
        {
            return Ok(TargetReferrers {
                api: true,
                listed,
                fallback: None,
            });
        }
        let tag = referrers::fallback_tag(subject);
        let tag_ref = TagOrDigest::tag(&tag).map_err(JobError::from)?;
        let fallback = match self.target.get_manifest(self.dst_repo, &tag_ref).await {
            Ok(index) => index,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(TargetReferrers {
                    api: false,
                    listed: Vec::new(),
                    fallback: None,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let listed = referrers::parse_index(&fallback.bytes, &self.target_fallback_name(&tag))
            .map_err(JobError::from)?;
        Ok(TargetReferrers {
            api: false,
            listed,
            fallback: Some(fallback),
        })
    }

    /// Copies one referrer of `subject` from the source, with its contents, checking that it
    /// names `subject`. Returns the bytes transferred and how the target took it.
    async fn copy_referrer(
        &self,
        subject: &Digest,
        referrer: &Referrer,
    ) -> Result<(u64, PushedReferrer), JobError> {
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
                )
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        referrers::entry_for(&manifest, subject).map_err(JobError::from)?;
        let bytes = self
            .contents(&manifest, 0, &mut BlobTally::default())
            .await?;
        let pushed = self
            .target
            .put_referrer(self.dst_repo, &manifest)
            .await
            .map_err(JobError::from)?;
        Ok((bytes, pushed))
    }

    /// Lists `listed` in the target's fallback tag of `subject`, keeping what it lists already
    /// (`existing`; OCI distribution spec 1.1, "Referrers Tag Schema"); writes nothing when it
    /// lists them all.
    async fn merge_fallback_tag(
        &self,
        subject: &Digest,
        existing: Option<&Manifest>,
        listed: &[Referrer],
    ) -> Result<(), JobError> {
        let tag = referrers::fallback_tag(subject);
        let what = self.target_fallback_name(&tag);
        let existing = existing.map(|m| m.bytes.as_ref());
        let Some(merged) = referrers::merge(existing, listed, &what).map_err(JobError::from)?
        else {
            return Ok(());
        };
        let index =
            Manifest::from_bytes(Some(crate::registry::media_type::OCI_INDEX), merged.into())
                .map_err(JobError::from)?;
        let tag_ref = TagOrDigest::tag(&tag).map_err(JobError::from)?;
        self.target
            .put_manifest(self.dst_repo, &tag_ref, &index)
            .await
            .map_err(JobError::from)
    }

    /// How messages name the target's fallback tag `tag`.
    fn target_fallback_name(&self, tag: &str) -> String {
        format!(
            "the fallback tag {}/{}:{tag}",
            self.target.name(),
            self.dst_repo
        )
    }
}
