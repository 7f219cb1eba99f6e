//! Decides which tasks run when, for one loaded config (docs/behaviour.md#signals-and-restarts).
//!
//! One-off tasks run first, in config order; then periodic tasks fire at once and every
//! `interval` seconds, with the original's "too soon" rule. Tasks run one at a time. While a
//! task runs, the loop keeps listening: to signals, to the config watch and to its own
//! heartbeat (so `/healthz` can tell a stuck loop from a long run).
//!
//! A stop (SIGINT/SIGTERM) reaches the jobs through the [`Stop`] the signal handler drives: no
//! new image job starts, and jobs in flight get the grace period. Then (or at a second signal)
//! the copies in flight are aborted and the scheduler awaits the run while each relay ends its
//! own copies (see [`crate::stop`]), for at most [`ABORTED_RUN_ENDS`]. A restart (SIGHUP,
//! config change) waits for the running task, as the original does, and applies only to configs
//! with periodic tasks. The caller reloads and comes back here: see [`Ending`].

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use tokio::time::{Instant, MissedTickBehavior};

use crate::clients::{Clients, ProcessEnvironment};
use crate::config::{Config, Task};
use crate::listers::Listers;
use crate::plan::pattern::Pattern;
use crate::relay::Relay;
use crate::report::TaskReport;
use crate::shard::Shard;
use crate::signals::{Signal, Signals};
use crate::status::{HEARTBEAT_EVERY, StatusBoard};
use crate::stop::Stop;
use crate::sync::run_task;
use crate::watch::ConfigWatch;

/// How a configuration's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Only one-off tasks, all run. `failed`: any of them failed (exit 1).
    Finished {
        /// Any of them failed.
        failed: bool,
    },
    /// SIGHUP or a config change: reload and run again, with the same `-run` filter.
    Restart,
    /// SIGINT/SIGTERM. `interrupted`: a run was going when it came, or one-off tasks were
    /// left unrun (exit 130/143); otherwise the exit code follows `failed`, which holds the
    /// last run of each task (docs/behaviour.md#exit-codes).
    Stopped {
        /// The last stop signal; its exit code is the process's when interrupted.
        signal: Signal,
        /// A run was going, or one-off tasks were left unrun.
        interrupted: bool,
        /// The last run of some task failed.
        failed: bool,
    },
}

/// What the daemon loop needs besides the config: the signals (they outlive a restart), the
/// status board, the exact config text (for the watch's content comparison), and the share
/// of target repositories this process copies.
pub struct Context<'a> {
    /// The process's signal listener.
    pub signals: &'a mut Signals,
    /// Where task runs and the phase are reported for the health endpoint.
    pub status: &'a StatusBoard,
    /// The config file's text, as loaded.
    pub config_text: &'a str,
    /// The share of target repositories this process copies (`-shard`).
    pub shard: Shard,
    /// What the registry clients take from the process environment, read once at start.
    pub environment: &'a ProcessEnvironment,
}

/// How long cleaning up after copies abandoned by a stop may take (the docker relay removes
/// what they pulled), after [`ABORTED_RUN_ENDS`]; a stop's worst case is `shutdown-grace` plus
/// both, which the Kubernetes manifests' `terminationGracePeriodSeconds` must cover.
pub const ABANDONED_CLEAN_UP: Duration = Duration::from_secs(30);

/// How long a run whose copies were aborted may take to end by itself (skopeo processes killed
/// and reaped, auth files removed, native copies dropped) before it is dropped as it is.
pub const ABORTED_RUN_ENDS: Duration = Duration::from_secs(10);

/// Runs the tasks `filter` selects until they are done, a stop, or a restart.
/// An error (the relay cannot be made, the watch cannot be set up) means exit 1.
///
/// # Errors
///
/// When the relay cannot be made or the config watch cannot be set up (exit 1).
pub async fn run(config: &Config, filter: &Pattern, cx: Context<'_>) -> Result<Ending, String> {
    let selected: Vec<&Task> = config
        .tasks
        .iter()
        .filter(|t| filter.matches(&t.name))
        .collect();
    let has_periodic = selected.iter().any(|t| t.is_periodic());
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut inputs = LoopInputs {
        stop: cx.signals.stop(),
        signals: cx.signals,
        watch: None,
        heartbeat,
        status: cx.status,
        stopping: None,
        second_signal: false,
        restart: false,
        has_periodic,
        grace: config.daemon.shutdown_grace,
    };
    // Making a relay can take long (a Docker daemon pinged again and again): a second stop
    // signal ends it, as it ends a run.
    let making = inputs.stop.clone();
    let Some(relay) = making.until_aborted(Relay::new(config)).await else {
        inputs.take_pending_signals();
        return Ok(Ending::Stopped {
            signal: inputs.stop_signal().unwrap_or(Signal::Interrupt),
            interrupted: true,
            failed: false,
        });
    };
    let relay = relay?;
    let clients = Clients::new(config, cx.environment).observed_by(cx.status.metrics().observer());
    let listers = Listers::new(config.lister);
    cx.status
        .loaded(&config.file.display().to_string(), &selected);
    inputs.watch = if has_periodic && config.watch {
        let watch = ConfigWatch::start(&config.file, cx.config_text.to_string())?;
        tracing::info!(file = %config.file.display(), "watching config file, restarting on change");
        Some(watch)
    } else {
        if has_periodic {
            tracing::info!("not watching config file");
        }
        None
    };
    let mut state = LoopState {
        relay: &relay,
        clients: &clients,
        listers: &listers,
        shard: cx.shard,
        inputs,
        failed: HashMap::new(),
    };
    state.run(&selected).await
}

/// The scheduling loop's state: what running a task needs, the loop's inputs, and each task's
/// last outcome.
struct LoopState<'a> {
    relay: &'a Relay,
    clients: &'a Clients,
    /// Repository lists, shared by every task and run of this configuration.
    listers: &'a Listers,
    shard: Shard,
    inputs: LoopInputs<'a>,
    /// Each task's `failed` flag from its last run.
    failed: HashMap<String, bool>,
}

impl LoopState<'_> {
    async fn run(&mut self, selected: &[&Task]) -> Result<Ending, String> {
        let (periodic, one_off): (Vec<&Task>, Vec<&Task>) =
            selected.iter().copied().partition(|t| t.is_periodic());
        for (done, task) in one_off.iter().enumerate() {
            self.inputs.take_pending_signals();
            if let Some(signal) = self.inputs.stop_signal() {
                tracing::info!(
                    "stopping: {} one-off task(s) not started",
                    one_off.len() - done
                );
                return Ok(self.stopped(signal, true));
            }
            if self.inputs.restart {
                return Ok(Ending::Restart);
            }
            let report = self.run_one(task).await;
            if report.interrupted {
                let signal = self.inputs.stop_signal().unwrap_or(Signal::Interrupt);
                return Ok(self.stopped(signal, true));
            }
        }
        if let Some(signal) = self.inputs.stop_signal() {
            return Ok(self.stopped(signal, false));
        }
        if periodic.is_empty() {
            return Ok(Ending::Finished {
                failed: self.any_failed(),
            });
        }
        let intervals: Vec<Duration> = periodic
            .iter()
            .map(|t| t.interval.unwrap_or(Duration::MAX))
            .collect();
        let mut timetable = Timetable::new(&intervals, Instant::now().into_std());
        loop {
            if let Some(signal) = self.inputs.stop_signal() {
                return Ok(self.stopped(signal, false));
            }
            if self.inputs.restart {
                return Ok(Ending::Restart);
            }
            let (index, due) = timetable.next();
            if due > Instant::now().into_std() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    event = self.inputs.next_event() => self.inputs.handle(event, None),
                }
                continue;
            }
            self.inputs.take_pending_signals();
            if self.inputs.stop_signal().is_some() || self.inputs.restart {
                continue;
            }
            let task = periodic[index];
            let now = Instant::now().into_std();
            if timetable.too_soon(index, now) {
                tracing::info!(task = %task.name, "task fired too soon, skipping");
                timetable.fired(index, now);
                continue;
            }
            timetable.fired(index, now);
            let report = self.run_one(task).await;
            timetable.finished(index, Instant::now().into_std());
            if report.interrupted {
                let signal = self.inputs.stop_signal().unwrap_or(Signal::Interrupt);
                return Ok(self.stopped(signal, true));
            }
            tracing::info!("waiting for next sync task...");
        }
    }

    /// Runs one task while listening for signals and watch events; after a stop, the run
    /// gets the grace period, then its copies in flight are aborted (at once on a second
    /// signal) and the run is awaited while they end, for at most [`ABORTED_RUN_ENDS`].
    async fn run_one(&mut self, task: &Task) -> TaskReport {
        let started = SystemTime::now();
        // Each periodic run looks its credentials up afresh (new or rotated files, renewed
        // helper tokens); one-off tasks share one lookup per registry.
        if task.is_periodic() {
            self.clients.start_run();
        }
        self.inputs.status.run_started(&task.name);
        let stop = self.inputs.stop.clone();
        let report = {
            let run = run_task(
                task,
                self.relay,
                self.clients,
                self.listers,
                self.shard,
                &stop,
            );
            tokio::pin!(run);
            // When the run must have ended after its copies were aborted.
            let mut end_by: Option<Instant> = None;
            loop {
                let grace_over = match self.inputs.stopping {
                    Some((_, deadline)) if !stop.is_aborted() => Some(deadline),
                    _ => None,
                };
                tokio::select! {
                    report = &mut run => break report,
                    event = self.inputs.next_event() => self.inputs.handle(event, Some(&task.name)),
                    () = sleep_until(grace_over), if grace_over.is_some() => {
                        tracing::warn!(
                            task = %task.name,
                            "grace period of {:?} is over: aborting the copies still in flight \
                             (no tag was moved for them; the next run resumes them)",
                            self.inputs.grace
                        );
                        stop.abort();
                    }
                    () = stop.aborted(), if end_by.is_none() => {
                        end_by = Some(Instant::now() + ABORTED_RUN_ENDS);
                    }
                    () = sleep_until(end_by), if end_by.is_some() => {
                        tracing::warn!(
                            task = %task.name,
                            "the aborted run did not end within {ABORTED_RUN_ENDS:?}; dropping it"
                        );
                        let mut report = TaskReport::new(&task.name);
                        report.started = started;
                        report.interrupted = true;
                        break report;
                    }
                }
            }
            // The run (and whatever is left of its copies) is dropped here.
        };
        // A signal that came as the run ended is logged, and its stop counted, now.
        self.inputs.take_pending_signals();
        if stop.is_aborted()
            && tokio::time::timeout(ABANDONED_CLEAN_UP, self.relay.clean_up_abandoned())
                .await
                .is_err()
        {
            tracing::warn!("cleaning up after the aborted copies took too long; left as it was");
        }
        self.inputs.status.run_finished(&report);
        self.failed.insert(task.name.clone(), report.failed());
        report
    }

    fn any_failed(&self) -> bool {
        self.failed.values().any(|f| *f)
    }

    /// How a stop ends this configuration's run; a second stop signal always counts as an
    /// interruption (exit 130/143, docs/behaviour.md#exit-codes).
    fn stopped(&self, signal: Signal, interrupted: bool) -> Ending {
        Ending::Stopped {
            signal,
            interrupted: interrupted || self.inputs.second_signal,
            failed: self.any_failed(),
        }
    }
}

/// Something the loop reacts to besides its own timers.
enum Event {
    Signal(Signal),
    ConfigChanged,
    Heartbeat,
}

/// The loop's inputs and the decisions taken on them so far.
struct LoopInputs<'a> {
    signals: &'a mut Signals,
    watch: Option<ConfigWatch>,
    heartbeat: tokio::time::Interval,
    status: &'a StatusBoard,
    /// The process's stop; the signal handler requests and aborts it, the end of the grace
    /// period aborts it.
    stop: Stop,
    /// The last stop signal (its exit code is the process's) and when the grace period ends.
    stopping: Option<(Signal, Instant)>,
    /// Whether a second stop signal came (it was logged once).
    second_signal: bool,
    restart: bool,
    has_periodic: bool,
    grace: Duration,
}

impl LoopInputs<'_> {
    /// The next event; every branch is cancel-safe, so it can race a running task.
    async fn next_event(&mut self) -> Event {
        tokio::select! {
            signal = self.signals.recv() => Event::Signal(signal),
            () = watch_changed(&mut self.watch) => Event::ConfigChanged,
            _ = self.heartbeat.tick() => Event::Heartbeat,
        }
    }

    /// Acts on an event; `running` names the task in progress, if any.
    fn handle(&mut self, event: Event, running: Option<&str>) {
        match event {
            Event::Heartbeat => self.status.beat(),
            Event::Signal(signal) if signal.is_stop() => {
                tracing::info!(signal = signal.name(), "received signal");
                // The signal handler already requested the stop (or, for a second signal,
                // aborted the copies in flight); this logs it and keeps the exit code.
                match self.stopping {
                    None => {
                        match running {
                            Some(task) => tracing::info!(
                                task = %task,
                                "stopping ... no new image job starts; copies in flight get up to {:?}",
                                self.grace
                            ),
                            None => tracing::info!("stopping ..."),
                        }
                        self.status.stopping();
                        self.stopping = Some((signal, Instant::now() + self.grace));
                    }
                    Some((_, grace_end)) => {
                        if !self.second_signal {
                            tracing::warn!(
                                "second stop signal: exiting at once; copies in flight are aborted \
                                 (no tag was moved yet for them, the next run resumes them)"
                            );
                        }
                        self.second_signal = true;
                        self.stopping = Some((signal, grace_end));
                    }
                }
            }
            Event::Signal(signal) => {
                tracing::info!(signal = signal.name(), "received signal");
                if !self.has_periodic {
                    tracing::info!(
                        "not restarting: the selected tasks are all one-off, so there is nothing to restart"
                    );
                } else if self.stopping.is_none() {
                    self.request_restart(running);
                }
            }
            Event::ConfigChanged => {
                // The watch logged "config file changed, restarting ..." already, and stops.
                self.watch = None;
                if self.stopping.is_none() {
                    self.request_restart(running);
                }
            }
        }
    }

    /// Acts on signals that came while nothing listened (e.g. while the config loaded), so a
    /// task that should not start does not.
    fn take_pending_signals(&mut self) {
        while let Some(signal) = self.signals.try_recv() {
            self.handle(Event::Signal(signal), None);
        }
    }

    fn request_restart(&mut self, running: Option<&str>) {
        if !self.restart {
            match running {
                Some(task) => {
                    tracing::info!(task = %task, "restarting after the running task finishes ...")
                }
                None => tracing::info!("restarting ..."),
            }
        }
        self.restart = true;
    }

    fn stop_signal(&self) -> Option<Signal> {
        self.stopping.map(|(signal, _)| signal)
    }
}

async fn watch_changed(watch: &mut Option<ConfigWatch>) {
    match watch {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// When periodic tasks fire (docs/behaviour.md#signals-and-restarts), as plain arithmetic on
/// instants so it can be tested without waiting.
///
/// Each task ticks every `interval` from the start, firing at once first. Ticks missed while
/// another run was going collapse into one pending fire, as Go's ticker drops surplus ticks;
/// so runs never pile up. A fire less than `interval / 2` after the end of the task's
/// previous run is "too soon" and skipped, as in the original.
#[derive(Debug, Clone)]
pub struct Timetable {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    interval: Duration,
    origin: std::time::Instant,
    next_fire: std::time::Instant,
    last_end: Option<std::time::Instant>,
}

impl Timetable {
    /// Every task fires at `now` first.
    pub fn new(intervals: &[Duration], now: std::time::Instant) -> Self {
        Timetable {
            entries: intervals
                .iter()
                .map(|&interval| Entry {
                    interval: interval.max(Duration::from_secs(1)),
                    origin: now,
                    next_fire: now,
                    last_end: None,
                })
                .collect(),
        }
    }

    /// The task that fires next and when; ties go to the earlier task in the config.
    /// (The scheduler builds no empty timetable; one would answer "task 0, in a century".)
    pub fn next(&self) -> (usize, std::time::Instant) {
        self.entries
            .iter()
            .enumerate()
            .min_by_key(|(index, e)| (e.next_fire, *index))
            .map(|(index, e)| (index, e.next_fire))
            .unwrap_or((
                0,
                std::time::Instant::now() + Duration::from_secs(100 * 365 * 86_400),
            ))
    }

    /// Whether a fire of task `index` at `now` comes too soon after its last run.
    pub fn too_soon(&self, index: usize, now: std::time::Instant) -> bool {
        self.entries
            .get(index)
            .and_then(|e| e.last_end.map(|end| now < end + e.interval / 2))
            .unwrap_or(false)
    }

    /// Task `index` fired at `now` (run or skipped): its next fire is its first tick after
    /// `now`; the ticks in between are dropped.
    pub fn fired(&mut self, index: usize, now: std::time::Instant) {
        if let Some(e) = self.entries.get_mut(index) {
            let since = now.saturating_duration_since(e.origin);
            let ticks = since.as_nanos() / e.interval.as_nanos() + 1;
            let ticks = u32::try_from(ticks).unwrap_or(u32::MAX);
            e.next_fire = e.origin + e.interval.saturating_mul(ticks);
        }
    }

    /// Task `index`'s run ended at `end`.
    pub fn finished(&mut self, index: usize, end: std::time::Instant) {
        if let Some(e) = self.entries.get_mut(index) {
            e.last_end = Some(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn fires_at_once_then_every_interval() {
        let t0 = Instant::now();
        let mut table = Timetable::new(&[secs(60)], t0);
        assert_eq!(table.next(), (0, t0));
        assert!(!table.too_soon(0, t0));
        table.fired(0, t0);
        table.finished(0, t0 + secs(5));
        assert_eq!(table.next(), (0, t0 + secs(60)));
        assert!(!table.too_soon(0, t0 + secs(60)));
        table.fired(0, t0 + secs(60));
        assert_eq!(table.next(), (0, t0 + secs(120)));
    }

    #[test]
    fn several_tasks_fire_in_config_order_then_by_time() {
        let t0 = Instant::now();
        let mut table = Timetable::new(&[secs(90), secs(30), secs(60)], t0);
        let mut order = Vec::new();
        let mut now = t0;
        for _ in 0..6 {
            let (index, due) = table.next();
            now = now.max(due);
            order.push((index, due.duration_since(t0).as_secs()));
            table.fired(index, now);
            table.finished(index, now);
        }
        assert_eq!(order, [(0, 0), (1, 0), (2, 0), (1, 30), (1, 60), (2, 60)]);
    }

    #[test]
    fn a_run_longer_than_the_interval_never_piles_up() {
        // interval 60 s; the first run takes 150 s. Go's ticker would have ticked at 60 and
        // 120; one fire is pending at the end, and it is too soon (150 < 150 + 30).
        let t0 = Instant::now();
        let mut table = Timetable::new(&[secs(60)], t0);
        table.fired(0, t0);
        table.finished(0, t0 + secs(150));
        let (_, due) = table.next();
        assert!(due <= t0 + secs(150), "one fire is pending");
        let now = t0 + secs(150);
        assert!(table.too_soon(0, now));
        table.fired(0, now);
        // The missed ticks are dropped: the next fire is the tick at 180, not 120.
        assert_eq!(table.next().1, t0 + secs(180));
        assert!(!table.too_soon(0, t0 + secs(180)));
    }

    #[test]
    fn too_soon_is_half_the_interval_after_the_end() {
        // interval 60 s; a run ends at 100 s. The tick at 120 is 20 s after the end: too soon
        // (< 30 s), as in the original. The tick at 180 runs.
        let t0 = Instant::now();
        let mut table = Timetable::new(&[secs(60)], t0);
        table.fired(0, t0 + secs(60));
        table.finished(0, t0 + secs(100));
        assert_eq!(table.next().1, t0 + secs(120));
        assert!(table.too_soon(0, t0 + secs(120)));
        table.fired(0, t0 + secs(120));
        assert!(!table.too_soon(0, t0 + secs(180)));
    }
}
