//! A layout's blobs: `blobs/sha256/<hex>`, written through verified temporary files.
//!
//! A blob being written lives in `blobs/.sha256-<hex>.<pid>-<random>.tmp`, with an exclusive
//! `flock` on it while its writer lives. The next writer of the layout removes the temporary
//! files nobody holds that lock on: what a killed run left behind.

use std::fs::File;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::index::sync_dir;
use super::{Error, Result};
use crate::registry::{ByteStream, Digest, VerifyingStream};

/// How much of a blob is read at once.
const CHUNK: usize = 256 * 1024;

/// A blob's content as it is read, verified: the registry client's stream type, so a layout's
/// blob streams into a registry upload and back unchanged.
pub type BlobStream = ByteStream;

/// Whether `path` holds a blob of `size` bytes (`size` 0: any size).
pub(super) async fn present(path: &Path, size: u64) -> Result<bool> {
    match tokio::fs::metadata(path).await {
        Ok(m) => Ok(m.is_file() && (size == 0 || m.len() == size)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, "examining", &e)),
    }
}

/// Reads a small blob (a manifest) whole, refusing one larger than `max` bytes.
pub(super) async fn read_small(path: &Path, max: usize) -> Result<Vec<u8>> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io(path, "reading", &e))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| Error::io(path, "reading", &e))?;
    if bytes.len() > max {
        return Err(Error::new(
            path,
            format!("is larger than the {max} bytes a manifest may have"),
        ));
    }
    Ok(bytes)
}

/// Opens a blob as a verified stream.
pub(super) async fn open(path: &Path, digest: &Digest, size: u64) -> Result<BlobStream> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io(path, "reading blob", &e))?;
    let shown = path.display().to_string();
    let failed = shown.clone();
    let chunks = futures_util::stream::try_unfold(file, move |mut file| {
        let failed = failed.clone();
        async move {
            let mut buffer = vec![0; CHUNK];
            let read = file.read(&mut buffer).await.map_err(|e| {
                crate::registry::Error::new(
                    crate::registry::ErrorKind::Unsupported,
                    format!("reading {failed}: {e}"),
                )
            })?;
            if read == 0 {
                return Ok(None);
            }
            buffer.truncate(read);
            Ok(Some((Bytes::from(buffer), file)))
        }
    });
    let verified = VerifyingStream::new(
        Box::pin(chunks),
        digest.clone(),
        size,
        format!("OCI image layout blob {shown}"),
    );
    Ok(Box::pin(verified))
}

/// Writes a blob through a temporary file; see [`super::Layout::push_blob`].
pub(super) async fn write(
    layout: &Path,
    path: &Path,
    digest: &Digest,
    size: u64,
    content: ByteStream,
) -> Result<()> {
    let blobs = layout.join("blobs");
    let dir = path.parent().unwrap_or(&blobs).to_path_buf();
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| Error::io(&dir, "creating", &e))?;
    let temp = blobs.join(format!(
        ".sha256-{}.{}-{:016x}.tmp",
        digest.hex(),
        std::process::id(),
        fastrand::u64(..)
    ));
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(|e| Error::io(&temp, "creating", &e))?;
    // Removes the file on every way out but the rename, also when the copy is aborted (the
    // future dropped).
    let mut guard = TemporaryFile(Some(temp.clone()));
    // Marks the file as in use, so another process's clean-up leaves it alone.
    if let Err(e) = file.try_lock() {
        tracing::debug!(path = %temp.display(), "could not lock a new temporary blob: {e}");
    }
    let file = fill(
        tokio::fs::File::from_std(file),
        &temp,
        digest,
        size,
        content,
    )
    .await?;
    tokio::fs::rename(&temp, path)
        .await
        .map_err(|e| Error::io(path, "renaming the verified blob into place", &e))?;
    guard.0 = None;
    drop(file);
    let dir_to_sync = dir.clone();
    let _ = tokio::task::spawn_blocking(move || sync_dir(&dir_to_sync)).await;
    Ok(())
}

/// A temporary file removed when dropped, unless it was renamed into place.
struct TemporaryFile(Option<PathBuf>);

impl Drop for TemporaryFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Copies the verified stream into the file and syncs it; returns the (still locked) file.
async fn fill(
    mut file: tokio::fs::File,
    temp: &Path,
    digest: &Digest,
    size: u64,
    content: ByteStream,
) -> Result<tokio::fs::File> {
    let mut verified = VerifyingStream::new(content, digest.clone(), size, digest.to_string());
    while let Some(chunk) = verified.next().await {
        let chunk = chunk.map_err(|e| {
            let reason = format!("blob {digest}: {e}");
            match e.kind() {
                crate::registry::ErrorKind::DigestMismatch => Error::mismatch(temp, reason),
                _ => Error::new(temp, reason),
            }
        })?;
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::io(temp, "writing", &e))?;
    }
    file.flush()
        .await
        .map_err(|e| Error::io(temp, "writing", &e))?;
    file.sync_all()
        .await
        .map_err(|e| Error::io(temp, "writing", &e))?;
    Ok(file)
}

/// Hard-links `from` to `to` (see [`super::Layout::link_blob`]).
pub(super) async fn link(from: &Path, to: &Path) -> Result<bool> {
    if present(to, 0).await? {
        return Ok(true);
    }
    if let Some(dir) = to.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Error::io(dir, "creating", &e))?;
    }
    match tokio::fs::hard_link(from, to).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(true),
        Err(e) => {
            tracing::debug!(from = %from.display(), to = %to.display(), "not linked: {e}");
            Ok(false)
        }
    }
}

/// Removes the temporary blob files of `blobs` whose writers are gone: the process named in
/// the file name no longer runs, and nobody holds the file's lock. (The lock alone is not
/// enough: a writer creates its file an instant before it locks it.)
pub(super) fn remove_abandoned(blobs: &Path) {
    let Ok(entries) = std::fs::read_dir(blobs) else {
        return;
    };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        let temporary = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(".sha256-") && n.ends_with(".tmp"));
        if !temporary || writer_runs(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() {
            tracing::debug!(path = %path.display(), "removing an abandoned temporary blob");
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Whether the process whose id a temporary file's name carries (`….<pid>-<random>.tmp`) still
/// runs. Unreadable names count as running: such a file is left alone.
fn writer_runs(name: &str) -> bool {
    let pid = name
        .strip_suffix(".tmp")
        .and_then(|n| n.rsplit_once('.'))
        .and_then(|(_, tail)| tail.split_once('-'))
        .and_then(|(pid, _)| pid.parse::<u32>().ok());
    match pid {
        Some(pid) => pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists(),
        None => true,
    }
}
