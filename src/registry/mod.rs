//! The OCI distribution client behind the native engine and the listers.
//!
//! One [`Registry`] per registry host holds the connection pool, TLS settings, the learned
//! authentication method and the token cache; every operation takes the repository it is
//! about. Manifests travel as raw bytes so digests survive a copy; blobs stream through,
//! verified on the fly. Transient failures are retried inside, so callers see only what
//! retrying could not fix, as an [`Error`] whose [`ErrorKind`] says what to do next.
//!
//! Split by concept: [`reference`](RegistryHost) names, [`Digest`]s, [`Manifest`]s and
//! [`Platform`]s, authentication ([`Credentials`], or a [`CredentialProvider`]
//! for tokens that expire), the transport ([`Timeouts`],
//! [`RetryPolicy`]), and the client itself (manifests, blobs, listings).

mod auth;
mod blob;
mod classify;
mod client;
mod credentials;
mod digest;
mod error;
mod listing;
mod manifest;
mod observe;
mod platform;
mod ratelimit;
mod redirect;
mod reference;
pub mod referrers;
mod retry;
mod subset;
mod timeouts;
mod tls;
mod transport;

pub use auth::Credentials;
pub use blob::{BlobStream, MountOutcome, UploadSession};
pub use client::{ManifestHead, ManifestHeadUse, Registry, RegistryOptions};
pub use credentials::{CredentialProvider, CredentialsFuture};
pub(crate) use digest::lower_hex;
pub use digest::{ByteStream, Digest, VerifyingStream};
pub use error::{Error, ErrorKind, Result};
pub use manifest::{Descriptor, MAX_MANIFEST_SIZE, Manifest, media_type};
pub use observe::{Attempt, RequestObserver};
pub use platform::Platform;
pub use ratelimit::{Budget, RateLimits};
pub use redirect::redirect_policy;
pub use reference::{Reference, RegistryHost, Repository, Scheme, TagOrDigest};
pub use referrers::{PushedReferrer, Referrer};
pub use retry::{RetryPolicy, Tries};
pub use subset::{Subset, platform_subset};
pub use timeouts::Timeouts;
pub use tls::system_client_config;

// The parsers the fuzz targets reach (`crate::fuzzing`).
pub(crate) use auth::{parse_challenges, parse_token_response, token_error_text};
pub(crate) use error::registry_error_text;
pub(crate) use listing::{next_link, next_page};
pub(crate) use ratelimit::parse_limit_header;
pub(crate) use retry::retry_after;

/// Shortens text from outside (a registry's answer, a payload) to one readable line.
pub(crate) use error::truncate;
/// TLS settings for HTTP clients beside the registry API (the Docker Hub and v1 search
/// listers), so they trust the same roots and honour `skip-tls-verify` the same way.
pub(crate) use tls::client_config as tls_client_config;
