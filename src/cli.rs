//! The command line: the original's Go-style flags (`-config`, `-run`), exit codes
//! (docs/behaviour.md#exit-codes), and room for subcommands (`dregsy <command> …`) that do not
//! clash with them.

use std::process::ExitCode;

use crate::VERSION;
use crate::commands::flags::{Arg, ArgsError, Flags};
use crate::shard::Shard;

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

/// The flags [`parse`] knows, for the "did you mean" of an undefined one.
const FLAGS: [&str; 8] = [
    "h", "help", "version", "v", "config", "run", "health", "shard",
];

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Sync with a config file; `run` filters tasks by name; `health` is the `-health`
    /// address (empty: the config's `health.listen`, or no endpoint); `shard` is `-shard`'s
    /// INDEX/COUNT (empty: from the environment, or no sharding).
    Sync {
        /// The `-config` path.
        config: String,
        /// The `-run` task filter regex; empty selects every task.
        run: String,
        /// The `-health` address; empty: the config's `health.listen`, or no endpoint.
        health: String,
        /// The `-shard` INDEX/COUNT; empty: from the environment, or no sharding.
        shard: String,
    },
    /// `-h` or `-help`: print the usage, exit 0.
    Help,
    /// `-version` (or `-v`): print the version, exit 0.
    Version,
}

/// Parses arguments (without the program name) with Go's flag syntax. Unlike Go, a word after
/// the flags (or after `--`) is an error, not silently ignored, and `-config` is required.
///
/// # Errors
///
/// An [`ArgsError`] for a flag Go's `flag` package would reject (undefined, or missing its
/// value), a word after the flags, or no `-config`.
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
            _ => return Err(ArgsError::undefined(name, &FLAGS)),
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
            crate::daemon::sync(&config, &run, &health, shard)
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
    fn help_version_and_errors() {
        assert_eq!(parse(&args(&["-h"])), Ok(Command::Help));
        assert_eq!(parse(&args(&["--help"])), Ok(Command::Help));
        assert_eq!(parse(&args(&["--version"])), Ok(Command::Version));
        assert_eq!(parse(&args(&["-version"])), Ok(Command::Version));
        assert_eq!(
            parse(&args(&["-x"])),
            Err(ArgsError::Undefined {
                flag: "x".into(),
                suggestion: None
            })
        );
        for (flag, shown) in [
            ("--conf=x.yaml", "-conf\ndid you mean -config?"),
            ("-Config=x.yaml", "-Config\ndid you mean -config?"),
            ("-helth=:8080", "-helth\ndid you mean -health?"),
            ("-rn=x", "-rn\ndid you mean -run?"),
            ("-verison", "-verison\ndid you mean -version?"),
            ("-c", "-c"),
        ] {
            let err = parse(&args(&[flag])).expect_err(flag).to_string();
            assert_eq!(err, format!("flag provided but not defined: {shown}"));
        }
        assert_eq!(
            parse(&args(&["-config"])).map_err(|e| e.to_string()),
            Err("flag needs an argument: -config".into())
        );
    }
}
