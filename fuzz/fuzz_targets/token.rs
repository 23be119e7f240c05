//! Signed-claims token verification on arbitrary input: `claims::verify` must return a
//! `Rejection` for anything that is not a valid token, never panic.
//!
//! Each input is used twice: as the whole token (header parsing, segment shapes, the MAC check),
//! and as the claims payload of a token correctly signed with the first key, so that the claim
//! parsing and time checks behind the MAC are reached as well; a random token almost never gets
//! past the MAC.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dropfix_core::{SecretKey, claims};
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const NOW: i64 = 1_732_406_400;
const KEYS: [&str; 2] = ["dfsk_fuzz_new", "dfsk_fuzz_old"];

fn check(secrets: &[SecretKey], token: &str) {
    if let Ok((claims, key_index)) = claims::verify(secrets, token, NOW) {
        // Re-signing verified claims with the key that verified them verifies too.
        assert!(key_index < secrets.len());
        let resigned = claims::sign(&secrets[key_index], &claims);
        assert_eq!(
            claims::verify(secrets, &resigned, NOW),
            Ok((claims, key_index))
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let secrets = KEYS.map(SecretKey::new);
    if let Ok(token) = std::str::from_utf8(data) {
        check(&secrets, token);
    }
    let mut token = String::from("eyJhbGciOiJIUzI1NiJ9."); // {"alg":"HS256"}
    URL_SAFE_NO_PAD.encode_string(data, &mut token);
    // Keyed like a backend's JWT library: with the claims key string of the first secret.
    let claims_key = SecretKey::new(KEYS[0]).expose_claims_key().to_owned();
    let mut mac = Hmac::<Sha256>::new_from_slice(claims_key.as_bytes()).unwrap();
    mac.update(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
    check(&secrets, &token);
});
