//! HTTP to one registry host: connection pool, TLS, scheme choice, timeouts and retries.
//!
//! The retry policy lives here ([`RetryPolicy`], [`Tries`]): a request whose body can be sent
//! again is retried on connection failures, resets, timeouts, 408, 429 and 5xx, with
//! exponential backoff and jitter, honouring `Retry-After`. A streamed blob transfer cannot be
//! replayed by the transport; the copy engine retries it as a whole under the same policy and
//! from the same [`Tries`] as the requests it is made of, so one blob costs at most
//! `max_tries` tries in all (docs/configuration.md, "The native engine").
//!
//! Time limits ([`Timeouts`]) separate connecting, a stalled transfer (no bytes moving) and the
//! registry's answer after a complete upload, which on object storage can take minutes.
//!
//! Rate limits are per host and shared ([`HostLimit`]): a 429 pauses every request to the
//! host, and once the host's budget is used up, or 429s outlast the retries, no request goes
//! there for the rest of the run (docs/behaviour.md, "Rate limits").

use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use tokio::sync::{Notify, OnceCell};

use super::digest::ByteStream;
use super::error::{Error, ErrorKind, Result};
use super::ratelimit::HostLimit;
use super::reference::{RegistryHost, Scheme};

/// After this long without an answer, a request is worth one line in the log: a registry
/// that accepted the connection but does not answer looks like a hang otherwise.
const STILL_WAITING_AFTER: Duration = Duration::from_secs(10);

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
    fn backoff(&self, retry: u32) -> Duration {
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

/// One attempt of a registry request as the transport saw it, for a [`RequestObserver`].
#[derive(Debug)]
pub struct Attempt<'a> {
    /// The registry whose client sent it (token requests included).
    pub registry: &'a RegistryHost,
    /// The request's method.
    pub method: &'a Method,
    /// The status answered; `None` when no response came (connection failure, timeout).
    pub status: Option<StatusCode>,
    /// The response headers, when a response came.
    pub headers: Option<&'a HeaderMap>,
    /// From sending the request until the response head arrived (or the failure).
    pub elapsed: Duration,
    /// Whether the transport retries the request after this attempt.
    pub retrying: bool,
}

/// Sees every attempt of every request, once, as it ends: metrics read the transport here.
/// It must be quick and must not block; it cannot change what the transport does.
pub trait RequestObserver: Send + Sync + std::fmt::Debug {
    /// Called once per attempt, as it ends.
    fn observe(&self, attempt: &Attempt<'_>);
}

/// A request body.
pub(crate) enum Body {
    Empty,
    /// In memory: the request can be replayed.
    Bytes(Bytes),
    /// Streamed once, with its length for `Content-Length`.
    Stream(ByteStream, u64),
}

/// A request to send through [`Transport::send`].
pub(crate) struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Body,
    /// Whether sending it twice is harmless (false for PATCH chunks).
    pub idempotent: bool,
    /// Whether the response body is streamed to the caller, so the total-time bound must not
    /// apply; the stall limit does instead.
    pub streaming_response: bool,
    /// Set on the request that completes an upload of a blob of this many bytes: its answer
    /// may take [`Timeouts::commit_for`] after the body was sent.
    pub commits: Option<u64>,
    /// The budget this request's retries come from; `None`: a fresh one of its own.
    pub tries: Option<Tries>,
}

impl Request {
    pub(crate) fn new(method: Method, url: Url) -> Request {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: Body::Empty,
            idempotent: true,
            streaming_response: false,
            commits: None,
            tries: None,
        }
    }

    fn replayable(&self) -> bool {
        self.idempotent && !matches!(self.body, Body::Stream(..))
    }
}

/// The HTTP connection to one registry host, shared by all clones of a `Registry`.
pub(crate) struct Transport {
    client: reqwest::Client,
    host: RegistryHost,
    skip_tls_verify: bool,
    timeouts: Timeouts,
    retry: RetryPolicy,
    /// The scheme, decided on first use.
    scheme: OnceCell<Scheme>,
    /// The host's rate limit, shared with the run's other clients of the host.
    rate_limit: Arc<HostLimit>,
    /// Whether the server asked for a client certificate we do not have, and whether it
    /// answered anyway (optional client authentication); `None` with a client certificate.
    client_cert: Option<ClientCertWatch>,
    /// Told about every request attempt (metrics).
    observer: Option<Arc<dyn RequestObserver>>,
}

/// Tells a registry that needs a client certificate (mTLS) apart from a broken network:
/// such a registry asks for one in the handshake, then closes or resets the connection, or
/// sends an alert, once it sees none.
struct ClientCertWatch {
    asked: Arc<AtomicBool>,
    answered: AtomicBool,
}

impl ClientCertWatch {
    /// Whether a failure is best explained by the missing client certificate.
    fn explains_failure(&self) -> bool {
        self.asked.load(Ordering::Relaxed) && !self.answered.load(Ordering::Relaxed)
    }
}

impl Transport {
    pub(crate) fn new(
        host: RegistryHost,
        mut tls: rustls::ClientConfig,
        skip_tls_verify: bool,
        timeouts: Timeouts,
        retry: RetryPolicy,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Transport> {
        let client_cert =
            super::tls::watch_client_certificate_requests(&mut tls).map(|asked| ClientCertWatch {
                asked,
                answered: AtomicBool::new(false),
            });
        let rate_limit = Arc::new(HostLimit::new(host.api_host()));
        let client = crate::http_client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(timeouts.connect)
            // No client-wide read timeout: reqwest's runs from the start of a request to its
            // answer, so it would cut an upload that takes longer than it while bytes are
            // moving. Stalls and late answers are watched per request instead (`send`).
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("dregsy/", env!("CARGO_PKG_VERSION")))
            // Blob GETs are redirected to storage hosts; reqwest drops `Authorization` when a
            // redirect leaves the host (see the redirect test), so following is safe. A
            // redirect from HTTPS down to plain HTTP is refused.
            .redirect(redirect_policy())
            .retry(reqwest::retry::never())
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Tls,
                    format!("cannot set up an HTTP client: {}", root_cause(&e)),
                )
            })?;
        Ok(Transport {
            client,
            host,
            skip_tls_verify,
            timeouts,
            retry,
            scheme: OnceCell::new(),
            rate_limit,
            client_cert,
            observer,
        })
    }

    /// Shares the rate-limit state of the host with the run's other clients of it.
    pub(crate) fn share_rate_limit(mut self, limit: Arc<HostLimit>) -> Transport {
        self.rate_limit = limit;
        self
    }

    /// The host's rate-limit state.
    pub(crate) fn rate_limit(&self) -> &HostLimit {
        &self.rate_limit
    }

    /// The registry's API root, e.g. `https://registry-1.docker.io/`.
    pub(crate) async fn base_url(&self) -> Result<Url> {
        let scheme = self.scheme().await?;
        let text = format!("{}://{}/", scheme.as_str(), self.host.api_host());
        Url::parse(&text).map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                format!("cannot build a URL for registry {}: {e}", self.host),
            )
        })
    }

    /// Decides the scheme: as written; else HTTPS, except that with `skip-tls-verify` a
    /// registry that does not speak TLS is used over plain HTTP (as skopeo does).
    async fn scheme(&self) -> Result<Scheme> {
        if let Some(s) = self.host.scheme() {
            return Ok(s);
        }
        if !self.skip_tls_verify {
            return Ok(Scheme::Https);
        }
        self.scheme
            .get_or_try_init(|| async {
                let probe = |scheme: Scheme| {
                    let url = format!("{}://{}/v2/", scheme.as_str(), self.host.api_host());
                    self.client
                        .get(url)
                        .timeout(self.timeouts.request)
                        .send()
                };
                // Both at once: a far-away registry would otherwise cost two more round
                // trips per run. HTTPS wins whenever it works, without waiting for the plain
                // probe (which carries no credentials).
                let https = probe(Scheme::Https);
                let http = probe(Scheme::Http);
                futures_util::pin_mut!(https, http);
                let (https, http) = match futures_util::future::select(https, http).await {
                    Either::Left((Ok(_), _)) => return Ok(Scheme::Https),
                    Either::Left((https, http)) => (https, http.await),
                    Either::Right((http, https)) => (https.await, http),
                };
                match https {
                    Ok(_) => Ok(Scheme::Https),
                    Err(e) if (e.is_connect() || e.is_request()) && http.is_ok() => {
                        tracing::info!(registry = %self.host, "registry does not speak TLS, using plain HTTP");
                        Ok(Scheme::Http)
                    }
                    Err(e) => Err(self.explain(classify(&e))),
                }
            })
            .await
            .copied()
    }

    /// Sends `request`, retrying transient failures when the request can be replayed, from
    /// its [`Tries`]. Returns the final response whatever its status; statuses are for the
    /// caller to interpret.
    pub(crate) async fn send(&self, request: Request) -> Result<reqwest::Response> {
        let replayable = request.replayable();
        let tries = request.tries.clone().unwrap_or_else(|| self.retry.tries());
        let Request {
            method,
            url,
            headers,
            body,
            streaming_response,
            commits,
            ..
        } = request;
        let mut body = Some(body);
        loop {
            self.rate_limit.wait_turn().await?;
            let builder = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            // An upload's answer comes once its body is sent, which may take long without
            // anything being wrong: only requests with a body in memory are watched.
            let sent = Instant::now();
            let outcome = match &body {
                Some(Body::Bytes(bytes)) => {
                    let builder = builder.body(bytes.clone());
                    self.watched(
                        self.bounded(builder, streaming_response, commits),
                        &method,
                        &url,
                    )
                    .await
                }
                Some(Body::Empty) | None => {
                    self.watched(
                        self.bounded(builder, streaming_response, commits),
                        &method,
                        &url,
                    )
                    .await
                }
                Some(Body::Stream(..)) => match body.take() {
                    Some(Body::Stream(stream, len)) => {
                        self.upload(builder, stream, len, commits).await
                    }
                    _ => self.bounded(builder, streaming_response, commits).await,
                },
            };
            match outcome {
                Ok(response) => {
                    if let Some(watch) = &self.client_cert {
                        watch.answered.store(true, Ordering::Relaxed);
                    }
                    self.rate_limit.observe(response.headers());
                    let status = response.status();
                    let asked = retry_after(response.headers(), SystemTime::now());
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        if let Some(wait) = asked.filter(|w| *w > self.retry.max_retry_after) {
                            self.observe(&method, Some(&response), sent, false);
                            return Err(self.rate_limit.exhaust(
                                format!(
                                    "it answered 429 Too Many Requests and asks to wait {} s \
                                     (Retry-After), longer than the {} s dregsy waits",
                                    wait.as_secs(),
                                    self.retry.max_retry_after.as_secs()
                                ),
                                wait,
                            ));
                        }
                        if !replayable {
                            // Every request to the host waits, not only this one; the caller
                            // decides about this one.
                            self.rate_limit
                                .pause(asked.unwrap_or_else(|| self.retry.backoff(1)));
                            self.observe(&method, Some(&response), sent, false);
                            return Ok(response);
                        }
                        let delay = tries.next_delay(asked);
                        self.observe(&method, Some(&response), sent, delay.is_some());
                        let Some(delay) = delay else {
                            return Err(self.rate_limit.exhaust(
                                format!(
                                    "it answered 429 Too Many Requests to every one of {} tries",
                                    self.retry.max_tries.max(1)
                                ),
                                asked.unwrap_or_default().max(self.retry.max_retry_after),
                            ));
                        };
                        self.rate_limit.pause(delay);
                        tracing::debug!(%method, url = %redact(&url), %status, ?delay, "rate limited, pausing the host");
                        continue;
                    }
                    let delay = if replayable && retryable_status(status) {
                        tries.next_delay(asked)
                    } else {
                        None
                    };
                    self.observe(&method, Some(&response), sent, delay.is_some());
                    let Some(delay) = delay else {
                        return Ok(response);
                    };
                    tracing::debug!(%method, url = %redact(&url), %status, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => {
                    let error = self.explain(error);
                    let delay = if replayable && error.is_transient() {
                        tries.next_delay(None)
                    } else {
                        None
                    };
                    self.observe(&method, None, sent, delay.is_some());
                    let Some(delay) = delay else {
                        return Err(error);
                    };
                    tracing::debug!(%method, url = %redact(&url), error = %error, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Waits for `sending`; when no answer came after 10 s, says so once at info level and
    /// goes on waiting (the time limits still bound the wait).
    async fn watched<T>(
        &self,
        sending: impl std::future::Future<Output = T>,
        method: &Method,
        url: &Url,
    ) -> T {
        tokio::pin!(sending);
        tokio::select! {
            result = &mut sending => return result,
            _ = tokio::time::sleep(STILL_WAITING_AFTER) => {}
        }
        // Token requests go to another host than the registry's: name the one waited for.
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => self.host.to_string(),
        };
        tracing::info!(registry = %self.host, "still waiting for {host} ({method} {})", url.path());
        sending.await
    }

    /// Names the missing client certificate when that explains a failed connection.
    fn explain(&self, error: Error) -> Error {
        let connection_failed = matches!(
            error.kind(),
            ErrorKind::Tls | ErrorKind::Network | ErrorKind::Unreachable
        );
        if connection_failed
            && self
                .client_cert
                .as_ref()
                .is_some_and(ClientCertWatch::explains_failure)
        {
            return Error::new(
                ErrorKind::Tls,
                format!(
                    "registry {} requires a client certificate (mutual TLS), and none is \
                     configured: put it as <certs-dir>/{}/client.cert with its key client.key \
                     ({error})",
                    self.host,
                    self.host.host_without_port()
                ),
            );
        }
        error
    }

    /// Tells the observer (metrics) about one attempt: its answer, or none when it failed.
    fn observe(
        &self,
        method: &Method,
        response: Option<&reqwest::Response>,
        sent: Instant,
        retrying: bool,
    ) {
        if let Some(observer) = &self.observer {
            observer.observe(&Attempt {
                registry: &self.host,
                method,
                status: response.map(|r| r.status()),
                headers: response.map(|r| r.headers()),
                elapsed: sent.elapsed(),
                retrying,
            });
        }
    }

    /// Sends a request whose body is in memory. A streamed answer (a blob download) must start
    /// within the stall limit (its body is bounded chunk by chunk, [`Transport::body_stream`]);
    /// the answer to a commit may take [`Timeouts::commit_for`]; anything else has the
    /// whole-request limit.
    async fn bounded(
        &self,
        builder: reqwest::RequestBuilder,
        streaming_response: bool,
        commits: Option<u64>,
    ) -> Result<reqwest::Response> {
        let t = &self.timeouts;
        if streaming_response {
            return match tokio::time::timeout(t.stall, builder.send()).await {
                Ok(result) => result.map_err(|e| classify(&e)),
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the registry did not start answering within {:?} (the stall limit)",
                        t.stall
                    ),
                )),
            };
        }
        let limit = commits.map_or(t.request, |size| t.commit_for(size));
        match builder.timeout(limit).send().await {
            Ok(response) => Ok(response),
            Err(e) if e.is_timeout() && commits.is_some() => {
                Err(late_commit(limit, commits.unwrap_or_default()))
            }
            Err(e) => Err(classify(&e)),
        }
    }

    /// Sends a request with a streamed body of `len` bytes, watched while it runs: it fails
    /// when no byte moved for the stall limit, or when the answer does not come in time once
    /// the whole body is sent ([`Timeouts::commit_for`] for a commit, else the request limit).
    async fn upload(
        &self,
        builder: reqwest::RequestBuilder,
        stream: ByteStream,
        len: u64,
        commits: Option<u64>,
    ) -> Result<reqwest::Response> {
        let progress = Arc::new(BodyProgress::new());
        let seen = progress.clone();
        let mut inner = stream;
        let mut sent: u64 = 0;
        let watched = futures_util::stream::poll_fn(move |cx| {
            let next = inner.as_mut().poll_next(cx);
            if let Poll::Ready(item) = &next {
                // With a Content-Length, hyper stops asking once it has `len` bytes: the body is
                // complete then, without an end-of-stream poll.
                if let Some(Ok(chunk)) = item {
                    sent += chunk.len() as u64;
                }
                seen.moved(item.is_none() || sent >= len);
            }
            next
        });
        let builder = builder
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(watched));
        let t = &self.timeouts;
        let answer = commits.map_or(t.request, |size| t.commit_for(size));
        tokio::select! {
            result = builder.send() => result.map_err(|e| classify(&e)),
            error = progress.watch(t.stall, answer, len) => Err(error),
        }
    }

    /// The body of a streamed answer, failing when no byte arrives for the stall limit.
    pub(crate) fn body_stream(
        &self,
        response: reqwest::Response,
    ) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        let stall = self.timeouts.stall;
        let body = Box::pin(response.bytes_stream());
        futures_util::stream::unfold(Some(body), move |state| async move {
            let mut body = state?;
            match tokio::time::timeout(stall, body.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                Ok(Some(Err(e))) => Some((Err(classify(&e)), None)),
                Ok(None) => None,
                Err(_) => Some((Err(stalled(stall)), None)),
            }
        })
    }
}

/// When a streamed request body last moved, and whether it was sent whole.
struct BodyProgress {
    state: Mutex<(Instant, bool)>,
    /// Wakes the watcher when the body is complete, as its limit changes then.
    sent: Notify,
}

impl BodyProgress {
    fn new() -> Self {
        BodyProgress {
            state: Mutex::new((Instant::now(), false)),
            sent: Notify::new(),
        }
    }

    fn moved(&self, finished: bool) {
        if let Ok(mut state) = self.state.lock() {
            *state = (Instant::now(), finished);
        }
        if finished {
            self.sent.notify_one();
        }
    }

    /// Resolves with an error once the body stalled for `stall`, or once it was sent whole
    /// and `answer` passed; never resolves while things move in time.
    async fn watch(&self, stall: Duration, answer: Duration, len: u64) -> Error {
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

fn stalled(stall: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("the transfer stalled: no bytes moved for {stall:?} (native.stall-timeout)"),
    )
}

fn late_commit(limit: Duration, size: u64) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "the registry did not answer within {limit:?} after receiving the whole blob of {size} bytes (native.commit-timeout, plus its share per GiB)"
        ),
    )
}

/// The most redirects one request follows.
const MAX_REDIRECTS: usize = 10;

/// The redirects every HTTP client of dregsy follows: at most [`MAX_REDIRECTS`], never from
/// HTTPS down to plain HTTP (docs/behaviour.md, "HTTP").
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        match redirect_refusal(attempt.previous(), attempt.url()) {
            Some(why) => attempt.error(why),
            None => attempt.follow(),
        }
    })
}

/// Why a redirect to `next` must not be followed after the URLs `previous`, if it must not:
/// too many of them, or a step from HTTPS down to plain HTTP (which would expose the
/// request, and what a storage URL carries, on the network).
pub(crate) fn redirect_refusal(previous: &[Url], next: &Url) -> Option<String> {
    if previous.len() >= MAX_REDIRECTS {
        return Some(format!("more than {MAX_REDIRECTS} redirects"));
    }
    let from_https = previous.iter().any(|u| u.scheme() == "https");
    if from_https && next.scheme() != "https" {
        return Some(format!(
            "refused a redirect from HTTPS to {}://{}",
            next.scheme(),
            next.host_str().unwrap_or("")
        ));
    }
    None
}

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

/// A URL for logs: without its query, which may carry upload state.
pub(crate) fn redact(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// Turns a failed request into an error of the right kind, with the root cause as reason.
pub(crate) fn classify(e: &reqwest::Error) -> Error {
    // An upload whose body stream failed reports the stream's error (say, a digest
    // mismatch), not the broken request it caused.
    let mut current: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(err) = current {
        if let Some(ours) = err.downcast_ref::<Error>() {
            return ours.duplicate();
        }
        current = err.source();
    }
    let cause = root_cause(e);
    if let Some(tls) = find_rustls_error(e) {
        let hint = match tls {
            rustls::Error::InvalidCertificate(_) => {
                " (add the registry's CA as <certs-dir>/<host>/ca.crt, or set skip-tls-verify)"
            }
            rustls::Error::InvalidMessage(_) => {
                " (does the registry speak TLS? write the registry as http://host:port, or set skip-tls-verify)"
            }
            _ => "",
        };
        return Error::new(ErrorKind::Tls, format!("TLS handshake failed: {tls}{hint}"));
    }
    if e.is_timeout() || cause.contains("timed out") {
        return Error::new(
            ErrorKind::Timeout,
            format!("the registry did not answer in time ({cause})"),
        );
    }
    if e.is_connect() {
        if let Some(dns) = dns_failure(e) {
            // A name that does not resolve stays unresolved on a retry; a resolver that could
            // not answer may do better later.
            let kind = if dns.contains("Temporary failure") {
                ErrorKind::Unreachable
            } else {
                ErrorKind::UnknownHost
            };
            return Error::new(
                kind,
                format!("unknown host: the registry's name does not resolve ({dns})"),
            );
        }
        return Error::new(ErrorKind::Unreachable, format!("cannot connect: {cause}"));
    }
    if e.is_redirect() {
        return Error::new(ErrorKind::Protocol, format!("redirect failed: {cause}"));
    }
    if e.is_body() || e.is_request() || e.is_decode() {
        // Resets and truncated responses: the connection broke, which is worth retrying.
        return Error::new(
            ErrorKind::Network,
            format!("the connection failed: {cause}"),
        );
    }
    Error::new(ErrorKind::Network, format!("request failed: {cause}"))
}

/// The resolver's message, when a connection failed because the host name did not resolve.
fn dns_failure(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        // hyper's connector reports resolver failures as "dns error", caused by the resolver's
        // own error.
        if err.to_string().starts_with("dns error") {
            return Some(root_cause(err));
        }
        current = err.source();
    }
    None
}

/// The innermost error message; reqwest's own message repeats the URL and says little.
pub(crate) fn root_cause(e: &(dyn StdError + 'static)) -> String {
    let mut current: &(dyn StdError + 'static) = e;
    loop {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            current = inner;
            continue;
        }
        match current.source() {
            Some(next) => current = next,
            None => return current.to_string(),
        }
    }
}

fn find_rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            current = Some(inner);
            continue;
        }
        current = err.source();
    }
    None
}

/// Sets a header from text we built; invalid text (which would be our bug) is skipped.
pub(crate) fn header_value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn redirects_never_leave_https() {
        let https = Url::parse("https://r.io/v2/a/blobs/x").unwrap();
        let http = Url::parse("http://cdn.io/x").unwrap();
        let cdn = Url::parse("https://cdn.io/x").unwrap();
        assert_eq!(redirect_refusal(std::slice::from_ref(&https), &cdn), None);
        assert!(
            redirect_refusal(std::slice::from_ref(&https), &http)
                .unwrap()
                .contains("HTTPS")
        );
        assert!(redirect_refusal(&[https.clone(), cdn.clone()], &http).is_some());
        assert_eq!(redirect_refusal(std::slice::from_ref(&http), &cdn), None);
        assert_eq!(redirect_refusal(std::slice::from_ref(&http), &http), None);
        let many = vec![cdn.clone(); MAX_REDIRECTS];
        assert!(redirect_refusal(&many, &cdn).unwrap().contains("redirects"));
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
