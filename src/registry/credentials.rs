//! Credentials that change during a run: the hook cloud registries use.
//!
//! Most registries take the user name and password of the config for the whole run. Cloud
//! registries take short-lived tokens instead (ECR: 12 hours, Google: about 1 hour), fetched
//! from the cloud's own API. A [`CredentialProvider`] is asked for the current credentials
//! every time the client needs them (so it can renew them before they expire), and is told
//! when the registry refused them (so a token that expired in the middle of a run is replaced
//! and the request retried once, instead of failing the image).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::auth::Credentials;
use super::error::Error;

/// A future of a provider's answer.
pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Credentials, Error>> + Send + 'a>>;

/// Supplies the current credentials of one registry identity (e.g. an ECR account, a Google
/// service account). Implementations cache: `credentials` is called before many requests.
pub trait CredentialProvider: Send + Sync + fmt::Debug {
    /// The credentials to use now, renewed first if they expire soon. The error says which
    /// credential sources were tried; it never contains a secret. Its kind says why, as far as
    /// the source tells: [`ErrorKind::Unauthorized`](super::ErrorKind::Unauthorized) or
    /// [`ErrorKind::Forbidden`](super::ErrorKind::Forbidden) when no credentials could be had
    /// or the issuer refused them, a network kind when the issuer could not be reached,
    /// [`ErrorKind::RateLimited`](super::ErrorKind::RateLimited) when it throttled us.
    fn credentials(&self) -> CredentialsFuture<'_>;

    /// The registry refused the last credentials: the next [`credentials`](Self::credentials)
    /// call must fetch new ones.
    fn invalidate(&self);

    /// The user name the credentials carry (`AWS`, `oauth2accesstoken`), for messages.
    fn username(&self) -> &str;
}
