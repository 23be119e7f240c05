//! Request parsing and the decision, end to end: bytes -> `Value` -> `Identify::from_wire` ->
//! `decide`, with a fixed policy and clock. The check is core/tests/fuzz_replay/checks.rs, which
//! also runs on every file in core/tests/fuzz_replay/identify/ in `cargo test -p dropfix-core`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/fuzz_replay/checks.rs"]
#[allow(dead_code, reason = "the token target's check is in the same file")]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::identify(data);
});
