//! The compatibility relays end to end: the dregsy binary with `relay: skopeo` (a fake skopeo
//! that records its argv, and Debian's real one) and `relay: docker` (podman's Docker-compatible
//! API), against real registries started by the harness.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::dregsy::{assert_success, log_lines, run_dregsy, text};
use support::{
    FaultProxy, Format, ImageOptions, Podman, Registry, Rule, get_manifest, list_tags,
    manifest_digest, push_image, push_index, tag,
};

/// A source/target block: plain-HTTP registries skip TLS verification; `auth` adds credentials.
fn location(registry: &Registry, auth: Option<&str>) -> String {
    let mut block = format!("    registry: {}\n", registry.host());
    if !registry.is_tls() {
        block.push_str("    skip-tls-verify: true\n");
    }
    if let Some(auth) = auth {
        block.push_str(&format!("    auth: {auth}\n"));
    }
    block
}

/// The message of the one `image failed` line of a run that exited 1.
fn the_one_failure(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    let failed = log_lines(out, "image failed");
    assert_eq!(failed.len(), 1, "{}", text(out));
    failed[0]["msg"].as_str().expect("msg").to_string()
}

fn task(source: &str, target: &str, mappings: &str) -> String {
    format!("tasks:\n- name: compat\n  source:\n{source}  target:\n{target}  mappings:\n{mappings}")
}

// ---------------------------------------------------------------------------------------------
// skopeo, faked: the original's argv

/// Writes a fake `skopeo` into `dir`: `--version` prints a version; `copy` appends its argv
/// (one argument per line, then `--`) to `argv.log`, with the mode and content of every auth
/// file it was given, and fails with a skopeo-like message when the target tag is `broken`.
fn fake_skopeo(dir: &Path) -> PathBuf {
    let path = dir.join("skopeo");
    let record = dir.join("argv.log");
    let script = format!(
        r#"#!/bin/sh
if [ "$1" = "--version" ]; then echo "skopeo version 1.9.3-fake"; exit 0; fi
for arg in "$@"; do
  printf '%s\n' "$arg" >> '{record}'
  case "$arg" in
    --src-authfile=*|--dest-authfile=*)
      file="${{arg#*=}}"
      printf 'mode %s\n' "$(stat -c %a "$file")" >> '{record}'
      printf 'content %s\n' "$(cat "$file")" >> '{record}'
      ;;
  esac
done
echo -- >> '{record}'
echo "Getting image source signatures"
case "$*" in
  *:broken*) echo 'time="2025-01-01T00:00:00Z" level=fatal msg="writing manifest: fake refusal"' >&2; exit 1;;
esac
exit 0
"#,
        record = record.display()
    );
    std::fs::write(&path, script).expect("write fake skopeo");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// The recorded invocations, each a list of arguments.
fn recorded(dir: &Path) -> Vec<Vec<String>> {
    let log = std::fs::read_to_string(dir.join("argv.log")).unwrap_or_default();
    log.split("--\n")
        .filter(|call| !call.trim().is_empty())
        .map(|call| call.lines().map(str::to_string).collect())
        .collect()
}

#[test]
fn skopeo_argv_is_the_originals_with_auth_files_instead_of_credentials() {
    let source = Registry::start();
    let target = Registry::builder()
        .basic_auth()
        .user("mirror", "t0p-s3cret")
        .start();
    push_image(&source, "app", "1.0", ImageOptions::default());
    let fake = tempfile::tempdir().expect("tempdir");
    fake_skopeo(fake.path());
    let certs = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "relay: skopeo\nskopeo:\n  certs-dir: {}\n{}",
        certs.path().display(),
        task(
            &location(&source, None),
            &location(&target, Some(&target.auth_b64("mirror", "t0p-s3cret"))),
            "  - from: app\n    to: mirror/app\n    tags: ['1.0']\n    platform: linux/arm/v6\n",
        )
    );
    // The fake is found on PATH, as the real one would be.
    let path = format!(
        "{}:{}",
        fake.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run_dregsy(&config, &[("PATH", &path)]);
    assert_success(&out);
    assert_eq!(
        log_lines(&out, "skopeo version 1.9.3-fake").len(),
        1,
        "{}",
        text(&out)
    );
    assert_eq!(log_lines(&out, "relay ready")[0]["relay"], "skopeo");
    assert_eq!(
        log_lines(&out, "relay 'skopeo' runs for compatibility").len(),
        1
    );

    let calls = recorded(fake.path());
    assert_eq!(calls.len(), 1, "one copy: {calls:?}");
    let call = &calls[0];
    let certs = certs.path().display();
    let authfile = call
        .iter()
        .find_map(|a| a.strip_prefix("--dest-authfile="))
        .expect("a target auth file")
        .to_string();
    let expected = [
        "--insecure-policy".to_string(),
        "copy".into(),
        "--src-tls-verify=false".into(),
        "--dest-tls-verify=false".into(),
        format!("--src-cert-dir={certs}/127.0.0.1"),
        format!("--dest-cert-dir={certs}/127.0.0.1"),
        format!("--dest-authfile={authfile}"),
        format!("docker://{}/app:1.0", source.host()),
        format!("docker://{}/mirror/app:1.0", target.host()),
        "--override-os=linux".into(),
        "--override-arch=arm".into(),
        "--override-variant=v6".into(),
    ];
    let args: Vec<&String> = call
        .iter()
        .filter(|a| !a.starts_with("mode ") && !a.starts_with("content "))
        .collect();
    assert_eq!(args, expected.iter().collect::<Vec<_>>());
    // The secret is in a 0600 file, never on argv, and the file is gone afterwards.
    assert!(call.contains(&"mode 600".to_string()), "{call:?}");
    assert!(!args.iter().any(|a| a.contains("t0p-s3cret")), "{args:?}");
    let content = call
        .iter()
        .find_map(|a| a.strip_prefix("content "))
        .expect("content");
    let json: serde_json::Value = serde_json::from_str(content).expect("config.json");
    let auth = json["auths"][target.host()]["auth"]
        .as_str()
        .expect("auth entry for the target");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .expect("base64");
    assert_eq!(decoded, b"mirror:t0p-s3cret");
    assert!(!Path::new(&authfile).exists(), "auth file removed");
    assert!(
        !Path::new(&authfile).parent().expect("dir").exists(),
        "private dir removed"
    );
    assert!(!text(&out).contains("t0p-s3cret"), "no secret in the logs");
}

#[test]
fn skopeo_failure_names_the_tag_and_carries_skopeos_error() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "app", "1.0", ImageOptions::default());
    tag(&source, "app", "1.0", &["broken"]);
    let fake = tempfile::tempdir().expect("tempdir");
    let binary = fake_skopeo(fake.path());
    let config = format!(
        "relay: skopeo\nskopeo:\n  binary: {}\n{}",
        binary.display(),
        task(
            &location(&source, None),
            &location(&target, None),
            "  - from: app\n    to: app\n    tags: ['1.0', 'broken']\n",
        )
    );
    let out = run_dregsy(&config, &[]);
    let msg = &the_one_failure(&out);
    assert!(msg.contains("tag 'broken'"), "{msg}");
    assert!(msg.contains("fake refusal"), "{msg}");
    assert_eq!(recorded(fake.path()).len(), 2);
}

#[test]
fn missing_skopeo_fails_at_startup() {
    let config = "relay: skopeo\nskopeo:\n  binary: /nonexistent/skopeo\ntasks:\n- name: t\n  source:\n    registry: 127.0.0.1:1\n  target:\n    registry: 127.0.0.1:2\n  mappings:\n  - from: a\n";
    let out = run_dregsy(config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let errors = log_lines(&out, "cannot execute skopeo: /nonexistent/skopeo");
    assert_eq!(errors.len(), 1, "{}", text(&out));
    assert!(log_lines(&out, "syncing task").is_empty());
}

// ---------------------------------------------------------------------------------------------
// skopeo, real: copies between real registries

#[test]
fn real_skopeo_copies_with_basic_auth_and_skips_what_is_up_to_date() {
    let source = Registry::start();
    let target = Registry::builder().basic_auth().start();
    let image = push_image(&source, "app", "1.0", ImageOptions::default());
    tag(&source, "app", "1.0", &["1.1"]);
    let index = push_index(
        &source,
        "multi",
        "2.0",
        &["linux/amd64", "linux/arm64/v8"],
        Format::Oci,
    );
    let config = format!(
        "relay: skopeo\n{}",
        task(
            &location(&source, None),
            &location(&target, Some(&target.admin_auth_b64())),
            "  - from: app\n    to: mirror/app\n    tags: ['1.0', '1.1']\n  - from: multi\n    to: mirror/multi\n    tags: ['2.0']\n    platform: all\n",
        )
    );
    let out = run_dregsy(&config, &[]);
    assert_success(&out);
    assert_eq!(log_lines(&out, "image copied").len(), 3, "{}", text(&out));
    assert_eq!(list_tags(&target, "mirror/app"), ["1.0", "1.1"]);
    assert_eq!(
        manifest_digest(&target, "mirror/app", "1.1").as_deref(),
        Some(image.digest.as_str())
    );
    // --all keeps the index digest.
    assert_eq!(
        manifest_digest(&target, "mirror/multi", "2.0").as_deref(),
        Some(index.digest.as_str())
    );
    assert!(
        !text(&out).contains(&target.admin().1),
        "no secret in the logs"
    );

    // Up-to-date check: the second run starts no skopeo copy.
    let again = run_dregsy(&config, &[]);
    assert_success(&again);
    assert_eq!(
        log_lines(&again, "image up to date").len(),
        3,
        "{}",
        text(&again)
    );
    assert!(log_lines(&again, "image copied").is_empty());
}

#[test]
fn real_skopeo_copies_from_tls_with_a_certs_dir_and_one_platform() {
    let source = Registry::builder().tls().start();
    let target = Registry::start();
    let index = push_index(
        &source,
        "multi",
        "2.0",
        &["linux/amd64", "linux/arm64/v8"],
        Format::Docker,
    );
    let config = format!(
        "relay: skopeo\nskopeo:\n  certs-dir: {}\n{}",
        source.certs_dir().display(),
        task(
            &location(&source, None),
            &location(&target, None),
            "  - from: multi\n    to: multi\n    platform: linux/arm64/v8\n    tags: ['2.0']\n",
        )
    );
    let out = run_dregsy(&config, &[]);
    assert_success(&out);
    let arm = index
        .children
        .iter()
        .find(|(p, _)| p == "linux/arm64/v8")
        .map(|(_, d)| d.clone());
    assert_eq!(manifest_digest(&target, "multi", "2.0"), arm);
    let again = run_dregsy(&config, &[]);
    assert_success(&again);
    assert_eq!(
        log_lines(&again, "image up to date").len(),
        1,
        "{}",
        text(&again)
    );
}

// ---------------------------------------------------------------------------------------------
// docker, through podman's Docker-compatible API

/// A password whose JSON, in standard base64, has `+` and `/` wherever it lands: the daemon
/// decodes `X-Registry-Auth` as base64url, so this fails unless the header is sent that way.
const AWKWARD_PASSWORD: &str = "pa>>>???~~~ss";

#[test]
fn docker_relay_pulls_tags_and_pushes_exactly_the_planned_tags_and_cleans_up() {
    let source = Registry::start();
    let target = Registry::builder()
        .basic_auth()
        .user("mirror", AWKWARD_PASSWORD)
        .start();
    let image = push_image(&source, "app", "1.0", ImageOptions::default());
    tag(&source, "app", "1.0", &["1.1", "old"]);
    let pinned = push_image(&source, "app", "", ImageOptions::default());
    let podman = Podman::start(&[&source, &target]);
    let mappings = format!(
        "  - from: app\n    to: mirror/app\n    tags: ['1.0', 'regex: ^1\\.1$', '{}']\n    platform: linux/amd64\n  - from: app\n    to: mirror/none\n    tags: ['regex: ^nomatch$']\n",
        pinned.digest
    );
    let config = format!(
        "relay: docker\ndocker:\n  dockerhost: {}\n  ping-attempts: 3\n  ping-interval: 200ms\n{}",
        podman.dockerhost(),
        task(
            &location(&source, None),
            &location(&target, Some(&target.auth_b64("mirror", AWKWARD_PASSWORD))),
            &mappings,
        )
    );
    let out = run_dregsy(&config, &[]);
    // The mapping whose filter matches nothing fails (it selected no image); the other syncs.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = log_lines(&out, "mapping failed: it selected no image");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert_eq!(
        log_lines(&out, "image copied").len(),
        3,
        "{}\n{}",
        text(&out),
        podman.log()
    );
    assert_eq!(log_lines(&out, "ok, relay ready")[0]["relay"], "docker");
    assert_eq!(
        log_lines(&out, "'platform' requires at least API version 1.46").len(),
        1
    );
    let dregsy_tag = format!("dregsy-{}", pinned.digest.trim_start_matches("sha256:"));
    let mut expected = vec!["1.0".to_string(), "1.1".into(), dregsy_tag.clone()];
    expected.sort();
    let mut tags = list_tags(&target, "mirror/app");
    tags.sort();
    // Exactly the planned tags (not 'old'), and nothing for a filter that matched nothing.
    assert_eq!(tags, expected);
    assert!(list_tags(&target, "mirror/none").is_empty());
    assert_eq!(log_lines(&out, "pulling source image").len(), 3);
    // The daemon recompresses layers but keeps the image config.
    let pushed = get_manifest(&target, "mirror/app", "1.0").expect("pushed");
    assert_eq!(
        pushed.json()["config"]["digest"],
        image.config_digest.as_str()
    );
    let pinned_copy = get_manifest(&target, "mirror/app", &dregsy_tag).expect("pinned");
    assert_eq!(
        pinned_copy.json()["config"]["digest"],
        pinned.config_digest.as_str()
    );
    // Nothing left behind in the daemon.
    assert_eq!(podman.image_tags(), Vec::<String>::new());
    assert_eq!(podman.image_count(), 0, "{:?}", podman.image_tags());
    assert!(
        !text(&out).contains(AWKWARD_PASSWORD),
        "no secret in the logs"
    );

    // Up-to-date check: a second run pulls nothing (and the empty mapping fails again).
    let again = run_dregsy(&config, &[]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert_eq!(
        log_lines(&again, "image up to date").len(),
        3,
        "{}",
        text(&again)
    );
    assert!(log_lines(&again, "pulling source image").is_empty());
}

/// An index none of whose entries declares a platform (cosign's fallback tag, an index of
/// SBOMs) is no image a daemon can pull: the docker relay refuses it before the daemon is
/// asked, naming the relays that copy it whole (docs/behaviour.md#platform-choice).
#[test]
fn docker_relay_refuses_an_index_of_artifacts_naming_the_relays_that_copy_it() {
    let source = Registry::start();
    let target = Registry::start();
    let artifact = push_image(&source, "app", "", ImageOptions::default());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": artifact.media_type,
            "digest": artifact.digest,
            "size": artifact.manifest.len(),
            "artifactType": "application/spdx+json",
        }],
    })
    .to_string();
    support::put_manifest(
        &source,
        "app",
        "sboms",
        "application/vnd.oci.image.index.v1+json",
        index.as_bytes(),
    );
    let podman = Podman::start(&[&source, &target]);
    let config = format!(
        "relay: docker\ndocker:\n  dockerhost: {}\n{}",
        podman.dockerhost(),
        task(
            &location(&source, None),
            &location(&target, None),
            "  - from: app\n    to: app\n    tags: [sboms]\n",
        )
    );
    let out = run_dregsy(&config, &[]);
    let msg = &the_one_failure(&out);
    assert!(
        msg.contains("is an index of artifacts, not of platforms")
            && msg.contains("use 'relay: native' or 'relay: skopeo'"),
        "{msg}"
    );
    assert_eq!(podman.image_count(), 0);
}

#[test]
fn docker_relay_failure_names_the_image_and_carries_the_daemons_error() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "app", "1.0", ImageOptions::default());
    // The daemon is not told that the source speaks plain HTTP, so its pull fails.
    let podman = Podman::start(&[&target]);
    let config = format!(
        "relay: docker\ndocker:\n  dockerhost: {}\n{}",
        podman.dockerhost(),
        task(
            &location(&source, None),
            &location(&target, None),
            "  - from: app\n    to: app\n    tags: ['1.0']\n",
        )
    );
    let out = run_dregsy(&config, &[]);
    let msg = &the_one_failure(&out);
    let pulled = format!("error pulling source image '{}/app:1.0'", source.host());
    assert!(msg.contains(&pulled), "{msg}");
    assert!(
        msg.contains("HTTP response to HTTPS client"),
        "the daemon's own words: {msg}"
    );
    assert_eq!(podman.image_count(), 0);
}

#[test]
fn docker_relay_cleans_up_also_when_a_copy_runs_out_of_time() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "app", "1.0", ImageOptions::default());
    // Every blob upload to the target waits 4 s: the push outlives `docker.timeout`.
    let slow_target = FaultProxy::start(
        &target.url(),
        vec![Rule::delay(r"/blobs/uploads/", Duration::from_secs(4))],
    );
    let podman = Podman::start_with_plain_hosts(&[&source, &target], &[slow_target.host()]);
    let config = format!(
        "relay: docker\ndocker:\n  dockerhost: {}\n  timeout: 2s\n{}",
        podman.dockerhost(),
        task(
            &location(&source, None),
            &format!(
                "    registry: {}\n    skip-tls-verify: true\n",
                slow_target.host()
            ),
            "  - from: app\n    to: mirror/app\n    tags: ['1.0']\n",
        )
    );
    let out = run_dregsy(&config, &[]);
    let msg = &the_one_failure(&out);
    assert!(msg.contains("did not finish within 2s"), "{msg}");
    assert_eq!(
        log_lines(&out, "pulling source image").len(),
        1,
        "the pull happened: {}",
        text(&out)
    );
    // What the job pulled and tagged is gone from the daemon.
    assert_eq!(podman.image_tags(), Vec::<String>::new());
    assert_eq!(podman.image_count(), 0, "{:?}", podman.image_tags());
}

#[test]
fn unreachable_docker_daemon_fails_at_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "relay: docker\ndocker:\n  dockerhost: unix://{}/docker.sock\n  ping-attempts: 2\n  ping-interval: 100ms\ntasks:\n- name: t\n  source:\n    registry: 127.0.0.1:1\n  target:\n    registry: 127.0.0.1:2\n  mappings:\n  - from: a\n",
        dir.path().display()
    );
    let out = run_dregsy(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        log_lines(
            &out,
            "unsuccessfully pinged Docker server 2 times, last error:"
        )
        .len(),
        1,
        "{}",
        text(&out)
    );
    assert!(log_lines(&out, "syncing task").is_empty());

    // Without 'dockerhost', DOCKER_HOST names the daemon.
    let socket = format!("unix://{}/from-env.sock", dir.path().display());
    let config = "docker:\n  ping-attempts: 1\ntasks: []\n";
    let out = run_dregsy(config, &[("DOCKER_HOST", &socket)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let errors = log_lines(&out, "unsuccessfully pinged Docker server 1 times");
    assert_eq!(errors.len(), 1, "{}", text(&out));
    assert!(
        errors[0]["msg"]
            .as_str()
            .is_some_and(|m| m.contains(&socket))
    );
}

#[test]
fn docker_relay_gets_credentials_from_a_credential_helper() {
    // The daemon receives the helper's credentials in X-Registry-Auth, as it would the
    // config's `auth`; the secret appears in no output.
    let source = Registry::start();
    let target = Registry::builder()
        .basic_auth()
        .user("mirror", AWKWARD_PASSWORD)
        .start();
    push_image(&source, "app", "1.0", ImageOptions::default());
    let podman = Podman::start(&[&source, &target]);
    let dir = tempfile::tempdir().expect("tempdir");
    let helper = dir.path().join("docker-credential-vault");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncat >/dev/null\nprintf '%s' '{{\"Username\":\"mirror\",\"Secret\":\"{}\"}}'\n",
            AWKWARD_PASSWORD.replace('\'', "'\\''").replace('"', "\\\"")
        ),
    )
    .expect("helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".docker")).expect("home");
    std::fs::write(
        home.join(".docker/config.json"),
        serde_json::json!({"credHelpers": {target.host(): "vault"}}).to_string(),
    )
    .expect("config.json");
    let config = format!(
        "relay: docker\ndocker:\n  dockerhost: {}\n  ping-attempts: 3\n  ping-interval: 200ms\n{}",
        podman.dockerhost(),
        task(
            &location(&source, None),
            &location(&target, None),
            "  - from: app\n    to: mirror/app\n    tags: ['1.0']\n    platform: linux/amd64\n",
        )
    );
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run_dregsy(
        &config,
        &[
            ("HOME", &home.display().to_string()),
            ("PATH", &path),
            ("LOG_LEVEL", "trace"),
        ],
    );
    assert_success(&out);
    assert_eq!(list_tags(&target, "mirror/app"), ["1.0"]);
    assert!(
        !text(&out).contains(AWKWARD_PASSWORD),
        "no secret in the logs"
    );
}
