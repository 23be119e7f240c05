//! Property tests: verify(sign(x)) holds, and changing any byte of the id, the signature or the
//! secret makes verification fail; validation never panics on arbitrary input.

use dropfix_core::claims::{self, Claims};
use dropfix_core::seed::{self, SeedCheck};
use dropfix_core::{Identify, Rejection, SecretKey, Value};
use proptest::prelude::*;

const NOW: i64 = 1_732_406_400;

/// Replaces the character at `index` (modulo length) with a different one.
fn mutate(s: &str, index: usize, with: char) -> String {
    let chars: Vec<char> = s.chars().collect();
    let i = index % chars.len();
    let mut out = chars.clone();
    out[i] = if chars[i] == with {
        if with == 'a' { 'b' } else { 'a' }
    } else {
        with
    };
    out.into_iter().collect()
}

proptest! {
    #[test]
    fn seed_sign_then_verify(secret in ".{1,80}", user_id in ".{1,255}") {
        let key = SecretKey::new(secret);
        let sig = seed::sign(&key, &user_id);
        prop_assert_eq!(seed::verify(&[key], &user_id, &sig), SeedCheck::Valid { key_index: 0 });
    }

    #[test]
    fn changing_the_id_fails(secret in ".{1,40}", user_id in ".{1,64}", i in any::<usize>(), c in any::<char>()) {
        let key = SecretKey::new(secret);
        let sig = seed::sign(&key, &user_id);
        let other = mutate(&user_id, i, c);
        prop_assert_eq!(seed::verify(&[key], &other, &sig), SeedCheck::Mismatch);
    }

    #[test]
    fn changing_the_signature_fails(secret in ".{1,40}", user_id in ".{1,64}", i in 0usize..64, c in "[0-9a-f]") {
        let key = SecretKey::new(secret);
        let sig = seed::sign(&key, &user_id);
        let c = c.chars().next().unwrap();
        let bad = mutate(&sig, i, c);
        prop_assume!(!bad.eq_ignore_ascii_case(&sig));
        prop_assert_eq!(seed::verify(&[key], &user_id, &bad), SeedCheck::Mismatch);
    }

    #[test]
    fn changing_the_secret_fails(secret in ".{1,40}", user_id in ".{1,64}", i in any::<usize>(), c in any::<char>()) {
        let sig = seed::sign(&SecretKey::new(secret.clone()), &user_id);
        let other = SecretKey::new(mutate(&secret, i, c));
        prop_assert_eq!(seed::verify(&[other], &user_id, &sig), SeedCheck::Mismatch);
    }

    #[test]
    fn claims_sign_then_verify_and_any_change_fails(
        secret in ".{1,40}", sub in "[^\\p{Cc}]{1,64}", plan in proptest::option::of("[a-z]{1,12}"),
        mrr in proptest::option::of(0.0f64..1e9), i in any::<usize>(), c in "[A-Za-z0-9_-]",
    ) {
        let key = SecretKey::new(secret);
        let claims = Claims { sub, iat: NOW, plan, mrr, ..Claims::default() };
        let token = claims::sign(&key, &claims);
        let (verified, _) = claims::verify(std::slice::from_ref(&key), &token, NOW).unwrap();
        prop_assert_eq!(verified, claims);
        // Any changed character of the token (dots kept, so it stays JWS-shaped) fails.
        let idx = i % token.len();
        prop_assume!(token.as_bytes()[idx] != b'.');
        let bad = mutate(&token, idx, c.chars().next().unwrap());
        prop_assume!(bad != token);
        prop_assert!(claims::verify(&[key], &bad, NOW).is_err());
    }

    #[test]
    fn validation_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(value) = serde_json::from_slice::<Value>(&body) {
            let _ = Identify::from_wire(&value);
        }
    }

    #[test]
    fn validation_never_panics_on_json_shapes(
        user_id in prop_oneof![".{0,300}".prop_map(serde_json::Value::from), any::<i64>().prop_map(serde_json::Value::from), any::<f64>().prop_map(serde_json::Value::from)],
        mrr in any::<f64>(), plan in ".{0,600}", extra in "[a-z_]{0,10}",
    ) {
        let body = serde_json::json!({"app_id": "a", "user_id": user_id,
            "traits": {"mrr": mrr, "plan": plan, extra: 1}});
        if let Ok(value) = serde_json::from_value::<Value>(body) {
            let _ = Identify::from_wire(&value);
        }
    }
}

#[test]
fn a_mutated_token_never_verifies_as_the_original_with_another_key() {
    let token = claims::sign(
        &SecretKey::new("a"),
        &Claims {
            sub: "1".into(),
            iat: NOW,
            ..Claims::default()
        },
    );
    assert_eq!(
        claims::verify(&[SecretKey::new("b")], &token, NOW),
        Err(Rejection::SignatureMismatch)
    );
}
