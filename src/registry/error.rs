//! The one error type of the registry client.
//!
//! Every error says what failed (the operation and its target: registry, repository, tag or
//! digest) and why, in words a user can act on. The [`ErrorKind`] lets the copy engine decide
//! what to do (retry, skip, fail the job) without parsing messages.

use std::error::Error as StdError;
use std::fmt;

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
        }
    }

    /// Adds the operation and its target, unless a more specific one is already set.
    pub(crate) fn context(mut self, context: impl Into<String>) -> Self {
        if self.context.is_empty() {
            self.context = context.into();
        }
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
        }
    }

    /// What went wrong, for the engine to act on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
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
}
