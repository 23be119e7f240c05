//! Signed-claims token verification on arbitrary input: `claims::verify` must return a
//! `Rejection` for anything that is not a valid token, never panic.
//!
//! Each input is used twice: as the whole token (header parsing, segment shapes, the MAC check),
//! and as the claims payload of a token correctly signed with the first key, so that the claim
//! parsing and time checks behind the MAC are reached as well; a random token almost never gets
//! past the MAC. The check is core/tests/fuzz_replay/checks.rs, which also runs on every file in
//! core/tests/fuzz_replay/token/ in `cargo test -p dropfix-core`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/fuzz_replay/checks.rs"]
#[allow(dead_code, reason = "the identify target's check is in the same file")]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::token(data);
});
