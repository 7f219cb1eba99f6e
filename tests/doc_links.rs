//! Citations of the documentation hold: every `docs/<page>.md#<anchor>` in the code, the tests,
//! the README and the docs names a heading that exists, and nothing cites a document that is
//! not in the repository (the original's specification, design or testing notes).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Citations of documents outside the repository; built from pieces so this file does not
/// match itself.
fn foreign_citations() -> Vec<String> {
    vec![
        format!("{}{} §", "SP", "EC"),
        format!("{}{} D", "SP", "EC"),
        format!("{}.md", "DESIGN"),
        format!("{}.md", "TESTING"),
    ]
}

#[test]
fn cited_doc_anchors_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let anchors = doc_anchors(&root.join("docs"));
    assert!(
        anchors.contains_key("behaviour.md") && anchors.contains_key("configuration.md"),
        "docs/behaviour.md and docs/configuration.md must exist"
    );
    let mut broken = Vec::new();
    let mut cited = 0;
    for file in sources(root) {
        let text = read(&file);
        for (line, page, anchor) in citations(&text) {
            cited += 1;
            let known = anchors.get(&page).is_some_and(|a| a.contains(&anchor));
            if !known {
                broken.push(format!(
                    "{}:{line}: {page}#{anchor}",
                    file.strip_prefix(root).unwrap_or(&file).display()
                ));
            }
        }
    }
    assert!(
        cited > 20,
        "found only {cited} citations: is the scan working?"
    );
    assert!(
        broken.is_empty(),
        "these cite a heading that does not exist (headings: docs/*.md):\n{}",
        broken.join("\n")
    );
}

#[test]
fn nothing_cites_documents_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let foreign = foreign_citations();
    let mut found = Vec::new();
    for file in sources(root) {
        for (index, line) in read(&file).lines().enumerate() {
            if foreign.iter().any(|f| line.contains(f.as_str())) {
                found.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(root).unwrap_or(&file).display(),
                    index + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "cite docs/behaviour.md, docs/configuration.md or docs/compatibility.md instead, or say \
         the rule itself:\n{}",
        found.join("\n")
    );
}

#[test]
fn anchors_follow_github_rules() {
    assert_eq!(
        anchor("The native engine (`native`)"),
        "the-native-engine-native"
    );
    assert_eq!(
        anchor("HTTP: what dregsy requires of a registry, and what it tolerates"),
        "http-what-dregsy-requires-of-a-registry-and-what-it-tolerates"
    );
    assert_eq!(
        citations("see docs/behaviour.md#tag-filters and [x](configuration.md#top-level)."),
        [
            (1, "behaviour.md".to_string(), "tag-filters".to_string()),
            (1, "configuration.md".to_string(), "top-level".to_string()),
        ]
    );
}

/// The anchors of every page under `docs/`, by file name.
fn doc_anchors(docs: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut pages = BTreeMap::new();
    for file in files(docs, "md") {
        let mut in_code = false;
        let mut anchors = BTreeSet::new();
        for line in read(&file).lines() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            } else if !in_code && line.starts_with('#') {
                anchors.insert(anchor(line.trim_start_matches('#').trim()));
            }
        }
        let name = file.file_name().expect("a file name").to_string_lossy();
        pages.insert(name.to_string(), anchors);
    }
    pages
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `(line, page, anchor)` for every `<page>.md#<anchor>` of the docs pages in `text`.
fn citations(text: &str) -> Vec<(usize, String, String)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find(".md#") {
            let page_start = rest[..at]
                .rfind(|c: char| !(c.is_ascii_lowercase() || c == '_' || c == '-'))
                .map_or(0, |i| i + 1);
            let page = format!("{}.md", &rest[page_start..at]);
            let after = &rest[at + ".md#".len()..];
            let anchor: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                .collect();
            let is_docs_page = ["behaviour.md", "configuration.md", "compatibility.md"]
                .contains(&page.as_str())
                || rest[..page_start].ends_with("docs/");
            if is_docs_page && !anchor.is_empty() {
                found.push((index + 1, page, anchor));
            }
            rest = after;
        }
    }
    found
}

/// The Rust sources, the tests, the README and the docs.
fn sources(root: &Path) -> Vec<PathBuf> {
    let mut all = files(&root.join("src"), "rs");
    all.extend(files(&root.join("tests"), "rs"));
    all.extend(files(&root.join("docs"), "md"));
    all.push(root.join("README.md"));
    all
}

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(files(&path, extension));
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
