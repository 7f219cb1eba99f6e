//! Prometheus metrics (docs/metrics.md lists every one): a reader of the run reports and of
//! the registry transport, served at `/metrics` by the health endpoint.
//!
//! Nothing in the engine knows about this module: the status board hands it each finished
//! [`TaskReport`], and each registry client gets [`Metrics::observer`] as its transport's
//! [`RequestObserver`], which sees every request attempt. Encoding uses the Prometheus
//! project's `prometheus-client` crate (text format 0.0.4), which also escapes label values,
//! so task names and hosts of any spelling give valid exposition text.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::failure::FailureKind;
use crate::registry::{Attempt, RequestObserver};
use crate::report::TaskReport;
use crate::shard::Shard;

/// The `Content-Type` of what [`Metrics::encode`] returns: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `result` label values of `dregsy_images_total` ([`crate::report::ImageResult::label`]), in the order
/// docs/metrics.md gives. `not_attempted` has no outcome behind it yet: its series stay at 0.
pub const IMAGE_RESULTS: [&str; 5] = ["copied", "up_to_date", "failed", "skipped", "not_attempted"];

/// The `result` label values of `dregsy_task_runs_total`: those of [`TaskReport::result`].
pub const RUN_RESULTS: [&str; 3] = ["ok", "failed", "interrupted"];

/// Upper bounds (seconds) of the task run duration buckets: a no-op run takes seconds, a
/// first mirror of a large registry hours.
const RUN_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

/// Upper bounds (seconds) of the registry request duration buckets (until the response
/// head; a blob body streams afterwards).
const REQUEST_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskResultLabels {
    task: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskKindLabels {
    task: String,
    /// A [`FailureKind::label`].
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    registry: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    registry: String,
    method: String,
    /// The status code, or `error` when no response came.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    index: String,
    count: String,
}

type TimeGauge = Gauge<f64, AtomicU64>;
type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// Every metric of the process; share it with an `Arc`. Updating and encoding take only
/// short internal locks, so a scrape answers whatever the scheduler is doing (a config
/// reload included).
pub struct Metrics {
    registry: Registry,
    images: Family<TaskResultLabels, Counter>,
    failures: Family<TaskKindLabels, Counter>,
    bytes: Family<TaskLabels, Counter>,
    runs: Family<TaskResultLabels, Counter>,
    run_duration: HistogramFamily<TaskLabels>,
    last_run: Family<TaskLabels, TimeGauge>,
    last_success: Family<TaskLabels, TimeGauge>,
    interval: Family<TaskLabels, Gauge>,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RegistryLabels>,
    retries: Family<RegistryLabels, Counter>,
    ratelimit: Family<RegistryLabels, Gauge>,
    shard: Family<ShardLabels, Gauge>,
    /// The tasks of the loaded config, whose series are exported.
    tasks: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Every metric registered; `dregsy_build_info` set to 1 with `version`, the shard to
    /// `0/1`.
    pub fn new(version: &'static str) -> Metrics {
        let mut registry = Registry::default();
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info.get_or_create(&VersionLabels { version }).set(1);
        registry.register(
            "dregsy_build_info",
            "Always 1; the version label says which dregsy runs",
            build_info,
        );
        let mut metrics = Metrics {
            images: Family::default(),
            failures: Family::default(),
            bytes: Family::default(),
            runs: Family::default(),
            run_duration: Family::new_with_constructor(|| {
                Histogram::new(RUN_BUCKETS.iter().copied())
            }),
            last_run: Family::default(),
            last_success: Family::default(),
            interval: Family::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(|| {
                Histogram::new(REQUEST_BUCKETS.iter().copied())
            }),
            retries: Family::default(),
            ratelimit: Family::default(),
            shard: Family::default(),
            tasks: Mutex::new(BTreeSet::new()),
            registry,
        };
        metrics.register_families();
        metrics.set_shard(Shard::WHOLE);
        metrics
    }

    /// Registers every family with its name, help and unit.
    fn register_families(&mut self) {
        let r = &mut self.registry;
        r.register(
            "dregsy_images",
            "Image jobs by outcome: copied, up_to_date, failed, skipped, not_attempted",
            self.images.clone(),
        );
        r.register(
            "dregsy_failures",
            "Failures (of images, repositories and mappings) by kind: auth, not_found, tls, rate_limit, network, other",
            self.failures.clone(),
        );
        r.register(
            "dregsy_bytes_copied",
            "Blob bytes transferred to targets (mounted and existing blobs cost nothing)",
            self.bytes.clone(),
        );
        r.register(
        "dregsy_task_runs",
        "Finished task runs by result: ok, failed (an image, repository or mapping failed, or an image was not attempted), interrupted (by a stop signal)",
        self.runs.clone(),
    );
        r.register_with_unit(
            "dregsy_task_run_duration",
            "How long task runs took",
            Unit::Seconds,
            self.run_duration.clone(),
        );
        r.register_with_unit(
            "dregsy_task_last_run_timestamp",
            "When the task's last run finished, whatever its result (Unix time)",
            Unit::Seconds,
            self.last_run.clone(),
        );
        r.register_with_unit(
            "dregsy_task_last_success_timestamp",
            "When the task's last run without any failure finished (Unix time)",
            Unit::Seconds,
            self.last_success.clone(),
        );
        r.register_with_unit(
            "dregsy_task_interval",
            "The task's interval; absent for one-off tasks",
            Unit::Seconds,
            self.interval.clone(),
        );
        r.register(
        "dregsy_registry_requests",
        "Registry HTTP request attempts by registry host, method and status code (code=\"error\": no response)",
        self.requests.clone(),
    );
        r.register_with_unit(
            "dregsy_registry_request_duration",
            "Time from sending a registry request to its response head",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        r.register(
            "dregsy_registry_retries",
            "Registry request attempts that failed transiently and were tried again",
            self.retries.clone(),
        );
        r.register(
        "dregsy_ratelimit_remaining",
        "Requests left in the registry's rate-limit window, from its last ratelimit-remaining header",
        self.ratelimit.clone(),
    );
        r.register(
        "dregsy_shard",
        "Always 1; index and count say which share of the target repositories this process copies",
        self.shard.clone(),
    );
    }

    /// The shard this process is; replaces the one set before.
    pub fn set_shard(&self, shard: Shard) {
        self.shard.clear();
        self.shard
            .get_or_create(&ShardLabels {
                index: shard.index().to_string(),
                count: shard.count().to_string(),
            })
            .set(1);
    }

    /// A config was loaded with these tasks (name, `interval`; `None` for a one-off task).
    /// Their series start at 0, so rates and alerts work from the first run; the series of a
    /// task that keeps its name keep their values; those of tasks no longer selected are
    /// removed, as `/status` drops them (an alert on a removed task's last success must not
    /// fire).
    pub fn tasks_configured(&self, tasks: &[(&str, Option<Duration>)]) {
        let new: BTreeSet<String> = tasks.iter().map(|(name, _)| name.to_string()).collect();
        let old = {
            let mut current = match self.tasks.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::replace(&mut *current, new.clone())
        };
        for gone in old.difference(&new) {
            self.remove_task(gone);
        }
        for (name, interval) in tasks {
            self.task_configured(name, *interval);
        }
    }

    fn remove_task(&self, task: &str) {
        for result in IMAGE_RESULTS {
            self.images.remove(&task_result(task, result));
        }
        for result in RUN_RESULTS {
            self.runs.remove(&task_result(task, result));
        }
        for kind in FailureKind::ALL {
            self.failures.remove(&task_kind(task, kind));
        }
        let labels = task_labels(task);
        self.bytes.remove(&labels);
        self.run_duration.remove(&labels);
        self.last_run.remove(&labels);
        self.last_success.remove(&labels);
        self.interval.remove(&labels);
    }

    fn task_configured(&self, task: &str, interval: Option<Duration>) {
        for result in IMAGE_RESULTS {
            self.images
                .get_or_create(&task_result(task, result))
                .inc_by(0);
        }
        for result in RUN_RESULTS {
            self.runs
                .get_or_create(&task_result(task, result))
                .inc_by(0);
        }
        for kind in FailureKind::ALL {
            self.failures
                .get_or_create(&task_kind(task, kind))
                .inc_by(0);
        }
        self.bytes.get_or_create(&task_labels(task)).inc_by(0);
        match interval {
            Some(interval) => {
                let seconds = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX);
                self.interval.get_or_create(&task_labels(task)).set(seconds);
            }
            None => {
                self.interval.remove(&task_labels(task));
            }
        }
    }

    /// A task run ended (or was cut short by a stop: `report.interrupted`).
    pub fn run_finished(&self, report: &TaskReport) {
        let task = report.task.as_str();
        for image in &report.images {
            self.images
                .get_or_create(&task_result(task, image.result.label()))
                .inc();
        }
        for (kind, count) in report.failures_by_kind() {
            self.failures
                .get_or_create(&task_kind(task, kind))
                .inc_by(count as u64);
        }
        self.bytes
            .get_or_create(&task_labels(task))
            .inc_by(report.bytes());
        let result = report.result();
        self.runs.get_or_create(&task_result(task, result)).inc();
        let seconds = report
            .finished
            .duration_since(report.started)
            .unwrap_or_default()
            .as_secs_f64();
        self.run_duration
            .get_or_create(&task_labels(task))
            .observe(seconds);
        let finished = unix(report.finished);
        self.last_run
            .get_or_create(&task_labels(task))
            .set(finished);
        if result == "ok" {
            self.last_success
                .get_or_create(&task_labels(task))
                .set(finished);
        }
    }

    /// The observer to give each registry client's transport.
    pub fn observer(self: &Arc<Self>) -> Arc<dyn RequestObserver> {
        self.clone()
    }

    /// Every metric in the Prometheus text format 0.0.4 (see [`CONTENT_TYPE`]).
    ///
    /// # Errors
    /// Only when formatting fails, which writing to a `String` does not.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl RequestObserver for Metrics {
    fn observe(&self, attempt: &Attempt<'_>) {
        // The host as the config names it; a host holds no credentials, a URL could.
        let registry = attempt.registry.name().to_string();
        let code = attempt
            .status
            .map(|s| s.as_u16().to_string())
            .unwrap_or_else(|| "error".to_string());
        self.requests
            .get_or_create(&RequestLabels {
                registry: registry.clone(),
                method: attempt.method.as_str().to_string(),
                code,
            })
            .inc();
        let labels = RegistryLabels { registry };
        self.request_duration
            .get_or_create(&labels)
            .observe(attempt.elapsed.as_secs_f64());
        if attempt.retrying {
            self.retries.get_or_create(&labels).inc();
        }
        if let Some(remaining) = attempt.headers.and_then(ratelimit_remaining) {
            self.ratelimit.get_or_create(&labels).set(remaining);
        }
    }
}

/// The `ratelimit-remaining` header's count: `76;w=21600` (Docker Hub) or `76`.
fn ratelimit_remaining(headers: &reqwest::header::HeaderMap) -> Option<i64> {
    let value = headers.get("ratelimit-remaining")?.to_str().ok()?;
    value.split(';').next()?.trim().parse().ok()
}

fn task_labels(task: &str) -> TaskLabels {
    TaskLabels {
        task: task.to_string(),
    }
}

fn task_result(task: &str, result: &'static str) -> TaskResultLabels {
    TaskResultLabels {
        task: task.to_string(),
        result,
    }
}

fn task_kind(task: &str, kind: FailureKind) -> TaskKindLabels {
    TaskKindLabels {
        task: task.to_string(),
        kind: kind.label(),
    }
}

fn unix(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryHost;
    use crate::report::ImageResult;
    use reqwest::header::{HeaderMap, HeaderValue};
    use reqwest::{Method, StatusCode};

    fn report(task: &str, results: Vec<ImageResult>) -> TaskReport {
        TaskReport::with_results(task, results)
    }

    /// The sample lines of `text` that start with `prefix`.
    fn samples<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn a_run_feeds_image_run_and_time_series() {
        let metrics = Metrics::new("1.2.3");
        metrics.tasks_configured(&[("mirror", Some(Duration::from_secs(300)))]);
        metrics.run_finished(&report(
            "mirror",
            vec![
                ImageResult::Copied { bytes: 100 },
                ImageResult::Copied { bytes: 20 },
                ImageResult::UpToDate,
                ImageResult::failed(FailureKind::Other),
                ImageResult::Skipped {
                    reason: "too young".into(),
                },
            ],
        ));
        metrics.run_finished(&report("mirror", vec![ImageResult::UpToDate]));
        let text = metrics.encode().expect("encodes");
        for line in [
            "dregsy_images_total{task=\"mirror\",result=\"copied\"} 2",
            "dregsy_images_total{task=\"mirror\",result=\"up_to_date\"} 2",
            "dregsy_images_total{task=\"mirror\",result=\"failed\"} 1",
            "dregsy_images_total{task=\"mirror\",result=\"skipped\"} 1",
            "dregsy_images_total{task=\"mirror\",result=\"not_attempted\"} 0",
            "dregsy_bytes_copied_total{task=\"mirror\"} 120",
            "dregsy_task_runs_total{task=\"mirror\",result=\"ok\"} 1",
            "dregsy_task_runs_total{task=\"mirror\",result=\"failed\"} 1",
            "dregsy_task_runs_total{task=\"mirror\",result=\"interrupted\"} 0",
            "dregsy_task_run_duration_seconds_count{task=\"mirror\"} 2",
            "dregsy_task_interval_seconds{task=\"mirror\"} 300",
            "dregsy_shard{index=\"0\",count=\"1\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(
            text.lines()
                .any(|l| l == "dregsy_build_info{version=\"1.2.3\"} 1"),
            "{text}"
        );
        assert_eq!(
            samples(&text, "dregsy_task_last_success_timestamp_seconds{").len(),
            1
        );
        assert_eq!(
            samples(&text, "dregsy_task_last_run_timestamp_seconds{").len(),
            1
        );
    }

    #[test]
    fn failures_count_by_kind_with_every_kind_at_zero_from_the_start() {
        let metrics = Metrics::new("1.2.3");
        metrics.tasks_configured(&[("t", None)]);
        let before = metrics.encode().expect("encodes");
        assert_eq!(samples(&before, "dregsy_failures_total{").len(), 6);
        let mut run = report(
            "t",
            vec![
                ImageResult::failed(FailureKind::NotFound),
                ImageResult::failed(FailureKind::Auth),
            ],
        );
        run.mapping_failures = 1;
        run.failure_kinds = vec![FailureKind::Auth];
        metrics.run_finished(&run);
        let text = metrics.encode().expect("encodes");
        for line in [
            "dregsy_failures_total{task=\"t\",kind=\"auth\"} 2",
            "dregsy_failures_total{task=\"t\",kind=\"not_found\"} 1",
            "dregsy_failures_total{task=\"t\",kind=\"network\"} 0",
            "dregsy_failures_total{task=\"t\",kind=\"other\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        metrics.tasks_configured(&[]);
        let after = metrics.encode().expect("encodes");
        assert!(
            samples(&after, "dregsy_failures_total{").is_empty(),
            "{after}"
        );
    }

    #[test]
    fn a_failed_run_sets_no_success_time() {
        let metrics = Metrics::new("1.2.3");
        metrics.run_finished(&report(
            "t",
            vec![ImageResult::Failed {
                reason: "x".into(),
                kind: crate::failure::FailureKind::Other,
            }],
        ));
        let text = metrics.encode().expect("encodes");
        assert!(samples(&text, "dregsy_task_last_success_timestamp_seconds{").is_empty());
        assert_eq!(
            samples(&text, "dregsy_task_last_run_timestamp_seconds{").len(),
            1
        );
    }

    #[test]
    fn transport_attempts_count_by_host_method_and_code() {
        let metrics = Arc::new(Metrics::new("1.2.3"));
        let observer = metrics.observer();
        let host = RegistryHost::parse("https://registry.example:5000").expect("host");
        let mut headers = HeaderMap::new();
        headers.insert(
            "ratelimit-remaining",
            HeaderValue::from_static("76;w=21600"),
        );
        let attempt = |status: Option<u16>, retrying: bool, headers: Option<&HeaderMap>| {
            observer.observe(&Attempt {
                registry: &host,
                method: &Method::HEAD,
                status: status.map(|s| StatusCode::from_u16(s).expect("status")),
                headers,
                elapsed: Duration::from_millis(30),
                retrying,
            })
        };
        attempt(Some(503), true, None);
        attempt(None, true, None);
        attempt(Some(200), false, Some(&headers));
        let text = metrics.encode().expect("encodes");
        for line in [
            "dregsy_registry_requests_total{registry=\"registry.example:5000\",method=\"HEAD\",code=\"503\"} 1",
            "dregsy_registry_requests_total{registry=\"registry.example:5000\",method=\"HEAD\",code=\"error\"} 1",
            "dregsy_registry_requests_total{registry=\"registry.example:5000\",method=\"HEAD\",code=\"200\"} 1",
            "dregsy_registry_retries_total{registry=\"registry.example:5000\"} 2",
            "dregsy_registry_request_duration_seconds_count{registry=\"registry.example:5000\"} 3",
            "dregsy_ratelimit_remaining{registry=\"registry.example:5000\"} 76",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn the_registry_label_is_a_host_and_cannot_hold_credentials() {
        // The label is `RegistryHost::name`: scheme and trailing slash dropped, and a host
        // with user information is no host at all, so credentials never reach a label.
        let host = RegistryHost::parse("HTTPS://Registry.Example:5000/").expect("host");
        assert_eq!(host.name(), "registry.example:5000");
        for url in [
            "https://user:secret@registry.example",
            "user:secret@registry.example:5000",
        ] {
            let error = RegistryHost::parse(url).expect_err(url).to_string();
            assert!(error.contains("'@' is not allowed"), "{url}: {error}");
        }
    }

    #[test]
    fn label_values_with_quotes_newlines_and_backslashes_are_escaped() {
        let metrics = Metrics::new("1.2.3");
        metrics.tasks_configured(&[("say \"hi\"\nthen\\go", None)]);
        let text = metrics.encode().expect("encodes");
        let line = "dregsy_bytes_copied_total{task=\"say \\\"hi\\\"\\nthen\\\\go\"} 0";
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        // Every line is a comment or a sample: no raw newline broke one apart.
        for l in text.lines() {
            assert!(l.starts_with('#') || l.starts_with("dregsy_"), "{l}");
        }
    }

    #[test]
    fn the_shard_replaces_the_default() {
        let metrics = Metrics::new("1.2.3");
        metrics.set_shard(Shard::new(1, 3).expect("shard"));
        let text = metrics.encode().expect("encodes");
        assert_eq!(
            samples(&text, "dregsy_shard{"),
            ["dregsy_shard{index=\"1\",count=\"3\"} 1"]
        );
    }

    #[test]
    fn a_reload_keeps_the_series_of_kept_tasks_and_drops_the_others() {
        let metrics = Metrics::new("1.2.3");
        let interval = Some(Duration::from_secs(60));
        metrics.tasks_configured(&[("kept", interval), ("gone", interval)]);
        metrics.run_finished(&report("kept", vec![ImageResult::Copied { bytes: 5 }]));
        metrics.run_finished(&report("gone", vec![ImageResult::UpToDate]));
        metrics.tasks_configured(&[("kept", None), ("new", interval)]);
        let text = metrics.encode().expect("encodes");
        assert!(!text.contains("task=\"gone\""), "{text}");
        for line in [
            "dregsy_images_total{task=\"kept\",result=\"copied\"} 1",
            "dregsy_images_total{task=\"new\",result=\"copied\"} 0",
            "dregsy_task_interval_seconds{task=\"new\"} 60",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        // "kept" became one-off: no interval, so no interval-based alert.
        assert!(
            !text.contains("dregsy_task_interval_seconds{task=\"kept\"}"),
            "{text}"
        );
        assert_eq!(
            samples(&text, "dregsy_task_last_success_timestamp_seconds{").len(),
            1
        );
    }
}
