//! `dregsy tags --filter '…' [--filter …] [--json] < tags.txt`: tries a mapping's `tags`
//! entries on a list of tag names, without a registry or a config.
//!
//! Tags are read from stdin, one per line (blank lines are ignored); each `--filter` is one entry
//! of a mapping's `tags` list, in order, with the same rules as in a config
//! (docs/behaviour.md#tag-filters). The output is the list a sync would copy, and every tag left
//! out with the entry that left it out.

use std::io::{BufRead, Write};

use crate::commands::flags::{Arg, ArgsError, Flags};
use crate::plan::tags::TagSet;

const USAGE: &str = "\
usage: dregsy tags [--filter ENTRY]... [--json] < tags.txt

Reads tag names from stdin, one per line, and prints which of them a mapping with these
'tags' entries would sync, and why each other one is left out. Each --filter is one entry
of the 'tags' list: 'semver: >=1.2.0', 'regex: 1\\.2.*', 'keep: !.*-rc', 'keep: latest 3',
or a verbatim tag. Without --filter, every tag is selected, as in a mapping without 'tags'.

  --filter ENTRY   one entry of the tags list (repeatable, order as in the config)
  --json           print JSON: {\"tags\": [...], \"dropped\": [{\"tag\", \"by\"}], \"listed\": bool}
";

/// The most tag names read from stdin: real repositories have thousands, not millions.
const MAX_TAGS: usize = 1_000_000;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The tag filters to try, each as a `tags:` entry is written.
    pub filters: Vec<String>,
    /// `--json`: print the result as JSON instead of text.
    pub json: bool,
}

/// The flags [`parse`] knows, for the "did you mean" of an undefined one.
const FLAGS: [&str; 4] = ["h", "help", "json", "filter"];

/// Parses `--filter X` / `--filter=X` (one or two dashes), `--json`, `-h`. `None` asks for help.
///
/// # Errors
///
/// A flag that is not defined, or `--filter` missing its value.
pub fn parse(args: &[String]) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        filters: Vec::new(),
        json: false,
    };
    let mut flags = Flags::new(args);
    while let Some(arg) = flags.next_arg() {
        let (name, inline) = match arg {
            Arg::Flag { name, inline } => (name, inline),
            Arg::Positional(other) => {
                return Err(format!(
                    "unexpected argument '{other}': the tags are read from stdin"
                ));
            }
        };
        match name {
            "h" | "help" => return Ok(None),
            "json" if inline.is_none() => parsed.json = true,
            "filter" => {
                let filter = flags.value(name, inline).map_err(|e| e.to_string())?;
                parsed.filters.push(filter);
            }
            _ => return Err(ArgsError::undefined(name, &FLAGS).to_string()),
        }
    }
    // Words after `--` are arguments too, not something to ignore.
    if let Some((_, word)) = flags.first_after_end() {
        return Err(format!(
            "unexpected argument '{word}': the tags are read from stdin"
        ));
    }
    Ok(Some(parsed))
}

/// Runs the command; returns the exit code (1 for a usage error or an invalid filter).
pub fn main(args: &[String]) -> u8 {
    let args = match crate::commands::flags::parsed_or_exit(parse(args), USAGE) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let set = match TagSet::parse(&args.filters) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("'tags' uses invalid format: {e}");
            return 1;
        }
    };
    for warning in set.warnings() {
        eprintln!(
            "warning: --filter #{}: {}",
            warning.index + 1,
            warning.message
        );
    }
    let tags = match read_tags(std::io::stdin().lock()) {
        Ok(tags) => tags,
        Err(e) => {
            eprintln!("cannot read the tags from stdin: {e}");
            return 1;
        }
    };
    let output = render(&set, &tags, args.json);
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = stdout.write_all(output.as_bytes());
    0
}

/// Tag names, one per line, trimmed; blank lines skipped.
///
/// # Errors
///
/// When `input` cannot be read (or is not UTF-8).
pub fn read_tags(input: impl BufRead) -> Result<Vec<String>, String> {
    let mut tags = Vec::new();
    for line in input.lines() {
        let line = line.map_err(|e| e.to_string())?;
        let tag = line.trim();
        if tag.is_empty() {
            continue;
        }
        if tags.len() >= MAX_TAGS {
            return Err(format!("more than {MAX_TAGS} tags"));
        }
        tags.push(tag.to_string());
    }
    Ok(tags)
}

/// The command's output for a tag set and the listed tags.
pub fn render(set: &TagSet, listed: &[String], json: bool) -> String {
    let expansion = set.expand(Some(listed));
    let listed_used = set.needs_listing();
    if json {
        let value = serde_json::json!({
            "tags": expansion.tags,
            "dropped": expansion
                .dropped
                .iter()
                .map(|d| serde_json::json!({"tag": d.tag, "by": d.by}))
                .collect::<Vec<_>>(),
            "listed": listed_used,
            "warnings": expansion.warnings,
        });
        return format!("{value}\n");
    }
    let mut out = String::new();
    for warning in &expansion.warnings {
        out.push_str(&format!("# warning: {warning}\n"));
    }
    if !listed_used {
        out.push_str(
            "# these entries are verbatim tags only: a sync takes them as written and does not \
             list the source\n",
        );
    }
    out.push_str(&format!("selected ({}):\n", expansion.tags.len()));
    for tag in &expansion.tags {
        out.push_str(&format!("  {tag}\n"));
    }
    if listed_used {
        out.push_str(&format!("dropped ({}):\n", expansion.dropped.len()));
        let width = expansion
            .dropped
            .iter()
            .map(|d| d.tag.chars().count())
            .max()
            .unwrap_or(0);
        for dropped in &expansion.dropped {
            out.push_str(&format!(
                "  {:width$}  by {}\n",
                dropped.tag,
                dropped.by,
                width = width
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::commands::flags::strings;

    #[test]
    fn argument_forms() {
        let want = Args {
            filters: strings(&["semver: >=1.0.0", "keep: latest 2"]),
            json: true,
        };
        for form in [
            strings(&[
                "--filter",
                "semver: >=1.0.0",
                "--filter=keep: latest 2",
                "--json",
            ]),
            strings(&[
                "-filter=semver: >=1.0.0",
                "-json",
                "-filter",
                "keep: latest 2",
            ]),
        ] {
            assert_eq!(parse(&form), Ok(Some(want.clone())), "{form:?}");
        }
        assert_eq!(parse(&strings(&["-h"])), Ok(None));
        assert!(parse(&strings(&["--filter"])).is_err());
        assert!(parse(&strings(&["tags.txt"])).is_err());
        assert!(parse(&strings(&["--bogus"])).is_err());
    }

    #[test]
    fn reads_one_tag_per_line() {
        let input = b"1.0\n\n  1.1  \r\nlatest" as &[u8];
        assert_eq!(
            read_tags(input).unwrap(),
            strings(&["1.0", "1.1", "latest"])
        );
    }

    #[test]
    fn renders_selection_and_reasons() {
        let set = TagSet::parse(&strings(&["semver: >=1.1.0", "keep: latest 1"])).unwrap();
        let listed = strings(&["1.0.0", "1.1.0", "1.2.0", "latest"]);
        let text = render(&set, &listed, false);
        assert_eq!(
            text,
            "selected (1):\n  1.2.0\ndropped (3):\n  1.0.0   by semver: >=1.1.0\n  \
             1.1.0   by keep: latest 1\n  latest  by semver: >=1.1.0\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render(&set, &listed, true)).unwrap();
        assert_eq!(json["tags"], serde_json::json!(["1.2.0"]));
        assert_eq!(json["dropped"][1]["by"], "keep: latest 1");
        assert_eq!(json["listed"], true);
    }

    #[test]
    fn verbatim_only_entries_say_the_source_is_not_listed() {
        let set = TagSet::parse(&strings(&["1.0", "latest"])).unwrap();
        let text = render(&set, &strings(&["2.0"]), false);
        assert!(text.starts_with("# these entries are verbatim"), "{text}");
        assert!(text.contains("selected (2):\n  1.0\n  latest\n"), "{text}");
    }
}
