//! The config watch (`watch: true`, docs/behaviour.md#signals-and-restarts): tells the scheduler
//! when the config file's content changed, so it restarts as on SIGHUP.
//!
//! It watches directories, not the file: the directory the config path is in, and the one its
//! symlinks resolve to when that is another. That sees every way a file gets changed: an edit
//! in place (write events on the file), an editor's or `kubectl cp`'s rename over it, and the
//! Kubernetes ConfigMap swap, where the file is a symlink through `..data` to a timestamped
//! directory and an update re-points `..data` and deletes the old directory.
//!
//! Events only arm a 5 s debounce timer (a swap or a save is several events). When it fires,
//! the file is read and compared with the text the running config was loaded from: a chmod, a
//! touch or a swap to identical content does not restart. A file that is gone is logged and
//! the current config stays in force until the file returns.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Quiet time after the last event before the file is compared (the original's 5 s).
pub const DEBOUNCE: Duration = Duration::from_secs(5);

/// How often a directory that could not be watched (it is gone) is tried again.
const REWATCH_EVERY: Duration = Duration::from_secs(5);

/// Raw events waiting to be classified; beyond this they are dropped and counted as one.
const EVENT_BUFFER: usize = 1024;

/// A running watch of one config file; stops when dropped.
pub struct ConfigWatch {
    changed: mpsc::Receiver<()>,
    task: JoinHandle<()>,
}

impl ConfigWatch {
    /// Starts watching `path`, whose running config was loaded from `loaded` (its exact text).
    /// Fails when the watch cannot be set up at all (the original exits 1 then).
    ///
    /// # Errors
    ///
    /// When the file's directory cannot be watched; the message names the file.
    pub fn start(path: &Path, loaded: String) -> Result<ConfigWatch, String> {
        let path = std::path::absolute(path)
            .map_err(|e| format!("cannot watch config file '{}': {e}", path.display()))?;
        let (raw_tx, raw_rx) = mpsc::channel(EVENT_BUFFER);
        let overflow = Arc::new(AtomicBool::new(false));
        let overflowed = overflow.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if raw_tx.try_send(event).is_err() {
                overflowed.store(true, Ordering::SeqCst);
            }
        })
        .map_err(|e| format!("cannot watch config file '{}': {e}", path.display()))?;
        let mut state = WatchState {
            path,
            loaded: loaded.into_bytes(),
            watcher,
            watched: Vec::new(),
            missing: false,
        };
        state.rewatch();
        if state.watched.is_empty() {
            return Err(format!(
                "cannot watch config file '{}': its directory cannot be watched",
                state.path.display()
            ));
        }
        let (changed_tx, changed) = mpsc::channel(1);
        let task = tokio::spawn(state.run(raw_rx, overflow, changed_tx));
        Ok(ConfigWatch { changed, task })
    }

    /// Waits until the file's content differs from the loaded text. Cancel-safe.
    pub async fn changed(&mut self) {
        if self.changed.recv().await.is_none() {
            // The watch ended (it reported its change already): nothing more will come.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A watched directory and the inode it had, to notice a directory that was replaced.
struct WatchedDir {
    dir: PathBuf,
    inode: (u64, u64),
}

struct WatchState {
    /// The config path as given, made absolute (symlinks not resolved).
    path: PathBuf,
    loaded: Vec<u8>,
    watcher: RecommendedWatcher,
    watched: Vec<WatchedDir>,
    /// The file was found missing at the last check (so its return is worth a log line).
    missing: bool,
}

impl WatchState {
    async fn run(
        mut self,
        mut raw: mpsc::Receiver<notify::Result<notify::Event>>,
        overflow: Arc<AtomicBool>,
        changed: mpsc::Sender<()>,
    ) {
        let mut deadline: Option<Instant> = None;
        let mut rewatch = tokio::time::interval(REWATCH_EVERY);
        rewatch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = raw.recv() => match event {
                    None => return,
                    Some(Ok(event)) => {
                        let lost = overflow.swap(false, Ordering::SeqCst);
                        if lost || self.is_relevant(&event) {
                            tracing::debug!(event = ?event.kind, paths = ?event.paths, "config watch event");
                            deadline = Some(Instant::now() + DEBOUNCE);
                        }
                    }
                    Some(Err(e)) => tracing::warn!("error watching config file: {e}"),
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    deadline = None;
                    self.rewatch();
                    if self.check() {
                        tracing::info!("config file changed, restarting ...");
                        let _ = changed.send(()).await;
                        return;
                    }
                }
                _ = rewatch.tick(), if self.wants_rewatch() => {
                    // A directory came back (or was replaced): what is in it now may be new.
                    if self.rewatch() {
                        deadline = Some(Instant::now() + DEBOUNCE);
                    }
                }
            }
        }
    }

    /// The directories to watch: the config path's own, and the one it resolves to.
    fn wanted_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(parent) = self.path.parent() {
            dirs.push(parent.to_path_buf());
        }
        if let Some(parent) = std::fs::canonicalize(&self.path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            dirs.push(parent);
        }
        dirs
    }

    /// Whether a wanted directory is missing or unwatched, or a watched one was replaced.
    fn wants_rewatch(&self) -> bool {
        let watched_inode = |ino| self.watched.iter().any(|w| w.inode == ino);
        self.wanted_dirs()
            .iter()
            .any(|dir| inode(dir).is_none_or(|ino| !watched_inode(ino)))
            || self.watched.iter().any(|w| inode(&w.dir) != Some(w.inode))
    }

    /// Brings the watches in line with the wanted directories; true when one was added.
    fn rewatch(&mut self) -> bool {
        let wanted = self.wanted_dirs();
        let mut kept = Vec::new();
        for watched in std::mem::take(&mut self.watched) {
            let same = inode(&watched.dir) == Some(watched.inode);
            if same && wanted.contains(&watched.dir) {
                kept.push(watched);
            } else {
                // Gone or replaced: inotify may already have dropped it, so errors are expected.
                let _ = self.watcher.unwatch(&watched.dir);
            }
        }
        self.watched = kept;
        let mut added = false;
        for dir in wanted {
            let Some(ino) = inode(&dir) else { continue };
            // The same directory under two names (a symlinked parent) is watched once.
            if self.watched.iter().any(|w| w.inode == ino) {
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(dir = %dir.display(), "watching directory");
                    self.watched.push(WatchedDir { dir, inode: ino });
                    added = true;
                }
                Err(e) => tracing::warn!(
                    "error watching config file: cannot watch directory '{}': {e}",
                    dir.display()
                ),
            }
        }
        added
    }

    /// Whether an event may concern the config file: the file itself (by its given or its
    /// resolved name), a watched directory, or Kubernetes' `..data` machinery next to it.
    fn is_relevant(&self, event: &notify::Event) -> bool {
        if matches!(event.kind, EventKind::Access(_)) {
            return false;
        }
        let resolved = std::fs::canonicalize(&self.path).ok();
        let parent = self.path.parent();
        event.paths.iter().any(|p| {
            p == &self.path
                || resolved.as_deref() == Some(p.as_path())
                || self.watched.iter().any(|w| &w.dir == p)
                || (p.parent() == parent
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("..")))
        })
    }

    /// Reads the file after the debounce: true when its content differs from the loaded text.
    fn check(&mut self) -> bool {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                if self.missing {
                    tracing::info!(file = %self.path.display(), "config file is back");
                    self.missing = false;
                }
                if bytes == self.loaded {
                    tracing::debug!("config file touched, but its content is unchanged");
                    false
                } else {
                    true
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.missing {
                    tracing::warn!(
                        file = %self.path.display(),
                        "config file is gone; keeping the current config until it returns"
                    );
                    self.missing = true;
                }
                false
            }
            Err(e) => {
                tracing::warn!(
                    file = %self.path.display(),
                    "cannot read the changed config file: {e}; keeping the current config"
                );
                false
            }
        }
    }
}

fn inode(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
