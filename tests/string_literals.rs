//! String literals of `src/` say what they mean: a line break inside a literal is escaped with
//! `\` (so the next line's indentation is not part of the text), unless the literal opens with
//! `"\` and a line break (a text block laid out as printed, such as a usage text); and no run of
//! four or more spaces follows a word inside a literal, the trace of a continuation joined
//! without its `\` (`name the          parent directory`).

#[path = "support/sources.rs"]
mod sources;

/// Spaces in a row after a word that count as the trace of a lost continuation.
const MAX_SPACES_AFTER_WORD: usize = 3;

#[test]
fn line_breaks_inside_string_literals_are_escaped() {
    let mut problems = Vec::new();
    for (name, text) in sources::texts_of_src(20) {
        for (line, what) in literal_faults(&text) {
            problems.push(format!("src/{name}:{line}: {what}"));
        }
    }
    assert!(
        problems.is_empty(),
        "end a string literal's line with `\\` to continue it on the next line:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_scan_finds_unescaped_breaks_and_joined_continuations() {
    let text = concat!(
        "// \"a comment is no string\n",
        "let a = \"one \\\n         two\";\n",
        "let b = \"one\n         two\";\n",
        "let c = \"\\\nUsage:\n  dregsy -config=FILE\n\";\n",
        "let d = r#\"raw\n  text\"#;\n",
        "let e = 'x'; let f = '\"'; fn g<'a>(x: &'a str) {}\n",
        "let h = \"name the          parent\";\n",
        "let i = \"a\\n    indented yaml\";\n",
        "let j = b\"bytes\nbroken\";\n",
    );
    assert_eq!(
        literal_faults(text),
        [
            (
                4,
                "a line break inside a string literal without `\\`".to_string()
            ),
            (
                13,
                "10 spaces in a row after a word inside a string literal".to_string()
            ),
            (
                15,
                "a line break inside a string literal without `\\`".to_string()
            ),
        ]
    );
}

/// The faults of the string literals in Rust source `text`, each with its 1-based line.
/// Comments, raw strings and character literals are skipped.
fn literal_faults(text: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut faults = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let word_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&chars, i) {
            line += chars[i..end].iter().filter(|&&c| c == '\n').count();
            i = end;
        } else if c == '"' || (c == 'b' && next == Some('"')) {
            let starts_word = i == 0 || !word_char(chars[i - 1]);
            if c == 'b' && !starts_word {
                i += 1;
                continue;
            }
            i = string_end(&chars, i + usize::from(c == 'b'), &mut line, &mut faults);
        } else if c == '\'' {
            // A character literal ('x', '\n', '"'), or a lifetime ('a), which has no end quote.
            i += match (next, chars.get(i + 2)) {
                (Some('\\'), _) => chars[i + 2..]
                    .iter()
                    .position(|&c| c == '\'')
                    .map_or(chars.len() - i, |p| p + 3),
                (Some(_), Some('\'')) => 3,
                _ => 1,
            };
        } else {
            i += 1;
        }
    }
    faults
}

/// The index after a raw string (`r"…"`, `r#"…"#`, `br"…"`) starting at `i`, if one does.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let mut j = i + usize::from(chars[i] == 'b');
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"'
            && chars[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

/// Scans the normal string literal whose opening quote is at `open`, noting its faults;
/// returns the index after its closing quote.
fn string_end(
    chars: &[char],
    open: usize,
    line: &mut usize,
    faults: &mut Vec<(usize, String)>,
) -> usize {
    // `"\` and a line break: a text block, laid out as printed.
    let block = chars.get(open + 1) == Some(&'\\') && chars.get(open + 2) == Some(&'\n');
    let mut i = open + 1;
    while i < chars.len() && chars[i] != '"' {
        match chars[i] {
            '\\' => {
                *line += usize::from(chars.get(i + 1) == Some(&'\n'));
                i += 2;
            }
            '\n' => {
                if !block {
                    faults.push((
                        *line,
                        "a line break inside a string literal without `\\`".to_string(),
                    ));
                }
                *line += 1;
                i += 1;
            }
            c if c != ' ' && chars.get(i + 1) == Some(&' ') => {
                let spaces = chars[i + 1..].iter().take_while(|&&c| c == ' ').count();
                let after_escape = i > open + 1 && chars[i - 1] == '\\';
                if spaces > MAX_SPACES_AFTER_WORD && !after_escape && !block {
                    faults.push((
                        *line,
                        format!("{spaces} spaces in a row after a word inside a string literal"),
                    ));
                }
                i += 1 + spaces;
            }
            _ => i += 1,
        }
    }
    i + 1
}
