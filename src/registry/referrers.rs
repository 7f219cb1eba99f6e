//! Referrers: manifests that name another one as their `subject` (signatures, SBOMs,
//! attestations), and the tag schemes registries without the referrers API use for them
//! (OCI distribution spec 1.1, "Listing Referrers" and "Referrers Tag Schema"; README.md,
//! "Signatures, SBOMs and trust").
//!
//! Pure functions over bytes: the names of the fallback and legacy tags, reading a referrers
//! index (an answer of `GET /v2/<name>/referrers/<digest>`, or a fallback tag's content), the
//! descriptor of a referrer manifest, and merging new referrers into what a target's fallback
//! tag already holds without dropping anything. Then the two requests of the referrers API:
//! listing a subject's referrers, and pushing a referrer so that the registry indexes it.

use std::collections::BTreeMap;

use reqwest::header::{ACCEPT, HeaderValue, LINK};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::auth::Scope;
use super::client::{Registry, header_text, read_limited};
use super::digest::Digest;
use super::error::{Error, ErrorKind, Result};
use super::listing::next_link;
use super::manifest::{MAX_MANIFEST_SIZE, Manifest, media_type};
use super::reference::{Repository, TagOrDigest};
use super::transport::Request;

/// A bound on pages of one referrers list, so a looping `Link` cannot keep us busy.
const MAX_REFERRER_PAGES: usize = 100;

/// The tag that holds the referrers index of `subject` on registries without the referrers
/// API: `<alg>-<hex>`, e.g. `sha256-0123…`.
pub fn fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// The tags older cosign releases put beside an image for `subject`: `sha256-<hex>.sig`
/// (signatures), `.att` (attestations) and `.sbom` (SBOMs), in that order.
pub fn legacy_tags(subject: &Digest) -> [String; 3] {
    let base = fallback_tag(subject);
    [".sig", ".att", ".sbom"].map(|suffix| format!("{base}{suffix}"))
}

/// Whether `tag` is in the referrers tag schema: a fallback tag `sha256-<64 hex>`, or one of
/// cosign's legacy tags `sha256-<64 hex>.sig`, `.att`, `.sbom`. Such tags hold referrers, not
/// images; with `referrers: true` they travel with their subject
/// (docs/behaviour.md#referrers).
pub fn is_referrer_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let (Some(hex), Some(suffix)) = (rest.get(..64), rest.get(64..)) else {
        return false;
    };
    super::digest::is_lower_hex(hex) && matches!(suffix, "" | ".sig" | ".att" | ".sbom")
}

/// One entry of a referrers index: a descriptor of a referrer manifest, with its artifact type
/// and annotations (which the referrers API copies from the manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    /// Media type of the referrer manifest.
    pub media_type: String,
    /// Digest of the referrer manifest.
    #[serde(with = "digest_text")]
    pub digest: Digest,
    /// Size of the referrer manifest in bytes.
    pub size: u64,
    /// What the referrer is (`application/vnd.dev.cosign.artifact.sig.v1+json`, an SBOM type…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The referrer manifest's annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A [`Digest`] as its text in JSON, checked when read.
mod digest_text {
    use super::Digest;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(digest: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(digest.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIndex {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawReferrerManifest {
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawConfig>,
    subject: Option<RawSubject>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    media_type: Option<String>,
}

#[derive(Deserialize)]
struct RawSubject {
    digest: String,
}

/// Reads a referrers index: the answer of the referrers API, or what a fallback tag holds.
/// `what` names the source for messages (e.g. "the referrers of sha256:… in repo").
///
/// # Errors
/// [`ErrorKind::Protocol`]: not JSON, not an OCI image index (a fallback tag that holds
/// something else), or an entry that is not a descriptor with a sha256 digest.
pub fn parse_index(bytes: &[u8], what: &str) -> Result<Vec<Referrer>> {
    let bad = |why: String| Error::new(ErrorKind::Protocol, format!("{what}: {why}"));
    let raw: RawIndex = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("not a referrers index: not JSON of an index ({e})")))?;
    let is_index = raw.schema_version == Some(2)
        && raw
            .media_type
            .as_deref()
            .is_none_or(|t| t == media_type::OCI_INDEX);
    let Some(entries) = raw.manifests.filter(|_| is_index) else {
        return Err(bad(
            "not a referrers index: it holds something else than an OCI image index".into(),
        ));
    };
    entries
        .into_iter()
        .map(|entry| {
            serde_json::from_value::<Referrer>(entry)
                .map_err(|e| bad(format!("a referrers index entry is malformed ({e})")))
        })
        .collect()
}

/// The referrers whose artifact type is `artifact_type` (all of them for `None`): what the
/// referrers API's `artifactType` query does, applied again to answers of registries that
/// ignore the query and to fallback tags.
pub fn filter_by_artifact_type(
    referrers: Vec<Referrer>,
    artifact_type: Option<&str>,
) -> Vec<Referrer> {
    match artifact_type {
        None => referrers,
        Some(wanted) => referrers
            .into_iter()
            .filter(|r| r.artifact_type.as_deref() == Some(wanted))
            .collect(),
    }
}

/// The referrers index entry for a referrer `manifest`, checking that its subject is `subject`.
/// The artifact type is the manifest's `artifactType`, else its config's media type (OCI image
/// spec, "Guidelines for Artifact Usage").
///
/// # Errors
/// [`ErrorKind::Protocol`] when the manifest is not JSON or names another subject (or none).
pub fn entry_for(manifest: &Manifest, subject: &Digest) -> Result<Referrer> {
    let bad = |why: String| {
        Error::new(
            ErrorKind::Protocol,
            format!("referrer {} of {subject}: {why}", manifest.digest),
        )
    };
    let raw: RawReferrerManifest = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| bad(format!("not a manifest ({e})")))?;
    let named = raw.subject.map(|s| s.digest);
    if named.as_deref() != Some(subject.as_str()) {
        return Err(bad(format!(
            "its subject is {}, not {subject}",
            named
                .as_deref()
                .map_or("missing".to_string(), |n| super::error::truncate(n, 80))
        )));
    }
    let artifact_type = raw.artifact_type.or_else(|| {
        raw.config
            .and_then(|c| c.media_type)
            .filter(|t| t != "application/vnd.oci.empty.v1+json")
    });
    Ok(Referrer {
        media_type: raw
            .media_type
            .unwrap_or_else(|| manifest.media_type.clone()),
        digest: manifest.digest.clone(),
        size: manifest.bytes.len() as u64,
        artifact_type,
        annotations: raw.annotations,
    })
}

/// A referrers index listing `referrers`, as the fallback tag holds it.
pub fn index_bytes(referrers: &[Referrer]) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": referrers,
    })
    .to_string()
    .into_bytes()
}

/// What a target's fallback tag must hold once `additions` are copied: its current entries
/// (`existing`, the tag's content when it exists) followed by the additions it lacks. `None`
/// when it already lists every addition, so a no-op run writes nothing.
///
/// # Errors
/// The existing content is not a referrers index: it is never overwritten, since it is
/// something a user put there ([`ErrorKind::Protocol`]).
pub fn merge(
    existing: Option<&[u8]>,
    additions: &[Referrer],
    what: &str,
) -> Result<Option<Vec<u8>>> {
    let mut merged = match existing {
        Some(bytes) => parse_index(bytes, what)?,
        None => Vec::new(),
    };
    let before = merged.len();
    for addition in additions {
        if !merged.iter().any(|r| r.digest == addition.digest) {
            merged.push(addition.clone());
        }
    }
    if existing.is_some() && merged.len() == before {
        return Ok(None);
    }
    Ok(Some(index_bytes(&merged)))
}

/// How a registry took a pushed referrer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushedReferrer {
    /// It answered `OCI-Subject`: it indexes the referrer itself (referrers API semantics).
    Indexed,
    /// It stored the manifest without a word about its subject: the pusher must list it in the
    /// fallback tag (OCI distribution spec 1.1, "Pushing Manifests with Subject").
    NotIndexed,
}

impl Registry {
    /// The referrers of `subject` in `repo` through the referrers API, with `artifact_type`
    /// asked for and applied again here (registries may ignore the filter); `None` when the
    /// registry does not offer the API (404, 405 or 501 to the request: the spec's way of
    /// saying so), so the caller reads the fallback tag instead.
    ///
    /// # Errors
    /// The registry refused the request otherwise, or answered something that is not a
    /// referrers index.
    pub async fn list_referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Referrer>>> {
        let context = format!("listing referrers of {}/{repo}@{subject}", self.host());
        let mut url = self
            .url(&format!("v2/{repo}/referrers/{subject}"))
            .await
            .map_err(|e| e.context(&context))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let mut referrers = Vec::new();
        let mut next = Some(url);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_REFERRER_PAGES {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!("more than {MAX_REFERRER_PAGES} pages of referrers; the registry's pagination seems to loop"),
                )
                .context(&context));
            }
            let mut request = Request::new(Method::GET, url);
            request
                .headers
                .insert(ACCEPT, HeaderValue::from_static(media_type::OCI_INDEX));
            let response = self
                .execute(request, &[Scope::pull(repo)])
                .await
                .map_err(|e| e.context(&context))?;
            match response.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::NOT_IMPLEMENTED
                    if pages == 1 =>
                {
                    return Ok(None);
                }
                _ => {
                    return Err(self
                        .status_error(response, "the referrers list", &context)
                        .await);
                }
            }
            let link = header_text(response.headers(), LINK.as_str()).map(str::to_owned);
            let final_url = response.url().clone();
            let bytes = read_limited(response, MAX_MANIFEST_SIZE, "referrers list")
                .await
                .map_err(|e| e.context(&context))?;
            referrers.extend(parse_index(&bytes, &context)?);
            next = link
                .as_deref()
                .and_then(next_link)
                .and_then(|target| final_url.join(target).ok());
        }
        Ok(Some(filter_by_artifact_type(referrers, artifact_type)))
    }

    /// Pushes a referrer manifest by its digest and says whether the registry indexed it
    /// (answered `OCI-Subject`). Its blobs must already be in `repo`.
    ///
    /// # Errors
    /// As [`Registry::put_manifest`].
    pub async fn put_referrer(
        &self,
        repo: &Repository,
        manifest: &Manifest,
    ) -> Result<PushedReferrer> {
        let reference = TagOrDigest::Digest(manifest.digest.clone());
        let context = format!("pushing referrer {}", self.display(repo, &reference));
        manifest.check_pushable().map_err(|e| e.context(&context))?;
        let headers = self
            .send_manifest(repo, &reference, manifest, &context)
            .await?;
        Ok(if headers.contains_key("oci-subject") {
            PushedReferrer::Indexed
        } else {
            PushedReferrer::NotIndexed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: char) -> Digest {
        Digest::parse(&format!("sha256:{}", n.to_string().repeat(64))).unwrap()
    }

    fn referrer(n: char, artifact_type: &str) -> Referrer {
        Referrer {
            media_type: media_type::OCI_MANIFEST.into(),
            digest: d(n),
            size: 100,
            artifact_type: Some(artifact_type.into()),
            annotations: BTreeMap::from([("k".to_string(), "v".to_string())]),
        }
    }

    #[test]
    fn referrer_tags_are_recognised() {
        let hex = "a".repeat(64);
        for tag in [
            format!("sha256-{hex}"),
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.att"),
            format!("sha256-{hex}.sbom"),
        ] {
            assert!(is_referrer_tag(&tag), "{tag}");
        }
        for tag in [
            "latest".to_string(),
            format!("sha256-{}", "a".repeat(63)),
            format!("sha256-{hex}.sigx"),
            format!("sha256-{hex}-x"),
            format!("sha256-{}", "A".repeat(64)),
            format!("sha512-{hex}"),
            // Not a character boundary at byte 64: no panic.
            format!("sha256-{}é", "a".repeat(63)),
        ] {
            assert!(!is_referrer_tag(&tag), "{tag}");
        }
    }

    #[test]
    fn tag_names() {
        let subject = d('a');
        let hex = "a".repeat(64);
        assert_eq!(fallback_tag(&subject), format!("sha256-{hex}"));
        assert_eq!(
            legacy_tags(&subject),
            [
                format!("sha256-{hex}.sig"),
                format!("sha256-{hex}.att"),
                format!("sha256-{hex}.sbom")
            ]
        );
        // Every one is a valid tag (at most 128 characters of the tag alphabet).
        for tag in legacy_tags(&subject) {
            assert!(super::super::TagOrDigest::tag(&tag).is_ok(), "{tag}");
        }
    }

    #[test]
    fn index_round_trip_and_filter() {
        let list = vec![
            referrer('1', "application/sig"),
            referrer('2', "application/sbom"),
        ];
        let bytes = index_bytes(&list);
        let parsed = parse_index(&bytes, "test").unwrap();
        assert_eq!(parsed, list);
        let sigs = filter_by_artifact_type(parsed.clone(), Some("application/sig"));
        assert_eq!(sigs, vec![list[0].clone()]);
        assert_eq!(filter_by_artifact_type(parsed, None).len(), 2);
        let manifest = Manifest::from_bytes(None, bytes.into()).unwrap();
        assert_eq!(manifest.media_type, media_type::OCI_INDEX);
    }

    #[test]
    fn bad_indexes_are_protocol_errors() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{}},"layers":[]}}"#,
            media_type::OCI_MANIFEST
        );
        let cases: [(&[u8], &str); 4] = [
            (b"not json", "not JSON"),
            (image.as_bytes(), "something else"),
            (
                br#"{"schemaVersion":2,"manifests":[{"digest":"nope","size":1,"mediaType":"x"}]}"#,
                "malformed",
            ),
            (
                br#"{"schemaVersion":2,"manifests":[{"size":1}]}"#,
                "malformed",
            ),
        ];
        for (bytes, expected) in cases {
            let err = parse_index(bytes, "the fallback tag").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol);
            assert!(err.to_string().contains(expected), "{err}");
            assert!(err.to_string().contains("the fallback tag"), "{err}");
        }
    }

    #[test]
    fn merge_keeps_what_is_there_and_writes_only_when_needed() {
        let there = index_bytes(&[referrer('1', "a")]);
        let merged = merge(Some(&there), &[referrer('2', "b"), referrer('1', "a")], "t")
            .unwrap()
            .expect("one new entry");
        let parsed = parse_index(&merged, "t").unwrap();
        let digests: Vec<Digest> = parsed.iter().map(|r| r.digest.clone()).collect();
        assert_eq!(digests, [d('1'), d('2')]);
        assert_eq!(
            merge(Some(&merged), &[referrer('2', "b")], "t").unwrap(),
            None
        );
        assert!(
            merge(None, &[], "t").unwrap().is_some(),
            "a new tag is written"
        );
        let err = merge(
            Some(b"{\"schemaVersion\":2,\"layers\":[]}"),
            &[referrer('3', "c")],
            "t",
        )
        .unwrap_err();
        assert!(err.to_string().contains("something else"), "{err}");
    }

    #[test]
    fn entry_for_a_referrer_manifest() {
        let subject = d('5');
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.dev.cosign.artifact.sig.v1+json","digest":"{}","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"{}","size":3}},"annotations":{{"x":"y"}}}}"#,
            media_type::OCI_MANIFEST,
            d('6'),
            media_type::OCI_MANIFEST,
            subject
        );
        let manifest = Manifest::from_bytes(None, text.into_bytes().into()).unwrap();
        let entry = entry_for(&manifest, &subject).unwrap();
        assert_eq!(entry.digest, manifest.digest);
        assert_eq!(
            entry.artifact_type.as_deref(),
            Some("application/vnd.dev.cosign.artifact.sig.v1+json")
        );
        assert_eq!(entry.annotations.get("x").map(String::as_str), Some("y"));
        let err = entry_for(&manifest, &d('7')).unwrap_err();
        assert!(err.to_string().contains("its subject is"), "{err}");
    }
}
