//! Functions and files of `src/` stay short enough to read: no function over
//! [`MAX_FUNCTION_LINES`] lines, and no file with more than [`MAX_FILE_CODE_LINES`] lines of code
//! before its `#[cfg(test)]` module (blank and comment-only lines do not count). A long
//! function is split by what it does; a long file by the jobs it holds.
//!
//! A function is measured from its `fn` line to the `}` at its own indentation, as `rustfmt`
//! lays code out.

#[path = "support/sources.rs"]
mod sources;

/// Functions and files over the limits that are still to be split, as `path` (the file) or
/// `path fn name`. This list may only shrink: an entry that is within the limits fails the
/// test too, so that it is removed.
const NOT_SPLIT_YET: &[&str] = &[];

/// The most lines a function may span, signature and closing brace included.
const MAX_FUNCTION_LINES: usize = 80;

/// The most lines of code a file may hold before its tests.
const MAX_FILE_CODE_LINES: usize = 600;

#[test]
fn functions_and_files_of_src_stay_short() {
    let mut problems = Vec::new();
    let mut still_long = Vec::new();
    for (name, text) in sources::texts_of_src(20) {
        for (key, problem) in long_items(&name, &text) {
            if NOT_SPLIT_YET.contains(&key.as_str()) {
                still_long.push(key);
            } else {
                problems.push(problem);
            }
        }
    }
    for listed in NOT_SPLIT_YET {
        if !still_long.iter().any(|k| k == listed) {
            problems.push(format!(
                "{listed} is within the limits now: remove it from NOT_SPLIT_YET in {}",
                file!()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "split these by what they do:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_measure_sees_functions_and_code_lines() {
    let body = "    let x = 1;\n".repeat(MAX_FUNCTION_LINES);
    let text = format!(
        "// a comment\n\npub async fn long() {{\n{body}}}\n\nfn short() {{\n    x\n}}\n\
         fn declared();\n#[cfg(test)]\nmod tests {{\n    fn ignored() {{\n{body}    }}\n}}\n"
    );
    let found = long_items("f.rs", &text);
    assert_eq!(
        found,
        [(
            "f.rs fn long".to_string(),
            format!(
                "src/f.rs:3 fn long spans {} lines (at most {MAX_FUNCTION_LINES})",
                MAX_FUNCTION_LINES + 2
            )
        )]
    );
    let code = "let x = 1;\n// comment\n\n".repeat(MAX_FILE_CODE_LINES + 1);
    assert_eq!(
        long_items("g.rs", &code),
        [(
            "g.rs".to_string(),
            format!(
                "src/g.rs has {} lines of code before its tests (at most {MAX_FILE_CODE_LINES})",
                MAX_FILE_CODE_LINES + 1
            )
        )]
    );
}

/// The functions over the limit and the file itself when over its limit: each as its key
/// (`path` or `path fn name`, as [`NOT_SPLIT_YET`] lists them) and a line saying what is long.
fn long_items(name: &str, text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.trim_start().starts_with("#[cfg(test)]"))
        .unwrap_or(lines.len());
    let lines = &lines[..end];
    let mut found = Vec::new();
    let code = lines
        .iter()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
        .count();
    if code > MAX_FILE_CODE_LINES {
        found.push((
            name.to_string(),
            format!(
                "src/{name} has {code} lines of code before its tests (at most {MAX_FILE_CODE_LINES})"
            ),
        ));
    }
    let mut i = 0;
    while i < lines.len() {
        let Some((indent, function)) = function_start(lines[i]) else {
            i += 1;
            continue;
        };
        // The signature ends at the line that opens the body, or at `;` (no body).
        let mut open = i;
        while open < lines.len()
            && !lines[open].trim_end().ends_with('{')
            && !lines[open].trim_end().ends_with(';')
        {
            open += 1;
        }
        if open >= lines.len() || lines[open].trim_end().ends_with(';') {
            i = open + 1;
            continue;
        }
        let closing = format!("{indent}}}");
        let close = (open + 1..lines.len())
            .find(|&k| lines[k] == closing)
            .unwrap_or(lines.len() - 1);
        let span = close - i + 1;
        if span > MAX_FUNCTION_LINES {
            found.push((
                format!("{name} fn {function}"),
                format!(
                    "src/{name}:{} fn {function} spans {span} lines (at most {MAX_FUNCTION_LINES})",
                    i + 1
                ),
            ));
        }
        i = close + 1;
    }
    found
}

/// The indentation and name of a function whose declaration starts on `line`.
fn function_start(line: &str) -> Option<(&str, &str)> {
    let code = line.trim_start();
    let indent = &line[..line.len() - code.len()];
    let mut words = code.split_whitespace().peekable();
    // Qualifiers before `fn`.
    while words
        .next_if(|w| {
            *w == "pub"
                || w.starts_with("pub(")
                || matches!(*w, "async" | "const" | "unsafe" | "extern" | "\"C\"")
        })
        .is_some()
    {}
    if words.next()? != "fn" {
        return None;
    }
    let name = words.next()?;
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    (end > 0).then(|| (indent, &name[..end]))
}
