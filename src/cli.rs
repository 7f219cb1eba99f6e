//! The command line: the original's Go-style flags (`-config`, `-run`), exit codes
//! (docs/behaviour.md#exit-codes), and room for subcommands (`dregsy <command> …`) that do not
//! clash with them.

use std::path::Path;
use std::process::ExitCode;

use crate::config;
use crate::health::HealthServer;
use crate::plan::pattern::Pattern;
use crate::scheduler::Ending;
use crate::shard::Shard;
use crate::status::StatusBoard;

/// The version logged at every start and printed by `--version`.
pub const VERSION: &str = match option_env!("DREGSY_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// Go's `flag` usage block, byte for byte, so scripts that grep it keep working.
/// `-health` is ours; Go sorts flags by name, so it sits between the original two.
pub const USAGE: &str = "Usage of dregsy:\n  -config string\n    \tpath to config file\n  -health string\n    \tserve /healthz, /readyz, /status and /metrics on this address (e.g. :8080)\n  -run string\n    \ttask filter regex\n  -shard string\n    \tcopy only this shard's target repositories, INDEX/COUNT (e.g. 0/3)\n";

const SYNOPSIS: &str = "synopsis: dregsy -config={config file} [-run {task name regex}]";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Sync with a config file; `run` filters tasks by name; `health` is the `-health`
    /// address (empty: the config's `health.listen`, or no endpoint); `shard` is `-shard`'s
    /// INDEX/COUNT (empty: from the environment, or no sharding).
    Sync {
        config: String,
        run: String,
        health: String,
        shard: String,
    },
    Help,
    Version,
}

/// A command line that Go's `flag` package would reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// `flag provided but not defined: -x`
    Undefined(String),
    /// `flag needs an argument: -config`
    NeedsArgument(String),
}

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgsError::Undefined(flag) => write!(f, "flag provided but not defined: -{flag}"),
            ArgsError::NeedsArgument(flag) => write!(f, "flag needs an argument: -{flag}"),
        }
    }
}

/// Reads a command line with Go's `flag` rules: `-name=value` or `-name value`, one or two
/// dashes; `--` ends the flags. Each command matches the names it knows, so the spelling
/// rules live here once.
pub struct Flags<'a> {
    args: &'a [String],
    index: usize,
}

/// What comes next on a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    /// A flag, with the value written after `=`, if any.
    Flag {
        name: &'a str,
        inline: Option<&'a str>,
    },
    /// An argument that is not a flag (`-` included); Go stops parsing flags here.
    Positional(&'a str),
}

impl<'a> Flags<'a> {
    pub fn new(args: &'a [String]) -> Flags<'a> {
        Flags { args, index: 0 }
    }

    /// The next argument, or `None` at the end and after `--`.
    pub fn next_arg(&mut self) -> Option<Arg<'a>> {
        let arg = self.args.get(self.index)?.as_str();
        self.index += 1;
        if arg == "--" {
            self.index = self.args.len();
            return None;
        }
        if arg == "-" || !arg.starts_with('-') {
            return Some(Arg::Positional(arg));
        }
        let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
        Some(match body.split_once('=') {
            Some((name, value)) => Arg::Flag {
                name,
                inline: Some(value),
            },
            None => Arg::Flag {
                name: body,
                inline: None,
            },
        })
    }

    /// The value of flag `name`: the one written after `=`, else the next argument.
    pub fn value(&mut self, name: &str, inline: Option<&str>) -> Result<String, ArgsError> {
        if let Some(value) = inline {
            return Ok(value.to_string());
        }
        let value = self
            .args
            .get(self.index)
            .ok_or_else(|| ArgsError::NeedsArgument(name.to_string()))?;
        self.index += 1;
        Ok(value.clone())
    }
}

/// A subcommand's parsed arguments, or the exit code after printing what was asked for: the
/// usage for `-h` (exit 0), the error and the usage for a bad command line (exit 1).
pub fn parsed_or_exit<T>(parsed: Result<Option<T>, String>, usage: &str) -> Result<T, u8> {
    match parsed {
        Ok(Some(args)) => Ok(args),
        Ok(None) => {
            print!("{usage}");
            Err(0)
        }
        Err(e) => {
            eprintln!("{e}");
            eprint!("{usage}");
            Err(1)
        }
    }
}

/// Parses arguments (without the program name) as the original does: parsing stops at `--`
/// or the first non-flag argument, and positional arguments are ignored.
pub fn parse(args: &[String]) -> Result<Command, ArgsError> {
    let mut config = String::new();
    let mut run = String::new();
    let mut health = String::new();
    let mut shard = String::new();
    let mut flags = Flags::new(args);
    while let Some(Arg::Flag { name, inline }) = flags.next_arg() {
        match name {
            "h" | "help" => return Ok(Command::Help),
            "version" | "v" if inline.is_none() => return Ok(Command::Version),
            "config" => config = flags.value(name, inline)?,
            "run" => run = flags.value(name, inline)?,
            "health" => health = flags.value(name, inline)?,
            "shard" => shard = flags.value(name, inline)?,
            _ => return Err(ArgsError::Undefined(name.to_string())),
        }
    }
    Ok(Command::Sync {
        config,
        run,
        health,
        shard,
    })
}

/// The program: parse, load, sync, and map the outcome to the original's exit codes.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A first argument naming a subcommand selects it; Go-style flags never look like one.
    match args.first().map(String::as_str) {
        Some("plan") => {
            crate::logging::init_for_command();
            return ExitCode::from(crate::commands::plan::main(&args[1..]));
        }
        Some("tags") => {
            crate::logging::init_for_command();
            return ExitCode::from(crate::commands::tags::main(&args[1..]));
        }
        _ => {}
    }
    crate::logging::init();
    let command = match parse(&args) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("{e}");
            eprint!("{USAGE}");
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("dregsy {VERSION}");
            ExitCode::SUCCESS
        }
        Command::Sync {
            config,
            run,
            health,
            shard,
        } => {
            if config.is_empty() {
                tracing::info!("dregsy {VERSION}");
                println!("{SYNOPSIS}");
                return ExitCode::from(1);
            }
            let shard = match Shard::from_sources(&shard, |name| std::env::var(name).ok()) {
                Ok(shard) => shard,
                Err(e) => {
                    tracing::info!("dregsy {VERSION}");
                    tracing::error!("{e}");
                    return ExitCode::from(1);
                }
            };
            sync(&config, &run, &health, shard)
        }
    }
}

/// Builds the runtime and runs the daemon flow in it.
fn sync(config_path: &str, run: &str, health: &str, shard: Shard) -> ExitCode {
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
        let loaded = config::read(config_path).and_then(|text| {
            config::load_str(config_path, &text).map(|(config, notices)| (config, notices, text))
        });
        let (config, text) = match loaded {
            Ok((config, notices, text)) => {
                log_notices(&notices);
                (config, text)
            }
            Err(e) => {
                log_notices(&e.notices);
                tracing::error!("{e}");
                return 1;
            }
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
        if let Err(e) = serve_health(&mut health, health_flag, &config, &board).await {
            tracing::error!("{e}");
            return 1;
        }
        let context = crate::scheduler::Context {
            signals: &mut signals,
            status: &board,
            config_text: &text,
            shard,
        };
        let ending = match crate::scheduler::run(&config, filter, context).await {
            Ok(ending) => ending,
            Err(e) => {
                tracing::error!("{e}");
                return 1;
            }
        };
        match ending {
            Ending::Restart => {
                restart = true;
                continue;
            }
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
                return signal.exit_code();
            }
            Ending::Finished { failed } | Ending::Stopped { failed, .. } => {
                tracing::info!("all done");
                if failed {
                    tracing::error!("one or more tasks had errors, please see log for details");
                    return 1;
                }
                return 0;
            }
        }
    }
}

/// The `-run` filter: a whole-name regex, `!` inverts (docs/behaviour.md#tag-filters, "Regular
/// expressions"); an empty one selects every task.
pub fn compile_filter(run: &str) -> Result<Pattern, String> {
    let filter = if run.trim().is_empty() { ".*" } else { run };
    Pattern::new(filter).map_err(|e| format!("invalid task filter: {e}"))
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

/// Logs config notices at their level, with their fields.
pub fn log_notices(notices: &[config::Notice]) {
    for notice in notices {
        let fields: Vec<String> = notice
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        // tracing needs field names at compile time; the few notices with fields are
        // spelled out so their fields stay structured in JSON output.
        match (notice.level, notice.fields.as_slice()) {
            (config::Level::Info, [("registry", r), ("username", u)]) => {
                tracing::info!(registry = %r, username = %u, "{}", notice.message)
            }
            (config::Level::Warn, [("registry", r)]) => {
                tracing::warn!(registry = %r, "{}", notice.message)
            }
            (config::Level::Info, _) if fields.is_empty() => tracing::info!("{}", notice.message),
            (config::Level::Warn, _) if fields.is_empty() => tracing::warn!("{}", notice.message),
            (config::Level::Info, _) => {
                tracing::info!("{} ({})", notice.message, fields.join(", "))
            }
            (config::Level::Warn, _) => {
                tracing::warn!("{} ({})", notice.message, fields.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn sync(config: &str, run: &str) -> Result<Command, ArgsError> {
        Ok(Command::Sync {
            config: config.into(),
            run: run.into(),
            health: String::new(),
            shard: String::new(),
        })
    }

    #[test]
    fn go_flag_spellings() {
        for form in [
            args(&["-config=x.yaml"]),
            args(&["-config", "x.yaml"]),
            args(&["--config=x.yaml"]),
            args(&["--config", "x.yaml"]),
        ] {
            assert_eq!(parse(&form), sync("x.yaml", ""), "{form:?}");
        }
        assert_eq!(
            parse(&args(&["-run=a|b", "--config", "c.yaml"])),
            sync("c.yaml", "a|b")
        );
    }

    #[test]
    fn positional_arguments_stop_parsing() {
        assert_eq!(
            parse(&args(&["-config=x", "extra", "-bogus"])),
            sync("x", "")
        );
        assert_eq!(parse(&args(&["--", "-config=x"])), sync("", ""));
    }

    #[test]
    fn flags_read_go_spellings() {
        let line = args(&["-a=1", "--b", "2", "-c", "-", "-d"]);
        let mut flags = Flags::new(&line);
        assert_eq!(
            flags.next_arg(),
            Some(Arg::Flag {
                name: "a",
                inline: Some("1")
            })
        );
        let Some(Arg::Flag { name, inline }) = flags.next_arg() else {
            panic!("--b is a flag");
        };
        assert_eq!(flags.value(name, inline), Ok("2".to_string()));
        assert_eq!(
            flags.next_arg(),
            Some(Arg::Flag {
                name: "c",
                inline: None
            })
        );
        assert_eq!(flags.next_arg(), Some(Arg::Positional("-")));
        let Some(Arg::Flag { name, inline }) = flags.next_arg() else {
            panic!("-d is a flag");
        };
        assert_eq!(
            flags.value(name, inline),
            Err(ArgsError::NeedsArgument("d".into()))
        );
        assert_eq!(flags.next_arg(), None);
        let line = args(&["--", "-x"]);
        assert_eq!(Flags::new(&line).next_arg(), None);
    }

    #[test]
    fn help_version_and_errors() {
        assert_eq!(parse(&args(&["-h"])), Ok(Command::Help));
        assert_eq!(parse(&args(&["--help"])), Ok(Command::Help));
        assert_eq!(parse(&args(&["--version"])), Ok(Command::Version));
        assert_eq!(parse(&args(&["-version"])), Ok(Command::Version));
        assert_eq!(parse(&args(&["-x"])), Err(ArgsError::Undefined("x".into())));
        assert_eq!(
            parse(&args(&["-config"])).map_err(|e| e.to_string()),
            Err("flag needs an argument: -config".into())
        );
    }
}
