//! The stop request that reaches running tasks (docs/behaviour.md#signals-and-restarts): once
//! it is set, no new image job (and
//! no new mapping) starts, while jobs already in flight go on until they end or the scheduler
//! drops them at the end of the grace period.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared, one-way stop flag: cheap to clone, checked before each unit of new work.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        StopFlag::default()
    }

    /// Asks every holder to start no new work. It cannot be undone: a stopping configuration
    /// never resumes (a restart makes a new flag).
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
