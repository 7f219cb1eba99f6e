//! Proves the test harness against the real registry with raw HTTP, so other tests can trust it.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{AUTHORIZATION, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use serde_json::Value;
use support::http::{self, ClientTls, block_on, sha256_digest};
use support::images::{MANIFEST_ACCEPT, challenge_params};
use support::*;

/// What a raw request got back.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("response body is JSON")
    }
}

/// Sends one request; `authorization` is a full header value (`Basic …` / `Bearer …`).
fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    authorization: Option<&str>,
) -> reqwest::Result<Answer> {
    block_on(async {
        let mut request = client
            .request(method, url)
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    })
}

fn get(client: &reqwest::Client, url: &str, authorization: Option<&str>) -> Answer {
    call(client, reqwest::Method::GET, url, authorization)
        .unwrap_or_else(|error| panic!("GET {url}: {error}"))
}

fn basic(user: &str, pass: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
}

/// Fetches a token by GET from the registry's realm for `scope`, optionally with credentials.
fn token_by_get(registry: &Registry, scope: &str, credentials: Option<(&str, &str)>) -> Answer {
    let realm = registry.token_realm().expect("token mode");
    let service = registry.token_service().expect("token mode");
    let mut url = reqwest::Url::parse(&realm).expect("realm URL");
    url.query_pairs_mut()
        .append_pair("service", service)
        .append_pair("scope", scope);
    let authorization = credentials.map(|(user, pass)| basic(user, pass));
    get(
        &http::client(&ClientTls::default()),
        url.as_str(),
        authorization.as_deref(),
    )
}

fn bearer(answer: &Answer) -> String {
    assert_eq!(
        answer.status,
        200,
        "token request failed: {}",
        String::from_utf8_lossy(&answer.body)
    );
    format!(
        "Bearer {}",
        answer.json()["token"].as_str().expect("token field")
    )
}

fn skopeo(args: &[&str]) -> Value {
    let output = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo (apt-get install -y skopeo)");
    assert!(
        output.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("skopeo prints JSON")
}

#[test]
fn open_registry_push_and_read_back() {
    let registry = Registry::start();
    let pushed = push_image(
        &registry,
        "smoke/one",
        "v1",
        ImageOptions {
            layers: 2,
            layer_size: 100_000,
            ..ImageOptions::default()
        },
    );
    assert_eq!(
        manifest_digest(&registry, "smoke/one", "v1").as_deref(),
        Some(pushed.digest.as_str())
    );
    assert_eq!(manifest_digest(&registry, "smoke/one", "nope"), None);
    let manifest = get_manifest(&registry, "smoke/one", "v1").expect("manifest exists");
    assert_eq!(manifest.media_type, support::images::OCI_MANIFEST);
    assert_eq!(manifest.bytes, pushed.manifest);
    assert_eq!(sha256_digest(&manifest.bytes), pushed.digest);
    assert_eq!(pushed.blobs.len(), 3);
    for (digest, size) in &pushed.blobs {
        assert!(
            blob_exists(&registry, "smoke/one", digest),
            "blob {digest} missing"
        );
        assert!(*size > 0);
    }
    let config: Value = serde_json::from_slice(
        &get_blob(&registry, "smoke/one", &pushed.config_digest).expect("config blob"),
    )
    .expect("config is JSON");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(list_tags(&registry, "smoke/one"), vec!["v1"]);
    assert_eq!(list_tags(&registry, "smoke/unknown"), Vec::<String>::new());
    assert_eq!(catalog(&registry), vec!["smoke/one"]);

    tag(&registry, "smoke/one", "v1", &["v2", "latest"]);
    assert_eq!(
        list_tags(&registry, "smoke/one"),
        vec!["latest", "v1", "v2"]
    );
    assert_eq!(
        manifest_digest(&registry, "smoke/one", "latest"),
        Some(pushed.digest.clone())
    );

    // The same seed gives the same image, so two registries can be seeded identically.
    let seeded = ImageOptions {
        seed: Some(42),
        ..ImageOptions::default()
    };
    let first = push_image(&registry, "smoke/seeded", "a", seeded.clone());
    let second = push_image(&registry, "smoke/seeded", "b", seeded);
    assert_eq!(first.digest, second.digest);
    assert!(delete_manifest(&registry, "smoke/seeded", &first.digest));
    assert_eq!(manifest_digest(&registry, "smoke/seeded", "a"), None);
}

#[test]
fn layers_are_valid_tar_gzip() {
    let registry = Registry::start();
    let pushed = push_image(
        &registry,
        "smoke/layer",
        "v1",
        ImageOptions {
            layer_size: 70_001,
            format: Format::Docker,
            ..ImageOptions::default()
        },
    );
    let (layer, size) = &pushed.blobs[1];
    let bytes = get_blob(&registry, "smoke/layer", layer).expect("layer blob");
    assert_eq!(bytes.len() as u64, *size);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("layer.tar.gz");
    std::fs::write(&path, &bytes).expect("write layer");
    let listing = Command::new("tar")
        .arg("-tvzf")
        .arg(&path)
        .output()
        .expect("run tar");
    assert!(
        listing.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("70001") && listing.contains("layer-0.bin"),
        "{listing}"
    );
    // The config's diff_id is the digest of the uncompressed tar.
    let gunzip = Command::new("gzip")
        .arg("-dc")
        .arg(&path)
        .output()
        .expect("run gzip");
    assert!(gunzip.status.success());
    let config: Value = serde_json::from_slice(
        &get_blob(&registry, "smoke/layer", &pushed.config_digest).expect("config"),
    )
    .expect("config JSON");
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        sha256_digest(&gunzip.stdout)
    );
}

#[test]
fn basic_auth_requires_credentials() {
    let registry = Registry::builder()
        .basic_auth()
        .user("alice", "wonderland")
        .start();
    let client = registry.client();
    let url = format!("{}/v2/", registry.url());
    let anonymous = get(&client, &url, None);
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.header("www-authenticate").starts_with("Basic"));
    let (user, pass) = registry.admin();
    assert_eq!(get(&client, &url, Some(&basic(&user, &pass))).status, 200);
    assert_eq!(
        get(&client, &url, Some(&basic("alice", "wonderland"))).status,
        200
    );
    assert_eq!(
        get(&client, &url, Some(&basic("alice", "wrong"))).status,
        401
    );

    let pushed = push_image(&registry, "private/app", "1", ImageOptions::default());
    assert_eq!(
        manifest_digest(&registry, "private/app", "1"),
        Some(pushed.digest)
    );
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(registry.auth_b64("alice", "wonderland"))
        .expect("auth_b64 is base64");
    let decoded: Value = serde_json::from_slice(&decoded).expect("auth_b64 is JSON");
    assert_eq!(
        decoded,
        serde_json::json!({"username": "alice", "password": "wonderland"})
    );
}

#[test]
fn token_auth_challenge_get_and_push() {
    let registry = Registry::builder()
        .token_auth(TokenOptions::default())
        .start();
    let pushed = push_image(&registry, "team/app", "v1", ImageOptions::default());
    assert_eq!(
        registry.tokens_issued(),
        0,
        "the harness's own tokens are not counted"
    );

    let client = registry.client();
    let url = format!("{}/v2/team/app/manifests/v1", registry.url());
    let challenge = get(&client, &url, None);
    assert_eq!(challenge.status, 401);
    let header = challenge.header(WWW_AUTHENTICATE.as_str());
    assert!(header.starts_with("Bearer "), "{header}");
    let params = challenge_params(&header);
    assert_eq!(params.get("realm"), registry.token_realm().as_ref());
    assert_eq!(
        params.get("service").map(String::as_str),
        Some("test-registry")
    );
    assert_eq!(
        params.get("scope").map(String::as_str),
        Some("repository:team/app:pull")
    );

    let (user, pass) = registry.admin();
    let token = token_by_get(
        &registry,
        "repository:team/app:pull,push",
        Some((&user, &pass)),
    );
    let claims: Value = {
        let jwt = token.json()["token"].as_str().expect("token").to_string();
        let payload = jwt.split('.').nth(1).expect("JWT payload").to_string();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url payload"))
            .expect("claims JSON")
    };
    assert_eq!(claims["aud"], "test-registry");
    assert_eq!(
        claims["access"][0]["actions"],
        serde_json::json!(["pull", "push"])
    );
    let authorization = bearer(&token);
    let answer = get(&client, &url, Some(&authorization));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("docker-content-digest"), pushed.digest);
    // Push with the token: an upload session opens.
    let upload = call(
        &client,
        reqwest::Method::POST,
        &format!("{}/v2/team/app/blobs/uploads/", registry.url()),
        Some(&authorization),
    )
    .expect("POST upload");
    assert_eq!(upload.status, 202);
    assert_eq!(registry.tokens_issued(), 1);

    let wrong = token_by_get(
        &registry,
        "repository:team/app:pull",
        Some((&user, "wrong")),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(registry.tokens_issued(), 1);
}

#[test]
fn token_auth_oauth2_post_and_refresh() {
    let registry = Registry::builder()
        .token_auth(TokenOptions {
            fields: TokenFields::AccessTokenOnly,
            ..TokenOptions::default()
        })
        .start();
    push_image(&registry, "team/app", "v1", ImageOptions::default());
    let (user, pass) = registry.admin();
    let realm = registry.token_realm().expect("token mode");
    let client = http::client(&ClientTls::default());
    let post = |form: Vec<(&str, &str)>| -> (u16, Value) {
        block_on(async {
            let body = reqwest::Url::parse_with_params("http://form.invalid/", &form)
                .expect("form")
                .query()
                .unwrap_or_default()
                .to_string();
            let response = client
                .post(&realm)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body)
                .send()
                .await
                .expect("POST token");
            let status = response.status().as_u16();
            let body = response.bytes().await.expect("token body");
            (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
        })
    };
    let (status, body) = post(vec![
        ("grant_type", "password"),
        ("service", "test-registry"),
        ("client_id", "dregsy"),
        ("access_type", "offline"),
        ("scope", "repository:team/app:pull"),
        ("username", &user),
        ("password", &pass),
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(body.get("token").is_none(), "AccessTokenOnly omits `token`");
    let refresh = body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string();
    let url = format!("{}/v2/team/app/manifests/v1", registry.url());
    let access = format!(
        "Bearer {}",
        body["access_token"].as_str().expect("access_token")
    );
    assert_eq!(get(&registry.client(), &url, Some(&access)).status, 200);

    let (status, body) = post(vec![
        ("grant_type", "refresh_token"),
        ("service", "test-registry"),
        ("client_id", "dregsy"),
        ("scope", "repository:team/app:pull"),
        ("refresh_token", &refresh),
    ]);
    assert_eq!(status, 200, "{body}");
    let access = format!(
        "Bearer {}",
        body["access_token"].as_str().expect("access_token")
    );
    assert_eq!(get(&registry.client(), &url, Some(&access)).status, 200);

    let (status, _) = post(vec![
        ("grant_type", "password"),
        ("service", "test-registry"),
        ("username", &user),
        ("password", "wrong"),
    ]);
    assert_eq!(status, 401);
    assert_eq!(registry.tokens_issued(), 2);
}

#[test]
fn token_auth_anonymous_pull_on_and_off() {
    for anonymous_pull in [true, false] {
        let registry = Registry::builder()
            .token_auth(TokenOptions {
                anonymous_pull,
                ..TokenOptions::default()
            })
            .start();
        push_image(&registry, "public/app", "v1", ImageOptions::default());
        let url = format!("{}/v2/public/app/manifests/v1", registry.url());
        let token = bearer(&token_by_get(
            &registry,
            "repository:public/app:pull,push",
            None,
        ));
        let expected = if anonymous_pull { 200 } else { 401 };
        assert_eq!(
            get(&registry.client(), &url, Some(&token)).status,
            expected,
            "anonymous_pull={anonymous_pull}"
        );
        // Anonymous never gets push.
        let upload = call(
            &registry.client(),
            reqwest::Method::POST,
            &format!("{}/v2/public/app/blobs/uploads/", registry.url()),
            Some(&token),
        )
        .expect("POST upload");
        assert_eq!(upload.status, 401);
    }
}

#[test]
fn token_auth_permissions_are_enforced() {
    let registry = Registry::builder()
        .token_auth(TokenOptions::default())
        .user("bob", "builder")
        .permission("bob", "allowed/*", &["pull"])
        .start();
    push_image(&registry, "allowed/app", "v1", ImageOptions::default());
    push_image(&registry, "secret/app", "v1", ImageOptions::default());
    let client = registry.client();
    let token = bearer(&token_by_get(
        &registry,
        "repository:allowed/app:pull,push",
        Some(("bob", "builder")),
    ));
    assert_eq!(
        get(
            &client,
            &format!("{}/v2/allowed/app/manifests/v1", registry.url()),
            Some(&token)
        )
        .status,
        200
    );
    let upload = call(
        &client,
        reqwest::Method::POST,
        &format!("{}/v2/allowed/app/blobs/uploads/", registry.url()),
        Some(&token),
    )
    .expect("POST upload");
    assert_eq!(upload.status, 401, "bob may not push");
    let token = bearer(&token_by_get(
        &registry,
        "repository:secret/app:pull",
        Some(("bob", "builder")),
    ));
    assert_eq!(
        get(
            &client,
            &format!("{}/v2/secret/app/manifests/v1", registry.url()),
            Some(&token)
        )
        .status,
        401
    );
}

#[test]
fn tls_trusts_only_the_test_ca() {
    let registry = Registry::builder().tls().start();
    assert!(registry.url().starts_with("https://127.0.0.1:"));
    let url = format!("{}/v2/", registry.url());
    assert_eq!(get(&registry.client(), &url, None).status, 200);
    let system_roots = http::client(&ClientTls::default());
    assert!(
        call(&system_roots, reqwest::Method::GET, &url, None).is_err(),
        "a client with system roots only must reject the test CA"
    );
    let ca = std::fs::read_to_string(registry.certs_dir().join("127.0.0.1/ca.crt"))
        .expect("certs.d ca.crt");
    assert_eq!(ca, registry.ca_pem());
    let pushed = push_image(&registry, "secure/app", "v1", ImageOptions::default());
    assert_eq!(
        manifest_digest(&registry, "secure/app", "v1"),
        Some(pushed.digest)
    );
}

#[test]
fn mtls_requires_a_client_certificate() {
    let registry = Registry::builder().mtls().basic_auth().start();
    let url = format!("{}/v2/", registry.url());
    let without_cert = http::client(&ClientTls {
        ca_pem: Some(registry.ca_pem().to_string()),
        identity_pem: None,
    });
    assert!(
        call(&without_cert, reqwest::Method::GET, &url, None).is_err(),
        "no client certificate must fail"
    );
    let (user, pass) = registry.admin();
    assert_eq!(
        get(&registry.client(), &url, Some(&basic(&user, &pass))).status,
        200
    );
    let host_dir = registry.host_certs_dir();
    for file in ["ca.crt", "client.cert", "client.key"] {
        assert!(
            host_dir.join(file).is_file(),
            "{file} missing in {}",
            host_dir.display()
        );
    }
    let pushed = push_image(&registry, "mutual/app", "v1", ImageOptions::default());
    assert_eq!(
        manifest_digest(&registry, "mutual/app", "v1"),
        Some(pushed.digest)
    );
}

#[test]
fn token_auth_over_tls() {
    let registry = Registry::builder()
        .tls()
        .token_auth(TokenOptions::default())
        .start();
    let pushed = push_index(
        &registry,
        "multi/app",
        "v1",
        &["linux/amd64", "linux/arm64/v8"],
        Format::Oci,
    );
    assert_eq!(
        manifest_digest(&registry, "multi/app", "v1"),
        Some(pushed.digest)
    );
}

#[test]
fn single_image_reads_back_with_skopeo() {
    let registry = Registry::start();
    let pushed = push_image(
        &registry,
        "skopeo/single",
        "v1",
        ImageOptions {
            layers: 2,
            format: Format::Docker,
            ..ImageOptions::default()
        },
    );
    let reference = format!("docker://{}/skopeo/single:v1", registry.host());
    let inspect = skopeo(&["inspect", "--tls-verify=false", &reference]);
    assert_eq!(inspect["Digest"], pushed.digest);
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Os"], "linux");
    let layers: Vec<&str> = pushed.blobs[1..]
        .iter()
        .map(|(digest, _)| digest.as_str())
        .collect();
    assert_eq!(inspect["Layers"], serde_json::json!(layers));
}

#[test]
fn indexes_read_back_with_skopeo() {
    let registry = Registry::start();
    let platforms = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"];
    for (repo, format, media_type) in [
        ("multi/oci", Format::Oci, support::images::OCI_INDEX),
        ("multi/docker", Format::Docker, support::images::DOCKER_LIST),
    ] {
        let index = push_index(&registry, repo, "v1", &platforms, format);
        assert_eq!(
            manifest_digest(&registry, repo, "v1"),
            Some(index.digest.clone())
        );
        let manifest = get_manifest(&registry, repo, "v1").expect("index exists");
        assert_eq!(manifest.media_type, media_type);
        let json = manifest.json();
        assert_eq!(json["manifests"][1]["platform"]["variant"], "v8");
        for (position, (platform, digest)) in index.children.iter().enumerate() {
            assert_eq!(platform, platforms[position]);
            assert_eq!(json["manifests"][position]["digest"], digest.as_str());
            assert_eq!(
                manifest_digest(&registry, repo, digest).as_ref(),
                Some(digest)
            );
        }
        let reference = format!("docker://{}/{repo}:v1", registry.host());
        let arm = skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            "arm",
            "--override-variant",
            "v7",
            &reference,
        ]);
        assert_eq!(arm["Architecture"], "arm");
        let arm_layer = &index.images[2].blobs[1].0;
        assert_eq!(arm["Layers"], serde_json::json!([arm_layer]), "{repo}");
        let raw = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", &reference])
            .output()
            .expect("skopeo inspect --raw");
        assert_eq!(raw.stdout, index.manifest, "{repo}");
    }
}

#[test]
fn access_log_sees_a_manifest_put() {
    let registry = Registry::builder().access_log().start();
    push_image(&registry, "logged/app", "v1", ImageOptions::default());
    let requests = registry.requests();
    assert!(
        requests.iter().any(|request| request.method == "PUT"
            && request.path == "/v2/logged/app/manifests/v1"
            && request.status == 201),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .all(|request| request.user_agent == http::HARNESS_USER_AGENT)
    );
    registry.clear_requests();
    assert!(registry.requests().is_empty());
    manifest_digest(&registry, "logged/app", "v1");
    let requests = registry.requests();
    assert!(
        requests.iter().any(|request| request.method == "HEAD"
            && request.path == "/v2/logged/app/manifests/v1"
            && request.status == 200),
        "{requests:?}"
    );
}

#[test]
fn proxy_fails_twice_then_forwards() {
    let registry = Registry::start();
    let pushed = push_image(&registry, "flaky/app", "v1", ImageOptions::default());
    let proxy = FaultProxy::start(
        &registry.url(),
        vec![Rule::fail("GET", "/manifests/", 2, 503).retry_after(1)],
    );
    let client = http::client(&ClientTls::default());
    let url = format!("{}/v2/flaky/app/manifests/v1", proxy.url());
    let first = get(&client, &url, None);
    assert_eq!(first.status, 503);
    assert_eq!(first.header("retry-after"), "1");
    assert_eq!(get(&client, &url, None).status, 503);
    let third = get(&client, &url, None);
    assert_eq!(third.status, 200);
    assert_eq!(third.header("docker-content-digest"), pushed.digest);
    assert_eq!(proxy.rule_hits(0), 2);
    let statuses: Vec<u16> = proxy
        .requests()
        .iter()
        .map(|request| request.status)
        .collect();
    assert_eq!(statuses, vec![503, 503, 200]);

    // Upload sessions opened through the proxy point back at the proxy.
    let upload = call(
        &client,
        reqwest::Method::POST,
        &format!("{}/v2/flaky/app/blobs/uploads/", proxy.url()),
        None,
    )
    .expect("POST upload through the proxy");
    assert_eq!(upload.status, 202);
    assert!(
        upload.header(LOCATION.as_str()).starts_with(&proxy.url()),
        "{}",
        upload.header("location")
    );
}

#[test]
fn proxy_relays_a_whole_copy() {
    let registry = Registry::builder().access_log().start();
    let pushed = push_image(
        &registry,
        "relay/src",
        "v1",
        ImageOptions {
            layers: 2,
            layer_size: 300_000,
            ..ImageOptions::default()
        },
    );
    let proxy = FaultProxy::start(
        &registry.url(),
        vec![Rule::delay(".*", Duration::from_millis(5))],
    );
    let output = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{}/relay/src:v1", proxy.host()),
            &format!("docker://{}/relay/dst:v1", proxy.host()),
        ])
        .output()
        .expect("run skopeo copy");
    assert!(
        output.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        manifest_digest(&registry, "relay/dst", "v1"),
        Some(pushed.digest)
    );
    let seen = proxy.requests();
    // Layer bytes really went up through the proxy (upload Locations point back at it).
    assert!(
        seen.iter()
            .any(|request| request.method == "PATCH" && request.status == 202),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|request| request.method == "PUT" && request.path == "/v2/relay/dst/manifests/v1")
    );
    assert_eq!(proxy.rule_hits(0), seen.len());
    assert!(
        registry
            .requests()
            .iter()
            .any(|request| request.user_agent.contains("skopeo"))
    );
}

#[test]
fn proxy_redirects_blobs_to_a_host_that_records_headers() {
    let registry = Registry::builder().basic_auth().start();
    let pushed = push_image(&registry, "cdn/app", "v1", ImageOptions::default());
    let (layer, size) = pushed.blobs[1].clone();
    let proxy = FaultProxy::start(&registry.url(), vec![Rule::redirect_blobs()]);
    let (user, pass) = registry.admin();
    let following = http::client_builder(&ClientTls::default())
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .expect("client that follows redirects");
    let url = format!("{}/v2/cdn/app/blobs/{layer}", proxy.url());
    let answer = get(&following, &url, Some(&basic(&user, &pass)));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len() as u64, size);
    assert_eq!(sha256_digest(&answer.body), layer);
    assert_eq!(proxy.rule_hits(0), 1);
    assert_eq!(proxy.blob_host_requests().len(), 1);
    assert!(
        !proxy.blob_host_saw_authorization(),
        "reqwest drops credentials across hosts"
    );

    // A client that (wrongly) sends credentials to the blob host is caught.
    let plain = http::client(&ClientTls::default());
    let redirect = get(&plain, &url, Some(&basic(&user, &pass)));
    assert_eq!(redirect.status, 307);
    get(
        &plain,
        &redirect.header("location"),
        Some(&basic(&user, &pass)),
    );
    assert!(proxy.blob_host_saw_authorization());
}

#[test]
fn proxy_corrupts_cuts_and_throttles_bodies() {
    let registry = Registry::start();
    let pushed = push_image(
        &registry,
        "faulty/app",
        "v1",
        ImageOptions {
            layer_size: 20_000,
            ..ImageOptions::default()
        },
    );
    let (layer, size) = pushed.blobs[1].clone();
    let proxy = FaultProxy::start(
        &registry.url(),
        vec![
            Rule::corrupt("/blobs/").times(1),
            Rule::cut_after("/blobs/", 1000).times(1),
            Rule::throttle("/blobs/", 200_000),
        ],
    );
    let client = http::client(&ClientTls::default());
    let url = format!("{}/v2/faulty/app/blobs/{layer}", proxy.url());
    // The first GET is both corrupted and cut: the headers arrive, the body breaks off.
    let cut = block_on(async {
        let response = client
            .get(&url)
            .send()
            .await
            .expect("headers arrive before the cut");
        assert_eq!(response.status(), 200);
        response.bytes().await
    });
    assert!(cut.is_err(), "the cut must fail the body read");
    assert_eq!(proxy.rule_hits(0), 1);
    assert_eq!(proxy.rule_hits(1), 1);
    assert_eq!(
        sha256_digest(&get(&client, &url, None).body),
        layer,
        "faults used up"
    );
    let proxy = FaultProxy::start(&registry.url(), vec![Rule::corrupt("/blobs/").times(1)]);
    let url = format!("{}/v2/faulty/app/blobs/{layer}", proxy.url());
    let corrupted = get(&client, &url, None);
    assert_eq!(corrupted.body.len() as u64, size);
    assert_ne!(sha256_digest(&corrupted.body), layer);
    assert_eq!(sha256_digest(&get(&client, &url, None).body), layer);

    let proxy = FaultProxy::start(
        &registry.url(),
        vec![
            Rule::throttle("/blobs/", 100_000),
            Rule::delay("/manifests/", Duration::from_millis(300)),
        ],
    );
    let started = Instant::now();
    let throttled = get(
        &client,
        &format!("{}/v2/faulty/app/blobs/{layer}", proxy.url()),
        None,
    );
    assert_eq!(sha256_digest(&throttled.body), layer);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(
        get(
            &client,
            &format!("{}/v2/faulty/app/manifests/v1", proxy.url()),
            None
        )
        .status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(proxy.rule_hits(1), 1);
}

#[test]
fn drop_kills_the_process_and_restart_keeps_storage() {
    let mut registry = Registry::start();
    let pushed = push_image(&registry, "durable/app", "v1", ImageOptions::default());
    let port = registry.port();
    registry.restart();
    assert_eq!(registry.port(), port);
    assert_eq!(
        manifest_digest(&registry, "durable/app", "v1"),
        Some(pushed.digest)
    );
    let pid = registry.pid().expect("running");
    let storage = registry.storage_dir();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(registry);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "registry {pid} still running"
    );
    assert!(!storage.exists(), "temporary storage removed");
}

#[tokio::test]
async fn harness_works_inside_a_tokio_runtime() {
    let registry = Registry::start();
    let pushed = push_image(&registry, "async/app", "v1", ImageOptions::default());
    assert_eq!(
        manifest_digest(&registry, "async/app", "v1"),
        Some(pushed.digest)
    );
}
