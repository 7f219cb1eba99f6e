//! HTTP for the listers that talk to APIs other than the distribution API (Docker Hub's API,
//! v1 search): JSON requests with timeouts, a bounded retry of transient failures, and a
//! bound on response size.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::{RequestBuilder, StatusCode};

use crate::failure::{Failure, FailureKind};
use crate::registry::tls_client_config;

/// Connect timeout: a far-away API still answers a TCP handshake within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on one whole request; list pages are small.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Tries per request on transient failures (connection errors, 429, 5xx).
const TRIES: u32 = 3;
/// A list page is a few kilobytes; this bounds memory against a broken server.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A JSON API client.
pub(super) struct Http {
    client: reqwest::Client,
}

/// A response: its status and body.
pub(super) struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// A short, printable excerpt of the body for error messages (APIs explain refusals
    /// in `detail` or `message`).
    pub fn excerpt(&self) -> String {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&self.body).ok();
        let text = parsed
            .as_ref()
            .and_then(|v| {
                ["detail", "message", "error"]
                    .iter()
                    .find_map(|k| v.get(*k).and_then(|m| m.as_str()).map(str::to_owned))
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        text.trim().to_string()
    }

    /// The refusal this reply is, after `doing` (`logging in to … as 'user'`), with `advice`
    /// after it when not empty: `doing: HTTP 401 (incorrect password)[; advice]`, of the kind
    /// its status says.
    pub fn refusal(&self, doing: &str, advice: &str) -> Failure {
        let advice = if advice.is_empty() {
            String::new()
        } else {
            format!("; {advice}")
        };
        Failure::Api {
            kind: FailureKind::of_status(self.status.as_u16()),
            reason: format!("{doing}: {}{advice}", self.describe()),
        }
    }

    /// `HTTP 401 (incorrect password)`-style text.
    pub fn describe(&self) -> String {
        let excerpt = self.excerpt();
        if excerpt.is_empty() {
            format!("HTTP {}", self.status.as_u16())
        } else {
            format!("HTTP {} ({excerpt})", self.status.as_u16())
        }
    }
}

impl Http {
    /// A client; `skip_tls_verify` accepts any certificate, as for registries.
    pub fn new(skip_tls_verify: bool) -> Result<Http, String> {
        let tls = tls_client_config(None, skip_tls_verify).map_err(|e| e.to_string())?;
        let client = crate::http_client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent("dregsy")
            // A redirect could carry our token elsewhere; the APIs we call do not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .build()
            .map_err(|e| format!("cannot set up an HTTP client: {e}"))?;
        Ok(Http { client })
    }

    /// Sends the request `build` makes, retrying connection failures, 429 and 5xx a bounded
    /// number of times. Any other status comes back for the caller to judge.
    ///
    /// # Errors
    ///
    /// When no complete response came (a `network` failure), or the body is too large.
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Reply, Failure> {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            let result = async {
                let mut response = build(&self.client).send().await?;
                let status = response.status();
                let mut body = BytesMut::new();
                while let Some(chunk) = response.chunk().await? {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Ok(Err(Failure::Failed(format!(
                            "the response is larger than {MAX_BODY} bytes; is this the right server?"
                        ))));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok::<_, reqwest::Error>(Ok(Reply {
                    status,
                    body: body.freeze(),
                }))
            }
            .await;
            let transient = match &result {
                Ok(Ok(reply)) => {
                    reply.status == StatusCode::TOO_MANY_REQUESTS || reply.status.is_server_error()
                }
                Ok(Err(_)) => false,
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
            };
            if transient && attempt < TRIES {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
                continue;
            }
            return match result {
                Ok(reply) => reply,
                Err(e) => Err(Failure::Api {
                    kind: FailureKind::Network,
                    reason: describe_error(&e),
                }),
            };
        }
    }
}

/// A reqwest error as one line with its root cause (reqwest's own text hides it).
fn describe_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(cause) = last
        && !text.contains(&cause)
    {
        text = format!("{text}: {cause}");
    }
    text
}
