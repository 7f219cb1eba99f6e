//! The binary's command line and exit codes (docs/behaviour.md#exit-codes), run as a user
//! would: no registry is needed for any of these.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::dregsy::binary;

fn dregsy(args: &[&str]) -> Output {
    Command::new(binary())
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

/// Writes `text` as a config file in `dir`; returns its path.
fn write_config(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

/// Whether any line of the output is a JSON log line.
fn has_log_line(text: &str) -> bool {
    text.lines()
        .any(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["msg"].is_string()))
}

#[test]
fn help_shows_subcommands_flags_defaults_variables_and_docs() {
    for flag in ["-h", "--help", "-help"] {
        let out = dregsy(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let help = stdout(&out);
        for needed in [
            "Usage of dregsy:\n",
            "  dregsy -config=FILE [-run=REGEX] [-health=ADDRESS] [-shard=INDEX/COUNT]\n",
            "  dregsy plan -config=FILE [-run=REGEX] [-shard=INDEX/COUNT|all/COUNT] [--json]\n",
            "  dregsy tags [--filter ENTRY]... [--json] < tags.txt",
            "  dregsy --version",
            // Go's flag block layout, which scripts for the original grep for.
            "  -config string\n    \tpath to config file (required)\n",
            "  -health string\n    \tserve /healthz, /readyz, /status and /metrics on this address",
            "  -run string\n",
            "  -shard string\n    \tcopy only this shard's target repositories, INDEX/COUNT (e.g. 0/3)\n",
            "(default: every task)",
            "(default: the config's health.listen; none when that is not set either)",
            "LOG_LEVEL         error, warn, info, debug or trace (default: info)",
            "LOG_FORMAT        json or text (default: text on a terminal, json otherwise)",
            "LOG_FORCE_COLORS",
            "LOG_METHODS",
            "Documentation: README.md and docs/",
        ] {
            assert!(
                help.contains(needed),
                "{flag}: {needed:?} missing in:\n{help}"
            );
        }
        assert_eq!(stderr(&out), "", "{flag}");
    }
}

#[test]
fn bare_dregsy_prints_the_usage_to_stderr_and_exits_1_without_a_log_line() {
    let out = dregsy(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "", "nothing on stdout, no log line");
    let err = stderr(&out);
    assert!(err.starts_with("Usage of dregsy:\n"), "{err}");
    assert!(!has_log_line(&err), "{err}");
}

#[test]
fn a_missing_config_is_a_usage_error_on_stderr() {
    for args in [&["-config="][..], &["-run", "x"][..], &["-health=:0"][..]] {
        let out = dregsy(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("missing -config=FILE: dregsy needs a config file\nUsage of dregsy:\n"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_word_after_the_flags_is_an_error_that_suggests_the_subcommand_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(&dir, "c.yaml", "tasks: []\n");
    let flag = format!("-config={config}");
    let out = dregsy(&[&flag, "plan"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).starts_with(&format!(
            "unexpected argument 'plan' after the flags: a subcommand comes first, as in: \
             dregsy plan -config={config}\nUsage of dregsy:\n"
        )),
        "{}",
        stderr(&out)
    );
    for args in [
        vec![flag.as_str(), "extra"],
        vec!["-run=x", flag.as_str(), "extra", "-bogus"],
        vec![flag.as_str(), "--", "extra"],
    ] {
        let out = dregsy(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).starts_with(
                "unexpected argument 'extra': dregsy takes only flags (-config, -run, -health) \
                 or a subcommand first (plan, tags)\n"
            ),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "", "{args:?}");
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
fn unknown_flag_prints_error_and_usage_and_exits_1() {
    let out = dregsy(&["-bogus"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("flag provided but not defined: -bogus\nUsage of dregsy:\n"),
        "{err}"
    );
    assert_eq!(stdout(&out), "", "errors are not log lines on stdout");

    let out = dregsy(&["-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("flag needs an argument: -config\n"));
}

/// A flag close to a known one gets a suggestion after Go's line, for the main command and
/// for the subcommands; the usage still follows.
#[test]
fn a_misspelt_flag_suggests_the_known_one() {
    for (args, error, usage) in [
        (
            &["--conf=x.yaml"][..],
            "flag provided but not defined: -conf\ndid you mean -config?\n",
            "Usage of dregsy:\n",
        ),
        (
            &["-config=x.yaml", "-shards=0/2"][..],
            "flag provided but not defined: -shards\ndid you mean -shard?\n",
            "Usage of dregsy:\n",
        ),
        (
            &["plan", "-conf", "x.yaml"][..],
            "flag provided but not defined: -conf\ndid you mean -config?\n",
            "usage: dregsy plan",
        ),
        (
            &["tags", "--filters", "latest"][..],
            "flag provided but not defined: -filters\ndid you mean -filter?\n",
            "usage: dregsy tags",
        ),
        (
            &["tags", "--jsn"][..],
            "flag provided but not defined: -jsn\ndid you mean -json?\n",
            "usage: dregsy tags",
        ),
    ] {
        assert_usage_error(args, error, usage);
    }
}

/// Runs dregsy with `args`: exit 1, `error` then `usage` on stderr, nothing on stdout.
fn assert_usage_error(args: &[&str], error: &str, usage: &str) {
    let out = dregsy(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let err = stderr(&out);
    assert!(err.starts_with(error), "{args:?}: {err}");
    assert!(err[error.len()..].starts_with(usage), "{args:?}: {err}");
    assert_eq!(stdout(&out), "", "{args:?}");
}

/// A mis-indented `to:` and a misspelt `mappings:` stop the run before any registry is asked
/// (both registries are closed ports), each with the file, the line and what to do.
#[test]
fn a_misindented_mapping_key_and_a_task_without_mappings_are_config_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = "tasks:\n- name: mirror\n  source: {registry: 127.0.0.1:1}\n  target: {registry: 127.0.0.1:2}\n";
    for (name, rest, want) in [
        (
            "misindented.yaml",
            "  mappings:\n  - from: library/busybox\n  to: mirror/busybox\n",
            "config key 'to' in tasks[0] (line 7) belongs under a mapping: - from: … in the \
             task's 'mappings:' list; indent it there. It is an error, not a warning, because \
             ignoring it would sync something other than what the file says (config file \
             '{file}', line 7)",
        ),
        (
            "mapings.yaml",
            "  mapings:\n  - from: library/busybox\n",
            "task 'mirror' (line 2) has no mappings, so it would sync nothing: the unknown key \
             'mapings' looks like a misspelt 'mappings'; rename it to 'mappings' (config file \
             '{file}', line 5)",
        ),
    ] {
        let path = write_config(&dir, name, &format!("{head}{rest}"));
        let out = dregsy(&["-config", &path]);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let want = want.replace("{file}", &path);
        let messages = messages(&out);
        assert!(
            messages.iter().any(|m| m == &want),
            "want {want}\nin {messages:#?}"
        );
        assert!(
            !messages.iter().any(|m| m.starts_with("task done")),
            "{messages:#?}"
        );
        let out = dregsy(&["plan", "-config", &path]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    }
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
fn empty_task_list_warns_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(&dir, "empty.yaml", "watch: false\ntasks: []\n");
    let out = dregsy(&["-config", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(r#""level":"warning","msg":"the config has no tasks: nothing to do""#),
        "{text}"
    );
    assert!(text.contains(r#""msg":"all done""#));
}

#[test]
fn a_misspelt_tasks_key_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        &dir,
        "typo.yaml",
        "watch: false\ntask:\n- name: mirror\n  source: {registry: a}\n  target: {registry: b}\n",
    );
    let out = dregsy(&["-config", &path]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "the config has no tasks: the unknown key 'task' looks like a misspelt 'tasks', so \
             nothing would be synced; rename it to 'tasks' (config file '{path}', line 2)"
        )),
        "{text}"
    );
    assert!(
        text.contains("unknown config key 'task' at the top level (line 2)"),
        "{text}"
    );
}

#[test]
fn unknown_keys_are_warned_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(&dir, "typo.yaml", "wacth: false\ntasks: []\n");
    let out = dregsy(&["-config", &path]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("unknown config key 'wacth'"), "{text}");
    assert!(text.contains("did you mean 'watch'"), "{text}");
    assert!(text.contains(r#""level":"warning""#), "{text}");
}

/// Two one-off tasks whose registries are never reached (the filter selects none of them).
const TWO_TASKS: &str = "tasks:
- name: mirror-a
  source: {registry: 127.0.0.1:1}
  target: {registry: 127.0.0.1:2}
  mappings: [{from: app}]
- name: mirror-b
  source: {registry: 127.0.0.1:1}
  target: {registry: 127.0.0.1:2}
  mappings: [{from: app}]
";

#[test]
fn a_run_filter_that_matches_no_task_lists_the_tasks_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(&dir, "two.yaml", TWO_TASKS);
    let out = dregsy(&["-config", &path, "-run", "mirror"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "-run 'mirror' matches none of the config's tasks ('mirror-a', 'mirror-b'); the \
             whole name must match"
        ),
        "{}",
        stdout(&out)
    );
    let out = dregsy(&["plan", "-config", &path, "-run", "mirror"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("-run 'mirror' matches none of the config's tasks"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_watch_note_appears_only_with_a_periodic_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    let note = "automatic restart after config file change is currently off by default";
    let one_off = write_config(&dir, "one-off.yaml", TWO_TASKS);
    let out = dregsy(&["-config", &one_off, "-run", "none"]);
    assert!(!stdout(&out).contains(note), "{}", stdout(&out));
    let periodic = write_config(
        &dir,
        "periodic.yaml",
        &TWO_TASKS.replace("- name: mirror-b\n", "- name: mirror-b\n  interval: 60\n"),
    );
    let out = dregsy(&["-config", &periodic, "-run", "none"]);
    assert!(stdout(&out).contains(note), "{}", stdout(&out));
}

/// The messages of the JSON log lines on stdout.
fn messages(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn config_messages_name_the_task_the_entries_and_the_accepted_forms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let task = |body: &str| {
        format!(
            "tasks:\n- name: quick\n  source: {{registry: 127.0.0.1:1}}\n  target: {{registry: 127.0.0.1:2}}\n{body}"
        )
    };
    let cases = [
        (
            task("  interval: 10\n"),
            "minimum task interval is 30 seconds: task 'quick' has interval 10; use 0 (or no \
             interval) for a one-off task (config file '{file}', line 2)",
        ),
        (
            task("  interval: -5\n"),
            "task interval needs to be 0 or a positive integer: task 'quick' has interval -5",
        ),
        (
            "tasks:\n- name: quick\n  source: {registry: 127.0.0.1:1, auth: 'abc!'}\n  target: {registry: 127.0.0.1:2}\n".to_string(),
            "source registry in task 'quick' invalid: invalid Auth: illegal base64 data at input \
             byte 3; expected base64 of {\"username\": \"...\", \"password\": \"...\"} or of \
             'user:password'",
        ),
        (
            task(
                "  mappings:\n  - from: app\n    tags:\n    - 'semver: >=1.31'\n    - '1.0'\n    - \"keep: latest\\t3\"\n    - 'regex: ('\n",
            ),
            "'tags' uses invalid format: 3 invalid entries: entry #1 'semver: >=1.31' (line 8): \
             Could not parse Range \">=1.31\": Could not parse version \"1.31\" in \">=1.31\": \
             No Major.Minor.Patch elements found; entry #3 'keep: latest\\t3' (line 10): invalid \
             keep count: keep: latest\t3; entry #4 'regex: (' (line 11): error parsing regexp: \
             missing closing ): `(` (task 'quick', mapping #1) (config file '{file}', line 7)",
        ),
        (
            task("  mappings:\n  - from: regex:(\n"),
            "'from' uses invalid regular expression: error parsing regexp: missing closing ): `(` \
             (task 'quick', mapping #1)",
        ),
    ];
    for (index, (config, want)) in cases.iter().enumerate() {
        let path = write_config(&dir, &format!("case{index}.yaml"), config);
        let out = dregsy(&["-config", &path]);
        assert_eq!(out.status.code(), Some(1), "{config}");
        let want = want.replace("{file}", &path);
        let messages = messages(&out);
        assert!(
            messages.iter().any(|m| m.contains(&want)),
            "want {want}\nin {messages:#?}"
        );
    }
}

#[test]
fn a_missing_config_file_is_named_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.yaml").display().to_string();
    let out = dregsy(&["-config", &path]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            r#""msg":"error loading config file '{path}': no such file or directory""#
        )),
        "{text}"
    );
    assert_eq!(text.matches(&path).count(), 1, "{text}");
}

#[test]
fn keep_latest_with_a_word_warns_that_it_is_a_regex() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        &dir,
        "keep.yaml",
        &format!(
            "{}  mappings:\n  - from: app\n    tags: ['keep: latest x']\n",
            TWO_TASKS
                .strip_suffix("  mappings: [{from: app}]\n")
                .expect("the last task's mappings end TWO_TASKS")
        ),
    );
    let out = dregsy(&["-config", &path, "-run", "none"]);
    let text = stdout(&out);
    assert!(
        text.contains(
            "'keep: latest x' is not a keep count (that is 'keep: latest N', with a space after \
             'keep:' and a whole number N): as in the original, it is read as a keep regex, so \
             only a tag named exactly 'latest x' is kept and every other listed tag is dropped \
             (task 'mirror-b', mapping #1, line 11)"
        ),
        "{text}"
    );
    let out = Command::new(binary())
        .args(["tags", "--filter", "keep:latest 3"])
        .output()
        .expect("runs");
    assert!(
        stderr(&out).starts_with("warning: --filter #1: 'keep:latest 3' is not a keep count"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn digit_only_tags_that_decide_a_result_are_warned_about() {
    let tags = |filters: &[&str], input: &str| {
        let mut command = Command::new(binary());
        command.arg("tags");
        for filter in filters {
            command.args(["--filter", filter]);
        }
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("runs");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("finishes");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = tags(&["semver: >=1.0.0"], "1.2.0\n20240115\n03549270\nlatest\n");
    assert!(
        text.starts_with(
            "# warning: digit-only tags count as major versions under semver, as in the \
             original: 'semver: >=1.0.0' selected 03549270 (as version 3549270.0.0), 20240115 \
             (as version 20240115.0.0); add a 'keep:' regex (e.g. 'keep: !\\d+') to leave them out\n"
        ),
        "{text}"
    );
    let text = tags(&["keep: latest 1"], "1.2.0\n1.3.0\n20240115\n");
    assert!(
        text.starts_with(
            "# warning: 'keep: latest 1' kept digit-only tags 20240115 (as version \
             20240115.0.0) as the highest versions and dropped 1.2.0, 1.3.0"
        ),
        "{text}"
    );
    // Where digit-only tags decide nothing, nothing is said.
    let text = tags(&["semver: >=1.0.0"], "1.2.0\nlatest\n");
    assert!(!text.contains("warning"), "{text}");
}

#[test]
fn log_format_text_is_logfmt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(&dir, "empty.yaml", "tasks: []\n");
    let out = Command::new(binary())
        .arg(format!("-config={path}"))
        .env("LOG_FORMAT", "text")
        .output()
        .expect("runs");
    let text = stdout(&out);
    assert!(text.starts_with("time=\""), "{text}");
    assert!(text.contains(" level=info msg=\"dregsy "), "{text}");
}

#[test]
fn invalid_log_settings_warn_and_fall_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(&dir, "empty.yaml", "tasks: []\n");
    let out = Command::new(binary())
        .arg(format!("-config={path}"))
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
        assert_usage_error(args, error, usage);
    }
}
