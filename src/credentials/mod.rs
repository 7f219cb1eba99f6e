//! Where a registry's credentials come from: a chain resolved once per registry per run
//! (`docs/behaviour.md`, "Credentials"); a daemon's periodic task runs each start a new run.
//!
//! For a source or target without `auth`, the chain looks, in this order, at:
//! 1. the side's `credentials-file` (one user's `user:password`);
//! 2. ECR's own tokens, when the side sets `auth-refresh` (the original's rule);
//! 3. Docker/podman credential files: the config's `auth-file`, `REGISTRY_AUTH_FILE`,
//!    `$XDG_RUNTIME_DIR/containers/auth.json`, `$DOCKER_CONFIG/config.json` (else
//!    `~/.docker/config.json`); the first file with an entry for the registry decides, its
//!    `credHelpers` entry before its `auths` entry;
//! 4. the `credsStore` of the first file that names one;
//! 5. Google's application default credentials for GCR and Artifact Registry;
//! 6. anonymous.
//!
//! `auth` in the config wins over all of them, and `auth: none` means anonymous whatever the
//! files say. The registry client gets the result as fixed credentials or as a
//! [`CredentialProvider`]; it never learns where a secret came from. [`Source`] says where,
//! for `dregsy plan` and the debug log, without the secret.

pub mod file;
pub mod helper;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cloud::{Cloud, CloudRegistry};
use crate::config::{Auth, Location};
use crate::registry::{CredentialProvider, Credentials, CredentialsFuture, Error, ErrorKind};

use file::{AuthFile, Found, Key};

/// A failed resolution is tried again after this long (a daemon keeps its chain across runs;
/// a fixed file or a helper that came back should not need a restart).
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(60);

/// The environment variables the file lookup reads, captured once so that tests can give
/// their own and nothing reads the process environment behind the chain's back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `REGISTRY_AUTH_FILE` (podman, skopeo, buildah).
    pub registry_auth_file: Option<PathBuf>,
    /// `XDG_RUNTIME_DIR`, where podman keeps `containers/auth.json`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `DOCKER_CONFIG`, the directory of Docker's `config.json` instead of `~/.docker`.
    pub docker_config: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
}

impl Environment {
    /// The variables of this process; empty ones count as unset.
    pub fn from_process() -> Environment {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Environment {
            registry_auth_file: var("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            docker_config: var("DOCKER_CONFIG"),
            home: var("HOME"),
        }
    }

    /// The credential files in lookup order after the config's `auth-file`, each with the
    /// name `plan` shows it by.
    fn files(&self) -> Vec<(PathBuf, String)> {
        let mut files = Vec::new();
        if let Some(path) = &self.registry_auth_file {
            files.push((
                path.clone(),
                format!("REGISTRY_AUTH_FILE {}", path.display()),
            ));
        }
        if let Some(dir) = &self.xdg_runtime_dir {
            let path = dir.join("containers/auth.json");
            let shown = path.display().to_string();
            files.push((path, shown));
        }
        // As Docker: DOCKER_CONFIG replaces ~/.docker, it does not come before it.
        match (&self.docker_config, &self.home) {
            (Some(dir), _) => {
                let path = dir.join("config.json");
                let shown = path.display().to_string();
                files.push((path, shown));
            }
            (None, Some(home)) => {
                files.push((
                    home.join(".docker/config.json"),
                    "~/.docker/config.json".to_string(),
                ));
            }
            (None, None) => {}
        }
        files
    }
}

/// Where a registry's credentials come from: what `dregsy plan` and the debug log show.
/// Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The side's `auth` in the config.
    Config,
    /// `auth: none`.
    Disabled,
    /// The side's `credentials-file`.
    CredentialsFile(PathBuf),
    /// An `auths` entry of a credential file (shown name).
    Auths {
        /// The file, as shown.
        file: String,
    },
    /// A `credHelpers` entry of a credential file.
    CredHelper {
        /// The helper's name (`docker-credential-<name>`).
        name: String,
        /// The file, as shown.
        file: String,
    },
    /// The `credsStore` of a credential file.
    CredsStore {
        /// The helper's name (`docker-credential-<name>`).
        name: String,
        /// The file, as shown.
        file: String,
    },
    /// A cloud's own token service.
    Cloud(&'static str),
    /// Nothing found: no credentials are sent.
    Anonymous,
}

impl Source {
    /// Where credentials from this source come from, as refusals name it (`the config's
    /// auth`, `credential file /root/.docker/config.json (auths)`); `None` for no credentials.
    pub fn origin(&self) -> Option<String> {
        match self {
            Source::Config => Some("the config's auth".to_string()),
            Source::Disabled | Source::Anonymous => None,
            Source::Auths { file } => Some(format!("credential file {file} (auths)")),
            other => Some(other.to_string()),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Config => f.write_str("config"),
            Source::Disabled => f.write_str("anonymous (auth: none)"),
            Source::CredentialsFile(path) => write!(f, "credentials-file {}", path.display()),
            Source::Auths { file } => write!(f, "{file} (auths)"),
            Source::CredHelper { name, file } => {
                write!(f, "credential helper {name} (credHelpers in {file})")
            }
            Source::CredsStore { name, file } => {
                write!(f, "credential helper {name} (credsStore in {file})")
            }
            Source::Cloud(what) => f.write_str(what),
            Source::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// What the registry client and the relays get.
#[derive(Clone)]
pub enum Supply {
    /// The same credentials for the whole run (the config's `auth`), or none.
    Fixed(Option<Credentials>),
    /// Asked before use, asked again after the registry refused them. `identity` tells
    /// clients with different providers apart.
    Provider {
        /// Tells providers apart: the same identity is the same credentials.
        identity: String,
        /// Asked for the current credentials before use.
        provider: Arc<dyn CredentialProvider>,
    },
}

/// A resolved chain for one registry.
#[derive(Clone)]
pub struct Resolution {
    /// Where the credentials come from, for messages and `dregsy plan`.
    pub source: Source,
    /// How clients get them.
    pub supply: Supply,
}

impl fmt::Debug for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resolution({})", self.source)
    }
}

impl Resolution {
    fn fixed(source: Source, credentials: Option<Credentials>) -> Resolution {
        Resolution {
            source,
            supply: Supply::Fixed(credentials),
        }
    }
}

/// What makes two sides resolve alike.
#[derive(Debug, Clone, PartialEq)]
struct ResolveKey {
    registry: String,
    auth: Auth,
    credentials_file: Option<PathBuf>,
    auth_file: Option<PathBuf>,
    auth_refresh: bool,
    cloud: Option<CloudRegistry>,
}

impl ResolveKey {
    fn of(location: &Location) -> ResolveKey {
        ResolveKey {
            registry: location.registry.clone(),
            auth: location.auth.clone(),
            credentials_file: location.credentials_file.clone(),
            auth_file: location.auth_file.clone(),
            auth_refresh: location.auth_refresh.is_some(),
            cloud: location.cloud.clone(),
        }
    }
}

/// A lookup's answer, with the run it was made in.
type Cached = (ResolveKey, u64, Result<Resolution, (String, Instant)>);

/// The credential chain of a run, or of a daemon's configuration: each registry's answer is
/// looked up once per run and kept for the rest of it.
pub struct Chain {
    env: Environment,
    helper_timeout: Duration,
    /// The current run (see [`Chain::start_run`]).
    run: AtomicU64,
    /// A run talks to a handful of registries, so a list suffices. Held across a lookup, so
    /// two tasks needing one registry ask its helper once.
    resolved: tokio::sync::Mutex<Vec<Cached>>,
    /// The providers of credentials from files and helpers, by identity: a later run's lookup
    /// updates the provider the registry clients already hold, instead of making a new one.
    stored: std::sync::Mutex<Vec<Arc<Stored>>>,
}

impl Chain {
    /// A chain reading the files `env` points at, giving helpers `helper_timeout`.
    pub fn new(env: Environment, helper_timeout: Duration) -> Chain {
        Chain {
            env,
            helper_timeout,
            run: AtomicU64::new(0),
            resolved: tokio::sync::Mutex::new(Vec::new()),
            stored: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A new run begins (a daemon's periodic task run): each registry's credentials are looked
    /// up again when it is next needed, so a file written or rotated, or a helper's renewed
    /// token, is used without a restart.
    pub fn start_run(&self) {
        self.run.fetch_add(1, Ordering::AcqRel);
    }

    /// The provider for credentials from `lookup`: the one clients already hold for the same
    /// lookup and user, updated to `credentials`, or a new one.
    async fn stored(&self, source: Source, lookup: Lookup, credentials: Credentials) -> Resolution {
        let identity = format!("{}:{}", lookup.identity(), credentials.username());
        let existing = self
            .stored
            .lock()
            .ok()
            .and_then(|stored| stored.iter().find(|s| s.identity == identity).cloned());
        let provider = match existing {
            Some(provider) => {
                *provider.current.lock().await = credentials;
                provider.stale.store(false, Ordering::Release);
                provider
            }
            None => {
                let provider = Arc::new(Stored {
                    identity: identity.clone(),
                    username: credentials.username().to_string(),
                    lookup,
                    current: tokio::sync::Mutex::new(credentials),
                    stale: AtomicBool::new(false),
                });
                if let Ok(mut stored) = self.stored.lock() {
                    stored.push(provider.clone());
                }
                provider
            }
        };
        Resolution {
            source,
            supply: Supply::Provider { identity, provider },
        }
    }

    /// The credentials of `location`, looked up on first use (see the module doc for the
    /// order) and logged at debug level with their source.
    ///
    /// # Errors
    /// A credential file that cannot be read or parsed, a malformed entry for this registry,
    /// a helper that fails: the message names the file or helper and the registry, never a
    /// secret. Failures are asked again after a minute.
    pub async fn resolve(&self, location: &Location, cloud: &Cloud) -> Result<Resolution, String> {
        let key = ResolveKey::of(location);
        let run = self.run.load(Ordering::Acquire);
        let mut resolved = self.resolved.lock().await;
        if let Some(index) = resolved.iter().position(|(k, _, _)| *k == key) {
            match &resolved[index] {
                (_, at_run, Ok(resolution)) if *at_run == run => return Ok(resolution.clone()),
                (_, at_run, Err((e, at)))
                    if *at_run == run && at.elapsed() < RETRY_FAILED_AFTER =>
                {
                    return Err(e.clone());
                }
                _ => {
                    let _expired = resolved.remove(index);
                }
            }
        }
        let result = self.lookup(location, cloud).await;
        match &result {
            Ok(resolution) => tracing::debug!(
                registry = %location.registry,
                source = %resolution.source,
                "credentials for {} from {}",
                location.registry,
                resolution.source
            ),
            Err(e) => tracing::debug!(registry = %location.registry, "no credentials: {e}"),
        }
        resolved.push((key, run, result.clone().map_err(|e| (e, Instant::now()))));
        result
    }

    async fn lookup(&self, location: &Location, cloud: &Cloud) -> Result<Resolution, String> {
        match &location.auth {
            Auth::None => return Ok(Resolution::fixed(Source::Disabled, None)),
            Auth::Credentials(c) => return Ok(Resolution::fixed(Source::Config, Some(c.clone()))),
            Auth::Omitted => {}
        }
        if let Some(path) = &location.credentials_file {
            let credentials = file::read_credentials_file(path)?;
            let source = Source::CredentialsFile(path.clone());
            let lookup = Lookup::CredentialsFile(path.clone());
            return Ok(self.stored(source, lookup, credentials).await);
        }
        let is_ecr = location.cloud.as_ref().is_some_and(CloudRegistry::is_ecr);
        if is_ecr
            && location.auth_refresh.is_some()
            && let Some(resolution) = cloud_resolution(location, cloud)
        {
            return Ok(resolution);
        }
        if let Some(resolution) = self.lookup_auth_files(location).await? {
            return Ok(resolution);
        }
        if let Some(resolution) = cloud_resolution(location, cloud) {
            return Ok(resolution);
        }
        Ok(Resolution::fixed(Source::Anonymous, None))
    }

    /// The credentials Docker's auth files give for `location`: `auth-file` first, then the
    /// files of the environment, each file's `auths` and `credHelpers` before any file's
    /// `credsStore` (docs/behaviour.md, "Credentials", step 4-5). `Ok(None)` when none has any.
    async fn lookup_auth_files(&self, location: &Location) -> Result<Option<Resolution>, String> {
        // A directory of OCI image layouts has no credentials.
        let Some(registry) = location.registry_location() else {
            return Ok(None);
        };
        let target = Key::of_location(&registry.host, &registry.prefix);
        let mut files: Vec<(PathBuf, String, bool)> = Vec::new();
        if let Some(path) = &location.auth_file {
            files.push((path.clone(), format!("auth-file {}", path.display()), true));
        }
        files.extend(
            self.env
                .files()
                .into_iter()
                .map(|(path, shown)| (path, shown, false)),
        );
        let mut store: Option<(String, String)> = None;
        for (path, shown, required) in files {
            let Some(auth_file) = AuthFile::read(&path)? else {
                if required {
                    return Err(format!(
                        "auth-file {} does not exist; fix the path or remove 'auth-file'",
                        path.display()
                    ));
                }
                continue;
            };
            match auth_file.lookup(&target)? {
                Some(Found::Auths(credentials)) => {
                    let lookup = Lookup::File {
                        path,
                        target: target.clone(),
                    };
                    let source = Source::Auths { file: shown };
                    return Ok(Some(self.stored(source, lookup, credentials).await));
                }
                Some(Found::CredHelper(name)) => {
                    let lookup = Lookup::Helper {
                        name: name.clone(),
                        server_url: target.server_url(),
                        timeout: self.helper_timeout,
                    };
                    if let Some(credentials) = lookup.ask().await? {
                        let source = Source::CredHelper { name, file: shown };
                        return Ok(Some(self.stored(source, lookup, credentials).await));
                    }
                    tracing::debug!(registry = %location.registry, helper = %name, "the credential helper has no credentials for this registry");
                }
                None => {}
            }
            if store.is_none() {
                store = auth_file.creds_store.map(|name| (name, shown));
            }
        }
        if let Some((name, file)) = store {
            let lookup = Lookup::Helper {
                name: name.clone(),
                server_url: target.server_url(),
                timeout: self.helper_timeout,
            };
            if let Some(credentials) = lookup.ask().await? {
                let source = Source::CredsStore { name, file };
                return Ok(Some(self.stored(source, lookup, credentials).await));
            }
        }
        Ok(None)
    }
}

/// A cloud token provider for `location`, when it has one (ECR with `auth-refresh`, GCR/GAR).
fn cloud_resolution(location: &Location, cloud: &Cloud) -> Option<Resolution> {
    let (identity, provider) = cloud.provider(location)?;
    let what = match location.cloud.as_ref()? {
        CloudRegistry::Ecr { .. } => "ECR token (auth-refresh)",
        CloudRegistry::EcrPublic { .. } => "public ECR token (auth-refresh)",
        CloudRegistry::Gcp => "Google application default credentials",
    };
    Some(Resolution {
        source: Source::Cloud(what),
        supply: Supply::Provider { identity, provider },
    })
}

/// How credentials found in a file or given by a helper are fetched again after the registry
/// refused them (a rotated Kubernetes Secret, an expired helper token).
#[derive(Debug, Clone)]
enum Lookup {
    CredentialsFile(PathBuf),
    File {
        path: PathBuf,
        target: Key,
    },
    Helper {
        name: String,
        server_url: String,
        timeout: Duration,
    },
}

impl Lookup {
    fn identity(&self) -> String {
        match self {
            Lookup::CredentialsFile(path) => format!("credentials-file:{}", path.display()),
            Lookup::File { path, target } => {
                format!("file:{}:{}/{}", path.display(), target.host, target.path)
            }
            Lookup::Helper {
                name, server_url, ..
            } => format!("helper:{name}:{server_url}"),
        }
    }

    async fn ask(&self) -> Result<Option<Credentials>, String> {
        match self {
            Lookup::CredentialsFile(path) => file::read_credentials_file(path).map(Some),
            Lookup::File { path, target } => {
                let found = match AuthFile::read(path)? {
                    Some(auth_file) => auth_file.lookup(target)?,
                    None => None,
                };
                match found {
                    Some(Found::Auths(credentials)) => Ok(Some(credentials)),
                    _ => Ok(None),
                }
            }
            Lookup::Helper {
                name,
                server_url,
                timeout,
            } => helper::get(name, server_url, *timeout).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Lookup::CredentialsFile(path) => format!("credentials-file {}", path.display()),
            Lookup::File { path, .. } => format!("credential file {}", path.display()),
            Lookup::Helper { name, .. } => format!("credential helper {name}"),
        }
    }
}

/// Credentials from a file or a helper, looked up again once after a refusal.
struct Stored {
    identity: String,
    lookup: Lookup,
    username: String,
    current: tokio::sync::Mutex<Credentials>,
    stale: AtomicBool,
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stored({}, <redacted>)", self.lookup.describe())
    }
}

impl CredentialProvider for Stored {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(async move {
            let mut current = self.current.lock().await;
            if self.stale.swap(false, Ordering::AcqRel) {
                // A file or helper that gives nothing gives no credentials: an auth failure.
                let refused = |reason| Error::new(ErrorKind::Unauthorized, reason);
                match self.lookup.ask().await.map_err(refused)? {
                    Some(fresh) => *current = fresh,
                    None => {
                        return Err(refused(format!(
                            "{} no longer has credentials for it",
                            self.lookup.describe()
                        )));
                    }
                }
            }
            Ok(current.clone())
        })
    }

    fn invalidate(&self) {
        self.stale.store(true, Ordering::Release);
    }

    fn username(&self) -> &str {
        &self.username
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::CloudEnvironment;
    use crate::config::{RegistryLocation, Site};
    use base64::Engine as _;

    fn location(registry: &str) -> Location {
        let (registry, cloud) = CloudRegistry::detect(registry);
        let site = Site::Registry(RegistryLocation::parse(&registry).expect("a registry"));
        Location {
            registry,
            site,
            auth: Auth::Omitted,
            auth_refresh: None,
            cloud,
            skip_tls_verify: false,
            lister: None,
            auth_file: None,
            credentials_file: None,
            line: 1,
        }
    }

    fn auths(entries: &[(&str, &str)]) -> String {
        let map: serde_json::Map<String, serde_json::Value> = entries
            .iter()
            .map(|(k, up)| {
                (
                    k.to_string(),
                    serde_json::json!({"auth": base64::engine::general_purpose::STANDARD.encode(up)}),
                )
            })
            .collect();
        serde_json::json!({ "auths": map }).to_string()
    }

    async fn source_and_user(chain: &Chain, location: &Location) -> (String, Option<String>) {
        let resolution = chain
            .resolve(location, &Cloud::new(CloudEnvironment::from_vars(|_| None)))
            .await
            .expect("resolves");
        let user = match &resolution.supply {
            Supply::Fixed(c) => c.as_ref().map(|c| c.username().to_string()),
            Supply::Provider { provider, .. } => Some(
                provider
                    .credentials()
                    .await
                    .expect("credentials")
                    .username()
                    .to_string(),
            ),
        };
        (resolution.source.to_string(), user)
    }

    #[tokio::test]
    async fn lookup_order_of_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let write = |rel: &str, json: String| {
            let path = d.join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, json).expect("write");
            path
        };
        let side = write("side.json", auths(&[("r.example.com/team", "side:1")]));
        let env_file = write("env.json", auths(&[("r.example.com", "env:1")]));
        write(
            "xdg/containers/auth.json",
            auths(&[("r.example.com", "xdg:1")]),
        );
        write("dc/config.json", auths(&[("r.example.com", "dc:1")]));
        write(
            "home/.docker/config.json",
            auths(&[("r.example.com", "home:1"), ("hub.only", "h:1")]),
        );
        let env = Environment {
            registry_auth_file: Some(env_file),
            xdg_runtime_dir: Some(d.join("xdg")),
            docker_config: Some(d.join("dc")),
            home: Some(d.join("home")),
        };
        let mut loc = location("r.example.com/team/x");
        loc.auth_file = Some(side.clone());
        let chain = Chain::new(
            env.clone(),
            crate::config::DEFAULT_CREDENTIAL_HELPER_TIMEOUT,
        );
        let (source, user) = source_and_user(&chain, &loc).await;
        assert_eq!(user.as_deref(), Some("side"));
        assert_eq!(source, format!("auth-file {} (auths)", side.display()));
        let order = [
            (true, true, true, "env"),
            (false, true, true, "xdg"),
            (false, false, true, "dc"),
            (false, false, false, "home"),
        ];
        for (with_env, with_xdg, with_dc, want) in order {
            let env = Environment {
                registry_auth_file: env.registry_auth_file.clone().filter(|_| with_env),
                xdg_runtime_dir: env.xdg_runtime_dir.clone().filter(|_| with_xdg),
                docker_config: env.docker_config.clone().filter(|_| with_dc),
                home: env.home.clone(),
            };
            let chain = Chain::new(env, crate::config::DEFAULT_CREDENTIAL_HELPER_TIMEOUT);
            let (_, user) = source_and_user(&chain, &location("r.example.com")).await;
            assert_eq!(user.as_deref(), Some(want));
        }
        // DOCKER_CONFIG replaces ~/.docker: an entry only in the home file is not seen then.
        let chain = Chain::new(
            env.clone(),
            crate::config::DEFAULT_CREDENTIAL_HELPER_TIMEOUT,
        );
        let (source, user) = source_and_user(&chain, &location("hub.only")).await;
        assert_eq!((source.as_str(), user), ("anonymous", None));
        let chain = Chain::new(
            Environment {
                home: env.home.clone(),
                ..Environment::default()
            },
            crate::config::DEFAULT_CREDENTIAL_HELPER_TIMEOUT,
        );
        let (source, _) = source_and_user(&chain, &location("hub.only")).await;
        assert_eq!(source, "~/.docker/config.json (auths)");
    }

    #[tokio::test]
    async fn a_new_run_looks_again_and_updates_the_provider_clients_hold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("auth.json");
        let env = Environment {
            registry_auth_file: Some(path.clone()),
            ..Environment::default()
        };
        let chain = Chain::new(env, crate::config::DEFAULT_CREDENTIAL_HELPER_TIMEOUT);
        let cloud = Cloud::new(CloudEnvironment::from_vars(|_| None));
        let loc = location("r.example.com");
        // No file yet: anonymous, for the rest of this run.
        assert_eq!(source_and_user(&chain, &loc).await.0, "anonymous");
        std::fs::write(&path, auths(&[("r.example.com", "first:1")])).expect("write");
        assert_eq!(source_and_user(&chain, &loc).await.0, "anonymous");
        chain.start_run();
        let first = chain.resolve(&loc, &cloud).await.expect("resolves");
        let Supply::Provider { provider, identity } = &first.supply else {
            panic!("a provider")
        };
        assert_eq!(
            provider.credentials().await.ok(),
            Some(Credentials::new("first", "1"))
        );
        // Rotated: the next run's lookup updates the provider clients already hold.
        std::fs::write(&path, auths(&[("r.example.com", "first:2")])).expect("write");
        assert_eq!(
            provider.credentials().await.ok(),
            Some(Credentials::new("first", "1"))
        );
        chain.start_run();
        let second = chain.resolve(&loc, &cloud).await.expect("resolves");
        let Supply::Provider { identity: same, .. } = &second.supply else {
            panic!("a provider")
        };
        assert_eq!(same, identity);
        assert_eq!(
            provider.credentials().await.ok(),
            Some(Credentials::new("first", "2"))
        );
    }

    #[tokio::test]
    async fn config_auth_and_auth_none_win_over_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        std::fs::write(&path, auths(&[("r", "file:1")])).expect("write");
        let env = Environment {
            registry_auth_file: Some(path),
            ..Environment::default()
        };
        let chain = Chain::new(env, crate::config::DEFAULT_CREDENTIAL_HELPER_TIMEOUT);
        let mut loc = location("r");
        loc.auth = Auth::Credentials(Credentials::new("cfg", "x"));
        assert_eq!(
            source_and_user(&chain, &loc).await,
            ("config".to_string(), Some("cfg".to_string()))
        );
        loc.auth = Auth::None;
        assert_eq!(
            source_and_user(&chain, &loc).await,
            ("anonymous (auth: none)".to_string(), None)
        );
        let mut loc = location("r");
        loc.auth_file = Some(dir.path().join("missing.json"));
        let err = chain
            .resolve(&loc, &Cloud::new(CloudEnvironment::from_vars(|_| None)))
            .await
            .expect_err("missing");
        assert!(
            err.contains("missing.json") && err.contains("auth-file"),
            "{err}"
        );
    }
}
