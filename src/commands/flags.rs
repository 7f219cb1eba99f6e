//! The command-line toolkit every command shares: Go's `flag` spelling rules, the usage and
//! error exits, and the `-run` task filter.

use crate::plan::pattern::Pattern;

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
        /// The flag's name, without its dashes.
        name: &'a str,
        /// The value written after `=` (`-config=x.yaml`), if any.
        inline: Option<&'a str>,
    },
    /// An argument that is not a flag (`-` included); Go stops parsing flags here.
    Positional(&'a str),
}

impl<'a> Flags<'a> {
    /// Reads `args`, the arguments after the program (or subcommand) name.
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
    ///
    /// # Errors
    ///
    /// [`ArgsError::NeedsArgument`] when no value is written after `=` and no argument follows.
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
///
/// # Errors
///
/// The exit code, after printing the usage (0) or the error and the usage (1).
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

/// The `-run` filter: a whole-name regex, `!` inverts (docs/behaviour.md#tag-filters, "Regular
/// expressions"); an empty one selects every task.
///
/// # Errors
///
/// When `run` is not a valid regular expression (`invalid task filter: …`).
pub fn compile_filter(run: &str) -> Result<Pattern, String> {
    let filter = if run.trim().is_empty() { ".*" } else { run };
    Pattern::new(filter).map_err(|e| format!("invalid task filter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
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
}
