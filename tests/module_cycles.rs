//! No top-level module of `src/` may depend on one that depends back on it, directly or
//! through others: data flows one way (config → plan → copy → report, see `src/lib.rs`).
//!
//! The dependencies are read from the source: every `crate::<module>` path outside comments,
//! string literals and `#[cfg(test)]` modules, including grouped `use crate::{a, b::c}`. Every
//! elementary cycle between top-level modules is listed, and there must be none: break a new
//! one by moving the shared type to the lower module, or by passing a value instead of
//! reaching up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[path = "support/sources.rs"]
mod sources;

/// The most cycles enumerated before giving up (a dense graph has exponentially many).
const MAX_CYCLES: usize = 10_000;

#[test]
fn no_dependency_cycles_between_modules() {
    let src = sources::src_dir();
    let graph = dependency_graph(&src);
    assert!(
        graph.len() > 5,
        "found only {} modules under {}: is the source layout as expected?",
        graph.len(),
        src.display()
    );
    let found = cycles(&graph);
    let mut problems = String::new();
    for cycle in &found {
        problems.push_str(&format!("dependency cycle: {cycle}\n"));
    }
    assert!(problems.is_empty(), "{problems}");
}

#[test]
fn the_reader_sees_grouped_paths_and_skips_comments_strings_and_tests() {
    let text = r##"
        //! crate::docs_only
        use crate::{alpha, beta::{Gamma, delta::E}};
        /* crate::block_comment */
        fn f() -> u8 { let _ = "crate::in_string"; let _ = r#"crate::raw"#; let _c = '{'; crate::zeta::g() }
        fn l<'a>(x: &'a str) -> &'a str { x }
        #[cfg(test)]
        mod tests { use crate::test_only; }
        fn after() { crate::omega::h(); }
    "##;
    let deps = dependencies(text, "crate::");
    let want: BTreeSet<String> = ["alpha", "beta", "zeta", "omega"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(deps, want);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c", "a"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, deps)| (m.to_string(), deps.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&graph), ["a -> b -> a", "a -> b -> c -> a"]);
}

/// Each top-level module (`src/<m>.rs` or `src/<m>/…`) and the other top-level modules it uses.
fn dependency_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources::rust_files_of_src(6) {
        let relative = file.strip_prefix(src).expect("file under src");
        let first = relative
            .components()
            .next()
            .expect("a path component")
            .as_os_str()
            .to_string_lossy()
            .to_string();
        let module = first.strip_suffix(".rs").unwrap_or(&first).to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let mut deps = dependencies(&text, "crate::");
        // In `src/<m>.rs`, `super::` is the crate root too.
        if relative.components().count() == 1 {
            deps.extend(dependencies(&text, "super::"));
        }
        graph.entry(module.clone()).or_default().extend(deps);
    }
    // Only modules count (`crate::VERSION` is an item of the root); a module's own paths too.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (module, deps) in graph.iter_mut() {
        deps.retain(|d| d != module && modules.contains(d));
    }
    graph
}

/// The names a source file uses as `<root><name>` (`root` is `crate::`, or `super::` in a
/// file at the top of `src/`), also in groups: `crate::{a, b::c}` gives `a` and `b`.
fn dependencies(text: &str, root: &str) -> BTreeSet<String> {
    let code = code_only(text);
    let mut deps = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find(root) {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + root.len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}}`: the first identifier of each top-level item.
            let mut depth = 0usize;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[i + 1..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        deps.insert(identifier(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = identifier(rest);
            if !name.is_empty() {
                deps.insert(name);
            }
        }
    }
    deps
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The text with comments, string and character literals blanked out and `#[cfg(test)]`
/// modules removed.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |end| end + 2);
        } else if let Some(len) = raw_string_len(rest) {
            i += len;
            out.push_str("\"\"");
        } else if rest.starts_with('"') {
            i += quoted_len(rest, '"');
            out.push_str("\"\"");
        } else if rest.starts_with('\'') && is_char_literal(rest) {
            i += quoted_len(rest, '\'');
            out.push_str("' '");
        } else if rest.starts_with("#[cfg(test)]") {
            i += test_item_len(rest);
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The length of a raw string literal (`r"…"`, `r#"…"#`, `br"…"`) at the start of `s`.
fn raw_string_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("br").or_else(|| s.strip_prefix('r'))?;
    let hashes = body.len() - body.trim_start_matches('#').len();
    let body = body[hashes..].strip_prefix('"')?;
    let closing = format!("\"{}", "#".repeat(hashes));
    let end = body
        .find(&closing)
        .map_or(body.len(), |e| e + closing.len());
    Some(s.len() - body.len() + end)
}

/// The length of a `"…"` or `'…'` literal at the start of `s`, escapes included.
fn quoted_len(s: &str, quote: char) -> usize {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == quote => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// Whether a `'` starts a character literal (`'x'`, `'\n'`) rather than a lifetime (`'a`).
fn is_char_literal(s: &str) -> bool {
    let mut chars = s.chars().skip(1);
    matches!(
        (chars.next(), chars.next()),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// The length of a `#[cfg(test)]` item at the start of `s`: through its balanced `{…}`, or
/// through its `;` when it has no body.
fn test_item_len(s: &str) -> usize {
    let code = code_only_shallow(s);
    let mut depth = 0usize;
    for (i, c) in code.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            ';' if depth == 0 => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// `s` with comments and literals replaced by spaces of the same length, so that brace
/// counting sees only code and positions stay those of `s`.
fn code_only_shallow(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let skip = if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            rest.find("*/").map_or(rest.len(), |end| end + 2)
        } else if let Some(len) = raw_string_len(rest) {
            len
        } else if rest.starts_with('"') {
            quoted_len(rest, '"')
        } else if rest.starts_with('\'') && is_char_literal(rest) {
            quoted_len(rest, '\'')
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
            continue;
        };
        out.extend(std::iter::repeat_n(' ', skip));
        i += skip;
    }
    out
}

/// Every elementary cycle, each written from its smallest module (`a -> b -> a`), sorted.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for start in graph.keys() {
        let mut path = vec![start.as_str()];
        walk(graph, start, &mut path, &mut found);
        assert!(
            found.len() <= MAX_CYCLES,
            "more than {MAX_CYCLES} dependency cycles: the modules depend on each other wholesale"
        );
    }
    found.sort();
    found
}

/// Extends `path` (which starts at its smallest module) through modules greater than the
/// start, recording every way back to the start.
fn walk<'g>(
    graph: &'g BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<&'g str>,
    found: &mut Vec<String>,
) {
    let last = *path.last().expect("a non-empty path");
    for next in graph.get(last).into_iter().flatten() {
        if next == start {
            found.push(format!("{} -> {start}", path.join(" -> ")));
        } else if next.as_str() > start && !path.contains(&next.as_str()) {
            path.push(next);
            walk(graph, start, path, found);
            path.pop();
        }
        if found.len() > MAX_CYCLES {
            return;
        }
    }
}
