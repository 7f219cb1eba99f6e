//! Authentication: challenges, credentials, bearer tokens and their cache.
//!
//! A registry tells us how to authenticate only when it refuses a request (401 with
//! `WWW-Authenticate`). We remember that challenge per registry and from then on authorise
//! requests up front: Basic with the credentials, or a Bearer token for the request's scopes,
//! fetched from the challenge's realm and cached until it expires.
//!
//! Tokens are fetched with `GET realm?service=…&scope=…` (with Basic credentials, or
//! anonymously), as Docker does. When the token service refuses GET (404/405) and we have
//! credentials, we fall back to the OAuth2 password grant (`POST` form), which some
//! registries offer instead.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::HeaderValue;
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::classify::classify;
use super::credentials::CredentialProvider;
use super::error::{
    Error, ErrorKind, MAX_ERROR_BODY, MAX_EXPLANATION, Result, json_text, registry_error_text,
    truncate,
};
use super::reference::Repository;
use super::transport::{Body, Request, Transport};

/// A user name and password (or access token) for a registry.
///
/// `Debug` never shows the password, so credentials can sit in logged structures.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// Credentials for `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// An identity token (Docker's `identitytoken`, or a credential helper's answer with the
    /// user name `<token>`): an OAuth2 refresh token for the registry's token service, sent
    /// with `grant_type=refresh_token` instead of a password.
    pub fn identity_token(token: impl Into<String>) -> Credentials {
        Credentials::new(IDENTITY_TOKEN_USER, token)
    }

    /// Whether the secret is an identity token rather than a password.
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USER
    }

    /// The user name, which may be shown.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The secret. It exists only to hand the password to a compatibility relay's private
    /// auth file (skopeo) or its `X-Registry-Auth` header (Docker Engine API), which need it
    /// in the clear; never use it for logs, errors, argv or anything else a person may see.
    pub fn password(&self) -> &str {
        &self.password
    }

    fn basic_header(&self) -> Option<HeaderValue> {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password));
        let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The user name Docker and credential helpers give an identity token.
const IDENTITY_TOKEN_USER: &str = "<token>";

/// An access scope, as Docker's token protocol names them: `repository:<name>:<actions>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Scope(String);

impl Scope {
    pub(crate) fn pull(repo: &Repository) -> Scope {
        Scope(format!("repository:{repo}:pull"))
    }

    pub(crate) fn push(repo: &Repository) -> Scope {
        Scope(format!("repository:{repo}:pull,push"))
    }

    pub(crate) fn catalog() -> Scope {
        Scope("registry:catalog:*".to_owned())
    }

    fn as_str(&self) -> &str {
        &self.0
    }
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// The scheme, lowercased: `basic`, `bearer`, …
    pub scheme: String,
    /// Parameters with lowercased names and unquoted values.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` header into its challenges (RFC 7235): quoted values may
/// contain commas, and several challenges may follow each other.
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut challenges: Vec<Challenge> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        let token_end = rest.find([' ', '\t', ',', '=']).unwrap_or(rest.len());
        let token = &rest[..token_end];
        if token.is_empty() {
            break;
        }
        let after = rest[token_end..].trim_start_matches([' ', '\t']);
        if let Some(value_part) = after.strip_prefix('=')
            && !value_part.starts_with('=')
            && let Some(current) = challenges.last_mut()
        {
            // A parameter of the current challenge.
            let value_part = value_part.trim_start_matches([' ', '\t']);
            let (value, remaining) = read_value(value_part);
            current.params.push((token.to_ascii_lowercase(), value));
            rest = remaining;
        } else {
            // A new challenge; a token68 after it (`Basic abc==`) is skipped.
            challenges.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: Vec::new(),
            });
            rest = &rest[token_end..];
        }
    }
    challenges
}

fn read_value(text: &str) -> (String, &str) {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => return (value, &quoted[i + 1..]),
                _ => value.push(c),
            }
        }
        (value, "")
    } else {
        let end = text.find(',').unwrap_or(text.len());
        (text[..end].trim().to_owned(), &text[end..])
    }
}

/// How a registry wants to be authenticated, learned from its challenge.
#[derive(Debug, Clone)]
enum Method {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Clone)]
struct Token {
    header: HeaderValue,
    renew_at: Instant,
}

/// The largest token response we read.
const MAX_TOKEN_RESPONSE: usize = 1024 * 1024;

/// Tokens live at least this long (Docker's rule when `expires_in` is missing or smaller).
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Where the credentials of a registry come from.
#[derive(Debug, Clone)]
pub(crate) enum CredentialSource {
    /// Fixed for the run (the config's `auth`), or anonymous.
    Fixed(Option<Credentials>),
    /// Asked for before use, renewed on refusal (cloud tokens).
    Provider(Arc<dyn CredentialProvider>),
}

/// Authentication state of one registry: the learned challenge and the token cache.
pub(crate) struct Auth {
    registry: String,
    credentials: CredentialSource,
    /// Where the credentials come from, for messages (`the config's auth`, a credential
    /// file); `None`: not said.
    origin: Option<String>,
    method: Mutex<Option<Method>>,
    tokens: Mutex<HashMap<Vec<Scope>, Token>>,
    /// One lock per scope set: concurrent requests for one scope share one token fetch, while
    /// fetches for other scopes (other repositories) go on at the same time.
    fetching: Mutex<HashMap<Vec<Scope>, Arc<tokio::sync::Mutex<()>>>>,
    tokens_fetched: AtomicU64,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl Auth {
    pub(crate) fn new(registry: String, credentials: CredentialSource) -> Auth {
        Auth {
            registry,
            credentials,
            origin: None,
            method: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            tokens_fetched: AtomicU64::new(0),
        }
    }

    /// The same, saying in messages where the credentials come from.
    pub(crate) fn with_origin(mut self, origin: Option<String>) -> Auth {
        self.origin = origin;
        self
    }

    /// The credentials as messages name them: `user '<name>'`, and where they come from when
    /// known (`user 'mirror' (from credential file /root/.docker/config.json)`); `None` when
    /// there are none.
    pub(crate) fn user_text(&self) -> Option<String> {
        let user = self.username()?;
        Some(match &self.origin {
            Some(origin) => format!("user '{user}' (from {origin})"),
            None => format!("user '{user}'"),
        })
    }

    /// The configured user name, for messages.
    pub(crate) fn username(&self) -> Option<&str> {
        match &self.credentials {
            CredentialSource::Fixed(c) => c.as_ref().map(Credentials::username),
            CredentialSource::Provider(p) => Some(p.username()),
        }
    }

    /// The credentials to use now. A provider's failure (no cloud credentials, say) names what
    /// was tried, with the kind the provider gave it.
    async fn current(&self) -> Result<Option<Credentials>> {
        match &self.credentials {
            CredentialSource::Fixed(c) => Ok(c.clone()),
            CredentialSource::Provider(p) => p.credentials().await.map(Some).map_err(|e| {
                e.within(format_args!(
                    "getting credentials for registry {}",
                    self.registry
                ))
            }),
        }
    }

    /// The registry refused credentials we sent: a provider must renew them. Returns whether
    /// there was a provider to ask, i.e. whether a retry can succeed where this try failed.
    pub(crate) fn rejected(&self) -> bool {
        match &self.credentials {
            CredentialSource::Fixed(_) => false,
            CredentialSource::Provider(p) => {
                tracing::debug!(registry = %self.registry, "credentials refused, renewing them");
                p.invalidate();
                true
            }
        }
    }

    /// How many tokens were fetched so far; lets tests and metrics see the cache at work.
    pub(crate) fn tokens_fetched(&self) -> u64 {
        self.tokens_fetched.load(Ordering::Relaxed)
    }

    /// Learns how to authenticate from a 401's `WWW-Authenticate` header. When the refused
    /// request carried the token cached for `scopes` (`sent`), that token no longer works and
    /// is forgotten; a request sent without it (before the challenge was known, or with an
    /// older token) leaves alone a token that a concurrent request has fetched meanwhile.
    /// Returns whether a retry with authentication makes sense.
    pub(crate) fn learn(
        &self,
        header: Option<&str>,
        scopes: &[Scope],
        sent: Option<&HeaderValue>,
    ) -> bool {
        let challenges = header.map(parse_challenges).unwrap_or_default();
        let method = challenges.iter().find_map(|c| match c.scheme.as_str() {
            "bearer" => c.param("realm").map(|realm| Method::Bearer {
                realm: realm.to_owned(),
                service: c.param("service").map(str::to_owned),
            }),
            _ => None,
        });
        let method = method.or_else(|| {
            challenges
                .iter()
                .any(|c| c.scheme == "basic")
                .then_some(Method::Basic)
        });
        let key = scope_key(scopes);
        if let (Some(sent), Ok(mut tokens)) = (sent, self.tokens.lock())
            && tokens.get(&key).is_some_and(|token| token.header == *sent)
        {
            tokens.remove(&key);
        }
        match method {
            Some(m) => {
                if let Ok(mut current) = self.method.lock() {
                    *current = Some(m);
                }
                true
            }
            None => false,
        }
    }

    /// The `Authorization` header for a request needing `scopes`, if the registry asked for
    /// authentication before.
    pub(crate) async fn authorization(
        &self,
        transport: &Transport,
        scopes: &[Scope],
    ) -> Result<Option<HeaderValue>> {
        let method = self.method.lock().ok().and_then(|m| m.clone());
        match method {
            None => Ok(None),
            Some(Method::Basic) => match self.current().await? {
                Some(c) if c.is_identity_token() => Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "registry {} asks for a user name and password, but its credentials are \
                         an identity token, which only a token service accepts",
                        self.registry
                    ),
                )),
                Some(c) => Ok(c.basic_header()),
                None => Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "registry {} requires credentials, and none are configured",
                        self.registry
                    ),
                )),
            },
            Some(Method::Bearer { realm, service }) => {
                let key = scope_key(scopes);
                if let Some(token) = self.cached(&key) {
                    return Ok(Some(token));
                }
                let lock = self
                    .fetching
                    .lock()
                    .map(|mut locks| locks.entry(key.clone()).or_default().clone())
                    .unwrap_or_default();
                let _guard = lock.lock().await;
                if let Some(token) = self.cached(&key) {
                    return Ok(Some(token));
                }
                let service = service.as_deref();
                let token = match self.fetch_token(transport, &realm, service, &key).await {
                    // Expired cloud credentials: renew them and ask the token service once more.
                    Err(e) if e.kind() == ErrorKind::Unauthorized && self.rejected() => {
                        self.fetch_token(transport, &realm, service, &key).await?
                    }
                    result => result?,
                };
                let header = token.header.clone();
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.insert(key, token);
                }
                Ok(Some(header))
            }
        }
    }

    fn cached(&self, key: &[Scope]) -> Option<HeaderValue> {
        let tokens = self.tokens.lock().ok()?;
        let token = tokens.get(key)?;
        (Instant::now() < token.renew_at).then(|| token.header.clone())
    }

    async fn fetch_token(
        &self,
        transport: &Transport,
        realm: &str,
        service: Option<&str>,
        scopes: &[Scope],
    ) -> Result<Token> {
        let realm_url = Url::parse(realm).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!(
                    "registry {} named an invalid token service '{}': {e}",
                    self.registry,
                    truncate(realm, 100)
                ),
            )
        })?;
        let where_ = format!(
            "token service {}",
            realm_url.host_str().unwrap_or("(no host)")
        );
        let credentials = self.current().await?;
        let started = Instant::now();
        let mut response = self
            .request_token(transport, &realm_url, service, scopes, credentials.as_ref())
            .await
            .map_err(|e| e.context(where_.clone()))?;
        let status = response.status();
        let (bytes, cut) = read_token_body(&mut response, status)
            .await
            .map_err(|e| e.context(where_.clone()))?;
        if !status.is_success() {
            let user = credentials.as_ref().and(self.user_text());
            return Err(refusal(status, user.as_deref(), &bytes).context(where_));
        }
        if cut {
            return Err(
                Error::new(ErrorKind::TooLarge, "the token response is too large").context(where_),
            );
        }
        let (token, expires_in) =
            parse_token_response(&bytes).map_err(|e| e.context(where_.clone()))?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            Error::new(ErrorKind::Protocol, "the token holds invalid characters")
                .context(where_.clone())
        })?;
        header.set_sensitive(true);
        let lifetime = expires_in
            .map(Duration::from_secs)
            .unwrap_or(MIN_TOKEN_LIFETIME)
            .max(MIN_TOKEN_LIFETIME);
        // Renew a little early so a token does not expire in the middle of a request.
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        self.tokens_fetched.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(registry = %self.registry, scopes = ?scopes, ?lifetime, "token issued");
        Ok(Token {
            header,
            renew_at: started + lifetime - margin,
        })
    }

    /// Sends the token request: a `GET` with basic credentials (the Docker token protocol), or
    /// the OAuth2 `POST` for an identity token, and the `POST` again when a service answers the
    /// `GET` with 404 or 405, as services that know only the OAuth2 form do.
    async fn request_token(
        &self,
        transport: &Transport,
        realm_url: &Url,
        service: Option<&str>,
        scopes: &[Scope],
        credentials: Option<&Credentials>,
    ) -> Result<reqwest::Response> {
        let mut url = realm_url.clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope.as_str());
            }
        }
        let scope_text = scopes
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let mut response = match credentials.filter(|c| c.is_identity_token()) {
            // An identity token is an OAuth2 refresh token: it only works with the POST form.
            Some(c) => {
                let grant = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", c.password.as_str()),
                ];
                let request = oauth2_request(realm_url.clone(), &grant, &scope_text, service);
                transport.send(request).await?
            }
            None => {
                // Token requests go through the transport too, so a flaky token service is retried.
                let mut request = Request::new(reqwest::Method::GET, url);
                if let Some(header) = credentials.and_then(Credentials::basic_header) {
                    request
                        .headers
                        .insert(reqwest::header::AUTHORIZATION, header);
                }
                transport.send(request).await?
            }
        };

        if matches!(
            response.status(),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ) && let Some(credentials) = credentials.filter(|c| !c.is_identity_token())
        {
            let grant = [
                ("grant_type", "password"),
                ("username", credentials.username.as_str()),
                ("password", credentials.password.as_str()),
            ];
            let request = oauth2_request(realm_url.clone(), &grant, &scope_text, service);
            response = transport.send(request).await?;
        }
        Ok(response)
    }
}

/// Reads a token service's answer: at most `MAX_TOKEN_RESPONSE` bytes of a token, or
/// `MAX_ERROR_BODY` of a refusal (whose body may also break off). Returns the bytes and whether
/// the body was cut at the limit.
async fn read_token_body(
    response: &mut reqwest::Response,
    status: StatusCode,
) -> Result<(Vec<u8>, bool)> {
    // Token and error bodies are small; refuse to buffer a broken service's endless body.
    let limit = if status.is_success() {
        MAX_TOKEN_RESPONSE
    } else {
        MAX_ERROR_BODY
    };
    let mut bytes = Vec::new();
    let mut cut = false;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            // A refusal whose body breaks off is still a refusal: report the status.
            Err(_) if !status.is_success() => break,
            Err(e) => return Err(classify(&e)),
        };
        if bytes.len() + chunk.len() > limit {
            cut = true;
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, cut))
}

/// The error of a token service that issued no token: the credentials rejected, anonymous
/// access refused, or another status; with what the service said, when it said something.
/// `user` names the credentials sent (`user 'x' (from …)`), `None` when none were.
fn refusal(status: StatusCode, user: Option<&str>, bytes: &[u8]) -> Error {
    let kind = match status {
        StatusCode::UNAUTHORIZED => ErrorKind::Unauthorized,
        StatusCode::FORBIDDEN => ErrorKind::Forbidden,
        _ => ErrorKind::Registry,
    };
    let says = token_error_text(bytes)
        .map(|t| format!("; it said: {t}"))
        .unwrap_or_default();
    let reason = match (user, kind) {
        (Some(user), ErrorKind::Unauthorized) => {
            format!("the credentials of {user} were rejected (HTTP {status}){says}")
        }
        (None, ErrorKind::Unauthorized) => {
            format!("anonymous access was refused (HTTP {status}){says}; configure credentials")
        }
        _ => format!("no token issued (HTTP {status}){says}"),
    };
    Error::new(kind, reason).with_status(status.as_u16())
}

/// Reads a token service's answer (Docker's token protocol: `token`, or OAuth2's
/// `access_token`, with an optional `expires_in` in seconds). Returns the token and its
/// lifetime.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the body is not such JSON or holds no token.
pub(crate) fn parse_token_response(body: &[u8]) -> Result<(String, Option<u64>)> {
    let parsed: TokenResponse = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("invalid token response ({})", truncate(&e.to_string(), 100)),
        )
    })?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| Error::new(ErrorKind::Protocol, "the token response holds no token"))?;
    Ok((token, parsed.expires_in))
}

/// What a token service's refusal body says, bounded to a short line: the distribution
/// API's `errors` list, Docker Hub's `details`, OAuth2's `error` and `error_description`
/// (RFC 6749 §5.2), a `message`, or a short plain-text body. `None` for an empty body or an
/// HTML page (a proxy's error page says nothing about the token).
pub(crate) fn token_error_text(body: &[u8]) -> Option<String> {
    if let Some(text) = registry_error_text(body) {
        return Some(text);
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        let field = |name: &str| json_text(map.get(name));
        let description = field("error_description");
        let error = field("error");
        let text = match (error.is_empty(), description.is_empty()) {
            (false, false) => format!("{error}: {description}"),
            (true, false) => description,
            (false, true) => error,
            (true, true) => {
                let details = field("details");
                if details.is_empty() {
                    field("message")
                } else {
                    details
                }
            }
        };
        return (!text.is_empty()).then(|| truncate(&text, MAX_EXPLANATION));
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    if text.is_empty() || text.starts_with('<') {
        return None;
    }
    Some(truncate(text, MAX_EXPLANATION))
}

/// The OAuth2 form `POST` to a token service: `grant` (password or refresh token) with the
/// scopes, the service and our `client_id`.
fn oauth2_request(
    realm: Url,
    grant: &[(&str, &str)],
    scope_text: &str,
    service: Option<&str>,
) -> Request {
    let mut form = grant.to_vec();
    form.push(("client_id", "dregsy"));
    form.push(("scope", scope_text));
    if let Some(service) = service {
        form.push(("service", service));
    }
    let mut request = Request::new(reqwest::Method::POST, realm);
    request.headers.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    request.body = Body::Bytes(Bytes::from(form_encode(&form)));
    request
}

fn scope_key(scopes: &[Scope]) -> Vec<Scope> {
    let mut key = scopes.to_vec();
    key.sort();
    key.dedup();
    key
}

/// `application/x-www-form-urlencoded` encoding.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut url = match Url::parse("http://form.invalid/") {
        Ok(url) => url,
        Err(_) => return String::new(),
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    url.query().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_commas_in_quotes() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:samalba/my-app:pull,push")
        );
    }

    #[test]
    fn several_challenges_and_odd_spacing() {
        let c = parse_challenges(
            r#"Basic realm="basic-realm", Bearer  realm = "http://x/t" , error="insufficient_scope",Newauth"#,
        );
        let schemes: Vec<_> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["basic", "bearer", "newauth"]);
        assert_eq!(c[0].param("realm"), Some("basic-realm"));
        assert_eq!(c[1].param("realm"), Some("http://x/t"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn unquoted_and_escaped_values() {
        let c = parse_challenges(r#"Bearer realm=http://a/b,service="a \"q\"""#);
        assert_eq!(c[0].param("realm"), Some("http://a/b"));
        assert_eq!(c[0].param("service"), Some(r#"a "q""#));
        assert!(parse_challenges("").is_empty());
        let c = parse_challenges("Basic abc==");
        assert_eq!(c[0].scheme, "basic");
    }

    #[test]
    fn learning_picks_bearer_over_basic() {
        let auth = Auth::new("r".into(), CredentialSource::Fixed(None));
        assert!(auth.learn(
            Some(r#"Basic realm="x", Bearer realm="http://t/""#),
            &[],
            None
        ));
        assert!(matches!(
            auth.method.lock().unwrap().clone(),
            Some(Method::Bearer { .. })
        ));
        assert!(!Auth::new("r".into(), CredentialSource::Fixed(None)).learn(
            Some("Negotiate"),
            &[],
            None
        ));
        assert!(!Auth::new("r".into(), CredentialSource::Fixed(None)).learn(None, &[], None));
    }

    #[test]
    fn a_401_forgets_the_token_of_its_scopes() {
        let auth = Auth::new("r".into(), CredentialSource::Fixed(None));
        let repo = Repository::parse("a").unwrap();
        let scopes = [Scope::pull(&repo)];
        let token = Token {
            header: HeaderValue::from_static("Bearer t"),
            renew_at: Instant::now() + Duration::from_secs(60),
        };
        auth.tokens
            .lock()
            .unwrap()
            .insert(scope_key(&scopes), token);
        assert!(auth.cached(&scope_key(&scopes)).is_some());
        let challenge = Some(r#"Bearer realm="http://t/""#);
        // Refused without a token (sent before the challenge was known): the token stays.
        assert!(auth.learn(challenge, &scopes, None));
        assert!(auth.cached(&scope_key(&scopes)).is_some());
        // Refused with an older token: the cached one stays.
        let older = HeaderValue::from_static("Bearer older");
        assert!(auth.learn(challenge, &scopes, Some(&older)));
        assert!(auth.cached(&scope_key(&scopes)).is_some());
        // Refused with the cached token: forgotten.
        let sent = HeaderValue::from_static("Bearer t");
        assert!(auth.learn(challenge, &scopes, Some(&sent)));
        assert!(auth.cached(&scope_key(&scopes)).is_none());
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = Credentials::new("alice", "s3cret-pa55");
        let shown = format!("{c:?} {:#?}", Some(c.clone()));
        assert!(!shown.contains("s3cret-pa55"), "{shown}");
        assert!(shown.contains("alice"));
        let header = c.basic_header().unwrap();
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("YWxpY2U"));
    }

    #[test]
    fn token_refusals_explain_themselves() {
        assert_eq!(
            token_error_text(br#"{"details":"incorrect username or password"}"#).as_deref(),
            Some("incorrect username or password")
        );
        assert_eq!(
            token_error_text(br#"{"error":"invalid_grant","error_description":"bad password"}"#)
                .as_deref(),
            Some("invalid_grant: bad password")
        );
        assert_eq!(
            token_error_text(br#"{"errors":[{"code":"DENIED","message":"nope"}]}"#).as_deref(),
            Some("DENIED: nope")
        );
        assert_eq!(
            token_error_text(b"  plain words  ").as_deref(),
            Some("plain words")
        );
        assert_eq!(token_error_text(b"<html><body>502</body></html>"), None);
        assert_eq!(token_error_text(b""), None);
        assert_eq!(token_error_text(b"{}"), None);
        let long = format!(r#"{{"details":"{}"}}"#, "y".repeat(10_000));
        let text = token_error_text(long.as_bytes()).unwrap();
        assert!(
            text.chars().count() <= MAX_EXPLANATION + 1,
            "{}",
            text.len()
        );
    }

    #[test]
    fn token_responses() {
        assert_eq!(
            parse_token_response(br#"{"token":"a","expires_in":300}"#).unwrap(),
            ("a".to_owned(), Some(300))
        );
        assert_eq!(
            parse_token_response(br#"{"token":"","access_token":"b"}"#).unwrap(),
            ("b".to_owned(), None)
        );
        for bad in [
            &b"{}"[..],
            b"[]",
            b"<html>",
            br#"{"token":5}"#,
            br#"{"expires_in":-1,"token":"a"}"#,
        ] {
            assert_eq!(
                parse_token_response(bad).unwrap_err().kind(),
                ErrorKind::Protocol
            );
        }
    }

    #[test]
    fn scopes_and_form() {
        let repo = Repository::parse("a/b").unwrap();
        assert_eq!(Scope::pull(&repo).as_str(), "repository:a/b:pull");
        assert_eq!(Scope::push(&repo).as_str(), "repository:a/b:pull,push");
        assert_eq!(
            scope_key(&[Scope::push(&repo), Scope::pull(&repo), Scope::push(&repo)]).len(),
            2
        );
        assert_eq!(
            form_encode(&[("a", "x y"), ("b", "p&q=")]),
            "a=x+y&b=p%26q%3D"
        );
    }
}
