//! A new user's first hour, through the binary against real registries: a subcommand put
//! last is refused before any registry is asked; doing nothing never looks like a success;
//! failures are named at the level they happened; the numbers add up; the demo never uses a
//! port someone else holds; the README's examples exist and run.

mod support;

use std::io::Read as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::dregsy::{Dregsy, binary, log_lines, run_dregsy, text};
use support::{FaultProxy, ImageOptions, Registry, Rule, list_tags, push_image, tag};

fn task(source: &str, target: &str, mappings: &str) -> String {
    format!(
        "tasks:\n- name: first\n  source: {{registry: {source}, skip-tls-verify: true}}\n  target: {{registry: {target}, skip-tls-verify: true}}\n  mappings:\n{mappings}"
    )
}

/// Two registries, `repository:tag` pushed into the source, and a one-task config with
/// `mappings` from the source to the target.
fn with_image(repository: &str, tag: &str, mappings: &str) -> (Registry, Registry, String) {
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, repository, tag, ImageOptions::default());
    let config = task(&source.host(), &target.host(), mappings);
    (source, target, config)
}

#[test]
fn plan_after_the_flags_exits_1_before_any_registry_is_asked() {
    let source = Registry::builder().access_log().start();
    let target = Registry::builder().access_log().start();
    let config = task(
        &source.host(),
        &target.host(),
        "  - from: app\n    tags: ['1.0']\n",
    );
    // `{config}` first, then the word: `dregsy -config=FILE plan`.
    let out = Dregsy::with_config(&config)
        .args(&["-config={config}", "plan"])
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("unexpected argument 'plan' after the flags: a subcommand comes first, as in: dregsy plan -config="),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert_eq!(source.requests(), Vec::new(), "the source was asked");
    assert_eq!(target.requests(), Vec::new(), "the target was asked");
}

/// The first config a new user writes: `to:` and `tags:` indented at the task's level, or
/// `mappings:` misspelt. Ignored, they copied every tag to the source's path, or nothing with
/// exit 0; now both are config errors and no registry is asked.
#[test]
fn a_misindented_or_misspelt_mapping_copies_nothing_and_exits_1() {
    let source = Registry::builder().access_log().start();
    let target = Registry::builder().access_log().start();
    push_image(&source, "app", "1.0", ImageOptions::default());
    tag(&source, "app", "1.0", &["2.0"]);
    source.clear_requests();
    let head = format!(
        "tasks:\n- name: first\n  source: {{registry: {}, skip-tls-verify: true}}\n  target: \
         {{registry: {}, skip-tls-verify: true}}\n",
        source.host(),
        target.host()
    );
    for (rest, want) in [
        (
            "  mappings:\n  - from: app\n  to: mirror/app\n  tags: ['1.0']\n",
            "config key 'to' in tasks[0] (line 7) belongs under a mapping",
        ),
        (
            "  mapings:\n  - from: app\n    to: mirror/app\n",
            "task 'first' (line 2) has no mappings, so it would sync nothing: the unknown key \
             'mapings' looks like a misspelt 'mappings'",
        ),
    ] {
        let out = run_dregsy(&format!("{head}{rest}"), &[]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let errors = log_lines(&out, want);
        assert_eq!(errors.len(), 1, "{}", text(&out));
        assert_eq!(errors[0]["level"], "error");
        assert!(log_lines(&out, "task done").is_empty(), "{}", text(&out));
    }
    assert_eq!(source.requests(), Vec::new(), "the source was asked");
    assert_eq!(target.requests(), Vec::new(), "the target was asked");
    assert!(catalog_is_empty(&target));
}

#[test]
fn a_tag_listing_that_fails_is_a_repository_failure_not_an_image_failure() {
    let (source, target, config) = with_image(
        "present",
        "1.0.0",
        "  - from: absent\n    tags: ['semver: >=1.0.0']\n  - from: present\n    tags: ['semver: >=1.0.0']\n",
    );
    let out = run_dregsy(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(log_lines(&out, "image failed").is_empty(), "{}", text(&out));
    let failed = log_lines(&out, "repository failed: failed listing tags");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert_eq!(failed[0]["source"], format!("{}/absent", source.host()));
    assert_eq!(failed[0]["level"], "error");
    let done = log_lines(&out, "task done");
    // A run with failures ends with a warning, which `LOG_LEVEL=warn` keeps.
    assert_eq!(done[0]["level"], "warning", "{}", text(&out));
    assert_eq!(
        done[0]["msg"],
        format!(
            "task done: 1 copied ({} sent), 0 up to date, 0 skipped, 1 repository failed",
            done[0]["bytes"]
                .as_u64()
                .map(human_bytes)
                .unwrap_or_default()
        ),
        "{}",
        text(&out)
    );
    assert_eq!(list_tags(&target, "present"), vec!["1.0.0".to_string()]);
    // With `LOG_LEVEL=warn`, the summary stays with the failure it counts.
    let out = run_dregsy(&config, &[("LOG_LEVEL", "warn")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let done = log_lines(&out, "task done");
    assert_eq!(done.len(), 1, "{}", text(&out));
    assert!(
        done[0]["msg"]
            .as_str()
            .is_some_and(|m| m.ends_with("1 up to date, 0 skipped, 1 repository failed")),
        "{}",
        text(&out)
    );

    // `plan` says "failed", one word for every failure.
    let out = Dregsy::with_config(&config).args(&["plan"]).output();
    assert_eq!(out.status.code(), Some(1));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("      failed: failed listing tags during tag set expansion"),
        "{plan}"
    );
    assert!(!plan.contains("FAILED"), "{plan}");
    assert!(!plan.contains("invalid "), "{plan}");
}

/// A side whose credentials cannot be found is shown with the same word as every other
/// failure of `plan`.
#[test]
fn plan_says_failed_for_credentials_too() {
    let config = "tasks:\n- name: a\n  source: {registry: 127.0.0.1:1, credentials-file: /nonexistent/creds}\n  target: {registry: 127.0.0.1:2}\n  mappings:\n  - from: x\n    tags: ['1']\n";
    let out = Dregsy::with_config(config).args(&["plan"]).output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains(
            "  source credentials: failed: credentials for 127.0.0.1:1: cannot read \
             credentials-file /nonexistent/creds"
        ),
        "{plan}"
    );
    assert!(!plan.contains("FAILED"), "{plan}");
}

/// The units of `dregsy::report::human_bytes`, for expected messages.
fn human_bytes(bytes: u64) -> String {
    dregsy::report::human_bytes(bytes)
}

#[test]
fn a_mapping_whose_filters_select_nothing_fails_the_run() {
    let (source, _target, config) = with_image(
        "app",
        "1.0.0",
        "  - from: app\n    tags: ['semver: >=9.0.0']\n",
    );
    let out = run_dregsy(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = log_lines(&out, "mapping failed");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert_eq!(
        failed[0]["msg"],
        format!(
            "mapping failed: it selected no image: the tags entries 'semver: >=9.0.0' selected \
             none of the tags of {}/app (1 tag listed); try them with 'dregsy tags' or 'dregsy plan'",
            source.host()
        )
    );
    let out = Dregsy::with_config(&config).args(&["plan"]).output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("    failed: it selected no image: the tags entries 'semver: >=9.0.0'"),
        "{plan}"
    );
}

#[test]
fn plan_warns_when_a_digit_only_tag_decides_the_result() {
    let (source, _target, config) = with_image(
        "app",
        "1.2.0",
        "  - from: app\n    tags: ['keep: latest 1']\n",
    );
    tag(&source, "app", "1.2.0", &["20240115"]);
    let out = Dregsy::with_config(&config).args(&["plan"]).output();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains(
            "      warning: 'keep: latest 1' kept digit-only tags 20240115 (as version \
             20240115.0.0) as the highest versions and dropped 1.2.0"
        ),
        "{plan}"
    );
}

#[test]
fn bytes_count_manifests_and_shared_blobs_are_named() {
    let source = Registry::start();
    let target = Registry::start();
    let image = push_image(
        &source,
        "app",
        "1.0",
        ImageOptions {
            layers: 2,
            ..ImageOptions::default()
        },
    );
    tag(&source, "app", "1.0", &["1.1"]);
    let config = task(
        &source.host(),
        &target.host(),
        "  - from: app\n    tags: ['1.0', '1.1']\n",
    );
    let out = run_dregsy(&config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let copied = log_lines(&out, "image copied");
    assert_eq!(copied.len(), 2, "{}", text(&out));
    // Both tags are separate copies (neither target tag existed); every blob was sent once,
    // and each manifest PUT counts.
    let blob_bytes: u64 = image.blobs.iter().map(|(_, size)| size).sum();
    let manifest = image.manifest.len() as u64;
    let total: u64 = copied.iter().filter_map(|l| l["bytes"].as_u64()).sum();
    assert_eq!(total, blob_bytes + 2 * manifest, "{}", text(&out));
    // The blobs one copy did not send are named as sent by the other image.
    let shared: usize = copied
        .iter()
        .filter_map(|l| l["msg"].as_str())
        .filter_map(|m| {
            let (_, after) = m.split_once("; ")?;
            let count = after.split(' ').next()?;
            after
                .contains("already sent by another image")
                .then(|| count.parse::<usize>().ok())?
        })
        .sum();
    assert_eq!(shared, image.blobs.len(), "{}", text(&out));
    let done = &log_lines(&out, "task done")[0];
    assert_eq!(done["bytes"].as_u64(), Some(total));
    assert_eq!(
        done["level"],
        "info",
        "a run without failures: {}",
        text(&out)
    );
}

#[test]
fn the_progress_display_counts_failures_from_the_start() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "slow", "1.0.0", ImageOptions::default());
    // The slow image's blobs take a while, so the bar is drawn while it copies.
    let slow = FaultProxy::start(
        &source.url(),
        vec![Rule::delay(r"^/v2/slow/blobs/", Duration::from_secs(4))],
    );
    let config = task(
        &slow.host(),
        &target.host(),
        "  - from: absent\n    tags: ['semver: >=1.0.0']\n  - from: slow\n    tags: ['semver: >=1.0.0']\n",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).expect("write");
    // `script` runs dregsy on a pseudo-terminal: stdout and stderr are a terminal, as for a
    // person watching, so the bars are drawn (into script's transcript on its stdout).
    let command = format!("{} -config={}", binary(), path.display());
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("LOG_FORMAT", "text")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("COLUMNS", "200")
        .stdin(Stdio::null())
        .output()
        .expect("script (Debian package bsdutils) runs; install it with apt-get install bsdutils");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{transcript}");
    assert!(
        transcript.contains("0/1 images, 1 repository failed"),
        "the bar shows the failed repository while the image copies:\n{transcript}"
    );
    // Never a count that leaves the failures out, nor a full bar before anything is planned.
    assert!(!transcript.contains("] 0/0 images"), "{transcript}");
    assert!(!transcript.contains("] 0/1 images, 0 B"), "{transcript}");
    assert!(
        !transcript.contains("[==============================] planning"),
        "{transcript}"
    );
}

/// The README's first lines name the demo; with a port of its own taken by another
/// program, the demo must leave that program alone: pick another port, say so, and succeed
/// with its own registries.
#[test]
fn the_demo_never_uses_a_port_another_program_holds() {
    // A real registry stands in for "someone else's registry" on the demo's first port.
    let stranger = Registry::builder().access_log().start();
    let (out, target_port) = run_demo(stranger.port());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains(&format!(
            "port {} is in use by another program; choosing a free port instead",
            stranger.port()
        )),
        "{all}"
    );
    assert!(
        all.contains("== demo done: both registries held the same digests"),
        "{all}"
    );
    assert!(
        all.contains(&format!("target registry: 127.0.0.1:{target_port}")),
        "{all}"
    );
    assert_eq!(
        stranger.requests(),
        Vec::new(),
        "the demo talked to the stranger"
    );
    assert!(catalog_is_empty(&stranger));
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Runs scripts/demo with the binary under test, asking for `source_port` first and a free
/// port for the target; returns the output and the target port asked for.
fn run_demo(source_port: u16) -> (std::process::Output, u16) {
    let target_port = free_port();
    let out = demo_command()
        .env("DEMO_SOURCE_PORT", source_port.to_string())
        .env("DEMO_TARGET_PORT", target_port.to_string())
        .output()
        .expect("bash runs the demo");
    (out, target_port)
}

/// scripts/demo with the binary under test, its default ports and no `KEEP`.
fn demo_command() -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new("bash");
    command
        .arg(root.join("scripts/demo"))
        .env("DREGSY", binary())
        .env_remove("DEMO_SOURCE_PORT")
        .env_remove("DEMO_TARGET_PORT")
        .env_remove("KEEP")
        .stdin(Stdio::null());
    command
}

fn catalog_is_empty(registry: &Registry) -> bool {
    support::catalog(registry).is_empty()
}

/// A listener that records whatever a client sends, to prove nobody spoke to it.
struct Recorder {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    fn start() -> Recorder {
        Recorder::on(TcpListener::bind("127.0.0.1:0").expect("bind"))
    }

    fn on(listener: TcpListener) -> Recorder {
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        sink.lock().expect("lock").extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Recorder { port, received }
    }
}

/// The same for a listener that is not a registry at all: the demo must not send it a byte.
#[test]
fn the_demo_sends_nothing_to_a_foreign_listener() {
    let foreign = Recorder::start();
    let (out, _) = run_demo(foreign.port);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        foreign.received.lock().expect("lock").is_empty(),
        "the demo sent bytes to a port it did not own"
    );
}

/// Every `examples/…` file the README names exists; each config loads; the registry config
/// the Docker Hub example needs serves a registry.
#[test]
fn the_examples_the_readme_names_exist_and_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut named: Vec<String> = readme
        .split(|c: char| c.is_whitespace() || "`()[],;:'\"".contains(c))
        .filter(|w| w.starts_with("examples/") && w.len() > "examples/".len())
        .map(|w| w.trim_end_matches('.').to_string())
        .collect();
    named.sort();
    named.dedup();
    assert!(named.len() >= 4, "{named:?}");
    for name in &named {
        let path = root.join(name);
        assert!(path.is_file(), "README names {name}, which does not exist");
        let is_dregsy_config = std::fs::read_to_string(&path)
            .expect("read")
            .contains("\ntasks:");
        if is_dregsy_config {
            // Loading (and validating) needs no network: an unreachable registry is fine here.
            dregsy::config::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    // The registry config of the Docker Hub example serves, with its port and storage moved.
    let registry_config = root.join("examples/registry.yml");
    assert!(
        named.iter().any(|n| n == "examples/registry.yml"),
        "{named:?}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let text = std::fs::read_to_string(&registry_config)
        .expect("read")
        .replace("127.0.0.1:5000", &format!("127.0.0.1:{port}"))
        .replace(
            "/var/lib/dregsy-registry",
            &dir.path().display().to_string(),
        );
    let moved = dir.path().join("registry.yml");
    std::fs::write(&moved, text).expect("write");
    let mut child = Command::new("/usr/bin/docker-registry")
        .args(["serve", &moved.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (Debian package docker-registry) runs");
    let client = dregsy::http_client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let answered = support::http::block_on(async move {
        for _ in 0..100 {
            if let Ok(response) = client
                .get(format!("http://127.0.0.1:{port}/v2/"))
                .send()
                .await
            {
                return response.status().as_u16();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        0
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        answered, 200,
        "examples/registry.yml serves the registry API"
    );
}

/// The README's demo as a user runs it, with a listener already on its first port (5101):
/// the demo must not send it a byte, and must sync between registries of its own.
#[test]
fn the_demo_leaves_a_listener_on_port_5101_alone() {
    let listener = match TcpListener::bind("127.0.0.1:5101") {
        Ok(listener) => Some(Recorder::on(listener)),
        // Another program holds 5101 already (a demo left running with KEEP=1, say): the
        // situation under test, except that what it receives cannot be recorded here.
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) => panic!("binding 127.0.0.1:5101: {e}"),
    };
    let out = demo_command().output().expect("bash runs the demo");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("== demo done: both registries held the same digests"),
        "{all}"
    );
    if let Some(listener) = listener {
        assert!(
            all.contains("port 5101 is in use by another program; choosing a free port instead"),
            "{all}"
        );
        assert!(!all.contains("source registry: 127.0.0.1:5101,"), "{all}");
        assert!(
            listener.received.lock().expect("lock").is_empty(),
            "the demo sent bytes to the listener on 5101"
        );
    }
}

/// Registries a `KEEP=1` demo left running: the command it printed to stop them (and remove
/// their storage) runs when the test ends, however it ends.
struct KeptRegistries(String);

impl Drop for KeptRegistries {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = Command::new("bash").args(["-c", &self.0]).status();
        }
    }
}

/// `KEEP=1 scripts/demo` leaves both registries running and prints the `plan` command that
/// works next; run as printed, it finds everything up to date.
#[test]
fn keep_1_leaves_the_registries_running_for_the_plan_it_prints() {
    let out = demo_command()
        .env("KEEP", "1")
        .env("DEMO_SOURCE_PORT", free_port().to_string())
        .env("DEMO_TARGET_PORT", free_port().to_string())
        .output()
        .expect("bash runs the demo");
    let all = text(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stop = stdout
        .lines()
        .find_map(|l| l.strip_prefix("stop them with: "))
        .unwrap_or_default();
    let _kept = KeptRegistries(stop.to_string());
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(stop.starts_with("kill "), "{all}");
    let printed = stdout
        .lines()
        .skip_while(|l| !l.starts_with("KEEP=1: "))
        .nth(1)
        .map(str::trim)
        .unwrap_or_default();
    let config = printed
        .strip_prefix(&format!("{} plan -config=", binary()))
        .unwrap_or_else(|| {
            panic!("the printed command is not `dregsy plan -config=…`: {printed}\n{all}")
        });
    let plan = Command::new(binary())
        .args(["plan", &format!("-config={config}")])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("dregsy plan runs");
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert!(
        shown.contains("0 image(s) to copy, 3 up to date, 0 failed"),
        "{shown}"
    );
}
