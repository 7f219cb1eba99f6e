//! What registries and proxies are allowed to do must not fail a copy: blob answers without
//! `Content-Length`, a slow answer to a completed upload, refused cross-repository mounts, a
//! relative `Location` (docs/behaviour.md, "HTTP: what dregsy requires of a registry, and what
//! it tolerates"). The dregsy binary against real registries, with the fault proxy in front of
//! the source or of the target; digests checked at the target, requests in the proxy's log.

mod support;

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, HeaderMap};
use support::dregsy::{assert_success, log_lines, run_dregsy, text};
use support::{
    FaultProxy, ImageOptions, ProxyRequest, Pushed, Registry, Rule, TokenOptions, auth_b64,
    blob_exists, manifest_digest, push_image, put_manifest,
};

/// A source or target block for a plain-HTTP registry (or proxy) at `host`.
fn side(host: &str, auth: Option<&str>) -> String {
    let mut block = format!("    registry: {host}\n    skip-tls-verify: true\n");
    if let Some(auth) = auth {
        block.push_str(&format!("    auth: {auth}\n"));
    }
    block
}

/// One task of a config.
fn task(name: &str, source: &str, target: &str, mappings: &str) -> String {
    format!("- name: {name}\n  source:\n{source}  target:\n{target}  mappings:\n{mappings}")
}

/// Runs one task from `source` to `target` (hosts of plain-HTTP registries or proxies, no
/// credentials) with `native` settings (indented lines).
fn sync(native: &str, source: &str, target: &str, mappings: &str) -> Output {
    let sides = (side(source, None), side(target, None));
    run_dregsy(
        &config(native, &[task("t", &sides.0, &sides.1, mappings)]),
        &[],
    )
}

/// A config with `native` settings (indented lines) and `tasks`.
fn config(native: &str, tasks: &[String]) -> String {
    format!("native:\n{native}tasks:\n{}", tasks.concat())
}

/// A small image with `layers` layers of 32 KiB.
fn image(layers: usize) -> ImageOptions {
    ImageOptions {
        layers,
        layer_size: 32 * 1024,
        ..Default::default()
    }
}

fn assert_copied(target: &Registry, repo: &str, tag: &str, image: &Pushed) {
    assert_eq!(
        manifest_digest(target, repo, tag).as_deref(),
        Some(image.digest.as_str()),
        "{repo}:{tag} at the target"
    );
    for (digest, _) in &image.blobs {
        assert!(blob_exists(target, repo, digest), "{repo} holds {digest}");
    }
}

/// How often each blob was committed into `repo` (`PUT …/blobs/uploads/…?digest=`).
fn commits(requests: &[ProxyRequest], repo: &str) -> BTreeMap<String, usize> {
    let prefix = format!("/v2/{repo}/blobs/uploads/");
    let mut counts = BTreeMap::new();
    for request in requests {
        if request.method != "PUT" || !request.path.starts_with(&prefix) {
            continue;
        }
        if let Some((_, digest)) = request.path.split_once("digest=") {
            let digest = digest.split('&').next().unwrap_or_default();
            *counts.entry(digest.replace("%3A", ":")).or_default() += 1;
        }
    }
    counts
}

/// How often each blob of `repo` was asked for with `method` (GET or HEAD).
fn blob_requests(requests: &[ProxyRequest], method: &str, repo: &str) -> BTreeMap<String, usize> {
    let prefix = format!("/v2/{repo}/blobs/sha256:");
    let mut counts = BTreeMap::new();
    for request in requests {
        if request.method == method && request.path.starts_with(&prefix) {
            let digest = request
                .path
                .trim_start_matches(&format!("/v2/{repo}/blobs/"));
            *counts.entry(digest.to_string()).or_default() += 1;
        }
    }
    counts
}

/// Every blob of `images` once.
fn once_each(images: &[&Pushed]) -> BTreeMap<String, usize> {
    images
        .iter()
        .flat_map(|image| image.blobs.iter().map(|(digest, _)| (digest.clone(), 1)))
        .collect()
}

/// The headers of an answer through the proxy, to check that a fault is what the test says.
fn answer_headers(method: Method, url: String) -> HeaderMap {
    support::http::block_on(async move {
        let response = support::http::client(&Default::default())
            .request(method, &url)
            .send()
            .await
            .expect("request through the proxy");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        let headers = response.headers().clone();
        let _ = response.bytes().await;
        headers
    })
}

/// The messages of the run's failed images.
fn failures(out: &Output) -> Vec<String> {
    log_lines(out, "image failed")
        .iter()
        .map(|line| line["msg"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_source_sending_blobs_chunked_without_content_length_is_copied() {
    let source = Registry::start();
    let target = Registry::start();
    let pushed = push_image(&source, "chunked/app", "1", image(2));
    let proxy = FaultProxy::start(&source.url(), vec![Rule::no_content_length("")]);
    let layer = &pushed.blobs[1].0;
    let headers = answer_headers(
        Method::GET,
        format!("{}/v2/chunked/app/blobs/{layer}", proxy.url()),
    );
    assert!(!headers.contains_key(CONTENT_LENGTH), "{headers:?}");
    assert_eq!(
        headers
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("chunked")
    );
    proxy.clear_requests();

    let out = sync(
        "  tries: 1\n",
        &proxy.host(),
        &target.host(),
        "  - from: chunked/app\n",
    );
    assert_success(&out);
    assert_copied(&target, "chunked/app", "1", &pushed);
    assert_eq!(
        blob_requests(&proxy.requests(), "GET", "chunked/app"),
        once_each(&[&pushed]),
        "each blob downloaded once"
    );
}

#[test]
fn a_target_answering_blob_heads_without_content_length_is_not_sent_what_it_holds() {
    let source = Registry::start();
    let target = Registry::start();
    let same = ImageOptions {
        seed: Some(18),
        ..image(2)
    };
    let pushed = push_image(&source, "held/app", "1", same.clone());
    // The target holds every blob already (under another tag); a new image needs uploads.
    push_image(&target, "held/app", "old", same);
    let fresh = push_image(&source, "held/new", "1", image(1));
    let proxy = FaultProxy::start(&target.url(), vec![Rule::no_content_length("")]);
    let headers = answer_headers(
        Method::HEAD,
        format!("{}/v2/held/app/blobs/{}", proxy.url(), pushed.blobs[1].0),
    );
    assert!(!headers.contains_key(CONTENT_LENGTH), "{headers:?}");
    proxy.clear_requests();

    let out = sync(
        "  tries: 1\n",
        &source.host(),
        &proxy.host(),
        "  - from: held/app\n  - from: held/new\n",
    );
    assert_success(&out);
    assert_copied(&target, "held/app", "1", &pushed);
    assert_copied(&target, "held/new", "1", &fresh);
    let requests = proxy.requests();
    assert!(
        commits(&requests, "held/app").is_empty(),
        "present blobs are not sent: {requests:?}"
    );
    assert_eq!(commits(&requests, "held/new"), once_each(&[&fresh]));
}

#[test]
fn a_slow_answer_to_a_completed_upload_is_waited_for_within_the_commit_limit() {
    let source = Registry::start();
    let target = Registry::start();
    let pushed = push_image(&source, "slow/app", "1", image(2));
    // The answer takes longer than the stall limit, but bytes are not what is missing: the
    // registry is moving the blob into place.
    let proxy = FaultProxy::start(
        &target.url(),
        vec![Rule::delay_answer(
            "PUT",
            r"^/v2/slow/app/blobs/uploads/.*digest=",
            Duration::from_secs(2),
        )],
    );
    let out = sync(
        "  tries: 1\n  stall-timeout: 1s\n  commit-timeout: 30s\n",
        &source.host(),
        &proxy.host(),
        "  - from: slow/app\n",
    );
    assert_success(&out);
    assert_copied(&target, "slow/app", "1", &pushed);
    assert_eq!(proxy.rule_hits(0), pushed.blobs.len());
    assert_eq!(
        commits(&proxy.requests(), "slow/app"),
        once_each(&[&pushed])
    );
}

#[test]
fn an_upload_answered_after_the_commit_limit_is_not_sent_again_once_stored() {
    let source = Registry::start();
    let target = Registry::start();
    let pushed = push_image(&source, "late/app", "1", image(2));
    // The registry stores each blob, but answers after the configured limit.
    let proxy = FaultProxy::start(
        &target.url(),
        vec![Rule::delay_answer(
            "PUT",
            r"^/v2/late/app/blobs/uploads/.*digest=",
            Duration::from_secs(4),
        )],
    );
    let out = sync(
        "  tries: 3\n  commit-timeout: 1s\n",
        &source.host(),
        &proxy.host(),
        "  - from: late/app\n",
    );
    assert_success(&out);
    assert_copied(&target, "late/app", "1", &pushed);
    let requests = proxy.requests();
    assert_eq!(
        commits(&requests, "late/app"),
        once_each(&[&pushed]),
        "no blob sent twice: {requests:?}"
    );
    // Each blob: the HEAD before the upload, and the HEAD that found it stored after all.
    let heads = blob_requests(&requests, "HEAD", "late/app");
    for (digest, _) in &pushed.blobs {
        assert_eq!(heads.get(digest), Some(&2), "{digest}: {requests:?}");
    }
}

#[test]
fn a_registry_that_never_answers_an_upload_fails_that_image_after_the_commit_limit() {
    let source = Registry::start();
    let target = Registry::start();
    let hang = push_image(&source, "hang/app", "1", image(1));
    let fine = push_image(&source, "fine/app", "1", image(1));
    let proxy = FaultProxy::start(
        &target.url(),
        vec![Rule::never_answer(
            "PUT",
            r"^/v2/hang/app/blobs/uploads/.*digest=",
        )],
    );
    let out = sync(
        "  tries: 2\n  commit-timeout: 1s\n",
        &source.host(),
        &proxy.host(),
        "  - from: hang/app\n  - from: fine/app\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = failures(&out);
    assert_eq!(failed.len(), 1, "{}", text(&out));
    let message = &failed[0];
    let named = hang
        .blobs
        .iter()
        .find(|(digest, _)| message.contains(digest.as_str()));
    let Some((_, size)) = named else {
        panic!("the message names the blob: {message}");
    };
    assert!(
        message.contains(&format!("{size} bytes")) && message.contains("within 1s"),
        "the message names the size and the limit: {message}"
    );
    assert_eq!(
        manifest_digest(&target, "hang/app", "1"),
        None,
        "nothing pushed"
    );
    assert_copied(&target, "fine/app", "1", &fine);
    let sent = commits(&proxy.requests(), "hang/app");
    assert!(
        sent.values().all(|n| *n <= 2) && sent.values().any(|n| *n == 2),
        "at most two tries per blob: {sent:?}"
    );
}

/// Two images of one repository copied to another repository of the same registry, through a
/// proxy that refuses every mount with `status` (an HTML page when `html`): each blob is
/// uploaded once, and the pair is not asked again once refused.
fn refused_mounts(status: u16, html: bool) {
    let registry = Registry::start();
    let one = push_image(&registry, "origin/app", "1", image(2));
    let two = push_image(&registry, "origin/app", "2", image(2));
    let mut refusal = Rule::fail("POST", "mount=", 1000, status);
    if html {
        refusal = refusal.html();
    }
    let proxy = FaultProxy::start(&registry.url(), vec![refusal]);
    let out = sync(
        "  parallel-images: 1\n  tries: 1\n",
        &proxy.host(),
        &proxy.host(),
        "  - from: origin/app\n    to: copy/app\n",
    );
    assert_success(&out);
    assert_copied(&registry, "copy/app", "1", &one);
    assert_copied(&registry, "copy/app", "2", &two);
    let requests = proxy.requests();
    let mounts = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("mount="))
        .count();
    assert!(
        (1..=one.blobs.len()).contains(&mounts),
        "asked for the first image's blobs at most, never again: {mounts} mounts"
    );
    assert_eq!(commits(&requests, "copy/app"), once_each(&[&one, &two]));
    assert!(
        !text(&out).contains("<html"),
        "a refused mount is no error to show"
    );
}

#[test]
fn a_mount_refused_with_401_falls_back_to_an_upload() {
    refused_mounts(401, false);
}

#[test]
fn a_mount_refused_with_an_html_403_page_falls_back_to_an_upload() {
    refused_mounts(403, true);
}

#[test]
fn a_mount_answered_404_falls_back_to_an_upload() {
    refused_mounts(404, false);
}

#[test]
fn mounts_come_only_from_repositories_the_target_credentials_may_read() {
    let source = Registry::start();
    let target = Registry::builder()
        .token_auth(TokenOptions::default())
        .user("alice", "alice-pw")
        .user("bob", "bob-pw")
        .permission("alice", "teama/*", &["pull", "push"])
        .permission("bob", "teamb/*", &["pull", "push"])
        .access_log()
        .start();
    let pushed = push_image(&source, "app", "1", image(2));
    let alice = auth_b64("alice", "alice-pw");
    let bob = auth_b64("bob", "bob-pw");
    let tasks = [
        task(
            "team-a",
            &side(&source.host(), None),
            &side(&target.host(), Some(&alice)),
            "  - from: app\n    to: teama/app\n",
        ),
        // The blobs are known to be in teama/app, which bob may not read.
        task(
            "team-b",
            &side(&source.host(), None),
            &side(&target.host(), Some(&bob)),
            "  - from: app\n    to: teamb/app\n",
        ),
        // Source and target are one registry, but with alice's and bob's credentials.
        task(
            "a-to-b",
            &side(&target.host(), Some(&alice)),
            &side(&target.host(), Some(&bob)),
            "  - from: teama/app\n    to: teamb/copy\n",
        ),
    ];
    let out = run_dregsy(&config("  tries: 1\n", &tasks), &[]);
    assert_success(&out);
    for repo in ["teama/app", "teamb/app", "teamb/copy"] {
        assert_eq!(
            manifest_digest(&target, repo, "1").as_deref(),
            Some(pushed.digest.as_str()),
            "{repo}"
        );
    }
    let requests = target.requests();
    let from_team_a: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("from=teama"))
        .collect();
    assert!(from_team_a.is_empty(), "{from_team_a:?}");
    let refused: Vec<_> = requests
        .iter()
        .filter(|r| r.path.contains("mount=") && r.status >= 400)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    let uploads = |repo: &str| {
        requests
            .iter()
            .filter(|r| {
                r.method == "PUT"
                    && r.path.starts_with(&format!("/v2/{repo}/blobs/uploads/"))
                    && r.status == 201
            })
            .count()
    };
    assert_eq!(uploads("teamb/app"), pushed.blobs.len(), "{requests:?}");
}

#[test]
fn uploads_follow_relative_locations_in_chunks() {
    let source = Registry::start();
    let target = Registry::start();
    let pushed = push_image(&source, "relative/app", "1", image(2));
    // Relative `Location`s on every upload answer, and chunks demanded (each blob here fits in
    // one), so the PATCH and the final PUT go to relative Locations too.
    let proxy = FaultProxy::start(
        &target.url(),
        vec![
            Rule::relative_location("/blobs/uploads/"),
            Rule::header("/blobs/uploads/", "OCI-Chunk-Min-Length", "8192"),
        ],
    );
    let out = sync(
        "  tries: 1\n",
        &source.host(),
        &proxy.host(),
        "  - from: relative/app\n",
    );
    assert_success(&out);
    assert_copied(&target, "relative/app", "1", &pushed);
    assert!(
        proxy.rule_hits(0) > pushed.blobs.len(),
        "relative Locations sent"
    );
    let patches = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(patches, pushed.blobs.len(), "uploaded in chunks");
}

/// Pushes an image to `repo` under `tag`, with its first layer's descriptor giving `delta`
/// more bytes than the blob has. Returns the layer's digest and its true size.
fn lying_image(registry: &Registry, repo: &str, tag: &str, delta: i64) -> (String, u64) {
    let honest = push_image(registry, repo, &format!("{tag}-honest"), image(1));
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&honest.manifest).expect("manifest JSON");
    let size = manifest["layers"][0]["size"].as_i64().expect("layer size");
    manifest["layers"][0]["size"] = serde_json::Value::from(size + delta);
    let bytes = serde_json::to_vec(&manifest).expect("serialize");
    put_manifest(registry, repo, tag, &honest.media_type, &bytes);
    honest.blobs[1].clone()
}

#[test]
fn a_blob_longer_or_shorter_than_its_descriptor_fails_that_image_and_the_run_goes_on() {
    let source = Registry::start();
    let target = Registry::start();
    let good = push_image(&source, "sizes/app", "good", image(1));
    let short = lying_image(&source, "sizes/app", "short", 100);
    let long = lying_image(&source, "sizes/app", "long", -100);
    // Through a proxy that sends blobs chunked, and directly (with a Content-Length that
    // contradicts the descriptor).
    let proxy = FaultProxy::start(&source.url(), vec![Rule::no_content_length("")]);
    for (name, host) in [("chunked", proxy.host()), ("direct", source.host())] {
        let repo = format!("{name}/app");
        let mappings =
            format!("  - from: sizes/app\n    to: {repo}\n    tags: ['good', 'short', 'long']\n");
        let out = sync("  tries: 2\n", &host, &target.host(), &mappings);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let failed = failures(&out);
        assert_eq!(failed.len(), 2, "{name}: {}", text(&out));
        for ((digest, size), delta) in [(&short, 100), (&long, -100)] {
            let declared = (*size as i64 + delta).to_string();
            assert!(
                failed
                    .iter()
                    .any(|m| m.contains(digest.as_str()) && m.contains(&declared)),
                "{name}: a message names {digest} and its declared size {declared}: {failed:?}"
            );
            assert!(!blob_exists(&target, &repo, digest), "{name}: {digest}");
        }
        assert_eq!(manifest_digest(&target, &repo, "short"), None, "{name}");
        assert_eq!(manifest_digest(&target, &repo, "long"), None, "{name}");
        assert_eq!(
            manifest_digest(&target, &repo, "good").as_deref(),
            Some(good.digest.as_str()),
            "{name}: the run goes on"
        );
    }
}

#[test]
fn native_retries_is_read_as_tries_with_a_notice() {
    let source = Registry::start();
    let target = Registry::start();
    let pushed = push_image(&source, "alias/app", "1", image(1));
    let proxy = FaultProxy::start(
        &source.url(),
        vec![Rule::fail("GET", "^/v2/alias/app/blobs/", 2, 503)],
    );
    let out = sync(
        "  retries: 3\n",
        &proxy.host(),
        &target.host(),
        "  - from: alias/app\n",
    );
    assert_success(&out);
    assert!(
        text(&out).contains("'native.retries' on line 2 is the old name of 'native.tries'"),
        "{}",
        text(&out)
    );
    assert_copied(&target, "alias/app", "1", &pushed);
    // Three tries of a blob in all, the transfer's and the transport's together: the blob that
    // failed twice was fetched a third time, and no blob more often.
    let gets = blob_requests(&proxy.requests(), "GET", "alias/app");
    assert!(gets.values().all(|n| *n <= 3), "{gets:?}");
    assert_eq!(
        gets.values().sum::<usize>(),
        pushed.blobs.len() + 2,
        "{gets:?}"
    );
}

#[test]
fn a_blob_that_keeps_failing_costs_at_most_its_tries_in_all() {
    let source = Registry::start();
    let target = Registry::start();
    let pushed = push_image(&source, "failing/app", "1", image(1));
    let layer = pushed.blobs[1].0.clone();
    // The first answers of the layer fail with 503 and the next ones break off mid-body: the
    // transport's retries and the transfer's draw from one budget of three tries.
    let proxy = FaultProxy::start(
        &source.url(),
        vec![
            Rule::fail("GET", &format!("^/v2/failing/app/blobs/{layer}$"), 2, 503),
            Rule::cut_after(&format!("^/v2/failing/app/blobs/{layer}$"), 1000),
        ],
    );
    let out = sync(
        "  tries: 3\n",
        &proxy.host(),
        &target.host(),
        "  - from: failing/app\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(manifest_digest(&target, "failing/app", "1"), None);
    let gets = blob_requests(&proxy.requests(), "GET", "failing/app");
    assert_eq!(gets.get(&layer), Some(&3), "three tries in all: {gets:?}");
}

#[test]
fn a_stalled_download_is_abandoned_after_the_stall_limit_and_tried_again() {
    let source = Registry::start();
    let target = Registry::start();
    let pushed = push_image(&source, "stall/app", "1", image(1));
    let layer = pushed.blobs[1].0.clone();
    // The first answer for the layer stops after 1000 bytes and stays open.
    let proxy = FaultProxy::start(
        &source.url(),
        vec![Rule::stall_after(&format!("^/v2/stall/app/blobs/{layer}$"), 1000).times(1)],
    );
    let out = sync(
        "  tries: 2\n  stall-timeout: 1s\n",
        &proxy.host(),
        &target.host(),
        "  - from: stall/app\n",
    );
    assert_success(&out);
    assert_copied(&target, "stall/app", "1", &pushed);
    assert_eq!(proxy.rule_hits(0), 1);
    let gets = blob_requests(&proxy.requests(), "GET", "stall/app");
    assert_eq!(gets.get(&layer), Some(&2), "{gets:?}");
}

#[test]
fn an_html_error_page_on_uploads_fails_that_image_with_a_clear_message() {
    let source = Registry::start();
    let target = Registry::start();
    let pushed = push_image(&source, "page/app", "1", image(1));
    let proxy = FaultProxy::start(
        &target.url(),
        vec![Rule::fail("POST", "^/v2/page/bad/blobs/uploads/", 1000, 403).html()],
    );
    let out = sync(
        "  tries: 1\n",
        &source.host(),
        &proxy.host(),
        "  - from: page/app\n    to: page/bad\n  - from: page/app\n    to: page/good\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = failures(&out);
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert!(
        failed[0].contains("page/bad") && failed[0].contains("access denied"),
        "{}",
        failed[0]
    );
    assert!(
        !failed[0].contains('<'),
        "no HTML in the message: {}",
        failed[0]
    );
    assert_eq!(manifest_digest(&target, "page/bad", "1"), None);
    assert_copied(&target, "page/good", "1", &pushed);
}
