//! HTTP to one registry host: connection pool, TLS, scheme choice, and sending a request
//! until it has its answer. Each of its jobs has its module: the one retry policy
//! ([`super::retry`]), time limits ([`super::timeouts`]), rate-limit pauses
//! ([`super::ratelimit`]), what the metrics see ([`super::observe`]), redirects
//! ([`super::redirect`]) and how failures are classified ([`super::classify`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use tokio::sync::OnceCell;

use super::classify::{classify, root_cause};
use super::digest::ByteStream;
use super::error::{Error, ErrorKind, Result};
use super::observe::{self, RequestObserver};
use super::ratelimit::{HostLimit, TooManyRequests, too_many_requests};
use super::redirect::redirect_policy;
use super::reference::{RegistryHost, Scheme};
use super::retry::{RetryPolicy, Tries, retry_after, retryable_status};
use super::timeouts::{BodyProgress, Timeouts, late_commit, stalled};

/// After this long without an answer, a request is worth one line in the log: a registry
/// that accepted the connection but does not answer looks like a hang otherwise.
const STILL_WAITING_AFTER: Duration = Duration::from_secs(10);

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

/// One attempt of a request, as the steps after it need it.
struct Sent<'a> {
    method: &'a Method,
    url: &'a Url,
    /// When it was sent.
    at: Instant,
    /// Whether the request can be sent again.
    replayable: bool,
    /// The request's budget of tries.
    tries: &'a Tries,
}

/// What [`Transport::send`] does after an attempt.
enum Next {
    /// Return this.
    Done(Result<reqwest::Response>),
    /// Send again at once (the host's pause is waited for first).
    Again,
    /// Send again after this delay.
    After(Duration),
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
    /// its [`Tries`] (the policy of [`super::retry`]); a 429 pauses the whole host first.
    /// Returns the final response whatever its status; statuses are for the caller to
    /// interpret.
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
            let sent = Instant::now();
            let outcome = self
                .attempt(
                    builder,
                    &mut body,
                    &method,
                    &url,
                    streaming_response,
                    commits,
                )
                .await;
            let attempt = Sent {
                method: &method,
                url: &url,
                at: sent,
                replayable,
                tries: &tries,
            };
            let next = match outcome {
                Ok(response) => self.after_answer(response, &attempt),
                Err(error) => self.after_failure(error, &attempt),
            };
            match next {
                Next::Done(result) => return result,
                Next::Again => {}
                Next::After(delay) => tokio::time::sleep(delay).await,
            }
        }
    }

    /// Sends one attempt of a request. An upload's answer comes once its body is sent, which
    /// may take long without anything being wrong: only requests with a body in memory are
    /// watched for a late answer. A streamed body is taken: it can be sent once.
    async fn attempt(
        &self,
        builder: reqwest::RequestBuilder,
        body: &mut Option<Body>,
        method: &Method,
        url: &Url,
        streaming_response: bool,
        commits: Option<u64>,
    ) -> Result<reqwest::Response> {
        match body {
            Some(Body::Bytes(bytes)) => {
                let builder = builder.body(bytes.clone());
                self.watched(
                    self.bounded(builder, streaming_response, commits),
                    method,
                    url,
                )
                .await
            }
            Some(Body::Empty) | None => {
                self.watched(
                    self.bounded(builder, streaming_response, commits),
                    method,
                    url,
                )
                .await
            }
            Some(Body::Stream(..)) => match body.take() {
                Some(Body::Stream(stream, len)) => self.upload(builder, stream, len, commits).await,
                _ => self.bounded(builder, streaming_response, commits).await,
            },
        }
    }

    /// What follows an answer: a 429 pauses the host (see [`too_many_requests`]); a retryable
    /// status of a replayable request is tried again after a delay from its budget; anything
    /// else is the answer.
    fn after_answer(&self, response: reqwest::Response, sent: &Sent<'_>) -> Next {
        if let Some(watch) = &self.client_cert {
            watch.answered.store(true, Ordering::Relaxed);
        }
        self.rate_limit.observe(response.headers());
        let status = response.status();
        let asked = retry_after(response.headers(), SystemTime::now());
        if status == StatusCode::TOO_MANY_REQUESTS {
            return self.after_too_many_requests(response, asked, sent);
        }
        let delay = if sent.replayable && retryable_status(status) {
            sent.tries.next_delay(asked)
        } else {
            None
        };
        self.observe(sent.method, Some(&response), sent.at, delay.is_some());
        let Some(delay) = delay else {
            return Next::Done(Ok(response));
        };
        tracing::debug!(method = %sent.method, url = %redact(sent.url), %status, ?delay, "retrying");
        Next::After(delay)
    }

    /// A 429: the host pauses, and the request is tried again, answered, or the host is done
    /// for the run.
    fn after_too_many_requests(
        &self,
        response: reqwest::Response,
        asked: Option<Duration>,
        sent: &Sent<'_>,
    ) -> Next {
        match too_many_requests(asked, sent.replayable, sent.tries, &self.retry) {
            TooManyRequests::Exhausted { why, wait } => {
                self.observe(sent.method, Some(&response), sent.at, false);
                Next::Done(Err(self.rate_limit.exhaust(why, wait)))
            }
            TooManyRequests::Answer { pause } => {
                self.rate_limit.pause(pause);
                self.observe(sent.method, Some(&response), sent.at, false);
                Next::Done(Ok(response))
            }
            TooManyRequests::Retry { delay } => {
                self.observe(sent.method, Some(&response), sent.at, true);
                self.rate_limit.pause(delay);
                let status = response.status();
                tracing::debug!(method = %sent.method, url = %redact(sent.url), %status, ?delay, "rate limited, pausing the host");
                Next::Again
            }
        }
    }

    /// What follows a failure without an answer: a transient one of a replayable request is
    /// tried again after a delay from its budget; anything else is the error.
    fn after_failure(&self, error: Error, sent: &Sent<'_>) -> Next {
        let error = self.explain(error);
        let delay = if sent.replayable && error.is_transient() {
            sent.tries.next_delay(None)
        } else {
            None
        };
        self.observe(sent.method, None, sent.at, delay.is_some());
        let Some(delay) = delay else {
            return Next::Done(Err(error));
        };
        tracing::debug!(method = %sent.method, url = %redact(sent.url), error = %error, ?delay, "retrying");
        Next::After(delay)
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
        observe::observe(
            self.observer.as_ref(),
            &self.host,
            method,
            response,
            sent,
            retrying,
        );
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

/// A URL for logs: without its query, which may carry upload state.
pub(crate) fn redact(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// Sets a header from text we built; invalid text (which would be our bug) is skipped.
pub(crate) fn header_value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}
