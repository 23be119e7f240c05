//! Boundaries and small rules of the core, each tested on both sides (issue 19: every mutant of
//! dropfix-core killed by the core's own tests). Limits are checked exactly at and one past, time
//! windows at 300/301 and 60/61 s, and the texts integrators read are pinned to their codes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dropfix_core::claims::{self, Claims};
use dropfix_core::seed::{self, SeedCheck};
use dropfix_core::{
    Decision, Identify, MAX_BODY_BYTES, MAX_CUSTOM_TRAITS, MAX_DEPTH, MAX_SIGNATURE_BYTES,
    MAX_TRAIT_STRING_BYTES, MAX_USER_ID_BYTES, Policy, Rejection, SecretKey, StrictMode, Traits,
    ValidationError, Value, decide,
};
use serde_json::json;

const NOW: i64 = 1_732_406_400;

fn wire(body: serde_json::Value) -> Result<Identify, ValidationError> {
    Identify::from_wire(&serde_json::from_value::<Value>(body).unwrap())
}

fn err(body: serde_json::Value) -> (String, String, String) {
    let e = wire(body).unwrap_err();
    (e.code.to_owned(), e.field, e.message)
}

/// A token over `payload`, keyed like a backend's JWT library: with the claims key string.
fn token(payload: &str, secret: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut t = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
    t.push('.');
    t.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let key = SecretKey::new(secret);
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key.expose_claims_key().as_bytes()).unwrap();
    mac.update(t.as_bytes());
    t.push('.');
    t.push_str(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    t
}

fn verify_payload(payload: &str) -> Result<Claims, Rejection> {
    claims::verify(&[SecretKey::new("k")], &token(payload, "k"), NOW).map(|(c, _)| c)
}

#[test]
fn constants_are_the_documented_limits() {
    assert_eq!(MAX_BODY_BYTES, 16_384);
    assert_eq!(MAX_USER_ID_BYTES, 255);
    assert_eq!(MAX_TRAIT_STRING_BYTES, 512);
    assert_eq!(MAX_SIGNATURE_BYTES, 8192);
    assert_eq!(MAX_CUSTOM_TRAITS, 32);
    assert_eq!(MAX_DEPTH, 3);
}

#[test]
fn jws_shape() {
    for ok in ["a.b.c", "eyJ-_.A0z.Zz9", "-._.-"] {
        assert!(claims::is_jws_form(ok), "{ok}");
    }
    for bad in [
        "", "a", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "a.b.c=", "a+b.c.d", "a/b.c.d",
        "a.b.c ", "a b.c.d", "a.b.é",
    ] {
        assert!(!claims::is_jws_form(bad), "{bad}");
    }
}

#[test]
fn seed_shape() {
    assert!(seed::is_seed_form(&"a".repeat(64)));
    assert!(seed::is_seed_form(&"AbCdEf0123456789".repeat(4)));
    assert!(!seed::is_seed_form(&"a".repeat(63)));
    assert!(!seed::is_seed_form(&"a".repeat(65)));
    assert!(!seed::is_seed_form(&"g".repeat(64)));
    assert!(!seed::is_seed_form(&format!("{}g", "a".repeat(63))));
    assert!(!seed::is_seed_form(""));
    let key = SecretKey::new("k");
    assert_eq!(
        seed::verify(std::slice::from_ref(&key), "u", &"a".repeat(65)),
        SeedCheck::Malformed
    );
    assert_eq!(
        seed::verify(&[], "u", &seed::sign(&key, "u")),
        SeedCheck::Mismatch
    );
    assert_eq!(seed::sign(&key, "u").len(), 64);
}

#[test]
fn token_time_rules_on_both_sides() {
    let p = |extra: &str| format!(r#"{{"sub":"42","iat":{NOW}{extra}}}"#);
    // nbf: up to 60 s ahead is clock skew; 61 s is in the future; the past is fine.
    for ok in [NOW - 1000, NOW, NOW + 60, 0] {
        assert!(
            verify_payload(&p(&format!(r#","nbf":{ok}"#))).is_ok(),
            "nbf {ok}"
        );
    }
    assert_eq!(
        verify_payload(&p(&format!(r#","nbf":{}"#, NOW + 61))),
        Err(Rejection::SignedAtInFuture)
    );
    assert_eq!(
        verify_payload(&p(r#","nbf":"soon""#)),
        Err(Rejection::SignatureMalformed)
    );
    // exp: expired at exactly exp, valid one second before.
    assert_eq!(
        verify_payload(&p(&format!(r#","exp":{NOW}"#))),
        Err(Rejection::SignatureExpired)
    );
    assert_eq!(
        verify_payload(&p(&format!(r#","exp":{}"#, NOW + 1)))
            .unwrap()
            .exp,
        Some(NOW + 1)
    );
    // iat: the shared window.
    for (iat, expected) in [
        (NOW - 300, Ok(())),
        (NOW - 301, Err(Rejection::SignatureExpired)),
        (NOW + 60, Ok(())),
        (NOW + 61, Err(Rejection::SignedAtInFuture)),
        (NOW * 1000, Err(Rejection::SignedAtNotSeconds)),
    ] {
        let got = verify_payload(&format!(r#"{{"sub":"42","iat":{iat}}}"#)).map(|c| {
            assert_eq!(c.iat, iat);
        });
        assert_eq!(got, expected, "iat {iat}");
    }
    // NumericDate may be fractional: truncated.
    let c = verify_payload(&format!(
        r#"{{"sub":"42","iat":{NOW}.9,"exp":{}.5}}"#,
        NOW + 10
    ))
    .unwrap();
    assert_eq!((c.iat, c.exp), (NOW, Some(NOW + 10)));
    assert_eq!(
        verify_payload(r#"{"sub":"42","iat":"now"}"#),
        Err(Rejection::SignatureMalformed)
    );
    assert_eq!(
        verify_payload(r#"{"sub":"42","iat":null}"#),
        Err(Rejection::SignedAtMissing)
    );
}

#[test]
fn token_payload_rules() {
    let ok = verify_payload(&format!(
        r#"{{"sub":"42","iat":{NOW},"name":"Ada","email":"a@b","plan":"pro","mrr":49.5}}"#
    ))
    .unwrap();
    assert_eq!(
        ok,
        Claims {
            sub: "42".into(),
            iat: NOW,
            name: Some("Ada".into()),
            email: Some("a@b".into()),
            plan: Some("pro".into()),
            mrr: Some(49.5),
            ..Claims::default()
        }
    );
    let nulls = verify_payload(&format!(
        r#"{{"sub":"42","iat":{NOW},"name":null,"plan":null,"mrr":null,"exp":null}}"#
    ))
    .unwrap();
    assert_eq!(
        (nulls.name, nulls.plan, nulls.mrr, nulls.exp),
        (None, None, None, None)
    );
    for bad in [
        format!(r#"{{"sub":"","iat":{NOW}}}"#),
        format!(r#"{{"sub":null,"iat":{NOW}}}"#),
        format!(r#"{{"iat":{NOW}}}"#),
        "[1]".to_owned(),
        "\"x\"".to_owned(),
        format!(r#"{{"sub":"42","iat":{NOW},"name":1}}"#),
    ] {
        assert_eq!(
            verify_payload(&bad),
            Err(Rejection::SignatureMalformed),
            "{bad}"
        );
    }
    // The header must be an object with alg HS256; the tag exactly 32 bytes.
    let good = token(&format!(r#"{{"sub":"42","iat":{NOW}}}"#), "k");
    let (input, tag) = good.rsplit_once('.').unwrap();
    let short = URL_SAFE_NO_PAD.encode(&URL_SAFE_NO_PAD.decode(tag).unwrap()[..31]);
    let keys = [SecretKey::new("k")];
    assert_eq!(
        claims::verify(&keys, &format!("{input}.{short}"), NOW),
        Err(Rejection::SignatureMalformed)
    );
    let long = URL_SAFE_NO_PAD.encode([0u8; 33]);
    assert_eq!(
        claims::verify(&keys, &format!("{input}.{long}"), NOW),
        Err(Rejection::SignatureMalformed)
    );
    let (_, rest) = good.split_once('.').unwrap();
    let array_header = format!("{}.{rest}", URL_SAFE_NO_PAD.encode("[]"));
    assert_eq!(
        claims::verify(&keys, &array_header, NOW),
        Err(Rejection::SignatureMalformed)
    );
    // Rotation: the second key's index is reported.
    let two = [SecretKey::new("new"), SecretKey::new("k")];
    assert_eq!(claims::verify(&two, &good, NOW).unwrap().1, 1);
    assert_eq!(
        claims::verify(&[], &good, NOW),
        Err(Rejection::SignatureMismatch)
    );
}

#[test]
fn signature_length_limit() {
    let at = "a".repeat(MAX_SIGNATURE_BYTES);
    let past = "a".repeat(MAX_SIGNATURE_BYTES + 1);
    let call = wire(json!({"app_id": "a", "user_id": "1", "signature": at})).unwrap();
    assert_eq!(call.signature.as_deref().map(str::len), Some(8192));
    let (code, field, message) = err(json!({"app_id": "a", "user_id": "1", "hash": past}));
    assert_eq!((code.as_str(), field.as_str()), ("too_long", "hash"));
    assert_eq!(message, "hash is too long (the limit is 8192 bytes)");
    let (code, field, _) = err(json!({"app_id": "a", "user_id": "1", "signature": 5}));
    assert_eq!(
        (code.as_str(), field.as_str()),
        ("invalid_type", "signature")
    );
}

#[test]
fn string_limits_at_and_past() {
    let cases = [("user_id", MAX_USER_ID_BYTES, "255"), ("app_id", 64, "64")];
    for (field, max, text) in cases {
        let mut body = json!({"app_id": "a", "user_id": "1"});
        body[field] = "x".repeat(max).into();
        assert_eq!(
            wire(body.clone()).unwrap().to_wire().get(field),
            Some(&Value::Str("x".repeat(max)))
        );
        body[field] = "x".repeat(max + 1).into();
        let (code, f, message) = err(body);
        assert_eq!((code.as_str(), f.as_str()), ("too_long", field));
        assert_eq!(
            message,
            format!("{field} is too long (the limit is {text} bytes)")
        );
    }
    for trait_name in ["name", "email", "plan", "signup_date", "custom_one"] {
        let ok = json!({"app_id": "a", "user_id": "1", "traits": {trait_name: "x".repeat(512)}});
        assert!(wire(ok).is_ok(), "{trait_name}");
        let bad = json!({"app_id": "a", "user_id": "1", "traits": {trait_name: "x".repeat(513)}});
        let (code, f, message) = err(bad);
        assert_eq!(
            (code.as_str(), f),
            ("too_long", format!("traits.{trait_name}"))
        );
        assert!(message.ends_with("(the limit is 512 bytes)"), "{message}");
    }
    // Trait names: 1 to 64 bytes, no control characters.
    let name64 = "k".repeat(64);
    assert!(wire(json!({"app_id": "a", "user_id": "1", "traits": {name64.clone(): 1}})).is_ok());
    for bad in ["k".repeat(65), String::new(), "a\u{7}b".into()] {
        let (code, f, _) = err(json!({"app_id": "a", "user_id": "1", "traits": {bad.clone(): 1}}));
        assert_eq!(
            (code.as_str(), f),
            ("invalid_trait_name", format!("traits.{bad}"))
        );
    }
}

#[test]
fn custom_trait_count_at_and_past() {
    let traits = |n: usize| {
        let mut m = serde_json::Map::new();
        for i in 0..n {
            m.insert(format!("k{i}"), i.into());
        }
        // Standard traits do not count.
        m.insert("plan".into(), "pro".into());
        m.insert("signup_date".into(), "2024-01-01".into());
        serde_json::Value::Object(m)
    };
    let ok = wire(json!({"app_id": "a", "user_id": "1", "traits": traits(32)})).unwrap();
    assert_eq!(ok.traits.custom.len(), 32);
    let (code, field, message) = err(json!({"app_id": "a", "user_id": "1", "traits": traits(33)}));
    assert_eq!(
        (code.as_str(), field.as_str()),
        ("too_many_traits", "traits")
    );
    assert_eq!(
        message,
        "traits has too many custom traits (the limit is 32)"
    );
}

#[test]
fn custom_trait_values() {
    let ok = wire(json!({"app_id": "a", "user_id": "1",
        "traits": {"n": null, "b": false, "i": -3, "f": 0.25, "s": "x"}}))
    .unwrap();
    assert_eq!(ok.traits.custom.len(), 5);
    for (value, code) in [
        (json!([1]), "invalid_type"),
        (json!({"a": 1}), "invalid_type"),
    ] {
        let (c, f, _) = err(json!({"app_id": "a", "user_id": "1", "traits": {"x": value}}));
        assert_eq!((c.as_str(), f.as_str()), (code, "traits.x"));
    }
    // Non-finite numbers only come from JS (the SDK); the same rule applies.
    for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for name in ["x", "mrr"] {
            let traits = Value::Object(vec![(name.into(), Value::Float(f))]);
            let e = Identify::from_sdk("a", &Value::Int(1), &traits).unwrap_err();
            assert_eq!(
                (e.code, e.field),
                ("invalid_value", format!("traits.{name}")),
                "{f}"
            );
        }
    }
}

#[test]
fn mrr_range() {
    for ok in [json!(0), json!(0.0), json!(1e12), json!(49.5)] {
        let call = wire(json!({"app_id": "a", "user_id": "1", "traits": {"mrr": ok}})).unwrap();
        assert_eq!(call.traits.mrr, ok.as_f64());
    }
    for bad in [json!(-0.01), json!(-1), json!(1.000001e12)] {
        let (code, field, _) = err(json!({"app_id": "a", "user_id": "1", "traits": {"mrr": bad}}));
        assert_eq!(
            (code.as_str(), field.as_str()),
            ("invalid_value", "traits.mrr")
        );
    }
}

#[test]
fn aliases() {
    // Equal values under both names are one value; different ones are refused on either pair.
    let call = wire(
        json!({"app_id": "a", "user_id": "1", "signature": "s", "hash": "s",
                           "signed_at": 5, "signedAt": 5}),
    )
    .unwrap();
    assert_eq!(
        (call.signature.as_deref(), call.signed_at),
        (Some("s"), Some(5))
    );
    let call = wire(json!({"app_id": "a", "user_id": "1", "hash": "h", "signedAt": 7})).unwrap();
    assert_eq!(
        (call.signature.as_deref(), call.signed_at),
        (Some("h"), Some(7))
    );
    let call =
        wire(json!({"app_id": "a", "user_id": "1", "signature": "s", "signed_at": 8})).unwrap();
    assert_eq!(
        (call.signature.as_deref(), call.signed_at),
        (Some("s"), Some(8))
    );
    let (code, field, message) =
        err(json!({"app_id": "a", "user_id": "1", "signed_at": 1, "signedAt": 2}));
    assert_eq!(
        (code.as_str(), field.as_str()),
        ("conflicting_fields", "signed_at")
    );
    assert_eq!(
        message,
        "signed_at and signedAt are both present with different values: send only one"
    );
    let (_, field, _) = err(json!({"app_id": "a", "user_id": "1", "signedAt": "x"}));
    assert_eq!(field, "signedAt");
    // SDK: the options are read from the traits object, and are not custom traits.
    let traits: Value = serde_json::from_value(
        json!({"hash": "h", "signature": "h", "signedAt": 3, "signed_at": 3, "plan": "p"}),
    )
    .unwrap();
    let call = Identify::from_sdk("a", &Value::Str("1".into()), &traits).unwrap();
    assert_eq!(
        (call.signature.as_deref(), call.signed_at),
        (Some("h"), Some(3))
    );
    assert!(call.traits.custom.is_empty());
    let conflict: Value = serde_json::from_value(json!({"hash": "h", "signature": "x"})).unwrap();
    let e = Identify::from_sdk("a", &Value::Str("1".into()), &conflict).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("conflicting_fields", "traits.signature")
    );
    let none = Identify::from_sdk("a", &Value::Str("1".into()), &Value::Null).unwrap();
    assert_eq!(none.traits, Traits::default());
    let e = Identify::from_sdk("a", &Value::Str("1".into()), &Value::Int(1)).unwrap_err();
    assert_eq!((e.code, e.field.as_str()), ("invalid_type", "traits"));
    let e = Identify::from_sdk("", &Value::Str("1".into()), &Value::Null).unwrap_err();
    assert_eq!((e.code, e.field.as_str()), ("empty_value", "appId"));
    let e = Identify::from_sdk("a", &Value::Float(1.5), &Value::Null).unwrap_err();
    assert_eq!((e.code, e.field.as_str()), ("invalid_type", "userId"));
}

#[test]
fn wire_fields_and_types() {
    let (code, field, message) = err(json!({"app_id": "a", "user_id": "1", "extra": 1}));
    assert_eq!((code.as_str(), field.as_str()), ("unknown_field", "extra"));
    assert!(
        message.starts_with("extra is not a field of identify"),
        "{message}"
    );
    // app_id takes no integers: its message does not offer them.
    let (code, field, message) = err(json!({"app_id": 5, "user_id": "1"}));
    assert_eq!((code.as_str(), field.as_str()), ("invalid_type", "app_id"));
    assert_eq!(message, "app_id must be a string, got a number");
    let (_, _, message) = err(json!({"app_id": true, "user_id": "1"}));
    assert_eq!(message, "app_id must be a string, got a boolean");
    let (code, field, message) = err(json!({"app_id": "a", "user_id": true}));
    assert_eq!((code.as_str(), field.as_str()), ("invalid_type", "user_id"));
    assert_eq!(
        message,
        "user_id must be a string or an integer (pass large ids as strings), got a boolean"
    );
    let (code, _, message) = err(json!({"app_id": "a", "user_id": "1", "traits": [1]}));
    assert_eq!(code, "invalid_type");
    assert_eq!(message, "traits must be an object, got an array");
    let (code, field, message) = err(json!("text"));
    assert_eq!((code.as_str(), field.as_str()), ("invalid_json", ""));
    assert_eq!(message, "request body must be a JSON object, got a string");
    let (code, field, message) = err(
        json!({"app_id": "a", "user_id": "1", "traits": {"plan": null, "mrr": null, "name": 1}}),
    );
    assert_eq!(
        (code.as_str(), field.as_str()),
        ("invalid_type", "traits.name")
    );
    assert_eq!(message, "traits.name must be a string, got a number");
    let (code, field, message) = err(json!({"app_id": "a"}));
    assert_eq!(
        (code.as_str(), field.as_str(), message.as_str()),
        ("missing_field", "user_id", "user_id is required")
    );
    let (code, field, _) = err(json!({"app_id": "a", "user_id": null}));
    assert_eq!(
        (code.as_str(), field.as_str()),
        ("missing_field", "user_id")
    );
    let (code, field, _) = err(json!({"app_id": "a", "user_id": "1", "signed_at": "1"}));
    assert_eq!(
        (code.as_str(), field.as_str()),
        ("invalid_type", "signed_at")
    );
    // null traits, signature and signed_at are absent.
    let call = wire(json!({"app_id": "a", "user_id": "1", "traits": null, "signature": null, "signed_at": null})).unwrap();
    assert_eq!(
        (call.traits, call.signature, call.signed_at),
        (Traits::default(), None, None)
    );
    // Everything standard is read from its own key.
    let call = wire(json!({"app_id": "a", "user_id": "1", "traits": {"name": "n", "email": "e", "plan": "p", "signup_date": "d", "mrr": 2}})).unwrap();
    let t = &call.traits;
    assert_eq!(
        (
            t.name.as_deref(),
            t.email.as_deref(),
            t.plan.as_deref(),
            t.signup_date.as_deref(),
            t.mrr
        ),
        (Some("n"), Some("e"), Some("p"), Some("d"), Some(2.0))
    );
    assert!(t.custom.is_empty());
    let again = Identify::from_wire(&call.to_wire()).unwrap();
    assert_eq!(again, call);
    assert_eq!(
        serde_json::to_string(&call.to_wire()).unwrap(),
        r#"{"app_id":"a","user_id":"1","traits":{"name":"n","email":"e","plan":"p","mrr":2.0,"signup_date":"d"}}"#
    );
}

#[test]
fn secrets_are_refused_everywhere() {
    for (body, field) in [
        (json!({"app_id": "a", "user_id": "dfsk_x"}), "user_id"),
        (json!({"app_id": "dfck_x", "user_id": "1"}), "app_id"),
        (
            json!({"app_id": "a", "user_id": "1", "traits": {"plan": " dfsk_x"}}),
            "traits.plan",
        ),
        (
            json!({"app_id": "a", "user_id": "1", "traits": {"note": "dfck_x"}}),
            "traits.note",
        ),
        (
            json!({"app_id": "a", "user_id": "1", "traits": {"Secret": 1}}),
            "traits.Secret",
        ),
        (
            json!({"app_id": "a", "user_id": "1", "traits": {"mySECRETkey": 1}}),
            "traits.mySECRETkey",
        ),
        (
            json!({"app_id": "a", "user_id": "1", "hash": "dfck_x"}),
            "hash",
        ),
    ] {
        let (code, f, message) = err(body);
        assert_eq!((code.as_str(), f.as_str()), ("secret_not_allowed", field));
        assert!(
            message.contains("keys must stay on your server"),
            "{message}"
        );
    }
    assert!(wire(json!({"app_id": "a", "user_id": "1", "traits": {"secretary": 1}})).is_err());
    assert!(wire(json!({"app_id": "a", "user_id": "1", "traits": {"note": "x dfsk_"}})).is_ok());
}

#[test]
fn traits_from_value() {
    let v: Value =
        serde_json::from_value(json!({"plan": "pro", "signup_date": "d", "team": 1})).unwrap();
    let t = Traits::from_value("claims.", &v).unwrap();
    assert_eq!(t.plan.as_deref(), Some("pro"));
    assert_eq!(t.signup_date.as_deref(), Some("d"));
    assert_eq!(t.custom, [("team".to_owned(), Value::Int(1))]);
    let bad: Value = serde_json::from_value(json!({"verified": true})).unwrap();
    let e = Traits::from_value("claims.", &bad).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("reserved_trait", "claims.verified")
    );
    let e = Traits::from_value("claims.", &Value::Bool(true)).unwrap_err();
    assert_eq!((e.code, e.field.as_str()), ("invalid_type", "claims"));
}

#[test]
fn rejection_codes_and_messages_are_pinned() {
    let expected = [
        (
            Rejection::SignatureRequired,
            "signature_required",
            "strict mode",
        ),
        (
            Rejection::SignedClaimsRequired,
            "signed_claims_required",
            "requires signed claims",
        ),
        (
            Rejection::SignatureMismatch,
            "signature_mismatch",
            "does not match",
        ),
        (
            Rejection::SignatureExpired,
            "signature_expired",
            "older than 5 minutes",
        ),
        (
            Rejection::SignedAtInFuture,
            "signed_at_in_future",
            "in the future",
        ),
        (
            Rejection::SignedAtMissing,
            "signed_at_missing",
            "without signedAt",
        ),
        (
            Rejection::SignedAtNotSeconds,
            "signed_at_not_seconds",
            "milliseconds",
        ),
        (
            Rejection::SignatureMalformed,
            "signature_malformed",
            "neither 64 hex",
        ),
        (Rejection::ClaimsMismatch, "claims_mismatch", "contradict"),
        (
            Rejection::UnknownIssuer,
            "unknown_issuer",
            "not one this workspace trusts",
        ),
        (
            Rejection::AudienceMismatch,
            "audience_mismatch",
            "audience (aud)",
        ),
        (Rejection::UnknownKeyId, "unknown_key_id", "kid"),
        (
            Rejection::AlgorithmNotAllowed,
            "algorithm_not_allowed",
            "alg is not allowed",
        ),
        (Rejection::TokenExpired, "token_expired", "exp has passed"),
        (Rejection::TokenNotYetValid, "token_not_yet_valid", "nbf"),
        (
            Rejection::IssuerUnavailable,
            "issuer_unavailable",
            "could not be fetched",
        ),
    ];
    assert_eq!(Rejection::ALL.len(), expected.len());
    for ((r, code, phrase), all) in expected.iter().zip(Rejection::ALL) {
        assert_eq!(*r, all);
        assert_eq!(r.code(), *code);
        assert!(r.message().contains(phrase), "{code}: {}", r.message());
        assert_eq!(r.to_string(), r.message());
    }
    // The message of signed claims names the key that signs tokens.
    assert!(
        Rejection::SignedClaimsRequired
            .message()
            .contains("claims key")
    );
}

#[test]
fn validation_error_display_is_its_message() {
    let e = ValidationError::invalid_json("trailing comma at line 1");
    assert_eq!((e.code, e.field.as_str()), ("invalid_json", ""));
    assert_eq!(
        e.message,
        "request body is not valid JSON: trailing comma at line 1"
    );
    assert_eq!(e.to_string(), e.message);
}

#[test]
fn value_lookup_and_kinds() {
    let v: Value = serde_json::from_value(json!({"a": 1, "b": "x"})).unwrap();
    assert_eq!(v.get("a"), Some(&Value::Int(1)));
    assert_eq!(v.get("b"), Some(&Value::Str("x".into())));
    assert_eq!(v.get("c"), None);
    assert_eq!(Value::Int(1).get("a"), None);
    for (value, kind) in [
        (Value::Null, "null"),
        (Value::Bool(true), "a boolean"),
        (Value::Int(1), "a number"),
        (Value::Float(1.5), "a number"),
        (Value::Str("s".into()), "a string"),
        (Value::Array, "an array"),
        (Value::Object(vec![]), "an object"),
    ] {
        assert_eq!(value.kind(), kind);
    }
    // Every JSON kind parses to its own variant; arrays keep only their presence.
    let parsed: Value =
        serde_json::from_str(r#"{"n":null,"t":true,"f":false,"i":-1,"u":18446744073709551615,"x":1.5,"s":"s","a":[1,[2]],"o":{}}"#)
            .unwrap();
    assert_eq!(
        parsed,
        Value::Object(vec![
            ("n".into(), Value::Null),
            ("t".into(), Value::Bool(true)),
            ("f".into(), Value::Bool(false)),
            ("i".into(), Value::Int(-1)),
            ("u".into(), Value::Float(18_446_744_073_709_551_615.0)),
            ("x".into(), Value::Float(1.5)),
            ("s".into(), Value::Str("s".into())),
            ("a".into(), Value::Array),
            ("o".into(), Value::Object(vec![])),
        ])
    );
    assert_eq!(
        serde_json::from_str::<Value>("9223372036854775807").unwrap(),
        Value::Int(i64::MAX)
    );
    // Depth: 3 containers are fine, a 4th is refused, for objects and arrays alike.
    assert!(serde_json::from_str::<Value>(r#"[[[1]]]"#).is_ok());
    assert!(serde_json::from_str::<Value>(r#"[[[[1]]]]"#).is_err());
    assert!(serde_json::from_str::<Value>(r#"{"a":{"b":{"c":1}}}"#).is_ok());
    assert!(serde_json::from_str::<Value>(r#"{"a":{"b":{"c":{}}}}"#).is_err());
    assert!(serde_json::from_str::<Value>(r#"{"a":[{"c":1}]}"#).is_ok());
    assert!(serde_json::from_str::<Value>(r#"{"a":[{"c":[]}]}"#).is_err());
    let e = serde_json::from_str::<Value>(r#"[[[[1]]]]"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nested too deeply"), "{e}");
    // Duplicate keys are refused at any level, distinct keys are not.
    assert!(serde_json::from_str::<Value>(r#"{"a":{"x":1,"x":1}}"#).is_err());
    assert!(serde_json::from_str::<Value>(r#"{"a":1,"b":1}"#).is_ok());
    let e = serde_json::from_str::<Value>("true x")
        .unwrap_err()
        .to_string();
    assert!(!e.is_empty());
    let e = serde_json::from_str::<Value>("").unwrap_err().to_string();
    assert!(e.contains("EOF"), "{e}");
}

#[test]
fn decide_policy_rows() {
    let secrets = [SecretKey::new("k")];
    let unsigned = wire(json!({"app_id": "a", "user_id": "1"})).unwrap();
    let policy = |strict, require_signed_claims| Policy {
        secrets: &secrets,
        strict,
        require_signed_claims,
        issuers: dropfix_core::NO_ISSUERS,
    };
    assert_eq!(
        decide(&policy(StrictMode::Off, false), &unsigned, NOW),
        Decision::Unverified { would_reject: None }
    );
    assert_eq!(
        decide(&policy(StrictMode::ReportOnly, false), &unsigned, NOW),
        Decision::Unverified {
            would_reject: Some(Rejection::SignatureRequired)
        }
    );
    assert_eq!(
        decide(&policy(StrictMode::Enforce, false), &unsigned, NOW),
        Decision::Rejected(Rejection::SignatureRequired)
    );
    for strict in [StrictMode::Off, StrictMode::ReportOnly, StrictMode::Enforce] {
        assert_eq!(
            decide(&policy(strict, true), &unsigned, NOW),
            Decision::Rejected(Rejection::SignedClaimsRequired)
        );
    }
    // The millisecond check comes before the MAC (a wrong signature in ms is reported as ms);
    // just below milliseconds, the wrong signature is what is reported.
    for (signed_at, rejection) in [
        (100_000_000_000_i64, Rejection::SignedAtNotSeconds),
        (99_999_999_999_i64, Rejection::SignatureMismatch),
    ] {
        let call = wire(
            json!({"app_id": "a", "user_id": "1", "signature": "a".repeat(64),
                   "signed_at": signed_at}),
        )
        .unwrap();
        assert_eq!(
            decide(&policy(StrictMode::Off, false), &call, NOW),
            Decision::Rejected(rejection),
            "signed_at {signed_at}"
        );
    }
    // A seed signature verified: key index and signing time reported.
    let seed_call = wire(
        json!({"app_id": "a", "user_id": "1", "signature": seed::sign(&secrets[0], "1"),
                                "signed_at": NOW - 5}),
    )
    .unwrap();
    let Decision::Verified(v) = decide(&policy(StrictMode::Enforce, false), &seed_call, NOW) else {
        panic!("not verified")
    };
    assert_eq!((v.key_index, v.signed_at), (0, NOW - 5));
    // Neither form: malformed, whatever the policy.
    let junk = wire(json!({"app_id": "a", "user_id": "1", "signature": "nope"})).unwrap();
    assert_eq!(
        decide(&policy(StrictMode::Off, false), &junk, NOW),
        Decision::Rejected(Rejection::SignatureMalformed)
    );
}

/// Deserializers other than JSON (serde-wasm-bindgen in the Node signing build, for one) can offer
/// kinds an identify payload never holds, such as bytes from a `Uint8Array`: refused, saying
/// what was expected.
#[test]
fn non_json_kinds_are_refused_with_what_was_expected() {
    use serde::Deserialize as _;
    use serde::de::value::{BytesDeserializer, Error};
    let e = Value::deserialize(BytesDeserializer::<Error>::new(b"\x01\x02")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid type: byte array, expected a JSON value"
    );
}
