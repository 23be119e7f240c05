//! Replays every saved fuzz input as an ordinary test.
//!
//! `fuzz/` (cargo-fuzz, not part of the workspace) has two targets; the inputs worth keeping
//! (crashers, plus hand-written seeds covering every decision-table row) live in
//! `core/tests/fuzz_replay/{identify,token}/`. This test runs each of them through the same
//! checks as the fuzz targets, so a crasher found once stays fixed without libFuzzer or nightly
//! features. Keep the two bodies below in step with `fuzz/fuzz_targets/*.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dropfix_core::{Identify, Policy, SecretKey, StrictMode, Value, claims, decide};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The clock both fuzz targets use; the seed inputs are signed for it.
const NOW: i64 = 1_732_406_400;

const KEYS: [&str; 2] = ["dfsk_fuzz_new", "dfsk_fuzz_old"];

fn secrets() -> [SecretKey; 2] {
    KEYS.map(SecretKey::new)
}

/// Body of `fuzz/fuzz_targets/identify.rs`. Returns whether the input validated.
fn identify(data: &[u8]) -> bool {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    let Ok(call) = Identify::from_wire(&body) else {
        return false;
    };
    let secrets = secrets();
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
    let text = serde_json::to_vec(&call.to_wire()).expect("wire form serializes");
    let body = serde_json::from_slice::<Value>(&text).expect("wire form parses");
    let again = Identify::from_wire(&body).expect("wire form validates");
    assert_eq!(again, call);
    true
}

fn check_token(secrets: &[SecretKey], token: &str) -> bool {
    let verified = claims::verify(secrets, token, NOW);
    if let Ok((claims, key_index)) = &verified {
        assert!(*key_index < secrets.len());
        let resigned = claims::sign(&secrets[*key_index], claims);
        assert_eq!(
            claims::verify(secrets, &resigned, NOW),
            Ok((claims.clone(), *key_index))
        );
    }
    verified.is_ok()
}

/// Body of `fuzz/fuzz_targets/token.rs`: the input as a whole token, then as the claims payload
/// of a token signed with the first key. Returns whether the input verified as a whole token.
fn token(data: &[u8]) -> bool {
    let secrets = secrets();
    let verified = std::str::from_utf8(data).is_ok_and(|t| check_token(&secrets, t));
    let mut token = String::from("eyJhbGciOiJIUzI1NiJ9."); // {"alg":"HS256"}
    URL_SAFE_NO_PAD.encode_string(data, &mut token);
    // Keyed like a backend's JWT library: with the claims key string of the first secret.
    let claims_key = SecretKey::new(KEYS[0]).expose_claims_key().to_owned();
    let mut mac = Hmac::<Sha256>::new_from_slice(claims_key.as_bytes()).unwrap();
    mac.update(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
    check_token(&secrets, &token);
    verified
}

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
    let (total, valid) = replay("identify", identify);
    // The seeds include valid calls (so decide() and the wire round trip run) and invalid ones.
    assert!(total >= 20, "only {total} identify inputs");
    assert!(valid >= 5 && valid < total, "{valid} of {total} validated");
}

#[test]
fn replays_token_inputs() {
    let (total, verified) = replay("token", token);
    assert!(total >= 8, "only {total} token inputs");
    assert!(
        verified >= 2 && verified < total,
        "{verified} of {total} verified"
    );
}
