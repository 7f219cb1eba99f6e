//! A progress display for people watching a terminal: one bar per running task with images
//! done out of planned, and the bytes transferred so far.
//!
//! It exists only when both output streams are terminals and the log format is text; in JSON or
//! redirected output nothing is drawn. Log lines are printed through [`print_line`], which hides
//! the bars for the moment of writing so the two never garble each other.

use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Counts blob bytes as they stream, for the bars.
pub fn transferred(bytes: u64) {
    if DISPLAY.get().is_some() {
        BYTES.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// The bar of one task run; does nothing when the display is off.
pub struct TaskProgress {
    bar: Option<ProgressBar>,
}

impl TaskProgress {
    /// Starts a bar for `task` with no images planned yet.
    pub fn start(task: &str) -> TaskProgress {
        let bytes_at_start = BYTES.load(Ordering::Relaxed);
        let bar = DISPLAY.get().map(|display| {
            let bar = display.add(ProgressBar::new(0));
            let template = "{prefix} [{bar:30}] {pos}/{len} images, {sent} transferred, {elapsed}";
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "sent",
                    move |_: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                        let sent = BYTES.load(Ordering::Relaxed).saturating_sub(bytes_at_start);
                        let _ = out.write_str(&crate::report::human_bytes(sent));
                    },
                )
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(task.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        TaskProgress { bar }
    }

    /// More images were planned.
    pub fn planned(&self, images: usize) {
        if let Some(bar) = &self.bar {
            bar.inc_length(images as u64);
        }
    }

    /// One image finished (copied, up to date or failed).
    pub fn image_done(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
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
