//! The registry client against real registries (CNCF Distribution) in every auth and TLS
//! mode, and against a fault-injecting proxy. Images are seeded and checked with the
//! harness's independent client, so the client under test never checks itself.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use dregsy::registry::{
    Credentials, Digest, ErrorKind, Manifest, MountOutcome, Platform, Registry, RegistryOptions,
    Repository, TagOrDigest,
};
use futures_util::{StreamExt, stream};
use support::{Format, ImageOptions, Rule, TokenOptions};

use support::registry::client_options as options;

fn plain(registry: &support::Registry) -> RegistryOptions {
    options(&format!("http://{}", registry.host()))
}

fn admin(registry: &support::Registry) -> Option<Credentials> {
    let (user, pass) = registry.admin();
    Some(Credentials::new(user, pass))
}

fn client(options: RegistryOptions) -> Registry {
    Registry::new(options).expect("client")
}

fn repo(name: &str) -> Repository {
    Repository::parse(name).expect("valid repository")
}

fn tag(name: &str) -> TagOrDigest {
    TagOrDigest::tag(name).expect("valid tag")
}

fn digest(text: &str) -> Digest {
    Digest::parse(text).expect("valid digest")
}

/// Copies `src:tag` to `dst:tag` within one registry the way the engine will: mount blobs,
/// push children by digest, then the top manifest by tag.
async fn copy_within(client: &Registry, src: &Repository, dst: &Repository, reference: &str) {
    let top = client
        .get_manifest(src, &tag(reference))
        .await
        .expect("get top manifest");
    let mut images = Vec::new();
    for child in top.children().expect("children") {
        let m = client
            .get_manifest(src, &child.digest.clone().into())
            .await
            .expect("get child manifest");
        images.push(m);
    }
    if !top.is_index() {
        images.push(top.clone());
    }
    for image in &images {
        for blob in image.blobs().expect("blobs") {
            match client
                .mount_blob(dst, &blob.digest, src)
                .await
                .expect("mount")
            {
                MountOutcome::Mounted => {}
                MountOutcome::NotMounted(_) => panic!("Distribution mounts within one registry"),
            }
        }
        if top.is_index() {
            client
                .put_manifest(dst, &image.digest.clone().into(), image)
                .await
                .expect("put child");
        }
    }
    client
        .put_manifest(dst, &tag(reference), &top)
        .await
        .expect("put top manifest");
}

async fn round_trip(format: Format) {
    let registry = support::Registry::start();
    let index = support::push_index(
        &registry,
        "src/multi",
        "1",
        &["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
        format,
    );
    let image = support::push_image(
        &registry,
        "src/single",
        "1",
        ImageOptions {
            format,
            layers: 2,
            ..ImageOptions::default()
        },
    );
    let c = client(plain(&registry));

    let head = c
        .head_manifest(&repo("src/multi"), &tag("1"))
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(head.digest.as_str(), index.digest);
    assert_eq!(head.media_type.as_deref(), Some(format.index_media_type()));
    assert_eq!(head.manifest, None, "a HEAD, not a GET");
    assert_eq!(head.size, Some(index.manifest.len() as u64));

    let top = c
        .get_manifest(&repo("src/multi"), &tag("1"))
        .await
        .expect("get");
    assert_eq!(top.bytes.as_ref(), index.manifest.as_slice());
    assert_eq!(top.media_type, format.index_media_type());
    let arm64 = top
        .select_platform(&Platform::parse("linux/arm64").expect("platform"))
        .expect("select")
        .expect("arm64 present");
    assert_eq!(arm64.digest.as_str(), index.children[1].1);

    let single = c
        .get_manifest(&repo("src/single"), &tag("1"))
        .await
        .expect("get");
    assert_eq!(single.bytes.as_ref(), image.manifest.as_slice());
    let blobs: Vec<(String, u64)> = single
        .blobs()
        .expect("blobs")
        .into_iter()
        .map(|b| (b.digest.to_string(), b.size))
        .collect();
    assert_eq!(blobs, image.blobs);

    for (src, dst) in [("src/multi", "dst/multi"), ("src/single", "dst/single")] {
        copy_within(&c, &repo(src), &repo(dst), "1").await;
        let copied = support::get_manifest(&registry, dst, "1").expect("copied manifest");
        let original = support::get_manifest(&registry, src, "1").expect("original manifest");
        assert_eq!(copied.bytes, original.bytes, "{dst} is byte-identical");
        assert_eq!(copied.digest, original.digest);
    }
}

#[tokio::test]
async fn oci_image_and_index_round_trip_byte_identical() {
    round_trip(Format::Oci).await;
}

#[tokio::test]
async fn docker_image_and_manifest_list_round_trip_byte_identical() {
    round_trip(Format::Docker).await;
}

#[tokio::test]
async fn blob_push_streams_in_chunks_and_monolithic() {
    let registry = support::Registry::start();
    let content = Bytes::from(
        (0..3 * 1024 * 1024u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let d = Digest::of(&content);
    let pieces = || {
        let chunks: Vec<dregsy::registry::Result<Bytes>> = content
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        stream::iter(chunks)
    };

    let c = client(plain(&registry));
    let target = repo("blobs/mono");
    let len = content.len() as u64;
    assert!(!c.head_blob(&target, &d, len).await.expect("head"));
    c.push_blob(&target, &d, content.len() as u64, pieces())
        .await
        .expect("monolithic push");
    assert!(c.head_blob(&target, &d, len).await.expect("head"));
    let err = c
        .head_blob(&target, &d, len + 1)
        .await
        .expect_err("a Content-Length that contradicts the descriptor");
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    assert!(err.to_string().contains(&len.to_string()), "{err}");
    let back = support::get_blob(&registry, "blobs/mono", d.as_str()).expect("blob present");
    assert_eq!(back, content.as_ref());

    let mut chunked = plain(&registry);
    chunked.chunked_uploads = true;
    chunked.chunk_size = 1024 * 1024;
    let c = client(chunked);
    c.push_blob(&repo("blobs/chunked"), &d, content.len() as u64, pieces())
        .await
        .expect("chunked push");
    let back = support::get_blob(&registry, "blobs/chunked", d.as_str()).expect("blob present");
    assert_eq!(back, content.as_ref());

    let mut pulled = c
        .get_blob(&repo("blobs/chunked"), &d, content.len() as u64)
        .await
        .expect("get");
    assert_eq!(pulled.size(), content.len() as u64);
    let mut total = Vec::new();
    while let Some(chunk) = pulled.next().await {
        total.extend_from_slice(&chunk.expect("verified chunk"));
    }
    assert_eq!(total, content.as_ref());
}

#[tokio::test]
async fn mount_within_one_registry_answers_201() {
    let registry = support::Registry::start();
    let image = support::push_image(&registry, "a/src", "1", ImageOptions::default());
    let c = client(plain(&registry));
    let layer = digest(&image.blobs[1].0);
    let outcome = c
        .mount_blob(&repo("a/dst"), &layer, &repo("a/src"))
        .await
        .expect("mount");
    assert!(matches!(outcome, MountOutcome::Mounted));
    assert!(support::blob_exists(&registry, "a/dst", layer.as_str()));

    // A blob the source does not hold: the registry opens an upload instead, which we use.
    let content = Bytes::from_static(b"not in the source");
    let d = Digest::of(&content);
    match c
        .mount_blob(&repo("a/dst"), &d, &repo("a/src"))
        .await
        .expect("mount")
    {
        MountOutcome::Mounted => panic!("cannot mount an unknown blob"),
        MountOutcome::NotMounted(session) => {
            c.upload_blob(
                session,
                &d,
                content.len() as u64,
                stream::iter([Ok(content.clone())]),
            )
            .await
            .expect("upload into the mount's session");
        }
    }
    assert!(support::blob_exists(&registry, "a/dst", d.as_str()));
}

#[tokio::test]
async fn basic_auth_and_wrong_password() {
    let registry = support::Registry::builder().basic_auth().start();
    support::push_image(&registry, "team/app", "1", ImageOptions::default());

    let mut good = plain(&registry);
    good.credentials = admin(&registry);
    let c = client(good);
    c.ping().await.expect("ping with credentials");
    assert!(
        c.head_manifest(&repo("team/app"), &tag("1"))
            .await
            .expect("head")
            .is_some()
    );
    assert_eq!(c.list_tags(&repo("team/app")).await.expect("tags"), ["1"]);

    let mut wrong = plain(&registry);
    wrong.credentials = Some(Credentials::new("admin", "not-the-password"));
    let err = client(wrong)
        .head_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect_err("wrong password");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let text = err.to_string();
    assert!(
        text.contains("team/app:1") && text.contains("'admin'"),
        "{text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");

    let err = client(plain(&registry))
        .ping()
        .await
        .expect_err("anonymous");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.to_string().contains("none are configured"), "{err}");
}

#[tokio::test]
async fn token_auth_caches_tokens_per_scope() {
    let registry = support::Registry::builder()
        .token_auth(TokenOptions::default())
        .start();
    support::push_image(&registry, "team/app", "1", ImageOptions::default());
    let before = registry.tokens_issued();

    let mut o = plain(&registry);
    o.credentials = admin(&registry);
    let c = client(o);
    c.ping().await.expect("ping with a token");
    let first = c
        .head_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect("head")
        .expect("exists");
    let issued = registry.tokens_issued() - before;
    assert_eq!(issued, 2, "one token for the ping, one for the pull scope");
    let again = c
        .head_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(first.digest, again.digest);
    c.get_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect("get");
    assert_eq!(
        registry.tokens_issued() - before,
        2,
        "the cached token is reused"
    );
    assert_eq!(c.tokens_fetched(), 2);

    // Writing needs pull+push: one more token, then cached too.
    copy_within(&c, &repo("team/app"), &repo("team/copy"), "1").await;
    let issued_after_copy = registry.tokens_issued() - before;
    // ping, pull, mount (push + pull of the source), push: one token each, whatever the
    // number of requests.
    assert_eq!(issued_after_copy, 4);
    assert!(support::get_manifest(&registry, "team/copy", "1").is_some());

    let mut wrong = plain(&registry);
    wrong.credentials = Some(Credentials::new("admin", "wrong-secret"));
    let err = client(wrong)
        .head_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect_err("wrong password");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let text = err.to_string();
    assert!(
        text.contains("token service") && text.contains("'admin'"),
        "{text}"
    );
    assert!(!text.contains("wrong-secret"));
}

#[tokio::test]
async fn token_auth_anonymous_pull() {
    let registry = support::Registry::builder()
        .token_auth(TokenOptions {
            anonymous_pull: true,
            ..TokenOptions::default()
        })
        .start();
    let image = support::push_image(&registry, "pub/app", "1", ImageOptions::default());
    let c = client(plain(&registry));
    let m = c
        .get_manifest(&repo("pub/app"), &tag("1"))
        .await
        .expect("anonymous pull");
    assert_eq!(m.digest.as_str(), image.digest);
    let err = c
        .put_manifest(&repo("pub/app"), &tag("2"), &m)
        .await
        .expect_err("anonymous push is refused");
    assert!(
        matches!(err.kind(), ErrorKind::Unauthorized | ErrorKind::Forbidden),
        "{err}"
    );
}

#[tokio::test]
async fn tls_with_certs_dir() {
    let registry = support::Registry::builder().tls().start();
    let image = support::push_image(&registry, "secure/app", "1", ImageOptions::default());

    let mut o = options(&registry.host());
    o.certs_dir = Some(registry.certs_dir());
    let c = client(o);
    c.ping()
        .await
        .expect("ping over TLS with the certs dir's CA");
    let m = c
        .get_manifest(&repo("secure/app"), &tag("1"))
        .await
        .expect("get");
    assert_eq!(m.digest.as_str(), image.digest);

    let err = client(options(&registry.host()))
        .ping()
        .await
        .expect_err("untrusted CA");
    assert_eq!(err.kind(), ErrorKind::Tls);
    assert!(err.to_string().contains("certs-dir"), "{err}");

    // skip-tls-verify trusts anything, and keeps HTTPS when the registry speaks it.
    let mut skip = options(&registry.host());
    skip.skip_tls_verify = true;
    let m = client(skip)
        .get_manifest(&repo("secure/app"), &tag("1"))
        .await
        .expect("get");
    assert_eq!(m.digest.as_str(), image.digest);
}

#[tokio::test]
async fn mtls_with_client_certificate() {
    let registry = support::Registry::builder().mtls().start();
    support::push_image(&registry, "secure/app", "1", ImageOptions::default());

    let mut o = options(&registry.host());
    o.certs_dir = Some(registry.certs_dir());
    let c = client(o);
    c.ping().await.expect("ping with a client certificate");
    assert!(
        c.head_manifest(&repo("secure/app"), &tag("1"))
            .await
            .expect("head")
            .is_some()
    );

    // The CA alone is not enough.
    let only_ca = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(only_ca.path().join("127.0.0.1")).expect("mkdir");
    std::fs::write(only_ca.path().join("127.0.0.1/ca.crt"), registry.ca_pem()).expect("write");
    let mut o = options(&registry.host());
    o.certs_dir = Some(only_ca.path().to_path_buf());
    o.retry.max_tries = 1;
    let err = client(o).ping().await.expect_err("no client certificate");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Tls | ErrorKind::Network | ErrorKind::Unreachable
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn skip_tls_verify_falls_back_to_plain_http() {
    let registry = support::Registry::start();
    let image = support::push_image(&registry, "plain/app", "1", ImageOptions::default());

    let mut o = options(&registry.host());
    o.skip_tls_verify = true;
    let c = client(o);
    c.ping().await.expect("ping falls back to http");
    let m = c
        .get_manifest(&repo("plain/app"), &tag("1"))
        .await
        .expect("get");
    assert_eq!(m.digest.as_str(), image.digest);

    let err = client(options(&registry.host()))
        .ping()
        .await
        .expect_err("TLS expected");
    assert_eq!(err.kind(), ErrorKind::Tls);
    assert!(
        err.to_string().contains("http://"),
        "the error suggests the fix: {err}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_retry_after() {
    let registry = support::Registry::start();
    let image = support::push_image(&registry, "flaky/app", "1", ImageOptions::default());
    let proxy = support::FaultProxy::start(
        &registry.url(),
        vec![
            Rule::fail("GET", "^/v2/flaky/app/manifests/", 2, 503),
            Rule::fail("HEAD", "^/v2/flaky/app/manifests/", 1, 429).retry_after(1),
        ],
    );
    let c = client(options(&format!("http://{}", proxy.host())));
    let m = c
        .get_manifest(&repo("flaky/app"), &tag("1"))
        .await
        .expect("get after two 503s");
    assert_eq!(m.digest.as_str(), image.digest);
    assert_eq!(proxy.rule_hits(0), 2);

    let started = Instant::now();
    c.head_manifest(&repo("flaky/app"), &tag("1"))
        .await
        .expect("head after a 429");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    assert_eq!(proxy.rule_hits(1), 1);

    // Bounded: a registry that keeps failing gives up with a transient error.
    let always = support::FaultProxy::start(
        &registry.url(),
        vec![Rule::fail("GET", "^/v2/flaky/app/manifests/", 100, 503)],
    );
    let mut o = options(&format!("http://{}", always.host()));
    o.retry.max_tries = 3;
    let err = client(o)
        .get_manifest(&repo("flaky/app"), &tag("1"))
        .await
        .expect_err("gives up");
    assert_eq!(err.status(), Some(503));
    assert!(err.is_transient());
    assert_eq!(always.rule_hits(0), 3);
}

#[tokio::test]
async fn corrupted_blob_is_rejected_and_not_pushed_on() {
    let source = support::Registry::start();
    let target = support::Registry::start();
    let image = support::push_image(
        &source,
        "bad/app",
        "1",
        ImageOptions {
            layer_size: 200 * 1024,
            ..ImageOptions::default()
        },
    );
    let proxy =
        support::FaultProxy::start(&source.url(), vec![Rule::corrupt("^/v2/bad/app/blobs/")]);
    let src = client(options(&format!("http://{}", proxy.host())));
    let dst = client(plain(&target));
    let (layer, size) = &image.blobs[1];
    let layer = digest(layer);

    let blob = src
        .get_blob(&repo("bad/app"), &layer, *size)
        .await
        .expect("response");
    assert_eq!(blob.size(), *size);
    let err = dst
        .push_blob(&repo("good/app"), &layer, *size, blob)
        .await
        .expect_err("corrupted content must not be committed");
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    assert!(err.to_string().contains(layer.as_str()), "{err}");
    assert!(!support::blob_exists(&target, "good/app", layer.as_str()));
}

#[tokio::test]
async fn redirected_blob_get_drops_authorization() {
    let registry = support::Registry::builder().basic_auth().start();
    let image = support::push_image(&registry, "cdn/app", "1", ImageOptions::default());
    let proxy = support::FaultProxy::start(&registry.url(), vec![Rule::redirect_blobs()]);
    let mut o = options(&format!("http://{}", proxy.host()));
    o.credentials = admin(&registry);
    let c = client(o);
    let (layer, size) = &image.blobs[1];
    let mut blob = c
        .get_blob(&repo("cdn/app"), &digest(layer), *size)
        .await
        .expect("get");
    let mut total = 0u64;
    while let Some(chunk) = blob.next().await {
        total += chunk.expect("verified chunk").len() as u64;
    }
    assert_eq!(total, *size);
    assert!(
        !proxy.blob_host_requests().is_empty(),
        "the redirect was followed"
    );
    assert!(
        !proxy.blob_host_saw_authorization(),
        "credentials stay with the registry"
    );
    assert!(
        proxy.requests().iter().any(|r| r.authorization),
        "the registry itself got credentials"
    );
}

#[tokio::test]
async fn a_redirect_from_https_to_plain_http_is_refused() {
    // Where the registry sends blob GETs: a plain-HTTP port that must never be contacted.
    let downgrade = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    downgrade.set_nonblocking(true).expect("nonblocking");
    let http_url = format!("http://{}", downgrade.local_addr().expect("addr"));
    let registry = support::Registry::builder()
        .tls()
        .redirect_blobs_to(&http_url)
        .start();
    let image = support::push_image(&registry, "cdn/app", "1", ImageOptions::default());
    let mut o = options(&registry.host());
    o.certs_dir = Some(registry.certs_dir());
    let c = client(o);
    let (layer, size) = &image.blobs[1];
    let error = match c.get_blob(&repo("cdn/app"), &digest(layer), *size).await {
        Err(error) => error,
        Ok(mut blob) => loop {
            match blob.next().await {
                Some(Err(error)) => break error,
                Some(Ok(_)) => {}
                None => panic!("the blob arrived through a redirect to {http_url}"),
            }
        },
    };
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "refused a redirect from HTTPS to http://{}",
            downgrade.local_addr().expect("addr").ip()
        )),
        "{text}"
    );
    // Not one connection reached the plain-HTTP host.
    match downgrade.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the plain-HTTP host was contacted: {other:?}"),
    }
}

#[tokio::test]
async fn catalog_follows_pagination_and_honours_limit() {
    let registry = support::Registry::start();
    for name in ["p/a", "p/b", "p/c", "p/d", "p/e"] {
        support::push_image(&registry, name, "1", ImageOptions::default());
    }
    let mut o = plain(&registry);
    o.page_size = 2;
    let c = client(o);
    let all = c.catalog(None).await.expect("catalog");
    assert_eq!(all, ["p/a", "p/b", "p/c", "p/d", "p/e"]);
    let some = c.catalog(Some(3)).await.expect("catalog");
    assert_eq!(some, ["p/a", "p/b", "p/c"]);
}

/// A body that never ends: 64 KiB of spaces after `start`, again and again.
fn endless(start: &'static str) -> support::http::Body {
    use http_body_util::BodyExt as _;
    static SPACES: [u8; 65536] = [b' '; 65536];
    let first = futures_util::stream::once(async move { Bytes::from_static(start.as_bytes()) });
    let rest = futures_util::stream::repeat_with(|| Bytes::from_static(&SPACES));
    let frames = first
        .chain(rest)
        .map(|bytes| Ok::<_, support::http::BoxError>(hyper::body::Frame::data(bytes)));
    http_body_util::StreamBody::new(frames).boxed_unsync()
}

#[tokio::test]
async fn endless_bodies_are_cut_at_their_bounds() {
    use support::http::{Server, respond};
    let server = Server::start("endless", |request| async move {
        let path = request.uri().path().to_owned();
        let host = request
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let endless_answer = |status: hyper::StatusCode, content_type: &str, start| {
            let mut response = hyper::Response::new(endless(start));
            *response.status_mut() = status;
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                content_type.parse().expect("header"),
            );
            response
        };
        match path.as_str() {
            "/v2/" => respond(hyper::StatusCode::OK, "application/json", "{}"),
            "/v2/endless/tags/list" => endless_answer(
                hyper::StatusCode::OK,
                "application/json",
                r#"{"name":"endless","tags":["#,
            ),
            "/v2/endless/manifests/1" => endless_answer(
                hyper::StatusCode::OK,
                "application/vnd.oci.image.index.v1+json",
                "{",
            ),
            "/v2/endless/manifests/missing" => {
                endless_answer(hyper::StatusCode::NOT_FOUND, "application/json", "{")
            }
            "/token" => endless_answer(hyper::StatusCode::OK, "application/json", "{"),
            _ if path.starts_with("/v2/guarded/") => {
                let mut response = respond(hyper::StatusCode::UNAUTHORIZED, "application/json", "");
                response.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    format!(r#"Bearer realm="http://{host}/token",service="endless""#)
                        .parse()
                        .expect("header"),
                );
                response
            }
            _ => respond(hyper::StatusCode::NOT_FOUND, "application/json", ""),
        }
    });
    let c = client(options(&server.url()));
    // Each ends within a bounded time, without buffering the endless body.
    let bounded = Duration::from_secs(60);
    let tags = tokio::time::timeout(bounded, c.list_tags(&repo("endless")))
        .await
        .expect("a tag list page is cut at its bound")
        .expect_err("an endless tag list page");
    assert_eq!(tags.kind(), ErrorKind::TooLarge, "{tags}");
    assert!(
        tags.to_string()
            .contains("the page is larger than 16 MiB, which we refuse"),
        "{tags}"
    );
    let manifest = tokio::time::timeout(bounded, c.get_manifest(&repo("endless"), &tag("1")))
        .await
        .expect("a manifest is cut at its bound")
        .expect_err("an endless manifest");
    assert_eq!(manifest.kind(), ErrorKind::TooLarge, "{manifest}");
    assert!(
        manifest
            .to_string()
            .contains("the manifest is larger than 4 MiB, which we refuse"),
        "{manifest}"
    );
    // An error body is read up to its bound only, for its explanation; the status decides.
    let missing = tokio::time::timeout(bounded, c.get_manifest(&repo("endless"), &tag("missing")))
        .await
        .expect("an error body is cut at its bound")
        .expect_err("404");
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    let token = tokio::time::timeout(bounded, c.get_manifest(&repo("guarded"), &tag("1")))
        .await
        .expect("a token response is cut at its bound")
        .expect_err("an endless token response");
    assert_eq!(token.kind(), ErrorKind::TooLarge, "{token}");
    assert!(
        token.to_string().contains("token response is too large"),
        "{token}"
    );
}

#[tokio::test]
async fn tags_pagination_and_null_tags() {
    use support::http::{Server, respond};
    let server = Server::start("tags-pages", |request| async move {
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let json = "application/json";
        match path_and_query.as_str() {
            "/v2/" => respond(hyper::StatusCode::OK, json, "{}"),
            "/v2/paged/tags/list" => {
                let mut r = respond(
                    hyper::StatusCode::OK,
                    json,
                    r#"{"name":"paged","tags":["1","2"]}"#,
                );
                r.headers_mut().insert(
                    "link",
                    hyper::header::HeaderValue::from_static(
                        r#"</v2/paged/tags/list?last=2&n=2>; rel="next""#,
                    ),
                );
                r
            }
            "/v2/paged/tags/list?last=2&n=2" => respond(
                hyper::StatusCode::OK,
                json,
                r#"{"name":"paged","tags":["3"]}"#,
            ),
            "/v2/emptied/tags/list" => respond(
                hyper::StatusCode::OK,
                json,
                r#"{"name":"emptied","tags":null}"#,
            ),
            _ => respond(
                hyper::StatusCode::NOT_FOUND,
                json,
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
            ),
        }
    });
    let c = client(options(&server.url()));
    assert_eq!(
        c.list_tags(&repo("paged")).await.expect("tags"),
        ["1", "2", "3"]
    );
    assert!(
        c.list_tags(&repo("emptied"))
            .await
            .expect("tags")
            .is_empty()
    );
    let err = c
        .list_tags(&repo("missing"))
        .await
        .expect_err("unknown repository");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("NAME_UNKNOWN"), "{err}");
}

#[tokio::test]
async fn errors_read_well() {
    let registry = support::Registry::start();
    support::push_image(&registry, "team/app", "1", ImageOptions::default());
    let c = client(plain(&registry));

    let err = c
        .get_manifest(&repo("team/app"), &tag("nope"))
        .await
        .expect_err("missing tag");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        format!(
            "pulling manifest {}/team/app:nope: the tag does not exist (registry said: MANIFEST_UNKNOWN: manifest unknown)",
            registry.host()
        )
    );
    assert_eq!(
        c.head_manifest(&repo("team/app"), &tag("nope"))
            .await
            .expect("head"),
        None
    );

    // A closed port: unreachable, after bounded retries.
    let closed = support::http::free_port();
    let mut o = options(&format!("http://127.0.0.1:{closed}"));
    o.retry.max_tries = 2;
    let err = client(o).ping().await.expect_err("closed port");
    assert_eq!(err.kind(), ErrorKind::Unreachable);
    assert!(err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{closed}")) && text.contains("cannot connect"),
        "{text}"
    );

    let schema1 = Manifest::from_bytes(
        None,
        Bytes::from_static(br#"{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[]}"#),
    )
    .expect("schema 1 reads");
    let err = c
        .put_manifest(&repo("team/app"), &tag("old"), &schema1)
        .await
        .expect_err("schema 1 push");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

#[tokio::test]
async fn token_service_that_only_speaks_oauth2_post_gets_the_password_grant() {
    let registry = support::Registry::builder()
        .token_auth(TokenOptions {
            oauth2_only: true,
            ..TokenOptions::default()
        })
        .start();
    support::push_image(&registry, "team/app", "1", ImageOptions::default());
    let mut o = plain(&registry);
    o.credentials = admin(&registry);
    let c = client(o);
    let found = c
        .head_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect("head through an OAuth2-only token service")
        .expect("exists");
    assert_eq!(
        Some(found.digest.as_str().to_string()),
        support::manifest_digest(&registry, "team/app", "1")
    );
    let ours: Vec<_> = registry
        .token_requests()
        .into_iter()
        .filter(|r| r.client_id.as_deref() != Some(support::token::HARNESS_CLIENT_ID))
        .collect();
    let get = ours
        .iter()
        .find(|r| r.method == "GET")
        .expect("the GET form is tried first");
    assert_eq!(get.status, 404);
    let post = ours
        .iter()
        .find(|r| r.method == "POST")
        .expect("then the OAuth2 POST form");
    assert_eq!(post.status, 200);
    assert_eq!(post.grant_type.as_deref(), Some("password"));
    assert_eq!(post.user.as_deref(), Some(registry.admin().0.as_str()));
    assert_eq!(post.scopes, ["repository:team/app:pull"]);
}

#[tokio::test]
async fn oci_chunk_min_length_switches_uploads_to_chunks_of_that_size() {
    let registry = support::Registry::start();
    const MIN: usize = 1024 * 1024;
    let proxy = support::FaultProxy::start(
        &registry.url(),
        vec![
            support::Rule::header(
                r"^/v2/.+/blobs/uploads/$",
                "OCI-Chunk-Min-Length",
                "1048576",
            )
            .method("POST"),
        ],
    );
    let content = Bytes::from(
        (0..(2 * MIN + MIN / 2) as u32)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<u8>>(),
    );
    let d = Digest::of(&content);
    // Small pieces: the client must gather them into chunks of at least the minimum.
    let pieces: Vec<dregsy::registry::Result<Bytes>> = content
        .chunks(16 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut o = options(&proxy.url());
    o.chunk_size = 64 * 1024;
    let c = client(o);
    c.push_blob(
        &repo("blobs/min"),
        &d,
        content.len() as u64,
        stream::iter(pieces),
    )
    .await
    .expect("chunked push");
    let back = support::get_blob(&registry, "blobs/min", d.as_str()).expect("blob present");
    assert_eq!(back, content.as_ref());
    let patches: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(
        patches.len(),
        3,
        "two chunks of the minimum and the rest: {patches:?}"
    );
    assert!(patches.iter().all(|r| r.status == 202), "{patches:?}");
    let put = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect::<Vec<_>>();
    assert_eq!(put.len(), 1, "one closing PUT: {put:?}");
}

#[tokio::test]
async fn a_token_refused_mid_run_is_renewed_and_the_request_sent_again() {
    // Distribution accepts a token for a while past its expiry, so the proxy plays the
    // registry that refuses a stale one: a 401 with its challenge, once.
    let registry = support::Registry::builder()
        .token_auth(TokenOptions::default())
        .start();
    support::push_image(&registry, "team/app", "1", ImageOptions::default());
    let challenge = format!(
        r#"Bearer realm="{}",service="{}",scope="repository:team/app:pull",error="invalid_token""#,
        registry.token_realm().expect("token realm"),
        registry.token_service().expect("token service"),
    );
    let proxy = support::FaultProxy::start(
        &registry.url(),
        vec![Rule::fail("HEAD", r"^/v2/team/app/manifests/", 1, 401).www_authenticate(&challenge)],
    );
    let mut o = options(&proxy.url());
    o.credentials = admin(&registry);
    let c = client(o);
    let first = c
        .get_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect("get");
    assert_eq!(c.tokens_fetched(), 1);
    let again = c
        .head_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect("head after the token was refused")
        .expect("exists");
    assert_eq!(again.digest, first.digest);
    assert_eq!(c.tokens_fetched(), 2, "the refused token was replaced once");
    let heads: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "HEAD")
        .map(|r| r.status)
        .collect();
    assert_eq!(heads, [401, 200], "refused once, then sent again");
}

#[tokio::test]
async fn concurrent_requests_share_one_token_per_scope() {
    let registry = support::Registry::builder()
        .token_auth(TokenOptions::default())
        .start();
    let names = ["team/a", "team/b", "team/c", "team/d"];
    for name in names {
        support::push_image(&registry, name, "1", ImageOptions::default());
    }
    let mut o = plain(&registry);
    o.credentials = admin(&registry);
    let c = client(o);
    // Five requests for team/a and one for each of the others, all at once.
    let wanted: Vec<&str> = std::iter::repeat_n("team/a", 5)
        .chain(names[1..].iter().copied())
        .collect();
    let one = tag("1");
    let repos: Vec<Repository> = wanted.iter().map(|name| repo(name)).collect();
    let found =
        futures_util::future::join_all(repos.iter().map(|r| c.head_manifest(r, &one))).await;
    for (name, result) in wanted.iter().zip(found) {
        let descriptor = result.expect("head").expect("exists");
        assert_eq!(
            Some(descriptor.digest.as_str().to_string()),
            support::manifest_digest(&registry, name, "1"),
            "{name}"
        );
    }
    assert_eq!(c.tokens_fetched(), 4, "one token per repository");
}

#[tokio::test]
async fn manifest_head_is_a_hint_and_a_refused_head_is_asked_with_get() {
    let registry = support::Registry::start();
    let image = support::push_image(&registry, "team/app", "1", ImageOptions::default());
    let count = |proxy: &support::FaultProxy, method: &str| {
        proxy
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.contains("/manifests/"))
            .count()
    };

    // A generic Content-Type (any case, with parameters) is no media type; a known one is
    // trusted whatever its case and parameters.
    let proxy = support::FaultProxy::start(
        &registry.url(),
        vec![
            Rule::set_header(
                "/manifests/1$",
                "content-type",
                "application/json; charset=utf-8",
            )
            .method("HEAD"),
            Rule::set_header(
                "/manifests/sha256:",
                "content-type",
                "Application/VND.OCI.Image.Manifest.v1+JSON; charset=utf-8",
            )
            .method("HEAD"),
        ],
    );
    let c = client(options(&format!("http://{}", proxy.host())));
    let head = c
        .head_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(head.digest.as_str(), image.digest);
    assert_eq!(head.media_type, None);
    let by_digest = c
        .head_manifest(&repo("team/app"), &digest(&image.digest).into())
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(
        by_digest.media_type.as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(count(&proxy, "GET"), 0);

    // HEAD refused with 405: asked with GET, learned once; the GET's 404 is a real "not found".
    let refusing = support::FaultProxy::start(
        &registry.url(),
        vec![Rule::fail("HEAD", "/manifests/", usize::MAX, 405)],
    );
    let c = client(options(&format!("http://{}", refusing.host())));
    for _ in 0..3 {
        let head = c
            .head_manifest(&repo("team/app"), &tag("1"))
            .await
            .expect("GET answers")
            .expect("exists");
        assert_eq!(head.digest.as_str(), image.digest);
        assert_eq!(
            head.manifest.map(|m| m.bytes.to_vec()),
            Some(image.manifest.clone())
        );
    }
    let missing = c
        .head_manifest(&repo("team/app"), &tag("nope"))
        .await
        .expect("a 404 to the GET");
    assert_eq!(missing, None);
    assert_eq!(count(&refusing, "HEAD"), 1);
    assert_eq!(count(&refusing, "GET"), 4);

    // Where HEAD worked, its 404 is believed without a GET; a 5xx is no reason to GET.
    let direct = support::FaultProxy::start(&registry.url(), vec![]);
    let c = client(options(&format!("http://{}", direct.host())));
    c.head_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(
        c.head_manifest(&repo("team/app"), &tag("nope"))
            .await
            .expect("head"),
        None
    );
    assert_eq!(count(&direct, "GET"), 0);

    // Before any HEAD answered 2xx, a 404 is confirmed with a GET; a manifest the client
    // pushed settles that HEAD works, so later 404s need none.
    let manifest = client(plain(&registry))
        .get_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect("get");
    let empty = support::Registry::start();
    let proxy = support::FaultProxy::start(&empty.url(), vec![]);
    let c = client(options(&format!("http://{}", proxy.host())));
    let nothing = c.head_manifest(&repo("team/app"), &tag("1")).await;
    assert_eq!(nothing.expect("head"), None);
    assert_eq!(count(&proxy, "GET"), 1);
    for blob in manifest.blobs().expect("blobs") {
        let bytes = support::get_blob(&registry, "team/app", blob.digest.as_str()).expect("blob");
        support::push_blob(&empty, "team/app", &bytes);
    }
    c.put_manifest(&repo("team/app"), &tag("1"), &manifest)
        .await
        .expect("put");
    for missing in ["2", "3"] {
        let nothing = c.head_manifest(&repo("team/app"), &tag(missing)).await;
        assert_eq!(nothing.expect("head"), None);
    }
    assert_eq!(count(&proxy, "GET"), 1, "{:?}", proxy.requests());
    let failing = support::FaultProxy::start(
        &registry.url(),
        vec![Rule::fail("HEAD", "/manifests/", usize::MAX, 503)],
    );
    let mut o = options(&format!("http://{}", failing.host()));
    o.retry.max_tries = 2;
    let err = client(o)
        .head_manifest(&repo("team/app"), &tag("1"))
        .await
        .expect_err("a 503 fails");
    assert_eq!(err.status(), Some(503));
    assert_eq!(count(&failing, "GET"), 0);
}
