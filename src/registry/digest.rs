//! Content digests and on-the-fly verification of streamed content.
//!
//! Blobs are streamed from one registry to another without being buffered whole, so their
//! digest can only be checked as the bytes pass by. [`VerifyingStream`] does that and turns
//! the last chunk into an error when the content is wrong: an upload fed by it is aborted
//! before the registry could commit anything.

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use ring::digest::{Context as Sha256, SHA256};

use super::error::{Error, ErrorKind, Result};

/// A content digest, `sha256:<64 lowercase hex digits>`.
///
/// Only sha256 is accepted: it is what every registry produces, and it is the one algorithm we
/// can verify. Parsing is strict so a malformed digest fails early with a clear message rather
/// than as a confusing 404 later.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    text: String,
}

impl Digest {
    /// Parses `sha256:<hex>`.
    ///
    /// # Errors
    ///
    /// When `text` is not `sha256:` with 64 lowercase hex digits.
    pub fn parse(text: &str) -> Result<Digest> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::Invalid,
                format!(
                    "invalid digest '{}': {why}",
                    crate::registry::error::truncate(text, 80)
                ),
            )
        };
        let Some((algorithm, hex)) = text.split_once(':') else {
            return Err(invalid("expected <algorithm>:<hex>"));
        };
        if algorithm != "sha256" {
            return Err(invalid(&format!(
                "unsupported algorithm '{algorithm}' (only sha256 is supported)"
            )));
        }
        if hex.len() != 64 {
            return Err(invalid("a sha256 digest has 64 hex digits"));
        }
        if !is_lower_hex(hex) {
            return Err(invalid("only lowercase hex digits are allowed"));
        }
        Ok(Digest {
            text: text.to_owned(),
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut hasher = Sha256::new(&SHA256);
        hasher.update(bytes);
        Digest::from_hasher(hasher)
    }

    /// ring's SHA-256 (assembly, with the CPU's SHA extensions when present): blobs of
    /// gigabytes pass through here.
    fn from_hasher(hasher: Sha256) -> Digest {
        Digest {
            text: format!("sha256:{}", lower_hex(hasher.finish().as_ref())),
        }
    }

    /// The full digest, `sha256:<hex>`, as used in URLs and manifests.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The hex part, without the algorithm.
    pub fn hex(&self) -> &str {
        self.text.split_once(':').map_or("", |(_, hex)| hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        Digest::parse(s)
    }
}

/// A stream of content chunks, as produced by [`get_blob`](super::Registry::get_blob) and
/// consumed by [`push_blob`](super::Registry::push_blob).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// Wraps a stream of bytes, hashing and counting them as they pass.
///
/// When the content turns out longer than expected, or once the expected size is reached and
/// the digest differs, it yields an error *instead of* the offending chunk, so a consumer that
/// forwards the chunks (an upload) never sends a complete, wrong body. A stream that ends early
/// yields an error too.
pub struct VerifyingStream<S> {
    inner: S,
    expected: Digest,
    size: u64,
    seen: u64,
    hasher: Option<Sha256>,
    context: String,
    done: bool,
}

impl<S> VerifyingStream<S> {
    /// Verifies `inner` against `expected` and `size`; `context` names the blob in errors.
    pub fn new(inner: S, expected: Digest, size: u64, context: impl Into<String>) -> Self {
        VerifyingStream {
            inner,
            expected,
            size,
            seen: 0,
            hasher: Some(Sha256::new(&SHA256)),
            context: context.into(),
            done: false,
        }
    }

    fn fail(&mut self, reason: String) -> Poll<Option<Result<Bytes>>> {
        self.done = true;
        Poll::Ready(Some(Err(
            Error::new(ErrorKind::DigestMismatch, reason).context(self.context.clone())
        )))
    }

    /// Checks the digest once every expected byte has been seen.
    fn verify_complete(&mut self) -> Option<String> {
        let hasher = self.hasher.take()?;
        let actual = Digest::from_hasher(hasher);
        (actual != self.expected).then(|| {
            format!(
                "content does not match its digest (expected {}, got {actual})",
                self.expected
            )
        })
    }
}

impl<S> Stream for VerifyingStream<S>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
{
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                let seen = self.seen + chunk.len() as u64;
                if seen > self.size {
                    let reason = format!(
                        "content is longer than its declared size of {} bytes",
                        self.size
                    );
                    return self.fail(reason);
                }
                self.seen = seen;
                if let Some(hasher) = self.hasher.as_mut() {
                    hasher.update(&chunk);
                }
                if seen == self.size
                    && let Some(reason) = self.verify_complete()
                {
                    return self.fail(reason);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                if self.seen < self.size {
                    let reason =
                        format!("content ended after {} of {} bytes", self.seen, self.size);
                    return self.fail(reason);
                }
                // Only reached without data when the expected size is 0.
                if let Some(reason) = self.verify_complete() {
                    return self.fail(reason);
                }
                self.done = true;
                Poll::Ready(None)
            }
        }
    }
}

/// `bytes` as lowercase hex digits, two per byte (how digests write a hash).
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    text
}

/// Whether `text` is made of lowercase hex digits only (the hex part of a digest).
pub(crate) fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{StreamExt, stream};

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes>> + Unpin {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    async fn collect(s: impl Stream<Item = Result<Bytes>> + Unpin) -> Vec<Result<Bytes>> {
        s.collect().await
    }

    #[test]
    fn parse_is_strict() {
        let hex = "a".repeat(64);
        assert!(Digest::parse(&format!("sha256:{hex}")).is_ok());
        for bad in [
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha512:{hex}"),
            hex.clone(),
            format!("sha256:{}g", "a".repeat(63)),
        ] {
            let err = Digest::parse(&bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid, "{bad}");
        }
    }

    #[test]
    fn digest_of_empty() {
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[tokio::test]
    async fn passes_matching_content() {
        let d = Digest::of(b"hello world");
        let out = collect(VerifyingStream::new(
            chunks(&[b"hello ", b"world"]),
            d,
            11,
            "blob",
        ))
        .await;
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|c| c.is_ok()));
    }

    #[tokio::test]
    async fn wrong_digest_replaces_last_chunk() {
        let d = Digest::of(b"hello world");
        let out = collect(VerifyingStream::new(
            chunks(&[b"hello ", b"WORLD"]),
            d,
            11,
            "blob",
        ))
        .await;
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        let err = out[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DigestMismatch);
        assert!(err.to_string().starts_with("blob: content does not match"));
    }

    #[tokio::test]
    async fn too_long_and_too_short() {
        let d = Digest::of(b"hello");
        let out = collect(VerifyingStream::new(
            chunks(&[b"hel", b"lo!"]),
            d.clone(),
            5,
            "b",
        ))
        .await;
        assert!(out[1].is_err());
        let out = collect(VerifyingStream::new(chunks(&[b"hel"]), d, 5, "b")).await;
        assert_eq!(out.len(), 2);
        assert!(
            out[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("ended after 3 of 5")
        );
    }

    #[tokio::test]
    async fn empty_content() {
        let out = collect(VerifyingStream::new(chunks(&[]), Digest::of(b""), 0, "b")).await;
        assert!(out.is_empty());
        let out = collect(VerifyingStream::new(chunks(&[]), Digest::of(b"x"), 0, "b")).await;
        assert_eq!(out.len(), 1);
        assert!(out[0].is_err());
    }
}
