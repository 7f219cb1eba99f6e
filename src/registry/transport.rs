//! HTTP to one registry host: connection pool, TLS, scheme choice, timeouts and retries.
//!
//! Retries live here and nowhere else, invisible to callers: a request whose body can be sent
//! again is retried on connection failures, resets, timeouts, 408, 429 and 5xx, with
//! exponential backoff and jitter, honouring `Retry-After`. Streamed uploads cannot be
//! replayed; their failures go up to the copy engine, which can retry the whole blob.

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::Either;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use tokio::sync::OnceCell;

use super::digest::ByteStream;
use super::error::{Error, ErrorKind, Result};
use super::reference::{RegistryHost, Scheme};

/// How long to wait for the network. Every request has a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a TCP connection and finish the TLS handshake.
    pub connect: Duration,
    /// Without receiving any data on a response, streamed or not; catches stalled transfers
    /// of any size.
    pub read_idle: Duration,
    /// For a whole request whose body is not streamed (manifests, tokens, lists).
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(15),
            read_idle: Duration::from_secs(60),
            request: Duration::from_secs(120),
        }
    }
}

/// How transient failures are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times a request is tried in all (1 = no retry).
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
    /// Whether the response body is streamed to the caller, so the total-time bound must not apply.
    pub streaming_response: bool,
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
}

impl Transport {
    pub(crate) fn new(
        host: RegistryHost,
        tls: rustls::ClientConfig,
        skip_tls_verify: bool,
        timeouts: Timeouts,
        retry: RetryPolicy,
    ) -> Result<Transport> {
        let client = crate::http_client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read_idle)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("dregsy/", env!("CARGO_PKG_VERSION")))
            // Blob GETs are redirected to storage hosts; reqwest drops `Authorization` when a
            // redirect leaves the host (see the redirect test), so following is safe.
            .redirect(reqwest::redirect::Policy::limited(10))
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
        })
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
                    Err(e) => Err(classify(&e)),
                }
            })
            .await
            .copied()
    }

    /// Sends `request`, retrying transient failures when the request can be replayed. Returns
    /// the final response whatever its status; statuses are for the caller to interpret.
    pub(crate) async fn send(&self, request: Request) -> Result<reqwest::Response> {
        let replayable = request.replayable();
        let max_tries = if replayable {
            self.retry.max_tries.max(1)
        } else {
            1
        };
        let Request {
            method,
            url,
            headers,
            body,
            streaming_response,
            ..
        } = request;
        let mut body = Some(body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if !streaming_response && !matches!(body, Some(Body::Stream(..))) {
                builder = builder.timeout(self.timeouts.request);
            }
            builder = match &body {
                Some(Body::Bytes(bytes)) => builder.body(bytes.clone()),
                Some(Body::Empty) | None => builder,
                Some(Body::Stream(..)) => match body.take() {
                    Some(Body::Stream(stream, len)) => builder
                        .header(reqwest::header::CONTENT_LENGTH, len)
                        .body(reqwest::Body::wrap_stream(stream)),
                    _ => builder,
                },
            };
            let last = attempt >= max_tries;
            match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    if last || !retryable_status(status) {
                        return Ok(response);
                    }
                    let delay = retry_after(response.headers(), SystemTime::now())
                        .map(|d| d.min(self.retry.max_retry_after))
                        .unwrap_or_else(|| self.backoff(attempt));
                    tracing::debug!(%method, url = %redact(&url), %status, attempt, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    let error = classify(&e);
                    if last || !error.is_transient() {
                        return Err(error);
                    }
                    let delay = self.backoff(attempt);
                    tracing::debug!(%method, url = %redact(&url), error = %error, attempt, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Exponential backoff with jitter: base·2^(attempt-1), capped, scaled by 50–100 %.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.retry.max_delay);
        capped.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

fn retryable_status(status: StatusCode) -> bool {
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
        let t = Transport::new(
            RegistryHost::parse("127.0.0.1:1").unwrap(),
            super::super::tls::client_config(None, false).unwrap(),
            false,
            Timeouts::default(),
            RetryPolicy {
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_millis(500),
                ..RetryPolicy::default()
            },
        )
        .unwrap();
        let first = t.backoff(1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let third = t.backoff(3);
        assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
        assert!(t.backoff(30) <= Duration::from_millis(500));
    }
}
