//! Registry clients for a run, one per registry and identity, shared by the planner, the
//! listers and the relays so connections and tokens are reused across tasks and mappings.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::cloud::Cloud;
use crate::config::{Config, Location};
use crate::registry::{
    Credentials, Registry, RegistryHost, RegistryOptions, RetryPolicy, Timeouts,
};

#[derive(Clone, PartialEq, Eq)]
struct ClientKey {
    host: String,
    credentials: Option<Credentials>,
    /// The cloud identity whose tokens the client uses, if any.
    cloud_identity: Option<String>,
    skip_tls_verify: bool,
}

/// The clients of one run (or one daemon configuration).
pub struct Clients {
    certs_dir: PathBuf,
    retry: RetryPolicy,
    timeouts: Timeouts,
    /// A run talks to a handful of registries, so a list suffices.
    clients: Mutex<Vec<(ClientKey, Registry)>>,
    /// Cloud tokens and ECR repositories, shared by the run's clients and tasks.
    cloud: Cloud,
}

impl Clients {
    /// Clients with the config's certificates directory, retry bound and time limits.
    pub fn new(config: &Config) -> Self {
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
            clients: Mutex::new(Vec::new()),
            cloud: Cloud::new(),
        }
    }

    /// The cloud side of the run: token refresh and ECR repository creation.
    pub fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    /// The client for `host` with a location's credentials (or cloud tokens) and TLS choice.
    pub fn get(&self, host: &RegistryHost, location: &Location) -> Result<Registry, String> {
        let provider = self.cloud.provider(location);
        let credentials = match provider {
            Some(_) => None,
            None => location.auth.credentials().cloned(),
        };
        let key = ClientKey {
            host: host.to_string(),
            credentials: credentials.clone(),
            cloud_identity: provider.as_ref().map(|(identity, _)| identity.clone()),
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
        let client = Registry::new(options).map_err(|e| e.to_string())?;
        clients.push((key, client.clone()));
        Ok(client)
    }
}
