//! The up-to-date decision (docs/behaviour.md#up-to-date-checks), one for every relay and for
//! `dregsy plan`: which source manifest the target must hold, and whether it holds it already.
//! The native relay reuses what the decision downloaded for its copy; the compatibility relays
//! only get the verdict, before a skopeo process starts or the Docker daemon pulls anything.
//!
//! "Index or image" is decided only on a type known to be a manifest type: a HEAD's
//! generic `Content-Type` sends us to the manifest cache, then to a GET of the digest the
//! HEAD named (docs/behaviour.md#up-to-date-checks,
//! docs/behaviour.md#platform-choice).

use super::JobError;
use super::manifest_cache::ManifestCache;
use crate::config::PlatformChoice;
use crate::plan::ImageJob;
use crate::registry::{
    Descriptor, Digest, Manifest, ManifestHead, Platform, TagOrDigest, media_type, platform_subset,
};
use crate::store::ImageStore;

/// The source manifest the target must hold for a job.
#[derive(Debug)]
pub(crate) struct Wanted {
    /// Its digest: what the target tag (or digest) must resolve to.
    pub digest: Digest,
    /// A manifest downloaded on the way: the wanted one itself, or the index it was chosen
    /// from. Saves the copy a GET.
    pub fetched: Option<Manifest>,
    /// Whether it is an index, when the decision learnt it.
    pub index: Option<bool>,
    /// For a platform list: the source index it rewrites. The rewritten index exists nowhere
    /// but in the target, so [`fetch_wanted`] rebuilds it from this one.
    pub rewritten_from: Option<Digest>,
    /// The wanted manifest is an index none of whose entries declares a platform (an index of
    /// artifacts, such as cosign's referrers index): the platform choice does not apply and it
    /// is copied whole, digest preserved (docs/behaviour.md#platform-choice).
    pub whole: bool,
}

impl Wanted {
    /// The manifest `head` names as it is, known to be a single image (no index).
    fn single_image(head: ManifestHead) -> Wanted {
        Wanted {
            digest: head.digest,
            fetched: head.manifest,
            index: Some(false),
            rewritten_from: None,
            whole: false,
        }
    }

    /// The wanted manifest, when it was downloaded on the way.
    pub fn manifest(self) -> Option<Manifest> {
        let digest = self.digest;
        self.fetched.filter(|m| m.digest == digest)
    }
}

/// The source manifest the target must hold for `job`: the tag's own manifest (`platform:
/// all`, a digest-pinned target, or a single image), the index rewritten to a platform list
/// (`fetched` holds it: it exists nowhere else), or the wanted platform's entry of an index. A no-op run finds everything in the HEAD and `cache`; a GET is sent only for an
/// index (or a manifest of unknown type) seen for the first time.
///
/// # Errors
/// A message naming the source image: not found, no manifest for the platform, or what the
/// registry client reported.
pub(crate) async fn wanted_source(
    job: &ImageJob,
    source: &ImageStore,
    cache: &ManifestCache,
) -> Result<Wanted, JobError> {
    let repo = &job.source.repository;
    let Some(head) = source
        .head_manifest(repo, &job.source.target)
        .await
        .map_err(JobError::from)?
    else {
        return Err(JobError::NotFound(format!(
            "source image {} not found",
            job.source
        )));
    };
    let pinned = matches!(job.target.target, TagOrDigest::Digest(_));
    if pinned || job.platform == PlatformChoice::All {
        // The tag's own manifest, whatever its type.
        return Ok(Wanted {
            digest: head.digest,
            fetched: head.manifest,
            index: head.media_type.as_deref().map(media_type::is_index),
            rewritten_from: None,
            whole: false,
        });
    }
    if let PlatformChoice::Subset(platforms) = &job.platform {
        return subset(job, source, cache, head, platforms).await;
    }
    let platform = platform_of(&job.platform);
    if not_an_index(&head, cache) {
        return Ok(Wanted::single_image(head));
    }
    // An index, or a type not known yet: a cached answer settles both. An index of
    // artifacts is remembered as its own "child": it is copied whole.
    if let Some(child) = cache.platform_child(&head.digest, &platform) {
        return Ok(Wanted {
            whole: child.digest == head.digest,
            digest: child.digest,
            fetched: head.manifest,
            index: Some(media_type::is_index(&child.media_type)),
            rewritten_from: None,
        });
    }
    let manifest = match read_headed(source, repo, head, cache).await? {
        Headed::Image(wanted) => return Ok(wanted),
        Headed::Index(manifest) => manifest,
    };
    if without_platforms(&manifest) {
        let itself = Descriptor::new(
            manifest.media_type.clone(),
            manifest.digest.clone(),
            manifest.bytes.len() as u64,
        );
        cache.remember_platform_child(&manifest.digest, &platform, &itself);
        return Ok(whole(manifest));
    }
    let child = manifest
        .select_platform(&platform)
        .map_err(|e| JobError::from(e).context(format_args!("source image {}", job.source)))?
        .ok_or_else(|| no_platform(job, &manifest, &platform))?;
    cache.remember_platform_child(&manifest.digest, &platform, &child);
    Ok(Wanted {
        digest: child.digest,
        fetched: Some(manifest),
        index: Some(media_type::is_index(&child.media_type)),
        rewritten_from: None,
        whole: false,
    })
}

/// A manifest a HEAD found, read when the HEAD could not tell its kind.
enum Headed {
    /// An image: the decision is made.
    Image(Wanted),
    /// An index, to choose from.
    Index(Manifest),
}

/// Reads the manifest `head` found (the HEAD's own GET when it had to make one) and remembers
/// its media type (docs/behaviour.md#manifests-and-media-types).
async fn read_headed(
    source: &ImageStore,
    repo: &crate::registry::Repository,
    head: ManifestHead,
    cache: &ManifestCache,
) -> Result<Headed, JobError> {
    let manifest = match head.manifest {
        Some(manifest) => manifest,
        None => source
            .get_manifest(repo, &TagOrDigest::Digest(head.digest))
            .await
            .map_err(JobError::from)?,
    };
    cache.remember_media_type(&manifest.digest, &manifest.media_type);
    if manifest.is_index() {
        return Ok(Headed::Index(manifest));
    }
    Ok(Headed::Image(Wanted {
        digest: manifest.digest.clone(),
        fetched: Some(manifest),
        index: Some(false),
        rewritten_from: None,
        whole: false,
    }))
}

/// Whether `index` is an index of artifacts rather than a multi-platform image: none of its
/// entries declares a platform (cosign's referrers index, an index of SBOMs). The platform
/// choice does not apply to it (docs/behaviour.md#platform-choice).
fn without_platforms(index: &Manifest) -> bool {
    index
        .children()
        .is_ok_and(|children| children.iter().all(|c| c.platform.is_none()))
}

/// The decision for an index of artifacts: itself, copied whole.
fn whole(index: Manifest) -> Wanted {
    Wanted {
        digest: index.digest.clone(),
        fetched: Some(index),
        index: Some(true),
        rewritten_from: None,
        whole: true,
    }
}

/// The error of an index without the wanted platform, naming the ones it has and how many of
/// its entries declare none (attestations, signatures).
fn no_platform(job: &ImageJob, index: &Manifest, platform: &Platform) -> String {
    format!(
        "source image {} has no manifest for platform {platform} ({}); choose one of its \
         platforms with 'platform', or 'platform: all'",
        job.source,
        index_holds(&index.children().unwrap_or_default())
    )
}

/// What an index holds, for [`no_platform`]: its platforms, and its entries without one.
fn index_holds(children: &[Descriptor]) -> String {
    let available: Vec<String> = children
        .iter()
        .filter_map(|c| c.platform.as_ref().map(|p| p.to_string()))
        .collect();
    let unnamed = children.len() - available.len();
    match (available.is_empty(), unnamed) {
        (true, _) => "it is an index of artifacts, not of platforms: none of its entries \
                      declares a platform"
            .to_string(),
        (false, 0) => format!("it has: {}", available.join(", ")),
        (false, n) => format!(
            "it has: {}, and {n} entr{} without a platform (artifacts such as attestations)",
            available.join(", "),
            if n == 1 { "y" } else { "ies" }
        ),
    }
}

/// What the target must hold for a platform list: the source index rewritten to those
/// platforms (docs/behaviour.md#platform-choice), or a single image as it is. The rewrite's
/// digest is in the manifest cache under the source index's digest and the list (the rewrite
/// follows from those alone), so only an index seen for the first time is downloaded.
async fn subset(
    job: &ImageJob,
    source: &ImageStore,
    cache: &ManifestCache,
    head: ManifestHead,
    platforms: &[Platform],
) -> Result<Wanted, JobError> {
    if not_an_index(&head, cache) {
        return Ok(Wanted::single_image(head));
    }
    if let Some((digest, missing)) = cache.subset(&head.digest, platforms) {
        // An index of artifacts is remembered as its own rewrite: it is copied whole.
        let whole = digest == head.digest;
        warn_missing(job, &missing);
        return Ok(Wanted {
            digest,
            fetched: None,
            index: Some(true),
            rewritten_from: Some(head.digest).filter(|_| !whole),
            whole,
        });
    }
    let manifest = match read_headed(source, &job.source.repository, head, cache).await? {
        Headed::Image(wanted) => return Ok(wanted),
        Headed::Index(manifest) => manifest,
    };
    if without_platforms(&manifest) {
        cache.remember_subset(&manifest.digest, platforms, &manifest.digest, &[]);
        return Ok(whole(manifest));
    }
    let subset = platform_subset(&manifest, platforms)
        .map_err(|e| JobError::from(e).context(format_args!("source image {}", job.source)))?;
    cache.remember_subset(
        &manifest.digest,
        platforms,
        &subset.index.digest,
        &subset.missing,
    );
    let missing: Vec<String> = subset.missing.iter().map(ToString::to_string).collect();
    warn_missing(job, &missing);
    Ok(Wanted {
        digest: subset.index.digest.clone(),
        fetched: Some(subset.index),
        index: Some(true),
        rewritten_from: Some(manifest.digest),
        whole: false,
    })
}

/// Whether the HEAD's type, or the cache's, says the manifest is known not to be an index.
fn not_an_index(head: &ManifestHead, cache: &ManifestCache) -> bool {
    head.media_type
        .clone()
        .or_else(|| cache.media_type(&head.digest))
        .is_some_and(|t| !media_type::is_index(&t))
}

/// The warning for wanted platforms a source index lacks.
fn warn_missing(job: &ImageJob, missing: &[String]) {
    if !missing.is_empty() {
        tracing::warn!(
            source = %job.source,
            "source image has no manifest for the platform(s) {}; copying the others",
            missing.join(", ")
        );
    }
}

/// Downloads the wanted manifest `digest` when the decision did not: from the source, or, for
/// a platform list (`rewritten_from`), rebuilt from the source index it rewrites.
///
/// # Errors
/// What the registry client reported, what [`platform_subset`] refuses, or a rewrite that no
/// longer yields `digest` (the platform rules changed between runs).
pub(crate) async fn fetch_wanted(
    job: &ImageJob,
    source: &ImageStore,
    digest: &Digest,
    rewritten_from: Option<&Digest>,
) -> Result<Manifest, JobError> {
    let repo = &job.source.repository;
    let (Some(index), PlatformChoice::Subset(platforms)) = (rewritten_from, &job.platform) else {
        return source
            .get_manifest(repo, &TagOrDigest::Digest(digest.clone()))
            .await
            .map_err(JobError::from);
    };
    let manifest = source
        .get_manifest(repo, &TagOrDigest::Digest(index.clone()))
        .await
        .map_err(JobError::from)?;
    let subset = platform_subset(&manifest, platforms)
        .map_err(|e| JobError::from(e).context(format_args!("source image {}", job.source)))?;
    if subset.index.digest != *digest {
        return Err(format!(
            "source image {}: the index {index} rewritten to {} is {}, not {digest} as before; run again",
            job.source,
            job.platform.as_config_text(),
            subset.index.digest
        ).into());
    }
    Ok(subset.index)
}

/// The manifest the target must hold for `job`, downloaded when the decision did not already
/// (for `min-age`, which reads it to date the image).
///
/// # Errors
/// As [`wanted_source`], or the manifest cannot be read.
pub(crate) async fn wanted_manifest(
    job: &ImageJob,
    source: &ImageStore,
    cache: &ManifestCache,
) -> Result<Manifest, JobError> {
    let wanted = wanted_source(job, source, cache).await?;
    let digest = wanted.digest.clone();
    let from_index = wanted.rewritten_from.clone();
    match wanted.manifest() {
        Some(manifest) => Ok(manifest),
        None => fetch_wanted(job, source, &digest, from_index.as_ref()).await,
    }
}

/// The platform a mapping asks for; the host's when it names none (what skopeo picks, and,
/// on the usual single-machine setup, what the Docker daemon picks).
pub(crate) fn platform_of(choice: &PlatformChoice) -> Platform {
    match choice {
        PlatformChoice::Specific { platform, .. } => platform.clone(),
        _ => Platform::host(),
    }
}

/// Whether the target tag (or digest) already holds exactly the wanted manifest.
pub(crate) async fn same_digest(
    job: &ImageJob,
    source: &ImageStore,
    target: &ImageStore,
    cache: &ManifestCache,
) -> Result<bool, JobError> {
    Ok(decide(job, source, target, cache).await?.0)
}

/// The up-to-date decision with what it decided on: whether the target tag (or digest)
/// already holds exactly the wanted manifest, and that manifest.
///
/// # Errors
/// As [`wanted_source`], or the target's HEAD failed.
pub(crate) async fn decide(
    job: &ImageJob,
    source: &ImageStore,
    target: &ImageStore,
    cache: &ManifestCache,
) -> Result<(bool, Wanted), JobError> {
    let (wanted, existing) = tokio::join!(
        wanted_source(job, source, cache),
        target.head_manifest(&job.target.repository, &job.target.target),
    );
    let wanted = wanted?;
    let existing = existing.map_err(JobError::from)?;
    Ok((holds(existing.as_ref(), &wanted), wanted))
}

/// The up-to-date decision, shared by every relay and by `dregsy plan`: the target
/// holds the wanted manifest when its tag (or digest) resolves to the same digest.
pub(crate) fn holds(existing: Option<&ManifestHead>, wanted: &Wanted) -> bool {
    existing.is_some_and(|d| d.digest == wanted.digest)
}

/// Whether the target tag `target_ref` already holds the wanted image as a Docker daemon
/// pushes it. A daemon recompresses layers, so the manifest digest differs from the source's;
/// the image config (the image ID) does not change, so equal config digests mean the same image.
pub(crate) async fn same_image(
    job: &ImageJob,
    target_ref: &TagOrDigest,
    source: &ImageStore,
    target: &ImageStore,
    cache: &ManifestCache,
) -> Result<bool, JobError> {
    let Some(existing) = target
        .head_manifest(&job.target.repository, target_ref)
        .await
        .map_err(JobError::from)?
    else {
        return Ok(false);
    };
    let wanted = wanted_source(job, source, cache).await?;
    if existing.digest == wanted.digest {
        return Ok(true);
    }
    if existing
        .media_type
        .as_deref()
        .is_some_and(media_type::is_index)
    {
        return Ok(false);
    }
    let config_of = |manifest: &Manifest| {
        manifest
            .blobs()
            .ok()
            .filter(|_| !manifest.is_index() && !media_type::is_schema1(&manifest.media_type))
            .and_then(|blobs| blobs.into_iter().next())
            .map(|config| config.digest)
    };
    let wanted_digest = wanted.digest.clone();
    let from_index = wanted.rewritten_from.clone();
    let source_manifest = match wanted.manifest() {
        Some(manifest) => manifest,
        None => fetch_wanted(job, source, &wanted_digest, from_index.as_ref()).await?,
    };
    let target_manifest = match existing.manifest {
        Some(manifest) => manifest,
        None => target
            .get_manifest(
                &job.target.repository,
                &TagOrDigest::Digest(existing.digest),
            )
            .await
            .map_err(JobError::from)?,
    };
    let source_config = config_of(&source_manifest);
    Ok(source_config.is_some() && source_config == config_of(&target_manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(n: char, platform: Option<&str>) -> Descriptor {
        let digest =
            Digest::parse(&format!("sha256:{}", n.to_string().repeat(64))).expect("digest");
        let mut d = Descriptor::new(media_type::OCI_MANIFEST, digest, 1);
        d.platform = platform.map(|p| Platform::parse(p).expect("platform"));
        d
    }

    #[test]
    fn a_missing_platform_says_what_the_index_holds() {
        assert_eq!(
            index_holds(&[child('a', None), child('b', None)]),
            "it is an index of artifacts, not of platforms: none of its entries declares a platform"
        );
        assert_eq!(
            index_holds(&[child('a', Some("linux/amd64"))]),
            "it has: linux/amd64"
        );
        assert_eq!(
            index_holds(&[child('a', Some("linux/amd64")), child('b', None)]),
            "it has: linux/amd64, and 1 entry without a platform (artifacts such as attestations)"
        );
    }
}
