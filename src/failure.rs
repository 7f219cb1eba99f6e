//! Why something on the copy path failed: the one error type of the listers, the planner,
//! the run's clients, the relays and the sync, above the registry client.
//!
//! A [`Failure`] keeps the registry client's [`registry::Error`] (with its kind) as its
//! `source()`, and the words of what we were doing around it; it becomes text only where it
//! is logged and reported. Its [`FailureKind`] is what the report and the metrics count
//! failures by (docs/metrics.md).

use std::error::Error as StdError;
use std::fmt;

use crate::registry::{self, ErrorKind};

/// What a failure was, coarsely enough to count: the `kind` label of `dregsy_failures_total`
/// (docs/metrics.md). A bounded set; every [`ErrorKind`] falls into one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    /// Credentials were refused, missing, or could not be had (a credential file, a helper, a
    /// cloud token); or they do not grant the operation.
    Auth,
    /// The repository, tag, manifest or blob does not exist.
    NotFound,
    /// The TLS handshake failed.
    Tls,
    /// A registry's rate limit ran out.
    RateLimit,
    /// The registry could not be reached, the connection broke, or a request timed out.
    Network,
    /// Anything else: an invalid name, content that does not match its digest, a refused
    /// signature, a tool's failure, a registry error without a more specific kind.
    Other,
}

impl FailureKind {
    /// Every kind, in the order docs/metrics.md gives.
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Auth,
        FailureKind::NotFound,
        FailureKind::Tls,
        FailureKind::RateLimit,
        FailureKind::Network,
        FailureKind::Other,
    ];

    /// The kind's stable name, for metrics labels: `auth`, `not_found`, `tls`, `rate_limit`,
    /// `network` or `other`.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Auth => "auth",
            FailureKind::NotFound => "not_found",
            FailureKind::Tls => "tls",
            FailureKind::RateLimit => "rate_limit",
            FailureKind::Network => "network",
            FailureKind::Other => "other",
        }
    }

    /// The kind an HTTP status counts as, for APIs other than the distribution API: 401 and
    /// 403 `auth`, 404 `not_found`, 429 `rate_limit`, anything else `other`.
    pub fn of_status(status: u16) -> FailureKind {
        match status {
            401 | 403 => FailureKind::Auth,
            404 => FailureKind::NotFound,
            429 => FailureKind::RateLimit,
            _ => FailureKind::Other,
        }
    }

    /// The kind a registry client error counts as.
    pub fn of(kind: ErrorKind) -> FailureKind {
        match kind {
            ErrorKind::Unauthorized | ErrorKind::Forbidden => FailureKind::Auth,
            ErrorKind::NotFound => FailureKind::NotFound,
            ErrorKind::Tls => FailureKind::Tls,
            ErrorKind::RateLimited => FailureKind::RateLimit,
            ErrorKind::Unreachable
            | ErrorKind::UnknownHost
            | ErrorKind::Network
            | ErrorKind::Timeout => FailureKind::Network,
            _ => FailureKind::Other,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why a listing, a plan, a client or an image job did not succeed. Its text (`Display`) is
/// the message the log shows: what we were doing, then the registry client's words.
#[derive(Debug)]
pub enum Failure {
    /// A request to a registry (or an OCI image layout) failed; or a cloud registry's API
    /// (ECR tokens, target repositories and listings; Google tokens), whose errors the cloud
    /// code gives the registry client's kinds.
    Registry {
        /// What we were doing, e.g. `source registry`; empty when the error says it all.
        context: String,
        /// The registry client's error, with its kind.
        error: registry::Error,
    },
    /// A registry's rate limit ran out (docs/behaviour.md, "Rate limits"): the job was not
    /// done and waits for the next run. The report counts these apart from failures.
    RateLimited {
        /// The registry host.
        registry: String,
        /// The registry client's error, of kind [`ErrorKind::RateLimited`].
        error: registry::Error,
    },
    /// A registry's credentials could not be looked up (a credential file, a helper). A cloud
    /// token that could not be had is a [`Failure::Registry`] of the kind the cloud's answer told.
    Credentials(String),
    /// A request to an API other than the distribution API (Docker Hub's, the v1 search)
    /// failed or was refused; `kind` follows from the HTTP status or the connection failure.
    Api {
        /// What kind of failure it was.
        kind: FailureKind,
        /// What was asked, of whom, and the answer.
        reason: String,
    },
    /// What was asked for does not exist, found without an error of the registry client (a
    /// `HEAD` answered 404: "source image … not found").
    NotFound(String),
    /// Anything else; the message names the image or side and says what went wrong.
    Failed(String),
}

impl Failure {
    /// What kind of failure this is, for the report's and the metrics' counts.
    pub fn kind(&self) -> FailureKind {
        match self {
            Failure::Registry { error, .. } => FailureKind::of(error.kind()),
            Failure::RateLimited { .. } => FailureKind::RateLimit,
            Failure::Credentials(_) => FailureKind::Auth,
            Failure::Api { kind, .. } => *kind,
            Failure::NotFound(_) => FailureKind::NotFound,
            Failure::Failed(_) => FailureKind::Other,
        }
    }

    /// The registry client's error behind this failure, if a registry request failed.
    pub fn registry_error(&self) -> Option<&registry::Error> {
        match self {
            Failure::Registry { error, .. } | Failure::RateLimited { error, .. } => Some(error),
            Failure::Credentials(_)
            | Failure::Api { .. }
            | Failure::NotFound(_)
            | Failure::Failed(_) => None,
        }
    }

    /// The same failure, its message led by `context` (`context: message`). A rate limit
    /// seen in some context is a failure of that context, no longer an image left for the
    /// next run.
    pub fn context(self, context: impl fmt::Display) -> Failure {
        match self {
            Failure::Registry {
                context: inner,
                error,
            } => Failure::Registry {
                context: if inner.is_empty() {
                    context.to_string()
                } else {
                    format!("{context}: {inner}")
                },
                error,
            },
            Failure::RateLimited { error, .. } => Failure::Registry {
                context: context.to_string(),
                error,
            },
            Failure::Credentials(reason) => Failure::Credentials(format!("{context}: {reason}")),
            Failure::Api { kind, reason } => Failure::Api {
                kind,
                reason: format!("{context}: {reason}"),
            },
            Failure::NotFound(reason) => Failure::NotFound(format!("{context}: {reason}")),
            Failure::Failed(reason) => Failure::Failed(format!("{context}: {reason}")),
        }
    }
}

impl Clone for Failure {
    fn clone(&self) -> Self {
        match self {
            Failure::Registry { context, error } => Failure::Registry {
                context: context.clone(),
                error: error.duplicate(),
            },
            Failure::RateLimited { registry, error } => Failure::RateLimited {
                registry: registry.clone(),
                error: error.duplicate(),
            },
            Failure::Credentials(reason) => Failure::Credentials(reason.clone()),
            Failure::Api { kind, reason } => Failure::Api {
                kind: *kind,
                reason: reason.clone(),
            },
            Failure::NotFound(reason) => Failure::NotFound(reason.clone()),
            Failure::Failed(reason) => Failure::Failed(reason.clone()),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Registry { context, error } if !context.is_empty() => {
                write!(f, "{context}: {error}")
            }
            Failure::Registry { error, .. } | Failure::RateLimited { error, .. } => {
                write!(f, "{error}")
            }
            Failure::Credentials(reason)
            | Failure::Api { reason, .. }
            | Failure::NotFound(reason)
            | Failure::Failed(reason) => f.write_str(reason),
        }
    }
}

impl StdError for Failure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.registry_error()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure::Failed(reason)
    }
}

impl From<&str> for Failure {
    fn from(reason: &str) -> Self {
        Failure::Failed(reason.to_owned())
    }
}

impl From<registry::Error> for Failure {
    fn from(error: registry::Error) -> Self {
        match (error.kind(), error.registry()) {
            (ErrorKind::RateLimited, Some(registry)) => Failure::RateLimited {
                registry: registry.to_owned(),
                error,
            },
            _ => Failure::Registry {
                context: String::new(),
                error,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_error_keeps_its_kind_and_is_the_source() {
        let error = registry::Error::new(ErrorKind::Unauthorized, "authentication required")
            .context("listing tags of r.io/app");
        let failure = Failure::from(error).context("source registry");
        assert_eq!(failure.kind(), FailureKind::Auth);
        assert_eq!(
            failure.to_string(),
            "source registry: listing tags of r.io/app: authentication required"
        );
        let source = StdError::source(&failure).expect("the registry error is the source");
        assert_eq!(
            source.to_string(),
            "listing tags of r.io/app: authentication required"
        );
        assert_eq!(
            failure.clone().context("outer").to_string(),
            "outer: source registry: listing tags of r.io/app: authentication required"
        );
    }

    #[test]
    fn a_rate_limit_with_its_host_is_left_for_the_next_run_until_put_in_context() {
        let error = registry::Error::new(ErrorKind::RateLimited, "rate limit of r.io exhausted")
            .for_registry("r.io");
        let failure = Failure::from(error);
        assert!(matches!(&failure, Failure::RateLimited { registry, .. } if registry == "r.io"));
        assert_eq!(failure.kind(), FailureKind::RateLimit);
        let in_context = failure.context("source image");
        assert!(matches!(in_context, Failure::Registry { .. }));
        assert_eq!(in_context.kind(), FailureKind::RateLimit);
    }

    #[test]
    fn every_registry_error_kind_has_a_bounded_label() {
        let kinds = [
            (ErrorKind::Unreachable, "network"),
            (ErrorKind::UnknownHost, "network"),
            (ErrorKind::Network, "network"),
            (ErrorKind::Timeout, "network"),
            (ErrorKind::Tls, "tls"),
            (ErrorKind::Unauthorized, "auth"),
            (ErrorKind::Forbidden, "auth"),
            (ErrorKind::NotFound, "not_found"),
            (ErrorKind::RateLimited, "rate_limit"),
            (ErrorKind::DigestMismatch, "other"),
            (ErrorKind::Invalid, "other"),
        ];
        for (kind, label) in kinds {
            assert_eq!(FailureKind::of(kind).label(), label, "{kind:?}");
        }
        assert_eq!(Failure::from("x").kind(), FailureKind::Other);
        let statuses = [
            (401, "auth"),
            (403, "auth"),
            (404, "not_found"),
            (429, "rate_limit"),
        ];
        for (status, label) in statuses.into_iter().chain([(500, "other"), (400, "other")]) {
            assert_eq!(FailureKind::of_status(status).label(), label, "{status}");
        }
        assert_eq!(
            Failure::Credentials("no token".into()).kind(),
            FailureKind::Auth
        );
        assert_eq!(
            Failure::NotFound("source image r.io/app:1 not found".into()).kind(),
            FailureKind::NotFound
        );
    }
}
