//! Signed-claims tokens issued by the ordinary JWT library of each backend language (npm
//! `jsonwebtoken`, PyJWT, ruby-jwt), given the workspace's claims key string as the HS256 key,
//! verify in the core; tampering with what the token covers is refused, and a token the library
//! signed with the raw secret instead of the claims key is a mismatch.

use dropfix_core::{Decision, Method, Rejection, SecretKey, Value};
use dropfix_tests::{decide_enforced, run};
use serde_json::json;

const ISSUERS: [(&str, &str); 3] = [
    ("node", "jwt/node.mjs"),
    ("python3", "jwt/python.py"),
    ("ruby", "jwt/ruby.rb"),
];
const SECRET: &str = "dfsk_jwt_interop_secret";

fn issue_with_key(program: &str, script: &str, key: &str) -> String {
    run(
        program,
        &[script],
        &[
            ("DROPFIX_CLAIMS_KEY", key),
            ("SUB", "42"),
            ("PLAN", "pro"),
            ("MRR", "49"),
            ("SIGNUP_DATE", "2024-03-01"),
            ("TEAM", "core"),
        ],
    )
    .trim()
    .to_owned()
}

fn issue(program: &str, script: &str) -> String {
    let claims_key = SecretKey::new(SECRET).expose_claims_key().to_owned();
    assert!(claims_key.starts_with("dfck_"));
    issue_with_key(program, script, &claims_key)
}

fn decide(secret: &str, user_id: &str, traits: serde_json::Value, token: &str) -> Decision {
    let body = json!({
        "app_id": "app_jwt", "user_id": user_id, "traits": traits, "signature": token,
    });
    decide_enforced(body, secret, true)
}

#[test]
fn tokens_from_real_jwt_libraries_verify() {
    for (program, script) in ISSUERS {
        let token = issue(program, script);
        let sent = json!({"plan": "pro", "mrr": 49, "signup_date": "2024-03-01", "team": "core"});
        match decide(SECRET, "42", sent, &token) {
            Decision::Verified(v) => {
                assert_eq!(v.method, Method::SignedClaims, "{program}");
                assert_eq!(v.trusted.plan.as_deref(), Some("pro"), "{program}");
                assert_eq!(v.trusted.mrr, Some(49.0), "{program}");
                assert_eq!(
                    v.trusted.signup_date.as_deref(),
                    Some("2024-03-01"),
                    "{program}"
                );
                assert_eq!(
                    v.trusted.custom,
                    [("team".to_owned(), Value::Str("core".into()))],
                    "{program}"
                );
            }
            other => panic!("{program}: {other:?}"),
        }
        // The browser may omit the traits: the token's values are the trusted ones.
        assert!(
            matches!(
                decide(SECRET, "42", json!({}), &token),
                Decision::Verified(_)
            ),
            "{program}"
        );
    }
}

#[test]
fn tampering_with_library_tokens_is_refused() {
    for (program, script) in ISSUERS {
        let token = issue(program, script);
        let cases = [
            (
                "42",
                json!({"plan": "enterprise"}),
                SECRET,
                Rejection::ClaimsMismatch,
            ),
            (
                "42",
                json!({"mrr": 4900}),
                SECRET,
                Rejection::ClaimsMismatch,
            ),
            (
                "42",
                json!({"signup_date": "2020-01-01"}),
                SECRET,
                Rejection::ClaimsMismatch,
            ),
            (
                "42",
                json!({"team": "other"}),
                SECRET,
                Rejection::ClaimsMismatch,
            ),
            ("43", json!({}), SECRET, Rejection::ClaimsMismatch),
            ("42", json!({}), "dfsk_wrong", Rejection::SignatureMismatch),
        ];
        for (user_id, traits, secret, expected) in cases {
            assert_eq!(
                decide(secret, user_id, traits.clone(), &token),
                Decision::Rejected(expected),
                "{program}: {user_id} {traits}"
            );
        }
    }
}

#[test]
fn library_tokens_keyed_with_the_raw_secret_are_refused() {
    // The mistake of a backend that hands DROPFIX_SECRET_KEY to its JWT library: the seed form's
    // key must never sign a token (domain separation), so this is a mismatch, not a verification.
    for (program, script) in ISSUERS {
        let token = issue_with_key(program, script, SECRET);
        assert_eq!(
            decide(SECRET, "42", json!({}), &token),
            Decision::Rejected(Rejection::SignatureMismatch),
            "{program}"
        );
    }
}
