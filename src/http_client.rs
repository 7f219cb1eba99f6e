//! The one way to build an HTTP client, in the product and in its tests.
//!
//! reqwest is built without a default TLS crypto provider (`rustls-no-provider`, so that the
//! AWS SDK and everything else share ring). Building a client while no provider is installed
//! panics ("No rustls crypto provider is configured"), and whether one is installed used to
//! depend on which code ran first in the process: a test run alone, or with many threads,
//! could panic where the whole suite passed. Every client constructor therefore starts with
//! [`builder`], which installs the provider first, so the order of calls cannot matter.
//! `clippy.toml` forbids `reqwest::Client::new` and `reqwest::Client::builder` elsewhere.

use std::sync::Once;

/// Installs rustls' ring provider as the process default, once; harmless when one is
/// already installed (by another library, or an earlier call).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means another provider was installed first: either serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder, with the crypto provider installed first. Callers add their
/// timeouts, TLS configuration and redirect policy.
#[allow(clippy::disallowed_methods)] // the one sanctioned call
pub fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_builds_before_anything_else_ran() {
        // Alone in its process or not, this must not panic.
        assert!(super::builder().build().is_ok());
    }
}
