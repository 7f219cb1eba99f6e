//! An index cut down to some of its platforms (`platform: [linux/amd64, linux/arm64]`;
//! docs/behaviour.md#platform-choice).
//!
//! The children stay byte-identical (same digests); only the index is rewritten, so its digest
//! differs from the source's. The rewrite keeps the index's other fields and the kept entries
//! exactly as written, in their order, and is deterministic: the same source index and the same
//! platforms always give the same bytes, so the up-to-date check can compare digests.

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::error::{Error, ErrorKind, Result};
use super::manifest::{Descriptor, Manifest};
use super::platform::Platform;

/// The annotation BuildKit puts on an attestation manifest: what kind of reference it is.
const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
/// The annotation BuildKit puts on an attestation manifest: the image manifest it is about.
const REFERENCE_DIGEST_ANNOTATION: &str = "vnd.docker.reference.digest";

/// What [`platform_subset`] made of an index.
#[derive(Debug, Clone)]
pub struct Subset {
    /// The rewritten index, with the source index's media type.
    pub index: Manifest,
    /// The entries kept, in index order: the matching platforms' manifests and the attestation
    /// manifests about them.
    pub kept: Vec<Descriptor>,
    /// Wanted platforms the index has no manifest for (a warning for the caller to log).
    pub missing: Vec<Platform>,
}

/// One index entry, read for the decision only; its text is kept as it was.
#[derive(Deserialize)]
struct Entry {
    digest: String,
    platform: Option<EntryPlatform>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct EntryPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// The fields of a JSON object in the order written, each value as its exact text.
struct OrderedObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<OrderedObject, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push(entry);
                }
                Ok(OrderedObject(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// Keeps the entries of `index` for the `wanted` platforms, with the attestation manifests
/// (`unknown/unknown` entries BuildKit annotates with the digest they are about) of the kept
/// entries.
///
/// # Errors
/// `index` is not an index or not valid JSON of one ([`ErrorKind::Protocol`]), or it has none
/// of the wanted platforms ([`ErrorKind::NotFound`], naming the platforms it has).
pub fn platform_subset(index: &Manifest, wanted: &[Platform]) -> Result<Subset> {
    if !index.is_index() {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!(
                "{} is an image manifest, not an index: there are no platforms to choose from",
                index.digest
            ),
        ));
    }
    let malformed =
        |why: String| Error::new(ErrorKind::Protocol, format!("malformed index: {why}"));
    let OrderedObject(fields) =
        serde_json::from_slice(&index.bytes).map_err(|e| malformed(e.to_string()))?;
    let entries_text = fields
        .iter()
        .find(|(key, _)| key == "manifests")
        .map(|(_, value)| value.get())
        .ok_or_else(|| malformed("no 'manifests' list".into()))?;
    let entries: Vec<Box<RawValue>> =
        serde_json::from_str(entries_text).map_err(|e| malformed(e.to_string()))?;
    let parsed: Vec<Entry> = entries
        .iter()
        .map(|raw| serde_json::from_str(raw.get()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| malformed(e.to_string()))?;
    let descriptors = index.children()?;

    let (keep, found) = kept_entries(index, &parsed, wanted)?;
    let text = rewritten_text(&fields, &entries, &keep, index.bytes.len())
        .map_err(|e| malformed(e.to_string()))?;
    let rewritten = Manifest::from_bytes(Some(&index.media_type), text.into_bytes().into())?;
    let kept = descriptors
        .into_iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(d, _)| d)
        .collect();
    let missing = wanted
        .iter()
        .zip(&found)
        .filter(|(_, f)| !**f)
        .map(|(p, _)| p.clone())
        .collect();
    Ok(Subset {
        index: rewritten,
        kept,
        missing,
    })
}

/// The platform an entry declares, in the engine's normal form (an empty variant is none).
fn entry_platform(entry: &Entry) -> Option<Platform> {
    entry.platform.as_ref().map(|p| Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone().filter(|v| !v.is_empty()),
    })
}

/// Which entries of the index are kept (the wanted platforms' and the attestations about
/// them) and which wanted platforms were found.
///
/// # Errors
/// [`ErrorKind::NotFound`] when none of the wanted platforms is there, naming the ones that are.
fn kept_entries(
    index: &Manifest,
    parsed: &[Entry],
    wanted: &[Platform],
) -> Result<(Vec<bool>, Vec<bool>)> {
    let mut keep = vec![false; parsed.len()];
    let mut found = vec![false; wanted.len()];
    for (i, entry) in parsed.iter().enumerate() {
        let Some(platform) = entry_platform(entry) else {
            continue;
        };
        for (w, want) in wanted.iter().enumerate() {
            if want.matches(&platform) {
                keep[i] = true;
                found[w] = true;
            }
        }
    }
    if !found.iter().any(|f| *f) {
        let available: Vec<String> = parsed
            .iter()
            .filter_map(entry_platform)
            .filter(|p| p.os != "unknown")
            .map(|p| p.to_string())
            .collect();
        let wanted: Vec<String> = wanted.iter().map(Platform::to_string).collect();
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "index {} has none of the platforms {} (it has: {})",
                index.digest,
                wanted.join(", "),
                available.join(", ")
            ),
        ));
    }
    let kept_digests: Vec<&str> = parsed
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(e, _)| e.digest.as_str())
        .collect();
    for (i, entry) in parsed.iter().enumerate() {
        let is_attestation = entry
            .annotations
            .get(REFERENCE_TYPE_ANNOTATION)
            .is_some_and(|t| t == "attestation-manifest");
        let about_kept = entry
            .annotations
            .get(REFERENCE_DIGEST_ANNOTATION)
            .is_some_and(|d| kept_digests.contains(&d.as_str()));
        if is_attestation && about_kept {
            keep[i] = true;
        }
    }
    Ok((keep, found))
}

/// The index's JSON with only the kept entries in `manifests`, every other field as written.
fn rewritten_text(
    fields: &[(String, Box<RawValue>)],
    entries: &[Box<RawValue>],
    keep: &[bool],
    capacity: usize,
) -> serde_json::Result<String> {
    let kept_text: Vec<&str> = entries
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(raw, _)| raw.get())
        .collect();
    let mut text = String::with_capacity(capacity);
    text.push('{');
    for (n, (key, value)) in fields.iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(key)?);
        text.push(':');
        if key == "manifests" {
            text.push('[');
            text.push_str(&kept_text.join(","));
            text.push(']');
        } else {
            text.push_str(value.get());
        }
    }
    text.push('}');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::media_type;

    fn d(n: char) -> String {
        format!("sha256:{}", n.to_string().repeat(64))
    }

    /// A BuildKit-style index: three platforms, each with an attestation manifest, plus
    /// annotations at the top and on entries.
    fn index() -> Manifest {
        let text = format!(
            r#"{{
  "schemaVersion": 2,
  "mediaType": "{index}",
  "manifests": [
    {{"mediaType":"{m}","digest":"{a}","size":10,"platform":{{"architecture":"amd64","os":"linux"}},"annotations":{{"z":"1","a":"2"}}}},
    {{"mediaType":"{m}","digest":"{b}","size":11,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
    {{"mediaType":"{m}","digest":"{c}","size":12,"platform":{{"architecture":"s390x","os":"linux"}}}},
    {{"mediaType":"{m}","digest":"{e}","size":13,"platform":{{"architecture":"unknown","os":"unknown"}},"annotations":{{"vnd.docker.reference.digest":"{a}","vnd.docker.reference.type":"attestation-manifest"}}}},
    {{"mediaType":"{m}","digest":"{f}","size":14,"platform":{{"architecture":"unknown","os":"unknown"}},"annotations":{{"vnd.docker.reference.digest":"{c}","vnd.docker.reference.type":"attestation-manifest"}}}}
  ],
  "annotations": {{"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}}
}}"#,
            index = media_type::OCI_INDEX,
            m = media_type::OCI_MANIFEST,
            a = d('a'),
            b = d('b'),
            c = d('c'),
            e = d('e'),
            f = d('f'),
        );
        Manifest::from_bytes(Some(media_type::OCI_INDEX), text.into_bytes().into()).unwrap()
    }

    fn platforms(list: &[&str]) -> Vec<Platform> {
        list.iter().map(|p| Platform::parse(p).unwrap()).collect()
    }

    #[test]
    fn keeps_wanted_platforms_and_their_attestations_byte_for_byte() {
        let source = index();
        let subset = platform_subset(&source, &platforms(&["linux/amd64", "linux/arm64"])).unwrap();
        let kept: Vec<String> = subset.kept.iter().map(|k| k.digest.to_string()).collect();
        assert_eq!(kept, [d('a'), d('b'), d('e')]);
        assert!(subset.missing.is_empty());
        assert_eq!(subset.index.media_type, media_type::OCI_INDEX);
        assert_ne!(subset.index.digest, source.digest);
        // The children the rewritten index lists are exactly the kept ones, as written.
        let listed: Vec<String> = subset
            .index
            .children()
            .unwrap()
            .iter()
            .map(|c| c.digest.to_string())
            .collect();
        assert_eq!(listed, kept);
        let text = std::str::from_utf8(&subset.index.bytes).unwrap();
        assert!(
            text.contains(r#""annotations":{"z":"1","a":"2"}"#),
            "entries keep their text: {text}"
        );
        assert!(
            text.starts_with(r#"{"schemaVersion":2,"mediaType":"#),
            "{text}"
        );
        assert!(text.contains("org.opencontainers.image.created"), "{text}");
        assert!(!text.contains(&d('c')) && !text.contains(&d('f')), "{text}");
        // Deterministic: the same input gives the same digest.
        let again = platform_subset(&source, &platforms(&["linux/amd64", "linux/arm64"])).unwrap();
        assert_eq!(again.index.digest, subset.index.digest);
    }

    #[test]
    fn missing_platforms_are_reported_and_none_found_is_an_error() {
        let source = index();
        let subset =
            platform_subset(&source, &platforms(&["linux/s390x", "linux/ppc64le"])).unwrap();
        assert_eq!(subset.kept.len(), 2, "s390x and its attestation");
        assert_eq!(subset.missing, platforms(&["linux/ppc64le"]));
        let err =
            platform_subset(&source, &platforms(&["windows/amd64", "linux/riscv64"])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let message = err.to_string();
        assert!(
            message.contains("windows/amd64, linux/riscv64"),
            "{message}"
        );
        assert!(
            message.contains("linux/amd64, linux/arm64/v8, linux/s390x"),
            "{message}"
        );
    }

    /// A manifest as a registry might send it, without the client's shape checks.
    fn raw(media_type: &str, text: &str) -> Manifest {
        Manifest {
            media_type: media_type.to_string(),
            digest: crate::registry::Digest::of(text.as_bytes()),
            bytes: bytes::Bytes::from(text.to_string()),
        }
    }

    #[test]
    fn image_manifests_and_malformed_indexes_are_refused() {
        let image = raw(
            media_type::OCI_MANIFEST,
            &format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":1}},"layers":[]}}"#,
                d('1')
            ),
        );
        let err = platform_subset(&image, &platforms(&["linux/amd64"])).unwrap_err();
        assert!(err.to_string().contains("not an index"), "{err}");
        for text in [
            "{\"schemaVersion\":2}",
            "not json",
            "{\"manifests\":[{\"size\":1}]}",
        ] {
            let err = platform_subset(
                &raw(media_type::OCI_INDEX, text),
                &platforms(&["linux/amd64"]),
            )
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{text}: {err}");
        }
    }
}
