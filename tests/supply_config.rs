//! The config side of referrers, platform lists, `min-age` and `verify`
//! (docs/configuration.md#supply-chain-referrers-minimum-age-signature-checks): inheritance
//! from the top level to tasks and mappings, and bad values refused at load with the file and
//! line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dregsy::config::{self, PlatformChoice};

fn load(text: &str) -> Result<config::Config, config::ConfigError> {
    config::load_str(Path::new("supply.yaml"), text).map(|(c, _)| c)
}

/// A cosign-style public key file (ECDSA P-256, PEM SubjectPublicKeyInfo) in `dir`.
fn key_file(dir: &Path, name: &str) -> PathBuf {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let path = dir.join(name);
    std::fs::write(&path, pair.public_key_pem()).expect("write key");
    path
}

const TASK: &str = "  source: {registry: 127.0.0.1:5000}\n  target: {registry: 127.0.0.1:5001}\n";

#[test]
fn settings_inherit_from_top_to_task_to_mapping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let task_key = key_file(dir.path(), "task.pub");
    let mapping_key = key_file(dir.path(), "mapping.pub");
    let text = format!(
        "referrers: true\nmin-age: 72h\ntasks:\n\
         - name: a\n{TASK}  mappings:\n  - from: x\n  - from: y\n    referrers: false\n    min-age: 0\n\
         - name: b\n{TASK}  referrers: false\n  min-age: 1h\n  verify: {{cosign-key: {}}}\n  mappings:\n\
         \x20 - from: x\n    platform: [linux/amd64, linux/arm64]\n  - from: y\n    referrers: true\n    verify: {{cosign-key: {}}}\n",
        task_key.display(),
        mapping_key.display()
    );
    let config = load(&text).expect("loads");
    let a = &config.tasks[0].mappings;
    assert!(a[0].referrers);
    assert_eq!(a[0].min_age, Some(Duration::from_secs(72 * 3600)));
    assert!(a[0].verify.is_none());
    assert!(!a[1].referrers);
    assert_eq!(a[1].min_age, None, "0 turns an inherited minimum off");
    let b = &config.tasks[1].mappings;
    assert!(!b[0].referrers);
    assert_eq!(b[0].min_age, Some(Duration::from_secs(3600)));
    assert_eq!(
        b[0].verify.as_ref().map(|v| v.key_file.clone()),
        Some(task_key)
    );
    match &b[0].platform {
        PlatformChoice::Subset(list) => {
            let names: Vec<String> = list.iter().map(ToString::to_string).collect();
            assert_eq!(names, ["linux/amd64", "linux/arm64/v8"]);
        }
        other => panic!("a list is a subset, not {other:?}"),
    }
    assert_eq!(
        b[0].platform.as_config_text(),
        "[linux/amd64, linux/arm64/v8]"
    );
    assert!(b[1].referrers);
    assert_eq!(
        b[1].verify.as_ref().map(|v| v.key_file.clone()),
        Some(mapping_key)
    );
    // Nothing set: the original's behaviour.
    let plain = load(&format!(
        "tasks:\n- name: p\n{TASK}  mappings:\n  - from: x\n"
    ))
    .expect("ok");
    let m = &plain.tasks[0].mappings[0];
    assert!(!m.referrers && m.min_age.is_none() && m.verify.is_none());
    assert_eq!(m.platform, PlatformChoice::Host);
    // A list of one `all` is `all`.
    let all = load(&format!(
        "tasks:\n- name: p\n{TASK}  mappings:\n  - from: x\n    platform: [all]\n"
    ))
    .expect("ok");
    assert_eq!(all.tasks[0].mappings[0].platform, PlatformChoice::All);
}

#[test]
fn bad_values_are_refused_at_load_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_a_key = dir.path().join("not-a-key.pub");
    std::fs::write(&not_a_key, "this is not a key\n").expect("write");
    let private = dir.path().join("private.key");
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    std::fs::write(&private, pair.serialize_pem()).expect("write");
    let mapping =
        |extra: &str| format!("tasks:\n- name: t\n{TASK}  mappings:\n  - from: x\n{extra}");
    let cases = [
        (
            mapping("    platform: []\n"),
            6,
            "'platform' is an empty list",
        ),
        (
            mapping("    platform: [all, linux/amd64]\n"),
            6,
            "lists 'all' beside other platforms",
        ),
        (
            mapping("    platform: [linux/amd64, linux/x86_64]\n"),
            6,
            "lists linux/amd64 twice",
        ),
        (
            mapping("    platform: [linux/amd64, 'linux//']\n"),
            6,
            "invalid platform 'linux//'",
        ),
        // An architecture where the os belongs, in a list or alone.
        (
            mapping("    platform: [linux/amd64, arm64]\n"),
            6,
            "invalid platform 'arm64': 'arm64' is an architecture, not an operating system; a \
             platform starts with the os: did you mean 'linux/arm64'?",
        ),
        (
            mapping("    platform: arm/v7\n"),
            6,
            "did you mean 'linux/arm/v7'?",
        ),
        (
            mapping("    platform: S390X\n"),
            6,
            "did you mean 'linux/S390X'?",
        ),
        (
            mapping("    min-age: -1h\n"),
            7,
            "'min-age' must not be negative",
        ),
        (
            mapping("    min-age: -1\n"),
            7,
            "'min-age' must not be negative",
        ),
        (
            "min-age: -5m\ntasks: []\n".to_string(),
            1,
            "'min-age' must not be negative",
        ),
        (
            format!("tasks:\n- name: t\n{TASK}  min-age: -2h\n  mappings: []\n"),
            5,
            "'min-age' must not be negative",
        ),
        (
            mapping(&format!(
                "    verify: {{cosign-key: {}}}\n",
                not_a_key.display()
            )),
            7,
            "not-a-key.pub' is not a usable cosign public key",
        ),
        (
            mapping(&format!(
                "    verify: {{cosign-key: {}}}\n",
                private.display()
            )),
            7,
            "not a private key",
        ),
        (
            mapping(&format!(
                "    verify: {{cosign-key: {}}}\n",
                dir.path().join("missing.pub").display()
            )),
            7,
            "cannot read cosign public key",
        ),
        (
            mapping("    verify: {}\n"),
            7,
            "'verify' needs 'cosign-key'",
        ),
        (mapping("    verify: yes\n"), 7, "cannot unmarshal !!bool"),
        (
            mapping("    referrers: maybe\n"),
            7,
            "cannot unmarshal !!str `maybe` into bool",
        ),
    ];
    for (text, line, expected) in cases {
        let error = load(&text).expect_err(&text);
        let shown = error.to_string();
        assert!(shown.contains(expected), "{text:?}: {shown}");
        assert!(shown.contains("supply.yaml"), "names the file: {shown}");
        assert_eq!(error.line, Some(line), "{text:?}: {shown}");
    }
}

/// A misspelt key that guards what gets copied would, ignored as unknown keys are, copy images
/// unchecked: it is a config error naming the file, line, key and suggestion, and why.
#[test]
fn misspelt_guard_keys_are_errors_not_warnings() {
    let task = |extra: &str| format!("tasks:\n- name: t\n{TASK}{extra}  mappings:\n  - from: x\n");
    let cases = [
        (
            task("  verfy: {cosign-key: k.pub}\n"),
            5,
            "verfy",
            "verify",
            "signatures",
        ),
        (
            format!(
                "tasks:\n- name: t\n{TASK}  mappings:\n  - from: x\n    Verify: {{cosign-key: k.pub}}\n"
            ),
            7,
            "Verify",
            "verify",
            "signatures",
        ),
        (
            task("  verify: {cosign-keys: k.pub}\n"),
            5,
            "cosign-keys",
            "cosign-key",
            "signatures",
        ),
        (
            format!("min_age: 72h\n{}", task("")),
            1,
            "min_age",
            "min-age",
            "however young",
        ),
        (
            task("  minage: 3d\n"),
            5,
            "minage",
            "min-age",
            "however young",
        ),
    ];
    for (text, line, key, suggestion, why) in cases {
        let error = load(&text).expect_err(&text);
        let shown = error.to_string();
        assert!(
            shown.contains(&format!("unknown config key '{key}'")),
            "{shown}"
        );
        assert!(
            shown.contains(&format!("did you mean '{suggestion}'?")),
            "{shown}"
        );
        assert!(shown.contains("is an error, not a warning"), "{shown}");
        assert!(shown.contains(why), "{shown}");
        assert!(shown.contains("supply.yaml"), "names the file: {shown}");
        assert_eq!(error.line, Some(line), "{text:?}: {shown}");
    }
    // Other unknown keys stay warnings, as the original ignored them.
    let (_, notices) = config::load_str(
        Path::new("supply.yaml"),
        &format!("tasks:\n- name: t\n{TASK}  refferers: true\n  mappings:\n  - from: x\n"),
    )
    .expect("a warning only");
    assert!(
        notices
            .iter()
            .any(|n| n.message.contains("'refferers'")
                && n.message.contains("did you mean 'referrers'")),
        "{notices:?}"
    );
}

#[test]
fn mappings_using_them_need_the_native_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key_file(dir.path(), "k.pub");
    for (setting, word) in [
        ("    referrers: true\n".to_string(), "'referrers'"),
        ("    min-age: 72h\n".to_string(), "'min-age'"),
        (
            format!("    verify: {{cosign-key: {}}}\n", key.display()),
            "'verify'",
        ),
        (
            "    platform: [linux/amd64, linux/arm64]\n".to_string(),
            "a 'platform' list",
        ),
    ] {
        let body =
            format!("tasks:\n- name: t\n{TASK}  mappings:\n  - from: x\n  - from: y\n{setting}");
        let skopeo = load(&format!("relay: skopeo\n{body}")).expect("loads");
        let error = dregsy::relay::check_config(&skopeo).expect_err("skopeo cannot");
        assert!(
            error.contains(&format!(
                "relay 'skopeo' does not support {word} (task 't', mapping #2)"
            )),
            "{error}"
        );
        let native = load(&body).expect("loads");
        dregsy::relay::check_features(&native)
            .unwrap_or_else(|e| panic!("{word} works with the native relay: {e}"));
    }
}
