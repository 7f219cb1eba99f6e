//! Daemon mode with real processes (docs/behaviour.md#signals-and-restarts): the dregsy binary runs
//! periodic tasks against real registries, gets signals from `kill`, has its config edited,
//! replaced, renamed and swapped under it, and is checked by its log, its exit code, its
//! health endpoint and the target registry.
//!
//! Waits are bounded (a hang fails the test with the log so far); nothing asserts how fast
//! anything is.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::config::{ConfigYaml, TaskYaml, slow_task};
use support::prometheus::{Prometheus, promtool_check_metrics};
use support::{
    FaultProxy, ImageOptions, Podman, Registry, Rule, list_tags, manifest_digest, push_image,
};

/// The longest any single expected thing may take before the test calls it a hang.
const WAIT: Duration = Duration::from_secs(60);

/// A running dregsy process and what it logged.
struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    exit: Option<i32>,
}

impl Daemon {
    fn start(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dregsy"));
        support::dregsy::without_user_credentials(
            &mut command,
            config.parent().expect("the config's directory"),
        );
        command
            .arg(format!("-config={}", config.display()))
            .args(args)
            .env("LOG_FORMAT", "json")
            .env_remove("LOG_LEVEL")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // The manifest cache goes beside the config, never into the user's home.
            .env(
                "XDG_CACHE_HOME",
                config.parent().unwrap_or(Path::new(".")).join("cache"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the dregsy binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "msg": line, "level": "raw" }));
                sink.lock().expect("log lock").push(value);
            }
        });
        let mut err_pipe = child.stderr.take().expect("stderr is piped");
        let err_sink = stderr.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err_pipe.read_to_string(&mut text);
            err_sink.lock().expect("stderr lock").push_str(&text);
        });
        Daemon {
            child,
            lines,
            stderr,
            exit: None,
        }
    }

    fn log(&self) -> String {
        let lines = self.lines.lock().expect("log lock");
        let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        text.push_str(&self.stderr.lock().expect("stderr lock"));
        text
    }

    /// Log lines whose message starts with `prefix`.
    fn matching(&self, prefix: &str) -> Vec<Value> {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .filter(|v| v["msg"].as_str().is_some_and(|m| m.starts_with(prefix)))
            .cloned()
            .collect()
    }

    fn count(&self, prefix: &str) -> usize {
        self.matching(prefix).len()
    }

    /// Waits until `n` lines start with `prefix`; returns the n-th.
    fn wait_for_nth(&mut self, prefix: &str, n: usize) -> Value {
        let start = Instant::now();
        loop {
            let found = self.matching(prefix);
            if found.len() >= n {
                return found[n - 1].clone();
            }
            if start.elapsed() > WAIT || self.exited() {
                // Lines may still be in the pipe when the process just exited.
                std::thread::sleep(Duration::from_millis(200));
                let found = self.matching(prefix);
                if found.len() >= n {
                    return found[n - 1].clone();
                }
                panic!(
                    "waited for {n} x '{prefix}' (exit: {:?}); log:\n{}",
                    self.exit,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for(&mut self, prefix: &str) -> Value {
        self.wait_for_nth(prefix, 1)
    }

    fn exited(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(
                    status
                        .code()
                        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                );
                true
            }
            _ => false,
        }
    }

    /// Sends a signal by name (`INT`, `TERM`, `HUP`) with `kill`.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("the kill program runs (apt-get install -y procps, or run .ci/run)");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits for the exit code; a process that does not exit within `limit` is a hang.
    fn wait_exit_within(&mut self, limit: Duration) -> i32 {
        let start = Instant::now();
        while !self.exited() {
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "dregsy did not exit within {limit:?} (a hang); log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the readers drain the pipes.
        std::thread::sleep(Duration::from_millis(100));
        self.exit.unwrap_or(-1)
    }

    fn wait_exit(&mut self) -> i32 {
        self.wait_exit_within(WAIT)
    }

    /// The health endpoint's address, from its start line.
    fn health_address(&mut self) -> String {
        let line = self.wait_for("serving health endpoint");
        line["address"]
            .as_str()
            .expect("the health line has an address")
            .to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One plain-HTTP GET (or another method) on loopback: status and body.
fn http(method: &str, address: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http_with_head(method, address, path);
    (status, body)
}

/// One plain-HTTP request on loopback: status, header block and body.
fn http_with_head(method: &str, address: &str, path: &str) -> (u16, String, String) {
    support::http::get_raw(address, method, path)
        .unwrap_or_else(|| panic!("the endpoint at {address} answers {method} {path}"))
}

fn task_names(daemon: &Daemon) -> Vec<String> {
    daemon
        .matching("syncing task")
        .iter()
        .map(|l| l["task"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn one_off_tasks_run_first_in_order_then_periodic_tasks_fire_at_once_and_a_stop_when_idle_exits_0()
{
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "app/a", "1", ImageOptions::default());
    let (s, t) = (source.host(), target.host());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .settings("watch: false\n")
        .task(
            &TaskYaml::new("p1", &s, &t)
                .every(30)
                .mapping("app/a", "p1/a"),
        )
        .task(&TaskYaml::new("o1", &s, &t).mapping("app/a", "o1/a"))
        .task(
            &TaskYaml::new("p2", &s, &t)
                .every(45)
                .mapping("app/a", "p2/a"),
        )
        .task(&TaskYaml::new("o2", &s, &t).mapping("app/a", "o2/a"))
        .task(&TaskYaml::new("o3", &s, &t).mapping("app/a", "o3/a"))
        .write_to(dir.path());
    // The filter matches whole names, so `o1|o3|p.*` leaves o2 out.
    let mut daemon = Daemon::start(&path, &["-run", "o1|o3|p.*"], &[]);
    daemon.wait_for_nth("waiting for next sync task...", 2);
    assert_eq!(task_names(&daemon), ["o1", "o3", "p1", "p2"]);
    assert_eq!(daemon.count("not watching config file"), 1);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    let stop = daemon.wait_for("received signal");
    assert_eq!(stop["signal"], "terminated");
    daemon.wait_for("all done");
    for repo in ["o1/a", "o3/a", "p1/a", "p2/a"] {
        assert!(manifest_digest(&target, repo, "1").is_some(), "{repo}");
    }
    assert!(manifest_digest(&target, "o2/a", "1").is_none());
}

#[test]
fn a_stop_when_idle_exits_1_when_a_last_run_failed() {
    let source = Registry::start();
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .task(
            &TaskYaml::new("broken", &source.host(), &target.host())
                .every(30)
                .mappings_yaml("  - from: no/such/repo\n    tags: ['1']\n"),
        )
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    daemon.wait_for("waiting for next sync task...");
    daemon.signal("INT");
    assert_eq!(daemon.wait_exit(), 1, "{}", daemon.log());
    assert_eq!(
        daemon.count("one or more tasks had errors, please see log for details"),
        1
    );
}

#[test]
fn a_periodic_task_fires_again_after_its_interval_and_only_its_last_run_counts() {
    let source = Registry::start();
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .task(
            &TaskYaml::new("tick", &source.host(), &target.host())
                .every(30)
                .mappings_yaml("  - from: app/late\n    tags: ['1']\n"),
        )
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    // The first run fails: the image is not there yet.
    daemon.wait_for("waiting for next sync task...");
    assert_eq!(daemon.count("image failed"), 1, "{}", daemon.log());
    push_image(&source, "app/late", "1", ImageOptions::default());
    // The second run comes by itself, one interval later, and succeeds.
    daemon.wait_for_nth("waiting for next sync task...", 2);
    assert_eq!(daemon.count("image copied"), 1, "{}", daemon.log());
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    assert!(manifest_digest(&target, "app/late", "1").is_some());
}

#[test]
fn every_task_is_validated_even_those_the_filter_leaves_out_and_a_bad_filter_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = TaskYaml::new("good", "127.0.0.1:1", "127.0.0.1:2")
        .every(30)
        .mapping("a", "b");
    let bad = "- name: bad\n  interval: 10\n  source: {registry: 127.0.0.1:1}\n  target: {registry: 127.0.0.1:2}\n".to_string();
    let path = ConfigYaml::new()
        .task(&good)
        .task_yaml(&bad)
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &["-run=good"], &[]);
    assert_eq!(daemon.wait_exit(), 1);
    assert!(
        daemon.log().contains("minimum task interval is 30 seconds"),
        "{}",
        daemon.log()
    );

    let path = ConfigYaml::new().task(&good).write_to(dir.path());
    let mut daemon = Daemon::start(&path, &["-run=(unclosed"], &[]);
    assert_eq!(daemon.wait_exit(), 1);
    assert_eq!(daemon.count("invalid task filter"), 1, "{}", daemon.log());
    assert_eq!(daemon.count("syncing task"), 0);
}

/// A source registry whose blob downloads take `delay` each, to have copies in flight.
fn slow_source(delay: Duration) -> (Registry, FaultProxy) {
    let image = ImageOptions {
        layers: 2,
        ..Default::default()
    };
    slow_source_with(image, Rule::delay("/blobs/", delay))
}

/// A source registry holding `slow/app:1` built as `image`, behind a proxy applying `slow` (the
/// proxy's rule 0) to blob downloads.
fn slow_source_with(image: ImageOptions, slow: Rule) -> (Registry, FaultProxy) {
    let source = Registry::start();
    push_image(&source, "slow/app", "1", image);
    let proxy = FaultProxy::start(&source.url(), vec![slow.method("GET")]);
    (source, proxy)
}

/// Waits until the proxy holds a delayed blob download: a copy is in flight.
fn wait_for_blob_download(proxy: &FaultProxy, daemon: &mut Daemon) {
    let start = Instant::now();
    while proxy.rule_hits(0) == 0 {
        assert!(
            start.elapsed() < WAIT && !daemon.exited(),
            "no blob download started; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stop_during_a_copy_lets_it_finish_starts_nothing_new_and_exits_130() {
    let (source, proxy) = slow_source(Duration::from_secs(4));
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .task(&slow_task("first", &proxy.host(), &target.host()))
        .task(
            &TaskYaml::new("second", &proxy.host(), &target.host())
                .mapping("slow/app", "other/app"),
        )
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &["-health=127.0.0.1:0"], &[]);
    let health = daemon.health_address();
    wait_for_blob_download(&proxy, &mut daemon);
    daemon.signal("INT");
    daemon.wait_for("stopping ...");
    // Stopping: no longer ready, still alive.
    assert_eq!(http("GET", &health, "/readyz").0, 503);
    assert_eq!(http("GET", &health, "/healthz").0, 200);
    assert_eq!(daemon.wait_exit(), 130, "{}", daemon.log());
    // The copy in flight finished within the grace period; the next task never started.
    assert_eq!(daemon.count("image copied"), 1, "{}", daemon.log());
    assert_eq!(task_names(&daemon), ["first"]);
    assert_eq!(
        manifest_digest(&target, "copy/app", "1"),
        manifest_digest(&source, "slow/app", "1")
    );
    assert!(list_tags(&target, "other/app").is_empty());
}

#[test]
fn after_the_grace_period_copies_are_aborted_and_leave_no_tag() {
    let (_source, proxy) = slow_source(Duration::from_secs(120));
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .settings("shutdown-grace: 1s\n")
        .task(&slow_task("slow", &proxy.host(), &target.host()).every(60))
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    wait_for_blob_download(&proxy, &mut daemon);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 143, "{}", daemon.log());
    assert_eq!(
        daemon.count("grace period of 1s is over"),
        1,
        "{}",
        daemon.log()
    );
    assert!(list_tags(&target, "copy/app").is_empty());
}

#[test]
fn after_the_grace_period_the_docker_relay_leaves_no_image_in_the_daemon() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "app", "1", ImageOptions::default());
    // The target's blob uploads hang: the push is still running when the grace period ends.
    let slow_target = FaultProxy::start(
        &target.url(),
        vec![Rule::delay(r"/blobs/uploads/", Duration::from_secs(120))],
    );
    let podman = Podman::start_with_plain_hosts(&[&source, &target], &[slow_target.host()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .settings(&format!(
            "relay: docker\ndocker:\n  dockerhost: {}\nshutdown-grace: 1s\n",
            podman.dockerhost()
        ))
        .task(
            &TaskYaml::new("slow", &source.host(), &slow_target.host())
                .every(60)
                .mappings_yaml("  - from: app\n    to: mirror/app\n    tags: ['1']\n"),
        )
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    daemon.wait_for("pushing target image");
    assert_eq!(podman.image_count(), 1, "{:?}", podman.image_tags());
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 143, "{}", daemon.log());
    assert_eq!(
        daemon.count("grace period of 1s is over"),
        1,
        "{}",
        daemon.log()
    );
    assert_eq!(
        podman.image_tags(),
        Vec::<String>::new(),
        "{}",
        daemon.log()
    );
    assert_eq!(podman.image_count(), 0);
}

#[test]
fn a_second_signal_exits_at_once() {
    let (_source, proxy) = slow_source(Duration::from_secs(120));
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .task(&slow_task("slow", &proxy.host(), &target.host()))
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    wait_for_blob_download(&proxy, &mut daemon);
    daemon.signal("INT");
    daemon.wait_for("stopping ...");
    daemon.signal("INT");
    // The grace period is 60 s and the download takes 120 s: only the second signal ends it.
    assert_eq!(daemon.wait_exit_within(Duration::from_secs(30)), 130);
    assert_eq!(daemon.count("second stop signal"), 1, "{}", daemon.log());
    assert!(list_tags(&target, "copy/app").is_empty());
}

/// The processes whose parent is `parent` and whose command name is `name`, from `/proc`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `pid (comm) state ppid …`; the name may hold spaces and parentheses.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                return false;
            };
            let ppid = stat[close + 1..].split_whitespace().nth(1);
            &stat[open + 1..close] == name && ppid == Some(parent.to_string().as_str())
        })
        .collect()
}

/// Every path under `dir`, depth first.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        }
        found.push(path);
    }
    found
}

#[test]
fn a_second_signal_during_a_skopeo_copy_kills_skopeo_and_removes_its_auth_files() {
    // Blob downloads crawl at 4 KiB/s: the copy of a 1 MiB layer takes minutes.
    let image = ImageOptions {
        layer_size: 1024 * 1024,
        ..Default::default()
    };
    let (_source, proxy) = slow_source_with(image, Rule::throttle("/blobs/", 4096));
    // Credentials for the target, so that skopeo gets an auth file.
    let target = Registry::builder().basic_auth().start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .settings("relay: skopeo\n")
        .task(
            &slow_task("slow", &proxy.host(), &target.host()).target_auth(&target.admin_auth_b64()),
        )
        .write_to(dir.path());
    let tmpdir = tmp.path().display().to_string();
    let mut daemon = Daemon::start(&path, &[], &[("TMPDIR", &tmpdir)]);
    wait_for_blob_download(&proxy, &mut daemon);
    let started = Instant::now();
    let skopeo = loop {
        if let [pid] = children_named(daemon.child.id(), "skopeo")[..] {
            break pid;
        }
        assert!(
            started.elapsed() < WAIT && !daemon.exited(),
            "no skopeo process under dregsy; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let auth_files: Vec<PathBuf> = files_under(tmp.path())
        .into_iter()
        .filter(|p| p.ends_with("target-auth.json"))
        .collect();
    assert_eq!(auth_files.len(), 1, "the copy in flight has its auth file");

    daemon.signal("TERM");
    daemon.wait_for("stopping ...");
    daemon.signal("TERM");
    // The grace period is 60 s and the copy takes minutes: only the second signal ends it.
    assert_eq!(
        daemon.wait_exit_within(Duration::from_secs(30)),
        143,
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.count("second stop signal"), 1, "{}", daemon.log());
    let left = files_under(tmp.path());
    let skopeo_alive = Path::new(&format!("/proc/{skopeo}")).exists();
    if skopeo_alive {
        // Not left running after a failed test.
        let _ = Command::new("kill")
            .args(["-s", "KILL", &skopeo.to_string()])
            .status();
    }
    assert!(
        left.is_empty() && !skopeo_alive,
        "left in TMPDIR: {left:?}; skopeo ({skopeo}) outlived dregsy: {skopeo_alive}"
    );
    assert!(list_tags(&target, "copy/app").is_empty());
}

#[test]
fn sighup_reloads_and_runs_the_one_off_tasks_again_with_the_same_filter() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "app/a", "1", ImageOptions::default());
    let (s, t) = (source.host(), target.host());
    let dir = tempfile::tempdir().expect("tempdir");
    let once = TaskYaml::new("once", &s, &t).mapping("app/a", "once/a");
    let tick = TaskYaml::new("tick", &s, &t)
        .every(30)
        .mapping("app/a", "tick/a");
    let path = ConfigYaml::new()
        .task(&once)
        .task(&tick)
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &["-run", "!skipped"], &[]);
    daemon.wait_for("waiting for next sync task...");
    // The new config adds a task; without `watch` only the signal makes dregsy read it.
    let added = TaskYaml::new("added", &s, &t).mapping("app/a", "added/a");
    let skipped = TaskYaml::new("skipped", &s, &t).mapping("app/a", "skipped/a");
    std::fs::write(
        &path,
        ConfigYaml::new()
            .task(&once)
            .task(&added)
            .task(&skipped)
            .task(&tick)
            .yaml(),
    )
    .expect("config rewritten");
    daemon.signal("HUP");
    daemon.wait_for_nth("waiting for next sync task...", 2);
    assert_eq!(daemon.wait_for("received signal")["signal"], "hangup");
    assert_eq!(daemon.count("dregsy "), 2, "{}", daemon.log());
    assert_eq!(
        task_names(&daemon),
        ["once", "tick", "once", "added", "tick"]
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    assert!(manifest_digest(&target, "added/a", "1").is_some());
    assert!(manifest_digest(&target, "skipped/a", "1").is_none());
}

#[test]
fn sighup_with_an_invalid_new_config_exits_1_with_its_error() {
    let source = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let h = source.host();
    let path = ConfigYaml::new()
        .task(&TaskYaml::new("tick", &h, &h).every(30).mapping("a", "b"))
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    daemon.wait_for("waiting for next sync task...");
    std::fs::write(&path, "tasks:\n- name: tick\n  interval: 5\n").expect("config rewritten");
    daemon.signal("HUP");
    assert_eq!(daemon.wait_exit(), 1, "{}", daemon.log());
    assert!(daemon.log().contains("minimum task interval is 30 seconds"));
}

#[test]
fn sighup_is_logged_and_ignored_when_every_task_is_one_off() {
    let (source, proxy) = slow_source(Duration::from_secs(3));
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .task(&slow_task("once", &proxy.host(), &target.host()))
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    wait_for_blob_download(&proxy, &mut daemon);
    daemon.signal("HUP");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    assert_eq!(daemon.count("not restarting"), 1, "{}", daemon.log());
    assert_eq!(daemon.count("dregsy "), 1);
    assert_eq!(
        manifest_digest(&target, "copy/app", "1"),
        manifest_digest(&source, "slow/app", "1")
    );
}

/// A periodic no-op task config with `watch: true`; `marker` makes each version's text differ.
fn watched_config(registry: &Registry, marker: &str) -> ConfigYaml {
    let h = registry.host();
    ConfigYaml::new()
        .settings(&format!("# {marker}\nwatch: true\n"))
        .task(
            &TaskYaml::new("tick", &h, &h)
                .every(30)
                .mappings_yaml("  - from: app/a\n    to: copy/a\n"),
        )
}

#[test]
fn watch_ignores_a_chmod_and_restarts_on_an_in_place_edit_and_on_a_rename() {
    let registry = Registry::start();
    push_image(&registry, "app/a", "1", ImageOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = watched_config(&registry, "v1").write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[("LOG_LEVEL", "debug")]);
    daemon.wait_for("watching config file, restarting on change");
    daemon.wait_for("waiting for next sync task...");

    // chmod (and the same content written again) is looked at, compared and ignored.
    Command::new("chmod")
        .args(["600", &path.display().to_string()])
        .status()
        .expect("chmod runs");
    daemon.wait_for("config file touched, but its content is unchanged");
    assert_eq!(daemon.count("config file changed"), 0);

    // An edit in place: truncate and write the same inode.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .expect("config opened");
    file.write_all(watched_config(&registry, "v2").yaml().as_bytes())
        .expect("config edited");
    drop(file);
    daemon.wait_for_nth("config file changed, restarting ...", 1);
    daemon.wait_for_nth("waiting for next sync task...", 2);

    // A rename over it, as editors and `kubectl cp` do.
    let tmp = dir.path().join(".config.yaml.swp");
    std::fs::write(&tmp, watched_config(&registry, "v3").yaml()).expect("temp written");
    std::fs::rename(&tmp, &path).expect("renamed over the config");
    daemon.wait_for_nth("config file changed, restarting ...", 2);
    daemon.wait_for_nth("waiting for next sync task...", 3);

    assert_eq!(daemon.count("dregsy "), 3, "{}", daemon.log());
    assert_eq!(task_names(&daemon), ["tick", "tick", "tick"]);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
}

#[test]
fn watch_follows_kubernetes_configmap_swaps() {
    let registry = Registry::start();
    push_image(&registry, "app/a", "1", ImageOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // The layout the kubelet makes: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>.
    let publish = |version: &str| {
        let data = root.join(format!("..{version}"));
        std::fs::create_dir(&data).expect("data dir");
        std::fs::write(
            data.join("config.yaml"),
            watched_config(&registry, version).yaml(),
        )
        .expect("config written");
        std::os::unix::fs::symlink(format!("..{version}"), root.join("..data_tmp"))
            .expect("symlink");
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap");
    };
    publish("2024_01_01_00_00_00.1");
    std::os::unix::fs::symlink("..data/config.yaml", root.join("config.yaml")).expect("link");
    let mut daemon = Daemon::start(&root.join("config.yaml"), &[], &[]);
    daemon.wait_for("waiting for next sync task...");

    for (n, (old, new)) in [
        ("2024_01_01_00_00_00.1", "2024_01_01_00_01_00.2"),
        ("2024_01_01_00_01_00.2", "2024_01_01_00_02_00.3"),
    ]
    .into_iter()
    .enumerate()
    {
        publish(new);
        std::fs::remove_dir_all(root.join(format!("..{old}"))).expect("old data removed");
        daemon.wait_for_nth("config file changed, restarting ...", n + 1);
        daemon.wait_for_nth("waiting for next sync task...", n + 2);
    }
    assert_eq!(daemon.count("dregsy "), 3, "{}", daemon.log());
    daemon.signal("INT");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
}

#[test]
fn watch_keeps_the_config_while_the_file_is_gone_and_exits_1_on_invalid_yaml() {
    let registry = Registry::start();
    push_image(&registry, "app/a", "1", ImageOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = watched_config(&registry, "v1").write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    daemon.wait_for("waiting for next sync task...");
    std::fs::remove_file(&path).expect("config removed");
    daemon.wait_for("config file is gone; keeping the current config until it returns");
    assert!(!daemon.exited(), "{}", daemon.log());
    std::fs::write(&path, "tasks: [\n").expect("broken config written");
    assert_eq!(daemon.wait_exit(), 1, "{}", daemon.log());
    assert_eq!(daemon.count("config file is back"), 1, "{}", daemon.log());
    assert_eq!(daemon.count("config file changed, restarting ..."), 1);
    assert!(
        daemon.log().contains("error parsing config file"),
        "{}",
        daemon.log()
    );
}

#[test]
fn health_endpoint_serves_liveness_readiness_and_each_tasks_last_run() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "app/a", "1", ImageOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .settings("health:\n  listen: 127.0.0.1:0\n")
        .task(
            &TaskYaml::new("tick", &source.host(), &target.host())
                .every(30)
                .mapping("app/a", "copy/a"),
        )
        .task(
            &TaskYaml::new("broken", &source.host(), &target.host())
                .every(30)
                .mappings_yaml("  - from: no/such\n    tags: ['1']\n"),
        )
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    let health = daemon.health_address();
    daemon.wait_for_nth("waiting for next sync task...", 2);
    assert_eq!(http("GET", &health, "/healthz"), (200, "ok\n".into()));
    assert_eq!(http("GET", &health, "/readyz"), (200, "ready\n".into()));
    assert_eq!(http("GET", &health, "/nope").0, 404);
    assert_eq!(http("POST", &health, "/healthz").0, 405);
    let (status, body) = http("GET", &health, "/status");
    assert_eq!(status, 200);
    let json: Value = serde_json::from_str(&body).expect("status is JSON");
    assert_eq!(json["ready"], true);
    assert_eq!(json["phase"], "running");
    let tasks = json["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2);
    let tick = &tasks[0];
    assert_eq!(tick["task"], "tick");
    assert_eq!(tick["interval_seconds"], 30);
    assert_eq!(tick["runs_total"], 1);
    assert_eq!(tick["images_copied_total"], 1);
    assert_eq!(tick["last_run"]["result"], "ok");
    assert_eq!(tick["last_run"]["images_copied"], 1);
    assert!(tick["last_run"]["bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(
        tick["last_run"]["finished_unix"].as_f64() >= tick["last_run"]["started_unix"].as_f64()
    );
    let broken = &tasks[1];
    assert_eq!(broken["last_run"]["result"], "failed");
    assert_eq!(broken["failed_runs_total"], 1);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 1, "{}", daemon.log());
}

#[test]
fn shutdown_with_several_periodic_tasks_never_hangs() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "app/a", "1", ImageOptions::default());
    let (s, t) = (source.host(), target.host());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .settings("watch: true\n")
        .task(
            &TaskYaml::new("p1", &s, &t)
                .every(30)
                .mapping("app/a", "p1/a"),
        )
        .task(
            &TaskYaml::new("p2", &s, &t)
                .every(31)
                .mapping("app/a", "p2/a"),
        )
        .task(
            &TaskYaml::new("p3", &s, &t)
                .every(45)
                .mapping("app/a", "p3/a"),
        )
        .write_to(dir.path());
    let started = Instant::now();
    for round in 0..50 {
        let mut daemon = Daemon::start(&path, &[], &[]);
        let (signal, code) = if round % 2 == 0 {
            ("INT", 130)
        } else {
            ("TERM", 143)
        };
        // Signal at different moments: at start, during the first run, between runs, idle.
        match round % 4 {
            0 => daemon.wait_for("dregsy "),
            1 => daemon.wait_for("syncing task"),
            2 => daemon.wait_for("waiting for next sync task..."),
            _ => daemon.wait_for_nth("waiting for next sync task...", 3),
        };
        daemon.signal(signal);
        let exit = daemon.wait_exit_within(Duration::from_secs(30));
        if round % 4 == 3 {
            assert_eq!(exit, 0, "round {round}: {}", daemon.log());
        } else {
            assert!(
                exit == 0 || exit == code,
                "round {round}: exit {exit}; log:\n{}",
                daemon.log()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "50 shutdowns did not finish in 10 minutes (round {round})"
        );
    }
}

/// The task names of the metrics test: one plain, one that needs escaping in the exposition
/// text (a quote, a backslash and a newline).
const ODD_TASK: &str = "say \"hi\" \\ and\nbye";

#[test]
fn prometheus_scrapes_the_metrics_and_reads_back_what_the_run_did() {
    let source = Registry::start();
    let target = Registry::start();
    for repo in ["app/a", "app/b", "app/c"] {
        push_image(&source, repo, "1", ImageOptions::default());
    }
    // The source announces a rate limit on its manifests as Docker Hub does.
    let limited = FaultProxy::start(
        &source.url(),
        vec![Rule::header(
            "/manifests/",
            "ratelimit-remaining",
            "76;w=21600",
        )],
    );
    let (s, t) = (limited.host(), target.host());
    let mirror = TaskYaml::new("mirror", &s, &t)
        .every(600)
        .mapping("app/a", "copy/a")
        .mapping("app/b", "copy/b")
        .mapping("app/c", "copy/c");
    // The odd task's name is written as a double-quoted YAML scalar with escapes.
    let odd = TaskYaml::new("odd", &s, &t)
        .every(600)
        .mappings_yaml("  - from: no/such\n    tags: ['1']\n")
        .yaml()
        .replacen(
            "- name: odd",
            "- name: \"say \\\"hi\\\" \\\\ and\\nbye\"",
            1,
        );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .settings("watch: false\nhealth:\n  listen: 127.0.0.1:0\n")
        .task(&mirror)
        .task_yaml(&odd)
        .write_to(dir.path());
    // `.` does not match a newline, so the default filter would leave the odd task out.
    let mut daemon = Daemon::start(&path, &["-run=(?s).*"], &[]);
    let health = daemon.health_address();
    daemon.wait_for_nth("waiting for next sync task...", 2);

    let (status, head, body) = http_with_head("GET", &health, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let (clean, lint) = promtool_check_metrics(&body);
    assert!(clean, "promtool check metrics:\n{lint}\n{body}");
    assert!(
        body.contains("task=\"say \\\"hi\\\" \\\\ and\\nbye\""),
        "the odd task name is escaped:\n{body}"
    );

    let prometheus = Prometheus::scraping(&health);
    assert_eq!(prometheus.value("up{job=\"dregsy\"}"), 1.0);
    let images = |task: &str, result: &str| {
        prometheus.value(&format!(
            "dregsy_images_total{{task=\"{task}\",result=\"{result}\"}}"
        ))
    };
    assert_eq!(images("mirror", "copied"), 3.0);
    assert_eq!(images("mirror", "up_to_date"), 0.0);
    assert_eq!(images("mirror", "failed"), 0.0);
    assert_eq!(
        prometheus.value("dregsy_task_runs_total{task=\"mirror\",result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        prometheus.value("dregsy_task_run_duration_seconds_count{task=\"mirror\"}"),
        1.0
    );
    assert!(prometheus.value("dregsy_task_last_success_timestamp_seconds{task=\"mirror\"}") > 0.0);
    assert_eq!(
        prometheus.value("dregsy_task_interval_seconds{task=\"mirror\"}"),
        600.0
    );
    // The bytes agree with what /status reports for the same run.
    let (_, status_body) = http("GET", &health, "/status");
    let status: Value = serde_json::from_str(&status_body).expect("status is JSON");
    let bytes = status["tasks"][0]["bytes_total"].as_f64().expect("bytes");
    assert!(bytes > 0.0);
    assert_eq!(
        prometheus.value("dregsy_bytes_copied_total{task=\"mirror\"}"),
        bytes
    );
    // The odd task failed; PromQL strings escape as Go's do, so its name reads back intact.
    let odd_query = ODD_TASK
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    assert_eq!(
        prometheus.value(&format!(
            "dregsy_task_runs_total{{task=\"{odd_query}\",result=\"failed\"}}"
        )),
        1.0
    );
    let odd_series = prometheus.query("dregsy_task_runs_total{result=\"failed\"} == 1");
    assert_eq!(odd_series.len(), 1);
    assert_eq!(odd_series[0].0["task"], ODD_TASK);
    // Registry requests are labelled by host; the target saw the manifest PUTs.
    assert!(
        prometheus.value(&format!(
            "sum(dregsy_registry_requests_total{{registry=\"{t}\",method=\"PUT\",code=\"201\"}})"
        )) >= 3.0
    );
    assert!(
        prometheus.value(&format!(
            "dregsy_registry_request_duration_seconds_count{{registry=\"{s}\"}}"
        )) > 0.0
    );
    let registries: Vec<String> = prometheus
        .query("count by (registry) (dregsy_registry_requests_total)")
        .iter()
        .map(|(labels, _)| labels["registry"].as_str().unwrap_or_default().to_string())
        .collect();
    for registry in &registries {
        assert!(
            registry == &s || registry == &t,
            "{registry}: {registries:?}"
        );
    }
    // The source's announced budget; the target announces none, so it has no series.
    assert!(limited.rule_hits(0) > 0);
    assert_eq!(
        prometheus.value(&format!("dregsy_ratelimit_remaining{{registry=\"{s}\"}}")),
        76.0
    );
    assert!(
        prometheus
            .query(&format!("dregsy_ratelimit_remaining{{registry=\"{t}\"}}"))
            .is_empty()
    );
    assert_eq!(prometheus.value("dregsy_build_info"), 1.0);
    assert_eq!(
        prometheus.value("dregsy_shard{index=\"0\",count=\"1\"}"),
        1.0
    );
    // The example alert rules of docs/metrics.md load and evaluate; nothing fires yet.
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prometheus-rules.yaml");
    let check = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .expect("promtool runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let rules_text = std::fs::read_to_string(&rules).expect("rules file");
    let expr = |alert: &str| alert_expr(&rules_text, alert);
    // Both periodic tasks ran once: the mirror succeeded, the odd one failed. The rule on the
    // last success cannot see the odd task (it has no success series); the rule for tasks
    // that never succeeded selects exactly it (its `for` aside).
    let not_succeeding = expr("DregsyTaskNotSucceeding");
    assert!(
        prometheus.query(&not_succeeding).is_empty(),
        "{not_succeeding} fires already"
    );
    let never = expr("DregsyTaskNeverSucceeded");
    let never_tasks: Vec<String> = prometheus
        .query(&never)
        .iter()
        .map(|(labels, _)| labels["task"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(never_tasks, ["say \"hi\" \\ and\nbye"], "{never}");
    // DregsyDown's `job` matcher selects this scrape (job `dregsy`), which is up.
    let down = expr("DregsyDown");
    let selector = down
        .strip_suffix(" == 0")
        .expect("DregsyDown is `up{…} == 0`");
    assert_eq!(prometheus.value(selector), 1.0, "{selector}");
    assert!(prometheus.query(&down).is_empty(), "{down} fires already");
    daemon.signal("TERM");
    assert_eq!(
        daemon.wait_exit(),
        1,
        "the odd task failed: {}",
        daemon.log()
    );
}

/// The README shows the example rules file's rules as they are, so the alerts it explains
/// are the ones `promtool` checks above.
#[test]
fn the_readme_shows_the_example_alert_rules_as_they_are() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules =
        std::fs::read_to_string(root.join("examples/prometheus-rules.yaml")).expect("rules");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let groups = &rules[rules.find("groups:").expect("a groups key")..];
    assert!(
        readme.contains(&format!("```yaml\n{groups}```\n")),
        "README.md's alert rules differ from examples/prometheus-rules.yaml"
    );
    for alert in [
        "DregsyTaskNotSucceeding",
        "DregsyTaskNeverSucceeded",
        "DregsyDown",
    ] {
        assert!(
            readme.contains(&format!("- `{alert}`")),
            "README explains {alert}"
        );
    }
}

/// The `expr` of rule `alert` in a rules file, its lines joined: written inline
/// (`expr: up == 0`) or as a block (`expr: |` and the lines indented below it).
fn alert_expr(rules: &str, alert: &str) -> String {
    let rule = rules
        .split_once(&format!("- alert: {alert}\n"))
        .unwrap_or_else(|| panic!("no rule {alert} in:\n{rules}"))
        .1;
    let after = rule
        .split_once("expr:")
        .unwrap_or_else(|| panic!("{alert} has no expr"))
        .1;
    let (first, rest) = after.split_once('\n').unwrap_or((after, ""));
    if first.trim() != "|" {
        return first.trim().to_string();
    }
    rest.lines()
        .take_while(|l| l.starts_with("      "))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn failures_are_counted_by_kind_an_auth_failure_apart_from_a_not_found() {
    // A source that wants credentials the task does not give, and an open one without the
    // wanted repository.
    let locked = Registry::builder().basic_auth().start();
    push_image(&locked, "app", "1", ImageOptions::default());
    let open = Registry::start();
    let target = Registry::start();
    let t = target.host();
    // The image's check is refused; so is the listing of repositories for the regex mapping,
    // which fails as a whole.
    let locked_task = TaskYaml::new("locked", &locked.host(), &t)
        .every(600)
        .mappings_yaml(
            "  - from: app\n    to: copy/app\n    tags: ['1']\n  \
             - from: regex:ap.*\n    to: copy\n    tags: ['1']\n",
        );
    let missing_task = TaskYaml::new("missing", &open.host(), &t)
        .every(600)
        .mappings_yaml("  - from: no/such\n    to: copy/none\n    tags: ['1']\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .settings("watch: false\nhealth:\n  listen: 127.0.0.1:0\n")
        .task(&locked_task)
        .task(&missing_task)
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    let health = daemon.health_address();
    daemon.wait_for_nth("waiting for next sync task...", 2);
    let (status, body) = http("GET", &health, "/metrics");
    assert_eq!(status, 200, "{body}");
    let (clean, lint) = promtool_check_metrics(&body);
    assert!(clean, "promtool check metrics:\n{lint}\n{body}");
    let failures = |task: &str, kind: &str| {
        let series = format!("dregsy_failures_total{{task=\"{task}\",kind=\"{kind}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .unwrap_or_else(|| panic!("{series} in:\n{body}"))
            .to_string()
    };
    for (task, counted, count) in [("locked", "auth", "2"), ("missing", "not_found", "1")] {
        for kind in ["auth", "not_found", "tls", "rate_limit", "network", "other"] {
            let expected = if kind == counted { count } else { "0" };
            assert_eq!(failures(task, kind), expected, "{task}, {kind}:\n{body}");
        }
    }
    // The failed image lines say the same as before the count.
    let failed = daemon.matching("image failed");
    assert_eq!(failed.len(), 2, "{}", daemon.log());
    let mapping_failed = daemon.matching("mapping failed: cannot list the source's repositories");
    assert_eq!(mapping_failed.len(), 1, "{}", daemon.log());
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 1, "{}", daemon.log());
}

#[test]
fn a_scrape_while_a_reload_waits_for_the_running_task_still_answers() {
    let (_source, proxy) = slow_source(Duration::from_secs(3));
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .settings("watch: false\nhealth:\n  listen: 127.0.0.1:0\n")
        .task(&slow_task("slow", &proxy.host(), &target.host()).every(600))
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    let health = daemon.health_address();
    wait_for_blob_download(&proxy, &mut daemon);
    daemon.signal("HUP");
    daemon.wait_for("restarting after the running task finishes");
    let (status, body) = http("GET", &health, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("dregsy_task_runs_total{task=\"slow\",result=\"ok\"} 0"),
        "{body}"
    );
    // After the reload the same endpoint counts both runs: the one the reload waited for and
    // the first run of the reloaded config (each periodic run ends with "waiting for next").
    daemon.wait_for_nth("waiting for next sync task", 2);
    let (status, body) = http("GET", &health, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("dregsy_task_runs_total{task=\"slow\",result=\"ok\"} 2"),
        "{body}"
    );
    daemon.signal("TERM");
    daemon.wait_exit();
}

#[test]
fn health_on_a_port_in_use_is_a_clear_error_naming_the_address_and_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let address = taken.local_addr().expect("address").to_string();
    let source = Registry::start();
    let target = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = ConfigYaml::new()
        .task(
            &TaskYaml::new("t", &source.host(), &target.host())
                .every(60)
                .mapping("a", "b"),
        )
        .write_to(dir.path());
    let flag = format!("-health={address}");
    let mut daemon = Daemon::start(&path, &[flag.as_str()], &[]);
    assert_eq!(daemon.wait_exit(), 1, "{}", daemon.log());
    let errors = daemon.matching(&format!("cannot serve the health endpoint on {address}"));
    assert_eq!(errors.len(), 1, "{}", daemon.log());
    assert_eq!(errors[0]["level"], "error", "{}", daemon.log());
    assert_eq!(daemon.count("syncing task"), 0);
}

/// A daemon keeps what it learnt about referrers for its lifetime, in memory when the manifest
/// cache is off: after a run that copied an image with its signature, a later run in the same
/// process finds the target's referrer set complete without asking the target again.
#[test]
fn a_daemon_remembers_complete_referrer_sets_without_a_cache_directory() {
    use support::signing::{self, Signature, Store, TestKey};
    let source = Registry::start();
    let target = Registry::builder().access_log().start();
    let image = push_image(&source, "signed/app", "v1", ImageOptions::default());
    let signature = signing::sign(
        &source.endpoint(),
        "signed/app",
        (&image.digest, &image.media_type, image.manifest.len()),
        Signature::of(&TestKey::ecdsa(), &image.digest),
        Store::FallbackTag,
    );
    let (s, t) = (source.host(), target.host());
    let dir = tempfile::tempdir().expect("tempdir");
    let mappings = "  - from: signed/app\n    tags: [v1]\n";
    let path = ConfigYaml::new()
        .settings("watch: false\nreferrers: true\nnative:\n  cache-dir: '-'\n")
        .task(&TaskYaml::new("first", &s, &t).mappings_yaml(mappings))
        .task(
            &TaskYaml::new("again", &s, &t)
                .every(30)
                .mappings_yaml(mappings),
        )
        .write_to(dir.path());
    let mut daemon = Daemon::start(&path, &[], &[]);
    daemon.wait_for_nth("waiting for next sync task...", 1);
    assert_eq!(task_names(&daemon), ["first", "again"]);
    assert_eq!(daemon.count("image copied"), 1, "{}", daemon.log());
    assert_eq!(daemon.count("image up to date"), 1, "{}", daemon.log());
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    let tag = format!("sha256-{}", image.digest.trim_start_matches("sha256:"));
    // The first run asked what the target lists (its referrers API, then its fallback tag)
    // before writing; the second asked nothing about referrers.
    let asked: Vec<String> = target
        .requests()
        .iter()
        .filter(|r| r.user_agent.starts_with("dregsy/") && r.method == "GET")
        .filter(|r| r.path.contains("/referrers/") || r.path.ends_with(&tag))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(asked.len(), 2, "once each, in the first run: {asked:?}");
    let listed = support::get_manifest(&target, "signed/app", &tag).expect("fallback tag");
    assert!(
        String::from_utf8_lossy(&listed.bytes).contains(&signature),
        "the signature is listed at the target"
    );
}
