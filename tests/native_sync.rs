//! End-to-end syncs with the native relay: the dregsy binary against real registries
//! (CNCF Distribution) started by the harness, checked with an independent client and skopeo.

mod support;

use std::process::{Command, Output};

use support::dregsy::{assert_success, log_lines, run_dregsy, text};
use support::{
    FaultProxy, Format, ImageOptions, Registry, Rule, TokenOptions, blob_exists, get_manifest,
    list_tags, manifest_digest, push_image, push_index, tag,
};

/// A location block for a harness registry: plain HTTP ones need skip-tls-verify, TLS ones
/// are trusted through the certs dir, authenticated ones get the admin's credentials.
fn location(registry: &Registry, with_auth: bool) -> String {
    let mut block = format!("    registry: {}\n", registry.host());
    if !registry.is_tls() {
        block.push_str("    skip-tls-verify: true\n");
    }
    if with_auth {
        block.push_str(&format!("    auth: {}\n", registry.admin_auth_b64()));
    }
    block
}

fn config(source: &Registry, target: &Registry, auth: bool, mappings: &str) -> String {
    let certs = if target.is_tls() {
        target.certs_dir()
    } else {
        source.certs_dir()
    };
    format!(
        "skopeo:\n  certs-dir: {}\nnative:\n  tries: 3\ntasks:\n- name: test\n  source:\n{}  target:\n{}  mappings:\n{mappings}",
        certs.display(),
        location(source, auth),
        location(target, auth),
    )
}

/// A one-task config whose source is a fault proxy in front of a plain-HTTP registry.
fn via_proxy(settings: &str, proxy: &FaultProxy, target: &Registry, from: &str) -> String {
    format!(
        "{settings}tasks:\n- name: proxied\n  source:\n    registry: {}\n    skip-tls-verify: true\n  target:\n{}  mappings:\n  - from: {from}\n",
        proxy.host(),
        location(target, false)
    )
}

/// The message of the run's only failed image (the run must have exactly one).
fn the_one_failure(out: &Output) -> String {
    let failed = log_lines(out, "image failed");
    assert_eq!(failed.len(), 1, "{}", text(out));
    failed[0]["msg"].as_str().unwrap_or_default().to_string()
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed (apt-get install -y skopeo, or run .ci/run)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn copies_single_and_multi_platform_images_and_a_second_run_copies_nothing() {
    let source = Registry::start();
    let target = Registry::builder().access_log().start();
    let image = push_image(
        &source,
        "app/single",
        "1.0",
        ImageOptions {
            layers: 3,
            ..Default::default()
        },
    );
    tag(&source, "app/single", "1.0", &["1.1", "latest"]);
    let index = push_index(
        &source,
        "app/multi",
        "2.0",
        &["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
        Format::Oci,
    );
    let list = push_index(
        &source,
        "app/list",
        "3.0",
        &["linux/amd64", "linux/arm64/v8"],
        Format::Docker,
    );

    let mappings = "  - from: app/single
    to: mirror/single
  - from: app/multi
    to: mirror/multi-all
    platform: all
  - from: app/multi
    to: mirror/multi-arm
    tags: ['2.0']
    platform: linux/arm/v7
  - from: app/list
    to: mirror/list
    platform: all
";
    let cfg = config(&source, &target, false, mappings);
    let out = run_dregsy(&cfg, &[]);
    assert_success(&out);
    assert_eq!(log_lines(&out, "image copied").len(), 6, "{}", text(&out));

    // Every tag, digest-identical.
    assert_eq!(
        list_tags(&target, "mirror/single"),
        ["1.0", "1.1", "latest"]
    );
    for t in ["1.0", "1.1", "latest"] {
        assert_eq!(
            manifest_digest(&target, "mirror/single", t).as_deref(),
            Some(image.digest.as_str())
        );
    }
    for (_, blob_size) in &image.blobs {
        assert!(*blob_size > 0);
    }
    for (digest, _) in &image.blobs {
        assert!(
            blob_exists(&target, "mirror/single", digest),
            "blob {digest}"
        );
    }
    // platform: all keeps the index digest, for an OCI index and a Docker manifest list.
    assert_eq!(
        manifest_digest(&target, "mirror/multi-all", "2.0").as_deref(),
        Some(index.digest.as_str())
    );
    assert_eq!(
        manifest_digest(&target, "mirror/list", "3.0").as_deref(),
        Some(list.digest.as_str())
    );
    let copied_list = get_manifest(&target, "mirror/list", "3.0").expect("list");
    assert_eq!(
        copied_list.bytes, list.manifest,
        "byte-identical manifest list"
    );
    // One platform: the right child, as skopeo sees it.
    let arm = index
        .children
        .iter()
        .find(|(p, _)| p == "linux/arm/v7")
        .map(|(_, d)| d.clone())
        .expect("arm child");
    assert_eq!(
        manifest_digest(&target, "mirror/multi-arm", "2.0"),
        Some(arm)
    );
    let seen = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--override-arch=amd64",
        "--format={{.Os}}/{{.Architecture}}",
        &format!("docker://{}/mirror/multi-arm:2.0", target.host()),
    ]);
    assert_eq!(seen, "linux/arm");
    for platform in ["amd64", "arm64"] {
        let seen = skopeo(&[
            "inspect",
            "--tls-verify=false",
            &format!("--override-arch={platform}"),
            "--format={{.Architecture}}",
            &format!("docker://{}/mirror/multi-all:2.0", target.host()),
        ]);
        assert_eq!(seen, platform);
    }

    // The second run: nothing to do, and the target sees no write and no manifest GET.
    target.clear_requests();
    let out = run_dregsy(&cfg, &[]);
    assert_success(&out);
    assert_eq!(log_lines(&out, "image copied").len(), 0, "{}", text(&out));
    assert_eq!(
        log_lines(&out, "image up to date").len(),
        6,
        "{}",
        text(&out)
    );
    let requests = target.requests();
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| matches!(r.method.as_str(), "PUT" | "POST" | "PATCH" | "DELETE"))
        .collect();
    assert!(writes.is_empty(), "no writes on a no-op run: {writes:?}");
    let manifest_gets: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/manifests/"))
        .collect();
    assert!(
        manifest_gets.is_empty(),
        "no manifest GET on a no-op run: {manifest_gets:?}"
    );
    let manifest_heads = requests
        .iter()
        .filter(|r| r.method == "HEAD" && r.path.contains("/manifests/"))
        .count();
    assert_eq!(manifest_heads, 6, "one HEAD per tag: {requests:?}");
}

#[test]
fn syncs_through_basic_token_tls_and_mtls_registries() {
    let modes: Vec<(&str, Registry)> = vec![
        ("basic", Registry::builder().basic_auth().start()),
        (
            "token",
            Registry::builder()
                .token_auth(TokenOptions::default())
                .start(),
        ),
        ("tls", Registry::builder().tls().start()),
        ("mtls", Registry::builder().mtls().basic_auth().start()),
    ];
    let source = Registry::builder()
        .token_auth(TokenOptions::default())
        .start();
    let image = push_image(
        &source,
        "lib/app",
        "1",
        ImageOptions {
            layers: 2,
            ..Default::default()
        },
    );
    for (name, target) in &modes {
        let out = run_dregsy(
            &format!(
                "skopeo:\n  certs-dir: {}\ntasks:\n- name: {name}\n  source:\n{}  target:\n{}  mappings:\n  - from: lib/app\n",
                target.certs_dir().display(),
                location(&source, true),
                location(target, true),
            ),
            &[],
        );
        assert_success(&out);
        assert_eq!(
            manifest_digest(target, "lib/app", "1").as_deref(),
            Some(image.digest.as_str()),
            "{name}"
        );
    }
}

#[test]
fn digest_pinned_tags_keep_their_digests() {
    let source = Registry::start();
    let target = Registry::start();
    let index = push_index(
        &source,
        "pin/app",
        "1.0",
        &["linux/amd64", "linux/arm64/v8"],
        Format::Oci,
    );
    let single = push_image(&source, "pin/app", "solo", ImageOptions::default());
    let mappings = format!(
        "  - from: pin/app\n    tags: ['{}', 'renamed@{}']\n    platform: linux/arm64\n",
        index.digest, single.digest
    );
    let out = run_dregsy(&config(&source, &target, false, &mappings), &[]);
    assert_success(&out);
    // A digest-only tag is pushed by digest (untagged) and keeps its digest, whatever the platform.
    assert_eq!(
        manifest_digest(&target, "pin/app", &index.digest).as_deref(),
        Some(index.digest.as_str())
    );
    // name@digest pulls the digest and pushes under the name.
    assert_eq!(list_tags(&target, "pin/app"), ["renamed"]);
    assert_eq!(
        manifest_digest(&target, "pin/app", "renamed").as_deref(),
        Some(single.digest.as_str())
    );
}

#[test]
fn a_copy_within_one_registry_mounts_instead_of_uploading() {
    let registry = Registry::builder().access_log().start();
    let image = push_image(
        &registry,
        "origin/app",
        "1",
        ImageOptions {
            layers: 3,
            ..Default::default()
        },
    );
    registry.clear_requests();
    let out = run_dregsy(
        &config(
            &registry,
            &registry,
            false,
            "  - from: origin/app\n    to: copy/app\n",
        ),
        &[],
    );
    assert_success(&out);
    assert_eq!(
        manifest_digest(&registry, "copy/app", "1").as_deref(),
        Some(image.digest.as_str())
    );
    let requests = registry.requests();
    let uploads: Vec<_> = requests
        .iter()
        .filter(|r| r.path.contains("/blobs/uploads/") && !r.path.contains("mount="))
        .collect();
    assert!(
        uploads.is_empty(),
        "no blob upload, only mounts: {uploads:?}"
    );
    let mounts = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("mount=") && r.status == 201)
        .count();
    assert_eq!(mounts, image.blobs.len(), "{requests:?}");
}

#[test]
fn a_blob_shared_by_several_images_is_transferred_once() {
    let source = Registry::start();
    let target = Registry::builder().access_log().start();
    let options = || ImageOptions {
        layers: 2,
        layer_size: 64 * 1024,
        seed: Some(7),
        ..Default::default()
    };
    let a = push_image(&source, "shared/a", "1", options());
    let b = push_image(&source, "shared/b", "1", options());
    assert_eq!(a.digest, b.digest, "same seed, same image");
    let out = run_dregsy(
        &config(
            &source,
            &target,
            false,
            "  - from: shared/a\n  - from: shared/b\n",
        ),
        &[],
    );
    assert_success(&out);
    let uploads = target
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"))
        .count();
    assert_eq!(uploads, a.blobs.len(), "each distinct blob uploaded once");
    assert!(blob_exists(&target, "shared/b", &a.blobs[1].0));
}

#[test]
fn transient_503s_are_retried() {
    let source = Registry::start();
    let target = Registry::start();
    let image = push_image(&source, "flaky/app", "1", ImageOptions::default());
    let proxy = FaultProxy::start(
        &source.url(),
        vec![
            Rule::fail("HEAD", "/manifests/", 2, 503),
            Rule::fail("GET", "/blobs/", 2, 503).retry_after(1),
        ],
    );
    let cfg = via_proxy("", &proxy, &target, "flaky/app");
    let out = run_dregsy(&cfg, &[]);
    assert_success(&out);
    assert_eq!(proxy.rule_hits(0), 2);
    assert_eq!(proxy.rule_hits(1), 2);
    assert_eq!(
        manifest_digest(&target, "flaky/app", "1").as_deref(),
        Some(image.digest.as_str())
    );
}

#[test]
fn up_to_date_checks_do_not_wait_for_the_copy_slots() {
    // One copy slot, taken by a slow copy: the up-to-date image of the next mapping is still
    // checked (and reported) while that copy runs, not after it.
    let source = Registry::start();
    let target = Registry::start();
    push_image(
        &source,
        "slow/app",
        "1",
        ImageOptions {
            layers: 1,
            layer_size: 768 * 1024,
            ..Default::default()
        },
    );
    let same = ImageOptions {
        seed: Some(7),
        ..Default::default()
    };
    let quick = push_image(&source, "quick/app", "1", same.clone());
    assert_eq!(
        push_image(&target, "quick/app", "1", same).digest,
        quick.digest,
        "the target already holds the quick image"
    );
    let proxy = FaultProxy::start(
        &source.url(),
        vec![Rule::throttle(r"^/v2/slow/app/blobs/", 384 * 1024)],
    );
    let cfg = format!(
        "{}  - from: quick/app\n",
        via_proxy(
            "native:\n  parallel-images: 1\n",
            &proxy,
            &target,
            "slow/app"
        )
    );
    let out = run_dregsy(&cfg, &[]);
    assert_success(&out);
    let order: Vec<String> = log_lines(&out, "image ")
        .iter()
        .map(|line| {
            format!(
                "{} {}",
                line["msg"].as_str().unwrap_or_default(),
                line["source"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(order.len(), 2, "{order:?}");
    assert!(
        order[0].starts_with("image up to date") && order[0].ends_with("quick/app:1"),
        "the quick check is reported first: {order:?}"
    );
    assert!(
        order[1].starts_with("image copied") && order[1].ends_with("slow/app:1"),
        "{order:?}"
    );
}

#[test]
fn a_blob_whose_bytes_do_not_match_its_digest_is_rejected() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(
        &source,
        "bad/app",
        "1",
        ImageOptions {
            layer_size: 32 * 1024,
            ..Default::default()
        },
    );
    let proxy = FaultProxy::start(&source.url(), vec![Rule::corrupt("/blobs/sha256:")]);
    let cfg = via_proxy("native:\n  tries: 1\n", &proxy, &target, "bad/app");
    let out = run_dregsy(&cfg, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = the_one_failure(&out);
    assert!(msg.contains("digest"), "{msg}");
    assert_eq!(
        manifest_digest(&target, "bad/app", "1"),
        None,
        "nothing pushed"
    );
}

#[test]
fn an_interrupted_copy_leaves_no_broken_tag_and_the_next_run_completes_it() {
    let source = Registry::start();
    let target = Registry::start();
    let image = push_image(
        &source,
        "big/app",
        "1",
        ImageOptions {
            layers: 2,
            layer_size: 4 * 1024 * 1024,
            ..Default::default()
        },
    );
    // Slow blob downloads so the copy is certainly mid-blob when it is killed.
    let proxy = FaultProxy::start(
        &source.url(),
        vec![Rule::throttle("/blobs/sha256:", 1024 * 1024)],
    );
    let cfg = via_proxy("", &proxy, &target, "big/app");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, &cfg).expect("write");
    let mut child = support::dregsy::without_user_credentials(
        &mut Command::new(env!("CARGO_BIN_EXE_dregsy")),
        dir.path(),
    )
    .arg(format!("-config={}", path.display()))
    .env("LOG_FORMAT", "json")
    .env("XDG_CACHE_HOME", dir.path().join("cache"))
    .stdout(std::process::Stdio::null())
    .spawn()
    .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert_eq!(
        manifest_digest(&target, "big/app", "1"),
        None,
        "no tag before its blobs"
    );

    let cfg = format!(
        "tasks:\n- name: resume\n  source:\n{}  target:\n{}  mappings:\n  - from: big/app\n",
        location(&source, false),
        location(&target, false)
    );
    let out = run_dregsy(&cfg, &[]);
    assert_success(&out);
    assert_eq!(
        manifest_digest(&target, "big/app", "1").as_deref(),
        Some(image.digest.as_str())
    );
}

#[test]
fn failures_name_the_image_and_the_run_goes_on() {
    let source = Registry::builder().basic_auth().start();
    let target = Registry::start();
    let good = push_image(&source, "ok/app", "1", ImageOptions::default());
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let cfg = format!(
        "native:\n  tries: 1\ntasks:\n\
- name: good-and-bad\n  source:\n{src}  target:\n{dst}  mappings:\n  - from: ok/app\n  - from: ok/app\n    tags: ['missing']\n  - from: ok/app\n    to: 'Invalid/Name'\n\
- name: unreachable\n  source:\n    registry: 127.0.0.1:{closed_port}\n    skip-tls-verify: true\n  target:\n{dst}  mappings:\n  - from: x/y\n    tags: ['1']\n\
- name: wrong-password\n  source:\n    registry: {src_host}\n    skip-tls-verify: true\n    auth: {wrong}\n  target:\n{dst}  mappings:\n  - from: ok/app\n    tags: ['1']\n",
        src = location(&source, true),
        dst = location(&target, false),
        src_host = source.host(),
        wrong = source.auth_b64("admin", "not-the-password"),
    );
    let out = run_dregsy(&cfg, &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    // The good image still arrived.
    assert_eq!(
        manifest_digest(&target, "ok/app", "1").as_deref(),
        Some(good.digest.as_str())
    );
    assert!(
        all.contains("ok/app:missing"),
        "the missing tag is named: {all}"
    );
    assert!(
        all.contains("Invalid/Name"),
        "the invalid target path is named: {all}"
    );
    assert!(all.contains(&format!("127.0.0.1:{closed_port}")), "{all}");
    let wrong_creds: Vec<String> = log_lines(&out, "image failed")
        .into_iter()
        .chain(log_lines(&out, "mapping failed"))
        .filter(|v| v["task"] == "wrong-password")
        .map(|v| v["msg"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(wrong_creds.len(), 1, "{all}");
    assert!(
        wrong_creds[0].contains("(from the config's auth)"),
        "a refusal says where the credentials came from: {}",
        wrong_creds[0]
    );
    assert!(
        all.contains("one or more tasks had errors, please see log for details"),
        "{all}"
    );
    assert!(!all.contains("not-the-password"), "no secret in the output");
}

#[test]
fn an_unknown_host_fails_the_image_with_a_clear_message() {
    // dregsy runs in a network namespace of its own: no interface, no route to any name
    // server, so the name cannot resolve and no query leaves this machine.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "native:\n  tries: 1\ntasks:\n- name: nowhere\n  source:\n    registry: no-such-registry.invalid:5000\n  target:\n    registry: 127.0.0.1:9\n    skip-tls-verify: true\n  mappings:\n  - from: lib/app\n    tags: ['1']\n  - from: lib/other\n    tags: ['2']\n",
    )
    .expect("write config");
    let out = support::dregsy::without_user_credentials(&mut Command::new("unshare"), dir.path())
        .args(["--net", "--"])
        .arg(env!("CARGO_BIN_EXE_dregsy"))
        .arg(format!("-config={}", path.display()))
        .env("LOG_FORMAT", "json")
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .env_remove("LOG_LEVEL")
        .output()
        .expect("unshare (util-linux) runs: apt-get install -y util-linux");
    let all = text(&out);
    assert!(
        !all.contains("unshare: "),
        "this test needs `unshare --net` (util-linux, as root): {all}"
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    let failed = log_lines(&out, "image failed");
    assert_eq!(failed.len(), 2, "both images fail, one by one: {all}");
    for line in &failed {
        let message = line["msg"].as_str().unwrap_or_default();
        assert!(
            message.contains("no-such-registry.invalid:5000/lib/")
                && message.contains("unknown host: the registry's name does not resolve"),
            "{message}"
        );
    }
}

#[test]
fn a_tls_failure_fails_the_image_with_a_clear_message() {
    let source = Registry::builder().tls().start();
    push_image(&source, "tls/app", "1", ImageOptions::default());
    let target = Registry::start();
    // No certs dir and no skip-tls-verify: the test CA is unknown.
    let cfg = format!(
        "native:\n  tries: 1\ntasks:\n- name: tls\n  source:\n    registry: {}\n  target:\n{}  mappings:\n  - from: tls/app\n    tags: ['1']\n",
        source.host(),
        location(&target, false)
    );
    let out = run_dregsy(&cfg, &[]);
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out).to_lowercase();
    assert!(all.contains("certificate") || all.contains("tls"), "{all}");
}

#[test]
fn secrets_never_appear_in_the_output_even_at_trace_level() {
    let source = Registry::builder()
        .basic_auth()
        .user("syncer", "S3cret-Pa55word!")
        .start();
    let target = Registry::builder()
        .token_auth(TokenOptions::default())
        .user("syncer", "S3cret-Pa55word!")
        .start();
    push_image(&source, "s/app", "1", ImageOptions::default());
    let source_auth = source.auth_b64("syncer", "S3cret-Pa55word!");
    let target_auth = target.auth_b64("syncer", "S3cret-Pa55word!");
    let cfg = format!(
        "tasks:\n- name: secret\n  verbose: true\n  source:\n    registry: {}\n    skip-tls-verify: true\n    auth: {source_auth}\n  target:\n    registry: {}\n    skip-tls-verify: true\n    auth: {target_auth}\n  mappings:\n  - from: s/app\n  - from: s/app\n    tags: ['absent']\n",
        source.host(),
        target.host()
    );
    for format in ["json", "text"] {
        let out = run_dregsy(
            &cfg,
            &[
                ("LOG_LEVEL", "trace"),
                ("LOG_FORMAT", format),
                ("LOG_METHODS", "true"),
            ],
        );
        let all = text(&out);
        assert!(all.contains("syncer"), "the username may be logged: {all}");
        assert!(!all.contains("S3cret-Pa55word!"), "password leaked:\n{all}");
        assert!(!all.contains(&source_auth), "auth value leaked:\n{all}");
        assert!(!all.contains(&target_auth), "auth value leaked:\n{all}");
        assert!(all.contains("absent"), "the failing tag is reported: {all}");
    }
}

#[test]
fn config_path_in_errors_points_at_the_file() {
    let out = run_dregsy(
        "tasks:\n- name: x\n  source: {registry: a}\n  target: {registry: b}\n  mappings:\n  - from: a\n    platform: 'linux/amd64/v1/x'\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out);
    assert!(all.contains("config.yaml"), "{all}");
    assert!(all.contains("line 6"), "{all}");
}

#[test]
fn a_manifest_over_4_mib_fails_that_image() {
    // Distribution itself refuses to store such a manifest, so a small server speaking the
    // distribution API serves one: a 5 MiB OCI index.
    use support::http::{Server, respond};
    let entry = r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1}"#;
    let mut body = String::from(
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#,
    );
    while body.len() < 5 * 1024 * 1024 {
        body.push_str(entry);
        body.push(',');
    }
    body.push_str(entry);
    body.push_str("]}");
    let digest = support::http::sha256_digest(body.as_bytes());
    let body = bytes::Bytes::from(body);
    let server = Server::start("huge-manifest", move |request| {
        let body = body.clone();
        let digest = digest.clone();
        async move {
            let path = request.uri().path().to_string();
            if path == "/v2/" {
                return respond(hyper::StatusCode::OK, "application/json", "{}");
            }
            let mut response = respond(
                hyper::StatusCode::OK,
                "application/vnd.oci.image.index.v1+json",
                if request.method() == hyper::Method::HEAD {
                    bytes::Bytes::new()
                } else {
                    body.clone()
                },
            );
            let headers = response.headers_mut();
            headers.insert("Docker-Content-Digest", digest.parse().expect("header"));
            headers.insert(
                hyper::header::CONTENT_LENGTH,
                body.len().to_string().parse().expect("header"),
            );
            response
        }
    });
    let target = Registry::start();
    let cfg = format!(
        "native:\n  tries: 1\ntasks:\n- name: huge\n  source:\n    registry: http://{}\n  target:\n{}  mappings:\n  - from: huge/app\n    tags: ['1']\n    platform: all\n",
        server.addr(),
        location(&target, false)
    );
    let out = run_dregsy(&cfg, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = the_one_failure(&out);
    assert!(msg.contains("huge/app"), "names the image: {msg}");
    assert!(
        msg.contains("4 MiB") || msg.contains("too large") || msg.contains("larger"),
        "{msg}"
    );
}
