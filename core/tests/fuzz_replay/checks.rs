//! The checks of the two fuzz targets, written once: `fuzz/fuzz_targets/{identify,token}.rs` run
//! them on what libFuzzer generates, and `core/tests/fuzz_replay.rs` on every saved input, so a
//! crasher is replayed through exactly the code that found it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dropfix_core::{Identify, Policy, SecretKey, StrictMode, Value, claims, decide};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The clock both targets use; the seed inputs are signed for it.
const NOW: i64 = 1_732_406_400;

/// Two secrets: the rotation path (the second key verifies) is exercised too.
const KEYS: [&str; 2] = ["dfsk_fuzz_new", "dfsk_fuzz_old"];

/// The `identify` target: bytes -> `Value` -> `Identify::from_wire` -> `decide` under every
/// policy, then the validated call's own wire form must validate to the same call. Returns
/// whether the input validated.
pub fn identify(data: &[u8]) -> bool {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    let Ok(call) = Identify::from_wire(&body) else {
        return false;
    };
    let secrets = KEYS.map(SecretKey::new);
    for strict in [StrictMode::Off, StrictMode::ReportOnly, StrictMode::Enforce] {
        for require_signed_claims in [false, true] {
            let policy = Policy {
                secrets: &secrets,
                strict,
                require_signed_claims,
                issuers: dropfix_core::NO_ISSUERS,
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
    true
}

/// The `token` target: the input as a whole token, then as the claims payload of a token signed
/// with the first key, so that the claim parsing and time checks behind the MAC are reached as
/// well (a random token almost never gets past the MAC). Returns whether the input verified as a
/// whole token.
pub fn token(data: &[u8]) -> bool {
    let secrets = KEYS.map(SecretKey::new);
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

/// `claims::verify` on one token; verified claims re-signed with the key that verified them must
/// verify to the same claims. Returns whether the token verified.
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
