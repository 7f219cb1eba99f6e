//! The command-line toolkit every command shares: Go's `flag` spelling rules, the usage and
//! error exits, and the `-run` task filter.

use crate::config;
use crate::plan::pattern::Pattern;

/// The subcommands a first argument selects; a word after the flags is an error that suggests
/// putting it first.
pub(crate) const SUBCOMMANDS: [&str; 2] = ["plan", "tags"];

/// A command line that Go's `flag` package would reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// `flag provided but not defined: -x`, then `did you mean -y?` when the command has a
    /// flag close to it (see [`ArgsError::undefined`]).
    Undefined {
        /// The flag as written, without its dashes.
        flag: String,
        /// The command's flag closest to it, when close enough to be a likely typo.
        suggestion: Option<&'static str>,
    },
    /// `flag needs an argument: -config`
    NeedsArgument(String),
    /// A word after the flags. Go's `flag` stopped there and the original ignored the rest;
    /// we refuse it, since `dregsy -config=x plan` would otherwise run a real sync
    /// (docs/compatibility.md). Holds the word, its position and the whole command line, for
    /// the suggestion.
    Positional {
        /// The word.
        word: String,
        /// Its position on the command line.
        at: usize,
        /// The whole command line, without the program name.
        args: Vec<String>,
    },
    /// No `-config`, or an empty one.
    MissingConfig,
}

impl ArgsError {
    /// The error for flag `flag`, which the command does not define, suggesting the closest of
    /// `known` (the command's flags, long names only: `-x` is not a typo of `-h`).
    pub fn undefined(flag: &str, known: &[&'static str]) -> ArgsError {
        let long: Vec<&'static str> = known.iter().copied().filter(|k| k.len() > 1).collect();
        ArgsError::Undefined {
            flag: flag.to_string(),
            suggestion: crate::spelling::closest(flag, &long),
        }
    }
}

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Go's first line stays as it was: scripts written for the original match it.
            ArgsError::Undefined { flag, suggestion } => {
                write!(f, "flag provided but not defined: -{flag}")?;
                match suggestion {
                    Some(known) => write!(f, "\ndid you mean -{known}?"),
                    None => Ok(()),
                }
            }
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

/// A command line as the parsers take it, from string literals (for tests).
#[cfg(test)]
pub(crate) fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_go_spellings() {
        let line = strings(&["-a=1", "--b", "2", "-c", "-", "-d"]);
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
        let line = strings(&["--", "-x"]);
        assert_eq!(Flags::new(&line).next_arg(), None);
    }
}
