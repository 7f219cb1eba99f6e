//! The `dockerhub` lister: logs in to the Docker Hub API with the source's credentials and
//! lists that user's repositories (private ones included), as the original did, but with
//! status codes checked (docs/compatibility.md).
//!
//! `POST <api>/v2/users/login/` (form `username`, `password`) gives a JWT, reused while its
//! `exp` is ahead; then `GET <api>/v2/repositories/<user>/?page_size=100` with
//! `Authorization: JWT <token>`, following `next`. Entries of `repository_type` `image` come
//! back as `namespace/name`. The API root is `https://hub.docker.com`, or the value of
//! [`DOCKERHUB_API_ENV`] (for tests and Hub-compatible mirrors).

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use super::http::Http;
use crate::config::Location;
use crate::failure::Failure;
use crate::registry::Credentials;

/// Overrides the Docker Hub API root (default `https://hub.docker.com`).
pub const DOCKERHUB_API_ENV: &str = "DREGSY_DOCKERHUB_API";

const DEFAULT_API: &str = "https://hub.docker.com";

/// Entries per page; the Hub's maximum.
const PAGE_SIZE: usize = 100;

/// A bound on pages, so a `next` that loops cannot keep us busy forever.
const MAX_PAGES: usize = 10_000;

/// A token is renewed when it expires within this many seconds.
const EXPIRY_MARGIN_SECS: i64 = 60;

/// Login tokens per API root and identity.
#[derive(Default)]
pub(super) struct Tokens {
    tokens: Mutex<Vec<(String, Credentials, Token)>>,
}

#[derive(Clone)]
struct Token {
    jwt: String,
    /// Seconds since the epoch; `None` when the token does not say (then it is not reused).
    expires: Option<i64>,
}

impl Token {
    fn fresh(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(i64::MAX);
        self.expires
            .is_some_and(|exp| exp > now.saturating_add(EXPIRY_MARGIN_SECS))
    }
}

impl Tokens {
    fn get(&self, api: &str, credentials: &Credentials) -> Option<Token> {
        let tokens = self.tokens.lock().ok()?;
        tokens
            .iter()
            .find(|(a, c, t)| a == api && c == credentials && t.fresh())
            .map(|(_, _, t)| t.clone())
    }

    fn put(&self, api: &str, credentials: &Credentials, token: Token) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|(a, c, _)| !(a == api && c == credentials));
            tokens.push((api.to_string(), credentials.clone(), token));
        }
    }
}

#[derive(Deserialize)]
struct Page {
    next: Option<String>,
    #[serde(default)]
    results: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    namespace: String,
    repository_type: Option<String>,
}

/// The API root: [`DOCKERHUB_API_ENV`] or Docker Hub's.
fn api_root() -> Result<Url, String> {
    let text = std::env::var(DOCKERHUB_API_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_API.to_string());
    let text = format!("{}/", text.trim().trim_end_matches('/'));
    Url::parse(&text).map_err(|e| format!("invalid Docker Hub API address '{text}': {e}"))
}

/// The user's image repositories, at most `max + 1` of them.
pub(super) async fn list(
    location: &Location,
    credentials: Option<&Credentials>,
    tokens: &Tokens,
    max: Option<usize>,
) -> Result<Vec<String>, Failure> {
    let Some(credentials) = credentials else {
        return Err(Failure::Credentials(format!(
            "source '{}' has no credentials; the dockerhub lister lists the repositories of the \
             user it logs in as, so set 'auth' on the source (or give its credentials in a \
             credential file, see docs/behaviour.md, \"Credentials\")",
            location.registry
        )));
    };
    let api = api_root()?;
    let http = Http::new(location.skip_tls_verify)?;
    let auth = authorization(&http, &api, credentials, tokens).await?;
    let user = credentials.username();
    let mut url = api
        .join(&format!("v2/repositories/{user}/"))
        .map_err(|e| format!("cannot build the repositories address for user '{user}': {e}"))?;
    url.query_pairs_mut()
        .append_pair("page_size", &PAGE_SIZE.to_string());
    let limit = super::fetch_limit(max);
    let mut names = Vec::new();
    let mut next = Some(url);
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(format!(
                "more than {MAX_PAGES} pages of repositories; the API's paging seems to loop"
            )
            .into());
        }
        let reply = http
            .send(|client| {
                client
                    .get(url.clone())
                    .header(ACCEPT, "application/json")
                    .header(AUTHORIZATION, auth.clone())
            })
            .await
            .map_err(|e| {
                e.context(format_args!(
                    "listing the repositories of '{user}' at {url}"
                ))
            })?;
        if !reply.status.is_success() {
            return Err(reply.refusal(
                &format!("listing the repositories of '{user}' at {url}"),
                "",
            ));
        }
        let page: Page = serde_json::from_slice(&reply.body).map_err(|e| {
            format!("listing the repositories of '{user}' at {url}: invalid response ({e})")
        })?;
        names.extend(
            page.results
                .into_iter()
                .filter(|e| e.repository_type.as_deref() == Some("image"))
                .map(|e| format!("{}/{}", e.namespace, e.name)),
        );
        if limit.is_some_and(|l| names.len() >= l) {
            break;
        }
        next = match page.next.filter(|n| !n.is_empty()) {
            Some(n) => Some(same_origin(&api, &url, &n)?),
            None => None,
        };
    }
    Ok(names)
}

/// `next` resolved against the page it came from; it must stay on the API's origin, since
/// our token goes with it.
fn same_origin(api: &Url, page: &Url, next: &str) -> Result<Url, String> {
    let url = page
        .join(next)
        .map_err(|e| format!("the API sent an invalid next page address '{next}': {e}"))?;
    if url.origin() != api.origin() {
        return Err(format!(
            "the API sent a next page on another server ({}), which would receive our login \
             token; refusing",
            url.origin().ascii_serialization()
        ));
    }
    Ok(url)
}

/// The `Authorization` header for the API: a token of the user's still valid, or a new one
/// from a login.
async fn authorization(
    http: &Http,
    api: &Url,
    credentials: &Credentials,
    tokens: &Tokens,
) -> Result<HeaderValue, Failure> {
    let token = match tokens.get(api.as_str(), credentials) {
        Some(token) => token,
        None => {
            let token = login(http, api, credentials).await?;
            tokens.put(api.as_str(), credentials, token.clone());
            token
        }
    };
    let mut auth = HeaderValue::from_str(&format!("JWT {}", token.jwt))
        .map_err(|_| "the Docker Hub login token has characters a header cannot carry")?;
    auth.set_sensitive(true);
    Ok(auth)
}

async fn login(http: &Http, api: &Url, credentials: &Credentials) -> Result<Token, Failure> {
    let user = credentials.username();
    let url = api
        .join("v2/users/login/")
        .map_err(|e| format!("cannot build the login address: {e}"))?;
    let form = form_body(&[
        ("username", credentials.username()),
        ("password", credentials.password()),
    ]);
    let reply = http
        .send(|client| {
            client
                .post(url.clone())
                .header(ACCEPT, "application/json")
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form.clone())
        })
        .await
        .map_err(|e| e.context(format_args!("logging in to {url} as '{user}'")))?;
    if !reply.status.is_success() {
        return Err(reply.refusal(
            &format!("logging in to {url} as '{user}'"),
            "check the source's 'auth' (a personal access token works as the password)",
        ));
    }
    let body: serde_json::Value = serde_json::from_slice(&reply.body)
        .map_err(|e| format!("logging in to {url} as '{user}': invalid response ({e})"))?;
    let Some(jwt) = body.get("token").and_then(|t| t.as_str()) else {
        return Err(
            format!("logging in to {url} as '{user}': received token is not a string").into(),
        );
    };
    Ok(Token {
        jwt: jwt.to_string(),
        expires: jwt_expiry(jwt),
    })
}

/// An `application/x-www-form-urlencoded` body.
fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut url = Url::parse("http://form.invalid/").expect("constant URL parses");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_string()
}

/// The `exp` claim of a JWT, read without verifying it (we only decide whether to reuse it).
fn jwt_expiry(jwt: &str) -> Option<i64> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", enc(r#"{"alg":"none"}"#), enc(claims))
    }

    #[test]
    fn token_expiry() {
        assert_eq!(
            jwt_expiry(&jwt(r#"{"exp":1700000000}"#)),
            Some(1_700_000_000)
        );
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":1.7e9}"#)), Some(1_700_000_000));
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"x"}"#)), None);
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        let far = Token {
            jwt: String::new(),
            expires: Some(i64::MAX / 2),
        };
        assert!(far.fresh());
        let past = Token {
            jwt: String::new(),
            expires: Some(1),
        };
        assert!(!past.fresh());
        assert!(
            !Token {
                jwt: String::new(),
                expires: None
            }
            .fresh()
        );
    }

    #[test]
    fn login_form_is_url_encoded() {
        assert_eq!(
            form_body(&[("username", "a b"), ("password", "p&=%+")]),
            "username=a+b&password=p%26%3D%25%2B"
        );
    }

    #[test]
    fn next_pages_stay_on_the_api_origin() {
        let api = Url::parse("https://hub.docker.com/").unwrap();
        let page = Url::parse("https://hub.docker.com/v2/repositories/u/?page_size=100").unwrap();
        assert_eq!(
            same_origin(&api, &page, "/v2/repositories/u/?page=2")
                .unwrap()
                .as_str(),
            "https://hub.docker.com/v2/repositories/u/?page=2"
        );
        assert!(same_origin(&api, &page, "https://evil.example/x").is_err());
        assert!(same_origin(&api, &page, "http://hub.docker.com/x").is_err());
    }
}
