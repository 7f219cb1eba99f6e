//! Seeds and inspects harness registries with an independent client written directly on
//! reqwest, so tests never check dregsy with dregsy's own registry code.
//!
//! Layers are valid `tar` archives in gzip framing (stored, uncompressed deflate blocks) holding
//! one file of random bytes, so images also pull through a Docker engine. They are generated in
//! chunks from a seed and streamed: a 512 MiB layer never sits in memory.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::http::{self, block_on, hex};
use super::registry::{Endpoint, Registry};
use super::token::HARNESS_CLIENT_ID;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest type: Distribution answers 404 for OCI manifests unless Accept lists them.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Bytes of random payload per generated chunk (also the unit of streaming).
const CHUNK: usize = 32 * 1024;

/// Layers larger than this are built from a random pool of this size (see `tar_chunks`).
const POOL: usize = 1024 * 1024;

/// Which manifest family an image is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest / OCI image index.
    Oci,
    /// Docker schema 2 manifest / Docker manifest list.
    Docker,
}

impl Format {
    /// Media type of a single-image manifest in this format.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_MANIFEST,
            Format::Docker => DOCKER_MANIFEST,
        }
    }

    /// Media type of a multi-platform index in this format.
    pub fn index_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_INDEX,
            Format::Docker => DOCKER_LIST,
        }
    }

    fn config_media_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.config.v1+json",
            Format::Docker => "application/vnd.docker.container.image.v1+json",
        }
    }

    fn layer_media_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
            Format::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        }
    }
}

/// What image [`push_image`] builds.
#[derive(Clone, Debug)]
pub struct ImageOptions {
    /// Number of layers.
    pub layers: usize,
    /// Random payload bytes per layer (the blob is a little larger: tar and gzip framing).
    pub layer_size: usize,
    /// `os` in the config (and in an index's `platform`).
    pub os: String,
    /// `architecture` in the config.
    pub arch: String,
    /// `variant` in the config, e.g. `v8`.
    pub variant: Option<String>,
    /// OCI or Docker media types.
    pub format: Format,
    /// Seed of the layer bytes: the same seed and options give the same digests (e.g. to seed two
    /// registries identically); None picks a random one.
    pub seed: Option<u64>,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            layers: 1,
            layer_size: 1024,
            os: "linux".to_string(),
            arch: "amd64".to_string(),
            variant: None,
            format: Format::Oci,
            seed: None,
        }
    }
}

impl ImageOptions {
    /// Sets os, architecture and variant from `os/arch[/variant]`, e.g. `linux/arm64/v8`.
    pub fn platform(mut self, platform: &str) -> Self {
        let mut parts = platform.split('/');
        self.os = parts.next().unwrap_or("linux").to_string();
        self.arch = parts.next().unwrap_or("amd64").to_string();
        self.variant = parts.next().map(str::to_string);
        self
    }
}

/// What [`push_image`] wrote.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// Digest of the manifest.
    pub digest: String,
    /// Media type of the manifest.
    pub media_type: String,
    /// The manifest bytes exactly as PUT.
    pub manifest: Vec<u8>,
    /// Digest of the config blob.
    pub config_digest: String,
    /// Every blob `(digest, size)`: the config first, then the layers in order.
    pub blobs: Vec<(String, u64)>,
}

/// What [`push_index`] wrote.
#[derive(Clone, Debug)]
pub struct PushedIndex {
    /// Digest of the index / manifest list.
    pub digest: String,
    /// Media type of the index / manifest list.
    pub media_type: String,
    /// The index bytes exactly as PUT.
    pub manifest: Vec<u8>,
    /// `(platform, child manifest digest)` in index order, e.g. `("linux/arm64/v8", "sha256:…")`.
    pub children: Vec<(String, String)>,
    /// The child images in index order.
    pub images: Vec<Pushed>,
}

/// A manifest as read back from a registry.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The `Content-Type` the registry answered.
    pub media_type: String,
    /// The `Docker-Content-Digest` the registry answered (or computed from the bytes).
    pub digest: String,
    /// The manifest bytes.
    pub bytes: Vec<u8>,
}

impl Manifest {
    /// The manifest parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).expect("a manifest is JSON")
    }
}

/// Pushes a single-platform image with random layers and tags it `tag` (an empty `tag` or a
/// digest pushes by digest only).
pub fn push_image(registry: &Registry, repo: &str, tag: &str, options: ImageOptions) -> Pushed {
    let endpoint = registry.endpoint();
    block_on(async {
        let mut api = Api::new(&endpoint);
        api.push_image(repo, tag, &options).await
    })
}

/// Pushes one small image per platform (`os/arch[/variant]`) and an index (OCI) or manifest
/// list (Docker) over them, tagged `tag`; the children are pushed by digest only.
pub fn push_index(
    registry: &Registry,
    repo: &str,
    tag: &str,
    platforms: &[&str],
    format: Format,
) -> PushedIndex {
    let endpoint = registry.endpoint();
    block_on(async {
        let mut api = Api::new(&endpoint);
        let mut images = Vec::new();
        let mut entries = Vec::new();
        let mut children = Vec::new();
        for platform in platforms {
            let options = ImageOptions {
                format,
                ..ImageOptions::default()
            }
            .platform(platform);
            let image = api.push_image(repo, "", &options).await;
            let mut platform_json = json!({"architecture": options.arch, "os": options.os});
            if let Some(variant) = &options.variant {
                platform_json["variant"] = Value::String(variant.clone());
            }
            entries.push(json!({
                "mediaType": image.media_type,
                "digest": image.digest,
                "size": image.manifest.len(),
                "platform": platform_json,
            }));
            children.push((platform.to_string(), image.digest.clone()));
            images.push(image);
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": format.index_media_type(),
            "manifests": entries,
        });
        let bytes = serde_json::to_vec(&index).expect("serialize an index");
        let digest = api
            .put_manifest(repo, tag, format.index_media_type(), &bytes)
            .await;
        PushedIndex {
            digest,
            media_type: format.index_media_type().to_string(),
            manifest: bytes,
            children,
            images,
        }
    })
}

/// Uploads `bytes` as a blob of `repo`; returns its digest.
pub fn push_blob(registry: &Registry, repo: &str, bytes: &[u8]) -> String {
    let endpoint = registry.endpoint();
    let digest = http::sha256_digest(bytes);
    let body = bytes.to_vec();
    block_on(async {
        let mut api = Api::new(&endpoint);
        api.upload_blob(repo, &digest, body.len() as u64, reqwest::Body::from(body))
            .await;
    });
    digest
}

/// PUTs `bytes` as a manifest of `media_type` under `reference` (a tag; empty: its digest), as
/// they are: for manifests the harness does not build, e.g. with a descriptor that lies.
/// Returns the manifest's digest.
pub fn put_manifest(
    registry: &Registry,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> String {
    let endpoint = registry.endpoint();
    block_on(async {
        let mut api = Api::new(&endpoint);
        api.put_manifest(repo, reference, media_type, bytes).await
    })
}

/// Uploads `bytes` as a blob of `repo` through `endpoint` (a registry, or a server in front of
/// one); returns its digest.
pub fn push_blob_at(endpoint: &Endpoint, repo: &str, bytes: &[u8]) -> String {
    let digest = http::sha256_digest(bytes);
    let body = bytes.to_vec();
    block_on(async {
        let mut api = Api::new(endpoint);
        api.upload_blob(repo, &digest, body.len() as u64, reqwest::Body::from(body))
            .await;
    });
    digest
}

/// [`put_manifest`] through `endpoint` (a registry, or a server in front of one).
pub fn put_manifest_at(
    endpoint: &Endpoint,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> String {
    block_on(async {
        let mut api = Api::new(endpoint);
        api.put_manifest(repo, reference, media_type, bytes).await
    })
}

/// [`get_manifest`] through `endpoint` (a registry, or a server in front of one).
pub fn get_manifest_at(endpoint: &Endpoint, repo: &str, reference: &str) -> Option<Manifest> {
    block_on(async {
        let mut api = Api::new(endpoint);
        api.get_manifest(repo, reference).await
    })
}

/// Puts the manifest `reference` (tag or digest) of `repo` under every tag in `tags`, with the
/// same bytes (so the same digest).
pub fn tag(registry: &Registry, repo: &str, reference: &str, tags: &[&str]) {
    let endpoint = registry.endpoint();
    block_on(async {
        let mut api = Api::new(&endpoint);
        let manifest = api
            .get_manifest(repo, reference)
            .await
            .unwrap_or_else(|| panic!("tag: {repo}:{reference} does not exist"));
        for tag in tags {
            api.put_manifest(repo, tag, &manifest.media_type, &manifest.bytes)
                .await;
        }
    })
}

/// The digest of `repo:reference` per a HEAD with every manifest type accepted; None if absent.
pub fn manifest_digest(registry: &Registry, repo: &str, reference: &str) -> Option<String> {
    let endpoint = registry.endpoint();
    block_on(async {
        let mut api = Api::new(&endpoint);
        let url = format!("{}/v2/{repo}/manifests/{reference}", endpoint.url);
        let response = api
            .send(repo, Method::HEAD, &url, |request| {
                request.header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await;
        match response.status() {
            StatusCode::OK => Some(
                header(&response, "docker-content-digest")
                    .expect("HEAD manifest without Docker-Content-Digest"),
            ),
            StatusCode::NOT_FOUND => None,
            status => panic!("HEAD {url}: unexpected {status}"),
        }
    })
}

/// The manifest `repo:reference` with its media type and digest; None if absent.
pub fn get_manifest(registry: &Registry, repo: &str, reference: &str) -> Option<Manifest> {
    let endpoint = registry.endpoint();
    block_on(async { Api::new(&endpoint).get_manifest(repo, reference).await })
}

/// The tags of `repo`, sorted; empty when the repository is unknown or has none.
pub fn list_tags(registry: &Registry, repo: &str) -> Vec<String> {
    let endpoint = registry.endpoint();
    block_on(async {
        let mut api = Api::new(&endpoint);
        let url = format!("{}/v2/{repo}/tags/list", endpoint.url);
        let response = api.send(repo, Method::GET, &url, |request| request).await;
        if response.status() == StatusCode::NOT_FOUND {
            return Vec::new();
        }
        let body: Value = expect_json(response, &url).await;
        let mut tags: Vec<String> = body["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|tag| tag.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    })
}

/// Whether `repo` has the blob `digest` (HEAD).
pub fn blob_exists(registry: &Registry, repo: &str, digest: &str) -> bool {
    let endpoint = registry.endpoint();
    block_on(async {
        let mut api = Api::new(&endpoint);
        let url = format!("{}/v2/{repo}/blobs/{digest}", endpoint.url);
        let response = api.send(repo, Method::HEAD, &url, |request| request).await;
        match response.status() {
            StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            status => panic!("HEAD {url}: unexpected {status}"),
        }
    })
}

/// The bytes of blob `digest` in `repo`; None if absent. Loads it in memory: small blobs only.
pub fn get_blob(registry: &Registry, repo: &str, digest: &str) -> Option<Vec<u8>> {
    let endpoint = registry.endpoint();
    block_on(async {
        let mut api = Api::new(&endpoint);
        let url = format!("{}/v2/{repo}/blobs/{digest}", endpoint.url);
        let response = api.send(repo, Method::GET, &url, |request| request).await;
        match response.status() {
            StatusCode::OK => Some(response.bytes().await.expect("read a blob body").to_vec()),
            StatusCode::NOT_FOUND => None,
            status => panic!("GET {url}: unexpected {status}"),
        }
    })
}

/// Deletes the manifest `digest` from `repo`; false when it did not exist.
pub fn delete_manifest(registry: &Registry, repo: &str, digest: &str) -> bool {
    let endpoint = registry.endpoint();
    block_on(async {
        let mut api = Api::new(&endpoint);
        let url = format!("{}/v2/{repo}/manifests/{digest}", endpoint.url);
        let response = api
            .send(repo, Method::DELETE, &url, |request| request)
            .await;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            status => panic!("DELETE {url}: unexpected {status}"),
        }
    })
}

/// The repositories of the registry, sorted.
pub fn catalog(registry: &Registry) -> Vec<String> {
    let endpoint = registry.endpoint();
    block_on(async {
        let mut api = Api::new(&endpoint);
        let url = format!("{}/v2/_catalog", endpoint.url);
        let response = api
            .send_scoped("registry:catalog:*", Method::GET, &url, |request| request)
            .await;
        let body: Value = expect_json(response, &url).await;
        let mut repos: Vec<String> = body["repositories"]
            .as_array()
            .map(|repos| {
                repos
                    .iter()
                    .filter_map(|repo| repo.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        repos.sort();
        repos
    })
}

/// A minimal registry client: one per public call, authenticating as the admin.
struct Api {
    endpoint: Endpoint,
    client: reqwest::Client,
    /// Authorization header per scope (None: the registry is open).
    auth: HashMap<String, Option<String>>,
}

impl Api {
    fn new(endpoint: &Endpoint) -> Api {
        Api {
            endpoint: endpoint.clone(),
            client: http::client(&endpoint.tls),
            auth: HashMap::new(),
        }
    }

    /// Sends a request with the admin's authorization for `repo` (pull, push and delete).
    async fn send(
        &mut self,
        repo: &str,
        method: Method,
        url: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> reqwest::Response {
        self.send_scoped(
            &format!("repository:{repo}:pull,push,delete"),
            method,
            url,
            build,
        )
        .await
    }

    async fn send_scoped(
        &mut self,
        scope: &str,
        method: Method,
        url: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> reqwest::Response {
        let authorization = self.authorization(scope).await;
        let mut request = self.client.request(method.clone(), url);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        build(request)
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {url}: {error}"))
    }

    /// Works out the Authorization header for `scope` from the registry's challenge on `/v2/`.
    async fn authorization(&mut self, scope: &str) -> Option<String> {
        if let Some(known) = self.auth.get(scope) {
            return known.clone();
        }
        let url = format!("{}/v2/", self.endpoint.url);
        let probe = self
            .client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {url}: {error}"));
        let (user, pass) = self.endpoint.admin.clone();
        let value = if probe.status() == StatusCode::UNAUTHORIZED {
            let challenge = header(&probe, "www-authenticate").unwrap_or_default();
            if challenge.to_ascii_lowercase().starts_with("bearer") {
                let params = challenge_params(&challenge);
                let realm = params.get("realm").expect("Bearer challenge without realm");
                let service = params.get("service").cloned().unwrap_or_default();
                let mut token_url = reqwest::Url::parse(realm).expect("parse the token realm");
                token_url
                    .query_pairs_mut()
                    .append_pair("service", &service)
                    .append_pair("scope", scope)
                    .append_pair("client_id", HARNESS_CLIENT_ID);
                let response = self
                    .client
                    .get(token_url.clone())
                    .basic_auth(&user, Some(&pass))
                    .send()
                    .await
                    .unwrap_or_else(|error| panic!("GET {token_url}: {error}"));
                let body: Value = expect_json(response, token_url.as_str()).await;
                let token = body["token"]
                    .as_str()
                    .or_else(|| body["access_token"].as_str())
                    .expect("token response without token");
                Some(format!("Bearer {token}"))
            } else {
                Some(format!(
                    "Basic {}",
                    STANDARD.encode(format!("{user}:{pass}"))
                ))
            }
        } else {
            None
        };
        self.auth.insert(scope.to_string(), value.clone());
        value
    }

    async fn push_image(&mut self, repo: &str, tag: &str, options: &ImageOptions) -> Pushed {
        let format = options.format;
        let seed = options.seed.unwrap_or_else(|| fastrand::u64(..));
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for index in 0..options.layers {
            let layer_seed = seed
                .wrapping_add(index as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let name = format!("layer-{index}.bin");
            // First pass: digests and size; second pass (inside upload): the bytes themselves.
            let summary = summarize(layer_seed, options.layer_size, &name);
            let chunks = layer_chunks(layer_seed, options.layer_size, &name, summary.crc);
            let body = reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks.map(|chunk| Ok::<_, std::io::Error>(Bytes::from(chunk))),
            ));
            self.upload_blob(repo, &summary.digest, summary.size, body)
                .await;
            diff_ids.push(summary.diff_id);
            layers.push((summary.digest, summary.size));
        }

        let mut config = json!({
            "architecture": options.arch,
            "os": options.os,
            "created": "2024-01-01T00:00:00Z",
            "config": {"Labels": {"org.dregsy.test.seed": seed.to_string()}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": (0..options.layers).map(|index| json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("dregsy test layer {index}")})).collect::<Vec<_>>(),
        });
        if let Some(variant) = &options.variant {
            config["variant"] = Value::String(variant.clone());
        }
        let config_bytes = serde_json::to_vec(&config).expect("serialize an image config");
        let config_digest = http::sha256_digest(&config_bytes);
        self.upload_blob(
            repo,
            &config_digest,
            config_bytes.len() as u64,
            reqwest::Body::from(config_bytes.clone()),
        )
        .await;

        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": format.manifest_media_type(),
            "config": {"mediaType": format.config_media_type(), "digest": config_digest, "size": config_bytes.len()},
            "layers": layers.iter().map(|(digest, size)| json!({"mediaType": format.layer_media_type(), "digest": digest, "size": size})).collect::<Vec<_>>(),
        });
        let manifest_bytes = serde_json::to_vec(&manifest).expect("serialize a manifest");
        let digest = self
            .put_manifest(repo, tag, format.manifest_media_type(), &manifest_bytes)
            .await;
        let mut blobs = vec![(config_digest.clone(), config_bytes.len() as u64)];
        blobs.extend(layers);
        Pushed {
            digest,
            media_type: format.manifest_media_type().to_string(),
            manifest: manifest_bytes,
            config_digest,
            blobs,
        }
    }

    /// Monolithic upload: POST opens a session, PUT `?digest=` sends all bytes and commits.
    async fn upload_blob(&mut self, repo: &str, digest: &str, size: u64, body: reqwest::Body) {
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.endpoint.url);
        let response = self.send(repo, Method::POST, &url, |request| request).await;
        if response.status() != StatusCode::ACCEPTED {
            panic!(
                "POST {url}: expected 202, got {}: {}",
                response.status(),
                text(response).await
            );
        }
        let location =
            header(&response, LOCATION.as_str()).expect("upload session without Location");
        let mut put_url = if location.starts_with('/') {
            reqwest::Url::parse(&format!("{}{location}", self.endpoint.url))
        } else {
            reqwest::Url::parse(&location)
        }
        .expect("parse the upload Location");
        put_url.query_pairs_mut().append_pair("digest", digest);
        let put_url = put_url.to_string();
        let response = self
            .send(repo, Method::PUT, &put_url, |request| {
                request
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(body)
            })
            .await;
        if response.status() != StatusCode::CREATED {
            panic!(
                "PUT blob {digest} to {repo}: expected 201, got {}: {}",
                response.status(),
                text(response).await
            );
        }
    }

    /// PUTs a manifest under `reference` (empty: under its own digest); returns its digest.
    async fn put_manifest(
        &mut self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = http::sha256_digest(bytes);
        let reference = if reference.is_empty() {
            digest.as_str()
        } else {
            reference
        };
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.endpoint.url);
        let body = bytes.to_vec();
        let response = self
            .send(repo, Method::PUT, &url, |request| {
                request.header(CONTENT_TYPE, media_type).body(body)
            })
            .await;
        if response.status() != StatusCode::CREATED {
            panic!(
                "PUT {url}: expected 201, got {}: {}",
                response.status(),
                text(response).await
            );
        }
        if let Some(answered) = header(&response, "docker-content-digest") {
            assert_eq!(
                answered, digest,
                "the registry computed another manifest digest"
            );
        }
        digest
    }

    async fn get_manifest(&mut self, repo: &str, reference: &str) -> Option<Manifest> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.endpoint.url);
        let response = self
            .send(repo, Method::GET, &url, |request| {
                request.header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return None,
            status => panic!("GET {url}: unexpected {status}: {}", text(response).await),
        }
        let media_type = header(&response, CONTENT_TYPE.as_str()).unwrap_or_default();
        let answered = header(&response, "docker-content-digest");
        let bytes = response
            .bytes()
            .await
            .expect("read a manifest body")
            .to_vec();
        let digest = answered.unwrap_or_else(|| http::sha256_digest(&bytes));
        Some(Manifest {
            media_type,
            digest,
            bytes,
        })
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

async fn text(response: reqwest::Response) -> String {
    response.text().await.unwrap_or_default()
}

async fn expect_json(response: reqwest::Response, url: &str) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        panic!("{url}: unexpected {status}: {body}");
    }
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{url}: not JSON ({error}): {body}"))
}

/// Parses `Bearer realm="…",service="…",scope="…"` into its parameters.
pub fn challenge_params(challenge: &str) -> HashMap<String, String> {
    static PARAM: OnceLock<regex::Regex> = OnceLock::new();
    let re = PARAM.get_or_init(|| {
        regex::Regex::new(r#"(\w+)="([^"]*)""#).expect("compile the challenge pattern")
    });
    re.captures_iter(challenge)
        .map(|captures| (captures[1].to_string(), captures[2].to_string()))
        .collect()
}

/// Digests of one generated layer.
struct LayerSummary {
    /// sha256 of the gzip blob.
    digest: String,
    /// sha256 of the tar (the config's diff_id).
    diff_id: String,
    /// Size of the gzip blob.
    size: u64,
    /// CRC-32 of the tar (the gzip trailer's checksum).
    crc: u32,
}

fn summarize(seed: u64, size: usize, name: &str) -> LayerSummary {
    let mut blob = ring::digest::Context::new(&ring::digest::SHA256);
    let mut tar = ring::digest::Context::new(&ring::digest::SHA256);
    let mut blob_size = 0u64;
    let mut gzip = StoredGzip::new(
        tar_chunks(seed, size, name).inspect(|chunk| tar.update(chunk)),
        None,
    );
    for gzip_chunk in gzip.by_ref() {
        blob.update(&gzip_chunk);
        blob_size += gzip_chunk.len() as u64;
    }
    let crc = gzip.crc();
    drop(gzip);
    LayerSummary {
        digest: format!("sha256:{}", hex(blob.finish().as_ref())),
        diff_id: format!("sha256:{}", hex(tar.finish().as_ref())),
        size: blob_size,
        crc,
    }
}

/// The gzip blob of a layer as chunks: a tar holding one file `name` of `size` random bytes
/// drawn from `seed`, wrapped in gzip with stored (uncompressed) deflate blocks. `crc` (from
/// [`summarize`]) spares computing the checksum a second time.
fn layer_chunks(
    seed: u64,
    size: usize,
    name: &str,
    crc: u32,
) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
    StoredGzip::new(tar_chunks(seed, size, name), Some(crc))
}

fn tar_chunks(
    seed: u64,
    size: usize,
    name: &str,
) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
    let header = tar_header(name, size);
    let mut rng = fastrand::Rng::with_seed(seed);
    // Large layers copy from a random pool at scattered offsets, each chunk stamped with its
    // index: far cheaper than drawing every byte, still unique per seed, and incompressible
    // within gzip's 32 KiB window.
    let pool = if size > POOL {
        let mut pool = vec![0u8; POOL + CHUNK];
        rng.fill(&mut pool);
        pool
    } else {
        Vec::new()
    };
    let data = (0..size.div_ceil(CHUNK)).map(move |index| {
        let len = CHUNK.min(size - index * CHUNK);
        if pool.is_empty() {
            let mut chunk = vec![0u8; len];
            rng.fill(&mut chunk);
            return chunk;
        }
        let offset = index.wrapping_mul(40_503) % POOL;
        let mut chunk = pool[offset..offset + len].to_vec();
        let stamp = (index as u64).to_le_bytes();
        let stamped = stamp.len().min(len);
        chunk[..stamped].copy_from_slice(&stamp[..stamped]);
        chunk
    });
    // Pad the file to a 512-byte block, then two zero blocks end the archive.
    let trailer = vec![0u8; (512 - size % 512) % 512 + 1024];
    std::iter::once(header)
        .chain(data)
        .chain(std::iter::once(trailer))
}

fn tar_header(name: &str, size: usize) -> Vec<u8> {
    let mut header = vec![0u8; 512];
    let put = |header: &mut Vec<u8>, offset: usize, value: &[u8]| {
        header[offset..offset + value.len()].copy_from_slice(value);
    };
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(&mut header, 124, format!("{size:011o}\0").as_bytes());
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 148, b"        ");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    let checksum: u32 = header.iter().map(|&byte| u32::from(byte)).sum();
    put(&mut header, 148, format!("{checksum:06o}\0 ").as_bytes());
    header
}

/// Wraps a byte stream in gzip framing using stored deflate blocks: valid gzip, no compression
/// cost, and sizes known from the input.
struct StoredGzip<I> {
    inner: I,
    crc: u32,
    known_crc: Option<u32>,
    length: u32,
    started: bool,
    finished: bool,
}

impl<I> StoredGzip<I> {
    /// `known_crc`: the CRC-32 of the whole input when already known (it is then not computed).
    fn new(inner: I, known_crc: Option<u32>) -> Self {
        StoredGzip {
            inner,
            crc: 0xFFFF_FFFF,
            known_crc,
            length: 0,
            started: false,
            finished: false,
        }
    }
}

impl<I> StoredGzip<I> {
    /// The CRC-32 of the input consumed so far (or the known one).
    fn crc(&self) -> u32 {
        self.known_crc.unwrap_or(!self.crc)
    }
}

impl<I: Iterator<Item = Vec<u8>>> Iterator for StoredGzip<I> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if !self.started {
            self.started = true;
            return Some(vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        }
        if self.finished {
            return None;
        }
        match self.inner.next() {
            Some(chunk) => {
                let mut out = Vec::with_capacity(chunk.len() + 5 * (chunk.len() / 65535 + 1));
                for piece in chunk.chunks(65535) {
                    let len = piece.len() as u16;
                    out.push(0);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(&(!len).to_le_bytes());
                    out.extend_from_slice(piece);
                }
                if self.known_crc.is_none() {
                    self.crc = crc32_update(self.crc, &chunk);
                }
                self.length = self.length.wrapping_add(chunk.len() as u32);
                Some(out)
            }
            None => {
                self.finished = true;
                let mut out = vec![1, 0, 0, 0xff, 0xff];
                out.extend_from_slice(&self.crc().to_le_bytes());
                out.extend_from_slice(&self.length.to_le_bytes());
                Some(out)
            }
        }
    }
}

fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (index, entry) in table.iter_mut().enumerate() {
            let mut value = index as u32;
            for _ in 0..8 {
                value = if value & 1 != 0 {
                    0xEDB8_8320 ^ (value >> 1)
                } else {
                    value >> 1
                };
            }
            *entry = value;
        }
        table
    });
    for &byte in bytes {
        crc = table[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}
