//! Manifests kept as the registry sent them.
//!
//! A manifest's digest is the hash of its exact bytes, so copying an image without changing
//! its digest means pushing those bytes unchanged: we never re-serialise. We parse only what
//! copying needs: the children of an index and the blobs of an image.

use bytes::Bytes;
use serde::Deserialize;

use super::digest::Digest;
use super::error::{Error, ErrorKind, Result};
use super::platform::Platform;

/// Media types of the manifests we read.
pub mod media_type {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index (multi-platform).
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// Docker schema 2 image manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker schema 2 manifest list (multi-platform).
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker schema 1, signed. Read-only for us.
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    /// Docker schema 1, unsigned. Read-only for us.
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

    /// Every manifest type, for `Accept`: Distribution answers 404 for an OCI manifest when
    /// its type is not accepted.
    pub const ALL: [&str; 6] = [
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST,
        DOCKER_SCHEMA1_SIGNED,
        DOCKER_SCHEMA1,
    ];

    /// Whether `media_type` lists other manifests rather than blobs.
    pub fn is_index(media_type: &str) -> bool {
        media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
    }

    /// The manifest type a `Content-Type` header (or a `mediaType` field) names, compared
    /// case-insensitively with parameters (`; charset=utf-8`) ignored; `None` for anything
    /// else. Registries behind proxies and some products answer `application/json`,
    /// `application/octet-stream` or nothing, which says nothing about the manifest's shape
    /// (docs/behaviour.md#manifests-and-media-types).
    pub fn known(content_type: &str) -> Option<&'static str> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        ALL.iter()
            .find(|known| known.eq_ignore_ascii_case(essence))
            .copied()
    }

    /// Docker's foreign layer type: the blob lives at the descriptor's `urls`, not in the
    /// registry (Windows base layers).
    pub const DOCKER_FOREIGN_LAYER: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

    /// Whether a layer of type `media_type` is non-distributable: Docker's foreign layer or
    /// the OCI non-distributable layer types (image-spec `layer.md`, "Non-distributable
    /// layers"), with any compression suffix.
    pub fn is_non_distributable(media_type: &str) -> bool {
        let essence = media_type.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case(DOCKER_FOREIGN_LAYER)
            || essence
                .to_ascii_lowercase()
                .starts_with("application/vnd.oci.image.layer.nondistributable.v1.tar")
    }

    /// Whether `media_type` is one of Docker's schema 1 formats, which registries no longer accept.
    pub fn is_schema1(media_type: &str) -> bool {
        media_type == DOCKER_SCHEMA1_SIGNED || media_type == DOCKER_SCHEMA1
    }
}

/// The largest manifest we read: registries refuse bigger ones, and it bounds memory.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// A pointer to content: its type, digest and size, and for index entries the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type of the content.
    pub media_type: String,
    /// Digest of the content.
    pub digest: Digest,
    /// Size in bytes. Docker schema 1 does not record layer sizes: 0 there.
    pub size: u64,
    /// The platform, for entries of an index that declare one.
    pub platform: Option<Platform>,
    /// Where else the content can be fetched (OCI descriptor `urls`); a layer that has them
    /// is one registries need not hold.
    pub urls: Vec<String>,
}

impl Descriptor {
    /// A descriptor without platform and `urls`.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            urls: Vec::new(),
        }
    }

    /// Whether this is a foreign or non-distributable layer (a Docker foreign layer type, an
    /// OCI non-distributable type, or any descriptor with `urls`): registries need not hold
    /// it, and a copy leaves it out unless asked to include it
    /// (docs/behaviour.md#manifests-and-media-types).
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty() || media_type::is_non_distributable(&self.media_type)
    }
}

/// A manifest: its media type, its digest, and its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Media type: the content's own `mediaType` when it names a manifest type, else the
    /// registry's `Content-Type` when that does, else what the content's shape says.
    pub media_type: String,
    /// Digest of `bytes`.
    pub digest: Digest,
    /// The manifest exactly as received; pushed unchanged.
    pub bytes: Bytes,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    fs_layers: Option<Vec<RawFsLayer>>,
    #[serde(default)]
    signatures: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: u64,
    platform: Option<RawPlatform>,
    #[serde(default)]
    urls: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFsLayer {
    blob_sum: String,
}

impl Manifest {
    /// Wraps bytes received with `content_type` (which may be missing or generic, as some
    /// registries send `application/json`), computing the digest.
    ///
    /// The type is decided once, here, for every later "index or image" decision: the
    /// content's own `mediaType` when it names a manifest type, else `content_type` when it
    /// does, else the shape (`manifests`: an index; `config` and `layers`: an image; schema 1
    /// by `schemaVersion`).
    ///
    /// # Errors
    /// [`ErrorKind::TooLarge`] above [`MAX_MANIFEST_SIZE`]; [`ErrorKind::Protocol`] when the
    /// bytes are not JSON of a manifest's shape (truncated, an HTML page), or when the shape
    /// contradicts the type (an index without `manifests`, an image without `config`).
    pub fn from_bytes(content_type: Option<&str>, bytes: Bytes) -> Result<Manifest> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(too_large());
        }
        let raw = parse_raw(&bytes)?;
        // A declared type that the shape contradicts is a registry's guess, not the truth.
        let declared = content_type
            .and_then(media_type::known)
            .filter(|t| check_shape(&raw, t).is_ok());
        let media_type = raw
            .media_type
            .as_deref()
            .and_then(media_type::known)
            .or(declared)
            .unwrap_or_else(|| sniff_media_type(&raw));
        check_shape(&raw, media_type)?;
        Ok(Manifest {
            media_type: media_type.to_owned(),
            digest: Digest::of(&bytes),
            bytes,
        })
    }

    /// Whether this manifest lists other manifests (an OCI index or Docker manifest list).
    pub fn is_index(&self) -> bool {
        media_type::is_index(&self.media_type)
    }

    /// A descriptor pointing at this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }

    /// The manifests an index lists, with their platforms; empty for an image manifest.
    ///
    /// # Errors
    ///
    /// When the index's JSON is not a valid index.
    pub fn children(&self) -> Result<Vec<Descriptor>> {
        if !self.is_index() {
            return Ok(Vec::new());
        }
        let raw = parse_raw(&self.bytes)?;
        raw.manifests
            .unwrap_or_default()
            .into_iter()
            .map(|d| convert(d, media_type::OCI_MANIFEST))
            .collect()
    }

    /// The blobs an image manifest references (config first, then layers, without
    /// duplicates); empty for an index.
    ///
    /// # Errors
    ///
    /// When the manifest's JSON is not a valid image manifest.
    pub fn blobs(&self) -> Result<Vec<Descriptor>> {
        if self.is_index() {
            return Ok(Vec::new());
        }
        let raw = parse_raw(&self.bytes)?;
        let mut blobs: Vec<Descriptor> = Vec::new();
        let mut push = |d: Descriptor| {
            if !blobs.iter().any(|b| b.digest == d.digest) {
                blobs.push(d);
            }
        };
        if media_type::is_schema1(&self.media_type) {
            for layer in raw.fs_layers.unwrap_or_default() {
                push(Descriptor::new(
                    "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    Digest::parse(&layer.blob_sum).map_err(malformed)?,
                    0,
                ));
            }
            return Ok(blobs);
        }
        let Some(config) = raw.config else {
            return Err(malformed_text("an image manifest without a config"));
        };
        push(convert(config, "application/octet-stream")?);
        for layer in raw.layers.unwrap_or_default() {
            push(convert(layer, "application/octet-stream")?);
        }
        Ok(blobs)
    }

    /// The entry of this index for `platform`, or `None` when the index has none. An image
    /// manifest has no entries: the caller decides whether it serves the wanted platform.
    ///
    /// # Errors
    ///
    /// When the index's JSON is not a valid index.
    pub fn select_platform(&self, platform: &Platform) -> Result<Option<Descriptor>> {
        Ok(self
            .children()?
            .into_iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p))))
    }

    /// Fails when registries would refuse this manifest, so a copy stops before any blob moves.
    ///
    /// # Errors
    ///
    /// When the manifest is one registries refuse (schema 1), naming why.
    pub fn check_pushable(&self) -> Result<()> {
        if media_type::is_schema1(&self.media_type) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "Docker schema 1 manifests cannot be pushed (registries have deprecated them); convert the image first",
            ));
        }
        Ok(())
    }
}

fn parse_raw(bytes: &[u8]) -> Result<RawManifest> {
    serde_json::from_slice(bytes).map_err(|e| {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_ascii_lowercase();
        let what = if start.trim_start().starts_with('<') {
            "an HTML or XML page, not a manifest".to_owned()
        } else if e.is_eof() {
            format!("a manifest cut short ({e})")
        } else {
            format!("not valid JSON of a manifest's shape ({e})")
        };
        Error::new(ErrorKind::Protocol, format!("the registry sent {what}"))
    })
}

/// The manifest type a body without a known `mediaType` has, by its shape.
fn sniff_media_type(raw: &RawManifest) -> &'static str {
    match raw.schema_version {
        Some(1) if raw.signatures.is_some() => media_type::DOCKER_SCHEMA1_SIGNED,
        Some(1) => media_type::DOCKER_SCHEMA1,
        _ if raw.manifests.is_some() => media_type::OCI_INDEX,
        _ => media_type::OCI_MANIFEST,
    }
}

/// Refuses a body whose shape contradicts its type: an index must list `manifests`, an image
/// (schema 2 or OCI) must have a `config`, and nothing may be both.
fn check_shape(raw: &RawManifest, media_type: &str) -> Result<()> {
    if media_type::is_schema1(media_type) {
        return Ok(());
    }
    let index = media_type::is_index(media_type);
    if index && raw.manifests.is_none() {
        return Err(malformed_text(&format!(
            "a {media_type} without 'manifests'"
        )));
    }
    if !index && raw.config.is_none() {
        return Err(malformed_text(&format!("a {media_type} without 'config'")));
    }
    if index && raw.config.is_some() {
        return Err(malformed_text(&format!("a {media_type} with a 'config'")));
    }
    Ok(())
}

fn convert(raw: RawDescriptor, default_type: &str) -> Result<Descriptor> {
    Ok(Descriptor {
        media_type: raw.media_type.unwrap_or_else(|| default_type.to_owned()),
        digest: Digest::parse(&raw.digest).map_err(malformed)?,
        size: raw.size,
        platform: raw.platform.map(|p| Platform {
            os: p.os,
            architecture: p.architecture,
            variant: p.variant.filter(|v| !v.is_empty()),
        }),
        urls: raw.urls.unwrap_or_default(),
    })
}

fn malformed(e: Error) -> Error {
    malformed_text(&e.to_string())
}

fn malformed_text(why: &str) -> Error {
    Error::new(ErrorKind::Protocol, format!("malformed manifest: {why}"))
}

pub(crate) fn too_large() -> Error {
    super::error::response_too_large("manifest", MAX_MANIFEST_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: char) -> String {
        format!("sha256:{}", n.to_string().repeat(64))
    }

    fn index() -> Bytes {
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[
              {{"mediaType":"{}","digest":"{}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{}","digest":"{}","size":11,"platform":{{"os":"linux","architecture":"arm64"}}}},
              {{"mediaType":"{}","digest":"{}","size":12,"platform":{{"os":"linux","architecture":"arm","variant":"v6"}}}},
              {{"mediaType":"{}","digest":"{}","size":13,"platform":{{"os":"unknown","architecture":"unknown"}}}}
            ]}}"#,
            media_type::OCI_INDEX,
            media_type::OCI_MANIFEST,
            d('1'),
            media_type::OCI_MANIFEST,
            d('2'),
            media_type::OCI_MANIFEST,
            d('3'),
            media_type::OCI_MANIFEST,
            d('4'),
        ))
    }

    #[test]
    fn index_children_and_platforms() {
        let m = Manifest::from_bytes(Some(media_type::OCI_INDEX), index()).unwrap();
        assert!(m.is_index());
        assert_eq!(m.children().unwrap().len(), 4);
        assert!(m.blobs().unwrap().is_empty());
        let pick = |p: &str| {
            m.select_platform(&Platform::parse(p).unwrap())
                .unwrap()
                .map(|d| d.size)
        };
        assert_eq!(pick("linux/amd64"), Some(10));
        assert_eq!(pick("linux/arm64/v8"), Some(11));
        assert_eq!(pick("linux/arm64"), Some(11));
        assert_eq!(pick("linux/arm/v6"), Some(12));
        assert_eq!(pick("linux/arm/v7"), None);
        assert_eq!(pick("linux/s390x"), None);
    }

    #[test]
    fn image_blobs_and_sniffing() {
        let bytes = Bytes::from(format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":5}},
               "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":7}},
                         {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":7}}]}}"#,
            d('a'),
            d('b'),
            d('b')
        ));
        let m = Manifest::from_bytes(Some("application/json"), bytes.clone()).unwrap();
        assert_eq!(m.media_type, media_type::OCI_MANIFEST);
        assert_eq!(m.digest, Digest::of(&bytes));
        let blobs = m.blobs().unwrap();
        assert_eq!(blobs.len(), 2);
        assert_eq!(blobs[0].size, 5);
        assert!(m.children().unwrap().is_empty());
        assert!(m.check_pushable().is_ok());
        assert_eq!(m.bytes, bytes);
    }

    #[test]
    fn only_known_manifest_types_are_trusted() {
        assert_eq!(
            media_type::known("Application/VND.OCI.Image.Index.v1+JSON; charset=utf-8"),
            Some(media_type::OCI_INDEX)
        );
        assert_eq!(
            media_type::known(" application/vnd.docker.distribution.manifest.list.v2+json "),
            Some(media_type::DOCKER_MANIFEST_LIST)
        );
        for generic in [
            "application/json",
            "application/octet-stream",
            "",
            "text/html",
        ] {
            assert_eq!(media_type::known(generic), None, "{generic}");
        }
        // An index without mediaType, sent as application/json or as a wrong manifest type:
        // its shape decides.
        let bare = Bytes::from(String::from_utf8(index().to_vec()).unwrap().replacen(
            &format!(r#""mediaType":"{}","#, media_type::OCI_INDEX),
            "",
            1,
        ));
        assert!(!bare.windows(11).any(|w| w == b"image.index"));
        for declared in [
            None,
            Some("application/json"),
            Some(media_type::OCI_MANIFEST),
        ] {
            let m = Manifest::from_bytes(declared, bare.clone()).unwrap();
            assert_eq!(m.media_type, media_type::OCI_INDEX, "{declared:?}");
            assert!(m.is_index());
        }
        // The content's own mediaType wins over a Content-Type naming another manifest type.
        let m = Manifest::from_bytes(Some(media_type::DOCKER_MANIFEST), index()).unwrap();
        assert_eq!(m.media_type, media_type::OCI_INDEX);
    }

    #[test]
    fn foreign_layers_are_recognised() {
        let bytes = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":5}},
               "layers":[{{"mediaType":"{}","digest":"{}","size":7,"urls":["https://example.invalid/base"]}},
                         {{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd","digest":"{}","size":7}},
                         {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":7,"urls":["https://example.invalid/x"]}},
                         {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":7}}]}}"#,
            media_type::DOCKER_MANIFEST,
            d('a'),
            media_type::DOCKER_FOREIGN_LAYER,
            d('b'),
            d('c'),
            d('e'),
            d('f'),
        ));
        let m = Manifest::from_bytes(None, bytes).unwrap();
        let foreign: Vec<bool> = m
            .blobs()
            .unwrap()
            .iter()
            .map(Descriptor::is_foreign)
            .collect();
        assert_eq!(foreign, [false, true, true, true, false]);
        assert_eq!(m.blobs().unwrap()[1].urls, ["https://example.invalid/base"]);
    }

    #[test]
    fn schema1_is_readable_not_pushable() {
        let bytes = Bytes::from(format!(
            r#"{{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[{{"blobSum":"{}"}},{{"blobSum":"{}"}}],"signatures":[]}}"#,
            d('c'),
            d('c')
        ));
        let m = Manifest::from_bytes(None, bytes).unwrap();
        assert_eq!(m.media_type, media_type::DOCKER_SCHEMA1_SIGNED);
        assert_eq!(m.blobs().unwrap().len(), 1);
        let err = m.check_pushable().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn too_large_and_malformed() {
        let big = Bytes::from(vec![b' '; MAX_MANIFEST_SIZE + 1]);
        assert_eq!(
            Manifest::from_bytes(Some(media_type::OCI_MANIFEST), big)
                .unwrap_err()
                .kind(),
            ErrorKind::TooLarge
        );
        assert_eq!(
            Manifest::from_bytes(None, Bytes::from_static(b"nope"))
                .unwrap_err()
                .kind(),
            ErrorKind::Protocol
        );
        for (declared, body) in [
            (
                Some(media_type::OCI_MANIFEST),
                &b"{\"schemaVersion\":2}"[..],
            ),
            (
                None,
                b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\"}",
            ),
            (
                Some(media_type::OCI_INDEX),
                b"{\"schemaVersion\":2,\"manifests\":[{\"digest\":",
            ),
            (
                Some("text/html"),
                b"<!DOCTYPE html><html><body>Sign in</body></html>",
            ),
        ] {
            let err = Manifest::from_bytes(declared, Bytes::copy_from_slice(body)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        }
        let cut =
            Manifest::from_bytes(None, Bytes::from_static(b"{\"schemaVersion\":2,")).unwrap_err();
        assert!(cut.to_string().contains("cut short"), "{cut}");
        let html = Manifest::from_bytes(None, Bytes::from_static(b"  <html></html>")).unwrap_err();
        assert!(html.to_string().contains("HTML"), "{html}");
    }
}
