//! The one error type of the registry client.
//!
//! Every error says what failed (the operation and its target: registry, repository, tag or
//! digest) and why, in words a user can act on. The [`ErrorKind`] lets the copy engine decide
//! what to do (retry, skip, fail the job) without parsing messages.

use std::error::Error as StdError;
use std::fmt;

use serde::Deserialize;

/// What went wrong, coarsely enough for the copy engine to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The registry could not be reached: unknown host, closed port, refused or reset connection.
    Unreachable,
    /// The registry's host name does not resolve (a typo, or a name only another network knows).
    UnknownHost,
    /// An established connection broke: reset, closed early, truncated response.
    Network,
    /// The TLS handshake failed: untrusted or mismatching certificate, or the server does not speak TLS.
    Tls,
    /// The registry (or its token service) rejected our credentials, or we sent none and it wants some.
    Unauthorized,
    /// The credentials were accepted but do not grant this operation.
    Forbidden,
    /// The manifest, tag, blob or repository does not exist.
    NotFound,
    /// The response is larger than we accept (manifests are limited to 4 MiB).
    TooLarge,
    /// Content did not match its digest or size.
    DigestMismatch,
    /// The operation is not supported (e.g. pushing a Docker schema 1 manifest).
    Unsupported,
    /// Reading or writing an OCI image layout on disk failed: a missing or unreadable file, a
    /// read-only or full file system, a file that does not follow the image-layout spec.
    Storage,
    /// The registry answered with an error status we do not map to a more specific kind.
    Registry,
    /// The registry answered something that does not follow the distribution API.
    Protocol,
    /// The request did not complete in time.
    Timeout,
    /// Our input is invalid: a malformed reference, repository name, digest or option.
    Invalid,
    /// The registry's rate limit is used up for this run: its `ratelimit-remaining` budget
    /// reached 0, or it kept answering 429 past the retry bound. No more requests go to that
    /// host in this run ([`Error::registry`] names it); the work left waits for the next run
    /// (docs/behaviour.md, "Rate limits").
    RateLimited,
}

/// An error of the registry client, with enough context to be shown to a user as it is.
///
/// Secrets (passwords, tokens) are never part of it.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    /// The operation and its target, e.g. `pulling manifest 127.0.0.1:5000/library/alpine:3.20`.
    context: String,
    /// Why it failed.
    reason: String,
    /// The HTTP status, when the registry answered.
    status: Option<u16>,
    /// Whether retrying later might help, beyond what the kind says.
    transient: bool,
    /// The registry host the error is about, when the kind concerns the whole host
    /// ([`ErrorKind::RateLimited`]).
    registry: Option<String>,
}

impl Error {
    /// Builds an error of `kind`; `reason` explains why in a user's words.
    pub(crate) fn new(kind: ErrorKind, reason: impl Into<String>) -> Self {
        Error {
            kind,
            context: String::new(),
            reason: reason.into(),
            status: None,
            transient: false,
            registry: None,
        }
    }

    /// Names the registry host a host-wide error is about.
    pub(crate) fn for_registry(mut self, registry: impl Into<String>) -> Self {
        self.registry = Some(registry.into());
        self
    }

    /// Adds the operation and its target, unless a more specific one is already set.
    pub(crate) fn context(mut self, context: impl Into<String>) -> Self {
        if self.context.is_empty() {
            self.context = context.into();
        }
        self
    }

    /// Puts the error inside an outer operation: its message is then led by `outer`
    /// (`outer: context: reason`), and its kind stays.
    pub(crate) fn within(mut self, outer: impl fmt::Display) -> Self {
        self.context = if self.context.is_empty() {
            outer.to_string()
        } else {
            format!("{outer}: {}", self.context)
        };
        self
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Marks an error as worth retrying even though its kind usually is not.
    pub(crate) fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    /// A copy, for an error that surfaces through another library's
    /// error (a failed body stream inside a reqwest error).
    pub(crate) fn duplicate(&self) -> Error {
        Error {
            kind: self.kind,
            context: self.context.clone(),
            reason: self.reason.clone(),
            status: self.status,
            transient: self.transient,
            registry: self.registry.clone(),
        }
    }

    /// What went wrong, for the engine to act on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The registry host a host-wide error is about: set for [`ErrorKind::RateLimited`], so the
    /// report can count the images left on that host.
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// The HTTP status the registry answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Whether trying again later may succeed: network failures, timeouts, throttling and
    /// server errors. The transport already retried these; the engine may retry the whole job.
    pub fn is_transient(&self) -> bool {
        if self.transient {
            return true;
        }
        match self.kind {
            ErrorKind::Unreachable | ErrorKind::Network | ErrorKind::Timeout => true,
            ErrorKind::Registry => matches!(self.status, Some(408 | 429) | Some(500..=599)),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.context.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.context, self.reason)
        }
    }
}

impl StdError for Error {}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error for an upload answered 413: a proxy in front of the registry, or the registry
/// itself, limits request bodies. `sent` is the size of the refused request body; `chunked`
/// says whether it was one chunk of a chunked upload (docs/configuration.md, `native.chunk-size`).
pub(crate) fn request_body_too_large(sent: u64, chunked: bool) -> Error {
    let size = format!("{sent} bytes ({:.1} MiB)", sent as f64 / (1024.0 * 1024.0));
    let reason = if chunked {
        format!(
            "the registry, or a proxy in front of it, refused an upload chunk of {size} with \
             HTTP 413: it limits request bodies; set 'native.chunk-size' below that limit"
        )
    } else {
        format!(
            "the registry, or a proxy in front of it, refused an upload of {size} in one request \
             with HTTP 413: it limits request bodies; if the registry accepts chunked uploads, \
             set 'native.chunk-size' (e.g. '8MiB') below that limit"
        )
    };
    Error::new(ErrorKind::TooLarge, reason).with_status(413)
}

/// A response body longer than we read whole: `the <what> is larger than <limit>, which we
/// refuse`, the limit in MiB or KiB when it is a whole number of them (docs/behaviour.md,
/// "Bodies read whole are bounded").
pub(crate) fn response_too_large(what: &str, limit: usize) -> Error {
    let limit = match limit {
        l if l >= 1024 * 1024 && l % (1024 * 1024) == 0 => format!("{} MiB", l / (1024 * 1024)),
        l if l >= 1024 && l % 1024 == 0 => format!("{} KiB", l / 1024),
        l => format!("{l} bytes"),
    };
    Error::new(
        ErrorKind::TooLarge,
        format!("the {what} is larger than {limit}, which we refuse"),
    )
}

/// The largest error body we read: registries explain themselves in a few hundred bytes; a
/// proxy's HTML page or a broken service's endless body is cut here.
pub(crate) const MAX_ERROR_BODY: usize = 256 * 1024;

/// How much of a registry's or token service's own explanation an error message quotes.
pub(crate) const MAX_EXPLANATION: usize = 200;

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<serde_json::Value>,
    #[serde(default)]
    detail: Option<serde_json::Value>,
    #[serde(default)]
    details: Option<serde_json::Value>,
}

/// The explanation in an error body of the distribution API (`{"errors": [{"code",
/// "message", "detail"}]}`, distribution spec "Error Codes"), as `CODE: message` (the detail
/// when there is no message),
/// joined with `; ` and shortened to [`MAX_EXPLANATION`] characters. `None` when the body is
/// empty, not JSON, or has no error entries.
pub(crate) fn registry_error_text(body: &[u8]) -> Option<String> {
    let body: ErrorBody = serde_json::from_slice(body).ok()?;
    let text = body
        .errors
        .iter()
        .map(|e| {
            let code = json_text(e.code.as_ref());
            let mut message = json_text(e.message.as_ref());
            // The detail often repeats the request (Distribution's `{"Tag": …}`): only
            // when there is no message does it explain.
            if message.is_empty() {
                message = json_text(e.detail.as_ref().or(e.details.as_ref()));
            }
            match (code.is_empty(), message.is_empty()) {
                (false, false) => format!("{code}: {message}"),
                (false, true) => code,
                _ => message,
            }
        })
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    (!text.is_empty()).then(|| truncate(&text, MAX_EXPLANATION))
}

/// A JSON value as text for a message: strings as they are, anything else (an object of
/// details, a number) in its JSON form; bounded so a huge value cannot blow up a message.
pub(crate) fn json_text(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => truncate(s, MAX_EXPLANATION),
        Some(other) => truncate(&other.to_string(), MAX_EXPLANATION),
    }
}

/// Shortens text taken from a registry's answer so an error stays one readable line.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        let mut short: String = line.chars().take(max).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_puts_context_first() {
        let e = Error::new(ErrorKind::NotFound, "tag does not exist")
            .context("pulling manifest r/x:1")
            .context("ignored");
        assert_eq!(e.to_string(), "pulling manifest r/x:1: tag does not exist");
    }

    #[test]
    fn transient_kinds() {
        assert!(Error::new(ErrorKind::Unreachable, "x").is_transient());
        assert!(
            Error::new(ErrorKind::Registry, "x")
                .with_status(503)
                .is_transient()
        );
        assert!(
            !Error::new(ErrorKind::Registry, "x")
                .with_status(400)
                .is_transient()
        );
        assert!(!Error::new(ErrorKind::Unauthorized, "x").is_transient());
        assert!(
            Error::new(ErrorKind::Registry, "x")
                .with_status(416)
                .transient()
                .is_transient()
        );
    }

    #[test]
    fn truncate_keeps_one_line() {
        assert_eq!(truncate("a\n  b", 10), "a b");
        assert_eq!(truncate("abcdef", 3), "abc…");
    }

    #[test]
    fn registry_error_bodies() {
        assert_eq!(
            registry_error_text(
                br#"{"errors":[{"code":"DENIED","message":"no","detail":{"a":1}},{"code":"X"}]}"#
            )
            .as_deref(),
            Some("DENIED: no; X")
        );
        assert_eq!(registry_error_text(b"<html>502</html>"), None);
        assert_eq!(registry_error_text(br#"{"errors":[]}"#), None);
        assert_eq!(
            registry_error_text(br#"{"errors":[{"code":7}]}"#).as_deref(),
            Some("7")
        );
        let long = format!(r#"{{"errors":[{{"message":"{}"}}]}}"#, "x".repeat(5000));
        assert!(
            registry_error_text(long.as_bytes())
                .unwrap()
                .chars()
                .count()
                <= MAX_EXPLANATION + 1
        );
    }

    #[test]
    fn rate_limited_names_its_registry() {
        let e = Error::new(ErrorKind::RateLimited, "used up").for_registry("r.io");
        assert_eq!(e.registry(), Some("r.io"));
        assert!(!e.is_transient());
        assert_eq!(e.duplicate().registry(), Some("r.io"));
    }
}
