//! A progress display for people watching a terminal: one bar per running task with the
//! mappings still being planned, images finished out of planned, failures (of images,
//! repositories and mappings), and the bytes sent so far (blobs and manifests).
//!
//! It exists only when both output streams are terminals and the log format is text; in JSON or
//! redirected output nothing is drawn. Log lines are printed through [`print_line`], which hides
//! the bars for the moment of writing so the two never garble each other.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static DISPLAY: OnceLock<MultiProgress> = OnceLock::new();
static BYTES: AtomicU64 = AtomicU64::new(0);

/// Turns the display on; call once at start-up when the output is for a person.
pub fn enable() {
    let _ = DISPLAY.set(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
}

/// Writes one log line to stdout, above any bars.
pub fn print_line(line: &[u8]) {
    let write = || {
        // A closed stdout must not take the process down; there is nowhere else to log to.
        let _ = std::io::stdout().lock().write_all(line);
    };
    match DISPLAY.get() {
        Some(display) => display.suspend(write),
        None => write(),
    }
}

/// Counts bytes sent to a target (blob chunks as they stream, and manifests), for the bars.
pub fn transferred(bytes: u64) {
    if DISPLAY.get().is_some() {
        BYTES.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// The bar of one task run; does nothing when the display is off.
///
/// It counts from the start what a person watching needs to trust it: mappings still being
/// planned, images planned and finished (copied, up to date or failed), image failures, and
/// repositories and mappings that failed before any image job existed (a tag listing that
/// failed, say), so failures show up at once, not only as a missing count at the end.
pub struct TaskProgress {
    bar: Option<ProgressBar>,
    counts: Arc<Counts>,
}

/// What a task's bar shows, updated from concurrent mapping and image jobs.
#[derive(Debug, Default)]
pub struct Counts {
    /// Mappings not planned yet.
    pub planning: AtomicU64,
    /// Image jobs planned so far.
    pub planned: AtomicU64,
    /// Image jobs finished (copied, up to date or failed).
    pub finished: AtomicU64,
    /// Image jobs that failed.
    pub images_failed: AtomicU64,
    /// Repositories that could not be planned (their tags could not be listed, say).
    pub repositories_failed: AtomicU64,
    /// Mappings that could not be planned, or selected no image.
    pub mappings_failed: AtomicU64,
}

/// How many characters wide the drawn bar is.
const BAR_WIDTH: usize = 30;

impl Counts {
    /// The bar: `=` for finished images out of planned ones, `>` at the front; empty while
    /// nothing is planned.
    pub fn bar(&self, width: usize) -> String {
        let planned = self.planned.load(Ordering::Relaxed);
        let finished = self.finished.load(Ordering::Relaxed).min(planned);
        let filled = if planned == 0 {
            0
        } else {
            (finished as usize * width) / planned as usize
        };
        let mut bar = "=".repeat(filled);
        if filled < width && finished > 0 {
            bar.push('>');
        }
        format!("{bar:<width$}")
    }

    /// The counts as the bar shows them, e.g. `3/10 images (1 failed), 2 repositories failed`
    /// or `planning 2 mappings, 0/0 images`.
    pub fn describe(&self) -> String {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        let planning = get(&self.planning);
        if planning > 0 {
            parts.push(format!(
                "planning {}",
                plural(planning, "mapping", "mappings")
            ));
        }
        let mut images = format!("{}/{} images", get(&self.finished), get(&self.planned));
        let images_failed = get(&self.images_failed);
        if images_failed > 0 {
            images.push_str(&format!(" ({images_failed} failed)"));
        }
        parts.push(images);
        let repositories = get(&self.repositories_failed);
        if repositories > 0 {
            parts.push(format!(
                "{} failed",
                plural(repositories, "repository", "repositories")
            ));
        }
        let mappings = get(&self.mappings_failed);
        if mappings > 0 {
            parts.push(format!(
                "{} failed",
                plural(mappings, "mapping", "mappings")
            ));
        }
        parts.join(", ")
    }
}

impl TaskProgress {
    /// Starts a bar for `task`, which has `mappings` mappings to plan.
    pub fn start(task: &str, mappings: usize) -> TaskProgress {
        let counts = Arc::new(Counts::default());
        counts.planning.store(mappings as u64, Ordering::Relaxed);
        let bytes_at_start = BYTES.load(Ordering::Relaxed);
        let shown = counts.clone();
        let bar = DISPLAY.get().map(|display| {
            let bar = display.add(ProgressBar::new(0));
            // The bar is drawn from the counts: indicatif's own shows a full bar while nothing
            // is planned yet (0 of 0), which reads as "done".
            let template = "{prefix} [{images_bar}] {counts}, {sent} sent, {elapsed}";
            let drawn = counts.clone();
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "sent",
                    move |_: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                        let sent = BYTES.load(Ordering::Relaxed).saturating_sub(bytes_at_start);
                        let _ = out.write_str(&crate::report::human_bytes(sent));
                    },
                )
                .with_key(
                    "images_bar",
                    move |_: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = out.write_str(&drawn.bar(BAR_WIDTH));
                    },
                )
                .with_key(
                    "counts",
                    move |_: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = out.write_str(&shown.describe());
                    },
                );
            bar.set_style(style);
            bar.set_prefix(task.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        TaskProgress { bar, counts }
    }

    /// The counts behind the bar (also kept when the display is off).
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// A mapping was planned into `images` image jobs, and `failed_repositories` of its
    /// repositories could not be planned. One call, so no drawing shows the mapping planned
    /// but its failures not yet counted.
    pub fn mapping_planned(&self, images: usize, failed_repositories: usize) {
        self.counts
            .repositories_failed
            .fetch_add(failed_repositories as u64, Ordering::Relaxed);
        self.counts
            .planned
            .fetch_add(images as u64, Ordering::Relaxed);
        self.counts.planning.fetch_sub(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc_length(images as u64);
        }
    }

    /// A mapping failed before it had image jobs (or selected none).
    pub fn mapping_failed(&self) {
        self.counts.planning.fetch_sub(1, Ordering::Relaxed);
        self.counts.mappings_failed.fetch_add(1, Ordering::Relaxed);
        self.redraw();
    }

    /// One image job finished: copied, up to date, or (`failed`) failed.
    pub fn image_done(&self, failed: bool) {
        self.counts.finished.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.counts.images_failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn redraw(&self) {
        if let Some(bar) = &self.bar {
            bar.tick();
        }
    }
}

impl Drop for TaskProgress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_from_the_start() {
        // Two repositories fail while another mapping is still planning: they show at once.
        let progress = TaskProgress::start("t", 2);
        assert_eq!(
            progress.counts().describe(),
            "planning 2 mappings, 0/0 images"
        );
        assert_eq!(
            progress.counts().bar(4),
            "    ",
            "nothing planned: an empty bar"
        );
        progress.mapping_planned(1, 2);
        assert_eq!(
            progress.counts().describe(),
            "planning 1 mapping, 0/1 images, 2 repositories failed"
        );
        progress.mapping_failed();
        progress.image_done(true);
        assert_eq!(
            progress.counts().describe(),
            "1/1 images (1 failed), 2 repositories failed, 1 mapping failed"
        );
        assert_eq!(progress.counts().bar(4), "====");
    }
}
