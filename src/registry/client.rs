//! The registry client: one [`Registry`] per registry host, with the manifest operations.
//! Blobs are in `blob.rs`, listings in `listing.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode, Url};

use super::auth::{Auth, CredentialSource, Credentials, Scope};
use super::classify::classify;
use super::credentials::CredentialProvider;
use super::digest::Digest;
use super::error::{self, Error, ErrorKind, MAX_ERROR_BODY, Result, truncate};
use super::manifest::{MAX_MANIFEST_SIZE, Manifest, media_type};
use super::observe::RequestObserver;
use super::ratelimit::RateLimits;
use super::reference::{RegistryHost, Repository, TagOrDigest};
use super::retry::{RetryPolicy, Tries, retryable_status};
use super::timeouts::Timeouts;
use super::tls;
use super::transport::{Body, Request, Transport, header_value};

/// How to reach and authenticate to one registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// The registry, possibly with an explicit `http://` or `https://`.
    pub registry: RegistryHost,
    /// Credentials; `None` for anonymous access.
    pub credentials: Option<Credentials>,
    /// Credentials that change during the run (cloud tokens); when set, it replaces
    /// `credentials`.
    pub credential_provider: Option<Arc<dyn CredentialProvider>>,
    /// Accept any server certificate, and fall back to plain HTTP when the registry does not
    /// speak TLS (as skopeo's `--tls-verify=false` does).
    pub skip_tls_verify: bool,
    /// Docker-style certificate directory: `<certs_dir>/<host without port>/` holds `*.crt`
    /// (extra CA roots) and `*.cert` + `*.key` (a client identity).
    pub certs_dir: Option<PathBuf>,
    /// Network time bounds.
    pub timeouts: Timeouts,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Upload blobs in chunks (PATCH) instead of one PUT, for registries or proxies that
    /// limit request sizes. Also switched on by the registry's `OCI-Chunk-Min-Length`.
    pub chunked_uploads: bool,
    /// Size of upload chunks, when chunks are used (raised to the registry's minimum).
    pub chunk_size: usize,
    /// Entries asked for per catalog page (`?n=`). Distribution refuses more than 1000.
    pub page_size: usize,
    /// The run's rate-limit state, shared by every client of one host so a 429 or a used-up
    /// budget holds them all (docs/behaviour.md, "Rate limits"). Defaults to a state of
    /// this client's own.
    pub rate_limits: RateLimits,
    /// Told about every request attempt (metrics); `None` by default.
    pub observer: Option<Arc<dyn RequestObserver>>,
    /// Where the credentials come from, for the messages of refusals (`the config's auth`,
    /// `credential file /root/.docker/config.json (auths)`); `None` (the default): not said.
    pub credentials_origin: Option<String>,
    /// What is known about manifest HEAD on this registry, shared with the other clients of
    /// the same host (other credentials): the fallback to GET is learned once per host.
    /// `None`: this client learns on its own.
    pub manifest_head: Option<Arc<ManifestHeadUse>>,
}

impl RegistryOptions {
    /// Options with the defaults: anonymous, verified TLS, no certs dir, monolithic uploads.
    pub fn new(registry: RegistryHost) -> RegistryOptions {
        RegistryOptions {
            registry,
            credentials: None,
            credential_provider: None,
            skip_tls_verify: false,
            certs_dir: None,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            chunked_uploads: false,
            chunk_size: 8 * 1024 * 1024,
            page_size: 1000,
            rate_limits: RateLimits::new(),
            observer: None,
            credentials_origin: None,
            manifest_head: None,
        }
    }
}

/// Whether manifest HEAD requests work on a registry host, as learned during a run
/// (docs/behaviour.md#up-to-date-checks). Shared by the clients of one host.
#[derive(Debug, Default)]
pub struct ManifestHeadUse {
    /// [`HEAD_UNKNOWN`], [`HEAD_WORKS`] (a HEAD answered 2xx, so its 404 is believed) or
    /// [`HEAD_UNUSABLE`] (refused while GET works).
    state: AtomicU8,
    /// Held by the first manifest check until it has an answer (see `head_manifest`).
    probe: tokio::sync::Mutex<bool>,
}

/// A client of one registry. Cheap to clone: clones share the connection pool, the learned
/// authentication method and the token cache.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
    /// The retry budget every request of this handle draws from; `None`: one per request.
    tries: Option<Tries>,
}

pub(crate) struct Inner {
    pub(crate) host: RegistryHost,
    pub(crate) transport: Transport,
    pub(crate) auth: Auth,
    pub(crate) chunk_size: usize,
    pub(crate) page_size: usize,
    /// Set by the options, or once the registry refused a monolithic upload.
    pub(crate) chunked_uploads: AtomicBool,
    pub(crate) retry: RetryPolicy,
    /// What manifest HEAD requests are worth on this host.
    pub(crate) manifest_head: Arc<ManifestHeadUse>,
}

/// Nothing learned yet about manifest HEAD on a registry.
const HEAD_UNKNOWN: u8 = 0;
/// Manifest HEAD answered 2xx on a registry.
const HEAD_WORKS: u8 = 1;
/// Manifest HEAD was refused where GET answered: use GET.
const HEAD_UNUSABLE: u8 = 2;

/// What [`Registry::head_manifest`] learned about a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// The manifest's digest (`Docker-Content-Digest`, or computed from a GET).
    pub digest: Digest,
    /// Its size in bytes, when the registry sent `Content-Length` (or a GET showed it).
    pub size: Option<u64>,
    /// Its type, when the registry declared a manifest type (or a GET showed it); `None`
    /// for a generic or missing `Content-Type`, which says nothing about the shape.
    pub media_type: Option<String>,
    /// The manifest itself, when the registry had to be asked with GET.
    pub manifest: Option<Manifest>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({})", self.inner.host)
    }
}

impl Registry {
    /// Creates a client. Reads the certificate directory now, so a broken certificate is
    /// reported before any transfer starts; no network I/O happens until the first request.
    ///
    /// # Errors
    ///
    /// When the certificate directory holds a file that cannot be read or parsed, or TLS cannot
    /// be set up.
    pub fn new(options: RegistryOptions) -> Result<Registry> {
        let host = options.registry;
        let host_dir = options
            .certs_dir
            .as_ref()
            .map(|dir| dir.join(host.host_without_port()));
        let tls = tls::client_config(host_dir.as_deref(), options.skip_tls_verify)
            .map_err(|e| e.context(format!("setting up TLS for registry {host}")))?;
        let transport = Transport::new(
            host.clone(),
            tls,
            options.skip_tls_verify,
            options.timeouts,
            options.retry.clone(),
            options.observer,
        )?
        .share_rate_limit(options.rate_limits.host(host.api_host()));
        Ok(Registry {
            inner: Arc::new(Inner {
                auth: Auth::new(
                    host.to_string(),
                    match options.credential_provider {
                        Some(provider) => CredentialSource::Provider(provider),
                        None => CredentialSource::Fixed(options.credentials),
                    },
                )
                .with_origin(options.credentials_origin),
                host,
                transport,
                chunk_size: options.chunk_size.max(1),
                page_size: options.page_size.max(1),
                chunked_uploads: AtomicBool::new(options.chunked_uploads),
                retry: options.retry,
                manifest_head: options.manifest_head.unwrap_or_default(),
            }),
            tries: None,
        })
    }

    /// The registry this client talks to.
    pub fn host(&self) -> &RegistryHost {
        &self.inner.host
    }

    /// The retry policy of this client's requests.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// A handle on the same client whose requests all draw their retries from `tries`, so
    /// that the requests of one operation (a blob transfer) and the retries of the whole
    /// operation share one bound (docs/configuration.md, "The native engine").
    pub fn sharing_tries(&self, tries: &Tries) -> Registry {
        Registry {
            inner: self.inner.clone(),
            tries: Some(tries.clone()),
        }
    }

    /// Whether both handles are the same client: same registry, same credentials (the run's
    /// clients are shared per registry and identity), so what one may read the other may too.
    pub fn same_client(&self, other: &Registry) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// What this client learned about manifest HEAD on its host, for another client of the
    /// same host to share ([`RegistryOptions::manifest_head`]).
    pub fn manifest_head_use(&self) -> Arc<ManifestHeadUse> {
        Arc::clone(&self.inner.manifest_head)
    }

    /// How many bearer tokens this client fetched so far (shared by clones): a measure of how
    /// well the token cache works.
    pub fn tokens_fetched(&self) -> u64 {
        self.inner.auth.tokens_fetched()
    }

    /// Checks that the registry answers the distribution API and accepts our credentials.
    ///
    /// # Errors
    ///
    /// A registry [`Error`]: unreachable, not a distribution registry, or the credentials refused.
    pub async fn ping(&self) -> Result<()> {
        let context = format!("checking registry {}", self.inner.host);
        let url = self.url("v2/").await.map_err(|e| e.context(&context))?;
        let response = self
            .execute(Request::new(Method::GET, url), &[])
            .await
            .map_err(|e| e.context(&context))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(response, "the registry", &context).await)
        }
    }

    /// What the registry says about a manifest (digest, size, and its type when the registry
    /// declares a manifest type), without downloading it when it can; `None` when it does not
    /// exist. On Docker Hub a HEAD does not count against the pull limit.
    ///
    /// A HEAD's `Content-Type` is only a hint: [`ManifestHead::media_type`] is `None` unless
    /// it names a manifest type, and then the manifest itself must settle it. A HEAD
    /// refused with anything but 2xx, 401 or a transient status (404, 403, 405, as Nexus
    /// and some proxies answer) is asked again with GET before anything is concluded; once a
    /// GET succeeded where HEAD was refused, this client uses GET for manifest checks for
    /// the rest of the run (docs/behaviour.md#up-to-date-checks).
    ///
    /// # Errors
    /// The registry's refusal (401, 403 to the GET too, 5xx and 429 after retries), network
    /// failures, and what [`Registry::get_manifest`] refuses when a GET was needed.
    pub async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
    ) -> Result<Option<ManifestHead>> {
        let context = format!("checking manifest {}", self.display(repo, reference));
        // The first check on a registry goes alone, so that the checks waiting behind it know
        // whether HEAD works there: a registry that refuses HEAD costs one extra request, not
        // one per check in flight.
        let mut _first = None;
        if self.inner.manifest_head.state.load(Ordering::Relaxed) == HEAD_UNKNOWN {
            let mut probed = self.inner.manifest_head.probe.lock().await;
            if !*probed {
                *probed = true;
                _first = Some(probed);
            }
        }
        let mut refused = None;
        if self.inner.manifest_head.state.load(Ordering::Relaxed) != HEAD_UNUSABLE {
            let response = self
                .manifest_request(Method::HEAD, repo, reference)
                .await
                .map_err(|e| e.context(&context))?;
            let status = response.status();
            if status.is_success() {
                let headers = response.headers();
                let digest = header_text(headers, "docker-content-digest")
                    .and_then(|v| Digest::parse(v).ok());
                let size =
                    header_text(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok());
                let media_type = header_text(headers, CONTENT_TYPE.as_str())
                    .and_then(media_type::known)
                    .map(str::to_owned);
                // Content-Length is optional (CDNs and proxies drop it on HEAD): the digest is
                // what a check needs.
                if let Some(digest) = digest {
                    self.inner
                        .manifest_head
                        .state
                        .store(HEAD_WORKS, Ordering::Relaxed);
                    return Ok(Some(ManifestHead {
                        digest,
                        size,
                        media_type,
                        manifest: None,
                    }));
                }
                // Some registries omit the digest on HEAD: fetch the manifest to learn it.
            } else if status == StatusCode::UNAUTHORIZED || retryable_status(status) {
                return Err(self
                    .status_error(response, manifest_subject(reference), &context)
                    .await);
            } else if status == StatusCode::NOT_FOUND
                && self.inner.manifest_head.state.load(Ordering::Relaxed) == HEAD_WORKS
            {
                // HEAD answered here before: its 404 is a real one.
                return Ok(None);
            } else {
                refused = Some(status);
            }
        }
        match self.get_manifest(repo, reference).await {
            Ok(manifest) => {
                if let Some(status) = refused {
                    self.head_refused(status);
                }
                Ok(Some(ManifestHead {
                    digest: manifest.digest.clone(),
                    size: Some(manifest.bytes.len() as u64),
                    media_type: Some(manifest.media_type.clone()),
                    manifest: Some(manifest),
                }))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Notes that this registry refused a manifest HEAD that a GET then answered: from now
    /// on manifest checks use GET here (one request each, as before, but a GET). Logged once.
    fn head_refused(&self, status: StatusCode) {
        if self
            .inner
            .manifest_head
            .state
            .swap(HEAD_UNUSABLE, Ordering::Relaxed)
            != HEAD_UNUSABLE
        {
            tracing::info!(
                registry = %self.inner.host,
                status = status.as_u16(),
                "registry {} answers manifest HEAD requests with HTTP {} but GET works: checking manifests with GET there for the rest of the run",
                self.inner.host,
                status.as_u16()
            );
        }
    }

    /// Downloads a manifest as raw bytes (at most 4 MiB) and checks it: it must be JSON of a
    /// manifest's shape, and hash to the digest asked for or, for a tag, to the
    /// `Docker-Content-Digest` the registry sent with it.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] for a 404; [`ErrorKind::DigestMismatch`] when the bytes do not
    /// hash to the digest they claim; [`ErrorKind::Protocol`] for a body that is no manifest
    /// (truncated JSON, an HTML page); [`ErrorKind::TooLarge`] above 4 MiB; the registry's
    /// refusals and network failures. Each names the registry and the reference.
    pub async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
    ) -> Result<Manifest> {
        let context = format!("pulling manifest {}", self.display(repo, reference));
        let response = self
            .manifest_request(Method::GET, repo, reference)
            .await
            .map_err(|e| e.context(&context))?;
        if !response.status().is_success() {
            return Err(self
                .status_error(response, manifest_subject(reference), &context)
                .await);
        }
        let content_type =
            header_text(response.headers(), CONTENT_TYPE.as_str()).map(str::to_owned);
        let claimed =
            header_text(response.headers(), "docker-content-digest").map(|v| truncate(v, 80));
        let bytes = read_limited(response, MAX_MANIFEST_SIZE, "manifest")
            .await
            .map_err(|e| e.context(&context))?;
        let manifest = Manifest::from_bytes(content_type.as_deref(), bytes)
            .map_err(|e| e.context(&context))?;
        let mismatch = |claimed: &str| {
            Error::new(
                ErrorKind::DigestMismatch,
                format!(
                    "the registry sent content whose digest is {}, not {claimed}",
                    manifest.digest
                ),
            )
            .context(&context)
        };
        if let Some(expected) = reference.digest()
            && *expected != manifest.digest
        {
            return Err(mismatch(expected.as_str()));
        }
        // Schema 1's digest is of the payload without its signatures, not of these bytes.
        if let Some(claimed) = claimed
            && !media_type::is_schema1(&manifest.media_type)
            && claimed != manifest.digest.as_str()
        {
            return Err(mismatch(&claimed));
        }
        Ok(manifest)
    }

    /// Uploads a manifest byte for byte under a tag or its digest. Its blobs (or, for an index,
    /// its child manifests) must already be in the repository.
    ///
    /// # Errors
    ///
    /// A registry [`Error`]: the registry refused the manifest (e.g. a blob it references is
    /// missing), or could not be reached.
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
        manifest: &Manifest,
    ) -> Result<()> {
        let context = format!("pushing manifest {}", self.display(repo, reference));
        manifest.check_pushable().map_err(|e| e.context(&context))?;
        if let Some(digest) = reference.digest()
            && *digest != manifest.digest
        {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!(
                    "the manifest's digest is {}, not the one it is pushed as",
                    manifest.digest
                ),
            )
            .context(context));
        }
        self.send_manifest(repo, reference, manifest, &context)
            .await?;
        // Until a HEAD has answered 2xx here, every HEAD 404 costs a confirming GET: a
        // manifest we just pushed settles whether HEAD works, with one request.
        if self.inner.manifest_head.state.load(Ordering::Relaxed) == HEAD_UNKNOWN {
            let pushed = TagOrDigest::Digest(manifest.digest.clone());
            if let Err(e) = self.head_manifest(repo, &pushed).await {
                tracing::debug!("checking a pushed manifest failed: {e}");
            }
        }
        Ok(())
    }

    /// Sends `manifest` with a PUT to `repo` under `reference` and checks the answer: a
    /// success, and the digest the registry computed when it names one. Returns the answer's
    /// headers (`OCI-Subject` for a referrer). Errors carry `context`.
    pub(crate) async fn send_manifest(
        &self,
        repo: &Repository,
        reference: &TagOrDigest,
        manifest: &Manifest,
        context: &str,
    ) -> Result<reqwest::header::HeaderMap> {
        let url = self
            .url(&format!("v2/{repo}/manifests/{reference}"))
            .await
            .map_err(|e| e.context(context))?;
        let mut request = Request::new(Method::PUT, url);
        if let Some(v) = header_value(&manifest.media_type) {
            request.headers.insert(CONTENT_TYPE, v);
        }
        request.body = Body::Bytes(manifest.bytes.clone());
        let response = self
            .execute(request, &[Scope::push(repo)])
            .await
            .map_err(|e| e.context(context))?;
        if !response.status().is_success() {
            return Err(self.status_error(response, "the repository", context).await);
        }
        check_returned_digest(response.headers(), &manifest.digest)
            .map_err(|e| e.context(context))?;
        Ok(response.headers().clone())
    }

    async fn manifest_request(
        &self,
        method: Method,
        repo: &Repository,
        reference: &TagOrDigest,
    ) -> Result<Response> {
        let url = self
            .url(&format!("v2/{repo}/manifests/{reference}"))
            .await?;
        let mut request = Request::new(method, url);
        if let Some(accept) = header_value(&media_type::ALL.join(", ")) {
            request.headers.insert(ACCEPT, accept);
        }
        self.execute(request, &[Scope::pull(repo)]).await
    }

    /// `registry/repo:tag` or `registry/repo@digest`, for messages.
    pub(crate) fn display(&self, repo: &Repository, reference: &TagOrDigest) -> String {
        let sep = if reference.digest().is_some() {
            '@'
        } else {
            ':'
        };
        format!("{}/{repo}{sep}{reference}", self.inner.host)
    }

    /// An absolute URL below the registry's API root.
    pub(crate) async fn url(&self, path: &str) -> Result<Url> {
        let base = self.inner.transport.base_url().await?;
        base.join(path).map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                format!("cannot build a URL for '{path}': {e}"),
            )
        })
    }

    /// Sends a request with authentication for `scopes`. A 401 teaches us the registry's
    /// challenge (or tells us our token or cloud credentials expired); a request that can be
    /// replayed is then sent once more with fresh authentication.
    pub(crate) async fn execute(&self, mut request: Request, scopes: &[Scope]) -> Result<Response> {
        let inner = &self.inner;
        let sent = inner.auth.authorization(&inner.transport, scopes).await?;
        if let Some(value) = &sent {
            request.headers.insert(AUTHORIZATION, value.clone());
        }
        let authorized = sent.is_some();
        if request.tries.is_none() {
            request.tries = self.tries.clone();
        }
        let replay = request.try_clone();
        let response = inner.transport.send(request).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(mut again) = replay else {
            return Ok(response);
        };
        let challenge =
            header_text(response.headers(), WWW_AUTHENTICATE.as_str()).map(str::to_owned);
        // Credentials we sent were refused: a provider renews them (an expired cloud token).
        let renewed = authorized && inner.auth.rejected();
        if !inner
            .auth
            .learn(challenge.as_deref(), scopes, sent.as_ref())
            && !renewed
        {
            return Ok(response);
        }
        match inner.auth.authorization(&inner.transport, scopes).await? {
            Some(value) => {
                again.headers.insert(AUTHORIZATION, value);
            }
            None => return Ok(response),
        }
        inner.transport.send(again).await
    }

    /// Turns an unexpected answer into an error, with the registry's own error code and
    /// message. `subject` names what a 404 is about ("the manifest", "the blob").
    pub(crate) async fn status_error(
        &self,
        response: Response,
        subject: &str,
        context: &str,
    ) -> Error {
        let status = response.status();
        let registry_says = registry_error_text(response).await;
        let says = registry_says
            .as_deref()
            .map(|t| format!(" (registry said: {t})"))
            .unwrap_or_default();
        let (kind, reason) = match status {
            StatusCode::UNAUTHORIZED => (
                ErrorKind::Unauthorized,
                match self.inner.auth.user_text() {
                    Some(user) => format!("the registry refused the credentials of {user}{says}"),
                    None => {
                        format!("the registry requires credentials, and none are configured{says}")
                    }
                },
            ),
            StatusCode::FORBIDDEN => (ErrorKind::Forbidden, format!("access denied{says}")),
            StatusCode::NOT_FOUND => (
                ErrorKind::NotFound,
                format!("{subject} does not exist{says}"),
            ),
            StatusCode::TOO_MANY_REQUESTS => (
                ErrorKind::Registry,
                format!("the registry answered HTTP 429 Too Many Requests (its rate limit){says}"),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                ErrorKind::TooLarge,
                format!("the registry refused the size{says}"),
            ),
            _ => (
                ErrorKind::Registry,
                format!(
                    "the registry answered HTTP {} {}{says}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                ),
            ),
        };
        Error::new(kind, reason)
            .with_status(status.as_u16())
            .context(context)
    }
}

impl Request {
    /// A copy for a second attempt, when the body allows.
    pub(crate) fn try_clone(&self) -> Option<Request> {
        let body = match &self.body {
            Body::Empty => Body::Empty,
            Body::Bytes(b) => Body::Bytes(b.clone()),
            Body::Stream(..) => return None,
        };
        Some(Request {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body,
            idempotent: self.idempotent,
            streaming_response: self.streaming_response,
            commits: self.commits,
            tries: self.tries.clone(),
        })
    }
}

/// What a 404 for a manifest means to a user.
fn manifest_subject(reference: &TagOrDigest) -> &'static str {
    match reference {
        TagOrDigest::Tag(_) => "the tag",
        TagOrDigest::Digest(_) => "the manifest",
    }
}

pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the registry's `Docker-Content-Digest` against ours, when it sends one.
pub(crate) fn check_returned_digest(headers: &HeaderMap, ours: &Digest) -> Result<()> {
    match header_text(headers, "docker-content-digest") {
        Some(theirs) if theirs != ours.as_str() => Err(Error::new(
            ErrorKind::DigestMismatch,
            format!(
                "the registry stored it as {}, expected {ours}",
                truncate(theirs, 80)
            ),
        )),
        _ => Ok(()),
    }
}

/// Reads a response body, refusing more than `limit` bytes without buffering them; `what`
/// names the body in the error (`manifest`, `tag list page`).
pub(crate) async fn read_limited(
    mut response: Response,
    limit: usize,
    what: &str,
) -> Result<Bytes> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(error::response_too_large(what, limit));
    }
    let mut buffer = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
        if buffer.len() + chunk.len() > limit {
            return Err(error::response_too_large(what, limit));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// The registry's explanation from an error body: `CODE: message`, truncated; `None` when
/// the body is empty or not the distribution API's error JSON. Reads at most
/// [`MAX_ERROR_BODY`] bytes.
async fn registry_error_text(response: Response) -> Option<String> {
    let bytes = read_limited(response, MAX_ERROR_BODY, "error body")
        .await
        .ok()?;
    error::registry_error_text(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn returned_digest_must_match() {
        let ours = Digest::of(b"x");
        let mut h = HeaderMap::new();
        assert!(check_returned_digest(&h, &ours).is_ok());
        h.insert(
            "docker-content-digest",
            HeaderValue::from_str(ours.as_str()).unwrap(),
        );
        assert!(check_returned_digest(&h, &ours).is_ok());
        h.insert(
            "docker-content-digest",
            HeaderValue::from_str(Digest::of(b"y").as_str()).unwrap(),
        );
        assert_eq!(
            check_returned_digest(&h, &ours).unwrap_err().kind(),
            ErrorKind::DigestMismatch
        );
    }

    #[test]
    fn options_debug_hides_password() {
        let mut o = RegistryOptions::new(RegistryHost::parse("r.io").unwrap());
        o.credentials = Some(Credentials::new("u", "hunter2-secret"));
        assert!(!format!("{o:?}").contains("hunter2-secret"));
    }
}
