//! The stop that reaches running tasks (docs/behaviour.md#signals-and-restarts), in two steps,
//! each a cancellation token that work can await (`select!` on) rather than poll:
//!
//! 1. **Requested** (the first SIGINT/SIGTERM): no new mapping or image job starts, and a job
//!    waiting for a slot gives up at once; jobs in flight go on.
//! 2. **Aborted** (a second signal, or the end of the grace period): the copies in flight are
//!    abandoned. Each relay ends its own: the native relay's copy is dropped (it puts a manifest
//!    only after everything it references is in place), the skopeo relay kills and reaps its
//!    skopeo and removes its auth files, the docker relay's additions are removed afterwards.
//!
//! An abort implies a request. Neither can be undone: a stopping process never resumes.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// The process's stop: cheap to clone, every clone sees the same two steps. Made once, by the
/// signal handler, and handed down to every task and job.
#[derive(Debug, Clone)]
pub struct Stop {
    /// Cancelled by [`Stop::request`], and with `abort`.
    requested: CancellationToken,
    /// Cancelled by [`Stop::abort`]; its child `requested` follows it.
    abort: CancellationToken,
}

impl Default for Stop {
    fn default() -> Self {
        Stop::new()
    }
}

impl Stop {
    /// A stop that was neither requested nor aborted.
    pub fn new() -> Self {
        let abort = CancellationToken::new();
        Stop {
            requested: abort.child_token(),
            abort,
        }
    }

    /// Asks every holder to start no new work; wakes everything waiting in
    /// [`Stop::requested`] and [`Stop::until_requested`].
    pub fn request(&self) {
        self.requested.cancel();
    }

    /// Abandons the work in flight (and requests the stop, if that was not done yet); wakes
    /// everything waiting in [`Stop::aborted`] and [`Stop::until_aborted`].
    pub fn abort(&self) {
        self.abort.cancel();
    }

    /// Whether a stop was requested (or the work aborted).
    pub fn is_requested(&self) -> bool {
        self.requested.is_cancelled()
    }

    /// Whether the work in flight was aborted.
    pub fn is_aborted(&self) -> bool {
        self.abort.is_cancelled()
    }

    /// Completes once a stop is requested. Cancel-safe.
    pub async fn requested(&self) {
        self.requested.cancelled().await
    }

    /// Completes once the work in flight is aborted. Cancel-safe.
    pub async fn aborted(&self) {
        self.abort.cancelled().await
    }

    /// Runs `work` (a wait for a slot, say) unless a stop is requested first: `None`, and
    /// `work` is dropped, when the stop comes before `work` ends. The stop wins a tie, so
    /// nothing that could still be left undone starts once it was requested.
    pub async fn until_requested<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            () = self.requested.cancelled() => None,
            output = work => Some(output),
        }
    }

    /// Runs `work` (a copy in flight, say) unless the work is aborted first: `None`, and
    /// `work` is dropped, when the abort comes before `work` ends. Work that is already done
    /// when both are ready keeps its result.
    pub async fn until_aborted<F: Future>(&self, work: F) -> Option<F::Output> {
        self.abort.run_until_cancelled(work).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_request_wakes_waiters_and_leaves_work_in_flight_alone() {
        let stop = Stop::new();
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.until_requested(std::future::pending::<()>()).await }
        });
        stop.request();
        assert_eq!(waiter.await.expect("the waiter ends"), None);
        assert!(stop.is_requested());
        assert!(!stop.is_aborted());
        // Work in flight is not aborted by a request.
        assert_eq!(stop.until_aborted(async { 7 }).await, Some(7));
        // Once requested, nothing starts, not even work that is ready at once.
        assert_eq!(stop.until_requested(async { 7 }).await, None);
    }

    #[tokio::test]
    async fn an_abort_implies_a_request_and_drops_work_in_flight() {
        let stop = Stop::new();
        let copy = tokio::spawn({
            let stop = stop.clone();
            async move {
                stop.until_aborted(tokio::time::sleep(Duration::from_secs(3600)))
                    .await
            }
        });
        let requested = tokio::spawn({
            let stop = stop.clone();
            async move { stop.requested().await }
        });
        stop.abort();
        assert_eq!(copy.await.expect("the copy ends"), None);
        requested.await.expect("the request is seen");
        assert!(stop.is_requested() && stop.is_aborted());
        stop.aborted().await;
    }
}
