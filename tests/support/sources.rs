//! The source files of the crate, for the tests that read them (module cycles, code shape,
//! string literals).
//! Included with `#[path]` by those tests alone, so they need none of the rest of `support`.

use std::path::{Path, PathBuf};

/// Every `.rs` file below `src/`, sorted, after checking that the layout is as expected (at
/// least `min_files` of them), so a moved tree cannot make a check pass on nothing.
pub fn rust_files_of_src(min_files: usize) -> Vec<PathBuf> {
    let src = src_dir();
    let files = rust_files(&src);
    assert!(
        files.len() >= min_files,
        "found only {} files under {}: is the source layout as expected?",
        files.len(),
        src.display()
    );
    files
}

/// Every `.rs` file below `src/` as its path relative to `src/` and its text, sorted, with the
/// check of [`rust_files_of_src`].
// Not every test including this file reads texts (module_cycles walks paths).
#[allow(dead_code)]
pub fn texts_of_src(min_files: usize) -> Vec<(String, String)> {
    let src = src_dir();
    rust_files_of_src(min_files)
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            let name = file
                .strip_prefix(&src)
                .unwrap_or(&file)
                .display()
                .to_string();
            (name, text)
        })
        .collect()
}

/// The crate's `src/`.
pub fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}
