//! Registry rate limits: the budget a registry announces, pauses after 429, and the point
//! where dregsy stops asking a registry for the rest of a run (docs/behaviour.md, "Rate
//! limits").
//!
//! One [`HostLimit`] per registry host, shared by every client of that host in a run (several
//! clients exist when tasks use different credentials), so a 429 answered to one request
//! pauses them all. The transport consults it before each request and feeds it each answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use super::client::Registry;
use super::error::{Error, ErrorKind, Result};
use super::retry::{RetryPolicy, Tries};

/// The longest a host stays stopped after its limit ran out, whatever it asks for: a
/// `Retry-After` of a year must not keep a daemon away from a registry for a year. Docker
/// Hub's window is 6 hours.
const MAX_STOP: Duration = Duration::from_secs(6 * 60 * 60);

/// How long a host stays stopped when its budget reached 0 and it named no window.
const DEFAULT_STOP: Duration = Duration::from_secs(60 * 60);

/// Below this share of the limit (in percent), the budget is worth a warning.
const WARN_BELOW_PERCENT: u64 = 10;

/// The rate-limit state of every registry host of a run. Cheap to clone: clones share it.
///
/// [`RegistryOptions::rate_limits`](super::RegistryOptions::rate_limits) hands it to each
/// client; the sync calls [`RateLimits::start_run`] before each task run.
#[derive(Clone, Default)]
pub struct RateLimits {
    hosts: Arc<Mutex<HashMap<String, Arc<HostLimit>>>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits")
    }
}

/// A registry's announced request budget, from its `ratelimit-limit` and
/// `ratelimit-remaining` headers (Docker Hub sends them on manifest requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests allowed per window, when announced.
    pub limit: Option<u64>,
    /// Requests left in the current window.
    pub remaining: u64,
    /// The window's length (`w=SECONDS`), when announced.
    pub window: Option<Duration>,
}

impl RateLimits {
    /// An empty state: no host limited.
    pub fn new() -> RateLimits {
        RateLimits::default()
    }

    /// The state of one host (the registry's API host, `host:port`).
    pub(crate) fn host(&self, host: &str) -> Arc<HostLimit> {
        match self.hosts.lock() {
            Ok(mut hosts) => hosts
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(HostLimit::new(host)))
                .clone(),
            // A poisoned map loses sharing between clients, never a bound.
            Err(_) => Arc::new(HostLimit::new(host)),
        }
    }

    /// The budget `host` announced last, if it announced one.
    pub fn budget(&self, host: &str) -> Option<Budget> {
        self.known(host).and_then(|h| h.budget())
    }

    /// The error requests to `host` get, when its rate limit ran out in this run.
    pub fn exhausted(&self, host: &str) -> Option<Error> {
        self.known(host).and_then(|h| h.exhausted())
    }

    /// Why `host`'s rate limit counts as used up in this run, in a few words ("its budget
    /// of 100 requests per 21600 s is used up"), when it does.
    pub fn exhaustion_reason(&self, host: &str) -> Option<String> {
        let host = self.known(host)?;
        let state = host.state.lock().ok()?;
        state.exhausted.as_ref().map(|e| e.why.clone())
    }

    fn known(&self, host: &str) -> Option<Arc<HostLimit>> {
        self.hosts.lock().ok()?.get(host).cloned()
    }

    /// Begins a new run: a host whose limit ran out is asked again once the wait it asked
    /// for (bounded to 6 hours) has passed; until then it stays stopped. The low-budget
    /// warning may come once more.
    pub fn start_run(&self) {
        let hosts: Vec<Arc<HostLimit>> = match self.hosts.lock() {
            Ok(hosts) => hosts.values().cloned().collect(),
            Err(_) => return,
        };
        let now = Instant::now();
        for host in hosts {
            if let Ok(mut state) = host.state.lock() {
                if state.exhausted.as_ref().is_some_and(|e| now >= e.until) {
                    state.exhausted = None;
                }
                state.warned = false;
            }
        }
    }
}

/// Why and until when a host gets no more requests.
#[derive(Debug, Clone)]
struct Exhaustion {
    why: String,
    until: Instant,
}

#[derive(Debug, Default)]
struct State {
    budget: Option<Budget>,
    paused_until: Option<Instant>,
    exhausted: Option<Exhaustion>,
    warned: bool,
}

/// The rate-limit state of one registry host.
#[derive(Debug)]
pub(crate) struct HostLimit {
    host: String,
    state: Mutex<State>,
}

impl HostLimit {
    pub(crate) fn new(host: &str) -> HostLimit {
        HostLimit {
            host: host.to_owned(),
            state: Mutex::new(State::default()),
        }
    }

    /// Waits while the host is paused after a 429, then says whether a request may go.
    ///
    /// # Errors
    /// [`ErrorKind::RateLimited`] once the host's limit ran out in this run.
    pub(crate) async fn wait_turn(&self) -> Result<()> {
        loop {
            let pause = {
                let state = self.state.lock().map_err(|_| self.poisoned())?;
                if let Some(exhausted) = &state.exhausted {
                    return Err(self.refusal(&exhausted.why));
                }
                state
                    .paused_until
                    .and_then(|until| until.checked_duration_since(Instant::now()))
            };
            match pause {
                // Another request may extend the pause meanwhile: look again after it.
                Some(pause) if !pause.is_zero() => tokio::time::sleep(pause).await,
                _ => return Ok(()),
            }
        }
    }

    /// Pauses every request to the host for `delay` (a 429's `Retry-After` or the backoff).
    pub(crate) fn pause(&self, delay: Duration) {
        if let Ok(mut state) = self.state.lock() {
            let until = Instant::now() + delay;
            if state.paused_until.is_none_or(|current| current < until) {
                state.paused_until = Some(until);
            }
        }
    }

    /// Stops every request to the host for the rest of the run (and at least `wait`, at most
    /// 6 hours, for later runs). Returns the error for the request that found out.
    pub(crate) fn exhaust(&self, why: String, wait: Duration) -> Error {
        if let Ok(mut state) = self.state.lock() {
            if state.exhausted.is_none() {
                tracing::warn!(
                    registry = %self.host,
                    "rate limit of {} exhausted ({why}); no more requests go there in this run",
                    self.host
                );
            }
            state.exhausted = Some(Exhaustion {
                why: why.clone(),
                until: Instant::now() + wait.min(MAX_STOP),
            });
        }
        self.refusal(&why)
    }

    /// Learns the budget from an answer's `ratelimit-*` headers: warns once below 10 % of
    /// the limit, and stops the host when nothing is left.
    pub(crate) fn observe(&self, headers: &HeaderMap) {
        let Some(budget) = budget_from(headers) else {
            return;
        };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.budget = Some(budget);
        let window = budget
            .window
            .map(|w| format!(" per {} s", w.as_secs()))
            .unwrap_or_default();
        if budget.remaining == 0 {
            drop(state);
            let limit = budget.limit.map(|l| format!(" of {l}")).unwrap_or_default();
            self.exhaust(
                format!("its budget{limit} requests{window} is used up"),
                budget.window.unwrap_or(DEFAULT_STOP),
            );
            return;
        }
        if let Some(limit) = budget.limit
            && budget.remaining.saturating_mul(100) < limit.saturating_mul(WARN_BELOW_PERCENT)
            && !state.warned
        {
            state.warned = true;
            tracing::warn!(
                registry = %self.host,
                remaining = budget.remaining,
                limit,
                "rate limit of {}: {} of {limit} requests{window} left; the run stops sending \
                 there when none is left",
                self.host,
                budget.remaining,
            );
        }
    }

    /// The host's budget as last announced.
    pub(crate) fn budget(&self) -> Option<Budget> {
        self.state.lock().ok().and_then(|s| s.budget)
    }

    /// The error for requests the host may no longer get, when its limit ran out.
    pub(crate) fn exhausted(&self) -> Option<Error> {
        let state = self.state.lock().ok()?;
        state.exhausted.as_ref().map(|e| self.refusal(&e.why))
    }

    fn refusal(&self, why: &str) -> Error {
        Error::new(
            ErrorKind::RateLimited,
            format!("rate limit of {} exhausted: {why}", self.host),
        )
        .for_registry(self.host.clone())
    }

    fn poisoned(&self) -> Error {
        Error::new(
            ErrorKind::Protocol,
            format!(
                "the rate-limit state of {} is unusable after a panic",
                self.host
            ),
        )
    }
}

/// The budget in `ratelimit-limit` / `ratelimit-remaining`, when `ratelimit-remaining` is
/// there and readable.
fn budget_from(headers: &HeaderMap) -> Option<Budget> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (remaining, remaining_window) = parse_limit_header(text("ratelimit-remaining")?)?;
    let limit = text("ratelimit-limit").and_then(parse_limit_header);
    Some(Budget {
        limit: limit.map(|(n, _)| n),
        remaining,
        window: remaining_window
            .or(limit.and_then(|(_, w)| w))
            .map(Duration::from_secs),
    })
}

/// What a 429 Too Many Requests answer means for the request that got it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TooManyRequests {
    /// The host is done for the run: it asks to wait longer than the policy honours, or every
    /// try was answered 429. `why` says which; `wait` is how long it asked for.
    Exhausted { why: String, wait: Duration },
    /// The request cannot be replayed: the host pauses for `pause` and the caller gets the
    /// answer, to decide about this request itself.
    Answer { pause: Duration },
    /// The host pauses for `delay` (a try taken from the request's budget), then the request
    /// is sent again.
    Retry { delay: Duration },
}

/// Decides about a 429 answer: `asked` is its `Retry-After`, `replayable` whether the
/// request can be sent again, `tries` its budget under `policy`. Every request to the host
/// pauses, not only this one (docs/behaviour.md, "Rate limits").
pub(crate) fn too_many_requests(
    asked: Option<Duration>,
    replayable: bool,
    tries: &Tries,
    policy: &RetryPolicy,
) -> TooManyRequests {
    if let Some(wait) = asked.filter(|w| *w > policy.max_retry_after) {
        return TooManyRequests::Exhausted {
            why: format!(
                "it answered 429 Too Many Requests and asks to wait {} s \
                 (Retry-After), longer than the {} s dregsy waits",
                wait.as_secs(),
                policy.max_retry_after.as_secs()
            ),
            wait,
        };
    }
    if !replayable {
        return TooManyRequests::Answer {
            pause: asked.unwrap_or_else(|| policy.backoff(1)),
        };
    }
    match tries.next_delay(asked) {
        Some(delay) => TooManyRequests::Retry { delay },
        None => TooManyRequests::Exhausted {
            why: format!(
                "it answered 429 Too Many Requests to every one of {} tries",
                policy.max_tries.max(1)
            ),
            wait: asked.unwrap_or_default().max(policy.max_retry_after),
        },
    }
}

/// Parses a rate-limit header value: `N`, or Docker Hub's `N;w=SECONDS`; of a list
/// (`100, 100;w=21600`), the first entry. Returns the number and the window in seconds.
pub(crate) fn parse_limit_header(value: &str) -> Option<(u64, Option<u64>)> {
    let first = value.split(',').next()?.trim();
    let mut parts = first.split(';');
    let number = parts.next()?.trim().parse::<u64>().ok()?;
    let window = parts.find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("w")
            .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
            .flatten()
    });
    Some((number, window))
}

impl Registry {
    /// The request budget this registry host announced last (`ratelimit-*` headers), if any.
    pub fn rate_limit_budget(&self) -> Option<Budget> {
        self.inner.transport.rate_limit().budget()
    }

    /// The error every request to this host now gets, when its rate limit ran out in this run
    /// ([`ErrorKind::RateLimited`]); `None` while requests may go.
    pub fn rate_limit_exhausted(&self) -> Option<Error> {
        self.inner.transport.rate_limit().exhausted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn limit_header_forms() {
        assert_eq!(parse_limit_header("100"), Some((100, None)));
        assert_eq!(parse_limit_header("76;w=21600"), Some((76, Some(21600))));
        assert_eq!(parse_limit_header(" 5 ; W=60 "), Some((5, Some(60))));
        assert_eq!(parse_limit_header("100, 100;w=21600"), Some((100, None)));
        assert_eq!(parse_limit_header("7;w=x"), Some((7, None)));
        assert_eq!(parse_limit_header("-1"), None);
        assert_eq!(parse_limit_header(""), None);
        assert_eq!(parse_limit_header("many"), None);
    }

    fn headers(limit: &str, remaining: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-limit", HeaderValue::from_str(limit).unwrap());
        h.insert(
            "ratelimit-remaining",
            HeaderValue::from_str(remaining).unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn budget_zero_stops_the_host_until_a_later_run() {
        let limits = RateLimits::new();
        let host = limits.host("r.io");
        host.observe(&headers("100;w=21600", "9;w=21600"));
        assert_eq!(
            host.budget(),
            Some(Budget {
                limit: Some(100),
                remaining: 9,
                window: Some(Duration::from_secs(21600))
            })
        );
        assert!(host.wait_turn().await.is_ok());
        host.observe(&headers("100;w=21600", "0;w=21600"));
        let refused = host.wait_turn().await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::RateLimited);
        assert_eq!(refused.registry(), Some("r.io"));
        assert!(
            refused.to_string().contains("rate limit of r.io exhausted"),
            "{refused}"
        );
        // Shared by every client of the host; a new run within the window keeps it stopped.
        limits.start_run();
        assert!(limits.host("r.io").exhausted().is_some());
        assert!(limits.host("other.io").exhausted().is_none());
    }

    #[tokio::test]
    async fn a_passed_wait_frees_the_host_for_the_next_run_only() {
        let limits = RateLimits::new();
        let host = limits.host("r.io");
        host.exhaust("test".into(), Duration::ZERO);
        assert!(
            host.wait_turn().await.is_err(),
            "stays stopped for this run"
        );
        limits.start_run();
        assert!(host.wait_turn().await.is_ok());
    }

    #[tokio::test]
    async fn a_pause_holds_every_request() {
        let host = HostLimit::new("r.io");
        host.pause(Duration::from_millis(50));
        host.pause(Duration::from_millis(1));
        let paused = host.state.lock().unwrap().paused_until.unwrap();
        assert!(
            paused > Instant::now() + Duration::from_millis(10),
            "a shorter pause does not shorten it"
        );
        host.wait_turn().await.unwrap();
        assert!(Instant::now() >= paused);
    }
}
