//! Process signals for the daemon (docs/behaviour.md#signals-and-restarts).
//!
//! The handlers are installed before the config is even loaded, so no signal ever meets the
//! default action (the original died at once during its first run). The handler acts on the
//! process's [`Stop`] itself, so work waiting on it wakes at once, wherever the scheduler is:
//! the first SIGINT or SIGTERM requests the stop (nothing new starts), a second one aborts the
//! work in flight. Nothing here ends the process: every exit returns through `main`, so
//! destructors run (the skopeo relay's auth files hold credentials). Every signal is also
//! passed on, in order, for the scheduler to log and decide on; SIGHUP asks for a restart, and
//! the scheduler decides whether a restart means anything for the config it runs.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::stop::Stop;

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: stop (exit 130 when a run is interrupted).
    Interrupt,
    /// SIGTERM: stop (exit 143 when a run is interrupted).
    Terminate,
    /// SIGHUP: reload the config and restart.
    Hangup,
}

impl Signal {
    /// The name Go prints for the signal (`os.Signal.String()`), logged as the `signal` field.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "interrupt",
            Signal::Terminate => "terminated",
            Signal::Hangup => "hangup",
        }
    }

    /// The shell's exit code for a process ended by this signal (128 + signal number).
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
            Signal::Hangup => 129,
        }
    }

    /// Whether the signal asks the process to stop.
    pub fn is_stop(self) -> bool {
        matches!(self, Signal::Interrupt | Signal::Terminate)
    }
}

/// The signals received so far, in order, for the scheduler to act on, and the stop they drive.
pub struct Signals {
    received: mpsc::UnboundedReceiver<Signal>,
    stop: Stop,
}

impl Signals {
    /// Installs the handlers; must run inside the tokio runtime. The first SIGINT/SIGTERM
    /// requests the stop, every later one aborts the work in flight; all are passed on.
    ///
    /// # Errors
    /// A handler that cannot be installed, named.
    pub fn install() -> Result<Signals, String> {
        let install = |kind: SignalKind, which: Signal| {
            signal(kind).map_err(|e| format!("cannot install the {} handler: {e}", which.name()))
        };
        let mut int = install(SignalKind::interrupt(), Signal::Interrupt)?;
        let mut term = install(SignalKind::terminate(), Signal::Terminate)?;
        let mut hup = install(SignalKind::hangup(), Signal::Hangup)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = Stop::new();
        let handler_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let which = tokio::select! {
                    Some(()) = int.recv() => Signal::Interrupt,
                    Some(()) = term.recv() => Signal::Terminate,
                    Some(()) = hup.recv() => Signal::Hangup,
                    else => break,
                };
                // A first stop signal is requested before it is passed on, so that no job
                // starts in between; a second one is passed on before it aborts the copies,
                // so that the run, which ends once they are dropped, finds it waiting.
                let abort = which.is_stop() && handler_stop.is_requested();
                if which.is_stop() && !abort {
                    handler_stop.request();
                }
                let passed_on = tx.send(which).is_ok();
                if abort {
                    handler_stop.abort();
                }
                if !passed_on {
                    break;
                }
            }
        });
        Ok(Signals { received: rx, stop })
    }

    /// The process's stop, which these signals drive.
    pub fn stop(&self) -> Stop {
        self.stop.clone()
    }

    /// A signal that arrived and was not taken yet, without waiting.
    pub fn try_recv(&mut self) -> Option<Signal> {
        self.received.try_recv().ok()
    }

    /// The next signal; waits until one arrives. Cancel-safe.
    pub async fn recv(&mut self) -> Signal {
        match self.received.recv().await {
            Some(signal) => signal,
            // The listener ended (the runtime is shutting down): no signal will come.
            None => std::future::pending().await,
        }
    }
}
