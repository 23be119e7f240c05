//! Replays every saved fuzz input as an ordinary test.
//!
//! `fuzz/` (cargo-fuzz, not part of the workspace) has two targets; the inputs worth keeping
//! (crashers, plus hand-written seeds covering every decision-table row) live in
//! `core/tests/fuzz_replay/{identify,token}/`. This test runs each of them through the same
//! checks as the fuzz targets (`fuzz_replay/checks.rs`, which the targets include), so a crasher
//! found once stays fixed without libFuzzer or nightly features.

#[path = "fuzz_replay/checks.rs"]
mod checks;

use std::fs;
use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_replay")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every input, naming the file if it panics.
fn replay(target: &str, check: fn(&[u8]) -> bool) -> (usize, usize) {
    let files = inputs(target);
    let mut accepted = 0;
    for path in &files {
        let data = fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        match outcome {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => panic!(
                "fuzz input {} panics (see the message above)",
                path.display()
            ),
        }
    }
    (files.len(), accepted)
}

#[test]
fn replays_identify_inputs() {
    let (total, valid) = replay("identify", checks::identify);
    // The seeds include valid calls (so decide() and the wire round trip run) and invalid ones.
    assert!(total >= 20, "only {total} identify inputs");
    assert!(valid >= 5 && valid < total, "{valid} of {total} validated");
}

#[test]
fn replays_token_inputs() {
    let (total, verified) = replay("token", checks::token);
    assert!(total >= 8, "only {total} token inputs");
    assert!(
        verified >= 2 && verified < total,
        "{verified} of {total} verified"
    );
}
