//! Registries that are not CNCF Distribution, made from one with the fault proxy in front: a
//! manifest HEAD with a generic `Content-Type`, HEAD refused (404 as Nexus does, 403, 405)
//! while GET works, foreign (Windows-style) layers, garbage instead of manifests; and the
//! manifest cache that keeps a no-op run free of manifest GETs across runs. Each is checked on
//! the source and the target side, for the native relay, the skopeo relay's pre-check and
//! `dregsy plan`.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use support::dregsy::{Dregsy, assert_success, log_lines, run_dregsy, text};
use support::images::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use support::{
    FaultProxy, Format, ImageOptions, ProxyRequest, Registry, Rule, blob_exists, list_tags,
    manifest_digest, push_blob, push_image, push_index, put_manifest,
};

/// Every manifest path of every repository.
const MANIFESTS: &str = "/manifests/";

/// A location block for a plain-HTTP registry or proxy.
fn side(host: &str) -> String {
    format!("    registry: {host}\n    skip-tls-verify: true\n")
}

fn config(settings: &str, source: &str, target: &str, mappings: &str) -> String {
    format!(
        "{settings}tasks:\n- name: quirks\n  source:\n{}  target:\n{}  mappings:\n{mappings}",
        side(source),
        side(target)
    )
}

/// Requests of `method` to manifest paths.
fn manifest_requests<'a>(requests: &'a [ProxyRequest], method: &str) -> Vec<&'a ProxyRequest> {
    requests
        .iter()
        .filter(|r| r.method == method && r.path.contains(MANIFESTS))
        .collect()
}

fn writes(requests: &[ProxyRequest]) -> Vec<&ProxyRequest> {
    requests
        .iter()
        .filter(|r| matches!(r.method.as_str(), "PUT" | "POST" | "PATCH" | "DELETE"))
        .collect()
}

/// A run sharing the manifest cache in `cache` with other runs.
fn run_with_cache(cfg: &str, cache: &Path) -> Output {
    run_dregsy(cfg, &[("XDG_CACHE_HOME", &cache.display().to_string())])
}

fn child_of(index: &support::PushedIndex, platform: &str) -> String {
    index
        .children
        .iter()
        .find(|(p, _)| p == platform)
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| panic!("no {platform} child"))
}

#[test]
fn a_generic_content_type_on_manifest_head_still_picks_the_platform() {
    let source = Registry::start();
    let target = Registry::start();
    let platforms = ["linux/amd64", "linux/arm64/v8"];
    let json_index = push_index(&source, "multi/json", "1", &platforms, Format::Oci);
    let octet_index = push_index(&source, "multi/octet", "1", &platforms, Format::Oci);
    let bare_list = push_index(&source, "multi/none", "1", &platforms, Format::Docker);
    // An OCI index without `mediaType` (the field is optional): only its shape says "index".
    let bare_bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": json_index.images.iter().zip(&platforms).map(|(image, platform)| {
            let mut parts = platform.split('/');
            let (os, arch) = (parts.next(), parts.next());
            json!({"mediaType": image.media_type, "digest": image.digest,
                   "size": image.manifest.len(), "platform": {"os": os, "architecture": arch}})
        }).collect::<Vec<_>>(),
    }))
    .expect("index JSON");
    let bare_index = put_manifest(&source, "multi/json", "bare", OCI_INDEX, &bare_bytes);
    let single = push_image(&source, "single/json", "1", ImageOptions::default());

    let generic = |path: &str, value: Option<&str>| match value {
        Some(value) => Rule::set_header(path, "content-type", value).method("HEAD"),
        None => Rule::remove_header(path, "content-type").method("HEAD"),
    };
    let source_proxy = FaultProxy::start(
        &source.url(),
        vec![
            generic("^/v2/multi/json/manifests/", Some("application/json")),
            // GETs too: the content's own mediaType decides.
            Rule::set_header(
                "^/v2/multi/octet/manifests/",
                "content-type",
                "application/octet-stream",
            ),
            generic("^/v2/multi/none/manifests/", None),
            generic("^/v2/single/json/manifests/", Some("application/json")),
        ],
    );
    // The target answers HEAD with a generic type too: only its digest counts there.
    let target_proxy = FaultProxy::start(
        &target.url(),
        vec![Rule::set_header(MANIFESTS, "content-type", "application/json").method("HEAD")],
    );
    let mappings = "  - from: multi/json
    to: mirror/json
    platform: linux/amd64
  - from: multi/octet
    to: mirror/octet
    platform: linux/amd64
  - from: multi/none
    to: mirror/none
    platform: linux/arm64
  - from: multi/json
    to: mirror/json-all
    tags: ['1']
    platform: all
  - from: single/json
    to: mirror/single
    platform: linux/amd64
";
    let cfg = config("", &source_proxy.host(), &target_proxy.host(), mappings);
    let cache = tempfile::tempdir().expect("tempdir");
    let out = run_with_cache(&cfg, cache.path());
    assert_success(&out);
    assert_eq!(log_lines(&out, "image copied").len(), 6, "{}", text(&out));

    // The platform's manifest, as skopeo --override-arch gives, not the whole index.
    let expect = [
        ("mirror/json", "1", child_of(&json_index, "linux/amd64")),
        ("mirror/json", "bare", child_of(&json_index, "linux/amd64")),
        ("mirror/octet", "1", child_of(&octet_index, "linux/amd64")),
        ("mirror/none", "1", child_of(&bare_list, "linux/arm64/v8")),
        ("mirror/json-all", "1", json_index.digest.clone()),
        ("mirror/single", "1", single.digest.clone()),
    ];
    for (repo, tag, digest) in &expect {
        assert_eq!(
            manifest_digest(&target, repo, tag).as_deref(),
            Some(digest.as_str()),
            "{repo}:{tag}"
        );
    }
    assert_ne!(bare_index, json_index.digest);

    // The next run: everything up to date, nothing written, and (the cache knows the types
    // and the platforms' children) no manifest GET at the source.
    source_proxy.clear_requests();
    target_proxy.clear_requests();
    let out = run_with_cache(&cfg, cache.path());
    assert_success(&out);
    assert_eq!(
        log_lines(&out, "image up to date").len(),
        6,
        "{}",
        text(&out)
    );
    let source_requests = source_proxy.requests();
    assert_eq!(
        manifest_requests(&source_requests, "GET"),
        Vec::<&ProxyRequest>::new()
    );
    let target_requests = target_proxy.requests();
    assert_eq!(writes(&target_requests), Vec::<&ProxyRequest>::new());
    assert_eq!(manifest_requests(&target_requests, "HEAD").len(), 6);
}

#[test]
fn registries_that_refuse_manifest_head_are_asked_with_get() {
    for status in [404, 403, 405] {
        let source = Registry::start();
        let target = Registry::start();
        let image = push_image(&source, "app/one", "1", ImageOptions::default());
        support::tag(&source, "app/one", "1", &["2", "3", "4", "5"]);
        let index = push_index(
            &source,
            "app/multi",
            "1",
            &["linux/amd64", "linux/arm64/v8"],
            Format::Oci,
        );
        let refuse = || Rule::fail("HEAD", MANIFESTS, usize::MAX, status);
        let source_proxy = FaultProxy::start(&source.url(), vec![refuse()]);
        let target_proxy = FaultProxy::start(&target.url(), vec![refuse()]);
        let mappings = "  - from: app/one\n  - from: app/multi\n    platform: linux/arm64\n";
        let cfg = |mappings: &str| {
            config(
                "native:\n  tries: 1\n",
                &source_proxy.host(),
                &target_proxy.host(),
                mappings,
            )
        };
        let learned = |out: &Output| -> Vec<Value> {
            log_lines(out, "registry ")
                .into_iter()
                .filter(|l| {
                    l["msg"]
                        .as_str()
                        .is_some_and(|m| m.contains("answers manifest HEAD requests with HTTP"))
                })
                .collect()
        };
        let out = run_dregsy(&cfg(mappings), &[]);
        let all = text(&out);
        assert_success(&out);
        assert_eq!(log_lines(&out, "image copied").len(), 6, "{status}: {all}");
        for tag in ["1", "2", "3", "4", "5"] {
            assert_eq!(
                manifest_digest(&target, "app/one", tag).as_deref(),
                Some(image.digest.as_str()),
                "{status}"
            );
        }
        assert_eq!(
            manifest_digest(&target, "app/multi", "1"),
            Some(child_of(&index, "linux/arm64/v8")),
            "{status}"
        );
        // Learned once per registry: one info line each. At the source, one refused HEAD;
        // the target held nothing at first ("not found" to HEAD and GET teaches nothing) and
        // learned from the first manifest pushed there.
        let lines = learned(&out);
        assert_eq!(lines.len(), 2, "{status}: {lines:?}");
        assert!(lines.iter().all(|l| l["level"] == "info"), "{lines:?}");
        assert_eq!(
            manifest_requests(&source_proxy.requests(), "HEAD").len(),
            1,
            "{status}: {:?}",
            source_proxy.requests()
        );

        // The next run finds everything on the target: nothing is copied again, and each
        // side refused one HEAD.
        source_proxy.clear_requests();
        target_proxy.clear_requests();
        let out = run_dregsy(&cfg(mappings), &[]);
        assert_success(&out);
        assert_eq!(
            log_lines(&out, "image up to date").len(),
            6,
            "{status}: {}",
            text(&out)
        );
        assert_eq!(learned(&out).len(), 2, "{status}: {}", text(&out));
        for proxy in [&source_proxy, &target_proxy] {
            let requests = proxy.requests();
            assert_eq!(writes(&requests), Vec::<&ProxyRequest>::new(), "{status}");
            assert_eq!(
                manifest_requests(&requests, "HEAD").len(),
                1,
                "{status}: {requests:?}"
            );
        }

        // A real "not found" is a 404 to the GET, and says so.
        let out = run_dregsy(&cfg("  - from: app/one\n    tags: ['missing']\n"), &[]);
        assert_eq!(out.status.code(), Some(1), "{status}: {}", text(&out));
        let failed = log_lines(&out, "image failed");
        assert_eq!(failed.len(), 1, "{status}: {}", text(&out));
        let message = failed[0]["msg"].as_str().unwrap_or_default();
        assert!(
            message.contains("app/one:missing") && message.contains("not found"),
            "{status}: {message}"
        );
    }
}

/// An image whose second layer lives elsewhere (`urls`), as Windows base layers do: config and
/// first layer are in the registry, the foreign layer only when `held`.
fn push_foreign_image(
    registry: &Registry,
    repo: &str,
    tag: &str,
    layer_type: &str,
    held: bool,
) -> (String, String) {
    let (manifest_type, config_type, layer) = if layer_type.contains("docker") {
        (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let foreign_bytes = format!("foreign layer of {repo}:{tag} {}", fastrand::u64(..));
    let foreign = support::http::sha256_digest(foreign_bytes.as_bytes());
    if held {
        push_blob(registry, repo, foreign_bytes.as_bytes());
    }
    let layer_bytes = format!("layer of {repo}:{tag} {}", fastrand::u64(..));
    let layer_digest = push_blob(registry, repo, layer_bytes.as_bytes());
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "windows",
        "rootfs": {"type": "layers", "diff_ids": [foreign, layer_digest]},
    }))
    .expect("config JSON");
    let config_digest = push_blob(registry, repo, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
        "layers": [
            {"mediaType": layer_type, "digest": foreign, "size": foreign_bytes.len(),
             "urls": ["https://foreign-layers.example.invalid/base"]},
            {"mediaType": layer, "digest": layer_digest, "size": layer_bytes.len()},
        ],
    }))
    .expect("manifest JSON");
    (
        put_manifest(registry, repo, tag, manifest_type, &manifest),
        foreign,
    )
}

#[test]
fn foreign_layers_are_left_out_unless_asked_for_and_the_manifest_keeps_its_digest() {
    let source = Registry::builder().foreign_layers().access_log().start();
    let target = Registry::builder().foreign_layers().start();
    let docker_foreign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    let oci_foreign = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    let (docker, docker_layer) =
        push_foreign_image(&source, "win/docker", "1", docker_foreign, false);
    let (oci, oci_layer) = push_foreign_image(&source, "win/oci", "1", oci_foreign, false);
    let (held, held_layer) = push_foreign_image(&source, "win/held", "1", docker_foreign, true);
    // platform: all of an index whose child has a foreign layer.
    let (child, child_layer) = push_foreign_image(&source, "win/multi", "", docker_foreign, false);
    let linux = push_image(&source, "win/multi", "", ImageOptions::default());
    let child_size = support::get_manifest(&source, "win/multi", &child)
        .expect("child")
        .bytes
        .len();
    let index_bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": child, "size": child_size,
             "platform": {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1"}},
            {"mediaType": OCI_MANIFEST, "digest": linux.digest, "size": linux.manifest.len(),
             "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }))
    .expect("index JSON");
    let index = put_manifest(
        &source,
        "win/multi",
        "1",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        &index_bytes,
    );

    let mappings = |prefix: &str| {
        format!(
            "  - from: win/docker\n    to: {prefix}/docker\n  - from: win/oci\n    to: {prefix}/oci\n  - from: win/held\n    to: {prefix}/held\n  - from: win/multi\n    to: {prefix}/multi\n    platform: all\n"
        )
    };
    let out = run_dregsy(
        &config("", &source.host(), &target.host(), &mappings("plain")),
        &[],
    );
    assert_success(&out);
    for (repo, digest) in [
        ("plain/docker", &docker),
        ("plain/oci", &oci),
        ("plain/held", &held),
        ("plain/multi", &index),
    ] {
        assert_eq!(
            manifest_digest(&target, repo, "1").as_deref(),
            Some(digest.as_str()),
            "{repo}: the manifest byte for byte"
        );
    }
    assert!(!blob_exists(&target, "plain/held", &held_layer));
    let foreign = [&docker_layer, &oci_layer, &held_layer, &child_layer];
    let asked: Vec<_> = source
        .requests()
        .into_iter()
        .filter(|r| foreign.iter().any(|d| r.path.contains(d.as_str())))
        .collect();
    assert!(
        asked.is_empty(),
        "foreign layers are not fetched: {asked:?}"
    );

    // native.include-foreign-layers: copied where the source holds them.
    let out = run_dregsy(
        &config(
            "native:\n  include-foreign-layers: true\n",
            &source.host(),
            &target.host(),
            &mappings("incl"),
        ),
        &[],
    );
    assert_success(&out);
    assert!(blob_exists(&target, "incl/held", &held_layer));
    assert!(!blob_exists(&target, "incl/docker", &docker_layer));
    assert_eq!(
        manifest_digest(&target, "incl/multi", "1").as_deref(),
        Some(index.as_str())
    );
    assert_eq!(list_tags(&target, "incl/oci"), ["1"]);
}

#[test]
fn the_second_one_off_run_of_a_multi_platform_source_sends_no_manifest_get() {
    let source = Registry::builder().access_log().start();
    let target = Registry::start();
    // The default platform is the host's; the index has it and another one.
    let host = if cfg!(target_arch = "aarch64") {
        "linux/arm64/v8"
    } else {
        "linux/amd64"
    };
    let other = if host == "linux/amd64" {
        "linux/arm64/v8"
    } else {
        "linux/amd64"
    };
    let index = push_index(&source, "lib/app", "1", &[other, host], Format::Oci);
    support::tag(&source, "lib/app", "1", &["2"]);
    let cfg = |settings: &str| {
        config(
            settings,
            &source.host(),
            &target.host(),
            "  - from: lib/app\n",
        )
    };
    let cache = tempfile::tempdir().expect("tempdir");
    let source_gets = || {
        source
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains(MANIFESTS))
            .count()
    };

    // A run that must find both tags up to date.
    let up_to_date_run = || {
        let out = run_with_cache(&cfg(""), cache.path());
        assert_success(&out);
        let up_to_date = log_lines(&out, "image up to date").len();
        assert_eq!(up_to_date, 2, "{}", text(&out));
        out
    };

    source.clear_requests();
    let out = run_with_cache(&cfg(""), cache.path());
    assert_success(&out);
    assert_eq!(
        manifest_digest(&target, "lib/app", "2"),
        Some(child_of(&index, host))
    );
    assert!(source_gets() > 0, "the first run reads the index");

    source.clear_requests();
    up_to_date_run();
    assert_eq!(source_gets(), 0, "{:?}", source.requests());

    // `dregsy plan` uses the same cache.
    source.clear_requests();
    let plan = Dregsy::with_config(&cfg(""))
        .args(&["plan", "-config={config}", "--json"])
        .env("XDG_CACHE_HOME", &cache.path().display().to_string())
        .output();
    assert_success(&plan);
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains(r#""up_to_date":2"#),
        "{}",
        text(&plan)
    );
    assert_eq!(source_gets(), 0, "{:?}", source.requests());

    // Turned off, every run reads the index again.
    source.clear_requests();
    let out = run_with_cache(&cfg("native:\n  cache-dir: '-'\n"), cache.path());
    assert_success(&out);
    assert!(source_gets() > 0);

    // A corrupt cache is a warning and a GET, never a failure or a wrong skip.
    let entries = cache.path().join("dregsy").join("manifests-v1");
    let mut corrupted = 0;
    for entry in std::fs::read_dir(&entries).expect("cache entries") {
        std::fs::write(entry.expect("entry").path(), b"{\"key\":").expect("corrupt");
        corrupted += 1;
    }
    assert!(corrupted > 0);
    source.clear_requests();
    let out = up_to_date_run();
    assert!(
        !log_lines(&out, "ignoring a manifest cache entry").is_empty(),
        "{}",
        text(&out)
    );
    assert!(source_gets() > 0);
    // ... and rewritten.
    source.clear_requests();
    up_to_date_run();
    assert_eq!(source_gets(), 0);

    // An unusable cache directory: a warning, and the run does its work.
    let file = cache.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let out = run_dregsy(
        &format!(
            "native:\n  cache-dir: {}\n{}",
            file.display(),
            config(
                "",
                &source.host(),
                &target.host(),
                "  - from: lib/app\n    to: other/app\n"
            )
        ),
        &[],
    );
    assert_success(&out);
    assert!(
        !log_lines(&out, "manifest cache unusable").is_empty(),
        "{}",
        text(&out)
    );
    assert_eq!(
        manifest_digest(&target, "other/app", "1"),
        Some(child_of(&index, host))
    );
    // `native.cache-dir` moves it.
    let moved = cache.path().join("moved");
    assert_success(&run_dregsy(
        &format!("native:\n  cache-dir: {}\n{}", moved.display(), cfg("")),
        &[],
    ));
    assert!(
        moved
            .join("manifests-v1")
            .read_dir()
            .expect("moved cache")
            .count()
            > 0
    );
}

#[test]
fn plan_and_the_skopeo_pre_check_trust_neither_a_generic_content_type_nor_a_refused_head() {
    let source = Registry::start();
    let target = Registry::start();
    let index = push_index(
        &source,
        "lib/app",
        "1",
        &["linux/amd64", "linux/arm64/v8"],
        Format::Oci,
    );
    let mapping = "  - from: lib/app\n    platform: linux/amd64\n";
    // The target already holds the platform's manifest.
    assert_success(&run_dregsy(
        &config("", &source.host(), &target.host(), mapping),
        &[],
    ));
    assert_eq!(
        manifest_digest(&target, "lib/app", "1"),
        Some(child_of(&index, "linux/amd64"))
    );
    let sources = [
        Rule::set_header(MANIFESTS, "content-type", "application/json").method("HEAD"),
        Rule::fail("HEAD", MANIFESTS, usize::MAX, 404),
    ];
    let targets = [
        Rule::fail("HEAD", MANIFESTS, usize::MAX, 405),
        Rule::remove_header(MANIFESTS, "content-type").method("HEAD"),
    ];
    for (source_rule, target_rule) in sources.into_iter().zip(targets) {
        let described = format!("{source_rule:?} / {target_rule:?}");
        let source_proxy = FaultProxy::start(&source.url(), vec![source_rule]);
        let target_proxy = FaultProxy::start(&target.url(), vec![target_rule]);
        let plan = Dregsy::with_config(&config(
            "",
            &source_proxy.host(),
            &target_proxy.host(),
            mapping,
        ))
        .args(&["plan", "-config={config}", "--json"])
        .output();
        assert_success(&plan);
        let json: Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
        assert_eq!(json["totals"]["up_to_date"], 1, "{described}: {json}");

        let skopeo = run_dregsy(
            &config(
                "relay: skopeo\n",
                &source_proxy.host(),
                &target_proxy.host(),
                mapping,
            ),
            &[],
        );
        assert_success(&skopeo);
        assert_eq!(
            log_lines(&skopeo, "image up to date").len(),
            1,
            "{described}: {}",
            text(&skopeo)
        );
        assert_eq!(
            writes(&target_proxy.requests()),
            Vec::<&ProxyRequest>::new()
        );
    }
}

/// A sign-in page, as a proxy or a misconfigured registry sends instead of a manifest.
const SIGN_IN_PAGE: &str = "<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>";

/// Every manifest request of `repo` answered 200 with an HTML page.
fn html_manifests(repo: &str) -> Rule {
    Rule::respond(
        "*",
        &format!("^/v2/{repo}/manifests/"),
        200,
        &[("Content-Type", "text/html; charset=utf-8")],
        SIGN_IN_PAGE,
    )
}

/// Manifest GETs of `repo` answered with the first half of `image`'s manifest.
fn truncated_manifests(repo: &str, image: &support::Pushed) -> Rule {
    Rule::respond(
        "GET",
        &format!("^/v2/{repo}/manifests/"),
        200,
        &[("Content-Type", OCI_MANIFEST)],
        image.manifest[..image.manifest.len() / 2].to_vec(),
    )
}

#[test]
fn garbage_instead_of_a_manifest_fails_that_image_and_the_run_goes_on() {
    let source = Registry::start();
    let target = Registry::start();
    let truncated = push_image(&source, "bad/truncated", "1", ImageOptions::default());
    let mismatch = push_image(&source, "bad/mismatch", "1", ImageOptions::default());
    push_image(&source, "bad/html", "1", ImageOptions::default());
    push_image(&source, "bad/target", "1", ImageOptions::default());
    let good = push_image(&source, "good/app", "1", ImageOptions::default());
    let mut other_bytes = mismatch.manifest.clone();
    other_bytes.push(b'\n');
    let source_proxy = FaultProxy::start(
        &source.url(),
        vec![
            truncated_manifests("bad/truncated", &truncated),
            Rule::respond(
                "GET",
                "^/v2/bad/mismatch/manifests/",
                200,
                &[
                    ("Content-Type", OCI_MANIFEST),
                    ("Docker-Content-Digest", mismatch.digest.as_str()),
                ],
                other_bytes,
            ),
            html_manifests("bad/html"),
        ],
    );
    let target_proxy = FaultProxy::start(&target.url(), vec![html_manifests("bad/target")]);
    let mappings = "  - from: bad/truncated\n  - from: bad/mismatch\n  - from: bad/html\n  - from: bad/target\n  - from: good/app\n";
    let out = run_dregsy(
        &config(
            "native:\n  tries: 1\n",
            &source_proxy.host(),
            &target_proxy.host(),
            mappings,
        ),
        &[],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    assert_eq!(
        manifest_digest(&target, "good/app", "1").as_deref(),
        Some(good.digest.as_str())
    );
    let failed = log_lines(&out, "image failed");
    assert_eq!(failed.len(), 4, "{all}");
    let message = |repo: &str| {
        failed
            .iter()
            .find(|l| l["source"].as_str().is_some_and(|s| s.contains(repo)))
            .and_then(|l| l["msg"].as_str())
            .unwrap_or_else(|| panic!("no failure for {repo}: {all}"))
            .to_string()
    };
    let expectations = [
        ("bad/truncated", source_proxy.host(), "cut short"),
        ("bad/mismatch", source_proxy.host(), "digest"),
        ("bad/html", source_proxy.host(), "HTML"),
        ("bad/target", target_proxy.host(), "HTML"),
    ];
    for (repo, registry, what) in expectations {
        let msg = message(repo);
        assert!(
            msg.contains(&format!("{registry}/{repo}")) && msg.contains(what),
            "{repo}: {msg}"
        );
        assert_eq!(
            manifest_digest(&target, repo, "1"),
            None,
            "nothing pushed for {repo}"
        );
    }
}

#[test]
fn two_processes_share_one_manifest_cache() {
    // Each process has its own target: the cache is shared, not the copies.
    let source = Registry::builder().access_log().start();
    let targets = [Registry::start(), Registry::start()];
    let platforms = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"];
    let mut mappings = String::new();
    for n in 0..6 {
        push_index(
            &source,
            &format!("multi/app{n}"),
            "1",
            &platforms,
            Format::Oci,
        );
        for platform in ["linux/amd64", "linux/arm64", "linux/arm/v7"] {
            mappings.push_str(&format!(
                "  - from: multi/app{n}\n    to: {}/app{n}\n    platform: {platform}\n",
                platform.replace('/', "-")
            ));
        }
    }
    let cfgs: Vec<String> = targets
        .iter()
        .map(|target| config("", &source.host(), &target.host(), &mappings))
        .collect();
    let cache = tempfile::tempdir().expect("tempdir");
    let outs: Vec<Output> = std::thread::scope(|scope| {
        let runs: Vec<_> = cfgs
            .iter()
            .map(|cfg| scope.spawn(|| run_with_cache(cfg, cache.path())))
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("a run"))
            .collect()
    });
    for out in &outs {
        assert_success(out);
        assert!(!text(out).contains("manifest cache"), "{}", text(out));
    }
    source.clear_requests();
    let out = run_with_cache(&cfgs[0], cache.path());
    assert_success(&out);
    assert_eq!(
        log_lines(&out, "image up to date").len(),
        18,
        "{}",
        text(&out)
    );
    let gets: Vec<_> = source
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains(MANIFESTS))
        .collect();
    assert!(gets.is_empty(), "{gets:?}");
}

#[test]
fn a_refused_manifest_head_is_learned_once_per_host_whatever_the_credentials() {
    // Two tasks reach one source host with different credentials (two registry clients):
    // the first check learns that HEAD is refused there, the second task's client knows.
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "app/a", "1", ImageOptions::default());
    push_image(&source, "app/b", "1", ImageOptions::default());
    let proxy = FaultProxy::start(
        &source.url(),
        vec![Rule::fail("HEAD", MANIFESTS, usize::MAX, 405)],
    );
    let task = |name: &str, user: &str, repo: &str| {
        format!(
            "- name: {name}\n  source:\n{}    auth: {}\n  target:\n{}  mappings:\n  - from: {repo}\n",
            side(&proxy.host()),
            source.auth_b64(user, "secret"),
            side(&target.host()),
        )
    };
    let cfg = format!(
        "tasks:\n{}{}",
        task("first", "alice", "app/a"),
        task("second", "bob", "app/b")
    );
    let out = run_dregsy(&cfg, &[]);
    let all = text(&out);
    assert_success(&out);
    assert_eq!(log_lines(&out, "image copied").len(), 2, "{all}");
    let learned: Vec<Value> = log_lines(&out, "registry ")
        .into_iter()
        .filter(|l| {
            l["msg"]
                .as_str()
                .is_some_and(|m| m.contains("answers manifest HEAD requests with HTTP 405"))
        })
        .collect();
    assert_eq!(learned.len(), 1, "{all}");
    assert_eq!(
        manifest_requests(&proxy.requests(), "HEAD").len(),
        1,
        "{:?}",
        proxy.requests()
    );
}

#[test]
fn plan_and_the_skopeo_pre_check_fail_garbage_manifests_naming_registry_and_reference() {
    let source = Registry::start();
    let target = Registry::start();
    let truncated = push_image(&source, "bad/truncated", "1", ImageOptions::default());
    push_image(&source, "bad/html", "1", ImageOptions::default());
    let good = push_image(&source, "good/app", "1", ImageOptions::default());
    let proxy = FaultProxy::start(
        &source.url(),
        vec![
            // A generic type on HEAD sends the check to the (truncated) manifest itself.
            Rule::set_header(
                "^/v2/bad/truncated/manifests/",
                "content-type",
                "application/json",
            )
            .method("HEAD"),
            truncated_manifests("bad/truncated", &truncated),
            html_manifests("bad/html"),
        ],
    );
    let mappings = "  - from: bad/truncated\n  - from: bad/html\n  - from: good/app\n";
    let expectations = [("bad/truncated", "cut short"), ("bad/html", "HTML")];

    let plan = Dregsy::with_config(&config("", &proxy.host(), &target.host(), mappings))
        .args(&["plan", "-config={config}", "--json"])
        .output();
    assert_eq!(plan.status.code(), Some(1), "{}", text(&plan));
    let json: Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    assert_eq!(json["totals"]["failed"], 2, "{json}");
    assert_eq!(json["totals"]["copy"], 1, "{json}");
    let errors = job_errors(&json);
    for (repo, what) in expectations {
        let named = format!("{}/{repo}", proxy.host());
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&named) && e.contains(what)),
            "{repo}: {errors:?}"
        );
    }

    let out = run_dregsy(
        &config(
            "relay: skopeo\nnative:\n  tries: 1\n",
            &proxy.host(),
            &target.host(),
            mappings,
        ),
        &[],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    let failed = log_lines(&out, "image failed");
    assert_eq!(failed.len(), 2, "{all}");
    for (repo, what) in expectations {
        // The tag, or the digest its HEAD named.
        let named = format!("{}/{repo}", proxy.host());
        assert!(
            failed.iter().any(|l| l["msg"]
                .as_str()
                .is_some_and(|m| m.contains(&named) && m.contains(what))),
            "{repo}: {all}"
        );
        assert_eq!(
            manifest_digest(&target, repo, "1"),
            None,
            "nothing pushed for {repo}"
        );
    }
    assert_eq!(
        manifest_digest(&target, "good/app", "1").as_deref(),
        Some(good.digest.as_str())
    );
}

/// Every non-null `error` string anywhere in a plan's JSON.
fn job_errors(json: &Value) -> Vec<String> {
    match json {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, value)| match (key.as_str(), value) {
                ("error", Value::String(e)) => vec![e.clone()],
                _ => job_errors(value),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(job_errors).collect(),
        _ => Vec::new(),
    }
}
