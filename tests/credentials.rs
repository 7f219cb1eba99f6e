//! Credentials where users already keep them (docs/behaviour.md, "Credentials"): Docker and
//! podman credential files in every lookup location and key form, credential helpers (real
//! scripts speaking the helper protocol), identity tokens, `credentials-file`, `${NAME}` in
//! config values, what `plan` shows, and that no secret reaches any output.
//!
//! Every run gets its own HOME and no DOCKER_CONFIG, XDG_RUNTIME_DIR or REGISTRY_AUTH_FILE
//! (tests/support/dregsy.rs); the files below are written by the tests into temp dirs.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use serde_json::json;
use support::dregsy::{Dregsy, assert_success, log_lines, text};
use support::{ImageOptions, Registry, TokenOptions, manifest_digest, push_image};

const USER: &str = "syncer";
const PASSWORD: &str = "S3cret-Pa55word!";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Writes `content` to `path` (0600), creating its directory.
fn write_private(path: &Path, content: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path.to_path_buf()
}

/// A credential file with one `auths` entry of `user:password` under `key`.
fn auths(key: &str, user: &str, password: &str) -> String {
    json!({"auths": {key: {"auth": b64(&format!("{user}:{password}"))}}}).to_string()
}

fn basic_source() -> Registry {
    let source = Registry::builder()
        .basic_auth()
        .user(USER, PASSWORD)
        .start();
    push_image(&source, "app", "1", ImageOptions::default());
    push_image(&source, "team/app", "1", ImageOptions::default());
    source
}

/// What most tests start from: a basic-auth source holding `app:1` and `team/app:1`, an open
/// target, and an empty home for the dregsy run (its `~/.docker/config.json` not yet written).
struct Scene {
    source: Registry,
    target: Registry,
    host: String,
    _dir: tempfile::TempDir,
    home: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let source = basic_source();
        let dir = tempfile::tempdir().expect("tempdir");
        Scene {
            host: source.host(),
            source,
            target: Registry::start(),
            home: dir.path().join("home"),
            _dir: dir,
        }
    }

    fn config_json(&self) -> PathBuf {
        self.home.join(".docker/config.json")
    }

    fn home_env(&self) -> (&'static str, String) {
        ("HOME", self.home.display().to_string())
    }
}

/// A one-task config: `source` (with extra location lines) to an open `target`, mapping
/// `from` to `mirror/...`, with `top` lines before the task.
fn config(top: &str, source: &str, source_extra: &str, target: &Registry, from: &str) -> String {
    format!(
        "{top}tasks:\n- name: creds\n  source:\n    registry: {source}\n    skip-tls-verify: true\n{source_extra}  target:\n    registry: {}\n    skip-tls-verify: true\n  mappings:\n  - from: {from}\n    to: mirror/{from}\n    tags: ['1']\n",
        target.host()
    )
}

fn plan_json(cfg: &str, env: &[(&str, String)]) -> (Output, serde_json::Value) {
    let out = Dregsy::with_config(cfg)
        .args(&["plan", "--json"])
        .env("LOG_LEVEL", "trace")
        .envs(env)
        .output();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, json)
}

fn source_credentials(json: &serde_json::Value) -> String {
    json["tasks"][0]["source_credentials"]["from"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The target holds `source_repo:1` under `target_repo:1`, digest-identical.
fn assert_copied(source: &Registry, source_repo: &str, target: &Registry, target_repo: &str) {
    let copied = manifest_digest(target, target_repo, "1");
    assert!(copied.is_some(), "{target_repo}:1 is missing");
    assert_eq!(copied, manifest_digest(source, source_repo, "1"));
}

fn no_secret(out: &Output) {
    let all = text(out);
    assert!(!all.contains(PASSWORD), "password leaked:\n{all}");
    assert!(
        !all.contains(&b64(&format!("{USER}:{PASSWORD}"))),
        "auth leaked:\n{all}"
    );
    assert!(!all.contains("panicked"), "{all}");
}

/// A sync and a plan with `cfg`, both at trace level: each fails (exit 1) with every text of
/// `wants` in its output, and no secret.
fn sync_and_plan_fail(cfg: &str, env: &[(&str, String)], wants: &[&str]) {
    for args in [&[][..], &["plan"][..]] {
        let out = Dregsy::with_config(cfg)
            .args(args)
            .envs(env)
            .env("LOG_LEVEL", "trace")
            .output();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let all = text(&out);
        for want in wants {
            assert!(all.contains(want), "{args:?}: '{want}' missing in:\n{all}");
        }
        no_secret(&out);
    }
}

#[test]
fn credential_files_in_every_lookup_location() {
    let source = basic_source();
    let target = Registry::start();
    let host = source.host();
    let cfg = |top: &str, extra: &str| config(top, &host, extra, &target, "app");

    // Without credentials the source refuses: the cases below pass only through their file.
    let (out, json) = plan_json(&cfg("", ""), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(source_credentials(&json), "anonymous");

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let good = auths(&host, USER, PASSWORD);
    let top = write_private(&d.join("top/auth.json"), &good);
    let side = write_private(&d.join("side/.dockerconfigjson"), &good);
    let env_file = write_private(&d.join("env/auth.json"), &good);
    write_private(&d.join("xdg/containers/auth.json"), &good);
    write_private(&d.join("dc/config.json"), &good);
    write_private(&d.join("home/.docker/config.json"), &good);
    let home = d.join("home").display().to_string();
    // (top-level lines, source lines, environment, the source plan shows)
    type Case<'a> = (String, String, Vec<(&'a str, String)>, String);
    let cases: Vec<Case> = vec![
        (
            format!("auth-file: {}\n", top.display()),
            String::new(),
            vec![],
            format!("auth-file {} (auths)", top.display()),
        ),
        (
            String::new(),
            // A Kubernetes pull secret mounted as a file: the same format.
            format!("    auth-file: {}\n", side.display()),
            vec![],
            format!("auth-file {} (auths)", side.display()),
        ),
        (
            String::new(),
            String::new(),
            vec![("REGISTRY_AUTH_FILE", env_file.display().to_string())],
            format!("REGISTRY_AUTH_FILE {} (auths)", env_file.display()),
        ),
        (
            String::new(),
            String::new(),
            vec![("XDG_RUNTIME_DIR", d.join("xdg").display().to_string())],
            format!("{} (auths)", d.join("xdg/containers/auth.json").display()),
        ),
        (
            String::new(),
            String::new(),
            vec![("DOCKER_CONFIG", d.join("dc").display().to_string())],
            format!("{} (auths)", d.join("dc/config.json").display()),
        ),
        (
            String::new(),
            String::new(),
            vec![("HOME", home.clone())],
            "~/.docker/config.json (auths)".to_string(),
        ),
    ];
    for (top, extra, env, want) in cases {
        let (out, json) = plan_json(&cfg(&top, &extra), &env);
        assert_eq!(out.status.code(), Some(0), "{want}: {}", text(&out));
        assert_eq!(source_credentials(&json), want);
        assert_eq!(
            json["tasks"][0]["mappings"][0]["repositories"][0]["images"][0]["status"],
            "copy"
        );
        no_secret(&out);
    }

    // Earlier files win: a wrong password in ~/.docker/config.json is not used when
    // REGISTRY_AUTH_FILE has the entry; and the config's `auth` wins over every file.
    write_private(
        &d.join("home/.docker/config.json"),
        &auths(&host, USER, "wrong"),
    );
    let (out, _) = plan_json(
        &cfg("", ""),
        &[
            ("HOME", home.clone()),
            ("REGISTRY_AUTH_FILE", env_file.display().to_string()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (out, _) = plan_json(&cfg("", ""), &[("HOME", home.clone())]);
    assert_eq!(out.status.code(), Some(1), "the wrong password is refused");
    assert!(
        text(&out).contains("(from credential file ~/.docker/config.json (auths))"),
        "a refusal names the file the credentials came from: {}",
        text(&out)
    );
    let with_auth = format!("    auth: {}\n", source.auth_b64(USER, PASSWORD));
    let (out, json) = plan_json(&cfg("", &with_auth), &[("HOME", home.clone())]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(source_credentials(&json), "config");
    // `auth: none` is anonymous whatever the files hold.
    write_private(&d.join("home/.docker/config.json"), &good);
    let (out, json) = plan_json(&cfg("", "    auth: none\n"), &[("HOME", home)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(source_credentials(&json), "anonymous (auth: none)");
}

#[test]
fn key_forms_and_longest_prefix_match() {
    let scene = Scene::new();
    let (target, host) = (&scene.target, scene.host.clone());
    let config_json = scene.config_json();
    let env = [scene.home_env()];
    let run = |registry: &str, file: String| {
        write_private(&config_json, &file);
        let cfg = config("", registry, "", target, "app");
        let out = Dregsy::with_config(&cfg)
            .args(&["plan"])
            .envs(&env)
            .env("LOG_LEVEL", "trace")
            .output();
        no_secret(&out);
        out.status.code()
    };
    let entry = |user: &str, pass: &str| json!({"auth": b64(&format!("{user}:{pass}"))});
    for key in [
        host.clone(),
        format!("http://{host}"),
        format!("https://{host}/v1/"),
        format!("{host}/"),
    ] {
        assert_eq!(
            run(
                &host,
                json!({"auths": {&key: entry(USER, PASSWORD)}}).to_string()
            ),
            Some(0),
            "key {key}"
        );
    }
    // The username/password fields some tools write instead of `auth`.
    assert_eq!(
        run(
            &host,
            json!({"auths": {&host: {"username": USER, "password": PASSWORD}}}).to_string()
        ),
        Some(0)
    );
    // A registry with a path: the longest matching key wins, whole path segments only.
    let team = format!("{host}/team");
    let two = |general: (&str, &str), specific_key: &str, specific: (&str, &str)| {
        json!({"auths": {
            &host: entry(general.0, general.1),
            specific_key: entry(specific.0, specific.1),
        }})
        .to_string()
    };
    assert_eq!(
        run(&team, two((USER, "wrong"), &team, (USER, PASSWORD))),
        Some(0),
        "host/team beats host"
    );
    assert_eq!(
        run(
            &team,
            two((USER, PASSWORD), &format!("{host}/tea"), (USER, "wrong"))
        ),
        Some(0),
        "host/tea is no prefix of host/team"
    );
    assert_eq!(
        run(
            &team,
            two(
                (USER, "wrong"),
                &format!("{host}/team/app/x"),
                (USER, PASSWORD)
            )
        ),
        Some(1),
        "a longer key does not match a shorter registry path"
    );
}

#[test]
fn identity_token_is_sent_as_an_oauth2_refresh_token() {
    let source = Registry::builder()
        .token_auth(TokenOptions::default())
        .user(USER, PASSWORD)
        .start();
    push_image(&source, "app", "1", ImageOptions::default());
    let target = Registry::start();
    let refresh = source
        .token_server()
        .expect("token issuer")
        .refresh_token_for(USER);
    let dir = tempfile::tempdir().expect("tempdir");
    write_private(
        &dir.path().join("home/.docker/config.json"),
        &json!({"auths": {source.host(): {"identitytoken": refresh}}}).to_string(),
    );
    // One sync with `top` config lines into `target`, at trace level, leaking nothing.
    let sync = |top: &str, target: &Registry| {
        let cfg = config(top, &source.host(), "", target, "app");
        let out = Dregsy::with_config(&cfg)
            .env("HOME", &dir.path().join("home").display().to_string())
            .env("LOG_LEVEL", "trace")
            .output();
        assert_success(&out);
        assert!(!text(&out).contains(&refresh), "identity token leaked");
        assert_copied(&source, "app", target, "mirror/app");
    };
    sync("", &target);
    let ours: Vec<_> = source
        .token_requests()
        .into_iter()
        .filter(|r| r.client_id.as_deref() == Some("dregsy"))
        .collect();
    assert!(!ours.is_empty(), "{:?}", source.token_requests());
    for request in &ours {
        assert_eq!(request.method, "POST");
        assert_eq!(request.grant_type.as_deref(), Some("refresh_token"));
        assert_eq!(request.user.as_deref(), Some(USER));
        assert_eq!(request.status, 200);
    }

    // skopeo gets it as `identitytoken` in its private auth file and does the same grant.
    sync("relay: skopeo\n", &Registry::start());
    let refresh_grants = source
        .token_requests()
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token") && r.status == 200)
        .count();
    assert!(
        refresh_grants > ours.len(),
        "skopeo used the refresh token too"
    );
}

/// A directory on PATH with `docker-credential-<name>` scripts.
struct Helpers {
    dir: tempfile::TempDir,
}

impl Helpers {
    fn new() -> Helpers {
        Helpers {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A helper speaking the protocol: it logs its arguments and the server URL it read from
    /// standard input, answers `user:secret` for `server`, and "not found" for anything else.
    fn answering(&self, name: &str, server: &str, user: &str, secret: &str) {
        self.script(
            name,
            &format!(
                "server=$(cat)\necho \"$# $* $server\" >> '{log}'\nif [ \"$server\" = '{server}' ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}\\n' \"$server\"\n  exit 0\nfi\necho 'credentials not found in native keychain'\nexit 1\n",
                log = self.log_path(name).display()
            ),
        );
    }

    fn script(&self, name: &str, body: &str) {
        let path = self.dir.path().join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write helper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn calls(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.log_path(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
}

#[test]
fn credential_helpers_are_asked_once_per_registry_with_the_url_on_stdin() {
    let scene = Scene::new();
    let (source, target, home) = (&scene.source, &scene.target, &scene.home);
    let host = scene.host.clone();
    let helpers = Helpers::new();
    helpers.answering("testhelper", &host, USER, PASSWORD);
    let env = [scene.home_env(), ("PATH", helpers.path_env())];
    // Two mappings (and the target, which the helper has nothing for): one ask for the source.
    let cfg = format!(
        "{}  - from: team/app\n    to: mirror/team/app\n",
        config("", &host, "", target, "app")
    );
    for (file, want) in [
        (
            json!({"credHelpers": {&host: "testhelper"}}),
            "credential helper testhelper (credHelpers in ~/.docker/config.json)",
        ),
        (
            json!({"credsStore": "testhelper", "auths": {&host: {}}}),
            "credential helper testhelper (credsStore in ~/.docker/config.json)",
        ),
    ] {
        let _ = std::fs::remove_file(helpers.log_path("testhelper"));
        write_private(&home.join(".docker/config.json"), &file.to_string());
        let out = Dregsy::with_config(&cfg)
            .envs(&env)
            .env("LOG_LEVEL", "trace")
            .output();
        assert_success(&out);
        no_secret(&out);
        let calls = helpers.calls("testhelper");
        let source_calls = calls.iter().filter(|c| c.ends_with(&host)).count();
        assert_eq!(source_calls, 1, "asked once for the source: {calls:?}");
        // Only `get` on the command line; the server URL came on standard input.
        assert!(calls.iter().all(|c| c.starts_with("1 get ")), "{calls:?}");
        let debug = log_lines(&out, &format!("credentials for {host} from"));
        assert!(!debug.is_empty(), "a debug line says where: {}", text(&out));
        assert_eq!(debug[0]["source"], want);

        let (out, json) = plan_json(&cfg, &env);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(source_credentials(&json), want);
        no_secret(&out);
    }
    assert_copied(source, "team/app", target, "mirror/team/app");
}

#[test]
fn failing_helpers_give_clear_errors_without_their_output() {
    let scene = Scene::new();
    let (target, home) = (&scene.target, &scene.home);
    let host = scene.host.clone();
    let helpers = Helpers::new();
    helpers.script("hangs", "exec sleep 600\n");
    helpers.script(
        "fails",
        &format!("cat >/dev/null\necho 'oops {PASSWORD}'\necho 'oops {PASSWORD}' >&2\nexit 1\n"),
    );
    helpers.script(
        "garbage",
        &format!("cat >/dev/null\necho '{PASSWORD} is not JSON'\n"),
    );
    let env = [scene.home_env(), ("PATH", helpers.path_env())];
    let cfg = config("credential-helper-timeout: 2s\n", &host, "", target, "app");
    for (name, want) in [
        ("hangs", "no answer within 2 s"),
        ("fails", "its output is not shown"),
        ("garbage", "answered something other than"),
        ("absent", "is not installed"),
    ] {
        write_private(
            &home.join(".docker/config.json"),
            &json!({"credHelpers": {&host: name}}).to_string(),
        );
        let program = format!("docker-credential-{name}");
        sync_and_plan_fail(&cfg, &env, &[&program, &host, want]);
    }
    // A helper name that is a path is refused before anything runs.
    write_private(
        &home.join(".docker/config.json"),
        &json!({"credHelpers": {&host: "../../bin/sh"}}).to_string(),
    );
    let out = Dregsy::with_config(&cfg).envs(&env).output();
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out);
    assert!(all.contains("not a credential helper name"), "{all}");
    assert!(all.contains("config.json"), "names the file: {all}");
}

#[test]
fn podman_login_auth_json_is_read() {
    let source = basic_source();
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let authfile = dir.path().join("runtime/containers/auth.json");
    std::fs::create_dir_all(authfile.parent().expect("parent")).expect("mkdir");
    support::podman::login(&authfile, &source, USER, PASSWORD);
    let cfg = config("", &source.host(), "", &target, "app");
    let out = Dregsy::with_config(&cfg)
        .env(
            "XDG_RUNTIME_DIR",
            &dir.path().join("runtime").display().to_string(),
        )
        .env("LOG_LEVEL", "trace")
        .output();
    assert_success(&out);
    no_secret(&out);
    assert_copied(&source, "app", &target, "mirror/app");
}

#[test]
fn credentials_file_and_environment_variables_in_values() {
    let source = basic_source();
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = write_private(&dir.path().join("secret"), &format!("{USER}:{PASSWORD}\n"));
    let cfg = config(
        "",
        &source.host(),
        &format!("    credentials-file: {}\n", secret.display()),
        &target,
        "app",
    );
    let (out, json) = plan_json(&cfg, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        source_credentials(&json),
        format!("credentials-file {}", secret.display())
    );
    no_secret(&out);

    // `${NAME}` outside a mapping's from/to/tags; `${1}`/`${name}` in `to` stay replacement
    // references even when variables of those names exist.
    let cfg = format!(
        "tasks:\n- name: env\n  source:\n    registry: ${{SRC_HOST}}\n    skip-tls-verify: ${{TLS_OFF:-true}}\n    auth: ${{SRC_AUTH}}\n  target:\n    registry: {}\n    skip-tls-verify: true\n  mappings:\n  - from: 'regex:^team/(?P<name>a.p)$'\n    to: 'regex:^/team/(?P<name>a.p)$,/mirror/${{name}}-${{1}}'\n    tags: ['1']\n",
        target.host()
    );
    let auth = source.auth_b64(USER, PASSWORD);
    let out = Dregsy::with_config(&cfg)
        .env("SRC_HOST", &source.host())
        .env("SRC_AUTH", &auth)
        .env("name", "not-this")
        .env("LOG_LEVEL", "trace")
        .output();
    assert_success(&out);
    no_secret(&out);
    assert!(
        !text(&out).contains(&auth),
        "the substituted auth value leaked"
    );
    assert_copied(&source, "team/app", &target, "mirror/app-app");

    // A missing variable and an unclosed `${` are config errors naming file and line.
    for (value, want) in [
        (
            "${NOT_SET_ANYWHERE}",
            "environment variable NOT_SET_ANYWHERE is not set",
        ),
        ("${SRC_HOST", "without a closing '}'"),
    ] {
        let cfg = format!(
            "tasks:\n- name: env\n  source:\n    registry: {value}\n  target:\n    registry: x\n  mappings:\n  - from: a\n"
        );
        let out = Dregsy::with_config(&cfg).output();
        assert_eq!(out.status.code(), Some(1));
        let all = text(&out);
        assert!(all.contains(want), "{all}");
        assert!(
            all.contains("config.yaml") && all.contains("line 4"),
            "{all}"
        );
    }
}

#[test]
fn bad_credential_files_fail_clearly_and_wide_open_ones_warn() {
    let scene = Scene::new();
    let (host, file) = (scene.host.clone(), scene.config_json());
    let env = [scene.home_env()];
    let cfg = config("", &host, "", &scene.target, "app");
    for (content, want) in [
        (
            format!("{{\"auths\": {{\"{host}\": {PASSWORD}"),
            "is not valid JSON",
        ),
        (
            json!({"auths": {&host: {"auth": b64(PASSWORD)}}}).to_string(),
            "not base64 of 'user:password'",
        ),
        (
            json!({"auths": {&host: {"auth": format!("{PASSWORD}!")}}}).to_string(),
            "is not base64",
        ),
    ] {
        write_private(&file, &content);
        sync_and_plan_fail(&cfg, &env, &[&file.display().to_string(), want]);
    }
    write_private(&file, &auths(&host, USER, PASSWORD));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Dregsy::with_config(&cfg).envs(&env).output();
    assert_success(&out);
    let warnings = log_lines(&out, "credential file is readable by every user");
    assert_eq!(warnings.len(), 1, "{}", text(&out));
    assert!(
        warnings[0]["msg"]
            .as_str()
            .is_some_and(|m| m.contains("chmod 600")),
        "{warnings:?}"
    );
}

#[test]
fn skopeo_relay_gets_credentials_from_a_credential_file() {
    let source = basic_source();
    let target = Registry::builder()
        .basic_auth()
        .user(USER, PASSWORD)
        .start();
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    write_private(
        &home.join(".docker/config.json"),
        &json!({"auths": {
            source.host(): {"auth": b64(&format!("{USER}:{PASSWORD}"))},
            target.host(): {"auth": b64(&format!("{USER}:{PASSWORD}"))},
        }})
        .to_string(),
    );
    let cfg = config("relay: skopeo\n", &source.host(), "", &target, "app");
    let out = Dregsy::with_config(&cfg)
        .env("HOME", &home.display().to_string())
        .env("LOG_LEVEL", "trace")
        .output();
    assert_success(&out);
    no_secret(&out);
    assert_copied(&source, "app", &target, "mirror/app");
}

#[test]
fn docker_hub_key_forms_all_match_docker_hub() {
    // "Docker Hub" is a local registry behind a proxy: `registry: http://docker.io` sends
    // plain-HTTP requests for registry-1.docker.io, which HTTP_PROXY hands to the proxy.
    let hub = Registry::builder()
        .basic_auth()
        .user(USER, PASSWORD)
        .start();
    push_image(&hub, "library/app", "1", ImageOptions::default());
    let proxy = support::FaultProxy::start(&hub.url(), vec![]);
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let cfg = config("", "http://docker.io", "", &target, "app");
    let env = |home: &Path| {
        [
            ("HOME", home.display().to_string()),
            ("HTTP_PROXY", proxy.url()),
            ("NO_PROXY", "127.0.0.1,localhost".to_string()),
        ]
    };
    // Without a file the proxied "Docker Hub" refuses: the keys below are what make it work.
    let (out, _) = plan_json(&cfg, &env(&home));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for key in [
        "https://index.docker.io/v1/",
        "docker.io",
        "registry-1.docker.io",
        "index.docker.io",
    ] {
        write_private(
            &home.join(".docker/config.json"),
            &auths(key, USER, PASSWORD),
        );
        let (out, json) = plan_json(&cfg, &env(&home));
        assert_eq!(out.status.code(), Some(0), "key {key}: {}", text(&out));
        assert_eq!(source_credentials(&json), "~/.docker/config.json (auths)");
        no_secret(&out);
    }
}
