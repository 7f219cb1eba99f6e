//! What the daemon is doing, for the health endpoint and the metrics.
//!
//! The scheduler writes here (config loaded, run started, run finished, loop heartbeat); the
//! HTTP side only reads [`StatusBoard::snapshot`] and the board's [`Metrics`], which the board
//! feeds with each finished run. The snapshot is plain numbers and names in
//! Prometheus terms: counters end in `_total` and only grow for the life of the process (they
//! survive restarts for tasks that keep their name), times are Unix seconds, durations are
//! `_seconds`. An exporter can turn each field into a metric with a `task` label unchanged.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::Task;
use crate::metrics::Metrics;
use crate::report::TaskReport;

/// How long the scheduler loop may go without a heartbeat before `/healthz` calls it stuck.
/// The loop beats every [`HEARTBEAT_EVERY`], also while a task runs, so only a loop that no
/// longer gets polled (a deadlock, a blocked runtime) misses it.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(30);

/// How often the scheduler loop beats.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// The shared board; cheap to clone.
#[derive(Clone)]
pub struct StatusBoard {
    board: Arc<Mutex<Board>>,
    /// Not behind the board's lock: it has its own, so a scrape never waits for the board.
    metrics: Arc<Metrics>,
}

struct Board {
    started: SystemTime,
    heartbeat: Instant,
    phase: Phase,
    config_file: String,
    config_loaded: Option<SystemTime>,
    restarts: u64,
    tasks: Vec<TaskStatus>,
}

/// Where the daemon is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Loading (or reloading) the config: not ready.
    Loading,
    /// A config is loaded and its tasks are scheduled: ready.
    Running,
    /// A stop signal came: finishing what is in flight, then exiting. Not ready.
    Stopping,
}

/// One task as the endpoint shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskStatus {
    /// The task's name.
    pub task: String,
    /// Whether it runs every `interval`.
    pub periodic: bool,
    /// `null` for a one-off task.
    pub interval_seconds: Option<u64>,
    /// When the current run started (Unix seconds), while one is going.
    pub running_since: Option<f64>,
    /// Runs finished since the process started.
    pub runs_total: u64,
    /// Runs with any failure (the original's `failed` flag).
    pub failed_runs_total: u64,
    /// Runs cut short by a stop signal.
    pub interrupted_runs_total: u64,
    /// Images copied, over all runs.
    pub images_copied_total: u64,
    /// Images found up to date, over all runs.
    pub images_up_to_date_total: u64,
    /// Images left out on purpose (`min-age`: too young), neither copied nor failed.
    pub images_skipped_total: u64,
    /// Image jobs that failed, over all runs.
    pub images_failed_total: u64,
    /// Mappings that failed before any image job, over all runs.
    pub mapping_failures_total: u64,
    /// Blob bytes transferred.
    pub bytes_total: u64,
    /// The last finished run; `null` before the first.
    pub last_run: Option<RunStatus>,
}

/// One finished run of one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStatus {
    /// `ok`, `failed` or `interrupted`.
    pub result: &'static str,
    /// When the run started, RFC 3339, for people.
    pub started: String,
    /// When the run finished, RFC 3339.
    pub finished: String,
    /// When the run started, Unix seconds, for machines.
    pub started_unix: f64,
    /// When the run finished, Unix seconds.
    pub finished_unix: f64,
    /// Seconds from start to finish.
    pub duration_seconds: f64,
    /// Images copied.
    pub images_copied: u64,
    /// Images found up to date.
    pub images_up_to_date: u64,
    /// Images left out on purpose (`min-age`).
    pub images_skipped: u64,
    /// Image jobs that failed.
    pub images_failed: u64,
    /// Mappings that failed before any image job.
    pub mapping_failures: u64,
    /// Blob bytes transferred.
    pub bytes: u64,
}

impl RunStatus {
    /// The status view of a task report.
    pub fn from_report(report: &TaskReport) -> Self {
        RunStatus {
            result: report.result(),
            started: rfc3339(report.started),
            finished: rfc3339(report.finished),
            started_unix: unix(report.started),
            finished_unix: unix(report.finished),
            duration_seconds: report
                .finished
                .duration_since(report.started)
                .unwrap_or_default()
                .as_secs_f64(),
            images_copied: report.copied() as u64,
            images_up_to_date: report.up_to_date() as u64,
            images_skipped: report.skipped() as u64,
            images_failed: report.failed_images() as u64,
            mapping_failures: report.mapping_failures as u64,
            bytes: report.bytes(),
        }
    }
}

/// Everything the endpoint shows, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// dregsy's version.
    pub version: &'static str,
    /// Where the process is: loading, running or stopping.
    pub phase: Phase,
    /// Whether `/readyz` answers 200.
    pub ready: bool,
    /// Whether `/healthz` answers 200.
    pub alive: bool,
    /// When the process started (Unix seconds).
    pub started_unix: f64,
    /// Seconds since the scheduler loop last beat.
    pub heartbeat_age_seconds: f64,
    /// The `-config` path.
    pub config_file: String,
    /// When the config was last loaded (Unix seconds); `null` before.
    pub config_loaded_unix: Option<f64>,
    /// Restarts by SIGHUP or config change.
    pub restarts_total: u64,
    /// The tasks the `-run` filter selects, in config order.
    pub tasks: Vec<TaskStatus>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        StatusBoard::new()
    }
}

impl StatusBoard {
    /// A board in the loading phase, with no tasks yet.
    pub fn new() -> Self {
        let board = Arc::new(Mutex::new(Board {
            started: SystemTime::now(),
            heartbeat: Instant::now(),
            phase: Phase::Loading,
            config_file: String::new(),
            config_loaded: None,
            restarts: 0,
            tasks: Vec::new(),
        }));
        StatusBoard {
            board,
            metrics: Arc::new(Metrics::new(crate::VERSION)),
        }
    }

    /// The process's metrics, fed by this board's runs.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Runs `f` on the board. A panic elsewhere while holding the lock must not silence the
    /// endpoint, so a poisoned lock is used as it is: the board holds only plain values.
    fn with<T>(&self, f: impl FnOnce(&mut Board) -> T) -> T {
        let mut guard = match self.board.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// The scheduler loop is alive.
    pub fn beat(&self) {
        self.with(|b| b.heartbeat = Instant::now());
    }

    /// A config is about to be (re)loaded.
    pub fn loading(&self, restart: bool) {
        self.with(|b| {
            b.phase = Phase::Loading;
            b.heartbeat = Instant::now();
            if restart {
                b.restarts += 1;
            }
        });
    }

    /// A config was loaded and these tasks are selected. Counters of tasks that keep their
    /// name carry over; tasks no longer selected disappear.
    pub fn loaded(&self, file: &str, tasks: &[&Task]) {
        let configured: Vec<(&str, Option<Duration>)> = tasks
            .iter()
            .map(|task| (task.name.as_str(), task.interval))
            .collect();
        self.metrics.tasks_configured(&configured);
        self.with(|b| {
            let old = std::mem::take(&mut b.tasks);
            b.tasks = tasks
                .iter()
                .map(|task| {
                    let mut status = old
                        .iter()
                        .find(|s| s.task == task.name)
                        .cloned()
                        .unwrap_or_else(|| TaskStatus::new(&task.name));
                    status.periodic = task.is_periodic();
                    status.interval_seconds = task.interval.map(|d| d.as_secs());
                    status.running_since = None;
                    status
                })
                .collect();
            b.config_file = file.to_string();
            b.config_loaded = Some(SystemTime::now());
            b.phase = Phase::Running;
            b.heartbeat = Instant::now();
        });
    }

    /// A stop signal came.
    pub fn stopping(&self) {
        self.with(|b| b.phase = Phase::Stopping);
    }

    /// A run of `task` started.
    pub fn run_started(&self, task: &str) {
        let now = unix(SystemTime::now());
        self.with(|b| {
            if let Some(status) = b.tasks.iter_mut().find(|s| s.task == task) {
                status.running_since = Some(now);
            }
        });
    }

    /// A run ended (or was aborted; then `report.interrupted` is set).
    pub fn run_finished(&self, report: &TaskReport) {
        self.metrics.run_finished(report);
        self.with(|b| {
            if let Some(status) = b.tasks.iter_mut().find(|s| s.task == report.task) {
                status.record(report);
            }
        });
    }

    /// The board now.
    pub fn snapshot(&self) -> Snapshot {
        self.with(|b| {
            let age = b.heartbeat.elapsed();
            Snapshot {
                version: crate::VERSION,
                phase: b.phase,
                ready: b.phase == Phase::Running,
                alive: age < HEARTBEAT_STALE,
                started_unix: unix(b.started),
                heartbeat_age_seconds: age.as_secs_f64(),
                config_file: b.config_file.clone(),
                config_loaded_unix: b.config_loaded.map(unix),
                restarts_total: b.restarts,
                tasks: b.tasks.clone(),
            }
        })
    }
}

impl TaskStatus {
    fn new(task: &str) -> Self {
        TaskStatus {
            task: task.to_string(),
            periodic: false,
            interval_seconds: None,
            running_since: None,
            runs_total: 0,
            failed_runs_total: 0,
            interrupted_runs_total: 0,
            images_copied_total: 0,
            images_up_to_date_total: 0,
            images_skipped_total: 0,
            images_failed_total: 0,
            mapping_failures_total: 0,
            bytes_total: 0,
            last_run: None,
        }
    }

    fn record(&mut self, report: &TaskReport) {
        let run = RunStatus::from_report(report);
        self.running_since = None;
        self.runs_total += 1;
        self.failed_runs_total += u64::from(report.failed());
        self.interrupted_runs_total += u64::from(report.interrupted);
        self.images_copied_total += run.images_copied;
        self.images_up_to_date_total += run.images_up_to_date;
        self.images_skipped_total += run.images_skipped;
        self.images_failed_total += run.images_failed;
        self.mapping_failures_total += run.mapping_failures;
        self.bytes_total += run.bytes;
        self.last_run = Some(run);
    }
}

fn unix(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ImageResult;

    fn task(name: &str, interval: Option<u64>) -> Task {
        let text = format!(
            "tasks:\n- name: {name}\n{}  source: {{registry: a.example}}\n  target: {{registry: b.example}}\n  mappings:\n  - from: x\n",
            interval
                .map(|i| format!("  interval: {i}\n"))
                .unwrap_or_default()
        );
        let (mut config, _) =
            crate::config::load_str(std::path::Path::new("t.yaml"), &text).expect("config");
        config.tasks.remove(0)
    }

    fn report(name: &str, results: Vec<ImageResult>, interrupted: bool) -> TaskReport {
        let mut report = TaskReport::with_results(name, results);
        report.interrupted = interrupted;
        report
    }

    #[test]
    fn readiness_follows_the_phase() {
        let board = StatusBoard::new();
        assert!(!board.snapshot().ready);
        let t = task("a", Some(60));
        board.loaded("c.yaml", &[&t]);
        let snap = board.snapshot();
        assert!(snap.ready && snap.alive);
        assert_eq!(snap.tasks[0].interval_seconds, Some(60));
        board.stopping();
        assert!(!board.snapshot().ready);
        board.loading(true);
        let snap = board.snapshot();
        assert!(!snap.ready);
        assert_eq!(snap.restarts_total, 1);
    }

    #[test]
    fn counters_accumulate_and_survive_a_reload() {
        let board = StatusBoard::new();
        let (a, b) = (task("a", Some(60)), task("b", None));
        board.loaded("c.yaml", &[&a, &b]);
        board.run_started("a");
        assert!(board.snapshot().tasks[0].running_since.is_some());
        board.run_finished(&report(
            "a",
            vec![
                ImageResult::Copied { bytes: 7 },
                ImageResult::UpToDate,
                ImageResult::Skipped {
                    reason: "too young".into(),
                },
                ImageResult::failed(crate::failure::FailureKind::Other),
            ],
            false,
        ));
        board.run_finished(&report("a", vec![ImageResult::UpToDate], true));
        let snap = board.snapshot();
        let a_status = &snap.tasks[0];
        assert_eq!(a_status.running_since, None);
        assert_eq!(
            (
                a_status.runs_total,
                a_status.failed_runs_total,
                a_status.interrupted_runs_total,
                a_status.images_copied_total,
                a_status.images_up_to_date_total,
                a_status.images_skipped_total,
                a_status.images_failed_total,
                a_status.bytes_total
            ),
            (2, 1, 1, 1, 2, 1, 1, 7)
        );
        let last = a_status.last_run.as_ref().expect("last run");
        assert_eq!(last.result, "interrupted");
        // A reload keeps the counters of a task that keeps its name and drops the others.
        board.loaded("c.yaml", &[&a]);
        let snap = board.snapshot();
        assert_eq!(snap.tasks.len(), 1);
        assert_eq!(snap.tasks[0].runs_total, 2);
    }

    #[test]
    fn a_loop_without_a_heartbeat_is_stuck() {
        let board = StatusBoard::new();
        board.beat();
        assert!(board.snapshot().alive);
        if let Some(long_ago) = Instant::now().checked_sub(HEARTBEAT_STALE + Duration::from_secs(1))
        {
            board.with(|b| b.heartbeat = long_ago);
            let snap = board.snapshot();
            assert!(!snap.alive);
            assert!(snap.heartbeat_age_seconds > HEARTBEAT_STALE.as_secs_f64());
        }
    }

    /// The README's `/status` row names every field the endpoint serves, and nothing else
    /// but the values of `phase` and `result` (and the `min-age` key it cites).
    #[test]
    fn the_readme_lists_the_status_fields() {
        let board = StatusBoard::new();
        let t = task("a", Some(60));
        board.loaded("c.yaml", &[&t]);
        board.run_finished(&report("a", vec![ImageResult::UpToDate], false));
        let json = serde_json::to_value(board.snapshot()).expect("snapshot serializes");
        fn keys(value: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, inner) in map {
                        out.insert(key.clone());
                        keys(inner, out);
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|i| keys(i, out)),
                _ => {}
            }
        }
        let mut served = std::collections::BTreeSet::new();
        keys(&json, &mut served);
        let row = include_str!("../README.md")
            .lines()
            .find(|l| l.starts_with("| `GET /status` |"))
            .expect("the README's /status row");
        let named: std::collections::BTreeSet<String> = row
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        let missing: Vec<&String> = served.difference(&named).collect();
        assert!(missing.is_empty(), "the README does not list {missing:?}");
        let values = [
            "GET /status",
            "loading",
            "running",
            "stopping",
            "null",
            "ok",
            "failed",
            "interrupted",
            "min-age",
        ];
        let unknown: Vec<&String> = named
            .difference(&served)
            .filter(|n| !values.contains(&n.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "the README lists {unknown:?}, which /status does not serve"
        );
    }

    #[test]
    fn run_results() {
        let ok = RunStatus::from_report(&report("a", vec![ImageResult::UpToDate], false));
        assert_eq!(ok.result, "ok");
        let failed = RunStatus::from_report(&report(
            "a",
            vec![ImageResult::Failed {
                reason: "x".into(),
                kind: crate::failure::FailureKind::Other,
            }],
            false,
        ));
        assert_eq!(failed.result, "failed");
    }
}
