//! The original's config fixtures (tests/fixtures/config) and their outcomes, plus the bad-input
//! cases of the foundation: every one loads, or fails with the original's text, never a panic.

use std::path::{Path, PathBuf};

use dregsy::config::{self, Level, RelayKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn load_error(name: &str) -> config::ConfigError {
    match config::load(&fixture(name)) {
        Ok(_) => panic!("{name} must not load"),
        Err(e) => e,
    }
}

#[test]
fn valid_fixtures_load_with_their_relay() {
    let (skopeo, _) = config::load(&fixture("skopeo-valid.yaml")).expect("skopeo-valid loads");
    assert_eq!(skopeo.relay, RelayKind::Skopeo);
    assert_eq!(skopeo.lister.max_items, Some(50));
    assert_eq!(
        skopeo.lister.cache_duration,
        Some(std::time::Duration::from_secs(1800))
    );
    let task = &skopeo.tasks[0];
    assert_eq!(task.interval, Some(std::time::Duration::from_secs(30)));
    assert_eq!(task.mappings[0].tag_entries, ["1.29.2", "1.29.3", "latest"]);
    assert_eq!(task.mappings[0].platform.as_config_text(), "linux/arm/v6");
    assert!(task.target.skip_tls_verify);
    assert_eq!(
        task.target
            .auth
            .credentials()
            .map(|c| c.username().to_string()),
        Some("anonymous".to_string())
    );

    let (docker, _) = config::load(&fixture("docker-valid.yaml")).expect("docker-valid loads");
    assert_eq!(docker.relay, RelayKind::Docker);
    assert_eq!(docker.docker.api_version, "1.24");
    assert_eq!(docker.docker.dockerhost, "unix:///var/run/docker.sock");
}

#[test]
fn invalid_fixtures_fail_with_the_original_texts() {
    let cases = [
        (
            "invalid-relay.yaml",
            "invalid relay type: 'splunge', must be either 'docker' or 'skopeo'",
        ),
        (
            "multiple-relays.yaml",
            "setting 'dockerhost' implies 'docker' relay",
        ),
        ("task-no-name.yaml", "a task requires a name"),
        (
            "task-low-interval.yaml",
            "minimum task interval is 30 seconds",
        ),
        (
            "task-bad-interval.yaml",
            "task interval needs to be 0 or a positive integer",
        ),
        (
            "task-no-source.yaml",
            "source registry in task 'test' invalid: location is nil",
        ),
        (
            "task-no-target.yaml",
            "target registry in task 'test' invalid: location is nil",
        ),
        (
            "source-no-registry.yaml",
            "source registry in task 'test' invalid: registry not set",
        ),
        ("source-not-ecr.yaml", "is not an ECR registry"),
        ("mapping-no-from.yaml", "mapping without 'From' path"),
    ];
    for (name, expected) in cases {
        let error = load_error(name);
        let text = error.to_string();
        assert!(text.contains(expected), "{name}: {text}");
        assert!(
            text.contains(name),
            "{name}: the error names the file: {text}"
        );
        assert!(
            error.line.is_some(),
            "{name}: the error names a line: {text}"
        );
    }
}

#[test]
fn docker_platform_all_loads_but_no_relay_accepts_it() {
    let (config, _) = config::load(&fixture("docker-platform-all.yaml")).expect("loads");
    let error = dregsy::relay::check_config(&config).expect_err("docker cannot copy 'all'");
    assert_eq!(
        error,
        "cannot create sync relay: relay 'docker' does not support mappings with 'platform: all'"
    );
}

#[test]
fn deprecated_docker_keys_load_with_warnings() {
    let (config, notices) = config::load(&fixture("docker-deprecated.yaml")).expect("loads");
    assert_eq!(config.relay, RelayKind::Docker);
    assert_eq!(config.docker.api_version, "1.24");
    let warnings: Vec<&str> = notices
        .iter()
        .filter(|n| n.level == Level::Warn)
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(
        warnings,
        [
            "the top-level 'dockerhost' setting is deprecated, use 'docker' config item instead",
            "the top-level 'api-version' setting is deprecated, use 'docker' config item instead"
        ]
    );
    assert!(config.tasks.is_empty());
}

fn load_text(text: &str) -> Result<config::Config, config::ConfigError> {
    config::load_str(Path::new("inline.yaml"), text).map(|(c, _)| c)
}

#[test]
fn relay_defaults_follow_d6() {
    assert_eq!(
        load_text("tasks: []\n").expect("ok").relay,
        RelayKind::Native
    );
    assert_eq!(
        load_text("relay: native\n").expect("ok").relay,
        RelayKind::Native
    );
    assert_eq!(
        load_text("docker: {dockerhost: 'unix:///x.sock'}\n")
            .expect("ok")
            .relay,
        RelayKind::Docker
    );
    assert_eq!(
        load_text("api-version: 1.40\n")
            .expect("ok")
            .docker
            .api_version,
        "1.40"
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let cases = [
        (
            "a: [1, 2\nb: c\n",
            "error parsing config file 'inline.yaml'",
        ),
        ("- a\n- b\n", "cannot unmarshal !!seq"),
        ("tasks: [~]\n", "task #1 is empty"),
        ("tasks: 5\n", "cannot unmarshal !!int `5`"),
        (
            "tasks:\n- name: x\n  interval: '60'\n",
            "cannot unmarshal !!str `60` into int",
        ),
        (
            "tasks:\n- name: t\n  source: {registry: a}\n  target: {registry: b}\n  mappings: [~]\n",
            "mapping is nil",
        ),
        (
            "tasks:\n- name: t\n  source: {registry: a}\n  target: {registry: b}\n  mappings:\n  - from: x\n    platform: linux/amd64/v1/extra\n",
            "invalid platform 'linux/amd64/v1/extra'",
        ),
        (
            "tasks:\n- name: t\n  source: {registry: a, auth: 'abc!'}\n  target: {registry: b}\n",
            "source registry in task 't' invalid: invalid Auth: illegal base64 data at input byte 3",
        ),
        (
            "tasks:\n- name: t\n  source: {registry: 'https://me:s3cret@r.io/team'}\n  target: {registry: b}\n",
            "source registry in task 't' invalid: registry 'https://***@r.io/team' holds user information",
        ),
        (
            "tasks:\n- name: t\n  source: {registry: a}\n  target: {registry: 'me:s3cret@r.io:5000'}\n",
            "target registry in task 't' invalid: registry '***@r.io:5000' holds user information",
        ),
    ];
    for (text, expected) in cases {
        let error = load_text(text).expect_err(text);
        assert!(error.to_string().contains(expected), "{text:?}: {error}");
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}

#[test]
fn unreadable_inputs_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = config::load(dir.path()).expect_err("a directory");
    assert!(error.to_string().contains("is a directory"), "{error}");

    let missing = dir.path().join("missing.yaml");
    let error = config::load(&missing).expect_err("missing");
    assert!(
        error.to_string().contains("error loading config file"),
        "{error}"
    );

    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, [b'a', b':', b' ', 0xff, 0xfe, b'\n']).expect("write");
    let error = config::load(&binary).expect_err("invalid utf-8");
    assert!(error.to_string().contains("not valid UTF-8"), "{error}");

    let huge = dir.path().join("huge.yaml");
    let line = "# padding padding padding padding padding padding padding padding\n";
    std::fs::write(&huge, line.repeat(10 * 1024 * 1024 / line.len() + 1)).expect("write");
    let error = config::load(&huge).expect_err("10 MB");
    assert!(error.to_string().contains("more than the limit"), "{error}");
}

#[test]
fn anchors_and_merge_keys_work_in_configs() {
    let text = "\
defaults: &src
  registry: 127.0.0.1:5000
  skip-tls-verify: yes
tasks:
- name: t
  source:
    <<: *src
  target:
    <<: *src
    registry: 127.0.0.1:5001
  mappings:
  - from: app
";
    let (config, notices) = config::load_str(Path::new("anchors.yaml"), text).expect("loads");
    let task = &config.tasks[0];
    assert_eq!(task.source.registry, "127.0.0.1:5000");
    assert_eq!(task.target.registry, "127.0.0.1:5001");
    assert!(task.source.skip_tls_verify && task.target.skip_tls_verify);
    // The anchor holder itself is an unknown top-level key: accepted, but warned about.
    assert!(
        notices
            .iter()
            .any(|n| n.message.contains("unknown config key 'defaults'")),
        "{notices:?}"
    );
}

#[test]
fn daemon_settings_health_listen_and_shutdown_grace() {
    let defaults = load_text("tasks: []\n").expect("ok").daemon;
    assert_eq!(defaults.health_listen, None);
    assert_eq!(defaults.shutdown_grace, std::time::Duration::from_secs(60));

    let config = load_text("health:\n  listen: ':8080'\nshutdown-grace: 2m\n").expect("ok");
    assert_eq!(
        config.daemon.health_listen,
        Some("0.0.0.0:8080".parse().expect("address"))
    );
    assert_eq!(
        config.daemon.shutdown_grace,
        std::time::Duration::from_secs(120)
    );
    let config = load_text("health: {listen: '[::1]:9000'}\nshutdown-grace: -1\n").expect("ok");
    assert_eq!(
        config.daemon.health_listen,
        Some("[::1]:9000".parse().expect("address"))
    );
    assert_eq!(config.daemon.shutdown_grace, std::time::Duration::ZERO);

    let error = load_text("tasks: []\nhealth:\n  listen: localhost\n")
        .expect_err("a host without a port is refused")
        .to_string();
    assert!(
        error.contains("'health.listen': invalid listen address 'localhost'"),
        "{error}"
    );
    assert!(error.contains("line 3"), "{error}");

    let (_, notices) =
        config::load_str(Path::new("x.yaml"), "health: {listn: ':1'}\n").expect("loads");
    assert!(
        notices
            .iter()
            .any(|n| n.message.contains("'listn'") && n.message.contains("did you mean 'listen'")),
        "{notices:?}"
    );
}

#[test]
fn compatibility_relay_settings() {
    use std::time::Duration;
    let config = load_text(
        "relay: skopeo\nskopeo:\n  binary: /opt/skopeo\n  timeout: 10m\n  parallel-images: 3\n",
    )
    .expect("ok");
    assert_eq!(config.skopeo.binary(), "/opt/skopeo");
    assert_eq!(config.skopeo.timeout, Duration::from_secs(600));
    assert_eq!(config.skopeo.parallel_images, 3);
    let defaults = load_text("relay: skopeo\n").expect("ok");
    assert_eq!(defaults.skopeo.binary(), "skopeo");
    assert_eq!(defaults.skopeo.parallel_images, 1);

    let config = load_text(
        "docker:\n  dockerhost: tcp://127.0.0.1:2375\n  ping-attempts: 2\n  ping-interval: 500ms\n  timeout: 1h\n",
    )
    .expect("ok");
    assert_eq!(config.relay, RelayKind::Docker);
    assert_eq!(config.docker.ping_attempts, 2);
    assert_eq!(config.docker.ping_interval, Duration::from_millis(500));
    assert_eq!(config.docker.timeout, Duration::from_secs(3600));

    for (text, expected) in [
        (
            "relay: skopeo\nskopeo:\n  parallel-images: 0\n",
            "'skopeo.parallel-images' must be between 1 and 64, not 0",
        ),
        (
            "relay: skopeo\nskopeo:\n  timeout: -1s\n",
            "'skopeo.timeout' must be a positive duration",
        ),
        (
            "docker:\n  ping-attempts: 1000\n",
            "'docker.ping-attempts' must be between 1 and 100, not 1000",
        ),
    ] {
        let error = load_text(text).expect_err(text);
        assert!(error.to_string().contains(expected), "{text:?}: {error}");
    }
}

#[test]
fn native_cache_dir_and_foreign_layers() {
    use dregsy::config::CacheDir;
    let defaults = load_text("tasks: []\n").expect("ok");
    assert_eq!(defaults.native.cache_dir, CacheDir::Default);
    assert!(!defaults.native.include_foreign_layers);
    let config =
        load_text("native:\n  cache-dir: /var/cache/dregsy\n  include-foreign-layers: yes\n")
            .expect("ok");
    assert_eq!(
        config.native.cache_dir,
        CacheDir::Path("/var/cache/dregsy".into())
    );
    assert!(config.native.include_foreign_layers);
    let off = load_text("native:\n  cache-dir: '-'\n").expect("ok");
    assert_eq!(off.native.cache_dir, CacheDir::Off);
    let error = load_text("tasks: []\nnative:\n  cache-dir: ''\n")
        .expect_err("an empty cache dir is refused")
        .to_string();
    assert!(error.contains("'native.cache-dir' is empty"), "{error}");
    assert!(error.contains("line 3"), "{error}");
    let error = load_text("native:\n  include-foreign-layers: sometimes\n")
        .expect_err("not a bool")
        .to_string();
    assert!(error.contains("sometimes"), "{error}");
}

#[test]
fn native_tries_its_old_name_and_time_limits() {
    use std::time::Duration;
    let defaults = load_text("tasks: []\n").expect("ok").native;
    assert_eq!(defaults.tries, 5);
    assert_eq!(defaults.connect_timeout, Duration::from_secs(15));
    assert_eq!(defaults.stall_timeout, Duration::from_secs(60));
    assert_eq!(defaults.commit_timeout, Duration::from_secs(300));

    let text =
        "native:\n  tries: 3\n  connect-timeout: 5s\n  stall-timeout: 2m\n  commit-timeout: 20m\n";
    let native = load_text(text).expect("ok").native;
    assert_eq!(native.tries, 3);
    assert_eq!(native.connect_timeout, Duration::from_secs(5));
    assert_eq!(native.stall_timeout, Duration::from_secs(120));
    assert_eq!(native.commit_timeout, Duration::from_secs(1200));

    // The old name still counts tries, with a notice; the new name wins when both are set.
    let (config, notices) =
        config::load_str(Path::new("x.yaml"), "native:\n  retries: 2\n").expect("loads");
    assert_eq!(config.native.tries, 2);
    assert!(
        notices.iter().any(|n| n.level == Level::Warn
            && n.message
                .contains("'native.retries' on line 2 is the old name of 'native.tries'")),
        "{notices:?}"
    );
    let both = "native:\n  tries: 4\n  retries: 2\n";
    assert_eq!(load_text(both).expect("ok").native.tries, 4);
    let both = "native:\n  retries: 2\n  tries: 4\n";
    assert_eq!(load_text(both).expect("ok").native.tries, 4);

    let error = load_text("native:\n  commit-timeout: -1s\n")
        .expect_err("a limit cannot be turned off")
        .to_string();
    assert!(
        error.contains("'native.commit-timeout' must be a positive duration"),
        "{error}"
    );
    let error = load_text("native:\n  tries: 0\n")
        .expect_err("at least one try")
        .to_string();
    assert!(
        error.contains("'native.tries' must be between 1 and 20"),
        "{error}"
    );
}

/// `${NAME}` substitution (docs/configuration.md) changes nothing in any example or any of the
/// original's fixtures, whatever the environment holds: a lookup that has a value for every
/// name leaves each parsed document exactly as it was. And in a mapping's `to`, Go-style
/// replacement references (`${1}`, `${name}`, `${REPO}`) are never substituted.
#[test]
fn environment_substitution_keeps_every_example_and_fixture_unchanged() {
    use dregsy::config::{substitute, yaml};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["examples", "tests/fixtures/config"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("directory") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 17, "{files:?}");
    let everything_set = |_: &str| Some("SUBSTITUTED".to_string());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let Ok(Some(original)) = yaml::parse(&text) else {
            continue;
        };
        let mut substituted = original.clone();
        substitute::apply(&mut substituted, &everything_set)
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        assert_eq!(substituted, original, "{} changed", path.display());
    }

    let config = "tasks:\n- name: t\n  source: {registry: '${SOURCE_HOST}'}\n  target: {registry: t}\n  mappings:\n  - from: 'regex:^(?P<REPO>[a-z]+)/(?P<name>.*)$'\n    to: 'regex:^/(?P<REPO>[a-z]+)/(?P<name>.*)$,/mirror/${REPO}/${name}/${1}'\n";
    let mut node = yaml::parse(config).expect("yaml").expect("document");
    substitute::apply(&mut node, &everything_set).expect("substituted");
    let shown = format!("{node:?}");
    assert!(shown.contains("/mirror/${REPO}/${name}/${1}"), "{shown}");
    assert!(shown.contains("SUBSTITUTED"), "{shown}");
}

#[test]
fn an_oci_layout_side_loads_and_network_keys_on_it_are_errors() {
    let task = |source: &str| {
        format!(
            "tasks:\n- name: carry\n  source:\n    registry: 127.0.0.1:5000\n  target:\n    \
             {source}\n  mappings: [{{from: 'regex:.*'}}]\n"
        )
    };
    let config = load_text(&task("registry: oci:/mnt/transfer")).expect("a layout target loads");
    let target = &config.tasks[0].target;
    assert_eq!(
        target.layout(),
        Some(std::path::PathBuf::from("/mnt/transfer"))
    );
    assert!(target.cloud.is_none());
    // A regex source that is a layout lists its own directories: no lister key needed.
    let swapped = "tasks:\n- name: carry\n  source: {registry: 'oci:./in'}\n  target: \
                   {registry: 127.0.0.1:5000}\n  mappings: [{from: 'regex:.*'}]\n";
    let config = load_text(swapped).expect("a layout source loads");
    assert!(config.tasks[0].source.layout().is_some());

    for (key, line) in [
        ("auth", "auth: dXNlcjpwYXNz"),
        ("auth-refresh", "auth-refresh: 2h"),
        ("skip-tls-verify", "skip-tls-verify: true"),
        ("lister", "lister: {type: catalog}"),
        ("auth-file", "auth-file: /root/.docker/config.json"),
        ("credentials-file", "credentials-file: /run/secrets/x"),
    ] {
        let text = task(&format!("registry: oci:/mnt/transfer\n    {line}"));
        let error = load_text(&text).expect_err(key);
        let shown = error.to_string();
        assert!(
            shown.contains(&format!(
                "target registry in task 'carry' invalid: '{key}' does not apply to an OCI image \
                 layout ('oci:/mnt/transfer'): remove it"
            )),
            "{shown}"
        );
        assert!(
            shown.contains("config file 'inline.yaml', line 6"),
            "{shown}"
        );
    }
    let error = load_text(&task("registry: oci:transfer")).expect_err("ambiguous");
    assert!(
        error
            .to_string()
            .contains("write 'oci:/absolute/path' or 'oci:./relative/path'"),
        "{error}"
    );
    // A host called "oci" with a port is still a registry.
    let config = load_text(&task("registry: oci:5000/mirror")).expect("a host");
    assert!(config.tasks[0].target.layout().is_none());
}

/// A `registry` that is not a host is parsed, and refused, when the config loads: the message
/// names the file, the line of the side, the task and the value.
#[test]
fn a_registry_that_is_not_a_host_is_a_config_error() {
    for (side, registry, why) in [
        ("source", "r.io:99999", "'99999' is not a port number"),
        (
            "target",
            "ftp://r.io",
            "only http:// and https:// are supported",
        ),
        (
            "target",
            "r io/mirror",
            "character ' ' is not allowed in a host",
        ),
        (
            "target",
            "OCI:./x",
            "'.' is not a port number; layout directories are written `oci:<dir>` in lower \
             case, e.g. 'oci:/srv/mirror' or 'oci:./mirror'",
        ),
    ] {
        let (source, target) = match side {
            "source" => (registry, "127.0.0.1:5000"),
            _ => ("127.0.0.1:5000", registry),
        };
        let text = format!(
            "tasks:\n- name: t\n  source:\n    registry: '{source}'\n  target:\n    \
             registry: '{target}'\n  mappings: [{{from: a}}]\n"
        );
        let shown = load_text(&text).expect_err(registry).to_string();
        let line = if side == "source" { 4 } else { 6 };
        assert!(
            shown.contains(&format!(
                "{side} registry in task 't' invalid: invalid registry '"
            )) && shown.contains(why)
                && shown.contains(&format!("config file 'inline.yaml', line {line}")),
            "{shown}"
        );
    }
}

#[test]
fn the_docker_relay_refuses_an_oci_layout_side() {
    let text = "relay: docker\ndocker: {dockerhost: 'unix:///x.sock'}\ntasks:\n- name: carry\n  \
                source: {registry: 127.0.0.1:5000}\n  target: {registry: 'oci:/mnt/t'}\n  \
                mappings: [{from: a}]\n";
    let error = load_text(text).expect_err("docker relay with a layout");
    assert!(
        error.to_string().contains(
            "task 'carry': the docker relay cannot read or write OCI image layouts ('oci:/mnt/t')"
        ),
        "{error}"
    );
}

#[test]
fn the_air_gap_examples_load_with_a_layout_on_the_right_side() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (out, _) = config::load(&root.join("air-gap-out.yaml")).expect("air-gap-out loads");
    let (inside, _) = config::load(&root.join("air-gap-in.yaml")).expect("air-gap-in loads");
    let carried = Some(PathBuf::from("/mnt/transfer/mirror"));
    assert_eq!(out.tasks[0].target.layout(), carried);
    assert_eq!(out.tasks[0].source.layout(), None);
    assert_eq!(inside.tasks[0].source.layout(), carried);
    assert_eq!(inside.tasks[0].target.layout(), None);
}

/// A mapping's keys written at a task's level (a mis-indented `to:` and `tags:`), or a task's
/// keys at the top level, are config errors naming each key, its line and where it belongs:
/// ignored, they would sync every tag to the wrong place. Other unknown keys stay warnings.
#[test]
fn keys_written_above_their_section_are_errors_naming_where_they_belong() {
    let misindented = "\
tasks:
- name: mirror
  source: {registry: 127.0.0.1:5000}
  target: {registry: 127.0.0.1:5001}
  mappings:
  - from: library/busybox
  to: mirror/busybox
  tags: ['1.36.1']
";
    let error = load_text(misindented).expect_err("a mis-indented mapping");
    assert_eq!(error.line, Some(7));
    assert_eq!(
        error.message,
        "config key 'to' in tasks[0] (line 7) belongs under a mapping: - from: … in the task's \
         'mappings:' list; indent it there. It is an error, not a warning, because ignoring it \
         would sync something other than what the file says\n\
         config key 'tags' in tasks[0] (line 8) belongs under a mapping: - from: … in the \
         task's 'mappings:' list; indent it there. It is an error, not a warning, because \
         ignoring it would sync something other than what the file says"
    );
    assert!(
        error
            .to_string()
            .ends_with("(config file 'inline.yaml', line 7)"),
        "{error}"
    );

    for (text, key, line, home) in [
        (
            "name: mirror\ntasks: []\n",
            "name",
            1,
            "a task: tasks: - name: …",
        ),
        (
            "tasks: []\nsource: {registry: a}\n",
            "source",
            2,
            "a task: tasks: - name: …",
        ),
        // `verify` is a task's and a mapping's key, not a top-level one: ignored, it would
        // copy images unchecked.
        (
            "verify: {cosign-key: k.pub}\n",
            "verify",
            1,
            "a task: tasks: - name: …",
        ),
        (
            "tasks: []\nplatform: all\n",
            "platform",
            2,
            "a mapping: tasks: - mappings: - from: …",
        ),
    ] {
        let error = load_text(text).expect_err(text);
        assert_eq!(error.line, Some(line), "{text:?}");
        assert!(
            error.message.starts_with(&format!(
                "config key '{key}' at the top level (line {line}) belongs under {home}; \
                 indent it there."
            )),
            "{text:?}: {error}"
        );
    }

    // A source's or target's key at a task's level or the top level.
    let stray_auth = "\
tasks:
- name: mirror
  source: {registry: 127.0.0.1:5000}
  target:
    registry: 127.0.0.1:5001
  auth: dXNlcjpwYXNz
  mappings: [{from: a}]
";
    let error = load_text(stray_auth).expect_err("an auth at a task's level");
    assert_eq!(error.line, Some(6));
    assert!(
        error.message.starts_with(
            "config key 'auth' in tasks[0] (line 6) belongs under the task's 'source:' or \
             'target:'; indent it there."
        ),
        "{error}"
    );
    assert!(!error.to_string().contains("dXNlcjpwYXNz"), "{error}");
    let error = load_text("tasks: []\nskip-tls-verify: true\n").expect_err("top level");
    assert!(
        error.message.starts_with(
            "config key 'skip-tls-verify' at the top level (line 2) belongs under a task's \
             'source:' or 'target:'"
        ),
        "{error}"
    );

    // Keys valid where they are written, and unknown keys of no section, are not errors.
    let (_, notices) = config::load_str(
        Path::new("x.yaml"),
        "referrers: true\nmin-age: 1h\ntasks:\n- name: t\n  source: {registry: a}\n  \
         target: {registry: b}\n  referrers: false\n  colour: blue\n  mappings: [{from: a}]\n",
    )
    .expect("loads");
    let warnings: Vec<&str> = notices.iter().map(|n| n.message.as_str()).collect();
    assert_eq!(
        warnings,
        ["unknown config key 'colour' in tasks[0] (line 8) is ignored"]
    );
}

/// A task without mappings would sync nothing: a config error naming the task and its line,
/// and a misspelt `mappings` key when there is one (the original ran it and exited 0).
#[test]
fn a_task_without_mappings_is_an_error() {
    let task = |rest: &str| {
        format!(
            "tasks:\n- name: ok\n  source: {{registry: a}}\n  target: {{registry: b}}\n  \
             mappings: [{{from: x}}]\n- name: mirror\n  source: {{registry: a}}\n  target: \
             {{registry: b}}\n{rest}"
        )
    };
    let error = load_text(&task("  mapings:\n  - from: library/busybox\n")).expect_err("mapings");
    assert_eq!(error.line, Some(9));
    assert_eq!(
        error.message,
        "task 'mirror' (line 6) has no mappings, so it would sync nothing: the unknown key \
         'mapings' looks like a misspelt 'mappings'; rename it to 'mappings'"
    );
    for rest in ["", "  mappings: []\n", "  mappings:\n", "  colour: blue\n"] {
        let error = load_text(&task(rest)).expect_err(rest);
        assert_eq!(error.line, Some(6), "{rest:?}");
        assert_eq!(
            error.message,
            "task 'mirror' has no mappings, so it would sync nothing: add a 'mappings:' list \
             (e.g. 'mappings: [{from: library/busybox}]') or remove the task",
            "{rest:?}"
        );
    }
    // The original's checks of the task come first.
    let error = load_text("tasks:\n- name: t\n  source: {registry: a}\n").expect_err("no target");
    assert!(
        error
            .message
            .starts_with("target registry in task 't' invalid: location is nil"),
        "{error}"
    );
}
