//! The JS <-> core bridge, run by `wasm-bindgen-test-runner` under Node:
//! `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
//!  cargo test -p dropfix-wasm --target wasm32-unknown-unknown --features node-signing`
#![cfg(target_arch = "wasm32")]

use dropfix_wasm::build_identify;
use js_sys::{JSON, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

fn obj(json: &str) -> JsValue {
    JSON::parse(json).unwrap()
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

fn wire(user_id: JsValue, traits: &str) -> String {
    let body = build_identify("app_test", user_id, obj(traits)).unwrap();
    JSON::stringify(&body).unwrap().as_string().unwrap()
}

fn error(user_id: JsValue, traits: &str) -> (String, String, String) {
    let e = build_identify("app_test", user_id, obj(traits)).unwrap_err();
    assert!(e.is_instance_of::<js_sys::Error>());
    let s = |k| get(&e, k).as_string().unwrap_or_default();
    (s("code"), s("field"), s("message"))
}

#[wasm_bindgen_test]
fn builds_the_wire_body_with_aliases_resolved() {
    let body = wire(
        "42".into(),
        r#"{"name":"Ada","plan":"pro","mrr":49.5,"hash":"ab","signedAt":1732406400,"team":"x"}"#,
    );
    let parsed: JsValue = JSON::parse(&body).unwrap();
    assert_eq!(get(&parsed, "app_id"), "app_test");
    assert_eq!(get(&parsed, "user_id"), "42");
    assert_eq!(get(&parsed, "signature"), "ab");
    assert_eq!(get(&parsed, "signed_at").as_f64(), Some(1_732_406_400.0));
    let traits = get(&parsed, "traits");
    assert_eq!(get(&traits, "mrr").as_f64(), Some(49.5));
    assert_eq!(get(&traits, "team"), "x");
    assert!(
        get(&traits, "hash").is_undefined(),
        "options are not traits: {body}"
    );
}

#[wasm_bindgen_test]
fn numeric_user_id_becomes_its_decimal_string() {
    let body = wire(JsValue::from_f64(7.0), "{}");
    assert!(body.contains(r#""user_id":"7""#), "{body}");
}

#[wasm_bindgen_test]
fn missing_traits_are_allowed() {
    let body = build_identify("app_test", "u".into(), JsValue::UNDEFINED).unwrap();
    assert_eq!(get(&body, "user_id"), "u");
}

#[wasm_bindgen_test]
fn validation_errors_carry_code_field_and_message() {
    let (code, field, message) = error("u".into(), r#"{"mrr":-1}"#);
    assert_eq!(field, "traits.mrr");
    assert!(
        !code.is_empty() && message.contains("traits.mrr"),
        "{code} {message}"
    );
    let (code, field, _) = error("".into(), "{}");
    assert_eq!((code.as_str(), field.as_str()), ("empty_value", "userId"));
    let (code, field, _) = error("u".into(), r#"{"plan":3}"#);
    assert_eq!(
        (code.as_str(), field.as_str()),
        ("invalid_type", "traits.plan")
    );
    let (code, ..) = error("u".into(), r#"{"signature":"a","hash":"b"}"#);
    assert_eq!(code, "conflicting_fields");
}

#[wasm_bindgen_test]
fn a_secret_key_in_the_browser_is_refused() {
    let (code, field, message) = error(
        "u".into(),
        r#"{"note":"dfsk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}"#,
    );
    assert_eq!(code, "secret_not_allowed", "{message}");
    assert_eq!(field, "traits.note");
    assert!(
        !message.contains("dfsk_0123"),
        "the message must not echo the secret"
    );
}

#[wasm_bindgen_test]
fn non_json_values_are_refused() {
    // A function (the `Object` constructor: no eval needed) and a class instance (a Date).
    let function: JsValue = js_sys::Object::new().constructor().into();
    let date: JsValue = js_sys::Date::new_0().into();
    for value in [function, date] {
        let traits = js_sys::Object::new();
        Reflect::set(&traits, &"team".into(), &value).unwrap();
        let e = build_identify("app_test", "u".into(), traits.into()).unwrap_err();
        assert_eq!(get(&e, "code"), "invalid_type");
        assert_eq!(get(&e, "field"), "traits.team");
        // The message is the field path (joined in the wasm), a space, then the rule.
        assert_eq!(
            get(&e, "message"),
            "traits.team must be plain JSON data (strings, numbers, booleans, arrays, plain objects)"
        );
    }
}

#[wasm_bindgen_test]
fn non_integer_and_huge_numeric_ids_are_refused() {
    for id in [1.5, f64::NAN, f64::INFINITY, 1e300] {
        let e = build_identify("app_test", JsValue::from_f64(id), JsValue::NULL).unwrap_err();
        assert_eq!(get(&e, "field"), "userId", "{id}");
    }
}

#[cfg(feature = "node-signing")]
mod signing {
    use super::*;
    use dropfix_wasm::{claims_key, sign_claims, sign_user};

    #[wasm_bindgen_test]
    fn signs_like_the_core() {
        // RFC 4231-independent check against the core itself (the vectors run in JS tests).
        let key = dropfix_core::SecretKey::new("dfsk_k");
        assert_eq!(
            sign_user("dfsk_k", "42"),
            dropfix_core::seed::sign(&key, "42")
        );
        let token = sign_claims(
            "dfsk_k",
            "42",
            1_732_406_400.0,
            None,
            obj(r#"{"plan":"pro","mrr":49}"#),
        )
        .unwrap();
        let (claims, _) = dropfix_core::claims::verify(&[key], &token, 1_732_406_410).unwrap();
        assert_eq!(claims.plan.as_deref(), Some("pro"));
        assert_eq!(claims.mrr, Some(49.0));
        assert!(sign_claims("dfsk_k", "42", 1.5, None, JsValue::NULL).is_err());
    }

    #[wasm_bindgen_test]
    fn claims_key_and_every_trait() {
        let key = dropfix_core::SecretKey::new("dfsk_k");
        assert_eq!(claims_key("dfsk_k"), key.expose_claims_key());
        let token = sign_claims(
            "dfsk_k",
            "42",
            1_732_406_400.0,
            Some(1_732_406_700.0),
            obj(r#"{"signup_date":"2024-03-01","team_size":5}"#),
        )
        .unwrap();
        let (claims, _) = dropfix_core::claims::verify(&[key], &token, 1_732_406_410).unwrap();
        assert_eq!(claims.signup_date.as_deref(), Some("2024-03-01"));
        assert_eq!(
            claims.custom,
            [("team_size".into(), dropfix_core::Value::Int(5))]
        );
        // The payload's rules apply: a reserved name is refused before anything is signed.
        let e = sign_claims("dfsk_k", "42", 1.0, None, obj(r#"{"verified_at":1}"#)).unwrap_err();
        assert_eq!(get(&e, "code"), "reserved_trait");
        assert_eq!(get(&e, "field"), "claims.verified_at");
    }
}
