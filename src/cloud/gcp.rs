//! Google access tokens for GCR and Artifact Registry (README.md, "Google Container Registry and
//! Artifact Registry"), as user
//! `oauth2accesstoken`.
//!
//! Where the token comes from, in the original's order (as the run's [`GoogleEnvironment`]
//! says, read from the process environment where it starts):
//! 1. `GOOGLE_APPLICATION_CREDENTIALS` names a JSON key file: a service account key (a JWT
//!    signed with its RS256 key, exchanged at its `token_uri`), or an `authorized_user` file
//!    as `gcloud auth application-default login` writes it (its refresh token, exchanged at
//!    its `token_uri`);
//! 2. otherwise the GCE metadata server (`metadata.google.internal`, or `GCE_METADATA_HOST`
//!    as Google's own libraries honour it).
//!
//! A small implementation of our own: both flows are two HTTP calls, and ring (already here
//! for TLS) signs RS256, so no Google SDK is needed.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;

use super::environment::GoogleEnvironment;
use super::refused;
use super::token::{Fresh, TokenCache};
use crate::registry::{CredentialProvider, Credentials, CredentialsFuture, Error, ErrorKind};

/// The registry user name that goes with a Google access token.
pub const USERNAME: &str = "oauth2accesstoken";

/// The scope asked for: covers both GCR (storage) and Artifact Registry, as `gcloud` does.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// A token response or key file is small; more is a broken server or the wrong file.
const MAX_RESPONSE: usize = 256 * 1024;

/// The provider for a GCR/GAR location without `auth`, with the token sources `environment`
/// names.
pub fn token_provider(environment: GoogleEnvironment) -> Arc<dyn CredentialProvider> {
    Arc::new(GoogleTokens {
        environment,
        cache: TokenCache::default(),
    })
}

/// Google application default credentials, cached until shortly before they expire.
#[derive(Debug)]
pub struct GoogleTokens {
    environment: GoogleEnvironment,
    cache: TokenCache,
}

impl CredentialProvider for GoogleTokens {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self.cache.get(None, || fetch(&self.environment)))
    }

    fn invalidate(&self) {
        self.cache.invalidate();
    }

    fn username(&self) -> &str {
        USERNAME
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    private_key_id: String,
    #[serde(default)]
    token_uri: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    refresh_token: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    access_token: String,
    expires_in: Option<u64>,
}

/// A token from the source `environment` names. Errors are credential failures unless the
/// network is to blame (a token service that did not answer) or the service throttled us.
async fn fetch(environment: &GoogleEnvironment) -> Result<Fresh, Error> {
    let client = http_client()?;
    match &environment.application_credentials {
        Some(path) => from_key_file(&client, path).await.map_err(|e| {
            e.within(format_args!(
                "cannot get a Google access token from GOOGLE_APPLICATION_CREDENTIALS ({})",
                path.display()
            ))
        }),
        None => from_metadata_server(&client, &environment.metadata_host).await,
    }
}

fn http_client() -> Result<reqwest::Client, Error> {
    let tls = crate::registry::system_client_config()?;
    crate::http_client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("dregsy/", env!("CARGO_PKG_VERSION")))
        // A token or a key's exchange never goes from HTTPS down to plain HTTP.
        .redirect(crate::registry::redirect_policy())
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                format!("cannot set up an HTTP client: {e}"),
            )
        })
}

async fn from_key_file(client: &reqwest::Client, path: &std::path::Path) -> Result<Fresh, Error> {
    let (token_uri, form) = token_request(path).map_err(refused)?;
    let response = client
        .post(&token_uri)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_encode(&form))
        .send()
        .await
        .map_err(|e| {
            unanswered(
                &e,
                format!(
                    "the token service at {token_uri} did not answer: {}",
                    super::innermost_cause(&e)
                ),
            )
        })?;
    token_from(response, &token_uri).await
}

/// A request to a token service: its URI and the form to send it.
type TokenRequest = (String, Vec<(&'static str, String)>);

/// The token service and the form to send it, from the key file at `path`.
fn token_request(path: &std::path::Path) -> Result<TokenRequest, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the file: {e}"))?;
    if meta.len() > MAX_RESPONSE as u64 {
        return Err("the file is too large for a credentials file".into());
    }
    let text = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let key: KeyFile = serde_json::from_slice(&text)
        .map_err(|e| format!("the file is not a Google credentials JSON file ({e})"))?;
    let token_uri = if key.token_uri.is_empty() {
        DEFAULT_TOKEN_URI
    } else {
        key.token_uri.as_str()
    };
    let form = match key.kind.as_str() {
        "service_account" => {
            let assertion = signed_assertion(&key, token_uri)?;
            vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ),
                ("assertion", assertion),
            ]
        }
        "authorized_user" => vec![
            ("grant_type", "refresh_token".into()),
            ("client_id", key.client_id.clone()),
            ("client_secret", key.client_secret.clone()),
            ("refresh_token", key.refresh_token.clone()),
        ],
        other => {
            return Err(format!(
                "not supported yet: credentials of type '{other}'; use a service account key \
                 ('service_account') or 'authorized_user' credentials"
            ));
        }
    };
    Ok((token_uri.to_owned(), form))
}

/// A request to a token service that got no answer: a timeout, a connection that could not be
/// made, or one that broke.
fn unanswered(error: &reqwest::Error, reason: String) -> Error {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_connect() {
        ErrorKind::Unreachable
    } else {
        ErrorKind::Network
    };
    Error::new(kind, reason)
}

/// `application/x-www-form-urlencoded` encoding.
fn form_encode(pairs: &[(&str, String)]) -> String {
    let mut url = match reqwest::Url::parse("http://form.invalid/") {
        Ok(url) => url,
        Err(_) => return String::new(),
    };
    url.query_pairs_mut()
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    url.query().unwrap_or_default().to_owned()
}

/// A JWT for the service account, signed with its key (RFC 7523), valid for an hour.
fn signed_assertion(key: &KeyFile, token_uri: &str) -> Result<String, String> {
    if key.client_email.is_empty() || key.private_key.is_empty() {
        return Err("the service account key has no 'client_email' or 'private_key'".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_string())?
        .as_secs();
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if !key.private_key_id.is_empty() {
        header["kid"] = key.private_key_id.clone().into();
    }
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": token_uri,
        "iat": now,
        "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign_rs256(&key.private_key, signing_input.as_bytes())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// RS256 over `message` with a PEM private key (PKCS#8, or PKCS#1 `RSA PRIVATE KEY`).
fn sign_rs256(pem: &str, message: &[u8]) -> Result<Vec<u8>, String> {
    let pkcs1 = pem.contains("BEGIN RSA PRIVATE KEY");
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    let der = STANDARD
        .decode(body)
        .map_err(|_| "the service account's private key is not valid PEM".to_string())?;
    let key_pair = if pkcs1 {
        ring::signature::RsaKeyPair::from_der(&der)
    } else {
        ring::signature::RsaKeyPair::from_pkcs8(&der)
    }
    .map_err(|e| format!("the service account's private key is not a usable RSA key ({e})"))?;
    let mut signature = vec![0; key_pair.public().modulus_len()];
    key_pair
        .sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            message,
            &mut signature,
        )
        .map_err(|_| "signing the service account assertion failed".to_string())?;
    Ok(signature)
}

/// A token from the GCE metadata server at `host`. One that does not answer, or is no GCE
/// metadata server, means no credentials: we are not on GCE.
async fn from_metadata_server(client: &reqwest::Client, host: &str) -> Result<Fresh, Error> {
    let url = format!("http://{host}{METADATA_TOKEN_PATH}");
    let not_gce = |why: String| {
        refused(format!(
            "neither GOOGLE_APPLICATION_CREDENTIALS set, nor a GCE instance ({why}); set \
             GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or write \
                          'auth: none' for anonymous access"
        ))
    };
    let response = client
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .header("Accept", "application/json")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| {
            not_gce(format!(
                "the metadata server at {host} did not answer: {}",
                super::innermost_cause(&e)
            ))
        })?;
    let flavor = response
        .headers()
        .get("metadata-flavor")
        .and_then(|v| v.to_str().ok());
    if flavor != Some("Google") {
        return Err(not_gce(format!(
            "{host} answered, but is not a GCE metadata server"
        )));
    }
    token_from(response, &format!("the metadata server at {host}")).await
}

/// Reads an OAuth2 token response. Errors quote Google's `error` text, never a token; a
/// refusal is a credential failure unless it is throttling (HTTP 429).
async fn token_from(mut response: reqwest::Response, from: &str) -> Result<Fresh, Error> {
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| unanswered(&e, format!("reading the answer of {from} failed: {e}")))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("the answer of {from} is too large"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        #[derive(Deserialize)]
        struct OAuthError {
            #[serde(default)]
            error: String,
            #[serde(default)]
            error_description: String,
        }
        let said = serde_json::from_slice::<OAuthError>(&body)
            .map(|e| format!(": {} {}", e.error, e.error_description))
            .unwrap_or_default();
        let kind = match status.as_u16() {
            429 => ErrorKind::RateLimited,
            _ => ErrorKind::Unauthorized,
        };
        return Err(Error::new(
            kind,
            format!(
                "{from} refused to issue a token (HTTP {}){}",
                status.as_u16(),
                said.trim_end()
            ),
        )
        .with_status(status.as_u16()));
    }
    let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("{from} sent an invalid token response ({e})"),
        )
    })?;
    if parsed.access_token.is_empty() {
        return Err(refused(format!("no auth token received from {from}")));
    }
    Ok(Fresh {
        credentials: Credentials::new(USERNAME, parsed.access_token),
        valid_for: parsed.expires_in.map(Duration::from_secs),
    })
}
