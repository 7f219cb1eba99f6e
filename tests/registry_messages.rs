//! Messages that say what happened: a token service's own explanation, a 413 from a proxy
//! limiting request bodies, an mTLS registry that wants a client certificate, a registry
//! that does not answer. Real registries, the harness's token issuer and the fault proxy.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dregsy::registry::{
    Credentials, ErrorKind, Registry as Client, Repository, TagOrDigest, Timeouts,
};
use support::dregsy::{log_lines, run_dregsy, text};
use support::{
    FaultProxy, ImageOptions, Registry, Rule, TokenOptions, manifest_digest, push_image,
};

use support::registry::client_options as options;

fn repo() -> Repository {
    Repository::parse("team/app").expect("valid repository")
}

fn tag() -> TagOrDigest {
    TagOrDigest::tag("1").expect("valid tag")
}

#[tokio::test]
async fn a_refused_token_shows_the_token_service_s_own_explanation() {
    // The harness's issuer answers the distribution API's error JSON.
    let registry = Registry::builder()
        .token_auth(TokenOptions::default())
        .start();
    push_image(&registry, "team/app", "1", ImageOptions::default());
    let mut wrong = options(&format!("http://{}", registry.host()));
    wrong.credentials = Some(Credentials::new("admin", "not-the-password"));
    let error = Client::new(wrong)
        .unwrap()
        .head_manifest(&repo(), &tag())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unauthorized);
    let message = error.to_string();
    assert!(
        message.contains("the credentials of user 'admin' were rejected"),
        "{message}"
    );
    assert!(
        message.contains("it said: UNAUTHORIZED: invalid credentials"),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");

    // Docker Hub's and OAuth2's shapes, and a huge one, from a token service in front of
    // which the proxy answers.
    let long = "y".repeat(1024 * 1024);
    let refusals = [
        (
            401,
            r#"{"details":"incorrect username or password"}"#.to_string(),
            "incorrect username or password",
        ),
        (
            400,
            r#"{"error":"invalid_grant","error_description":"The provided grant is invalid"}"#
                .to_string(),
            "invalid_grant: The provided grant is invalid",
        ),
        (403, format!(r#"{{"details":"{long}"}}"#), "yyyy"),
    ];
    for (status, body, expected) in refusals {
        let token_service = FaultProxy::start(
            &registry.url(),
            vec![Rule::fail("GET", "^/token", 1, status).body("application/json", &body)],
        );
        let challenge = format!(
            r#"Bearer realm="{}/token",service="test-registry""#,
            token_service.url()
        );
        let front = FaultProxy::start(
            &registry.url(),
            vec![Rule::fail("*", "^/v2/", 1000, 401).www_authenticate(&challenge)],
        );
        let mut o = options(&format!("http://{}", front.host()));
        o.credentials = Some(Credentials::new("admin", "not-the-password"));
        let error = Client::new(o)
            .unwrap()
            .head_manifest(&repo(), &tag())
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("token service {}", "127.0.0.1")),
            "{message}"
        );
        assert!(message.contains(&format!("HTTP {status}")), "{message}");
        assert!(message.contains(expected), "{message}");
        assert!(
            message.len() < 700,
            "unbounded: {} characters",
            message.len()
        );
    }
}

#[test]
fn an_upload_refused_with_413_names_the_size_and_native_chunk_size_works_around_it() {
    let source = Registry::start();
    let image = push_image(
        &source,
        "big/app",
        "1",
        ImageOptions {
            layer_size: 300 * 1024,
            ..ImageOptions::default()
        },
    );
    let target = Registry::start();
    // A proxy that limits request bodies to 100 KiB (nginx's client_max_body_size).
    let limit = FaultProxy::start(
        &target.url(),
        vec![Rule::max_body("/blobs/uploads/", 100 * 1024)],
    );
    let config = |native: &str| {
        format!(
            "native:\n  retries: 2\n{native}tasks:\n- name: big\n  source:\n    registry: {}\n    skip-tls-verify: true\n  target:\n    registry: {}\n    skip-tls-verify: true\n  mappings:\n  - from: big/app\n",
            source.host(),
            limit.host()
        )
    };
    let out = run_dregsy(&config(""), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = log_lines(&out, "image failed");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    let message = failed[0]["msg"].as_str().unwrap();
    let layer = image.blobs.iter().map(|(_, size)| *size).max().unwrap();
    for part in [
        "a proxy in front of it".to_string(),
        format!("refused an upload of {layer} bytes"),
        "HTTP 413".to_string(),
        "native.chunk-size".to_string(),
    ] {
        assert!(message.contains(&part), "'{part}' missing in: {message}");
    }
    assert_eq!(manifest_digest(&target, "big/app", "1"), None);

    // Chunks below the limit get through, and the image arrives digest for digest.
    let out = run_dregsy(&config("  chunk-size: 64KiB\n"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        manifest_digest(&target, "big/app", "1").as_deref(),
        Some(image.digest.as_str())
    );
    assert!(
        limit
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.status == 202)
    );
}

#[tokio::test]
async fn an_mtls_registry_without_our_client_certificate_says_so_every_time() {
    let registry = Registry::builder().mtls().start();
    let only_ca = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(only_ca.path().join("127.0.0.1")).expect("mkdir");
    std::fs::write(only_ca.path().join("127.0.0.1/ca.crt"), registry.ca_pem()).expect("write");
    // The server sends an alert or just resets the connection, depending on timing: many
    // fresh connections meet both.
    for attempt in 0..40 {
        let mut o = options(&registry.host());
        o.certs_dir = Some(only_ca.path().to_path_buf());
        o.retry.max_tries = 1;
        let error = Client::new(o).unwrap().ping().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Tls, "attempt {attempt}: {error}");
        let message = error.to_string();
        assert!(
            message.contains("requires a client certificate (mutual TLS), and none is configured"),
            "attempt {attempt}: {message}"
        );
        assert!(message.contains("client.cert"), "{message}");
    }
}

/// Collects the messages of log events, for a test that needs to see one.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push(message.0);
    }
}

#[tokio::test]
async fn a_registry_that_never_answers_gets_one_still_waiting_line_then_times_out() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let registry = Registry::start();
    let silent = FaultProxy::start(&registry.url(), vec![Rule::never_answer("*", "^/v2/")]);
    let captured = Captured::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(captured.clone()));
    let mut o = options(&format!("http://{}", silent.host()));
    o.retry.max_tries = 1;
    o.timeouts = Timeouts {
        request: Duration::from_secs(12),
        ..Timeouts::default()
    };
    let error = Client::new(o).unwrap().ping().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    let lines = captured.0.lock().unwrap().clone();
    let waiting: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("still waiting"))
        .collect();
    assert_eq!(
        waiting,
        [&format!("still waiting for {} (GET /v2/)", silent.host())],
        "{lines:?}"
    );
}
