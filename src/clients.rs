//! Registry clients for a run, one per registry and identity, shared by the planner, the
//! listers and the relays so connections and tokens are reused across tasks and mappings.
//! Each side's credentials come from the run's credential chain ([`crate::credentials`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::cloud::{Cloud, CloudEnvironment};
use crate::config::{Config, Location};
use crate::credentials::{Chain, Environment, Resolution, Source, Supply};
use crate::failure::Failure;
use crate::registry::{
    Credentials, RateLimits, Registry, RegistryHost, RegistryOptions, RequestObserver, RetryPolicy,
    Timeouts,
};

#[derive(Clone, PartialEq, Eq)]
struct ClientKey {
    host: String,
    credentials: Option<Credentials>,
    /// The provider whose credentials the client uses (a cloud identity, a credential file
    /// entry, a helper), if any.
    provider_identity: Option<String>,
    skip_tls_verify: bool,
}

/// What a run's clients take from the process environment: where credential files are, and
/// the cloud APIs' endpoints and credential sources. Read once where the process starts
/// ([`ProcessEnvironment::from_process`]) and passed down; tests make their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEnvironment {
    /// Where the credential chain looks for credential files.
    pub credentials: Environment,
    /// The cloud APIs' endpoints and credential sources.
    pub cloud: CloudEnvironment,
}

impl ProcessEnvironment {
    /// The variables of this process.
    pub fn from_process() -> ProcessEnvironment {
        ProcessEnvironment {
            credentials: Environment::from_process(),
            cloud: CloudEnvironment::from_process(),
        }
    }
}

/// The clients of one run (or one daemon configuration).
pub struct Clients {
    certs_dir: PathBuf,
    retry: RetryPolicy,
    timeouts: Timeouts,
    /// `native.chunk-size`: upload in chunks of this size.
    chunk_size: Option<u64>,
    /// A run talks to a handful of registries, so a list suffices.
    clients: Mutex<Vec<(ClientKey, Registry)>>,
    /// Cloud tokens and ECR repositories, shared by the run's clients and tasks.
    cloud: Cloud,
    /// Rate limits per registry host, shared by every client of a host.
    rate_limits: RateLimits,
    /// Where each registry's credentials come from, looked up once.
    chain: Chain,
    /// Sees every request of every client (the metrics), if set.
    observer: Option<Arc<dyn RequestObserver>>,
}

impl Clients {
    /// Clients with the config's certificates directory, retry bound, time limits and
    /// credential helper timeout; credential files and cloud APIs are found through
    /// `environment`.
    pub fn new(config: &Config, environment: &ProcessEnvironment) -> Self {
        let native = &config.native;
        Clients {
            certs_dir: PathBuf::from(config.skopeo.certs_dir()),
            retry: RetryPolicy {
                max_tries: native.tries,
                ..RetryPolicy::default()
            },
            timeouts: Timeouts {
                connect: native.connect_timeout,
                stall: native.stall_timeout,
                commit: native.commit_timeout,
                ..Timeouts::default()
            },
            chunk_size: native.chunk_size,
            clients: Mutex::new(Vec::new()),
            cloud: Cloud::new(environment.cloud.clone()),
            rate_limits: RateLimits::new(),
            chain: Chain::new(
                environment.credentials.clone(),
                config.credential_helper_timeout,
            ),
            observer: None,
        }
    }

    /// The rate-limit state of every registry host the clients talk to.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.rate_limits
    }

    /// The same clients, each telling `observer` about its requests (for metrics).
    pub fn observed_by(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The cloud side of the run: token refresh and ECR repository creation.
    pub fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    /// A daemon's periodic task run begins: credentials are looked up again for it (see
    /// [`Chain::start_run`]); registry clients and their connections and tokens stay.
    pub fn start_run(&self) {
        self.chain.start_run();
    }

    /// Where a location's credentials come from, and the credentials (or their provider).
    ///
    /// # Errors
    /// [`Failure::Credentials`], for the reasons of [`Chain::resolve`]; the message names the
    /// registry.
    pub async fn resolve(&self, location: &Location) -> Result<Resolution, Failure> {
        // A directory of image layouts has no credentials to look up.
        if location.layout().is_some() {
            return Ok(Resolution {
                source: Source::Anonymous,
                supply: Supply::Fixed(None),
            });
        }
        self.chain
            .resolve(location, &self.cloud)
            .await
            .map_err(|e| {
                Failure::Credentials(format!("credentials for {}: {e}", location.registry))
            })
    }

    /// The client for `host` with a location's credentials and TLS choice.
    ///
    /// # Errors
    ///
    /// [`Failure::Credentials`] when the location's credentials cannot be looked up (a broken
    /// credential file, a failing helper, a cloud without credentials); [`Failure::Registry`]
    /// when the client cannot be created (a broken certificate directory). The message names
    /// the registry.
    pub async fn get(&self, host: &RegistryHost, location: &Location) -> Result<Registry, Failure> {
        let resolution = self.resolve(location).await?;
        let origin = resolution.source.origin();
        let (credentials, provider) = match resolution.supply {
            Supply::Fixed(credentials) => (credentials, None),
            Supply::Provider { identity, provider } => (None, Some((identity, provider))),
        };
        let key = ClientKey {
            host: host.to_string(),
            credentials: credentials.clone(),
            provider_identity: provider.as_ref().map(|(identity, _)| identity.clone()),
            skip_tls_verify: location.skip_tls_verify,
        };
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| "the registry client cache is unusable after a panic")?;
        if let Some((_, client)) = clients.iter().find(|(k, _)| *k == key) {
            return Ok(client.clone());
        }
        let mut options = RegistryOptions::new(host.clone());
        options.credentials = credentials;
        options.credential_provider = provider.map(|(_, p)| p);
        options.skip_tls_verify = location.skip_tls_verify;
        options.certs_dir = Some(self.certs_dir.clone());
        options.retry = self.retry.clone();
        options.timeouts = self.timeouts.clone();
        options.rate_limits = self.rate_limits.clone();
        if let Some(size) = self.chunk_size.and_then(|s| usize::try_from(s).ok()) {
            options.chunked_uploads = true;
            options.chunk_size = size;
        }
        options.observer = self.observer.clone();
        options.credentials_origin = origin;
        // Another client of the host (other credentials) may have learned whether manifest
        // HEAD works there: learned once per host (docs/behaviour.md#up-to-date-checks).
        options.manifest_head = clients
            .iter()
            .find(|(k, _)| k.host == key.host)
            .map(|(_, client)| client.manifest_head_use());
        let client = Registry::new(options)?;
        clients.push((key, client.clone()));
        Ok(client)
    }

    /// The credentials of a location for code outside our registry client (skopeo, the
    /// Docker daemon, the Docker Hub and index listers): the current ones of its provider, or
    /// the fixed ones.
    ///
    /// # Errors
    ///
    /// [`Failure::Credentials`] when the credentials cannot be looked up; a [`Failure`] of the
    /// provider's kind (auth, network, rate limit) when it cannot supply them now.
    pub async fn credentials(&self, location: &Location) -> Result<Option<Credentials>, Failure> {
        match self.resolve(location).await?.supply {
            Supply::Fixed(credentials) => Ok(credentials),
            Supply::Provider { provider, .. } => provider
                .credentials()
                .await
                .map(Some)
                .map_err(|e| crate::cloud::no_credentials(location, e)),
        }
    }

    /// The refresh hook the original runs for source and target before each mapping: a cloud
    /// token that expires soon is renewed now, and a missing cloud credential fails the mapping
    /// here, with a message that says what was tried. Other credentials need no refresh (they
    /// are looked up again only after a refusal).
    ///
    /// # Errors
    ///
    /// [`Failure::Credentials`] when the credentials cannot be looked up; a [`Failure`] of the
    /// cloud's kind (auth, network, rate limit) when a cloud token cannot be had. The message
    /// says what was tried.
    pub async fn refresh(&self, location: &Location) -> Result<(), Failure> {
        let resolution = self.resolve(location).await?;
        if let Source::Cloud(_) = resolution.source {
            tracing::info!(registry = %location.registry, "refreshing credentials");
            self.cloud.refresh(location).await
        } else {
            tracing::debug!(registry = %location.registry, "no auth refresher, skipping");
            Ok(())
        }
    }
}
