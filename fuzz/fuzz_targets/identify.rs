//! Request parsing and the decision, end to end: bytes -> `Value` -> `Identify::from_wire` ->
//! `decide`, with a fixed policy and clock. The same function runs on every file in
//! core/tests/fuzz_replay/identify/ in `cargo test -p dropfix-core`.
#![no_main]

use dropfix_core::{Identify, Policy, SecretKey, StrictMode, Value, decide};
use libfuzzer_sys::fuzz_target;

/// The clock the seed corpus is signed for (also in core/tests/fuzz_replay.rs).
const NOW: i64 = 1_732_406_400;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(call) = Identify::from_wire(&body) else {
        return;
    };
    // Two secrets: the rotation path (second key verifies) is exercised too.
    let secrets = [
        SecretKey::new("dfsk_fuzz_new"),
        SecretKey::new("dfsk_fuzz_old"),
    ];
    for strict in [StrictMode::Off, StrictMode::ReportOnly, StrictMode::Enforce] {
        for require_signed_claims in [false, true] {
            let policy = Policy {
                secrets: &secrets,
                strict,
                require_signed_claims,
            };
            let _ = decide(&policy, &call, NOW);
        }
    }
    // A validated call must survive its own wire form, as JSON text, unchanged: what the SDK
    // sends is what the server reads.
    let text = serde_json::to_vec(&call.to_wire()).expect("wire form serializes");
    let body = serde_json::from_slice::<Value>(&text).expect("wire form parses");
    let again = Identify::from_wire(&body).expect("wire form validates");
    assert_eq!(again, call);
});
