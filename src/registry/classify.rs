//! Failed HTTP requests as registry errors of the right kind, with the root cause as reason.

use std::error::Error as StdError;

use super::error::{Error, ErrorKind};

/// Turns a failed request into an error of the right kind, with the root cause as reason.
pub(crate) fn classify(e: &reqwest::Error) -> Error {
    // An upload whose body stream failed reports the stream's error (say, a digest
    // mismatch), not the broken request it caused.
    let mut current: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(err) = current {
        if let Some(ours) = err.downcast_ref::<Error>() {
            return ours.duplicate();
        }
        current = err.source();
    }
    let cause = root_cause(e);
    if let Some(tls) = find_rustls_error(e) {
        let hint = match tls {
            rustls::Error::InvalidCertificate(_) => {
                " (add the registry's CA as <certs-dir>/<host>/ca.crt, or set skip-tls-verify)"
            }
            rustls::Error::InvalidMessage(_) => {
                " (does the registry speak TLS? write the registry as http://host:port, or set skip-tls-verify)"
            }
            _ => "",
        };
        return Error::new(ErrorKind::Tls, format!("TLS handshake failed: {tls}{hint}"));
    }
    if e.is_timeout() || cause.contains("timed out") {
        return Error::new(
            ErrorKind::Timeout,
            format!("the registry did not answer in time ({cause})"),
        );
    }
    if e.is_connect() {
        if let Some(dns) = dns_failure(e) {
            // A name that does not resolve stays unresolved on a retry; a resolver that could
            // not answer may do better later.
            let kind = if dns.contains("Temporary failure") {
                ErrorKind::Unreachable
            } else {
                ErrorKind::UnknownHost
            };
            return Error::new(
                kind,
                format!("unknown host: the registry's name does not resolve ({dns})"),
            );
        }
        return Error::new(ErrorKind::Unreachable, format!("cannot connect: {cause}"));
    }
    if e.is_redirect() {
        return Error::new(ErrorKind::Protocol, format!("redirect failed: {cause}"));
    }
    if e.is_body() || e.is_request() || e.is_decode() {
        // Resets and truncated responses: the connection broke, which is worth retrying.
        return Error::new(
            ErrorKind::Network,
            format!("the connection failed: {cause}"),
        );
    }
    Error::new(ErrorKind::Network, format!("request failed: {cause}"))
}

/// The resolver's message, when a connection failed because the host name did not resolve.
fn dns_failure(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        // hyper's connector reports resolver failures as "dns error", caused by the resolver's
        // own error.
        if err.to_string().starts_with("dns error") {
            return Some(root_cause(err));
        }
        current = err.source();
    }
    None
}

/// The innermost error message; reqwest's own message repeats the URL and says little.
pub(crate) fn root_cause(e: &(dyn StdError + 'static)) -> String {
    let mut current: &(dyn StdError + 'static) = e;
    loop {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            current = inner;
            continue;
        }
        match current.source() {
            Some(next) => current = next,
            None => return current.to_string(),
        }
    }
}

fn find_rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            current = Some(inner);
            continue;
        }
        current = err.source();
    }
    None
}
