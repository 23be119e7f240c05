//! Domain separation between the two signature forms (issue 17, finding 1).
//!
//! The seed form is an oracle: the customer's backend returns `hex(HMAC(secret, x))` for any user
//! id `x` an attacker can register. These tests play that attacker: a seed hash must never be a
//! valid signed-claims token (nor the reverse), and no seed-form signature of any string may
//! reveal the claims key. Before the claims key existed (tokens keyed with the secret itself) the
//! first two tests verified the forgery.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dropfix_core::claims::{self, Claims};
use dropfix_core::seed::{self, SeedCheck};
use dropfix_core::{
    CLAIMS_KEY_INFO, CLAIMS_KEY_PREFIX, CLAIMS_KEY_SALT, Decision, Identify, Policy, Rejection,
    SecretKey, StrictMode, Value, decide,
};
use proptest::prelude::*;

const NOW: i64 = 1_732_406_400;
const SECRET: &str = "dfsk_3f1c9a7be25d4c0e8a6b1d2f9e7c5a3b1d0f2e4c6a8b9d7f5e3c1a2b4d6f8e0a";

fn b64u(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// The attack of the issue: register `b64u(header).b64u(payload)` as a user id, have the backend
/// seed-sign it, append the base64url of the decoded hash.
fn forge_token_from_seed_oracle(secret: &SecretKey, sub: &str) -> String {
    let payload = format!(r#"{{"sub":"{sub}","iat":{NOW},"plan":"enterprise","mrr":99999}}"#);
    let signing_input = format!("{}.{}", b64u(r#"{"alg":"HS256"}"#), b64u(&payload));
    let hash = seed::sign(secret, &signing_input);
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(hex::decode(hash).unwrap())
    )
}

fn call(user_id: &str, signature: &str, signed_at: Option<i64>) -> Identify {
    let mut body =
        serde_json::json!({"app_id": "app_1", "user_id": user_id, "signature": signature});
    if let Some(t) = signed_at {
        body["signed_at"] = t.into();
    }
    Identify::from_wire(&serde_json::from_value::<Value>(body).unwrap()).unwrap()
}

#[test]
fn a_seed_hash_of_a_signing_input_is_not_a_token() {
    let secret = SecretKey::new(SECRET);
    let forged = forge_token_from_seed_oracle(&secret, "1001");
    assert!(claims::is_jws_form(&forged));
    assert_eq!(
        claims::verify(std::slice::from_ref(&secret), &forged, NOW),
        Err(Rejection::SignatureMismatch)
    );
    for (strict, require_signed_claims) in [
        (StrictMode::Enforce, true),
        (StrictMode::Enforce, false),
        (StrictMode::Off, false),
    ] {
        let secrets = [secret.clone()];
        let policy = Policy {
            secrets: &secrets,
            strict,
            require_signed_claims,
            issuers: dropfix_core::NO_ISSUERS,
        };
        assert_eq!(
            decide(&policy, &call("1001", &forged, None), NOW),
            Decision::Rejected(Rejection::SignatureMismatch),
            "{strict:?} {require_signed_claims}"
        );
    }
}

#[test]
fn a_tokens_signing_input_and_mac_are_not_a_seed_signature() {
    let secret = SecretKey::new(SECRET);
    let token = claims::sign(
        &secret,
        &Claims {
            sub: "42".into(),
            iat: NOW,
            ..Claims::default()
        },
    );
    let (signing_input, tag) = token.rsplit_once('.').unwrap();
    let hex_tag = hex::encode(URL_SAFE_NO_PAD.decode(tag).unwrap());
    assert_eq!(
        seed::verify(std::slice::from_ref(&secret), signing_input, &hex_tag),
        SeedCheck::Mismatch
    );
    let secrets = [secret];
    let policy = Policy {
        secrets: &secrets,
        strict: StrictMode::Off,
        require_signed_claims: false,
        issuers: dropfix_core::NO_ISSUERS,
    };
    assert_eq!(
        decide(&policy, &call(signing_input, &hex_tag, Some(NOW)), NOW),
        Decision::Rejected(Rejection::SignatureMismatch)
    );
}

#[test]
fn a_token_keyed_with_the_raw_secret_is_refused() {
    // What a backend that keeps signing tokens with DROPFIX_SECRET_KEY produces.
    let secret = SecretKey::new(SECRET);
    let signing_input = format!(
        "{}.{}",
        b64u(r#"{"alg":"HS256"}"#),
        b64u(&format!(r#"{{"sub":"42","iat":{NOW}}}"#))
    );
    let raw = hmac_sha256(SECRET.as_bytes(), signing_input.as_bytes());
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(raw));
    assert_eq!(
        claims::verify(std::slice::from_ref(&secret), &token, NOW),
        Err(Rejection::SignatureMismatch)
    );
    // Keyed with the claims key string, as a JWT library given DROPFIX_CLAIMS_KEY does: accepted.
    let good = hmac_sha256(
        secret.expose_claims_key().as_bytes(),
        signing_input.as_bytes(),
    );
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(good));
    assert!(claims::verify(std::slice::from_ref(&secret), &token, NOW).is_ok());
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// What the seed-form oracle returns for `x`, as text and as the raw MAC bytes.
fn oracle(secret: &SecretKey, x: &str) -> (String, Vec<u8>) {
    let hex_sig = seed::sign(secret, x);
    let raw = hex::decode(&hex_sig).unwrap();
    (hex_sig, raw)
}

/// Asserts the oracle's answer for `x` is neither the claims key string, nor its hex body, nor its
/// 32 raw bytes, nor the HKDF pseudorandom key.
fn assert_reveals_nothing(secret: &SecretKey, x: &str) {
    let ck = secret.expose_claims_key();
    let okm = hex::decode(&ck[CLAIMS_KEY_PREFIX.len()..]).unwrap();
    let prk = hmac_sha256(CLAIMS_KEY_SALT, secret.expose_secret().as_bytes());
    let (hex_sig, raw) = oracle(secret, x);
    assert_ne!(hex_sig, ck, "{x:?}");
    assert_ne!(hex_sig, ck[CLAIMS_KEY_PREFIX.len()..], "{x:?}");
    assert_ne!(format!("{CLAIMS_KEY_PREFIX}{hex_sig}"), ck, "{x:?}");
    assert_ne!(raw, okm, "{x:?}");
    assert_ne!(raw, prk, "{x:?}");
}

/// The claims key is HKDF-SHA256(ikm = secret, salt, info): Extract computes
/// `HMAC(key = salt, msg = secret)`, so its HMAC is keyed with the public salt and the secret is
/// the message. The oracle only ever computes HMACs keyed with the secret, so no user id makes it
/// output the PRK or the key expanded from it. The obvious candidates an attacker would register
/// (the labels, the prefix and their concatenations, with and without Expand's counter byte) and
/// random strings are checked here; a claims key derived as `HMAC(secret, label)` would fail the
/// first of them.
#[test]
fn no_seed_signature_of_the_labels_reveals_the_claims_key() {
    let salt = std::str::from_utf8(CLAIMS_KEY_SALT).unwrap();
    let info = std::str::from_utf8(CLAIMS_KEY_INFO).unwrap();
    let mut candidates: Vec<String> = vec![
        salt.into(),
        info.into(),
        CLAIMS_KEY_PREFIX.into(),
        format!("{info}\u{1}"),
        format!("{salt}{info}"),
        format!("{salt}{info}\u{1}"),
        format!("{info}{salt}"),
        format!("{salt}.{info}"),
        format!("{salt}/{info}"),
        format!("{CLAIMS_KEY_PREFIX}{info}"),
        format!("{CLAIMS_KEY_PREFIX}{salt}"),
        format!("{salt}{SECRET}"),
        format!("{SECRET}{salt}"),
        format!("{SECRET}{info}"),
        "claims".into(),
        "claims-key".into(),
        "dropfix".into(),
        String::new(),
    ];
    let secret = SecretKey::new(SECRET);
    candidates.push(secret.expose_claims_key().to_owned());
    for x in &candidates {
        assert_reveals_nothing(&secret, x);
    }
    // A label-keyed derivation (the trap of the issue) would be revealed by the first candidate:
    // this is the check failing as it should against the wrong construction.
    let (_, raw) = oracle(&secret, salt);
    assert_eq!(raw, hmac_sha256(SECRET.as_bytes(), CLAIMS_KEY_SALT));
}

proptest! {
    #[test]
    fn no_seed_signature_of_any_string_reveals_the_claims_key(secret in ".{0,80}", x in ".{0,200}") {
        let secret = SecretKey::new(secret);
        assert_reveals_nothing(&secret, &x);
    }

    #[test]
    fn a_seed_hash_never_verifies_as_a_token(secret in ".{1,60}", sub in "[a-zA-Z0-9]{1,40}") {
        let secret = SecretKey::new(secret);
        let forged = forge_token_from_seed_oracle(&secret, &sub);
        prop_assert_eq!(
            claims::verify(std::slice::from_ref(&secret), &forged, NOW),
            Err(Rejection::SignatureMismatch)
        );
    }
}
