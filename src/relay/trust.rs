//! The signature check before mirroring (`verify: {cosign-key: …}`;
//! docs/configuration.md#verify): an image is copied only when a cosign signature made with the
//! configured key vouches for the digest being copied.
//!
//! Signatures are looked for where cosign puts them: as OCI 1.1 referrers (the referrers API,
//! else the `sha256-<hex>` fallback tag), simple-signing signatures and sigstore bundles (cosign
//! 3's default), and under the legacy `sha256-<hex>.sig` tag. Nothing is written anywhere here;
//! the copy starts only after this returns `Ok`.

use futures_util::TryStreamExt;

use crate::config::Verify;
use crate::cosign::{self, Rejection, SIGNATURE_ARTIFACT_TYPE, bundle};
use crate::registry::referrers::{self, Referrer};
use crate::registry::{Digest, ErrorKind, Manifest, Repository, TagOrDigest};
use crate::relay::JobError;
use crate::store::ImageStore;

/// Payload and bundle blobs larger than this are not signatures (cosign's payloads are a few
/// hundred bytes, its bundles a few kilobytes); the bound keeps a hostile signature from making
/// us read gigabytes.
const MAX_PAYLOAD_BYTES: u64 = 1024 * 1024;
/// At most this many signature manifests are examined per image.
const MAX_SIGNATURES: usize = 32;

/// Checks that `repo` holds a cosign signature of `subject` made with `verify`'s key.
///
/// # Errors
/// No signature was found (the message says where dregsy looked), none of those found verifies
/// (the message gives each one's reason), or the source could not be read.
pub async fn check_signed(
    source: &ImageStore,
    repo: &Repository,
    subject: &Digest,
    verify: &Verify,
) -> Result<(), JobError> {
    let key_file = verify.key_file.display();
    let mut candidates: Vec<(String, Manifest)> = Vec::new();
    let mut problems: Vec<String> = Vec::new();

    // OCI 1.1 referrers: the API when the registry has it, else the fallback tag. Both kinds
    // of signature are asked for at once (the API filters one artifact type per request).
    let listed = source
        .list_referrers(repo, subject, None)
        .await
        .map_err(JobError::from)?;
    let (referrers, via): (Vec<Referrer>, String) = match listed {
        Some(list) => (list, "the referrers API".into()),
        None => {
            let tag = referrers::fallback_tag(subject);
            let via = format!("the fallback tag '{tag}'");
            match get_tag(source, repo, &tag).await? {
                None => (Vec::new(), via),
                Some(index) => match referrers::parse_index(&index.bytes, &via) {
                    Ok(list) => (list, via),
                    Err(e) => {
                        problems.push(e.to_string());
                        (Vec::new(), via)
                    }
                },
            }
        }
    };
    let signatures = referrers.into_iter().filter(|r| {
        r.artifact_type
            .as_deref()
            .is_some_and(|t| t == SIGNATURE_ARTIFACT_TYPE || bundle::is_bundle_media_type(t))
    });
    for referrer in signatures.take(MAX_SIGNATURES) {
        let reference = TagOrDigest::Digest(referrer.digest.clone());
        match source.get_manifest(repo, &reference).await {
            Ok(manifest) => candidates.push((format!("referrer {}", referrer.digest), manifest)),
            Err(e) if e.kind() == ErrorKind::NotFound => problems.push(format!(
                "{via} lists {}, which the repository does not hold",
                referrer.digest
            )),
            Err(e) => return Err(e.into()),
        }
    }
    // cosign before OCI 1.1: a tag beside the image.
    let [legacy_sig, ..] = referrers::legacy_tags(subject);
    if let Some(manifest) = get_tag(source, repo, &legacy_sig).await? {
        candidates.push((format!("tag '{legacy_sig}'"), manifest));
    }

    if candidates.is_empty() && problems.is_empty() {
        return Err(format!(
            "not copied: no cosign signature of {subject} found (looked at {via} and the tag \
             '{legacy_sig}'); 'verify' wants one made with the key '{key_file}'"
        )
        .into());
    }
    for (name, manifest) in &candidates {
        match signature_verifies(source, repo, manifest, subject, verify).await? {
            Ok(()) => {
                tracing::debug!(subject = %subject, signature = %name, "cosign signature verified");
                return Ok(());
            }
            Err(why) => problems.push(format!("{name}: {why}")),
        }
    }
    Err(format!(
        "not copied: no cosign signature of {subject} verifies with the key '{key_file}': {}",
        problems.join("; ")
    )
    .into())
}

/// Whether one signature manifest holds a signature of `subject` with the key: `Ok(Ok(()))`
/// when one of its layers does, `Ok(Err(why))` when none does, `Err` when the source failed.
async fn signature_verifies(
    source: &ImageStore,
    repo: &Repository,
    manifest: &Manifest,
    subject: &Digest,
    verify: &Verify,
) -> Result<Result<(), String>, JobError> {
    let (layers, bundles) = match (
        cosign::signature_layers(&manifest.bytes),
        cosign::bundle_layers(&manifest.bytes),
    ) {
        (Ok(layers), Ok(bundles)) if layers.is_empty() && bundles.is_empty() => {
            return Ok(Err(
                "it holds no signed simple-signing layer and no sigstore bundle".into(),
            ));
        }
        (Ok(layers), Ok(bundles)) => (layers, bundles),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    let mut reasons = Vec::new();
    for layer in layers {
        let payload =
            match small_blob(source, repo, &layer.payload_digest, layer.payload_size).await? {
                Ok(payload) => payload,
                Err(why) => {
                    reasons.push(format!("its payload {why}"));
                    continue;
                }
            };
        match cosign::verify(&verify.key, &layer, &payload, subject) {
            Ok(()) => return Ok(Ok(())),
            Err(rejection) => reasons.push(rejection.to_string()),
        }
    }
    for layer in bundles {
        let bundle = match small_blob(source, repo, &layer.digest, layer.size).await? {
            Ok(bundle) => bundle,
            Err(why) => {
                reasons.push(format!("its sigstore bundle {why}"));
                continue;
            }
        };
        match bundle_verifies(source, repo, &bundle, subject, verify).await? {
            Ok(()) => return Ok(Ok(())),
            Err(rejection) => reasons.push(rejection.to_string()),
        }
    }
    Ok(Err(reasons.join(", ")))
}

/// [`bundle::verify_bundle`], reading the subject's manifest for a message signature.
async fn bundle_verifies(
    source: &ImageStore,
    repo: &Repository,
    bundle: &[u8],
    subject: &Digest,
    verify: &Verify,
) -> Result<Result<(), Rejection>, JobError> {
    match bundle::verify_bundle(&verify.key, bundle, subject, None) {
        Err(Rejection::NeedsSubjectManifest) => {
            let reference = TagOrDigest::Digest(subject.clone());
            let manifest = source
                .get_manifest(repo, &reference)
                .await
                .map_err(JobError::from)?;
            Ok(bundle::verify_bundle(
                &verify.key,
                bundle,
                subject,
                Some(&manifest.bytes),
            ))
        }
        other => Ok(other),
    }
}

/// A signature's payload or bundle blob, bounded by [`MAX_PAYLOAD_BYTES`]: `Ok(Err(why))` when
/// it is too large, missing or does not match its digest; `Err` when the source failed.
async fn small_blob(
    source: &ImageStore,
    repo: &Repository,
    digest: &Digest,
    size: u64,
) -> Result<Result<Vec<u8>, String>, JobError> {
    if size > MAX_PAYLOAD_BYTES {
        return Ok(Err(format!(
            "is {size} bytes, more than a signature can be"
        )));
    }
    match read_blob(source, repo, digest, size).await {
        Ok(bytes) => Ok(Ok(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Err(format!("blob {digest} is missing"))),
        Err(e) if e.kind() == ErrorKind::DigestMismatch => Ok(Err(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// The manifest a tag names, or `None` when the tag does not exist.
async fn get_tag(
    source: &ImageStore,
    repo: &Repository,
    tag: &str,
) -> Result<Option<Manifest>, JobError> {
    let reference = TagOrDigest::tag(tag).map_err(JobError::from)?;
    match source.get_manifest(repo, &reference).await {
        Ok(manifest) => Ok(Some(manifest)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A small blob in memory, verified against its digest and size by the client.
pub(crate) async fn read_blob(
    source: &ImageStore,
    repo: &Repository,
    digest: &Digest,
    size: u64,
) -> crate::registry::Result<Vec<u8>> {
    let stream = source.get_blob(repo, digest, size).await?;
    stream
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
}

/// Checks the cosign signature of what `job` copies (`copied`): a signature of the tag's own
/// manifest (for an index, it vouches for every child it lists), else of the manifest copied
/// (one platform's, or the index of `platform: all`); docs/configuration.md#verify.
///
/// # Errors
/// The refusal, naming the source image; what the registry reported.
pub(crate) async fn verify_job(
    job: &crate::plan::ImageJob,
    source: &ImageStore,
    copied: &Manifest,
    verify: &Verify,
) -> Result<(), super::JobError> {
    let repo = &job.source.repository;
    let top = source
        .head_manifest(repo, &job.source.target)
        .await
        .map_err(super::JobError::from)?
        .ok_or_else(|| {
            super::JobError::NotFound(format!("source image {} not found", job.source))
        })?;
    let first = check_signed(source, repo, &top.digest, verify).await;
    let copies_other = copied.digest != top.digest
        && !matches!(job.platform, crate::config::PlatformChoice::Subset(_));
    match first {
        Ok(()) => Ok(()),
        Err(_)
            if copies_other
                && check_signed(source, repo, &copied.digest, verify)
                    .await
                    .is_ok() =>
        {
            Ok(())
        }
        Err(e) => Err(format!("source image {}: {e}", job.source).into()),
    }
}
