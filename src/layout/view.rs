//! A manifest of a layout named by a reference name, for tools that address a layout's images
//! only by reference name (skopeo's `oci:<dir>:<reference name>`).
//!
//! The view is a temporary layout of its own: an `oci-layout`, an `index.json` with one entry,
//! and `blobs` a symbolic link to the layout's `blobs` directory. Nothing is written into the
//! layout itself, so a layout read as a source stays as it is (it may be read-only), and the
//! view reaches every manifest the layout holds, listed in its `index.json` or not (an index's
//! child).

use std::path::Path;

use super::{Error, Layout, OCI_LAYOUT_FILE, REF_NAME, Result, blocking};
use crate::registry::Digest;

/// The reference name the one entry of a view has.
const VIEW_REF_NAME: &str = "pinned";

/// A temporary layout whose reference name (`pinned`) is one manifest of another
/// layout; removed when dropped.
#[derive(Debug)]
pub struct DigestView {
    dir: tempfile::TempDir,
}

impl DigestView {
    /// The view's image in skopeo's form, `oci:<view directory>:<reference name>`.
    pub fn skopeo_name(&self) -> String {
        format!("oci:{}:{VIEW_REF_NAME}", self.dir.path().display())
    }
}

impl Layout {
    /// A view naming the manifest `digest` of this layout (its content verified first), for
    /// a tool that takes a reference name only.
    ///
    /// # Errors
    /// The layout does not hold the manifest, it does not match its name, or the view cannot
    /// be written in the temporary directory.
    pub async fn digest_view(&self, digest: &Digest) -> Result<DigestView> {
        let manifest = self.read_manifest(digest, None).await?;
        let blobs = self.dir.join("blobs");
        let descriptor = manifest.descriptor();
        blocking(move || {
            let blobs = std::fs::canonicalize(&blobs)
                .map_err(|e| Error::io(&blobs, "resolving the blob directory", &e))?;
            let dir = tempfile::Builder::new()
                .prefix("dregsy-layout-view-")
                .tempdir()
                .map_err(|e| Error::io(&std::env::temp_dir(), "creating a view", &e))?;
            let index = serde_json::json!({
                "schemaVersion": 2,
                "manifests": [{
                    "mediaType": descriptor.media_type,
                    "digest": descriptor.digest.as_str(),
                    "size": descriptor.size,
                    "annotations": { REF_NAME: VIEW_REF_NAME },
                }],
            });
            let write = |name: &str, bytes: &[u8]| {
                let path = dir.path().join(name);
                std::fs::write(&path, bytes).map_err(|e| Error::io(&path, "writing", &e))
            };
            write(OCI_LAYOUT_FILE, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            write("index.json", index.to_string().as_bytes())?;
            link(&blobs, &dir.path().join("blobs"))?;
            Ok(DigestView { dir })
        })
        .await
    }
}

fn link(target: &Path, path: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, path).map_err(|e| Error::io(path, "linking the blobs", &e))
}
