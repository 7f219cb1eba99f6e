//! Time limits of registry requests ([`Timeouts`], docs/configuration.md, "The native
//! engine"): connecting, a stalled transfer (no bytes moving), and the registry's answer after
//! a complete upload, which on object storage can take minutes; and the watch that enforces
//! them on a streamed upload body ([`BodyProgress`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::error::{Error, ErrorKind};

/// How long to wait for the network. Every request has a bound
/// (docs/configuration.md, "The native engine").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a TCP connection and finish the TLS handshake. Default 15 s.
    pub connect: Duration,
    /// How long a streamed transfer (a blob download or upload) may go without a byte moving
    /// before it counts as stalled; also how long a blob download may wait for the answer to
    /// its request. Default 60 s.
    pub stall: Duration,
    /// For a whole request whose body is not streamed (manifests, tokens, lists). Default 120 s.
    pub request: Duration,
    /// How long the registry may take to answer once it has received the whole of an upload:
    /// registries on S3, Swift or GCS move the blob into place before answering the final
    /// `PUT …?digest=`. Default 5 min; [`Timeouts::commit_for`] adds [`Timeouts::commit_per_gib`].
    pub commit: Duration,
    /// Added to `commit` for each whole GiB of the blob, as moving it takes longer for large
    /// blobs. Default 1 min.
    pub commit_per_gib: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(15),
            stall: Duration::from_secs(60),
            request: Duration::from_secs(120),
            commit: Duration::from_secs(300),
            commit_per_gib: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    /// How long the answer to the final request of an upload of `size` bytes may take:
    /// `commit` plus `commit_per_gib` for each whole GiB.
    pub fn commit_for(&self, size: u64) -> Duration {
        const GIB: u64 = 1 << 30;
        let gibs = u32::try_from(size / GIB).unwrap_or(u32::MAX);
        self.commit
            .saturating_add(self.commit_per_gib.saturating_mul(gibs))
    }
}

/// When a streamed request body last moved, and whether it was sent whole.
pub(super) struct BodyProgress {
    state: Mutex<(Instant, bool)>,
    /// Wakes the watcher when the body is complete, as its limit changes then.
    sent: Notify,
}

impl BodyProgress {
    pub(super) fn new() -> Self {
        BodyProgress {
            state: Mutex::new((Instant::now(), false)),
            sent: Notify::new(),
        }
    }

    pub(super) fn moved(&self, finished: bool) {
        if let Ok(mut state) = self.state.lock() {
            *state = (Instant::now(), finished);
        }
        if finished {
            self.sent.notify_one();
        }
    }

    /// Resolves with an error once the body stalled for `stall`, or once it was sent whole
    /// and `answer` passed; never resolves while things move in time.
    pub(super) async fn watch(&self, stall: Duration, answer: Duration, len: u64) -> Error {
        loop {
            let (last, finished) = match self.state.lock() {
                Ok(state) => *state,
                // Only a panic in `moved` could poison it; stop watching rather than guess.
                Err(_) => return stalled(stall),
            };
            let limit = if finished { answer } else { stall };
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return if finished {
                    late_commit(answer, len)
                } else {
                    stalled(stall)
                };
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = self.sent.notified(), if !finished => {}
            }
        }
    }
}

/// The error of a transfer that stalled for `stall`.
pub(super) fn stalled(stall: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("the transfer stalled: no bytes moved for {stall:?} (native.stall-timeout)"),
    )
}

/// The error of a commit whose answer did not come within `limit`.
pub(super) fn late_commit(limit: Duration, size: u64) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "the registry did not answer within {limit:?} after receiving the whole blob of {size} bytes (native.commit-timeout, plus its share per GiB)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_limit_grows_with_the_blob() {
        let t = Timeouts {
            commit: Duration::from_secs(10),
            commit_per_gib: Duration::from_secs(5),
            ..Timeouts::default()
        };
        assert_eq!(t.commit_for(0), Duration::from_secs(10));
        assert_eq!(t.commit_for((1 << 30) - 1), Duration::from_secs(10));
        assert_eq!(t.commit_for(1 << 30), Duration::from_secs(15));
        assert_eq!(t.commit_for(5 << 30), Duration::from_secs(35));
    }
}
