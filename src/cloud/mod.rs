//! Cloud registries: AWS ECR (private and public) and Google GCR / Artifact Registry
//! (README.md, "Cloud registries"; docs/compatibility.md#cloud-registries).
//!
//! What makes them different from other registries is that their credentials are short-lived
//! tokens from the cloud's own API, and that ECR repositories must exist before anything is
//! pushed into them. This module detects them from the registry string, supplies their tokens
//! to the registry client through a [`CredentialProvider`] (renewed before they expire and
//! after a refusal), creates missing ECR target repositories once per run, and lists ECR
//! repositories for regex mappings.
//!
//! Everything cloud-specific is reached through [`Cloud`], which one run shares across its
//! tasks: tokens and the "repository exists" answers are fetched once, not per image. It is
//! made with a [`CloudEnvironment`] (API endpoints, credential sources), which the process
//! reads from its environment once, where it starts.

pub mod aws;
pub mod ecr;
pub mod ecr_public;
pub mod environment;
pub mod gcp;
mod token;

pub use environment::{AwsCredentials, AwsEnvironment, CloudEnvironment, GoogleEnvironment};

/// What ECR operations say in a build without the AWS SDK.
#[cfg(not(feature = "aws"))]
const NO_AWS: &str = "not supported in this build: ECR needs dregsy built with the 'aws' \
     feature (the default; it was built with --no-default-features)";

/// The error of an ECR operation in a build without the AWS SDK.
#[cfg(not(feature = "aws"))]
fn no_aws() -> Error {
    Error::new(ErrorKind::Unsupported, NO_AWS)
}

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::config::CloudRegistry;
use crate::config::{Auth, Location};
use crate::failure::Failure;
use crate::registry::{CredentialProvider, Error, ErrorKind, Repository};
use aws::Aws;
use ecr::EcrApi;

/// Why a credential source gave nothing, for a message: the innermost cause of `error`
/// (say, "Connection refused (os error 111)"), one line, bounded. Never the SDK's debug
/// representation, which repeats itself and hides the reason in noise.
pub(crate) fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    let text = current.to_string();
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 200 {
        let mut short: String = line.chars().take(200).collect();
        short.push('…');
        short
    } else {
        line
    }
}

/// A token (or other credential) that cannot be had, for a reason that is not the network's:
/// no source gave one, or what it gave is unusable.
pub(crate) fn refused(reason: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unauthorized, reason)
}

/// The failure of a location whose credential provider could not supply credentials: the
/// provider's error (with its kind) led by `cannot get credentials for <registry>`.
pub(crate) fn no_credentials(location: &Location, error: Error) -> Failure {
    Failure::from(error).context(format_args!(
        "cannot get credentials for {}",
        location.registry
    ))
}

/// Creates the token provider of a location.
type MakeProvider = fn(&Cloud, &Location) -> Arc<dyn CredentialProvider>;

/// The cloud side of one run: token providers by identity, and the ECR repositories known
/// to exist. Shared by every task of the run.
pub struct Cloud {
    /// The AWS APIs: their endpoints, credentials and loaded SDK configs.
    aws: Arc<Aws>,
    /// Where Google tokens come from.
    google: GoogleEnvironment,
    /// A run talks to a handful of identities, so a list suffices.
    providers: Mutex<Vec<(String, Arc<dyn CredentialProvider>)>>,
    /// `registry host/repository` of ECR repositories that exist (found or created), with
    /// when that was learned.
    ecr_repositories: tokio::sync::Mutex<HashMap<String, Instant>>,
}

/// How long an ECR repository is known to exist without asking again. One run uses the answer
/// throughout; a daemon asks again now and then, so a repository deleted behind its back is
/// created anew.
const REPOSITORY_RECHECK: Duration = Duration::from_secs(3600);

impl Cloud {
    /// The cloud side of a run in `environment`: no token providers and no ECR repositories
    /// known yet.
    pub fn new(environment: CloudEnvironment) -> Cloud {
        Cloud {
            aws: Arc::new(Aws::new(environment.aws)),
            google: environment.google,
            providers: Mutex::default(),
            ecr_repositories: tokio::sync::Mutex::default(),
        }
    }

    /// The AWS side: what the ECR functions take.
    pub fn aws(&self) -> &Aws {
        &self.aws
    }

    /// The token provider of a location whose credentials come from a cloud, with a key that
    /// names the identity (for client caching); `None` when the config's `auth` is used.
    ///
    /// - ECR (private or public) with `auth-refresh`: `GetAuthorizationToken`.
    /// - GCR/GAR without an `auth` key: Google application default credentials.
    pub fn provider(&self, location: &Location) -> Option<(String, Arc<dyn CredentialProvider>)> {
        let (key, make): (String, MakeProvider) =
            match (&location.cloud, location.auth_refresh, &location.auth) {
                (Some(CloudRegistry::Ecr { account, region }), Some(_), _) => {
                    (format!("ecr:{account}:{region}"), |cloud, location| {
                        ecr::token_provider(cloud.aws.clone(), location)
                    })
                }
                (Some(CloudRegistry::EcrPublic { region, .. }), Some(_), _) => {
                    (format!("ecr-public:{region}"), |cloud, location| {
                        ecr::token_provider(cloud.aws.clone(), location)
                    })
                }
                (Some(CloudRegistry::Gcp), _, Auth::Omitted) => ("gcp".to_string(), |cloud, _| {
                    gcp::token_provider(cloud.google.clone())
                }),
                _ => return None,
            };
        let Ok(mut providers) = self.providers.lock() else {
            return Some((key, make(self, location)));
        };
        if let Some((_, provider)) = providers.iter().find(|(k, _)| *k == key) {
            return Some((key, provider.clone()));
        }
        let provider = make(self, location);
        providers.push((key.clone(), provider.clone()));
        Some((key, provider))
    }

    /// The refresh hook the original runs for source and target before each mapping, for a
    /// location whose credentials come from this cloud: a token that expires soon is renewed
    /// now, and a missing cloud credential is an error that says what was tried. (A run calls
    /// [`crate::clients::Clients::refresh`], which knows whether the location's credentials
    /// come from a cloud at all.)
    ///
    /// # Errors
    ///
    /// When the location's cloud token cannot be had; the message says what was tried, the
    /// kind what the cloud's answer told (auth, network, rate limit).
    pub async fn refresh(&self, location: &Location) -> Result<(), Failure> {
        let Some((_, provider)) = self.provider(location) else {
            return Ok(());
        };
        provider
            .credentials()
            .await
            .map(|_| ())
            .map_err(|e| no_credentials(location, e))
    }

    /// Makes sure the ECR repositories a mapping pushes to exist, creating missing ones (the
    /// original's `ensureTargetExists`). Each repository is checked once per run
    /// (and in a daemon at most once an hour). Does nothing for other registries.
    ///
    /// # Errors
    ///
    /// When a repository cannot be described or created (see [`ecr::ensure_repository`]), of
    /// the kind the AWS answer tells (auth, not found, network, rate limit), else `other`.
    pub async fn ensure_repositories<'a>(
        &self,
        target: &Location,
        repositories: impl IntoIterator<Item = &'a Repository>,
    ) -> Result<(), Failure> {
        let Some(cloud) = target.cloud.as_ref().filter(|c| c.is_ecr()) else {
            return Ok(());
        };
        let host = target
            .registry_location()
            .map_or("", |registry| registry.host.name());
        let mut known = self.ecr_repositories.lock().await;
        for repository in repositories {
            let key = format!("{host}/{repository}");
            if known
                .get(&key)
                .is_some_and(|at| at.elapsed() < REPOSITORY_RECHECK)
            {
                continue;
            }
            match cloud {
                CloudRegistry::Ecr { account, region } => {
                    let name = repository.as_str();
                    ecr::ensure_repository(EcrApi::Private, &self.aws, account, region, name)
                        .await?
                }
                CloudRegistry::EcrPublic { account, region } => {
                    let path = repository.as_str();
                    ecr::ensure_repository(EcrApi::Public, &self.aws, account, region, path).await?
                }
                CloudRegistry::Gcp => {}
            }
            known.insert(key, Instant::now());
        }
        Ok(())
    }

    /// The repositories of an ECR source, for regex mappings: for ECR sources the dedicated ECR
    /// listers replace `catalog` (docs/configuration.md#source-and-target). `None` for other
    /// registries. AWS credentials come from the run's AWS side (by default the SDK's chain),
    /// not from the location's `auth`, as in the original.
    ///
    /// # Errors
    ///
    /// When the AWS API cannot be reached or refuses the listing; the failure's kind is what
    /// the answer tells (auth, not found, network, rate limit), else `other`.
    pub async fn list_ecr_repositories(
        &self,
        source: &Location,
        max_items: Option<usize>,
    ) -> Option<Result<Vec<String>, Failure>> {
        let listed = match source.cloud.as_ref()? {
            CloudRegistry::Ecr { account, region } => {
                tracing::info!("using dedicated ECR lister instead of standard catalog");
                ecr::list_repositories(EcrApi::Private, &self.aws, account, region, max_items).await
            }
            CloudRegistry::EcrPublic { account, region } => {
                ecr::list_repositories(EcrApi::Public, &self.aws, account, region, max_items).await
            }
            CloudRegistry::Gcp => return None,
        };
        Some(listed.map_err(|e| {
            Failure::from(e).context(format_args!("listing repositories of {}", source.registry))
        }))
    }
}
