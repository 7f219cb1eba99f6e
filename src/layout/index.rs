//! A layout's `index.json`: read, changed under a lock, replaced atomically.
//!
//! The JSON is kept as a value, so fields and entries dregsy does not know (other annotations,
//! entries of other tools) survive a rewrite unchanged.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{Error, REF_NAME, Result};
use crate::registry::{Descriptor, Digest, media_type};

/// `index.json` files larger than this are refused: an entry is ~250 bytes, so this is a few
/// hundred thousand tags, and a bigger file is a wrong file.
const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;

/// The parsed `index.json`.
pub(super) struct Index {
    value: Value,
}

impl Index {
    /// An index listing nothing.
    pub(super) fn empty() -> Self {
        Index {
            value: json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_INDEX,
                "manifests": [],
            }),
        }
    }

    /// Reads and checks `path`: a JSON object whose `manifests` is a list of descriptors.
    pub(super) fn read(path: &Path) -> Result<Index> {
        let size = std::fs::metadata(path)
            .map_err(|e| Error::io(path, "reading", &e))?
            .len();
        if size > MAX_INDEX_BYTES {
            return Err(Error::new(
                path,
                format!("is {size} bytes, more than the {MAX_INDEX_BYTES} accepted"),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "reading", &e))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::new(path, format!("is not valid JSON ({e})")))?;
        let manifests = value
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::new(path, "is not an image index (no \"manifests\" list)"))?;
        for (number, entry) in manifests.iter().enumerate() {
            let digest = entry.get("digest").and_then(Value::as_str);
            if digest.is_none() || entry.get("size").and_then(Value::as_u64).is_none() {
                return Err(Error::new(
                    path,
                    format!(
                        "manifests entry #{} is not a descriptor (it needs \"digest\" and \"size\")",
                        number + 1
                    ),
                ));
            }
        }
        Ok(Index { value })
    }

    fn entries(&self) -> impl Iterator<Item = &Value> {
        self.value
            .get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    }

    /// Every `org.opencontainers.image.ref.name`, in order.
    pub(super) fn ref_names(&self) -> Vec<String> {
        self.entries()
            .filter_map(ref_name)
            .map(str::to_owned)
            .collect()
    }

    /// The digests of entries without a reference name that no named entry lists as well:
    /// images only a digest reaches, in order, without duplicates.
    pub(super) fn unnamed_digests(&self) -> Vec<String> {
        let named: std::collections::HashSet<&str> = self
            .entries()
            .filter(|e| ref_name(e).is_some())
            .filter_map(|e| e.get("digest").and_then(Value::as_str))
            .collect();
        let mut unnamed: Vec<String> = Vec::new();
        for entry in self.entries().filter(|e| ref_name(e).is_none()) {
            if let Some(digest) = entry.get("digest").and_then(Value::as_str)
                && !named.contains(digest)
                && !unnamed.iter().any(|d| d == digest)
            {
                unnamed.push(digest.to_string());
            }
        }
        unnamed
    }

    /// The first entry named `name`, as a descriptor (its media type may be empty).
    pub(super) fn find(&self, name: &str, path: &Path) -> Result<Option<Descriptor>> {
        let Some(entry) = self.entries().find(|e| ref_name(e) == Some(name)) else {
            return Ok(None);
        };
        let text = entry.get("digest").and_then(Value::as_str).unwrap_or("");
        let digest = Digest::parse(text)
            .map_err(|e| Error::new(path, format!("the entry of '{name}': {e}")))?;
        Ok(Some(Descriptor {
            media_type: entry
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            digest,
            size: entry.get("size").and_then(Value::as_u64).unwrap_or(0),
            platform: None,
            urls: Vec::new(),
        }))
    }

    /// Points `name` at `descriptor`, dropping the other entries of that name. `false` when
    /// the index already says exactly that (nothing to write).
    pub(super) fn set(&mut self, name: &str, descriptor: &Descriptor) -> bool {
        let entry = json!({
            "mediaType": descriptor.media_type,
            "digest": descriptor.digest.as_str(),
            "size": descriptor.size,
            "annotations": { REF_NAME: name },
        });
        let Some(manifests) = self.manifests_mut() else {
            return false;
        };
        let named: Vec<&Value> = manifests
            .iter()
            .filter(|e| ref_name(e) == Some(name))
            .collect();
        let same = |e: &Value| {
            e.get("digest") == entry.get("digest")
                && e.get("mediaType") == entry.get("mediaType")
                && e.get("size") == entry.get("size")
        };
        if let [only] = named.as_slice()
            && same(only)
        {
            return false;
        }
        manifests.retain(|e| ref_name(e) != Some(name));
        manifests.push(entry);
        true
    }

    /// Lists `descriptor` without a reference name (image-layout spec: the annotation is
    /// optional), as a root of the layout: tools that collect garbage keep what `index.json`
    /// reaches, and skopeo writes `oci:<dir>` without a reference name the same way. `false`
    /// when an unnamed entry for that digest is there already (nothing to write); a named one
    /// does not count, as the tag may move on.
    pub(super) fn list(&mut self, descriptor: &Descriptor) -> bool {
        let Some(manifests) = self.manifests_mut() else {
            return false;
        };
        let digest = descriptor.digest.as_str();
        if manifests.iter().any(|e| {
            ref_name(e).is_none() && e.get("digest").and_then(Value::as_str) == Some(digest)
        }) {
            return false;
        }
        manifests.push(json!({
            "mediaType": descriptor.media_type,
            "digest": digest,
            "size": descriptor.size,
        }));
        true
    }

    /// The `manifests` list, to change (checked to be there when read).
    fn manifests_mut(&mut self) -> Option<&mut Vec<Value>> {
        self.value
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
    }

    pub(super) fn to_bytes(&self, path: &Path) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.value)
            .map_err(|e| Error::new(path, format!("cannot be encoded: {e}")))
    }
}

fn ref_name(entry: &Value) -> Option<&str> {
    entry
        .get("annotations")
        .and_then(Value::as_object)
        .and_then(|a: &Map<String, Value>| a.get(REF_NAME))
        .and_then(Value::as_str)
}

/// An exclusive lock on a layout, held while it lives: an advisory `flock` on the layout's
/// `oci-layout` file (no extra file in the layout). Every dregsy process changing `index.json`
/// takes it first, so none loses another's entries. Other tools do not take it; and on network
/// file systems without `flock` support it may not exclude other machines
/// (docs/configuration.md#oci-image-layouts).
pub(super) struct Lock {
    _file: File,
}

/// Waits for the layout lock.
pub(super) fn lock(marker: &Path) -> Result<Lock> {
    let file = File::open(marker).map_err(|e| Error::io(marker, "opening to lock", &e))?;
    file.lock()
        .map_err(|e| Error::io(marker, "locking the layout", &e))?;
    Ok(Lock { _file: file })
}

/// A temporary file name in `dir` for `name`: `.<name>.<pid>-<random>.tmp`, unique across
/// processes and calls; a killed writer's `index.json` ones are removed by [`remove_abandoned`].
fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(
        ".{name}.{}-{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ))
}

/// Creates `temp` (which must not exist) holding `bytes`, synced to disk.
fn write_synced(temp: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(temp)
        .map_err(|e| Error::io(temp, "creating", &e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(temp, "writing", &e))
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it, written and synced,
/// renamed over it, and the directory synced. Readers see the old or the new file, never a
/// part; a failure (full disk, say) leaves the old file as it was.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = temp_path(dir, name);
    let written = write_synced(&temp, bytes)
        .and_then(|()| std::fs::rename(&temp, path).map_err(|e| Error::io(path, "replacing", &e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    sync_dir(dir);
    Ok(())
}

/// Creates `path` with `bytes` unless it exists, atomically: the content is written to a
/// temporary file first and linked into place, which fails when another process got there
/// first (its file is then kept). A rename would replace that file, and with it the inode a
/// lock holder locked.
pub(super) fn create_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = temp_path(dir, "new");
    let written = write_synced(&temp, bytes).and_then(|()| match std::fs::hard_link(&temp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(path, "creating", &e)),
    });
    let _ = std::fs::remove_file(&temp);
    written?;
    sync_dir(dir);
    Ok(())
}

/// Removes the temporary `index.json` files a killed writer left in the layout `dir`; call with
/// the lock held.
pub(super) fn remove_abandoned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let abandoned = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(".index.json.") && n.ends_with(".tmp"));
        if abandoned {
            tracing::debug!(path = %entry.path().display(), "removing an abandoned index file");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Syncs a directory so a rename in it survives a crash; best effort (some file systems refuse).
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
