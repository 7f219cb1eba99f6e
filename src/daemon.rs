//! The daemon: the original's `main` loop that runs the config, reloads it on a restart
//! (SIGHUP, config change) and maps the outcome to the exit codes of
//! docs/behaviour.md#exit-codes.

use std::path::Path;
use std::process::ExitCode;

use crate::VERSION;
use crate::clients::ProcessEnvironment;
use crate::commands::flags::{compile_filter, select_tasks};
use crate::config;
use crate::health::HealthServer;
use crate::logging::log_notices;
use crate::plan::pattern::Pattern;
use crate::scheduler::Ending;
use crate::shard::Shard;
use crate::status::StatusBoard;

/// Builds the runtime and runs the daemon flow in it.
pub fn sync(config_path: &str, run: &str, health: &str, shard: Shard) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::info!("dregsy {VERSION}");
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(daemon(Path::new(config_path), run, health, shard));
    // Every exit comes here, never `std::process::exit` (docs/behaviour.md#signals-and-restarts):
    // the runs and their copies have ended (aborted copies too, with their clean-up); what is
    // left are the signal listener, the health endpoint and the config watch.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

/// The original's `main` loop: run the config; on a restart (SIGHUP, config change) reload,
/// revalidate and run again with the same `-run` filter; exit with the codes of
/// docs/behaviour.md#exit-codes (130/143 when a signal interrupted a run).
async fn daemon(config_path: &Path, run: &str, health_flag: &str, shard: Shard) -> u8 {
    // Before anything else, so no signal meets the default action (the original died at once
    // during its first run; docs/behaviour.md#signals-and-restarts).
    let mut signals = match crate::signals::Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            tracing::info!("dregsy {VERSION}");
            tracing::error!("{e}");
            return 1;
        }
    };
    // Read once: a reload takes a new config, not a new environment.
    let environment = ProcessEnvironment::from_process();
    let board = StatusBoard::new();
    board.metrics().set_shard(shard);
    if shard.is_sharded() {
        tracing::info!(shard = %shard, "copying only the target repositories of shard {shard}");
    }
    let mut health: Option<HealthServer> = None;
    let mut filter: Option<Pattern> = None;
    let mut restart = false;
    loop {
        tracing::info!("dregsy {VERSION}");
        board.loading(restart);
        let Some((config, text)) = load(config_path) else {
            return 1;
        };
        let filter = match &filter {
            Some(filter) => filter,
            None => match compile_filter(run) {
                Ok(compiled) => filter.insert(compiled),
                Err(e) => {
                    tracing::error!("{e}");
                    return 1;
                }
            },
        };
        if let Err(e) = select_tasks(&config, run, filter) {
            tracing::error!("{e}");
            return 1;
        }
        if let Err(e) = serve_health(&mut health, health_flag, &config, &board).await {
            tracing::error!("{e}");
            return 1;
        }
        let context = crate::scheduler::Context {
            signals: &mut signals,
            status: &board,
            config_text: &text,
            shard,
            environment: &environment,
        };
        let ending = match crate::scheduler::run(&config, filter, context).await {
            Ok(ending) => ending,
            Err(e) => {
                tracing::error!("{e}");
                return 1;
            }
        };
        match exit_code(ending) {
            None => restart = true,
            Some(code) => return code,
        }
    }
}

/// Reads and loads the config, logging its notices; `None` after logging why it cannot be
/// loaded. Returns the config with its text (the config watch compares it).
fn load(config_path: &Path) -> Option<(config::Config, String)> {
    let loaded = config::read(config_path).and_then(|text| {
        config::load_str(config_path, &text).map(|(config, notices)| (config, notices, text))
    });
    match loaded {
        Ok((config, notices, text)) => {
            log_notices(&notices);
            Some((config, text))
        }
        Err(e) => {
            log_notices(&e.notices);
            tracing::error!("{e}");
            None
        }
    }
}

/// The exit code a run's ending asks for (docs/behaviour.md#exit-codes), logged; `None` for a
/// restart.
fn exit_code(ending: Ending) -> Option<u8> {
    match ending {
        Ending::Restart => None,
        Ending::Stopped {
            signal,
            interrupted: true,
            ..
        } => {
            tracing::warn!(
                signal = signal.name(),
                "stopped: the run was interrupted, exiting with code {}",
                signal.exit_code()
            );
            Some(signal.exit_code())
        }
        Ending::Finished { failed } | Ending::Stopped { failed, .. } => {
            tracing::info!("all done");
            if failed {
                tracing::error!("one or more tasks had errors, please see log for details");
                return Some(1);
            }
            Some(0)
        }
    }
}

/// Starts, moves or stops the health endpoint: `-health` wins over `health.listen`.
async fn serve_health(
    server: &mut Option<HealthServer>,
    flag: &str,
    config: &config::Config,
    board: &StatusBoard,
) -> Result<(), String> {
    let wanted = if flag.trim().is_empty() {
        config.daemon.health_listen
    } else {
        Some(config::parse_listen_address(flag).map_err(|e| format!("-health: {e}"))?)
    };
    let current = server.as_ref().map(|s| s.address());
    match wanted {
        None => *server = None,
        // Port 0 binds a free port once; it is not moved on every restart.
        Some(address) if current.is_some_and(|c| c == address || address.port() == 0) => {}
        Some(address) => {
            *server = None;
            *server = Some(HealthServer::start(address, board.clone()).await?);
        }
    }
    Ok(())
}
