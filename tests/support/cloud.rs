//! Stand-ins for the cloud APIs dregsy calls, on loopback: moto (a real AWS API server, from
//! PyPI) for ECR, a small server speaking the `ecr-public` JSON protocol (which moto lacks),
//! and Google's OAuth2 token endpoint and GCE metadata server.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt;
use hyper::StatusCode;
use serde_json::{Value, json};

use dregsy::cloud::{AwsCredentials, AwsEnvironment, CloudEnvironment, GoogleEnvironment};

use super::http::{Server, free_port, parse_query, respond};

/// The cloud environment a test gives the code under test in its own process: dummy AWS
/// keys (so no credential chain runs, and no metadata address is ever asked), the ECR APIs
/// and the GCE metadata server on closed loopback ports, and no Google key file. A test
/// points the parts it uses at its stand-ins.
pub fn closed_environment() -> CloudEnvironment {
    let closed = format!("http://127.0.0.1:{}", free_port());
    CloudEnvironment {
        aws: AwsEnvironment {
            ecr_endpoint: Some(closed.clone()),
            ecr_public_endpoint: Some(closed),
            credentials: AwsCredentials::Keys {
                access_key_id: "testing".into(),
                secret_access_key: "testing".into(),
                session_token: None,
            },
        },
        google: GoogleEnvironment {
            application_credentials: None,
            metadata_host: format!("127.0.0.1:{}", free_port()),
        },
    }
}

/// The dummy AWS environment every cloud test gives the code under test: fixed credentials,
/// a region, no instance metadata, no profile files of the machine, no proxy for loopback.
pub fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        ),
        ("AWS_ENDPOINT_URL", endpoint),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A moto server (`moto_server`, PyPI `moto[server]`) on a free loopback port.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto and waits until it accepts connections.
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}): install it with `python3 -m pip install 'moto[server]'` \
                     (scripts/test does this when it is missing)"
                )
            });
        let mut moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not start in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto.port = port;
        moto
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stand-in for the `ecr-public` API (AWS JSON 1.1: `POST /` with `X-Amz-Target`):
/// `GetAuthorizationToken`, `DescribeRepositories` (paged by `maxResults`/`nextToken`) and
/// `CreateRepository`, with repositories kept in memory. It refuses as AWS does: the access key
/// [`UNKNOWN_KEY`] with `UnrecognizedClientException`, [`DENIED_KEY`] with
/// `AccessDeniedException`, and a listing of the registry [`MISSING_REGISTRY`] with
/// `RegistryNotFoundException`.
pub struct EcrPublicApi {
    server: Server,
    repositories: Arc<Mutex<Vec<String>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

/// An access key the `ecr-public` stand-in does not know.
pub const UNKNOWN_KEY: &str = "AKIDUNKNOWN";

/// An access key the `ecr-public` stand-in knows, but denies every operation.
pub const DENIED_KEY: &str = "AKIDDENIED";

/// A registry (account) the `ecr-public` stand-in has not heard of.
pub const MISSING_REGISTRY: &str = "000000000000";

/// The password the `ecr-public` stand-in issues, as `AWS:<password>`.
pub const ECR_PUBLIC_PASSWORD: &str = "public-ecr-test-token";

impl EcrPublicApi {
    pub fn start() -> EcrPublicApi {
        let repositories: Arc<Mutex<Vec<String>>> = Arc::default();
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let (repos, seen) = (repositories.clone(), calls.clone());
        let server = Server::start("ecr-public-api", move |request| {
            let (repos, seen) = (repos.clone(), seen.clone());
            async move {
                let key = request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split("Credential=").nth(1))
                    .and_then(|v| v.split('/').next())
                    .unwrap_or_default()
                    .to_string();
                let target = request
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let input: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
                seen.lock().unwrap().push(target.clone());
                let ok =
                    |v: Value| respond(StatusCode::OK, "application/x-amz-json-1.1", v.to_string());
                let fail = |kind: &str| {
                    respond(
                        StatusCode::BAD_REQUEST,
                        "application/x-amz-json-1.1",
                        json!({"__type": kind, "message": kind}).to_string(),
                    )
                };
                match key.as_str() {
                    UNKNOWN_KEY => return fail("UnrecognizedClientException"),
                    DENIED_KEY => return fail("AccessDeniedException"),
                    _ => {}
                }
                if target == "DescribeRepositories" && input["registryId"] == MISSING_REGISTRY {
                    return fail("RegistryNotFoundException");
                }
                let mut repos = repos.lock().unwrap();
                match target.as_str() {
                    "GetAuthorizationToken" => {
                        let token = base64::engine::general_purpose::STANDARD
                            .encode(format!("AWS:{ECR_PUBLIC_PASSWORD}"));
                        ok(json!({"authorizationData": {
                            "authorizationToken": token,
                            "expiresAt": 4_102_444_800u64
                        }}))
                    }
                    "CreateRepository" => {
                        let name = input["repositoryName"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        if repos.contains(&name) {
                            return fail("RepositoryAlreadyExistsException");
                        }
                        repos.push(name.clone());
                        ok(json!({"repository": {"repositoryName": name}}))
                    }
                    "DescribeRepositories" => {
                        if let Some(names) = input["repositoryNames"].as_array() {
                            let found: Vec<Value> = names
                                .iter()
                                .filter_map(|n| n.as_str())
                                .filter(|n| repos.iter().any(|r| r == n))
                                .map(|n| json!({"repositoryName": n}))
                                .collect();
                            if found.len() < names.len() {
                                return fail("RepositoryNotFoundException");
                            }
                            return ok(json!({"repositories": found}));
                        }
                        let start: usize = input["nextToken"]
                            .as_str()
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0);
                        let max = input["maxResults"].as_u64().unwrap_or(100) as usize;
                        let page: Vec<Value> = repos
                            .iter()
                            .skip(start)
                            .take(max)
                            .map(|n| json!({"repositoryName": n}))
                            .collect();
                        let mut out = json!({"repositories": page});
                        if start + max < repos.len() {
                            out["nextToken"] = json!((start + max).to_string());
                        }
                        ok(out)
                    }
                    _ => fail("UnsupportedCommandException"),
                }
            }
        });
        EcrPublicApi {
            server,
            repositories,
            calls,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The repositories created so far.
    pub fn repositories(&self) -> Vec<String> {
        self.repositories.lock().unwrap().clone()
    }

    /// The operations called so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

/// The test service account's private key (PKCS#8 PEM) and public key (PKCS#1 DER).
pub const SERVICE_ACCOUNT_KEY: &str =
    include_str!("../fixtures/cloud/test-service-account-key.pem");
pub const SERVICE_ACCOUNT_PUBLIC_KEY: &[u8] =
    include_bytes!("../fixtures/cloud/test-service-account-key.pub.der");

/// Google's OAuth2 token endpoint and the GCE metadata server in one stand-in: the JWT-bearer
/// grant (the assertion's RS256 signature checked against the test key) at `POST /token`, and
/// `GET /computeMetadata/v1/instance/service-accounts/default/token` (only with
/// `Metadata-Flavor: Google`). Every token it issues is `access_token`.
pub struct GoogleApi {
    server: Server,
    token_requests: Arc<AtomicUsize>,
    metadata_requests: Arc<AtomicUsize>,
    pub access_token: String,
}

impl GoogleApi {
    /// Issues `access_token` with the given lifetime.
    pub fn start(access_token: &str, expires_in: u64) -> GoogleApi {
        let token_requests = Arc::new(AtomicUsize::new(0));
        let metadata_requests = Arc::new(AtomicUsize::new(0));
        let (tokens, metadata) = (token_requests.clone(), metadata_requests.clone());
        let issued = access_token.to_string();
        let server = Server::start("google-api", move |request| {
            let (tokens, metadata, issued) = (tokens.clone(), metadata.clone(), issued.clone());
            async move {
                let answer = json!({
                    "access_token": issued,
                    "expires_in": expires_in,
                    "token_type": "Bearer"
                })
                .to_string();
                let path = request.uri().path().to_string();
                if path == "/computeMetadata/v1/instance/service-accounts/default/token" {
                    let flavor = request.headers().get("metadata-flavor").cloned();
                    if flavor.as_ref().and_then(|v| v.to_str().ok()) != Some("Google") {
                        return respond(
                            StatusCode::FORBIDDEN,
                            "text/plain",
                            "missing Metadata-Flavor",
                        );
                    }
                    metadata.fetch_add(1, Ordering::SeqCst);
                    let mut response = respond(StatusCode::OK, "application/json", answer);
                    response.headers_mut().insert(
                        "metadata-flavor",
                        hyper::header::HeaderValue::from_static("Google"),
                    );
                    return response;
                }
                if path != "/token" {
                    return respond(StatusCode::NOT_FOUND, "text/plain", "not found");
                }
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let form = parse_query(&String::from_utf8_lossy(&body));
                let field = |k: &str| {
                    form.iter()
                        .find(|(name, _)| name == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let refused = |why: &str| {
                    respond(
                        StatusCode::BAD_REQUEST,
                        "application/json",
                        json!({"error": "invalid_grant", "error_description": why}).to_string(),
                    )
                };
                if field("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
                    return refused("unsupported grant_type");
                }
                if let Err(why) = verify_assertion(&field("assertion")) {
                    return refused(&why);
                }
                tokens.fetch_add(1, Ordering::SeqCst);
                respond(StatusCode::OK, "application/json", answer)
            }
        });
        GoogleApi {
            server,
            token_requests,
            metadata_requests,
            access_token: access_token.to_string(),
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `127.0.0.1:PORT`, as `GCE_METADATA_HOST` takes it.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// Tokens issued for a service-account assertion.
    pub fn token_requests(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }

    /// Tokens issued by the metadata server.
    pub fn metadata_requests(&self) -> usize {
        self.metadata_requests.load(Ordering::SeqCst)
    }

    /// A service account key file whose `token_uri` is this stand-in.
    pub fn key_file(&self, email: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "test-key-1",
            "private_key": SERVICE_ACCOUNT_KEY,
            "client_email": email,
            "client_id": "1",
            "token_uri": format!("{}/token", self.url()),
        })
        .to_string()
    }
}

/// Checks a JWT-bearer assertion: RS256 by the test key, with issuer, scope and audience.
fn verify_assertion(jwt: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("not a JWT".into());
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "bad signature encoding")?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        SERVICE_ACCOUNT_PUBLIC_KEY,
    )
    .verify(format!("{header}.{claims}").as_bytes(), &signature)
    .map_err(|_| "invalid signature")?;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(claims)
            .map_err(|_| "bad claims encoding")?,
    )
    .map_err(|_| "claims are not JSON")?;
    if claims["iss"].as_str().is_none_or(str::is_empty) || claims["scope"].as_str().is_none() {
        return Err("missing iss or scope".into());
    }
    if !claims["aud"]
        .as_str()
        .is_some_and(|a| a.ends_with("/token"))
    {
        return Err("wrong audience".into());
    }
    Ok(())
}
