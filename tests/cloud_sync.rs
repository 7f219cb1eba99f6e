//! End to end into cloud-like targets: the dregsy binary copies from a local registry into an
//! "ECR-like" registry (moto issues its tokens and holds its repositories) and a "GAR-like"
//! one (tokens from a service account key exchanged at a local token endpoint).
//!
//! The cloud host names reach local registries through `HTTP_PROXY` (a forwarding proxy in
//! front of each), the standard setting dregsy's registry client honours; the cloud APIs are
//! reached through their standard endpoint settings. A proxy rule refuses one manifest push
//! with 401, as a registry does when a token expires mid-run: dregsy must renew the token and
//! retry, not fail.

mod support;

use std::process::Output;

use support::cloud::{GoogleApi, Moto, aws_env};
use support::dregsy::{Dregsy, text};
use support::{FaultProxy, ImageOptions, Registry, Rule, TokenOptions, list_tags, push_image};

/// A sync at debug level, with no proxy, cloud or AWS settings from the machine: each test
/// gives its own.
fn run_dregsy(config: &str, env: &[(String, String)]) -> Output {
    Dregsy::with_config(config)
        .env("LOG_LEVEL", "debug")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .envs(env)
        .output()
}

fn messages(out: &Output, prefix: &str) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"].as_str().is_some_and(|m| m.starts_with(prefix)))
        .collect()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A manifest push refused once with 401, as after a token expired.
fn expire_once() -> Rule {
    Rule::fail("PUT", r"^/v2/.+/manifests/.+$", 1, 401)
}

#[test]
fn ecr_like_target_gets_its_repository_and_a_renewed_token() {
    let moto = Moto::start();
    let source = Registry::start();
    push_image(&source, "library/busybox", "1.0", ImageOptions::default());
    // The ECR registry accepts exactly the token moto issues for the account.
    let target = Registry::builder()
        .basic_auth()
        .user("AWS", "123456789012-auth-token")
        .start();
    let proxy = FaultProxy::start(&target.url(), vec![expire_once()]);
    let config = format!(
        "tasks:\n- name: to-ecr\n  source:\n    registry: {}\n    skip-tls-verify: true\n  target:\n    \
         registry: http://123456789012.dkr.ecr.us-east-1.amazonaws.com\n    auth-refresh: 1h\n  \
         mappings:\n  - from: library/busybox\n    to: mirror/busybox\n    tags: ['1.0']\n",
        source.host()
    );
    // The service's own endpoint variable, as users set it, wins over the general one.
    let mut vars = aws_env("http://127.0.0.1:9");
    vars.push(("AWS_ENDPOINT_URL_ECR".into(), moto.url()));
    vars.push(("HTTP_PROXY".into(), proxy.url()));

    let out = run_dregsy(&config, &vars);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(list_tags(&target, "mirror/busybox"), ["1.0"]);
    let created = messages(&out, "creating ECR target");
    assert_eq!(created.len(), 1, "{}", text(&out));
    assert_eq!(created[0]["repository"], "mirror/busybox");
    assert_eq!(proxy.rule_hits(0), 1, "the expired-token refusal happened");
    assert_eq!(
        messages(&out, "credentials refused, renewing them").len(),
        1
    );
    assert!(
        !text(&out).contains("123456789012-auth-token"),
        "token in the logs"
    );

    // A second run finds the repository and the image.
    let out = run_dregsy(&config, &vars);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(messages(&out, "ECR target already exists").len(), 1);
    assert_eq!(
        messages(&out, "image up to date").len(),
        1,
        "{}",
        text(&out)
    );
}

#[test]
fn gar_like_target_with_a_service_account_and_short_tokens() {
    // Tokens live one second, so they are renewed during the run.
    let google = GoogleApi::start("ya29.gar-test-token", 1);
    let source = Registry::start();
    push_image(&source, "library/busybox", "1.0", ImageOptions::default());
    push_image(&source, "library/alpine", "3.20", ImageOptions::default());
    let target = Registry::builder()
        .token_auth(TokenOptions::default())
        .user("oauth2accesstoken", "ya29.gar-test-token")
        .start();
    let proxy = FaultProxy::start(&target.url(), vec![expire_once()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("service-account.json");
    std::fs::write(
        &key,
        google.key_file("sync@test-project.iam.gserviceaccount.com"),
    )
    .expect("key file");
    let config = format!(
        "tasks:\n- name: to-gar\n  source:\n    registry: {}\n    skip-tls-verify: true\n  target:\n    \
         registry: http://europe-docker.pkg.dev/test-project/mirror\n  mappings:\n  \
         - from: library/busybox\n    tags: ['1.0']\n  - from: library/alpine\n    tags: ['3.20']\n",
        source.host()
    );
    let vars = env(&[
        ("HTTP_PROXY", &proxy.url()),
        ("GOOGLE_APPLICATION_CREDENTIALS", &key.to_string_lossy()),
        ("GCE_METADATA_HOST", "127.0.0.1:9"),
    ]);
    let out = run_dregsy(&config, &vars);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        list_tags(&target, "test-project/mirror/library/busybox"),
        ["1.0"]
    );
    assert_eq!(
        list_tags(&target, "test-project/mirror/library/alpine"),
        ["3.20"]
    );
    assert_eq!(proxy.rule_hits(0), 1);
    // At least the first token and the one after the refusal.
    assert!(google.token_requests() >= 2, "{}", google.token_requests());
    assert_eq!(messages(&out, "refreshing credentials").len(), 2);
    assert!(
        !text(&out).contains("ya29.gar-test-token"),
        "token in the logs"
    );
}

#[test]
fn missing_cloud_credentials_fail_the_task_with_what_was_tried() {
    let source = Registry::start();
    push_image(&source, "library/busybox", "1.0", ImageOptions::default());
    let closed = format!("127.0.0.1:{}", support::http::free_port());
    let config = format!(
        "tasks:\n- name: to-gar\n  source:\n    registry: {src}\n    skip-tls-verify: true\n  target:\n    \
         registry: europe-docker.pkg.dev/test-project/mirror\n  mappings:\n  - from: library/busybox\n\
         - name: to-ecr\n  source:\n    registry: {src}\n    skip-tls-verify: true\n  target:\n    \
         registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com\n    auth-refresh: 1h\n  \
         mappings:\n  - from: library/busybox\n",
        src = source.host()
    );
    let mut vars = aws_env("http://127.0.0.1:9");
    vars.retain(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"));
    vars.push(("GCE_METADATA_HOST".into(), closed));
    let out = run_dregsy(&config, &vars);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = messages(&out, "mapping failed");
    assert_eq!(failed.len(), 2, "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("neither GOOGLE_APPLICATION_CREDENTIALS set, nor a GCE instance"),
        "{all}"
    );
    assert!(
        all.contains("no AWS credentials found; tried the environment"),
        "{all}"
    );
    assert!(all.contains("AWS_ACCESS_KEY_ID"), "{all}");
    assert!(all.contains("instance metadata"), "{all}");
    // The reason in a few words, not the SDK's or the HTTP client's debug dump.
    for dump in [
        "CredentialsNotLoaded",
        "source: Some(",
        "error sending request for url",
    ] {
        assert!(!all.contains(dump), "{dump} in:\n{all}");
    }
}

/// A `docker-credential-<name>` script in `dir` that answers `user`/`secret` for any server and
/// logs the server URL it read from standard input.
fn fake_cred_helper(dir: &std::path::Path, name: &str, user: &str, secret: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nserver=$(cat)\necho \"$server\" >> '{}/{name}.log'\nprintf '{{\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}'\n",
            dir.display()
        ),
    )
    .expect("helper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn ecr_and_gar_take_tokens_from_cred_helpers() {
    // `docker-credential-ecr-login` for an ECR source (its repositories need no creation) and
    // `docker-credential-gcloud` for a GAR target, with no AWS or Google credentials at all.
    let ecr = Registry::builder()
        .basic_auth()
        .user("AWS", "ecr-helper-token")
        .start();
    push_image(&ecr, "team/app", "1.0", ImageOptions::default());
    let gar = Registry::builder()
        .token_auth(TokenOptions::default())
        .user("oauth2accesstoken", "ya29.gcloud-helper-token")
        .start();
    let local = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    fake_cred_helper(&bin, "ecr-login", "AWS", "ecr-helper-token");
    fake_cred_helper(
        &bin,
        "gcloud",
        "oauth2accesstoken",
        "ya29.gcloud-helper-token",
    );
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".docker")).expect("home");
    std::fs::write(
        home.join(".docker/config.json"),
        serde_json::json!({"credHelpers": {
            "123456789012.dkr.ecr.us-east-1.amazonaws.com": "ecr-login",
            "europe-docker.pkg.dev": "gcloud",
        }})
        .to_string(),
    )
    .expect("config.json");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let home = home.display().to_string();
    let side = |registry: &str| {
        if registry.starts_with("127.") {
            format!("    registry: {registry}\n    skip-tls-verify: true\n")
        } else {
            format!("    registry: {registry}\n")
        }
    };
    let task = |source: &str, target: &str| {
        format!(
            "tasks:\n- name: helpers\n  source:\n{}  target:\n{}  mappings:\n  - from: team/app\n    tags: ['1.0']\n",
            side(source),
            side(target)
        )
    };

    // The ECR source, reached through a proxy standing in for AWS's host.
    let proxy = FaultProxy::start(&ecr.url(), vec![]);
    let from_ecr = task(
        "http://123456789012.dkr.ecr.us-east-1.amazonaws.com",
        &local.host(),
    );
    let vars = env(&[
        ("HTTP_PROXY", &proxy.url()),
        ("HOME", &home),
        ("PATH", &path),
    ]);
    let out = run_dregsy(&from_ecr, &vars);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(list_tags(&local, "team/app"), ["1.0"]);
    let sources = messages(&out, "credentials for http://123456789012");
    assert_eq!(
        sources[0]["source"],
        "credential helper ecr-login (credHelpers in ~/.docker/config.json)"
    );
    let asked = std::fs::read_to_string(bin.join("ecr-login.log")).expect("asked");
    assert_eq!(asked, "123456789012.dkr.ecr.us-east-1.amazonaws.com\n");

    // The GAR target: the helper, not Google's application default credentials (which would
    // fail here: no key file, no metadata server).
    let proxy = FaultProxy::start(&gar.url(), vec![]);
    let to_gar = task(
        &local.host(),
        "http://europe-docker.pkg.dev/test-project/mirror",
    );
    let vars = env(&[
        ("HTTP_PROXY", &proxy.url()),
        ("HOME", &home),
        ("PATH", &path),
        ("GCE_METADATA_HOST", "127.0.0.1:9"),
    ]);
    let out = run_dregsy(&to_gar, &vars);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(list_tags(&gar, "test-project/mirror/team/app"), ["1.0"]);
    let all = text(&out);
    assert!(
        !all.contains("ya29.gcloud-helper-token"),
        "token in the logs"
    );
    assert!(!all.contains("ecr-helper-token"), "token in the logs");
    let plan = Dregsy::with_config(&to_gar)
        .args(&["plan"])
        .envs(&vars)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output();
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert!(
        shown.contains(
            "target credentials: credential helper gcloud (credHelpers in ~/.docker/config.json)"
        ),
        "{}",
        text(&plan)
    );
}
