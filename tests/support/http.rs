//! Plumbing shared by the other support files: running async code from synchronous tests,
//! building HTTP clients, and running small HTTP servers on background threads.

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// The error type of response bodies, so one body type fits buffered and streamed responses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body type of every harness server: buffered or streamed bytes.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Connect timeout of every harness client: loopback connects are instant, so a slow one is a bug.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Read timeout of every harness client: bounds a stalled response without capping big transfers.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The User-Agent of harness clients, so access logs can tell harness traffic from the code under test.
pub const HARNESS_USER_AGENT: &str = "dregsy-test-harness";

/// Runs `fut` to completion on a dedicated thread with its own tokio runtime.
///
/// The harness API is synchronous; doing the async work on a separate thread means it can be
/// called from plain `#[test]`s and from inside `#[tokio::test]`s alike (no "runtime within
/// runtime" panic). A panic inside `fut` is propagated to the caller.
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a tokio runtime for a harness call");
            runtime.block_on(fut)
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// TLS material a harness client may need to talk to a harness registry.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// PEM of the CA to trust *instead of* the system roots (None: system roots only).
    pub ca_pem: Option<String>,
    /// PEM of a client certificate followed by its private key, for mTLS.
    pub identity_pem: Option<String>,
}

/// Builds a reqwest client with the harness's timeouts, user agent and no redirect following,
/// so callers see registry answers (401s, 307s) exactly as sent.
pub fn client(tls: &ClientTls) -> reqwest::Client {
    client_builder(tls)
        .build()
        .expect("build a reqwest client for the harness")
}

/// Like [`client`], but returns the builder so a test can adjust it (e.g. follow redirects).
pub fn client_builder(tls: &ClientTls) -> reqwest::ClientBuilder {
    let mut builder = dregsy::http_client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(HARNESS_USER_AGENT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = &tls.ca_pem {
        let cert = reqwest::Certificate::from_pem(ca.as_bytes()).expect("parse the test CA PEM");
        builder = builder.tls_certs_only([cert]);
    }
    if let Some(identity) = &tls.identity_pem {
        let identity = reqwest::Identity::from_pem(identity.as_bytes())
            .expect("parse the test client certificate and key PEM");
        builder = builder.identity(identity);
    }
    builder
}

/// Finds a currently free port on 127.0.0.1 for a child process that must be told its port.
///
/// There is a small window in which another process may take it; callers that start a child
/// process retry with a new port when it fails to bind.
pub fn free_port() -> u16 {
    let listener =
        StdTcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener
        .local_addr()
        .expect("read the local address of a probe listener")
        .port()
}

/// A buffered response body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty response body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response with a status, a content type and a buffered body: most harness answers.
pub fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// An HTTP/1 server on a free 127.0.0.1 port, running on its own thread and runtime.
///
/// Harness servers (token issuer, proxy, blob host) must keep serving while a test blocks on a
/// child process, and must go away with the test: dropping the `Server` stops it.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `handler` for every request; `name` names the thread (seen in panics).
    pub fn start<H, Fut>(name: &str, handler: H) -> Server
    where
        H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener =
            StdTcpListener::bind("127.0.0.1:0").expect("bind a harness server to 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("make the harness server listener non-blocking");
        let addr = listener
            .local_addr()
            .expect("read the harness server address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let handler = Arc::new(handler);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("build the runtime of a harness server");
                runtime.block_on(accept_loop(listener, handler, stopped));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn a harness server thread");
        Server {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop<H, Fut>(
    listener: StdTcpListener,
    handler: Arc<H>,
    mut stopped: oneshot::Receiver<()>,
) where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("register the harness server listener");
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

/// Splits a query string (or an `application/x-www-form-urlencoded` body) into decoded pairs.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    match reqwest::Url::parse(&format!("http://query.invalid/?{query}")) {
        Ok(url) => url
            .query_pairs()
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `sha256:<hex>` of `bytes`: the OCI digest form.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, bytes);
    format!("sha256:{}", hex(hash.as_ref()))
}

/// One plain HTTP/1.0 request on a fresh connection to `address` (`host:port`), for probing
/// servers from synchronous tests without a client library: status, header block and body, or
/// `None` when nothing accepts or answers. HTTP/1.0 keeps bodies unchunked.
pub fn get_raw(address: &str, method: &str, path: &str) -> Option<(u16, String, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Some((status, head.to_string(), body.to_string()))
}
