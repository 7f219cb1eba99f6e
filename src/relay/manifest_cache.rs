//! A cache of facts about manifests that never go stale, kept between runs: which child of an
//! index a platform gets, and which media type a manifest has. Both follow from the manifest's
//! bytes, and a digest names exactly those bytes, so an answer found once stays true: losing
//! the cache costs requests, never correctness.
//!
//! With it, a run with nothing to do sends no manifest GET for a single platform of a
//! multi-platform source, nor for a source whose HEAD answers a generic `Content-Type`: the
//! HEAD's digest is the key (docs/behaviour.md#up-to-date-checks).
//!
//! On disk: one small JSON file per fact under `<dir>/manifests-v1/`, named by the SHA-256 of
//! its key and holding the key itself, written to a temporary file and renamed into place.
//! Two processes writing at once write the same bytes for the same key, and a reader sees a
//! whole file or none. A file that is unreadable, is not ours or names another key is a
//! warning and a miss; a directory that cannot be created or written is a warning and a cache
//! that lives for the run only. Nothing here fails a sync or makes one skip wrongly.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::config::CacheDir;
use crate::registry::{Descriptor, Digest, Platform, media_type};

/// Subdirectory of the cache directory; a new layout gets a new name.
const LAYOUT: &str = "manifests-v1";

/// Files kept at most; above it, the oldest are removed when the cache is opened.
const MAX_FILES: usize = 20_000;

/// Facts held in memory at most (a daemon runs for months); above it, memory starts over.
const MAX_IN_MEMORY: usize = 50_000;

/// The manifest cache of a run (or of a daemon's lifetime).
pub struct ManifestCache {
    /// `None`: memory only (turned off, or no home directory).
    dir: Option<PathBuf>,
    /// Whether the directory exists or could be created, settled at the first write: a run
    /// that learns nothing creates nothing.
    ready: OnceLock<bool>,
    memory: Mutex<HashMap<String, Fact>>,
    /// Whether a read or write problem was already reported (once per kind is enough).
    warned_read: AtomicBool,
    warned_write: AtomicBool,
}

/// One fact, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Fact {
    /// The media type of the manifest the key's digest names.
    MediaType(String),
    /// The index entry a platform gets.
    PlatformChild(StoredDescriptor),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<String>,
}

/// A file's content: the key it answers, so a file under another name is never believed.
#[derive(Serialize, Deserialize)]
struct Record {
    key: String,
    fact: Fact,
}

impl ManifestCache {
    /// Opens the cache `setting` names (see [`CacheDir`]). Never fails and touches nothing on
    /// disk yet: the directory is created at the first write, and when that fails (or no home
    /// directory is known) a warning says so and facts are kept for this run only.
    pub fn open(setting: &CacheDir) -> ManifestCache {
        let dir = match setting {
            CacheDir::Off => None,
            CacheDir::Path(dir) => Some(dir.clone()),
            CacheDir::Default => {
                let dir = default_dir();
                if dir.is_none() {
                    tracing::warn!(
                        "no manifest cache: neither XDG_CACHE_HOME nor HOME is set; set 'native.cache-dir' to keep one (or '-' to say none is wanted)"
                    );
                }
                dir
            }
        };
        ManifestCache {
            dir: dir.map(|dir| dir.join(LAYOUT)),
            ready: OnceLock::new(),
            memory: Mutex::new(HashMap::new()),
            warned_read: AtomicBool::new(false),
            warned_write: AtomicBool::new(false),
        }
    }

    /// The directory facts are written to, if any (and if it could be created).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref().filter(|_| self.writable())
    }

    /// The media type of the manifest `digest`, when it was learned before.
    pub fn media_type(&self, digest: &Digest) -> Option<String> {
        match self.get(&media_type_key(digest))? {
            Fact::MediaType(t) => media_type::known(&t).map(str::to_owned),
            Fact::PlatformChild(_) => None,
        }
    }

    /// Remembers the media type of the manifest `digest` (a manifest type, as
    /// [`crate::registry::Manifest`] decided it from the content).
    pub fn remember_media_type(&self, digest: &Digest, media_type: &str) {
        self.put(
            media_type_key(digest),
            Fact::MediaType(media_type.to_owned()),
        );
    }

    /// The entry of the index `index` that `platform` gets, when it was learned before.
    pub fn platform_child(&self, index: &Digest, platform: &Platform) -> Option<Descriptor> {
        let Fact::PlatformChild(stored) = self.get(&platform_key(index, platform))? else {
            return None;
        };
        let digest = Digest::parse(&stored.digest).ok()?;
        let mut child = Descriptor::new(stored.media_type, digest, stored.size);
        child.platform = stored
            .platform
            .as_deref()
            .and_then(|p| Platform::parse(p).ok());
        Some(child)
    }

    /// Remembers that `platform` gets `child` from the index `index`.
    pub fn remember_platform_child(&self, index: &Digest, platform: &Platform, child: &Descriptor) {
        let stored = StoredDescriptor {
            media_type: child.media_type.clone(),
            digest: child.digest.to_string(),
            size: child.size,
            platform: child.platform.as_ref().map(Platform::to_string),
        };
        self.put(platform_key(index, platform), Fact::PlatformChild(stored));
    }

    fn get(&self, key: &str) -> Option<Fact> {
        if let Some(fact) = self.memory.lock().ok()?.get(key) {
            return Some(fact.clone());
        }
        let path = self.path(key)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.warn_read(&path, &e.to_string());
                return None;
            }
        };
        match serde_json::from_slice::<Record>(&bytes) {
            Ok(record) if record.key == key => {
                self.remember_in_memory(key.to_owned(), record.fact.clone());
                Some(record.fact)
            }
            Ok(_) => {
                self.warn_read(&path, "it answers another key");
                None
            }
            Err(e) => {
                self.warn_read(&path, &format!("not a cache entry: {e}"));
                None
            }
        }
    }

    fn put(&self, key: String, fact: Fact) {
        if let Some(path) = self.path(&key).filter(|_| self.writable()) {
            let record = Record {
                key: key.clone(),
                fact: fact.clone(),
            };
            if let Err(e) = write_atomically(&path, &record)
                && !self.warned_write.swap(true, Ordering::Relaxed)
            {
                tracing::warn!(
                    file = %path.display(),
                    "cannot write to the manifest cache ({e}); the next run asks the registry again"
                );
            }
        }
        self.remember_in_memory(key, fact);
    }

    /// Creates the directory (once) and tidies it; false when it cannot be had.
    fn writable(&self) -> bool {
        let Some(dir) = &self.dir else {
            return false;
        };
        *self.ready.get_or_init(|| match std::fs::create_dir_all(dir) {
            Ok(()) => {
                prune(dir);
                true
            }
            Err(e) => {
                tracing::warn!(
                    dir = %dir.display(),
                    "manifest cache unusable, facts are kept for this run only ({e}); set 'native.cache-dir' to a writable directory"
                );
                false
            }
        })
    }

    fn remember_in_memory(&self, key: String, fact: Fact) {
        if let Ok(mut memory) = self.memory.lock() {
            if memory.len() >= MAX_IN_MEMORY {
                memory.clear();
            }
            memory.insert(key, fact);
        }
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{}.json", Digest::of(key.as_bytes()).hex())))
    }

    fn warn_read(&self, path: &Path, why: &str) {
        if !self.warned_read.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                file = %path.display(),
                "ignoring a manifest cache entry ({why}); asking the registry instead"
            );
        }
    }
}

/// `$XDG_CACHE_HOME/dregsy` (an absolute XDG_CACHE_HOME only, as the XDG spec says), else
/// `$HOME/.cache/dregsy`.
fn default_dir() -> Option<PathBuf> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    from_env("XDG_CACHE_HOME")
        .map(|dir| dir.join("dregsy"))
        .or_else(|| from_env("HOME").map(|home| home.join(".cache").join("dregsy")))
}

fn media_type_key(digest: &Digest) -> String {
    format!("media-type {digest}")
}

fn platform_key(index: &Digest, platform: &Platform) -> String {
    format!("platform-child {index} {platform}")
}

/// Writes `record` to a temporary file beside `path`, then renames it into place, so readers
/// (other processes too) see the old file or the new one, never half of one.
fn write_atomically(path: &Path, record: &Record) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".entry-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    let bytes = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    file.write_all(&bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Keeps the directory below [`MAX_FILES`] entries, removing the oldest first: losing a fact
/// costs a request later, never correctness. Leftover temporary files of killed processes go
/// too.
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let modified = entry.metadata().ok()?.modified().ok()?;
            Some((modified, entry.path()))
        })
        .collect();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    files.retain(|(modified, path)| {
        let stale_temp = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".tmp"))
            && *modified < hour_ago;
        if stale_temp {
            let _ = std::fs::remove_file(path);
        }
        !stale_temp
    });
    if files.len() <= MAX_FILES {
        return;
    }
    files.sort();
    let excess = files.len() - MAX_FILES * 3 / 4;
    for (_, path) in files.into_iter().take(excess) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child() -> Descriptor {
        let mut d = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"child"), 42);
        d.platform = Some(Platform::parse("linux/arm64/v8").unwrap());
        d
    }

    #[test]
    fn facts_survive_a_new_process_and_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let setting = CacheDir::Path(dir.path().to_path_buf());
        let index = Digest::of(b"index");
        let arm = Platform::parse("linux/arm64").unwrap();
        let amd = Platform::parse("linux/amd64").unwrap();
        {
            let cache = ManifestCache::open(&setting);
            assert_eq!(cache.platform_child(&index, &arm), None);
            cache.remember_platform_child(&index, &arm, &child());
            cache.remember_media_type(&index, media_type::OCI_INDEX);
        }
        let cache = ManifestCache::open(&setting);
        assert_eq!(cache.platform_child(&index, &arm), Some(child()));
        assert_eq!(cache.platform_child(&index, &amd), None);
        assert_eq!(cache.platform_child(&Digest::of(b"other"), &arm), None);
        assert_eq!(
            cache.media_type(&index).as_deref(),
            Some(media_type::OCI_INDEX)
        );
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path().join(LAYOUT))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.ends_with(".json")), "{names:?}");
    }

    #[test]
    fn corrupt_foreign_and_unwritable_entries_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let setting = CacheDir::Path(dir.path().to_path_buf());
        let index = Digest::of(b"index");
        let arm = Platform::parse("linux/arm64").unwrap();
        let writer = ManifestCache::open(&setting);
        writer.remember_platform_child(&index, &arm, &child());
        let path = writer.path(&platform_key(&index, &arm)).unwrap();
        for garbage in [
            &b"{\"key\":\"platform-child"[..],
            b"",
            b"\xff\xfe",
            br#"{"key":"media-type sha256:00","fact":{"mediaType":"x"}}"#,
        ] {
            std::fs::write(&path, garbage).unwrap();
            assert_eq!(
                ManifestCache::open(&setting).platform_child(&index, &arm),
                None
            );
        }
        // A file where the directory should be: memory only, still answering this run.
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let cache = ManifestCache::open(&CacheDir::Path(file));
        assert!(cache.dir().is_none());
        cache.remember_platform_child(&index, &arm, &child());
        assert_eq!(cache.platform_child(&index, &arm), Some(child()));
        // Turned off: nothing on disk either.
        assert!(ManifestCache::open(&CacheDir::Off).dir().is_none());
    }

    #[test]
    fn two_writers_of_one_fact_leave_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let setting = CacheDir::Path(dir.path().to_path_buf());
        let index = Digest::of(b"index");
        let arm = Platform::parse("linux/arm64").unwrap();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let setting = &setting;
                let (index, arm) = (&index, &arm);
                scope.spawn(move || {
                    let cache = ManifestCache::open(setting);
                    for _ in 0..50 {
                        cache.remember_platform_child(index, arm, &child());
                        let fresh = ManifestCache::open(setting);
                        assert_eq!(fresh.platform_child(index, arm), Some(child()));
                    }
                });
            }
        });
    }
}
