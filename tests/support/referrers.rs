//! A registry with the OCI 1.1 referrers API, for tests: a small server in front of a real
//! `docker-registry` (which has no such API) that forwards everything, remembers the manifests
//! pushed through it that carry a `subject`, answers `OCI-Subject` to those pushes, and answers
//! `GET /v2/<name>/referrers/<digest>[?artifactType=…]` from what it remembers.
//!
//! Test support only: it knows nothing of manifests pushed to the registry behind it directly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::http::{self, Body, Server, respond};
use super::registry::{Endpoint, Registry};

/// Headers that belong to one hop and are never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "host",
    "te",
    "upgrade",
];

/// One request the server answered: method, path with query, status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub status: u16,
}

struct State {
    upstream: String,
    client: reqwest::Client,
    /// (repository, subject digest) → descriptors of the referrers pushed through us.
    referrers: Mutex<HashMap<(String, String), Vec<Value>>>,
    seen: Mutex<Vec<Seen>>,
}

/// The server; stops when dropped.
pub struct ReferrersRegistry {
    server: Server,
    state: Arc<State>,
    endpoint: Endpoint,
}

impl ReferrersRegistry {
    /// Starts in front of `registry` (plain HTTP, open).
    pub fn start(registry: &Registry) -> ReferrersRegistry {
        let client = dregsy::http_client::builder()
            .connect_timeout(http::CONNECT_TIMEOUT)
            .read_timeout(http::READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("build the referrers server's upstream client");
        let state = Arc::new(State {
            upstream: registry.url().trim_end_matches('/').to_string(),
            client,
            referrers: Mutex::new(HashMap::new()),
            seen: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        let server = Server::start("referrers-registry", move |request| {
            let state = shared.clone();
            async move { serve(&state, request).await }
        });
        let mut endpoint = registry.endpoint();
        endpoint.url = server.url();
        endpoint.host = server.addr().to_string();
        ReferrersRegistry {
            server,
            state,
            endpoint,
        }
    }

    /// `127.0.0.1:PORT`: the registry part of references through the server.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// How harness clients reach the server.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }

    /// Every request answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("seen lock").clone()
    }

    /// Forgets the requests answered so far.
    pub fn clear_seen(&self) {
        self.state.seen.lock().expect("seen lock").clear();
    }

    /// Lists `descriptor` among the referrers of `subject` in `repo` as it is (for entries a
    /// registry would refuse: a missing manifest, a malformed descriptor).
    pub fn inject(&self, repo: &str, subject: &str, descriptor: Value) {
        self.state
            .referrers
            .lock()
            .expect("referrers lock")
            .entry((repo.to_string(), subject.to_string()))
            .or_default()
            .push(descriptor);
    }

    /// The referrers of `subject` in `repo` the server indexed.
    pub fn referrers_of(&self, repo: &str, subject: &str) -> Vec<Value> {
        self.state
            .referrers
            .lock()
            .expect("referrers lock")
            .get(&(repo.to_string(), subject.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

async fn serve(state: &State, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let response = answer(state, request, &method, &path).await;
    state.seen.lock().expect("seen lock").push(Seen {
        method,
        path,
        status: response.status().as_u16(),
    });
    response
}

async fn answer(
    state: &State,
    request: Request<Incoming>,
    method: &str,
    path: &str,
) -> Response<Body> {
    let route = path.split('?').next().unwrap_or_default();
    if method == "GET"
        && let Some((repo, subject)) = route
            .strip_prefix("/v2/")
            .and_then(|rest| rest.rsplit_once("/referrers/"))
    {
        let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let wanted = http::parse_query(query)
            .into_iter()
            .find(|(k, _)| k == "artifactType")
            .map(|(_, v)| v);
        let all = state
            .referrers
            .lock()
            .expect("referrers lock")
            .get(&(repo.to_string(), subject.to_string()))
            .cloned()
            .unwrap_or_default();
        let list: Vec<Value> = all
            .into_iter()
            .filter(|d| wanted.as_deref().is_none_or(|w| d["artifactType"] == w))
            .collect();
        let body = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": list,
        });
        let mut response = respond(
            StatusCode::OK,
            "application/vnd.oci.image.index.v1+json",
            serde_json::to_vec(&body).expect("serialize"),
        );
        if wanted.is_some() {
            response.headers_mut().insert(
                "oci-filters-applied",
                hyper::header::HeaderValue::from_static("artifactType"),
            );
        }
        return response;
    }

    let (parts, body) = request.into_parts();
    let body: Bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return respond(StatusCode::BAD_REQUEST, "text/plain", e.to_string()),
    };
    let mut forward = state.client.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        format!("{}{path}", state.upstream),
    );
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            forward = forward.header(name.as_str(), value.as_bytes());
        }
    }
    let upstream = match forward.body(body.clone()).send().await {
        Ok(upstream) => upstream,
        Err(e) => return respond(StatusCode::BAD_GATEWAY, "text/plain", e.to_string()),
    };
    let status = upstream.status().as_u16();
    let headers = upstream.headers().clone();
    let upstream_body = upstream.bytes().await.unwrap_or_default();
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name.as_str() != "content-length" {
            let value = if name.as_str() == "location" {
                // Keep clients talking to us, not to the registry behind.
                let text = value.to_str().unwrap_or_default();
                hyper::header::HeaderValue::from_str(&text.replace(&state.upstream, ""))
                    .unwrap_or_else(|_| value.clone())
            } else {
                value.clone()
            };
            response = response.header(name.as_str(), value);
        }
    }
    // A manifest with a subject, stored: index it and say so.
    let is_manifest_put = method == "PUT" && route.contains("/manifests/");
    if is_manifest_put
        && (200..300).contains(&status)
        && let Ok(manifest) = serde_json::from_slice::<Value>(&body)
        && let Some(subject) = manifest["subject"]["digest"].as_str()
    {
        let repo = route
            .strip_prefix("/v2/")
            .and_then(|rest| rest.rsplit_once("/manifests/"))
            .map(|(repo, _)| repo.to_string())
            .unwrap_or_default();
        let media_type = manifest["mediaType"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                parts
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let artifact_type = manifest["artifactType"]
            .as_str()
            .or_else(|| manifest["config"]["mediaType"].as_str())
            .unwrap_or_default()
            .to_string();
        let mut descriptor = json!({
            "mediaType": media_type,
            "digest": http::sha256_digest(&body),
            "size": body.len(),
            "artifactType": artifact_type,
        });
        if manifest["annotations"].is_object() {
            descriptor["annotations"] = manifest["annotations"].clone();
        }
        let mut all = state.referrers.lock().expect("referrers lock");
        let list = all.entry((repo, subject.to_string())).or_default();
        if !list.iter().any(|d| d["digest"] == descriptor["digest"]) {
            list.push(descriptor);
        }
        response = response.header("oci-subject", subject);
    }
    response
        .body(http::full(upstream_body))
        .unwrap_or_else(|e| {
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                e.to_string(),
            )
        })
}
