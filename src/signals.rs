//! Process signals for the daemon (docs/behaviour.md#signals-and-restarts).
//!
//! The handlers are installed before the config is even loaded, so no signal ever meets the
//! default action (the original died at once during its first run). SIGINT and SIGTERM ask for
//! a graceful stop; a second one of them exits at once, which is safe because the native relay
//! puts a manifest only after everything it references is in place. SIGHUP asks for a restart;
//! the scheduler decides whether a restart means anything for the config it runs.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
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

/// The signals received so far, in order, for the scheduler to act on.
pub struct Signals {
    received: mpsc::UnboundedReceiver<Signal>,
}

impl Signals {
    /// Installs the handlers; must run inside the tokio runtime. The second SIGINT/SIGTERM is
    /// handled here and never reaches the receiver: it ends the process at once.
    pub fn install() -> Result<Signals, String> {
        let install = |kind: SignalKind, which: Signal| {
            signal(kind).map_err(|e| format!("cannot install the {} handler: {e}", which.name()))
        };
        let mut int = install(SignalKind::interrupt(), Signal::Interrupt)?;
        let mut term = install(SignalKind::terminate(), Signal::Terminate)?;
        let mut hup = install(SignalKind::hangup(), Signal::Hangup)?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stops = 0u32;
            loop {
                let which = tokio::select! {
                    Some(()) = int.recv() => Signal::Interrupt,
                    Some(()) = term.recv() => Signal::Terminate,
                    Some(()) = hup.recv() => Signal::Hangup,
                    else => break,
                };
                if which.is_stop() {
                    stops += 1;
                    if stops >= 2 {
                        tracing::info!(signal = which.name(), "received signal");
                        tracing::warn!(
                            "second stop signal: exiting at once; copies in flight are abandoned \
                             (no tag was moved yet for them, the next run resumes them)"
                        );
                        std::process::exit(i32::from(which.exit_code()));
                    }
                }
                if tx.send(which).is_err() {
                    break;
                }
            }
        });
        Ok(Signals { received: rx })
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
