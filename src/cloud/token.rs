//! A cached cloud token: handed out until it is due for renewal, then fetched again, once,
//! however many requests are waiting for it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::registry::{Credentials, Error};

/// What a token fetch returns.
pub(crate) struct Fresh {
    pub credentials: Credentials,
    /// How long the token is valid from now, when the issuer says (`None` or zero: unknown).
    pub valid_for: Option<Duration>,
}

/// Renew this long before a token expires, so no request starts with a token about to lapse.
const MARGIN: Duration = Duration::from_secs(300);

/// How long a token without a known lifetime (and no refresh interval) is used.
const UNKNOWN_LIFETIME: Duration = Duration::from_secs(600);

struct Cached {
    credentials: Credentials,
    renew_at: Instant,
}

/// One identity's current token.
#[derive(Default)]
pub(crate) struct TokenCache {
    state: tokio::sync::Mutex<Option<Cached>>,
    /// Set when the registry refused the token: the next request fetches a new one.
    stale: AtomicBool,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache(<redacted>)")
    }
}

impl TokenCache {
    /// The cached credentials, or new ones from `fetch` when they are due: after `interval`
    /// (ECR's `auth-refresh`), shortly before the token expires, or after a refusal.
    pub(crate) async fn get<F, Fut>(
        &self,
        interval: Option<Duration>,
        fetch: F,
    ) -> Result<Credentials, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fresh, Error>>,
    {
        let mut state = self.state.lock().await;
        if self.stale.swap(false, Ordering::AcqRel) {
            *state = None;
        }
        if let Some(cached) = state.as_ref()
            && Instant::now() < cached.renew_at
        {
            return Ok(cached.credentials.clone());
        }
        let started = Instant::now();
        let fresh = fetch().await?;
        let renew_after = renew_after(interval, fresh.valid_for);
        *state = Some(Cached {
            credentials: fresh.credentials.clone(),
            renew_at: started + renew_after,
        });
        Ok(fresh.credentials)
    }

    /// Forgets the token: it was refused.
    pub(crate) fn invalidate(&self) {
        self.stale.store(true, Ordering::Release);
    }
}

/// When to renew a token, from the refresh interval and the token's own lifetime.
fn renew_after(interval: Option<Duration>, valid_for: Option<Duration>) -> Duration {
    // Tokens that live shorter than twice the margin are renewed at half their life.
    let by_expiry = valid_for
        .filter(|d| !d.is_zero())
        .map(|d| d.saturating_sub(MARGIN.min(d / 2)));
    match (interval, by_expiry) {
        (Some(i), Some(e)) => i.min(e),
        (Some(i), None) => i,
        (None, Some(e)) => e,
        (None, None) => UNKNOWN_LIFETIME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn renewal_time() {
        // ECR: 12 h tokens, refreshed every hour.
        assert_eq!(
            renew_after(secs(3600), secs(43200)),
            Duration::from_secs(3600)
        );
        // A token that expires before the interval is renewed 5 minutes before it expires.
        assert_eq!(
            renew_after(secs(7200), secs(3600)),
            Duration::from_secs(3300)
        );
        // Google: about an hour, no interval.
        assert_eq!(renew_after(None, secs(3599)), Duration::from_secs(3299));
        // Short-lived tokens at half their life; unknown lifetimes get a default.
        assert_eq!(renew_after(None, secs(2)), Duration::from_secs(1));
        assert_eq!(renew_after(None, secs(0)), UNKNOWN_LIFETIME);
        assert_eq!(renew_after(secs(3600), None), Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn cached_until_due_or_refused() {
        let cache = TokenCache::default();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let fetch = || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Ok(Fresh {
                credentials: Credentials::new("u", format!("t{n}")),
                valid_for: secs(3600),
            })
        };
        cache.get(None, fetch).await.expect("first");
        cache.get(None, fetch).await.expect("cached");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache.invalidate();
        cache.get(None, fetch).await.expect("renewed");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // An error is returned and nothing is cached from it.
        cache.invalidate();
        let err = cache
            .get(None, || async {
                Err::<Fresh, _>(crate::cloud::refused("no credentials"))
            })
            .await;
        assert_eq!(
            err.err().map(|e| e.to_string()).as_deref(),
            Some("no credentials")
        );
    }
}
