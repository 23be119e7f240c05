//! Runs the shared vector file through the core: RFC 4231, seed-form signatures, and every
//! decision case (every row of the decision table, both signature forms).

use dropfix_core::{Decision, Identify, Policy, SecretKey, StrictMode, Value, seed};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value as Json;
use sha2::Sha256;

/// The one vector file (`tests/vectors/seed.json` at the workspace root), embedded at compile time.
const VECTORS: &str = include_str!("../../tests/vectors/seed.json");

fn vectors() -> Json {
    serde_json::from_str(VECTORS).expect("tests/vectors/seed.json is valid JSON")
}

/// Runs a decision case of the vector file through the core and describes the outcome in the
/// vector file's terms (`{"outcome", "code"?, "field"?, "method"?, ...}`).
pub fn run_decision_case(case: &Json) -> Json {
    let body: Value = serde_json::from_value(case["request"].clone()).expect("request parses");
    let call = match Identify::from_wire(&body) {
        Ok(call) => call,
        Err(e) => {
            return serde_json::json!({"outcome": "invalid", "code": e.code, "field": e.field});
        }
    };
    let secrets: Vec<SecretKey> = case["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| SecretKey::new(s.as_str().unwrap()))
        .collect();
    let policy = Policy {
        secrets: &secrets,
        strict: StrictMode::parse(case["strict"].as_str().unwrap()).unwrap(),
        require_signed_claims: case["require_signed_claims"].as_bool().unwrap(),
        issuers: dropfix_core::NO_ISSUERS,
    };
    decision_json(&dropfix_core::decide(
        &policy,
        &call,
        case["now"].as_i64().unwrap(),
    ))
}

/// A decision in the vector file's terms.
pub fn decision_json(decision: &Decision) -> Json {
    match decision {
        Decision::Verified(v) => {
            let mut trusted = serde_json::Map::new();
            let t = &v.trusted;
            for (k, val) in [
                ("name", &t.name),
                ("email", &t.email),
                ("plan", &t.plan),
                ("signup_date", &t.signup_date),
            ] {
                if let Some(val) = val {
                    trusted.insert(k.into(), val.clone().into());
                }
            }
            if let Some(mrr) = t.mrr {
                trusted.insert("mrr".into(), mrr.into());
            }
            if !t.custom.is_empty() {
                let custom: serde_json::Map<String, Json> = t
                    .custom
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap()))
                    .collect();
                trusted.insert("custom".into(), custom.into());
            }
            serde_json::json!({"outcome": "verified", "method": v.method.as_str(),
                               "key_index": v.key_index, "trusted": trusted})
        }
        Decision::Unverified { would_reject: None } => serde_json::json!({"outcome": "unverified"}),
        Decision::Unverified {
            would_reject: Some(r),
        } => serde_json::json!({"outcome": "unverified", "would_reject": r.code()}),
        Decision::Rejected(r) => serde_json::json!({"outcome": "rejected", "code": r.code()}),
    }
}

#[test]
fn rfc4231() {
    let v = vectors();
    let cases = v["rfc4231"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    let mut through_core = 0;
    for case in cases {
        let key = hex::decode(case["key_hex"].as_str().unwrap()).unwrap();
        let data = hex::decode(case["data_hex"].as_str().unwrap()).unwrap();
        let expected = case["mac_hex"].as_str().unwrap();
        // The core's key is a secret *string* (its UTF-8 bytes are the HMAC key, as in the page's
        // snippets), so cases whose key and data are valid UTF-8 go through `seed::sign` itself;
        // the others check the same HMAC primitive the core is built on.
        let mac = match (
            String::from_utf8(key.clone()),
            String::from_utf8(data.clone()),
        ) {
            (Ok(k), Ok(d)) => {
                through_core += 1;
                seed::sign(&SecretKey::new(k), &d)
            }
            _ => {
                let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
                mac.update(&data);
                hex::encode(mac.finalize().into_bytes())
            }
        };
        assert!(
            mac.starts_with(expected),
            "{}: {mac} != {expected}",
            case["name"]
        );
    }
    assert_eq!(through_core, 3, "cases 1, 2 and 5 run through the core");
}

#[test]
fn hmac_cases() {
    let v = vectors();
    for case in v["hmac_cases"].as_array().unwrap() {
        let secret = SecretKey::new(case["secret"].as_str().unwrap());
        let user_id = case["user_id"].as_str().unwrap();
        let expected = case["signature"].as_str().unwrap();
        assert_eq!(seed::sign(&secret, user_id), expected, "{}", case["name"]);
        assert_eq!(
            seed::verify(std::slice::from_ref(&secret), user_id, expected),
            seed::SeedCheck::Valid { key_index: 0 }
        );
    }
}

/// The claims key of each secret, computed by generate.py with plain `hmac`/`hashlib` (HKDF written
/// out), and a token it signed: the core derives the same key and verifies the token.
#[test]
fn claims_keys() {
    let v = vectors();
    let keys = v["claims_keys"].as_array().unwrap();
    assert!(keys.len() >= 4);
    for case in keys {
        let secret = SecretKey::new(case["secret"].as_str().unwrap());
        assert_eq!(
            secret.expose_claims_key(),
            case["claims_key"].as_str().unwrap(),
            "{case}"
        );
    }
    let t = &v["claims_token"];
    let secret = SecretKey::new(t["secret"].as_str().unwrap());
    assert_eq!(
        secret.expose_claims_key(),
        t["claims_key"].as_str().unwrap()
    );
    let (claims, key_index) = dropfix_core::claims::verify(
        std::slice::from_ref(&secret),
        t["token"].as_str().unwrap(),
        t["now"].as_i64().unwrap(),
    )
    .unwrap();
    assert_eq!((claims.sub.as_str(), key_index), ("42", 0));
    assert_eq!(claims.plan.as_deref(), Some("pro"));
    assert_eq!(claims.mrr, Some(49.0));
}

#[test]
fn decision_cases() {
    let v = vectors();
    let cases = v["decision_cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    let mut failures = Vec::new();
    for case in cases {
        let got = run_decision_case(case);
        let expect = &case["expect"];
        // Compare only what the vector states (a verified case may omit `trusted`).
        let matches =
            expect.as_object().unwrap().iter().all(|(k, v)| {
                &got[k] == v || (k == "trusted" && v.as_object().unwrap().is_empty())
            });
        if !matches {
            failures.push(format!("{}: expected {expect}, got {got}", case["name"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
