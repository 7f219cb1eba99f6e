//! The binary's command line and exit codes (docs/behaviour.md#exit-codes), run as a user would.

use std::path::Path;
use std::process::{Command, Output};

fn dregsy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dregsy"))
        .args(args)
        .env("LOG_FORMAT", "json")
        .env_remove("LOG_LEVEL")
        .output()
        .expect("the dregsy binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
        .display()
        .to_string()
}

const USAGE: &str = "Usage of dregsy:\n  -config string\n    \tpath to config file\n  -health string\n    \tserve /healthz, /readyz, /status and /metrics on this address (e.g. :8080)\n  -run string\n    \ttask filter regex\n  -shard string\n    \tcopy only this shard's target repositories, INDEX/COUNT (e.g. 0/3)\n";

#[test]
fn help_prints_usage_and_exits_0() {
    for flag in ["-h", "--help", "-help"] {
        let out = dregsy(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert_eq!(stdout(&out), USAGE, "{flag}");
    }
}

#[test]
fn version_prints_the_version() {
    for flag in ["--version", "-version"] {
        let out = dregsy(&[flag]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            stdout(&out),
            format!("dregsy {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn missing_config_prints_the_synopsis_and_exits_1() {
    for args in [&[][..], &["-config="][..], &["-run", "x"][..]] {
        let out = dregsy(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let text = stdout(&out);
        assert!(
            text.contains("synopsis: dregsy -config={config file} [-run {task name regex}]"),
            "{text}"
        );
        assert!(
            text.contains(r#""msg":"dregsy "#),
            "the version is logged: {text}"
        );
    }
}

#[test]
fn unknown_flag_prints_error_and_usage_and_exits_1() {
    let out = dregsy(&["-bogus"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("flag provided but not defined: -bogus\n"),
        "{err}"
    );
    assert!(err.ends_with(USAGE), "{err}");

    let out = dregsy(&["-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("flag needs an argument: -config\n"));
}

#[test]
fn config_errors_exit_1_with_the_file_named() {
    let out = dregsy(&["-config", &fixture("task-low-interval.yaml")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("minimum task interval is 30 seconds"),
        "{text}"
    );
    assert!(text.contains("task-low-interval.yaml"), "{text}");
    assert!(text.contains(r#""level":"error""#), "{text}");
}

#[test]
fn bad_inputs_exit_1_without_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path.display().to_string()
    };
    let big = "# padding padding padding padding padding padding padding\n".repeat(180_000);
    let cases = [
        write("malformed.yaml", b"tasks: [\n  - name: x\n"),
        write("list.yaml", b"- a\n- b\n"),
        write("null-task.yaml", b"tasks: [~]\n"),
        write("binary.yaml", &[0xff, 0xfe, 0x00, 0x01]),
        write("big.yaml", big.as_bytes()),
        dir.path().display().to_string(),
        dir.path().join("absent.yaml").display().to_string(),
    ];
    for path in cases {
        let out = dregsy(&["-config", &path]);
        assert_eq!(out.status.code(), Some(1), "{path}: {}", stdout(&out));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains("panicked"), "{path}: {all}");
        assert!(all.contains(r#""level":"error""#), "{path}: {all}");
    }
}

#[test]
fn invalid_task_filter_exits_1_after_loading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.yaml");
    std::fs::write(&path, "tasks: []\n").expect("write");
    let out = dregsy(&["-config", &path.display().to_string(), "-run", "a("]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("invalid task filter: "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn empty_task_list_runs_nothing_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.yaml");
    std::fs::write(&path, "watch: false\ntasks: []\n").expect("write");
    let out = dregsy(&["-config", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains(r#""msg":"all done""#));
}

#[test]
fn unknown_keys_are_warned_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("typo.yaml");
    std::fs::write(&path, "watch: false\ntaks: []\n").expect("write");
    let out = dregsy(&["-config", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("unknown config key 'taks'"), "{text}");
    assert!(text.contains("did you mean 'tasks'"), "{text}");
    assert!(text.contains(r#""level":"warning""#), "{text}");
}

#[test]
fn log_format_text_is_logfmt() {
    let out = Command::new(env!("CARGO_BIN_EXE_dregsy"))
        .env("LOG_FORMAT", "text")
        .output()
        .expect("runs");
    let text = stdout(&out);
    assert!(text.starts_with("time=\""), "{text}");
    assert!(text.contains(" level=info msg=\"dregsy "), "{text}");
}

#[test]
fn invalid_log_settings_warn_and_fall_back() {
    let out = Command::new(env!("CARGO_BIN_EXE_dregsy"))
        .env("LOG_LEVEL", "loud")
        .env("LOG_FORMAT", "json")
        .output()
        .expect("runs");
    let text = stdout(&out);
    assert!(text.contains("invalid log level: 'loud'"), "{text}");
    assert!(text.contains(r#""msg":"dregsy "#), "info stays on: {text}");
}

#[test]
fn subcommands_print_their_usage_for_help_and_for_a_bad_command_line() {
    for (args, usage) in [
        (&["plan", "-h"][..], "usage: dregsy plan -config=FILE"),
        (
            &["tags", "--help"][..],
            "usage: dregsy tags [--filter ENTRY]",
        ),
    ] {
        let out = dregsy(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            stdout(&out).starts_with(usage),
            "{args:?}: {}",
            stdout(&out)
        );
    }
    for (args, error, usage) in [
        (
            &["plan", "-config=x.yaml", "--bogus"][..],
            "flag provided but not defined: -bogus\n",
            "usage: dregsy plan",
        ),
        (
            &["plan", "--json"][..],
            "missing -config=FILE\n",
            "usage: dregsy plan",
        ),
        (
            &["tags", "--filter"][..],
            "flag needs an argument: -filter\n",
            "usage: dregsy tags",
        ),
        (
            &["tags", "tags.txt"][..],
            "unexpected argument 'tags.txt': the tags are read from stdin\n",
            "usage: dregsy tags",
        ),
    ] {
        let out = dregsy(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.starts_with(error), "{args:?}: {err}");
        assert!(err[error.len()..].starts_with(usage), "{args:?}: {err}");
    }
}
