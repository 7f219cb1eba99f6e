//! What the transport tells a [`RequestObserver`] (the metrics) about each request attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

use super::reference::RegistryHost;

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

/// Tells `observer`, if any, about one attempt to `registry`: its answer, or none when it
/// failed; `sent` is when it was sent.
pub(super) fn observe(
    observer: Option<&Arc<dyn RequestObserver>>,
    registry: &RegistryHost,
    method: &Method,
    response: Option<&reqwest::Response>,
    sent: Instant,
    retrying: bool,
) {
    if let Some(observer) = observer {
        observer.observe(&Attempt {
            registry,
            method,
            status: response.map(|r| r.status()),
            headers: response.map(|r| r.headers()),
            elapsed: sent.elapsed(),
            retrying,
        });
    }
}
