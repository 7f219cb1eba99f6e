//! A real CNCF Distribution registry (`docker-registry serve`) per test: a free loopback port,
//! temporary storage, optional Basic / token auth, TLS or mTLS, and an access log to assert on.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tempfile::TempDir;

use super::certs::{Leaf, TestCa};
use super::http::{self, ClientTls};
use super::token::{Permission, TokenOptions, TokenRequest, TokenServer};

/// Where Debian's `docker-registry` package installs Distribution 2.8.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How long a registry may take to accept connections before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How a registry authenticates clients.
#[derive(Clone, Debug)]
enum Auth {
    Open,
    Basic,
    Token(TokenOptions),
}

/// Whether a registry speaks TLS, and whether it demands client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TlsMode {
    Plain,
    Server,
    Mutual,
}

/// Configures a [`Registry`] before it starts; every option combines with the others.
#[derive(Clone, Debug)]
pub struct RegistryBuilder {
    auth: Auth,
    tls: TlsMode,
    users: Vec<(String, String)>,
    permissions: Vec<Permission>,
    access_log: bool,
    redirect_blobs_to: Option<String>,
    foreign_layers: bool,
}

/// One line of the registry's access log: what a client asked and what it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path with query, e.g. `/v2/foo/tags/list?n=3`.
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// The client's User-Agent (the harness sends [`http::HARNESS_USER_AGENT`]).
    pub user_agent: String,
}

/// How to reach a registry from a harness client: owned, so it can move to a worker thread.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The CA to trust and, for mTLS, the client identity.
    pub tls: ClientTls,
    /// The admin account (full rights in every auth mode).
    pub admin: (String, String),
}

/// A running `docker-registry`; killed (and waited for) on drop, also when the test panics.
pub struct Registry {
    dir: TempDir,
    port: u16,
    tls: TlsMode,
    ca: TestCa,
    client_cert: Option<Leaf>,
    admin: (String, String),
    token: Option<TokenServer>,
    service: Option<String>,
    access_log: bool,
    child: Option<Child>,
    log_offset: AtomicU64,
}

impl Default for RegistryBuilder {
    fn default() -> Self {
        RegistryBuilder {
            auth: Auth::Open,
            tls: TlsMode::Plain,
            users: Vec::new(),
            permissions: Vec::new(),
            access_log: false,
            redirect_blobs_to: None,
            foreign_layers: false,
        }
    }
}

impl RegistryBuilder {
    /// Requires Basic credentials (htpasswd with bcrypt entries) for every request.
    pub fn basic_auth(mut self) -> Self {
        self.auth = Auth::Basic;
        self
    }

    /// Requires bearer tokens from a harness token issuer configured by `options`.
    pub fn token_auth(mut self, options: TokenOptions) -> Self {
        self.auth = Auth::Token(options);
        self
    }

    /// Serves HTTPS with a certificate from the registry's own test CA.
    pub fn tls(mut self) -> Self {
        if self.tls == TlsMode::Plain {
            self.tls = TlsMode::Server;
        }
        self
    }

    /// Serves HTTPS and requires a client certificate signed by the test CA.
    pub fn mtls(mut self) -> Self {
        self.tls = TlsMode::Mutual;
        self
    }

    /// Adds an account (in addition to the admin) for Basic and token auth.
    pub fn user(mut self, name: &str, pass: &str) -> Self {
        self.users.push((name.to_string(), pass.to_string()));
        self
    }

    /// Token auth only: grants `user` the `actions` on repositories matching `repo` (exact name
    /// or glob with `*`). A user with no permission rules has every right.
    pub fn permission(mut self, user: &str, repo: &str, actions: &[&str]) -> Self {
        self.permissions.push(Permission {
            user: user.to_string(),
            repo: repo.to_string(),
            actions: actions.iter().map(|action| action.to_string()).collect(),
        });
        self
    }

    /// Turns on Distribution's access log, read back by [`Registry::requests`].
    pub fn access_log(mut self) -> Self {
        self.access_log = true;
        self
    }

    /// Answers blob GETs with a redirect to `base_url` followed by the blob's storage path, as a
    /// registry on S3 or behind a CDN does (Distribution's `redirect` storage middleware).
    pub fn redirect_blobs_to(mut self, base_url: &str) -> Self {
        self.redirect_blobs_to = Some(base_url.to_string());
        self
    }

    /// Accepts manifests with foreign (non-distributable) layers whose `urls` are http(s):
    /// Distribution refuses every such URL unless told which to allow.
    pub fn foreign_layers(mut self) -> Self {
        self.foreign_layers = true;
        self
    }

    /// Starts the registry and waits until its port accepts connections.
    pub fn start(self) -> Registry {
        Registry::launch(self)
    }
}

impl Registry {
    /// A builder for a registry with options; `Registry::builder().start()` is an open one.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// Starts an open (no auth, plain HTTP) registry: the common case.
    pub fn start() -> Registry {
        Registry::builder().start()
    }

    fn launch(config: RegistryBuilder) -> Registry {
        if !Path::new(REGISTRY_BIN).exists() {
            panic!(
                "docker-registry not found: install it with `apt-get install -y docker-registry` (or run .ci/run)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("dregsy-registry-")
            .tempdir()
            .expect("create a temporary directory for a test registry");
        fs::create_dir_all(dir.path().join("storage"))
            .expect("create the registry storage directory");
        let ca = TestCa::generate("dregsy test CA");
        let admin = (
            "admin".to_string(),
            format!("admin-{:016x}", fastrand::u64(..)),
        );
        let mut users: Vec<(String, String)> = vec![admin.clone()];
        users.extend(config.users.iter().cloned());

        let mut auth_yaml = String::new();
        let mut token = None;
        let mut service = None;
        match &config.auth {
            Auth::Open => {}
            Auth::Basic => {
                let mut htpasswd = String::new();
                for (user, pass) in &users {
                    let hash = bcrypt::hash(pass, 4).expect("bcrypt-hash a test password");
                    htpasswd.push_str(&format!("{user}:{hash}\n"));
                }
                let path = dir.path().join("htpasswd");
                fs::write(&path, htpasswd).expect("write the htpasswd file");
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    path.display()
                );
            }
            Auth::Token(options) => {
                let bundle = dir.path().join("token-ca.crt");
                fs::write(&bundle, ca.cert_pem()).expect("write the token root certificate bundle");
                let issuer = TokenServer::start(
                    options.clone(),
                    users.iter().cloned().collect::<HashMap<_, _>>(),
                    config.permissions.clone(),
                    &ca.token_signing_cert(),
                );
                auth_yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    issuer.realm(),
                    options.service,
                    options.issuer,
                    bundle.display()
                );
                service = Some(options.service.clone());
                token = Some(issuer);
            }
        }

        let validation_yaml = if config.foreign_layers {
            "validation:\n  manifests:\n    urls:\n      allow:\n        - '^https?://'\n"
        } else {
            ""
        };
        let mut tls_yaml = String::new();
        let mut client_cert = None;
        if config.tls != TlsMode::Plain {
            let server = ca.server_cert();
            let cert_path = dir.path().join("server.crt");
            let key_path = dir.path().join("server.key");
            let ca_path = dir.path().join("ca.crt");
            fs::write(&cert_path, &server.cert_pem).expect("write the server certificate");
            fs::write(&key_path, &server.key_pem).expect("write the server key");
            fs::write(&ca_path, ca.cert_pem()).expect("write the CA certificate");
            tls_yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert_path.display(),
                key_path.display()
            );
            if config.tls == TlsMode::Mutual {
                tls_yaml.push_str(&format!("    clientcas:\n      - {}\n", ca_path.display()));
                client_cert = Some(ca.client_cert());
            }
        }

        let middleware_yaml = match &config.redirect_blobs_to {
            Some(base_url) => format!(
                "middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: {base_url}\n"
            ),
            None => String::new(),
        };

        let mut registry = Registry {
            dir,
            port: 0,
            tls: config.tls,
            ca,
            client_cert,
            admin,
            token,
            service,
            access_log: config.access_log,
            child: None,
            log_offset: AtomicU64::new(0),
        };
        // A free port can be taken between probing and binding: retry with another one.
        let mut last_error = String::new();
        for _ in 0..5 {
            registry.port = http::free_port();
            let yaml = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: {}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{}\n  secret: dregsy-test-secret\n{}{}{validation_yaml}{}",
                !config.access_log,
                registry.storage_dir().display(),
                registry.port,
                tls_yaml,
                auth_yaml,
                middleware_yaml
            );
            fs::write(registry.config_path(), yaml).expect("write the registry config");
            match registry.spawn() {
                Ok(()) => {
                    registry.write_certs_dir();
                    return registry;
                }
                Err(error) if error.contains("address already in use") => last_error = error,
                Err(error) => panic!("docker-registry did not start: {error}"),
            }
        }
        panic!("docker-registry did not start (no free port): {last_error}");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("registry.stdout.log")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("registry.stderr.log")
    }

    /// Starts the process and waits for the port; Err carries the reason and the stderr.
    fn spawn(&mut self) -> Result<(), String> {
        let open = |path: PathBuf| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|error| panic!("open {}: {error}", path.display()))
        };
        let stderr_start = fs::metadata(self.stderr_path())
            .map(|meta| meta.len())
            .unwrap_or(0);
        let mut child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(open(self.stdout_path()))
            .stderr(open(self.stderr_path()))
            .spawn()
            .map_err(|error| format!("spawn {REGISTRY_BIN}: {error}"))?;
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "exited with {status}; stderr:\n{}",
                    self.stderr_since(stderr_start)
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "port {} not accepting after {READY_TIMEOUT:?}; stderr:\n{}",
                    self.port,
                    self.stderr_since(stderr_start)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_since(&self, offset: u64) -> String {
        read_from(&self.stderr_path(), offset)
    }

    /// Lays out `certs.d`-style directories: `127.0.0.1/` (as asked for by host), plus the same
    /// files under `127.0.0.1:PORT/` (docker's naming) and `127.0.0.1_PORT/`.
    fn write_certs_dir(&self) {
        if self.tls == TlsMode::Plain {
            return;
        }
        for name in [
            "127.0.0.1".to_string(),
            format!("127.0.0.1:{}", self.port),
            format!("127.0.0.1_{}", self.port),
        ] {
            let dir = self.certs_dir().join(name);
            fs::create_dir_all(&dir).expect("create a certs.d host directory");
            fs::write(dir.join("ca.crt"), self.ca.cert_pem()).expect("write certs.d ca.crt");
            if let Some(client) = &self.client_cert {
                fs::write(dir.join("client.cert"), &client.cert_pem)
                    .expect("write certs.d client.cert");
                fs::write(dir.join("client.key"), &client.key_pem)
                    .expect("write certs.d client.key");
            }
        }
    }

    /// Kills the registry process (storage stays); a no-op when it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the registry, then starts it again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(error) = self.spawn() {
            panic!("docker-registry did not restart: {error}");
        }
    }

    /// The process id while running: lets a test prove the process is gone after drop.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `127.0.0.1:PORT`: the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port the registry listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls == TlsMode::Plain {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", self.host())
    }

    /// Whether the registry serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls != TlsMode::Plain
    }

    /// A `certs.d`-style directory: `<dir>/127.0.0.1/ca.crt` and, for mTLS, `client.cert` and
    /// `client.key` (PEM); the same files also sit under `127.0.0.1:PORT/` and `127.0.0.1_PORT/`.
    /// Empty for plain-HTTP registries.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    /// `<certs_dir>/127.0.0.1`: the directory to hand to `skopeo --cert-dir`.
    pub fn host_certs_dir(&self) -> PathBuf {
        self.certs_dir().join("127.0.0.1")
    }

    /// PEM of this registry's test CA (it signs the server and client certificates and the
    /// token-signing certificate).
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The mTLS client certificate and key (PEM), when the registry was built with `.mtls()`.
    pub fn client_cert(&self) -> Option<&Leaf> {
        self.client_cert.as_ref()
    }

    /// `(user, password)` of the admin account, which has every right in every auth mode.
    pub fn admin(&self) -> (String, String) {
        self.admin.clone()
    }

    /// Standard base64 of `{"username":…,"password":…}`: what dregsy's `auth:` key takes.
    pub fn auth_b64(&self, user: &str, pass: &str) -> String {
        auth_b64(user, pass)
    }

    /// [`Registry::auth_b64`] of the admin account.
    pub fn admin_auth_b64(&self) -> String {
        auth_b64(&self.admin.0, &self.admin.1)
    }

    /// Where the registry keeps blobs and manifests (survives [`Registry::restart`]).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The temporary directory holding config, logs, certificates and storage.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The token realm URL in token mode.
    pub fn token_realm(&self) -> Option<String> {
        self.token.as_ref().map(TokenServer::realm)
    }

    /// The token `service` name in token mode.
    pub fn token_service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// The token issuer in token mode (e.g. to mint a token directly).
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// Tokens issued to clients other than the harness (0 unless token mode): asserts caching.
    pub fn tokens_issued(&self) -> usize {
        self.token
            .as_ref()
            .map(TokenServer::tokens_issued)
            .unwrap_or(0)
    }

    /// Every token request the issuer answered (empty unless token mode).
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.token
            .as_ref()
            .map(TokenServer::requests)
            .unwrap_or_default()
    }

    /// Owned connection details for harness clients.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            url: self.url(),
            host: self.host(),
            tls: self.client_tls(),
            admin: self.admin.clone(),
        }
    }

    /// The TLS settings a client needs: trust the test CA only and, for mTLS, present the
    /// client certificate.
    pub fn client_tls(&self) -> ClientTls {
        if self.tls == TlsMode::Plain {
            return ClientTls::default();
        }
        ClientTls {
            ca_pem: Some(self.ca.cert_pem().to_string()),
            identity_pem: self
                .client_cert
                .as_ref()
                .map(|leaf| format!("{}{}", leaf.cert_pem, leaf.key_pem)),
        }
    }

    /// A reqwest client (no redirects, harness timeouts) that can reach this registry.
    pub fn client(&self) -> reqwest::Client {
        http::client(&self.client_tls())
    }

    /// The registry's stdout and stderr so far (for failure messages).
    pub fn logs(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            read_from(&self.stdout_path(), 0),
            read_from(&self.stderr_path(), 0)
        )
    }

    /// Requests in the access log since the start or the last [`Registry::clear_requests`].
    ///
    /// Distribution writes a line after the response is sent, so this waits until the log has
    /// been quiet briefly. Panics when the registry was built without `.access_log()`.
    pub fn requests(&self) -> Vec<Request> {
        assert!(
            self.access_log,
            "Registry::requests needs Registry::builder().access_log()"
        );
        let offset = self.log_offset.load(Ordering::SeqCst);
        let (text, _) = self.settled_log(offset);
        text.lines().filter_map(parse_access_line).collect()
    }

    /// Forgets the requests logged so far: later [`Registry::requests`] calls start here.
    pub fn clear_requests(&self) {
        let offset = self.log_offset.load(Ordering::SeqCst);
        let (_, end) = self.settled_log(offset);
        self.log_offset.store(end, Ordering::SeqCst);
    }

    /// Reads the stdout log from `offset` once its size has been stable for a short while;
    /// returns the text up to the last complete line and the offset after it.
    fn settled_log(&self, offset: u64) -> (String, u64) {
        let path = self.stdout_path();
        let size = || fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = size();
        loop {
            std::thread::sleep(Duration::from_millis(40));
            let now = size();
            if now == last || Instant::now() > deadline {
                break;
            }
            last = now;
        }
        let text = read_from(&path, offset);
        let complete = text.rfind('\n').map(|index| index + 1).unwrap_or(0);
        (text[..complete].to_string(), offset + complete as u64)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Standard base64 of `{"username":…,"password":…}`: what dregsy's config `auth:` key takes.
pub fn auth_b64(user: &str, pass: &str) -> String {
    STANDARD.encode(serde_json::json!({"username": user, "password": pass}).to_string())
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path)
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

/// Parses one combined-log-format line as Distribution writes it:
/// `127.0.0.1 - - [28/Nov/2026:10:12:01 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"`.
fn parse_access_line(line: &str) -> Option<Request> {
    static LINE: OnceLock<regex::Regex> = OnceLock::new();
    let re = LINE.get_or_init(|| {
        regex::Regex::new(
            r#"^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+)[^"]*" (\d{3}) \S+ "[^"]*" "([^"]*)""#,
        )
        .expect("compile the access log pattern")
    });
    let captures = re.captures(line)?;
    Some(Request {
        method: captures[1].to_string(),
        path: captures[2].to_string(),
        status: captures[3].parse().ok()?,
        user_agent: captures[4].to_string(),
    })
}

/// Our registry client's options for a harness registry at `host`, with fast retries so that
/// fault tests stay quick.
pub fn client_options(host: &str) -> dregsy::registry::RegistryOptions {
    let mut options = dregsy::registry::RegistryOptions::new(
        dregsy::registry::RegistryHost::parse(host).expect("valid host"),
    );
    options.retry = dregsy::registry::RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        ..dregsy::registry::RetryPolicy::default()
    };
    options
}
