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

/// The help text: `--help` prints it to stdout (exit 0); a bad command line prints it to
/// stderr after the error (exit 1). Its flag block keeps Go's `flag` layout (`  -config string`
/// then a tab-indented line), which scripts written for the original grep for.
pub const USAGE: &str = "\
Usage of dregsy:
  dregsy -config=FILE [-run=REGEX] [-health=ADDRESS] [-shard=INDEX/COUNT]
                                                       sync the registries as FILE says
  dregsy plan -config=FILE [-run=REGEX] [-shard=INDEX/COUNT|all/COUNT] [--json]
                                                       show what a sync would do, copying nothing
  dregsy tags [--filter ENTRY]... [--json] < tags.txt  try tag filters on a list of tags
  dregsy --version                                     print the version
  dregsy --help                                        print this help

Flags (Go syntax: -name=value, -name value, --name=value; flags come after the subcommand):
  -config string
    \tpath to config file (required)
  -health string
    \tserve /healthz, /readyz, /status and /metrics on this address (e.g. :8080)
    \t(default: the config's health.listen; none when that is not set either)
  -run string
    \ttask filter regex: only tasks whose whole name matches; a leading '!' inverts
    \t(default: every task)
  -shard string
    \tcopy only this shard's target repositories, INDEX/COUNT (e.g. 0/3)
    \t(default: from DREGSY_SHARDS with JOB_COMPLETION_INDEX or HOSTNAME's ordinal;
    \tnone when DREGSY_SHARDS is not set)

Environment:
  LOG_LEVEL         error, warn, info, debug or trace (default: info)
  LOG_FORMAT        json or text (default: text on a terminal, json otherwise)
  LOG_FORCE_COLORS  true: colours with LOG_FORMAT=text even without a terminal
  LOG_METHODS       true: add the source location (func, file) to each log line

Logs go to stdout (for plan and tags: to stderr, warnings and errors only).
Exit codes: 0 every selected task ran without error; 1 a usage, config or startup
error, or a task had errors; 130/143 a run was interrupted by SIGINT/SIGTERM.

Documentation: README.md and docs/ (configuration.md, behaviour.md, compatibility.md)
in dregsy's source tree; 'dregsy plan -h' and 'dregsy tags -h' for the subcommands.
";

/// The subcommands a first argument selects; a word after the flags is an error that suggests
/// putting it first.
const SUBCOMMANDS: [&str; 2] = ["plan", "tags"];

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
    /// A word after the flags. Go's `flag` stopped there and the original ignored the rest;
    /// we refuse it, since `dregsy -config=x plan` would otherwise run a real sync
    /// (docs/compatibility.md). Holds the word, its position and the whole command line, for
    /// the suggestion.
    Positional {
        word: String,
        at: usize,
        args: Vec<String>,
    },
    /// No `-config`, or an empty one.
    MissingConfig,
}

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgsError::Undefined(flag) => write!(f, "flag provided but not defined: -{flag}"),
            ArgsError::NeedsArgument(flag) => write!(f, "flag needs an argument: -{flag}"),
            ArgsError::MissingConfig => {
                write!(f, "missing -config=FILE: dregsy needs a config file")
            }
            ArgsError::Positional { word, at, args } if SUBCOMMANDS.contains(&word.as_str()) => {
                let others: Vec<&str> = args
                    .iter()
                    .enumerate()
                    .filter(|(i, a)| i != at && *a != "--")
                    .map(|(_, a)| a.as_str())
                    .collect();
                let flags = if word == "tags" {
                    // `tags` reads a tag list, not a config: show its own form.
                    " [--filter ENTRY]... < tags.txt".to_string()
                } else if others.is_empty() {
                    " -config=FILE".to_string()
                } else {
                    format!(" {}", others.join(" "))
                };
                write!(
                    f,
                    "unexpected argument '{word}' after the flags: a subcommand comes first, \
                     as in: dregsy {word}{flags}"
                )
            }
            ArgsError::Positional { word, .. } => write!(
                f,
                "unexpected argument '{word}': dregsy takes only flags (-config, -run, -health) \
                 or a subcommand first (plan, tags)"
            ),
        }
    }
}

/// Reads a command line with Go's `flag` rules: `-name=value` or `-name value`, one or two
/// dashes; `--` ends the flags. Each command matches the names it knows, so the spelling
/// rules live here once.
pub struct Flags<'a> {
    args: &'a [String],
    index: usize,
    /// Where `--` was, once it was read.
    end: Option<usize>,
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
        Flags {
            args,
            index: 0,
            end: None,
        }
    }

    /// The next argument, or `None` at the end and after `--`.
    pub fn next_arg(&mut self) -> Option<Arg<'a>> {
        let arg = self.args.get(self.index)?.as_str();
        self.index += 1;
        if arg == "--" {
            self.end = Some(self.index - 1);
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

    /// The first argument after `--` and its position, if any: Go's `flag` treats everything
    /// there as positional arguments.
    pub fn first_after_end(&self) -> Option<(usize, &'a str)> {
        let at = self.end? + 1;
        self.args.get(at).map(|a| (at, a.as_str()))
    }

    /// The position of the argument [`next_arg`](Self::next_arg) returned last.
    pub fn last_position(&self) -> usize {
        self.index.saturating_sub(1)
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

/// Parses arguments (without the program name) with Go's flag syntax. Unlike Go, a word after
/// the flags (or after `--`) is an error, not silently ignored, and `-config` is required.
pub fn parse(args: &[String]) -> Result<Command, ArgsError> {
    let mut config = String::new();
    let mut run = String::new();
    let mut health = String::new();
    let mut shard = String::new();
    let mut flags = Flags::new(args);
    while let Some(arg) = flags.next_arg() {
        let (name, inline) = match arg {
            Arg::Flag { name, inline } => (name, inline),
            Arg::Positional(word) => {
                return Err(ArgsError::Positional {
                    word: word.to_string(),
                    at: flags.last_position(),
                    args: args.to_vec(),
                });
            }
        };
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
    if let Some((at, word)) = flags.first_after_end() {
        return Err(ArgsError::Positional {
            word: word.to_string(),
            at,
            args: args.to_vec(),
        });
    }
    if config.is_empty() {
        return Err(ArgsError::MissingConfig);
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
    crate::http_client::install_crypto_provider();
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
    // A bad command line is answered on stderr in plain text, before logging starts: it is
    // a message for the person typing, not an event for a log collector.
    let command = match parse(&args) {
        Ok(command) => command,
        Err(e) => {
            // The bare `dregsy` gets the usage alone: it is a question, not a mistake.
            if !args.is_empty() {
                eprintln!("{e}");
            }
            eprint!("{USAGE}");
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
            // A bad shard (flag or environment) is a command-line error: plain text on
            // stderr, before logging starts.
            let shard = match Shard::from_sources(&shard, |name| std::env::var(name).ok()) {
                Ok(shard) => shard,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(1);
                }
            };
            crate::logging::init();
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

/// The tasks `filter` selects. A config without tasks is a warning (nothing was asked, so
/// nothing to do is right); a `-run` that matches none of the tasks is an error that lists
/// them, since a run that does nothing must not look like a success (docs/behaviour.md#exit-codes).
///
/// # Errors
/// The message for a `-run` filter that selects no task.
pub fn select_tasks<'c>(
    config: &'c config::Config,
    run: &str,
    filter: &Pattern,
) -> Result<Vec<&'c config::Task>, String> {
    let selected: Vec<&config::Task> = config
        .tasks
        .iter()
        .filter(|t| filter.matches(&t.name))
        .collect();
    if config.tasks.is_empty() {
        if run.trim().is_empty() {
            tracing::warn!(
                file = %config.file.display(),
                "the config has no tasks: nothing to do"
            );
            return Ok(selected);
        }
        return Err(format!(
            "-run '{run}' selects nothing: the config '{}' has no tasks",
            config.file.display()
        ));
    }
    if selected.is_empty() {
        // Enough names to spot a typo; a config with hundreds of tasks is not printed whole.
        const SHOWN: usize = 20;
        let mut names: Vec<String> = config
            .tasks
            .iter()
            .take(SHOWN)
            .map(|t| format!("'{}'", t.name))
            .collect();
        if config.tasks.len() > SHOWN {
            names.push(format!("and {} more", config.tasks.len() - SHOWN));
        }
        return Err(format!(
            "-run '{run}' matches none of the config's tasks ({}); the whole name must match",
            names.join(", ")
        ));
    }
    Ok(selected)
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
    fn positional_arguments_are_errors() {
        let err = parse(&args(&["-config=x.yaml", "plan"])).expect_err("plan after the flags");
        assert_eq!(
            err.to_string(),
            "unexpected argument 'plan' after the flags: a subcommand comes first, as in: \
             dregsy plan -config=x.yaml"
        );
        let err = parse(&args(&["-config=x", "extra", "-bogus"])).expect_err("extra");
        assert!(
            err.to_string().starts_with("unexpected argument 'extra': "),
            "{err}"
        );
        let err = parse(&args(&["-config=x", "--", "tags"])).expect_err("after --");
        assert!(
            err.to_string()
                .ends_with("as in: dregsy tags [--filter ENTRY]... < tags.txt"),
            "{err}"
        );
        assert_eq!(
            parse(&args(&["--", "-config=x"])),
            Err(ArgsError::Positional {
                word: "-config=x".into(),
                at: 1,
                args: args(&["--", "-config=x"])
            })
        );
        // The word's own position is left out of the suggestion, not every equal argument.
        let err = parse(&args(&["-config", "plan", "plan"])).expect_err("plan twice");
        assert!(
            err.to_string().ends_with("as in: dregsy plan -config plan"),
            "{err}"
        );
        assert_eq!(parse(&args(&[])), Err(ArgsError::MissingConfig));
        assert_eq!(parse(&args(&["-run=a"])), Err(ArgsError::MissingConfig));
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
