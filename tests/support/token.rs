//! A Docker-token-spec issuer (what Docker Hub, GHCR, Harbor put in front of a registry), so
//! bearer-auth code paths run against the real registry with tokens it verifies itself.
//!
//! Serves `GET /token?service=…&scope=…&account=…` (Basic credentials or anonymous) and the
//! OAuth2 form `POST /token` (`grant_type=password|refresh_token`). Tokens are ES256 JWTs whose
//! `x5c` header carries the signing certificate, chained to the CA the registry trusts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

use super::certs::Leaf;
use super::http::{Body, Server, parse_query, respond};

/// The `client_id` the harness's own clients send, so their tokens do not count in
/// [`TokenServer::tokens_issued`] (tests count the tokens of the code under test).
pub const HARNESS_CLIENT_ID: &str = "dregsy-test-harness";

/// How the token issuer behaves; `..Default::default()` keeps the rest as in most registries.
#[derive(Clone, Debug)]
pub struct TokenOptions {
    /// Anyone, even without credentials, may pull every repository (Docker Hub's public images).
    pub anonymous_pull: bool,
    /// Lifetime of each token (`expires_in`), in seconds; short values exercise token renewal.
    pub expires_in_secs: u64,
    /// The registry's `service` name, which becomes the token audience.
    pub service: String,
    /// The token issuer name the registry checks (`iss`).
    pub issuer: String,
    /// Which field(s) carry the JWT in responses: real issuers differ.
    pub fields: TokenFields,
    /// Answer `GET` with 404, as issuers that only speak the OAuth2 form `POST` do. The
    /// harness's own clients (`client_id` [`HARNESS_CLIENT_ID`]) are still served.
    pub oauth2_only: bool,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            anonymous_pull: false,
            expires_in_secs: 300,
            service: "test-registry".to_string(),
            issuer: "test-issuer".to_string(),
            fields: TokenFields::Both,
            oauth2_only: false,
        }
    }
}

/// Which JSON fields of a token response carry the JWT: clients must accept either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFields {
    /// `token` and `access_token` (Distribution's reference issuer, Docker Hub).
    Both,
    /// Only `token` (older issuers).
    TokenOnly,
    /// Only `access_token` (OAuth2-style issuers).
    AccessTokenOnly,
}

/// A grant rule for one user: the actions they get on repositories matching `repo`.
#[derive(Clone, Debug)]
pub struct Permission {
    /// The account name the rule applies to.
    pub user: String,
    /// Exact repository name, or a glob where `*` matches any characters (including `/`).
    pub repo: String,
    /// Actions granted (`pull`, `push`, `delete`, or `*` for all).
    pub actions: Vec<String>,
}

/// One request the issuer answered, for tests asserting how the code under test asks for tokens.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The authenticated account, None when anonymous or rejected.
    pub user: Option<String>,
    /// The scopes asked for, as sent.
    pub scopes: Vec<String>,
    /// The OAuth2 grant type (POST only).
    pub grant_type: Option<String>,
    /// The `client_id` parameter, if any.
    pub client_id: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
}

struct State {
    options: TokenOptions,
    users: HashMap<String, String>,
    permissions: Vec<Permission>,
    signer: EcdsaKeyPair,
    x5c: String,
    rng: SystemRandom,
    issued: AtomicUsize,
    refresh_tokens: Mutex<HashMap<String, String>>,
    log: Mutex<Vec<TokenRequest>>,
}

/// The running token issuer; stops when dropped.
pub struct TokenServer {
    server: Server,
    state: Arc<State>,
}

impl TokenServer {
    /// Starts an issuer for `users` (name → password) with `permissions`, signing with `signer`.
    ///
    /// A user without any [`Permission`] gets every action on every repository (like a plain
    /// registry account); once a user has rules, only those apply.
    pub fn start(
        options: TokenOptions,
        users: HashMap<String, String>,
        permissions: Vec<Permission>,
        signer: &Leaf,
    ) -> TokenServer {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &signer.key_der, &rng)
            .expect("load the token signing key into ring");
        let state = Arc::new(State {
            options,
            users,
            permissions,
            signer: key,
            x5c: STANDARD.encode(&signer.cert_der),
            rng,
            issued: AtomicUsize::new(0),
            refresh_tokens: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        let server = Server::start("token-issuer", move |request| {
            let state = shared.clone();
            async move { handle(&state, request).await }
        });
        TokenServer { server, state }
    }

    /// The realm URL the registry's 401 challenges point at: `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url())
    }

    /// Tokens issued so far to clients other than the harness itself.
    pub fn tokens_issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// Every token request answered so far, the harness's own included (see `client_id`).
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.log.lock().expect("token log lock").clone()
    }

    /// A new OAuth2 refresh token for `user`, as the issuer would hand out for an offline
    /// grant: what `docker login` stores as an `identitytoken`.
    pub fn refresh_token_for(&self, user: &str) -> String {
        let refresh = format!("refresh-{:032x}", fastrand::u128(..));
        self.state
            .refresh_tokens
            .lock()
            .expect("refresh token lock")
            .insert(refresh.clone(), user.to_string());
        refresh
    }

    /// Mints a token directly (no HTTP, not counted): for tests that need one to hand.
    pub fn mint(&self, user: Option<&str>, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|scope| scope.to_string()).collect();
        sign_token(&self.state, user, &scopes)
    }
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Body> {
    if request.uri().path() != "/token" {
        return respond(StatusCode::NOT_FOUND, "text/plain", "not found");
    }
    let method = request.method().clone();
    let basic = basic_credentials(&request);
    let mut params = parse_query(request.uri().query().unwrap_or(""));
    if method == Method::POST {
        let body = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return respond(StatusCode::BAD_REQUEST, "text/plain", "unreadable body"),
        };
        params.extend(parse_query(&String::from_utf8_lossy(&body)));
    } else if method != Method::GET {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET or POST");
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let client_id = param("client_id");
    let grant_type = param("grant_type");
    let mut scopes: Vec<String> = Vec::new();
    for (key, value) in &params {
        if key == "scope" {
            scopes.extend(value.split_whitespace().map(str::to_string));
        }
    }
    let mut entry = TokenRequest {
        method: method.to_string(),
        user: None,
        scopes: scopes.clone(),
        grant_type: grant_type.clone(),
        client_id: client_id.clone(),
        status: 200,
    };

    if state.options.oauth2_only
        && method == Method::GET
        && client_id.as_deref() != Some(HARNESS_CLIENT_ID)
    {
        entry.status = 404;
        state.log.lock().expect("token log lock").push(entry);
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "use the OAuth2 POST form",
        );
    }

    // Who is asking: Basic credentials (GET), a password or refresh-token grant (POST), or nobody.
    let who: Result<Option<String>, StatusCode> = if method == Method::POST {
        match grant_type.as_deref() {
            Some("password") => {
                let user = param("username").unwrap_or_default();
                let pass = param("password").unwrap_or_default();
                check_password(state, &user, &pass).map(Some)
            }
            Some("refresh_token") => {
                let token = param("refresh_token").unwrap_or_default();
                let known = state
                    .refresh_tokens
                    .lock()
                    .expect("refresh token lock")
                    .get(&token)
                    .cloned();
                known.map(Some).ok_or(StatusCode::UNAUTHORIZED)
            }
            _ => Err(StatusCode::BAD_REQUEST),
        }
    } else {
        match basic {
            Some((user, pass)) => check_password(state, &user, &pass).map(Some),
            None => Ok(None),
        }
    };
    let user = match who {
        Ok(user) => user,
        Err(status) => {
            entry.status = status.as_u16();
            state.log.lock().expect("token log lock").push(entry);
            let error = if status == StatusCode::BAD_REQUEST {
                json!({"error": "unsupported_grant_type"})
            } else {
                json!({"errors": [{"code": "UNAUTHORIZED", "message": "invalid credentials"}], "error": "invalid_grant"})
            };
            let mut response = respond(status, "application/json", error.to_string());
            if status == StatusCode::UNAUTHORIZED
                && let Ok(value) = "Basic realm=\"test-token-issuer\"".parse()
            {
                response
                    .headers_mut()
                    .insert(hyper::header::WWW_AUTHENTICATE, value);
            }
            return response;
        }
    };
    entry.user = user.clone();

    let token = sign_token(state, user.as_deref(), &scopes);
    let offline = param("offline_token").as_deref() == Some("true")
        || param("access_type").as_deref() == Some("offline");
    let mut body = json!({
        "expires_in": state.options.expires_in_secs,
        "issued_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if state.options.fields != TokenFields::AccessTokenOnly {
        body["token"] = Value::String(token.clone());
    }
    if state.options.fields != TokenFields::TokenOnly {
        body["access_token"] = Value::String(token);
    }
    if method == Method::POST {
        body["scope"] = Value::String(scopes.join(" "));
    }
    if offline && let Some(user) = &user {
        let refresh = format!("refresh-{:032x}", fastrand::u128(..));
        state
            .refresh_tokens
            .lock()
            .expect("refresh token lock")
            .insert(refresh.clone(), user.clone());
        body["refresh_token"] = Value::String(refresh);
    }
    if client_id.as_deref() != Some(HARNESS_CLIENT_ID) {
        state.issued.fetch_add(1, Ordering::SeqCst);
    }
    state.log.lock().expect("token log lock").push(entry);
    respond(StatusCode::OK, "application/json", body.to_string())
}

fn check_password(state: &State, user: &str, pass: &str) -> Result<String, StatusCode> {
    match state.users.get(user) {
        Some(expected) if expected == pass => Ok(user.to_string()),
        _ => Err(StatusCode::UNAUTHORIZED),
    }
}

fn basic_credentials(request: &Request<Incoming>) -> Option<(String, String)> {
    let header = request
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The actions `user` (None: anonymous) may perform on repository `name`.
fn allowed_actions(state: &State, user: Option<&str>, name: &str) -> Vec<String> {
    let mut allowed = Vec::new();
    if state.options.anonymous_pull {
        allowed.push("pull".to_string());
    }
    if let Some(user) = user {
        let rules: Vec<&Permission> = state
            .permissions
            .iter()
            .filter(|rule| rule.user == user)
            .collect();
        if rules.is_empty() {
            allowed.push("*".to_string());
        }
        for rule in rules {
            if glob_matches(&rule.repo, name) {
                allowed.extend(rule.actions.iter().cloned());
            }
        }
    }
    allowed
}

/// Matches `name` against a pattern where `*` matches any run of characters.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let escaped: Vec<String> = pattern.split('*').map(regex::escape).collect();
    regex::Regex::new(&format!("^{}$", escaped.join(".*")))
        .map(|re| re.is_match(name))
        .unwrap_or(false)
}

/// Builds the `access` claim: for each requested scope, the requested actions the user holds.
fn access_claim(state: &State, user: Option<&str>, scopes: &[String]) -> Vec<Value> {
    let mut access = Vec::new();
    for scope in scopes {
        // type:name:actions, where the name may itself contain ':' (e.g. a port).
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let allowed = if kind == "repository" {
            allowed_actions(state, user, name)
        } else if user.is_some()
            && allowed_actions(state, user, name)
                .iter()
                .any(|action| action == "*")
        {
            // registry:catalog:* and similar: only for full-access accounts.
            vec!["*".to_string()]
        } else {
            Vec::new()
        };
        let granted: Vec<String> = actions
            .split(',')
            .filter(|action| !action.is_empty())
            .filter(|action| allowed.iter().any(|have| have == "*" || have == action))
            .map(str::to_string)
            .collect();
        if !granted.is_empty() {
            access.push(json!({"type": kind, "name": name, "actions": granted}));
        }
    }
    access
}

fn sign_token(state: &State, user: Option<&str>, scopes: &[String]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [state.x5c]});
    let claims = json!({
        "iss": state.options.issuer,
        "sub": user.unwrap_or(""),
        "aud": state.options.service,
        "exp": now + state.options.expires_in_secs,
        "nbf": now.saturating_sub(1),
        "iat": now,
        "jti": format!("{:032x}", fastrand::u128(..)),
        "access": access_claim(state, user, scopes),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = state
        .signer
        .sign(&state.rng, signing_input.as_bytes())
        .expect("sign a token with ES256");
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}
