//! The one retry policy of the registry client and the copy engine
//! (docs/configuration.md, "The native engine"; docs/behaviour.md, "Rate limits").
//!
//! A request whose body can be sent again is retried by the transport on connection failures,
//! resets, timeouts, 408, 429 and 5xx ([`retryable_status`]), with exponential backoff and
//! jitter, honouring `Retry-After` ([`retry_after`]) up to [`RetryPolicy::max_retry_after`]. A
//! streamed blob transfer cannot be replayed by the transport; the copy engine retries it as a
//! whole under the same policy and from the same [`Tries`] as the requests it is made of, so
//! one blob costs at most `max_tries` tries in all. Nothing else retries registry requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How transient failures are retried: the one policy of the client and the copy engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times an operation is tried in all (1 = no retry): a request, or a blob
    /// transfer together with the requests it is made of (see [`Tries`]).
    pub max_tries: u32,
    /// The first backoff delay; it doubles with each try (with jitter).
    pub base_delay: Duration,
    /// The longest backoff delay.
    pub max_delay: Duration,
    /// The longest `Retry-After` we honour; a registry asking for more gets this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_tries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A fresh budget of `max_tries` tries for one operation.
    pub fn tries(&self) -> Tries {
        Tries {
            shared: Arc::new((self.clone(), AtomicU32::new(1))),
        }
    }

    /// Exponential backoff with jitter before retry number `retry` (1 = the first retry):
    /// base·2^(retry-1), capped, scaled by 50–100 %.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let capped = exp.min(self.max_delay);
        capped.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

/// The tries left to one operation under a [`RetryPolicy`]. Clones share the budget: the
/// copy engine gives one to every request of a blob transfer
/// ([`Registry::sharing_tries`](super::Registry::sharing_tries)), so retries at the request
/// level and of the whole transfer draw from one bound instead of multiplying.
#[derive(Debug, Clone)]
pub struct Tries {
    /// The policy, and how many tries were started so far (the first one included).
    shared: Arc<(RetryPolicy, AtomicU32)>,
}

impl Tries {
    /// Takes one more try from the budget and says how long to wait before it: the
    /// registry's `Retry-After` (capped by the policy) or the backoff. `None` when every try is
    /// used up, and the failure stands.
    pub fn next_delay(&self, retry_after: Option<Duration>) -> Option<Duration> {
        let (policy, started) = &*self.shared;
        let max = policy.max_tries.max(1);
        let taken = started
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(match retry_after {
            Some(wait) => wait.min(policy.max_retry_after),
            None => policy.backoff(taken),
        })
    }
}

/// Whether an answer with `status` is worth another try: 408, 429 and the 5xx that are not
/// "not implemented" or "version not supported".
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
        || (status.is_server_error() && !matches!(status.as_u16(), 501 | 505))
}

/// Reads `Retry-After`: seconds, or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(when.timestamp()).ok()?);
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 UTC
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:30 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:00:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 416, 501, 505] {
            assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            ..RetryPolicy::default()
        };
        let first = policy.backoff(1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let third = policy.backoff(3);
        assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
        assert!(policy.backoff(30) <= Duration::from_millis(500));
    }

    #[test]
    fn tries_are_one_budget_shared_by_clones() {
        let policy = RetryPolicy {
            max_tries: 3,
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let tries = policy.tries();
        let shared = tries.clone();
        assert!(tries.next_delay(None).is_some(), "second try");
        assert_eq!(
            shared.next_delay(Some(Duration::from_secs(500))),
            Some(policy.max_retry_after),
            "third try, Retry-After capped"
        );
        assert_eq!(tries.next_delay(None), None, "three tries in all");
        assert_eq!(shared.next_delay(None), None);
        let once = RetryPolicy {
            max_tries: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(once.tries().next_delay(None), None);
    }
}
