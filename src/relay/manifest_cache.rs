//! A cache of facts about manifests, kept between runs. Most follow from a manifest's bytes,
//! and a digest names exactly those bytes, so an answer found once stays true: which child of
//! an index a platform gets, which media type a manifest has, which children an index lists,
//! what a platform list rewrites an index to, which referrers a fallback tag index lists.
//! Two kinds are not content-addressed and say so where they are read: what dregsy wrote to a
//! target (a referrer set, a legacy signature tag), which is believed only while the image
//! itself is found up to date there; and whether a registry has the referrers API, believed for
//! [`API_FRESH`]. Losing the cache costs requests, never correctness.
//!
//! With it, a run with nothing to do sends no manifest GET for a single platform of a
//! multi-platform source, for a platform list, for an index whose children's referrers travel,
//! nor for a source whose HEAD answers a generic `Content-Type`: the HEAD's digest is the key
//! (docs/behaviour.md#up-to-date-checks).
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
use crate::registry::referrers::Referrer;
use crate::registry::{Descriptor, Digest, Platform, Repository, media_type};

/// Subdirectory of the cache directory; a new layout gets a new name.
const LAYOUT: &str = "manifests-v1";

/// Files kept at most; above it, the oldest are removed when the cache is opened.
const MAX_FILES: usize = 20_000;

/// Facts held in memory at most (a daemon runs for months); above it, memory starts over.
const MAX_IN_MEMORY: usize = 50_000;

/// How long a registry's answer to "do you have the referrers API" is believed. A registry
/// that gains the API meanwhile has its referrers read from the fallback tag (where clients
/// stop writing then) until it expires; one that loses it answers 404 and is asked again.
pub const API_FRESH: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

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
    /// The digests of the manifests an index lists, in order.
    Children(Vec<String>),
    /// What a platform list makes of an index: the rewritten index's digest, and the platforms
    /// the index lacks.
    Subset {
        digest: String,
        missing: Vec<String>,
    },
    /// The referrers a fallback tag index lists.
    Referrers(Vec<Referrer>),
    /// Something dregsy made sure a target holds (see [`ManifestCache::held`]).
    Held,
    /// Whether a registry has the referrers API, and when that was learnt (Unix seconds).
    ReferrersApi { has: bool, at: u64 },
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
            _ => None,
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

    /// The children of the index `index`, when they were learned before.
    pub fn children(&self, index: &Digest) -> Option<Vec<Digest>> {
        let Fact::Children(children) = self.get(&format!("children {index}"))? else {
            return None;
        };
        children.iter().map(|d| Digest::parse(d).ok()).collect()
    }

    /// Remembers the children of the index `index`.
    pub fn remember_children(&self, index: &Digest, children: &[Digest]) {
        let children = children.iter().map(ToString::to_string).collect();
        self.put(format!("children {index}"), Fact::Children(children));
    }

    /// What the platform list `platforms` makes of the index `index`: the rewritten index's
    /// digest and the platforms it lacks, when it was computed before.
    pub fn subset(&self, index: &Digest, platforms: &[Platform]) -> Option<(Digest, Vec<String>)> {
        let Fact::Subset { digest, missing } = self.get(&subset_key(index, platforms))? else {
            return None;
        };
        Some((Digest::parse(&digest).ok()?, missing))
    }

    /// Remembers that `platforms` rewrite the index `index` to `rewritten`, lacking `missing`.
    pub fn remember_subset(
        &self,
        index: &Digest,
        platforms: &[Platform],
        rewritten: &Digest,
        missing: &[Platform],
    ) {
        let fact = Fact::Subset {
            digest: rewritten.to_string(),
            missing: missing.iter().map(ToString::to_string).collect(),
        };
        self.put(subset_key(index, platforms), fact);
    }

    /// The referrers the fallback tag index `index` lists, when it was read before.
    pub fn fallback_referrers(&self, index: &Digest) -> Option<Vec<Referrer>> {
        match self.get(&format!("fallback-referrers {index}"))? {
            Fact::Referrers(list) => Some(list),
            _ => None,
        }
    }

    /// Remembers the referrers the fallback tag index `index` lists.
    pub fn remember_fallback_referrers(&self, index: &Digest, list: &[Referrer]) {
        self.put(
            format!("fallback-referrers {index}"),
            Fact::Referrers(list.to_vec()),
        );
    }

    /// Whether dregsy made sure before that `what` (a referrer set or a legacy tag, described
    /// by the caller) is complete in `repository` on the target registry `host`. Not
    /// content-addressed: someone may have deleted it since, so callers believe it only while
    /// the image it belongs to is found up to date there.
    pub fn held(&self, host: &str, repository: &Repository, what: &str) -> bool {
        self.get(&held_key(host, repository, what))
            .is_some_and(|f| f == Fact::Held)
    }

    /// Remembers that `what` is complete in `repository` on `host` (see [`ManifestCache::held`]).
    pub fn remember_held(&self, host: &str, repository: &Repository, what: &str) {
        self.put(held_key(host, repository, what), Fact::Held);
    }

    /// Whether the registry `host` has the referrers API, when that was learnt less than
    /// [`API_FRESH`] ago.
    pub fn referrers_api(&self, host: &str) -> Option<bool> {
        let Fact::ReferrersApi { has, at } = self.get(&format!("referrers-api {host}"))? else {
            return None;
        };
        (unix_now().saturating_sub(at) < API_FRESH.as_secs()).then_some(has)
    }

    /// Remembers whether the registry `host` has the referrers API.
    pub fn remember_referrers_api(&self, host: &str, has: bool) {
        if self.referrers_api(host) == Some(has) {
            return;
        }
        let at = unix_now();
        self.put(
            format!("referrers-api {host}"),
            Fact::ReferrersApi { has, at },
        );
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

fn subset_key(index: &Digest, platforms: &[Platform]) -> String {
    let platforms: Vec<String> = platforms.iter().map(ToString::to_string).collect();
    format!("subset {index} {}", platforms.join(","))
}

fn held_key(host: &str, repository: &Repository, what: &str) -> String {
    format!("held {host}/{repository} {what}")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    fn index_facts_and_target_records_survive_a_new_process() {
        let dir = tempfile::tempdir().unwrap();
        let setting = CacheDir::Path(dir.path().to_path_buf());
        let index = Digest::of(b"index");
        let children = vec![Digest::of(b"a"), Digest::of(b"b")];
        let list = vec![Platform::parse("linux/arm64").unwrap()];
        let other_list = vec![Platform::parse("linux/amd64").unwrap()];
        let missing = vec![Platform::parse("linux/s390x").unwrap()];
        let referrer = Referrer {
            media_type: media_type::OCI_MANIFEST.to_owned(),
            digest: Digest::of(b"signature"),
            size: 7,
            artifact_type: Some("application/x-test".to_owned()),
            annotations: Default::default(),
        };
        let repo = Repository::parse("team/app").unwrap();
        {
            let cache = ManifestCache::open(&setting);
            cache.remember_children(&index, &children);
            cache.remember_subset(&index, &list, &Digest::of(b"rewritten"), &missing);
            cache.remember_fallback_referrers(&index, std::slice::from_ref(&referrer));
            cache.remember_held("mirror:5000", &repo, "referrers x y");
            cache.remember_referrers_api("registry:5000", false);
        }
        let cache = ManifestCache::open(&setting);
        assert_eq!(cache.children(&index), Some(children));
        assert_eq!(
            cache.subset(&index, &list),
            Some((Digest::of(b"rewritten"), vec!["linux/s390x".to_owned()]))
        );
        assert_eq!(cache.subset(&index, &other_list), None);
        assert_eq!(cache.fallback_referrers(&index), Some(vec![referrer]));
        assert_eq!(cache.fallback_referrers(&Digest::of(b"other")), None);
        assert!(cache.held("mirror:5000", &repo, "referrers x y"));
        assert!(!cache.held("mirror:5000", &repo, "referrers x z"));
        assert!(!cache.held("other:5000", &repo, "referrers x y"));
        assert_eq!(cache.referrers_api("registry:5000"), Some(false));
        assert_eq!(cache.referrers_api("other:5000"), None);
        // One kind of fact is never taken for another.
        assert_eq!(cache.children(&Digest::of(b"rewritten")), None);
    }

    #[test]
    fn an_old_answer_about_the_referrers_api_is_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ManifestCache::open(&CacheDir::Path(dir.path().to_path_buf()));
        let old = unix_now() - API_FRESH.as_secs() - 1;
        cache.put(
            "referrers-api registry:5000".to_owned(),
            Fact::ReferrersApi {
                has: false,
                at: old,
            },
        );
        assert_eq!(cache.referrers_api("registry:5000"), None);
        cache.remember_referrers_api("registry:5000", true);
        assert_eq!(cache.referrers_api("registry:5000"), Some(true));
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
