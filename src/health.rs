//! The health endpoint for Kubernetes probes and people (off unless `-health` or
//! `health.listen` asks for it):
//!
//! - `GET /healthz`: 200 while the process is alive and its scheduler loop is not stuck (the
//!   loop beats every few seconds, also while a task runs); 503 otherwise. A liveness probe.
//! - `GET /readyz`: 200 while a config is loaded and scheduled; 503 while loading, restarting
//!   or stopping. A readiness probe.
//! - `GET /status`: JSON of [`crate::status::Snapshot`]: each task's counters and last run.
//! - `GET /metrics`: the Prometheus metrics of [`crate::metrics`] (docs/metrics.md), in the
//!   text format 0.0.4.
//!
//! It reads only the [`StatusBoard`]; it cannot change anything, so it needs no auth, but it
//! should still listen where only the kubelet and operators reach it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::status::StatusBoard;

/// Connections served at once; probes need one or two, the rest are turned away.
const MAX_CONNECTIONS: usize = 32;
/// A client must send its request head within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// No connection, even a busy keep-alive one, lives longer than this.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// A running endpoint; it stops when dropped.
pub struct HealthServer {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl HealthServer {
    /// Binds `address` and serves the board. The error names the address and says why.
    ///
    /// # Errors
    ///
    /// When `address` cannot be bound; the message names it.
    pub async fn start(address: SocketAddr, board: StatusBoard) -> Result<HealthServer, String> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot serve the health endpoint on {address}: {e}"))?;
        let address = listener.local_addr().unwrap_or(address);
        tracing::info!(address = %address, "serving health endpoint: /healthz, /readyz, /status, /metrics");
        let task = tokio::spawn(accept_loop(listener, board));
        Ok(HealthServer { address, task })
    }

    /// Where it listens (the bound port, when port 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, board: StatusBoard) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!("health endpoint: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // too many connections: dropping the stream closes it
        };
        let board = board.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let board = board.clone();
                async move { Ok::<_, Infallible>(respond(&request, &board)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

fn respond(request: &Request<Incoming>, board: &StatusBoard) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    if request.uri().path() == "/metrics" {
        // Read apart from the board's snapshot: the metrics have their own locks.
        return match board.metrics().encode() {
            Ok(body) => with_type(
                StatusCode::OK,
                body.into_bytes(),
                crate::metrics::CONTENT_TYPE,
            ),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot encode the metrics: {e}\n"),
            ),
        };
    }
    let snapshot = board.snapshot();
    match request.uri().path() {
        "/healthz" if snapshot.alive => text(StatusCode::OK, "ok\n"),
        "/healthz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "stuck: the scheduler loop was last seen {:.0} s ago\n",
                snapshot.heartbeat_age_seconds
            ),
        ),
        "/readyz" if snapshot.ready => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("not ready: {:?}\n", snapshot.phase).to_lowercase(),
        ),
        "/status" => match serde_json::to_vec_pretty(&snapshot) {
            Ok(body) => with_type(StatusCode::OK, body, "application/json"),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot encode the status: {e}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /healthz, /readyz, /status or /metrics\n",
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    with_type(
        status,
        body.as_bytes().to_vec(),
        "text/plain; charset=utf-8",
    )
}

fn with_type(status: StatusCode, body: Vec<u8>, content_type: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
