//! The up-to-date pre-check of the compatibility relays (docs/behaviour.md#up-to-date-checks):
//! a few HEAD requests
//! decide whether a tag must be copied at all, before a skopeo process starts or the Docker
//! daemon pulls anything.
//!
//! The native relay does the same inline (it reuses what it learns for the copy); the external
//! tools cannot, so they only get the verdict.

use crate::config::PlatformChoice;
use crate::plan::ImageJob;
use crate::registry::{Descriptor, Platform, Registry, TagOrDigest, media_type};

/// The source manifest the target must hold for `job`: the index itself (`platform: all`, a
/// digest-pinned target, or a single-platform source), or the wanted platform's entry.
pub(crate) async fn wanted_source(job: &ImageJob, source: &Registry) -> Result<Descriptor, String> {
    let found = source
        .head_manifest(&job.source.repository, &job.source.target)
        .await
        .map_err(|e| e.to_string())?;
    let Some(top) = found else {
        return Err(format!("source image {} not found", job.source));
    };
    let pinned = matches!(job.target.target, TagOrDigest::Digest(_));
    if !media_type::is_index(&top.media_type) || pinned || job.platform == PlatformChoice::All {
        return Ok(top);
    }
    let platform = platform_of(&job.platform)?;
    let index = source
        .get_manifest(
            &job.source.repository,
            &TagOrDigest::Digest(top.digest.clone()),
        )
        .await
        .map_err(|e| e.to_string())?;
    index
        .select_platform(&platform)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "source image {} has no manifest for platform {platform}",
                job.source
            )
        })
}

/// The platform a mapping asks for; the host's when it names none (what skopeo picks, and,
/// on the usual single-machine setup, what the Docker daemon picks).
pub(crate) fn platform_of(choice: &PlatformChoice) -> Result<Platform, String> {
    match choice {
        PlatformChoice::Specific { .. } => {
            Platform::parse(&choice.as_config_text()).map_err(|e| e.to_string())
        }
        _ => Ok(Platform::host()),
    }
}

/// Whether the target tag (or digest) already holds exactly the wanted manifest.
pub(crate) async fn same_digest(
    job: &ImageJob,
    source: &Registry,
    target: &Registry,
) -> Result<bool, String> {
    let wanted = wanted_source(job, source).await?;
    let existing = target
        .head_manifest(&job.target.repository, &job.target.target)
        .await
        .map_err(|e| e.to_string())?;
    Ok(holds(existing.as_ref(), &wanted))
}

/// The up-to-date decision, shared by every relay and by `dregsy plan`: the target
/// holds the wanted manifest when its tag (or digest) resolves to the same digest.
pub(crate) fn holds(existing: Option<&Descriptor>, wanted: &Descriptor) -> bool {
    existing.is_some_and(|d| d.digest == wanted.digest)
}

/// Whether the target tag `target_ref` already holds the wanted image as a Docker daemon
/// pushes it. A daemon recompresses layers, so the manifest digest differs from the source's;
/// the image config (the image ID) does not change, so equal config digests mean the same image.
pub(crate) async fn same_image(
    job: &ImageJob,
    target_ref: &TagOrDigest,
    source: &Registry,
    target: &Registry,
) -> Result<bool, String> {
    let Some(existing) = target
        .head_manifest(&job.target.repository, target_ref)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    let wanted = wanted_source(job, source).await?;
    if existing.digest == wanted.digest {
        return Ok(true);
    }
    if media_type::is_index(&existing.media_type) || media_type::is_index(&wanted.media_type) {
        return Ok(false);
    }
    let config_of = |manifest: crate::registry::Manifest| {
        manifest
            .blobs()
            .ok()
            .filter(|_| !media_type::is_schema1(&manifest.media_type))
            .and_then(|blobs| blobs.into_iter().next())
            .map(|config| config.digest)
    };
    let source_manifest = source
        .get_manifest(&job.source.repository, &TagOrDigest::Digest(wanted.digest))
        .await
        .map_err(|e| e.to_string())?;
    let target_manifest = target
        .get_manifest(
            &job.target.repository,
            &TagOrDigest::Digest(existing.digest),
        )
        .await
        .map_err(|e| e.to_string())?;
    let source_config = config_of(source_manifest);
    Ok(source_config.is_some() && source_config == config_of(target_manifest))
}
