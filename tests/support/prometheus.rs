//! A real Prometheus server (Debian package `prometheus`) scraping a target on loopback, and
//! `promtool check metrics`: what an operator's monitoring does with dregsy's `/metrics`.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";
const PROMTOOL_BIN: &str = "/usr/bin/promtool";
const INSTALL: &str = "install it with `apt-get install -y prometheus` (or run scripts/test)";

/// How long Prometheus may take to start, or a value to appear, before the test fails.
const WAIT: Duration = Duration::from_secs(60);

/// A running Prometheus scraping one target every second; killed on drop.
pub struct Prometheus {
    _dir: TempDir,
    child: Child,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus on a free 127.0.0.1 port, scraping `target` (`host:port`, path
    /// `/metrics`) as job `dregsy` every second, and waits until it is ready.
    pub fn scraping(target: &str) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS_BIN).exists(),
            "prometheus not found: {INSTALL}"
        );
        let dir = tempfile::Builder::new()
            .prefix("dregsy-prometheus-")
            .tempdir()
            .expect("a temporary directory for Prometheus");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n- job_name: dregsy\n  static_configs:\n  - targets: ['{target}']\n"
            ),
        )
        .expect("write the Prometheus config");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(PROMETHEUS_BIN)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus does not start ({e}): {INSTALL}"));
        let mut prometheus = Prometheus {
            _dir: dir,
            child,
            port,
        };
        let start = Instant::now();
        while get(port, "/-/ready").map(|(status, _)| status) != Some(200) {
            if start.elapsed() > WAIT || prometheus.child.try_wait().ok().flatten().is_some() {
                panic!(
                    "Prometheus did not become ready; its log:\n{}",
                    prometheus.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// What Prometheus logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The samples of an instant query through the HTTP API (`/api/v1/query`): each series'
    /// labels and value.
    pub fn query(&self, expr: &str) -> Vec<(serde_json::Value, f64)> {
        let path = format!("/api/v1/query?query={}", encode(expr));
        let (status, body) =
            get(self.port, &path).unwrap_or_else(|| panic!("Prometheus does not answer {path}"));
        assert_eq!(status, 200, "query {expr}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("query answer is JSON");
        json["data"]["result"]
            .as_array()
            .map(|samples| {
                samples
                    .iter()
                    .map(|s| {
                        let value = s["value"][1]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(f64::NAN);
                        (s["metric"].clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `expr` has exactly one sample and returns its value: Prometheus scrapes
    /// every second, so a value appears after a scrape or two.
    pub fn value(&self, expr: &str) -> f64 {
        let start = Instant::now();
        loop {
            if let [(_, value)] = self.query(expr).as_slice() {
                return *value;
            }
            assert!(
                start.elapsed() < WAIT,
                "no single sample of {expr} within {WAIT:?}; targets: {}; log:\n{}",
                get(self.port, "/api/v1/targets")
                    .map(|(_, b)| b)
                    .unwrap_or_default(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `promtool check metrics` on exposition text; returns its exit status and output.
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    assert!(
        Path::new(PROMTOOL_BIN).exists(),
        "promtool not found: {INSTALL}"
    );
    let mut child = Command::new(PROMTOOL_BIN)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One GET on 127.0.0.1:`port`: status and body, or `None` when nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let (status, _, body) = super::http::get_raw(&format!("127.0.0.1:{port}"), "GET", path)?;
    Some((status, body))
}
