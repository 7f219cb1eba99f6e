//! Blobs: existence checks, streamed downloads, cross-repository mounts and uploads.
//!
//! Uploads follow the distribution API: open a session (POST), then send the content in one
//! streamed PUT with `?digest=`, or in PATCH chunks followed by the PUT when the registry
//! demands chunks. A failed or aborted upload never commits: the registry only stores a blob
//! when the final PUT completes with content matching the digest.
//!
//! Only what the distribution spec makes mandatory is required of a registry; optional
//! headers have a fallback (docs/behaviour.md, "HTTP: what dregsy requires of a registry, and
//! what it tolerates"). Sizes and digests come from the descriptor in the manifest, so a blob
//! answer without `Content-Length` (chunked, or a HEAD without payload headers) is fine; a
//! `Content-Length` that contradicts the descriptor is an error.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};

use super::auth::Scope;
use super::client::{Registry, check_returned_digest, header_text};
use super::digest::{ByteStream, Digest, VerifyingStream};
use super::error::{Error, ErrorKind, Result, request_body_too_large, truncate};
use super::reference::Repository;
use super::transport::{Body, Request, header_value, redact};

/// A blob being downloaded: its size and its content, verified against the descriptor's size
/// and digest as it streams (the last chunk is replaced by an error when they do not match).
pub struct BlobStream {
    size: u64,
    stream: ByteStream,
}

impl BlobStream {
    /// The blob's size in bytes, as the descriptor gives it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The content as a plain stream.
    pub fn into_stream(self) -> ByteStream {
        self.stream
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobStream({} bytes)", self.size)
    }
}

/// An open upload, from [`Registry::start_upload`] or a mount the registry declined.
pub struct UploadSession {
    repository: Repository,
    location: Url,
    /// The registry's `OCI-Chunk-Min-Length`: it wants chunks of at least this size.
    min_chunk: Option<usize>,
}

impl UploadSession {
    /// The repository the upload is for.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }
}

impl fmt::Debug for UploadSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The query holds the registry's upload state: not for logs.
        write!(f, "UploadSession({})", redact(&self.location))
    }
}

/// What a cross-repository mount did.
#[derive(Debug)]
pub enum MountOutcome {
    /// The blob is now in the target repository; nothing was transferred.
    Mounted,
    /// The registry did not mount (blob unknown there, or not allowed) and opened an upload
    /// session instead: push the content with [`Registry::upload_blob`].
    NotMounted(UploadSession),
}

impl Registry {
    /// Whether `repo` holds the blob `digest` of `size` bytes. A 200 means present, with or
    /// without `Content-Length` (a HEAD answer may leave payload headers out).
    ///
    /// # Errors
    /// When the registry cannot be asked, answers neither 2xx nor 404, or states a
    /// `Content-Length` other than `size` (kind [`ErrorKind::DigestMismatch`]).
    pub async fn head_blob(&self, repo: &Repository, digest: &Digest, size: u64) -> Result<bool> {
        let (response, context) = self
            .blob_request(Method::HEAD, "checking blob", repo, digest)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => check_length(&response, size)
                .map(|()| true)
                .map_err(|e| e.context(&context)),
            _ => Err(self.status_error(response, "the blob", &context).await),
        }
    }

    /// Starts downloading the blob `digest` of `size` bytes (both from its descriptor). The
    /// stream verifies size and digest on the fly, whether or not the registry sends a
    /// `Content-Length`; redirects (to a storage host or CDN) are followed without our
    /// credentials. No byte arriving for the stall limit fails the stream ([`super::Timeouts`]).
    ///
    /// # Errors
    /// When the registry cannot be reached, does not answer 2xx, or states a `Content-Length`
    /// other than `size` (kind [`ErrorKind::DigestMismatch`]); content errors come through the
    /// stream.
    pub async fn get_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobStream> {
        let (response, context) = self
            .blob_request(Method::GET, "pulling blob", repo, digest)
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(response, "the blob", &context).await);
        }
        check_length(&response, size).map_err(|e| e.context(&context))?;
        let body_context = context.clone();
        let body = Box::pin(self.inner.transport.body_stream(response))
            .map_err(move |e| e.context(body_context.clone()));
        let verified = VerifyingStream::new(body, digest.clone(), size, context);
        Ok(BlobStream {
            size,
            stream: Box::pin(verified),
        })
    }

    /// Sends `method` (HEAD or GET) for the blob `digest` of `repo` with pull access; a GET's
    /// body is left to stream. Returns the answer whatever its status, and the context for the
    /// caller's messages (`doing` and the blob's name, e.g. "pulling blob <repo>@<digest>").
    async fn blob_request(
        &self,
        method: Method,
        doing: &str,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<(Response, String)> {
        let context = format!("{doing} {}", self.display(repo, &digest.clone().into()));
        let url = self
            .url(&format!("v2/{repo}/blobs/{digest}"))
            .await
            .map_err(|e| e.context(&context))?;
        let mut request = Request::new(method.clone(), url);
        request.streaming_response = method == Method::GET;
        let response = self
            .execute(request, &[Scope::pull(repo)])
            .await
            .map_err(|e| e.context(&context))?;
        Ok((response, context))
    }

    /// Asks the registry to link a blob from `from_repo` into `repo` without transferring it.
    /// Needs pull access to `from_repo`; the registry opens an upload session when it cannot.
    ///
    /// # Errors
    /// Any answer but 201 and 202 (401, 403, 404, an HTML page from a proxy): a mount is an
    /// optimisation, so callers treat every error as "not mounted" and upload instead.
    pub async fn mount_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        from_repo: &Repository,
    ) -> Result<MountOutcome> {
        let context = format!(
            "mounting blob {} from {from_repo}",
            self.display(repo, &digest.clone().into())
        );
        let mut url = self
            .url(&format!("v2/{repo}/blobs/uploads/"))
            .await
            .map_err(|e| e.context(&context))?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from_repo.as_str());
        let response = self
            .execute(
                Request::new(Method::POST, url),
                &[Scope::push(repo), Scope::pull(from_repo)],
            )
            .await
            .map_err(|e| e.context(&context))?;
        match response.status() {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => self
                .session_from(repo, &response)
                .map(MountOutcome::NotMounted)
                .map_err(|e| e.context(&context)),
            _ => Err(self
                .status_error(response, "the repository", &context)
                .await),
        }
    }

    /// Opens an upload session in `repo`. The spec's answer is 202; any 2xx with a `Location`
    /// (absolute or relative) is taken.
    ///
    /// # Errors
    ///
    /// A registry [`Error`] (refused, not found, network, or an answer without `Location`).
    pub async fn start_upload(&self, repo: &Repository) -> Result<UploadSession> {
        let context = format!("starting an upload to {}/{repo}", self.host());
        let url = self
            .url(&format!("v2/{repo}/blobs/uploads/"))
            .await
            .map_err(|e| e.context(&context))?;
        let response = self
            .execute(Request::new(Method::POST, url), &[Scope::push(repo)])
            .await
            .map_err(|e| e.context(&context))?;
        if !response.status().is_success() {
            return Err(self
                .status_error(response, "the repository", &context)
                .await);
        }
        self.session_from(repo, &response)
            .map_err(|e| e.context(&context))
    }

    /// Uploads a blob of `size` bytes from `stream` into `repo`: opens a session, then sends
    /// the content. The stream is read once and never buffered whole.
    ///
    /// # Errors
    ///
    /// As [`Registry::start_upload`] and [`Registry::upload_blob`].
    pub async fn push_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        stream: impl Stream<Item = Result<Bytes>> + Send + 'static,
    ) -> Result<()> {
        let session = self.start_upload(repo).await?;
        self.upload_blob(session, digest, size, stream).await
    }

    /// Sends a blob's content into an open session and commits it under `digest`. When the
    /// stream fails (e.g. a digest mismatch detected by [`BlobStream`]) the request is aborted
    /// and nothing is committed.
    ///
    /// # Errors
    ///
    /// A registry [`Error`]: the stream failed (nothing is committed), or the registry refused
    /// the content or the commit.
    pub async fn upload_blob(
        &self,
        session: UploadSession,
        digest: &Digest,
        size: u64,
        stream: impl Stream<Item = Result<Bytes>> + Send + 'static,
    ) -> Result<()> {
        let context = format!(
            "pushing blob {}",
            self.display(&session.repository, &digest.clone().into())
        );
        let chunked =
            session.min_chunk.is_some() || self.inner.chunked_uploads.load(Ordering::Relaxed);
        let location = session.location.clone();
        let result = if chunked {
            self.upload_chunked(session, digest, stream).await
        } else {
            self.upload_monolithic(session, digest, size, stream).await
        };
        // After a timeout the registry may still be committing what it received: cancelling
        // could undo that, and a session left over is purged by the registry in time.
        if result
            .as_ref()
            .is_err_and(|e| e.kind() != ErrorKind::Timeout)
        {
            self.cancel_upload(location).await;
        }
        result.map_err(|e| e.context(&context))
    }

    async fn upload_monolithic(
        &self,
        session: UploadSession,
        digest: &Digest,
        size: u64,
        stream: impl Stream<Item = Result<Bytes>> + Send + 'static,
    ) -> Result<()> {
        let mut url = session.location;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let mut request = Request::new(Method::PUT, url);
        request.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        request.body = Body::Stream(Box::pin(stream), size);
        request.commits = Some(size);
        let scopes = [Scope::push(&session.repository)];
        let response = self.execute(request, &scopes).await?;
        let status = response.status();
        if status == StatusCode::CREATED || status.is_success() {
            return check_returned_digest(response.headers(), digest);
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Err(request_body_too_large(size, false));
        }
        let error = self.status_error(response, "the upload", "").await;
        let wants_chunks = status == StatusCode::RANGE_NOT_SATISFIABLE
            || (status == StatusCode::BAD_REQUEST
                && error.to_string().contains("BLOB_UPLOAD_INVALID"));
        if wants_chunks && !self.inner.chunked_uploads.swap(true, Ordering::Relaxed) {
            tracing::info!(registry = %self.host(), "registry refused a monolithic upload; using chunks from now on");
            return Err(error.transient());
        }
        Err(error)
    }

    async fn upload_chunked(
        &self,
        session: UploadSession,
        digest: &Digest,
        stream: impl Stream<Item = Result<Bytes>> + Send + 'static,
    ) -> Result<()> {
        let chunk_size = self.inner.chunk_size.max(session.min_chunk.unwrap_or(0));
        let scopes = [Scope::push(&session.repository)];
        let mut location = session.location;
        let mut offset: u64 = 0;
        let mut buffer = BytesMut::new();
        let mut stream = Box::pin(stream);
        loop {
            let next = stream.next().await.transpose()?;
            let finished = next.is_none();
            if let Some(bytes) = next {
                buffer.extend_from_slice(&bytes);
            }
            while buffer.len() >= chunk_size || (finished && !buffer.is_empty()) {
                let take = buffer.len().min(chunk_size);
                let chunk = buffer.split_to(take).freeze();
                location = self.send_chunk(&location, offset, chunk, &scopes).await?;
                offset += take as u64;
            }
            if finished {
                break;
            }
        }
        location
            .query_pairs_mut()
            .append_pair("digest", digest.as_str());
        let mut commit = Request::new(Method::PUT, location);
        commit.commits = Some(offset);
        let response = self.execute(commit, &scopes).await?;
        if !response.status().is_success() {
            return Err(self.status_error(response, "the upload", "").await);
        }
        check_returned_digest(response.headers(), digest)
    }

    /// Sends one PATCH chunk; returns where the next one goes.
    async fn send_chunk(
        &self,
        location: &Url,
        offset: u64,
        chunk: Bytes,
        scopes: &[Scope],
    ) -> Result<Url> {
        let end = offset + chunk.len() as u64 - 1;
        let mut request = Request::new(Method::PATCH, location.clone());
        // A chunk the registry may have stored must not be sent twice.
        request.idempotent = false;
        request.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if let Some(range) = header_value(&format!("{offset}-{end}")) {
            request.headers.insert("content-range", range);
        }
        request
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(chunk.len()));
        let sent = chunk.len() as u64;
        request.body = Body::Bytes(chunk);
        let response = self.execute(request, scopes).await?;
        if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Err(request_body_too_large(sent, true));
        }
        // The spec says 202; some registries answer 204. The `Range` they send is not needed:
        // we send chunks in order and fail on any refusal.
        if !response.status().is_success() {
            return Err(self.status_error(response, "the upload", "").await);
        }
        resolve_location(location, &response)
    }

    /// Best-effort cleanup of an abandoned session, so it does not linger in the registry.
    async fn cancel_upload(&self, location: Url) {
        let repo_scope: Vec<Scope> = Vec::new();
        let mut request = Request::new(Method::DELETE, location);
        request.idempotent = false;
        if let Err(e) = self.execute(request, &repo_scope).await {
            tracing::debug!(error = %e, "could not cancel an upload");
        }
    }

    fn session_from(&self, repo: &Repository, response: &Response) -> Result<UploadSession> {
        let location = resolve_location(response.url(), response)?;
        let min_chunk = header_text(response.headers(), "oci-chunk-min-length")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0);
        Ok(UploadSession {
            repository: repo.clone(),
            location,
            min_chunk,
        })
    }
}

/// The `Location` of an upload, which may be relative to the request URL or absolute, and
/// may carry a query (upload state) that must be kept.
fn resolve_location(base: &Url, response: &Response) -> Result<Url> {
    let text = header_text(response.headers(), LOCATION.as_str()).ok_or_else(|| {
        Error::new(
            ErrorKind::Protocol,
            "the registry opened an upload without a Location header",
        )
    })?;
    base.join(text).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("the registry sent an invalid upload Location ({e})"),
        )
    })
}

/// Checks a blob answer's `Content-Length`, when there is one, against the descriptor's size.
/// It is optional (chunked answers, HEAD answers without payload headers); when present and
/// different, the registry holds or sends something else than the manifest describes.
fn check_length(response: &Response, size: u64) -> Result<()> {
    let Some(text) = header_text(response.headers(), CONTENT_LENGTH.as_str()) else {
        return Ok(());
    };
    match text.trim().parse::<u64>() {
        Ok(stated) if stated == size => Ok(()),
        Ok(stated) => Err(Error::new(
            ErrorKind::DigestMismatch,
            format!(
                "the registry says the blob has {stated} bytes (Content-Length), the manifest says {size}"
            ),
        )),
        Err(_) => Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "the registry sent an invalid Content-Length '{}'",
                truncate(text, 40)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_resolution() {
        let base = Url::parse("https://r.io/v2/a/blobs/uploads/").unwrap();
        let abs = base.join("https://other.io/up/1?_state=x").unwrap();
        assert_eq!(abs.as_str(), "https://other.io/up/1?_state=x");
        let mut rel = base.join("/v2/a/blobs/uploads/uuid?_state=abc").unwrap();
        rel.query_pairs_mut()
            .append_pair("digest", Digest::of(b"").as_str());
        assert_eq!(
            rel.as_str(),
            "https://r.io/v2/a/blobs/uploads/uuid?_state=abc&digest=sha256%3Ae3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
