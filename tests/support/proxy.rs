//! A fault-injecting HTTP proxy in front of a harness registry: the failures real registries and
//! networks produce (5xx with Retry-After, corrupted or cut bodies, slow links, CDN redirects
//! for blobs), and what other registries and proxies are allowed to do (chunked answers without
//! `Content-Length`, relative `Location`s, slow answers to a completed upload, HTML error
//! pages), made reproducible on loopback.
//!
//! As a client's `HTTP_PROXY`, it sees requests in absolute form (`GET http://host:port/v2/…
//! HTTP/1.1`) and records the host each names. [`FaultProxy::start`] sends them all to its one
//! upstream (so a cloud host name reaches a local registry); [`FaultProxy::forward`] sends each
//! to the host it names, so a test can tell which process sent what.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use regex::Regex;

use super::http::{self, Body, BoxError, Server, respond};

/// Path pattern of blob GETs that [`Rule::redirect_blobs`] sends to the blob host.
const BLOB_PATH: &str = r"^/v2/.+/blobs/sha256:[0-9a-f]{64}$";

/// Headers that belong to one hop and are never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

#[derive(Clone, Debug)]
enum Fault {
    Fail {
        status: u16,
        retry_after: Option<u64>,
        challenge: Option<String>,
        body: Option<(String, String)>,
        headers: Vec<(String, String)>,
        html: bool,
    },
    Corrupt,
    Throttle {
        bytes_per_sec: u64,
    },
    Delay(Duration),
    CutAfter(u64),
    StallAfter(u64),
    RedirectBlobs,
    Header(&'static str, String),
    /// Docker Hub's pull limit: `ratelimit-*` headers on every matching answer, one unit of
    /// budget per matching GET, 429 once none is left.
    RateLimit {
        limit: u64,
        remaining: Arc<Mutex<u64>>,
        window: u64,
    },
    /// 413 to requests whose body is larger than this many bytes.
    MaxBody(u64),
    /// Replaces a response header (or removes it: `None`).
    SetHeader(&'static str, Option<String>),
    /// Answers with this status, headers and body, without forwarding.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    NoLength,
    RelativeLocation,
    DelayAnswer(Duration),
    NeverAnswer,
}

/// One fault: what to do, to which requests (method and path regex), and how many times.
/// Each rule counts the requests it acted on ([`FaultProxy::rule_hits`]).
#[derive(Clone, Debug)]
pub struct Rule {
    fault: Fault,
    method: Option<String>,
    path: Regex,
    times: Option<usize>,
}

impl Rule {
    fn new(fault: Fault, path: &str) -> Rule {
        Rule {
            fault,
            method: None,
            path: Regex::new(path)
                .unwrap_or_else(|error| panic!("bad proxy rule regex {path:?}: {error}")),
            times: None,
        }
    }

    /// Answers the first `times` requests with `method` (`*` or empty: any) whose path and query
    /// match `path` with `status`, without forwarding them.
    pub fn fail(method: &str, path: &str, times: usize, status: u16) -> Rule {
        Rule::new(
            Fault::Fail {
                status,
                retry_after: None,
                challenge: None,
                body: None,
                headers: Vec::new(),
                html: false,
            },
            path,
        )
        .method(method)
        .times(times)
    }

    /// For a [`Rule::fail`]: also send `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Rule {
        if let Fault::Fail { retry_after, .. } = &mut self.fault {
            *retry_after = Some(secs);
        }
        self
    }

    /// For a [`Rule::fail`]: also send `WWW-Authenticate: challenge`, as a registry refusing
    /// an expired token does.
    pub fn www_authenticate(mut self, value: &str) -> Rule {
        if let Fault::Fail { challenge, .. } = &mut self.fault {
            *challenge = Some(value.to_string());
        }
        self
    }

    /// For a [`Rule::fail`]: answer with this body and `Content-Type` instead of the
    /// distribution API's error JSON (a token service's own refusal, say).
    pub fn body(mut self, content_type: &str, text: &str) -> Rule {
        if let Fault::Fail { body, .. } = &mut self.fault {
            *body = Some((content_type.to_string(), text.to_string()));
        }
        self
    }

    /// For a [`Rule::fail`]: answer with an HTML page instead of the distribution API's error
    /// JSON, as proxies and load balancers in front of registries do.
    pub fn html(mut self) -> Rule {
        if let Fault::Fail { html, .. } = &mut self.fault {
            *html = true;
        }
        self
    }

    /// For a [`Rule::fail`]: also send the header `name: value` (`ratelimit-remaining`, say).
    pub fn with_header(mut self, name: &str, value: &str) -> Rule {
        if let Fault::Fail { headers, .. } = &mut self.fault {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// Removes `Content-Length` from forwarded answers matching `path`: bodies then go
    /// `Transfer-Encoding: chunked`, and HEAD answers carry no payload headers (HTTP/1.1 allows
    /// both; proxies and some registries do it).
    pub fn no_content_length(path: &str) -> Rule {
        Rule::new(Fault::NoLength, path)
    }

    /// Rewrites the `Location` of forwarded answers matching `path` to a relative reference
    /// (path and query only), as registries are allowed to send it.
    pub fn relative_location(path: &str) -> Rule {
        Rule::new(Fault::RelativeLocation, path)
    }

    /// Forwards requests with `method` matching `path`, then holds the answer back for
    /// `latency`: a registry moving a completed upload into place before it answers.
    pub fn delay_answer(method: &str, path: &str, latency: Duration) -> Rule {
        Rule::new(Fault::DelayAnswer(latency), path).method(method)
    }

    /// Reads the whole request with `method` matching `path`, never forwards it and never
    /// answers: a registry that hangs after receiving an upload.
    pub fn never_answer(method: &str, path: &str) -> Rule {
        Rule::new(Fault::NeverAnswer, path).method(method)
    }

    /// Flips one byte in the body of successful responses matching `path` ("blob bytes do not
    /// match the digest"); every matching response unless limited with [`Rule::times`].
    pub fn corrupt(path: &str) -> Rule {
        Rule::new(Fault::Corrupt, path)
    }

    /// Limits response bodies matching `path` to `bytes_per_sec` (per response).
    pub fn throttle(path: &str, bytes_per_sec: u64) -> Rule {
        Rule::new(Fault::Throttle { bytes_per_sec }, path)
    }

    /// Adds `latency` before forwarding each request matching `path` (a far-away registry).
    pub fn delay(path: &str, latency: Duration) -> Rule {
        Rule::new(Fault::Delay(latency), path)
    }

    /// Drops the connection after `bytes` body bytes of successful responses matching `path`.
    pub fn cut_after(path: &str, bytes: u64) -> Rule {
        Rule::new(Fault::CutAfter(bytes), path)
    }

    /// Stops sending (without closing the connection) after `bytes` body bytes of successful
    /// responses matching `path`: a stalled transfer.
    pub fn stall_after(path: &str, bytes: u64) -> Rule {
        Rule::new(Fault::StallAfter(bytes), path)
    }

    /// Answers blob GETs with a 307 to the proxy's blob host, which serves the bytes (fetched
    /// from upstream itself) and records the headers it got, as CDNs behind registries do.
    pub fn redirect_blobs() -> Rule {
        Rule::new(Fault::RedirectBlobs, BLOB_PATH).method("GET")
    }

    /// Adds the response header `name: value` to forwarded responses matching `path`, as
    /// registries with their own demands do (`OCI-Chunk-Min-Length`, say).
    pub fn header(path: &str, name: &'static str, value: &str) -> Rule {
        Rule::new(Fault::Header(name, value.to_string()), path)
    }

    /// A registry with Docker Hub's pull limit on requests matching `path`: every answer
    /// carries `ratelimit-limit: LIMIT;w=WINDOW` and `ratelimit-remaining: N;w=WINDOW`; each
    /// GET costs one of the `remaining` requests (HEADs are free, as on Docker Hub), and a GET
    /// with none left is answered 429 without being forwarded.
    pub fn rate_limit(path: &str, limit: u64, remaining: u64, window: u64) -> Rule {
        Rule::new(
            Fault::RateLimit {
                limit,
                remaining: Arc::new(Mutex::new(remaining)),
                window,
            },
            path,
        )
    }

    /// Answers 413 Payload Too Large, without forwarding, to requests matching `path` whose
    /// `Content-Length` exceeds `bytes` (a proxy limiting request bodies, such as nginx's
    /// `client_max_body_size`).
    pub fn max_body(path: &str, bytes: u64) -> Rule {
        Rule::new(Fault::MaxBody(bytes), path)
    }

    /// Replaces the response header `name` of forwarded responses matching `path` with
    /// `value`, as registries and proxies that answer a manifest HEAD with a generic
    /// `Content-Type` do; combine with [`Rule::method`].
    pub fn set_header(path: &str, name: &'static str, value: &str) -> Rule {
        Rule::new(Fault::SetHeader(name, Some(value.to_string())), path)
    }

    /// Removes the response header `name` from forwarded responses matching `path`.
    pub fn remove_header(path: &str, name: &'static str) -> Rule {
        Rule::new(Fault::SetHeader(name, None), path)
    }

    /// Answers requests with `method` matching `path` with `status`, `headers` and `body`,
    /// without forwarding them: an HTML login page, a manifest cut short, other bytes than
    /// the digest names.
    pub fn respond(
        method: &str,
        path: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Rule {
        Rule::new(
            Fault::Respond {
                status,
                headers: headers
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_string()))
                    .collect(),
                body: body.into(),
            },
            path,
        )
        .method(method)
    }

    /// Restricts the rule to one HTTP method (`*` or empty: any).
    pub fn method(mut self, method: &str) -> Rule {
        self.method = match method {
            "" | "*" => None,
            other => Some(other.to_ascii_uppercase()),
        };
        self
    }

    /// Acts on the first `times` matching requests only.
    pub fn times(mut self, times: usize) -> Rule {
        self.times = Some(times);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|wanted| wanted == method) && self.path.is_match(path)
    }
}

/// A request the proxy answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyRequest {
    /// HTTP method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Status the client got.
    pub status: u16,
    /// Whether the request carried an Authorization header.
    pub authorization: bool,
    /// When the proxy received it.
    pub arrived: Instant,
    /// When the proxy answered it.
    pub answered: Instant,
    /// `host:port` of an absolute-form request (the proxy used as a forward proxy); `None`
    /// for requests to the proxy's own upstream.
    pub host: Option<String>,
}

/// A request the blob host received after a redirect.
#[derive(Clone, Debug)]
pub struct BlobHostRequest {
    /// Path with query, as requested on the blob host.
    pub path: String,
    /// The original blob path on the registry.
    pub blob_path: String,
    /// Every header received (lowercase names).
    pub headers: Vec<(String, String)>,
}

struct State {
    upstream: String,
    /// Send absolute-form requests to the host they name instead of `upstream`.
    follow_absolute: bool,
    client: reqwest::Client,
    rules: Vec<Rule>,
    /// Per rule: how many times it may still act (None: unlimited) and how often it did.
    counters: Mutex<Vec<(Option<usize>, usize)>>,
    requests: Mutex<Vec<ProxyRequest>>,
    self_url: OnceLock<String>,
    blob_host_url: OnceLock<String>,
    /// Redirect id → (blob path, Authorization the client sent to the registry).
    redirects: Mutex<HashMap<String, (String, Option<String>)>>,
    blob_host_requests: Mutex<Vec<BlobHostRequest>>,
}

impl State {
    /// If rule `index` applies to this request and has uses left, uses it up once.
    fn take(&self, index: usize, method: &str, path: &str) -> bool {
        if !self.rules[index].matches(method, path) {
            return false;
        }
        let mut counters = self.counters.lock().expect("proxy counters lock");
        let (remaining, hits) = &mut counters[index];
        match remaining {
            Some(0) => return false,
            Some(left) => *left -= 1,
            None => {}
        }
        *hits += 1;
        true
    }

    fn record(&self, request: (&str, &str, Option<&str>), status: u16, authorization: bool) {
        self.record_arrived(request, status, authorization, Instant::now());
    }

    fn record_arrived(
        &self,
        request: (&str, &str, Option<&str>),
        status: u16,
        authorization: bool,
        arrived: Instant,
    ) {
        let (method, path, host) = request;
        self.requests
            .lock()
            .expect("proxy request log lock")
            .push(ProxyRequest {
                method: method.to_string(),
                path: path.to_string(),
                status,
                authorization,
                arrived,
                answered: Instant::now(),
                host: host.map(str::to_string),
            });
    }
}

/// The running proxy (and its blob host); stops when dropped.
pub struct FaultProxy {
    server: Server,
    blob_host: Server,
    state: Arc<State>,
}

impl FaultProxy {
    /// Starts a plain-HTTP proxy on a free 127.0.0.1 port forwarding to `upstream_url`
    /// (e.g. `registry.url()`; an HTTPS upstream's certificate is not verified).
    pub fn start(upstream_url: &str, rules: Vec<Rule>) -> FaultProxy {
        FaultProxy::launch(upstream_url, rules, false)
    }

    fn launch(upstream_url: &str, rules: Vec<Rule>, follow_absolute: bool) -> FaultProxy {
        let client = dregsy::http_client::builder()
            .connect_timeout(http::CONNECT_TIMEOUT)
            .read_timeout(http::READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .tls_danger_accept_invalid_certs(true)
            .build()
            .expect("build the proxy's upstream client");
        let state = Arc::new(State {
            upstream: upstream_url.trim_end_matches('/').to_string(),
            follow_absolute,
            client,
            counters: Mutex::new(rules.iter().map(|rule| (rule.times, 0)).collect()),
            rules,
            requests: Mutex::new(Vec::new()),
            self_url: OnceLock::new(),
            blob_host_url: OnceLock::new(),
            redirects: Mutex::new(HashMap::new()),
            blob_host_requests: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        let server = Server::start("fault-proxy", move |request| {
            let state = shared.clone();
            async move { proxy(&state, request).await }
        });
        let shared = state.clone();
        let blob_host = Server::start("fault-proxy-blob-host", move |request| {
            let state = shared.clone();
            async move { serve_blob(&state, request).await }
        });
        let _ = state.self_url.set(server.url());
        let _ = state.blob_host_url.set(blob_host.url());
        FaultProxy {
            server,
            blob_host,
            state,
        }
    }

    /// A forward proxy only, for a client's `HTTP_PROXY`: each request goes to the host it
    /// names, and [`ProxyRequest::host`] records it. A request not in absolute form fails (502).
    pub fn forward() -> FaultProxy {
        // The discard port: nothing listens there, so a stray origin-form request fails.
        FaultProxy::launch("http://127.0.0.1:9", Vec::new(), true)
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `127.0.0.1:PORT` of the proxy: the registry part of image references through it.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// `http://127.0.0.1:PORT` of the blob host that redirected blob GETs go to.
    pub fn blob_host_url(&self) -> String {
        self.blob_host.url()
    }

    /// Every request the proxy answered so far (not those to the blob host).
    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.state
            .requests
            .lock()
            .expect("proxy request log lock")
            .clone()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        self.state
            .requests
            .lock()
            .expect("proxy request log lock")
            .clear();
    }

    /// How many requests rule `index` (its position in `rules`) acted on.
    pub fn rule_hits(&self, index: usize) -> usize {
        self.state.counters.lock().expect("proxy counters lock")[index].1
    }

    /// Every request the blob host received.
    pub fn blob_host_requests(&self) -> Vec<BlobHostRequest> {
        self.state
            .blob_host_requests
            .lock()
            .expect("blob host log lock")
            .clone()
    }

    /// Whether any request to the blob host carried an Authorization header (clients must not
    /// send registry credentials to another host).
    pub fn blob_host_saw_authorization(&self) -> bool {
        self.blob_host_requests().iter().any(|request| {
            request
                .headers
                .iter()
                .any(|(name, _)| name == "authorization")
        })
    }
}

async fn proxy(state: &State, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let authorization = request.headers().get(hyper::header::AUTHORIZATION).cloned();
    let arrived = Instant::now();
    // An absolute-form request names a host (the proxy is the client's HTTP_PROXY).
    let host = request.uri().authority().map(|a| a.to_string());
    let upstream_url = match (state.follow_absolute, request.uri().scheme_str(), &host) {
        (true, Some(scheme), Some(host)) => format!("{scheme}://{host}"),
        _ => state.upstream.clone(),
    };
    let seen = (method.as_str(), path.as_str(), host.as_deref());

    for (index, rule) in state.rules.iter().enumerate() {
        if let Fault::MaxBody(limit) = rule.fault
            && let Some(length) = request
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok())
            && length > limit
            && state.take(index, &method, &path)
        {
            state.record_arrived(seen, 413, authorization.is_some(), arrived);
            // The body is read and dropped first, as nginx's lingering close does: a server
            // that closes with a request body unread resets the connection, and the client
            // may lose the 413 it was sent.
            let mut body = request.into_body();
            while let Some(Ok(_)) = body.frame().await {}
            return respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/html",
                "<html><body><h1>413 Request Entity Too Large</h1></body></html>",
            );
        }
    }
    let mut rate_limit_headers: Vec<(&'static str, String)> = Vec::new();
    for (index, rule) in state.rules.iter().enumerate() {
        if let Fault::RateLimit {
            limit,
            ref remaining,
            window,
        } = rule.fault
            && state.take(index, &method, &path)
        {
            let mut left = remaining.lock().expect("rate limit lock");
            let refused = method == "GET" && *left == 0;
            if method == "GET" && *left > 0 {
                *left -= 1;
            }
            rate_limit_headers.push(("ratelimit-limit", format!("{limit};w={window}")));
            rate_limit_headers.push(("ratelimit-remaining", format!("{};w={window}", *left)));
            if refused {
                let mut response = respond(
                    StatusCode::TOO_MANY_REQUESTS,
                    "application/json",
                    r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#,
                );
                for (name, value) in &rate_limit_headers {
                    if let Ok(value) = value.parse() {
                        response.headers_mut().insert(*name, value);
                    }
                }
                state.record_arrived(seen, 429, authorization.is_some(), arrived);
                return response;
            }
        }
    }

    for (index, rule) in state.rules.iter().enumerate() {
        if let Fault::Delay(latency) = rule.fault
            && state.take(index, &method, &path)
        {
            tokio::time::sleep(latency).await;
        }
    }
    for (index, rule) in state.rules.iter().enumerate() {
        if matches!(rule.fault, Fault::NeverAnswer) && state.take(index, &method, &path) {
            let (_, body) = request.into_parts();
            let _ = body.collect().await;
            state.record(seen, 0, authorization.is_some());
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return respond(StatusCode::GATEWAY_TIMEOUT, "text/plain", "");
        }
    }
    for (index, rule) in state.rules.iter().enumerate() {
        if let Fault::Fail {
            status,
            retry_after,
            ref challenge,
            ref body,
            ref headers,
            html,
        } = rule.fault
            && state.take(index, &method, &path)
        {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut response = match body.clone() {
                Some((content_type, body)) => respond(status, &content_type, body),
                None if html => {
                    let body = format!(
                        "<html><head><title>{status}</title></head><body><h1>{status}</h1><hr>nginx</body></html>"
                    );
                    respond(status, "text/html", body)
                }
                None => {
                    let body = format!(
                        r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected by the test proxy ({status})"}}]}}"#
                    );
                    respond(status, "application/json", body)
                }
            };
            if let Some(secs) = retry_after
                && let Ok(value) = secs.to_string().parse()
            {
                response
                    .headers_mut()
                    .insert(hyper::header::RETRY_AFTER, value);
            }
            for (name, value) in headers {
                if let (Ok(name), Ok(value)) = (
                    hyper::header::HeaderName::from_bytes(name.as_bytes()),
                    value.parse(),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            if let Some(value) = challenge.as_deref().and_then(|c| c.parse().ok()) {
                response
                    .headers_mut()
                    .insert(hyper::header::WWW_AUTHENTICATE, value);
            }
            state.record_arrived(seen, status.as_u16(), authorization.is_some(), arrived);
            return response;
        }
    }
    for (index, rule) in state.rules.iter().enumerate() {
        if let Fault::Respond {
            status,
            ref headers,
            ref body,
        } = rule.fault
            && state.take(index, &method, &path)
        {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut builder = Response::builder().status(status);
            for (name, value) in headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            let body = if method == "HEAD" {
                Bytes::new()
            } else {
                body.clone()
            };
            state.record(seen, status.as_u16(), authorization.is_some());
            return builder.body(http::full(body)).unwrap_or_else(|error| {
                respond(
                    StatusCode::BAD_GATEWAY,
                    "text/plain",
                    format!("proxy could not build the response: {error}"),
                )
            });
        }
    }
    for (index, rule) in state.rules.iter().enumerate() {
        if matches!(rule.fault, Fault::RedirectBlobs) && state.take(index, &method, &path) {
            let id = format!("{:032x}", fastrand::u128(..));
            let auth = authorization
                .as_ref()
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            state
                .redirects
                .lock()
                .expect("redirect table lock")
                .insert(id.clone(), (path.clone(), auth));
            let base = state.blob_host_url.get().cloned().unwrap_or_default();
            let mut response = respond(StatusCode::TEMPORARY_REDIRECT, "text/plain", "");
            if let Ok(value) = format!("{base}/cdn/{id}?expires=never").parse() {
                response
                    .headers_mut()
                    .insert(hyper::header::LOCATION, value);
            }
            state.record(seen, 307, authorization.is_some());
            return response;
        }
    }

    let (parts, body) = request.into_parts();
    let method_value = parts.method.clone();
    let mut upstream = state
        .client
        .request(method_value, format!("{upstream_url}{path}"));
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let has_body = parts.headers.contains_key(hyper::header::TRANSFER_ENCODING)
        || parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|len| len != "0");
    if has_body {
        upstream = upstream.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let response = match upstream.send().await {
        Ok(response) => response,
        Err(error) => {
            state.record(seen, 502, authorization.is_some());
            return respond(
                StatusCode::BAD_GATEWAY,
                "text/plain",
                format!("upstream: {error}"),
            );
        }
    };
    let status = response.status().as_u16();
    state.record_arrived(seen, status, authorization.is_some(), arrived);
    for (index, rule) in state.rules.iter().enumerate() {
        if let Fault::DelayAnswer(latency) = rule.fault
            && state.take(index, &method, &path)
        {
            tokio::time::sleep(latency).await;
        }
    }
    let mut response = relay_response(state, &method, &path, response, true);
    for (name, value) in rate_limit_headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The blob host: serves `/cdn/<id>` by fetching the redirected blob from upstream itself.
async fn serve_blob(state: &State, request: Request<Incoming>) -> Response<Body> {
    let path = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_default();
    let id = request
        .uri()
        .path()
        .strip_prefix("/cdn/")
        .unwrap_or_default()
        .to_string();
    let target = state
        .redirects
        .lock()
        .expect("redirect table lock")
        .get(&id)
        .cloned();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    state
        .blob_host_requests
        .lock()
        .expect("blob host log lock")
        .push(BlobHostRequest {
            path,
            blob_path: target
                .as_ref()
                .map(|(blob, _)| blob.clone())
                .unwrap_or_default(),
            headers,
        });
    let Some((blob_path, auth)) = target else {
        return respond(StatusCode::NOT_FOUND, "text/plain", "unknown blob link");
    };
    let mut upstream = state.client.get(format!("{}{blob_path}", state.upstream));
    if let Some(auth) = auth {
        upstream = upstream.header(hyper::header::AUTHORIZATION, auth);
    }
    if let Some(range) = request.headers().get(hyper::header::RANGE) {
        upstream = upstream.header(hyper::header::RANGE, range);
    }
    match upstream.send().await {
        Ok(response) => relay_response(state, "GET", &blob_path, response, false),
        Err(error) => respond(
            StatusCode::BAD_GATEWAY,
            "text/plain",
            format!("upstream: {error}"),
        ),
    }
}

/// Turns an upstream response into the client's, rewriting upstream `Location`s to the proxy
/// (when `rewrite_location`) and applying body faults.
fn relay_response(
    state: &State,
    method: &str,
    path: &str,
    response: reqwest::Response,
    rewrite_location: bool,
) -> Response<Body> {
    let status = response.status();
    let mut builder = Response::builder().status(status.as_u16());
    let mut replaced: Vec<(&'static str, Option<String>)> = Vec::new();
    let mut drop_length = false;
    let mut relative_location = false;
    for (index, rule) in state.rules.iter().enumerate() {
        match &rule.fault {
            Fault::SetHeader(name, value) if state.take(index, method, path) => {
                replaced.push((name, value.clone()))
            }
            Fault::NoLength if state.take(index, method, path) => drop_length = true,
            Fault::RelativeLocation if state.take(index, method, path) => relative_location = true,
            _ => {}
        }
    }
    for (name, value) in response.headers() {
        if HOP_BY_HOP.contains(&name.as_str())
            || replaced
                .iter()
                .any(|(replaced, _)| name.as_str().eq_ignore_ascii_case(replaced))
            || (drop_length && name == reqwest::header::CONTENT_LENGTH)
        {
            continue;
        }
        if relative_location
            && name == reqwest::header::LOCATION
            && let Ok(location) = value.to_str()
            && let Ok(url) = reqwest::Url::parse(location)
        {
            let relative = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_string(),
            };
            builder = builder.header(name, relative);
            continue;
        }
        if rewrite_location
            && name == reqwest::header::LOCATION
            && let Ok(location) = value.to_str()
            && let Some(rest) = location.strip_prefix(&state.upstream)
        {
            let own = state.self_url.get().cloned().unwrap_or_default();
            builder = builder.header(name, format!("{own}{rest}"));
            continue;
        }
        builder = builder.header(name, value);
    }
    for (index, rule) in state.rules.iter().enumerate() {
        if let Fault::Header(name, value) = &rule.fault
            && state.take(index, method, path)
        {
            builder = builder.header(*name, value.as_str());
        }
    }
    for (name, value) in replaced {
        if let Some(value) = value {
            builder = builder.header(name, value);
        }
    }

    let mut faults = BodyFaults::default();
    for (index, rule) in state.rules.iter().enumerate() {
        let applies_to_success = status.is_success();
        match rule.fault {
            Fault::Corrupt if applies_to_success && state.take(index, method, path) => {
                faults.corrupt = true
            }
            Fault::CutAfter(bytes) if applies_to_success && state.take(index, method, path) => {
                faults.cut_after = Some(bytes)
            }
            Fault::StallAfter(bytes) if applies_to_success && state.take(index, method, path) => {
                faults.stall_after = Some(bytes)
            }
            Fault::Throttle { bytes_per_sec } if state.take(index, method, path) => {
                faults.bytes_per_sec = Some(bytes_per_sec.max(1))
            }
            _ => {}
        }
    }
    let body = faulty_body(Box::pin(response.bytes_stream()), faults);
    builder.body(body).unwrap_or_else(|error| {
        respond(
            StatusCode::BAD_GATEWAY,
            "text/plain",
            format!("proxy could not build the response: {error}"),
        )
    })
}

#[derive(Clone, Copy, Debug, Default)]
struct BodyFaults {
    corrupt: bool,
    cut_after: Option<u64>,
    stall_after: Option<u64>,
    bytes_per_sec: Option<u64>,
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

struct BodyState {
    upstream: ByteStream,
    faults: BodyFaults,
    pending: Option<Bytes>,
    sent: u64,
    done: bool,
}

/// Streams `upstream` to the client, flipping a byte, throttling or cutting as asked.
fn faulty_body(upstream: ByteStream, faults: BodyFaults) -> Body {
    let state = BodyState {
        upstream,
        faults,
        pending: None,
        sent: 0,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        if let Some(limit) = state.faults.cut_after
            && state.sent >= limit
        {
            state.done = true;
            // Let the server flush the headers and the bytes so far, so the client sees a
            // response that breaks off mid-body rather than no response at all.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let error: BoxError = "connection cut by the test proxy".into();
            return Some((Err(error), state));
        }
        if let Some(limit) = state.faults.stall_after
            && state.sent >= limit
        {
            // Hold the connection open without sending: the client must notice on its own.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let mut chunk = match state.pending.take() {
            Some(chunk) => chunk,
            None => match state.upstream.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(error)) => {
                    state.done = true;
                    return Some((Err(BoxError::from(error)), state));
                }
                None => return None,
            },
        };
        if state.faults.corrupt && !chunk.is_empty() {
            let mut bytes = BytesMut::from(&chunk[..]);
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xFF;
            chunk = bytes.freeze();
            state.faults.corrupt = false;
        }
        if let Some(limit) = state.faults.cut_after.or(state.faults.stall_after) {
            let allowed = (limit - state.sent) as usize;
            if chunk.len() > allowed {
                chunk.truncate(allowed);
            }
        }
        if let Some(rate) = state.faults.bytes_per_sec {
            // Send at most a tenth of a second's worth at a time, then wait for it.
            let slice = ((rate / 10).max(1) as usize).min(64 * 1024);
            if chunk.len() > slice {
                state.pending = Some(chunk.split_off(slice));
            }
            tokio::time::sleep(Duration::from_secs_f64(chunk.len() as f64 / rate as f64)).await;
        }
        state.sent += chunk.len() as u64;
        Some((Ok(Frame::data(chunk)), state))
    });
    BodyExt::boxed_unsync(StreamBody::new(stream))
}
