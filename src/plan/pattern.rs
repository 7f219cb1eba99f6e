//! Regular expressions as the configuration uses them: the `-run` task filter, `from: regex:`,
//! `tags: regex:` and `tags: keep:`.
//!
//! The original anchored expressions textually (`^` + RE + `$`), which only half-anchors an
//! alternation such as `a|b`. We match the whole string instead (docs/compatibility.md): the
//! expression is compiled as `^(?:RE)$`, so an expression that already starts with `^` or ends with
//! `$` behaves exactly as before, and `a|b` means "exactly `a` or exactly `b`".
//!
//! Error texts imitate Go's `regexp` package (``error parsing regexp: <problem>: `<expr>` ``),
//! because they end up inside messages such as
//! `'from' uses invalid regular expression: <err>` that users of the original may grep for (the
//! expression is quoted once, inside `<err>`).

use regex::Regex;

/// A whole-string regular expression, optionally inverted.
///
/// One type serves every place the configuration takes a regex, so that all of them anchor the
/// same way and report errors the same way.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The expression as the user wrote it (trimmed, with a leading `!` when inverted), for logs.
    source: String,
    inverted: bool,
    regex: Regex,
}

impl Pattern {
    /// Builds a pattern the way the original's `util.NewRegex` does, with whole-string anchoring:
    /// surrounding whitespace is trimmed and a leading `!` inverts the match.
    ///
    /// This is the constructor for `-run`, `regex:` and `keep:`, where the original trimmed and
    /// honoured `!`.
    ///
    /// # Errors
    ///
    /// When the expression does not compile; the text reads like Go's `regexp` errors.
    pub fn new(expr: &str) -> Result<Pattern, String> {
        let source = expr.trim();
        let (inverted, body) = match source.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, source),
        };
        Ok(Pattern {
            source: source.to_string(),
            inverted,
            regex: compile_whole(body)?,
        })
    }

    /// Builds a pattern without trimming and without treating `!` specially.
    ///
    /// `from: regex:` went through the original's `CompileRegex` directly, so a leading space or
    /// `!` there is part of the expression (and, since repository names contain neither, such an
    /// expression matches nothing). We keep that, and only change the anchoring.
    ///
    /// # Errors
    ///
    /// As [`Pattern::new`].
    pub fn anchored(expr: &str) -> Result<Pattern, String> {
        Ok(Pattern {
            source: expr.to_string(),
            inverted: false,
            regex: compile_whole(expr)?,
        })
    }

    /// Whether `s` as a whole matches (or, for an inverted pattern, does not match).
    pub fn matches(&self, s: &str) -> bool {
        self.regex.is_match(s) != self.inverted
    }

    /// The expression as written (trimmed, including a leading `!`), so logs and plan
    /// explanations can show the user their own filter.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether a leading `!` inverted this pattern; lets callers explain a match or non-match.
    pub fn is_inverted(&self) -> bool {
        self.inverted
    }
}

/// Compiles an unanchored expression with Go-style error text.
///
/// The `to: regex:RE,replacement` transform is deliberately not anchored (it is a search and
/// replace), but its errors must read like the other regex errors.
///
/// # Errors
///
/// As [`Pattern::new`].
pub fn compile(expr: &str) -> Result<Regex, String> {
    Regex::new(expr).map_err(|e| go_error(expr, &e))
}

/// Compiles `expr` so that it must match the whole input.
fn compile_whole(expr: &str) -> Result<Regex, String> {
    // Validate the expression on its own first: wrapped in a group, an unbalanced `)` such as
    // in `a)|(b` would pair up with our own parentheses and be accepted.
    compile(expr)?;
    Regex::new(&format!("^(?:{expr})$")).map_err(|e| go_error(expr, &e))
}

/// Renders a compile error the way Go's `regexp.Compile` words it, where a counterpart exists.
///
/// Go names the problem and quotes an expression fragment; we quote the whole expression the
/// user wrote, because the fragment boundaries of the two engines differ.
fn go_error(expr: &str, err: &regex::Error) -> String {
    let problem = match err {
        regex::Error::Syntax(msg) => {
            let detail = msg
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or_else(|| msg.trim());
            go_problem(detail).unwrap_or(detail).to_string()
        }
        regex::Error::CompiledTooBig(_) => "expression too large".to_string(),
        other => other.to_string(),
    };
    format!("error parsing regexp: {problem}: `{expr}`")
}

/// Maps the Rust engine's description of a syntax error to the words Go's `regexp/syntax` uses.
fn go_problem(detail: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("unclosed group", "missing closing )"),
        ("unopened group", "unexpected )"),
        ("unclosed character class", "missing closing ]"),
        (
            "invalid character class range",
            "invalid character class range",
        ),
        ("invalid range boundary", "invalid character class range"),
        (
            "invalid Unicode character class",
            "invalid character class range",
        ),
        ("Unicode property", "invalid character class range"),
        (
            "repetition operator missing expression",
            "missing argument to repetition operator",
        ),
        (
            "incomplete escape sequence",
            "trailing backslash at end of expression",
        ),
        ("unrecognized escape sequence", "invalid escape sequence"),
        ("invalid escape sequence", "invalid escape sequence"),
        (
            "backreferences are not supported",
            "invalid escape sequence",
        ),
        ("look-around", "invalid or unsupported Perl syntax"),
        ("flag", "invalid or unsupported Perl syntax"),
        ("capture group", "invalid named capture"),
        ("invalid repetition count range", "invalid repeat count"),
        ("nested parentheses", "expression nests too deeply"),
    ];
    TABLE
        .iter()
        .find(|(rust, _)| detail.contains(rust))
        .map(|(_, go)| *go)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_matching(filter: &str) -> Vec<&'static str> {
        let names = ["task-a", "task-abc", "task-b", "xtask-b", "other", "task"];
        let p = Pattern::new(filter).expect("valid filter");
        names.into_iter().filter(|n| p.matches(n)).collect()
    }

    #[test]
    fn run_filter_table_with_whole_string_anchoring() {
        assert_eq!(names_matching("task-a"), ["task-a"]);
        // The original matched task-abc and xtask-b too (`^task-a|task-b$`); whole-name matching
        // does not.
        assert_eq!(names_matching("task-a|task-b"), ["task-a", "task-b"]);
        assert_eq!(
            names_matching("!task-a"),
            ["task-abc", "task-b", "xtask-b", "other", "task"]
        );
        assert_eq!(names_matching(" task-a "), ["task-a"]);
        assert_eq!(names_matching("^task"), ["task"]);
        assert_eq!(names_matching("task$"), ["task"]);
        assert_eq!(names_matching("^task$"), ["task"]);
        assert_eq!(names_matching("task-(a|b)"), ["task-a", "task-b"]);
        assert_eq!(
            names_matching(".*"),
            ["task-a", "task-abc", "task-b", "xtask-b", "other", "task"]
        );
    }

    #[test]
    fn inversion_and_empty_expressions() {
        let empty = Pattern::new("").expect("empty is valid");
        assert!(empty.matches(""));
        assert!(!empty.matches("x"));
        let not_empty = Pattern::new(" ! ").expect("valid");
        assert!(not_empty.is_inverted());
        assert!(!not_empty.matches(""));
        assert!(not_empty.matches("x"));
        // Only one leading '!' inverts; a second one is literal.
        let p = Pattern::new("!!a").expect("valid");
        assert!(p.matches("a"));
        assert!(!p.matches("!a"));
        assert_eq!(p.as_str(), "!!a");
    }

    #[test]
    fn anchored_keeps_spaces_and_bang_literal() {
        let p = Pattern::anchored(" my.*").expect("valid");
        assert!(!p.matches("myproject"));
        assert!(p.matches(" myproject"));
        let p = Pattern::anchored("!my").expect("valid");
        assert!(!p.is_inverted());
        assert!(p.matches("!my"));
        assert!(!p.matches("other"));
        assert_eq!(p.as_str(), "!my");
    }

    #[test]
    fn unbalanced_parenthesis_is_not_hidden_by_the_wrapping_group() {
        let err = Pattern::new("a)|(b").expect_err("must fail");
        assert_eq!(err, "error parsing regexp: unexpected ): `a)|(b`");
    }

    #[test]
    fn go_like_error_texts() {
        let cases = [
            ("(abc", "error parsing regexp: missing closing ): `(abc`"),
            ("[abc", "error parsing regexp: missing closing ]: `[abc`"),
            (
                "*a",
                "error parsing regexp: missing argument to repetition operator: `*a`",
            ),
            (
                "a\\",
                "error parsing regexp: trailing backslash at end of expression: `a\\`",
            ),
            (
                "[z-a]",
                "error parsing regexp: invalid character class range: `[z-a]`",
            ),
            (
                "\\1",
                "error parsing regexp: invalid escape sequence: `\\1`",
            ),
            (
                "(?=a)",
                "error parsing regexp: invalid or unsupported Perl syntax: `(?=a)`",
            ),
            (
                "a{3,1}",
                "error parsing regexp: invalid repeat count: `a{3,1}`",
            ),
        ];
        for (expr, want) in cases {
            assert_eq!(Pattern::new(expr).expect_err(expr), want, "{expr}");
        }
        // The '!' is not part of the quoted expression, as in the original.
        assert_eq!(
            Pattern::new("!(x").expect_err("bad"),
            "error parsing regexp: missing closing ): `(x`"
        );
        assert_eq!(
            compile("(").expect_err("bad"),
            "error parsing regexp: missing closing ): `(`"
        );
    }

    #[test]
    fn unanchored_compile_searches() {
        let re = compile("lib").expect("valid");
        assert!(re.is_match("/library/busybox"));
    }
}
