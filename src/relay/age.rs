//! How old an image is, for `min-age` (docs/configuration.md#min-age): the time it was built,
//! from the `org.opencontainers.image.created` annotation of its manifest or index when present,
//! else from the `created` field of its image config (the newest of a multi-platform image's
//! children, so that a new platform build counts as new).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::registry::{MAX_MANIFEST_SIZE, Manifest, Repository, TagOrDigest};
use crate::relay::JobError;
use crate::store::ImageStore;

/// How deep indexes may nest when looking for the newest child.
const MAX_DEPTH: usize = 3;

/// The OCI annotation naming when an image was built (OCI image spec, "Pre-Defined Annotation
/// Keys"), RFC 3339.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

#[derive(Deserialize)]
struct Annotated {
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct ImageConfig {
    created: Option<String>,
}

fn parse_time(text: &str, what: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!(
                "{what} '{}' is not an RFC 3339 time ({e})",
                crate::registry::truncate(text, 60)
            )
        })
}

/// The `org.opencontainers.image.created` annotation of a manifest or index, when it has one.
///
/// # Errors
/// The annotation is there but is not an RFC 3339 time.
pub fn annotated_created(manifest: &[u8]) -> Result<Option<DateTime<Utc>>, String> {
    let Ok(parsed) = serde_json::from_slice::<Annotated>(manifest) else {
        return Ok(None);
    };
    parsed
        .annotations
        .and_then(|a| a.get(CREATED_ANNOTATION).cloned())
        .map(|text| parse_time(&text, &format!("the '{CREATED_ANNOTATION}' annotation")))
        .transpose()
}

/// The `created` time of an image config blob.
///
/// # Errors
/// The config is not JSON, has no `created`, or its `created` is not an RFC 3339 time: the age
/// of such an image cannot be told, and `min-age` never guesses.
pub fn config_created(config: &[u8]) -> Result<DateTime<Utc>, String> {
    let parsed: ImageConfig = serde_json::from_slice(config)
        .map_err(|e| format!("the image config is not JSON ({e}), so its age is unknown"))?;
    let text = parsed.created.ok_or_else(|| {
        format!(
            "the image config has no 'created' time and the manifest no '{CREATED_ANNOTATION}' \
             annotation, so its age is unknown"
        )
    })?;
    parse_time(&text, "the image config's 'created' time")
}

/// When the image `manifest` (an image manifest or an index) was built: its annotation, else its
/// config's `created`; for an index, the newest of its children's (attestation manifests, listed
/// for `unknown/unknown`, are not images and are left out). Costs one GET per child manifest and
/// per config blob, made only for images that would otherwise be copied.
///
/// # Errors
/// The source could not be read, or the image's age cannot be told (see [`config_created`]).
pub async fn image_created(
    source: &ImageStore,
    repo: &Repository,
    manifest: &Manifest,
) -> Result<DateTime<Utc>, JobError> {
    created_at_depth(source, repo, manifest, 0).await
}

async fn created_at_depth(
    source: &ImageStore,
    repo: &Repository,
    manifest: &Manifest,
    depth: usize,
) -> Result<DateTime<Utc>, JobError> {
    if let Some(created) = annotated_created(&manifest.bytes)? {
        return Ok(created);
    }
    if !manifest.is_index() {
        let blobs = manifest.blobs().map_err(JobError::from)?;
        let Some(config) = blobs.first() else {
            return Err("the image has no config, so its age is unknown".into());
        };
        if config.size > MAX_MANIFEST_SIZE as u64 {
            return Err(format!(
                "the image config is {} bytes, too large to read its 'created' time",
                config.size
            )
            .into());
        }
        let bytes = super::trust::read_blob(source, repo, &config.digest, config.size)
            .await
            .map_err(JobError::from)?;
        return Ok(config_created(&bytes)?);
    }
    if depth >= MAX_DEPTH {
        return Err(format!(
            "index {} nests deeper than {MAX_DEPTH} levels",
            manifest.digest
        )
        .into());
    }
    let mut newest: Option<DateTime<Utc>> = None;
    for child in manifest.children().map_err(JobError::from)? {
        if child.platform.as_ref().is_some_and(|p| p.os == "unknown") {
            continue;
        }
        let child_manifest = source
            .get_manifest(repo, &TagOrDigest::Digest(child.digest.clone()))
            .await
            .map_err(JobError::from)?;
        let created = Box::pin(created_at_depth(source, repo, &child_manifest, depth + 1)).await?;
        newest = newest.max(Some(created));
    }
    newest
        .ok_or_else(|| {
            format!(
                "index {} lists no image, so its age is unknown",
                manifest.digest
            )
        })
        .map_err(JobError::from)
}

/// How long until an image built at `created` is `min_age` old, as of `now`; `None` when it is
/// old enough. An image "built" in the future is too young until then plus `min_age`.
pub fn time_left(
    created: DateTime<Utc>,
    now: DateTime<Utc>,
    min_age: Duration,
) -> Option<Duration> {
    let min_age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
    let old_enough_at = created.checked_add_signed(min_age)?;
    (old_enough_at > now)
        .then(|| (old_enough_at - now).to_std().ok())
        .flatten()
}

/// The log text for an image that is too young: "too young, N h left", N rounded up to whole
/// hours (at least 1).
pub fn too_young_text(left: Duration) -> String {
    let hours = left.as_secs().div_ceil(3600).max(1);
    format!("too young, {hours} h left")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text, "t").unwrap()
    }

    #[test]
    fn created_from_annotation_or_config() {
        let index = br#"{"schemaVersion":2,"manifests":[],"annotations":{"org.opencontainers.image.created":"2026-11-01T10:00:00+02:00"}}"#;
        assert_eq!(
            annotated_created(index).unwrap(),
            Some(at("2026-11-01T08:00:00Z"))
        );
        assert_eq!(annotated_created(br#"{"schemaVersion":2}"#).unwrap(), None);
        assert_eq!(annotated_created(b"not json").unwrap(), None);
        let bad = br#"{"annotations":{"org.opencontainers.image.created":"yesterday"}}"#;
        assert!(annotated_created(bad).unwrap_err().contains("'yesterday'"));

        assert_eq!(
            config_created(
                br#"{"created":"2026-11-30T12:00:00.123456789Z","architecture":"amd64"}"#
            )
            .unwrap(),
            at("2026-11-30T12:00:00.123456789Z")
        );
        assert!(
            config_created(br#"{"architecture":"amd64"}"#)
                .unwrap_err()
                .contains("no 'created'")
        );
        assert!(
            config_created(br#"{"created":"1 Jan"}"#)
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(config_created(b"\x00").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn time_left_and_text() {
        let now = at("2026-12-01T00:00:00Z");
        let day = Duration::from_secs(24 * 3600);
        let three_days = 3 * day;
        assert_eq!(time_left(at("2026-11-20T00:00:00Z"), now, three_days), None);
        assert_eq!(
            time_left(at("2026-11-28T00:00:00Z"), now, three_days),
            None,
            "exactly old enough"
        );
        assert_eq!(
            time_left(at("2026-11-30T00:00:00Z"), now, three_days),
            Some(2 * day)
        );
        // Built "in the future": too young for min-age plus the time until then.
        assert_eq!(
            time_left(at("2026-12-02T00:00:00Z"), now, three_days),
            Some(4 * day)
        );
        assert_eq!(too_young_text(2 * day), "too young, 48 h left");
        assert_eq!(
            too_young_text(Duration::from_secs(90 * 60)),
            "too young, 2 h left"
        );
        assert_eq!(
            too_young_text(Duration::from_secs(10)),
            "too young, 1 h left"
        );
    }
}
