//! Signed-claims tokens issued by the ordinary JWT library of each backend language (npm
//! `jsonwebtoken`, PyJWT, ruby-jwt) verify in the core, and tampering with what the token covers
//! is refused.

use dropfix_core::{Decision, Identify, Method, Policy, Rejection, SecretKey, StrictMode, Value};
use dropfix_tests::{now, run};
use serde_json::json;

const ISSUERS: [(&str, &str); 3] = [
    ("node", "jwt/node.mjs"),
    ("python3", "jwt/python.py"),
    ("ruby", "jwt/ruby.rb"),
];
const SECRET: &str = "dfsk_jwt_interop_secret";

fn issue(program: &str, script: &str) -> String {
    run(
        program,
        &[script],
        &[
            ("DROPFIX_SECRET_KEY", SECRET),
            ("SUB", "42"),
            ("PLAN", "pro"),
            ("MRR", "49"),
        ],
    )
    .trim()
    .to_owned()
}

fn decide(secret: &str, user_id: &str, traits: serde_json::Value, token: &str) -> Decision {
    let body: Value = serde_json::from_value(json!({
        "app_id": "app_jwt", "user_id": user_id, "traits": traits, "signature": token,
    }))
    .unwrap();
    let call = Identify::from_wire(&body).unwrap();
    let secrets = [SecretKey::new(secret)];
    let policy = Policy {
        secrets: &secrets,
        strict: StrictMode::Enforce,
        require_signed_claims: true,
    };
    dropfix_core::decide(&policy, &call, now())
}

#[test]
fn tokens_from_real_jwt_libraries_verify() {
    for (program, script) in ISSUERS {
        let token = issue(program, script);
        match decide(SECRET, "42", json!({"plan": "pro", "mrr": 49}), &token) {
            Decision::Verified(v) => {
                assert_eq!(v.method, Method::SignedClaims, "{program}");
                assert_eq!(v.trusted.plan.as_deref(), Some("pro"), "{program}");
                assert_eq!(v.trusted.mrr, Some(49.0), "{program}");
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
