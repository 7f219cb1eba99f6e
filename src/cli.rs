//! The command line: the original's Go-style flags (`-config`, `-run`), exit codes
//! (docs/behaviour.md#exit-codes), and room for subcommands (`dregsy <command> …`) that do not
//! clash with them.

use std::process::ExitCode;

use crate::VERSION;
use crate::commands::flags::{Arg, ArgsError, Flags};
use crate::shard::Shard;

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
        /// The `-config` path; empty prints the synopsis and exits 1.
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

/// Parses arguments (without the program name) as the original does: parsing stops at `--`
/// or the first non-flag argument, and positional arguments are ignored.
///
/// # Errors
///
/// An [`ArgsError`] for a flag Go's `flag` package would reject (undefined, or missing its value).
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
    fn positional_arguments_stop_parsing() {
        assert_eq!(
            parse(&args(&["-config=x", "extra", "-bogus"])),
            sync("x", "")
        );
        assert_eq!(parse(&args(&["--", "-config=x"])), sync("", ""));
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
