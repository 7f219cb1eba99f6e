//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets' own entry
//! points, so every input that once mattered (seeds, and crashes found by fuzzing) keeps
//! parsing without a panic. CI replays; it never fuzzes (README.md, "Fuzzing").

use std::path::Path;

#[test]
fn every_corpus_input_parses_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in dregsy::fuzzing::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus of fuzz target '{name}' at {}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .collect();
        inputs.sort();
        assert!(
            !inputs.is_empty(),
            "fuzz target '{name}' has no corpus in {}",
            dir.display()
        );
        for input in inputs {
            let data = std::fs::read(&input).expect("read corpus input");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target '{name}' panics on {}",
                input.display()
            );
        }
    }
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for (name, _) in dregsy::fuzzing::TARGETS {
        let file = root.join(format!("{name}.rs"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("dregsy::fuzzing::{name}(data)")),
            "{} does not call dregsy::fuzzing::{name}",
            file.display()
        );
    }
}
