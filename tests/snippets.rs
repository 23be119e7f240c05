//! The seed page's Node, Python and Ruby snippets, run for real, produce signatures the core
//! accepts; a signature for another user, or made with another secret, is refused.
//!
//! The snippet files hold the page's code verbatim between BEGIN/END markers; the first test
//! checks that against the page text so the copies cannot drift.

use dropfix_core::{Decision, Method, Rejection};
use dropfix_tests::{decide_enforced, now, run, tests_dir, vectors};
use serde_json::{Value as Json, json};

const SNIPPETS: [(&str, &str); 3] = [
    ("node", "snippets/node.mjs"),
    ("python3", "snippets/python.py"),
    ("ruby", "snippets/ruby.rb"),
];

fn sign_with(program: &str, script: &str, secret: &str, user_id: &str) -> (String, i64) {
    let out = run(
        program,
        &[script],
        &[("DROPFIX_SECRET_KEY", secret), ("USER_ID", user_id)],
    );
    let json: Json =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{program}: {e}: {out}"));
    (
        json["dropfix_hash"].as_str().unwrap().to_owned(),
        json["dropfix_signed_at"].as_i64().unwrap(),
    )
}

fn decide(secret: &str, user_id: &str, signature: &str, signed_at: i64) -> Decision {
    let body = json!({
        "app_id": "app_snippets", "user_id": user_id,
        "traits": {"plan": "pro", "mrr": 49}, "signature": signature, "signedAt": signed_at,
    });
    decide_enforced(body, secret, false)
}

#[test]
fn snippets_are_verbatim_copies_of_the_page() {
    let page = include_str!("snippets/page.txt");
    let page_lines: Vec<&str> = page.lines().map(str::trim).collect();
    for (_, script) in SNIPPETS {
        let text = std::fs::read_to_string(tests_dir().join(script)).unwrap();
        let start = text.find("BEGIN seed snippet").expect("BEGIN marker");
        let end = text.find("END seed snippet").expect("END marker");
        let body: Vec<&str> = text[start..end].lines().skip(1).map(str::trim).collect();
        let body: Vec<&str> = body[..body.len() - 1].to_vec(); // drop the END comment's prefix line
        assert!(body.len() >= 6, "{script}: snippet too short");
        // Every line of the snippet appears, in order, in the page.
        let mut at = 0;
        for line in &body {
            let found = page_lines[at..]
                .iter()
                .position(|p| p.contains(line))
                .unwrap_or_else(|| panic!("{script}: `{line}` is not on the page"));
            at += found;
        }
    }
}

#[test]
fn snippets_match_the_shared_vectors() {
    let v = vectors();
    for case in v["hmac_cases"].as_array().unwrap() {
        let secret = case["secret"].as_str().unwrap();
        let user_id = case["user_id"].as_str().unwrap();
        for (program, script) in SNIPPETS {
            let (hash, _) = sign_with(program, script, secret, user_id);
            assert_eq!(
                hash,
                case["signature"].as_str().unwrap(),
                "{program}: {}",
                case["name"]
            );
        }
    }
}

#[test]
fn what_the_snippets_print_is_accepted_and_tampering_is_not() {
    let secret = "dfsk_snippet_test_secret";
    for user_id in ["42", "José-用户 🙂", " spaced id "] {
        for (program, script) in SNIPPETS {
            let (hash, signed_at) = sign_with(program, script, secret, user_id);
            assert!(
                (now() - signed_at).abs() < 60,
                "{program}: signedAt is Unix seconds"
            );
            match decide(secret, user_id, &hash, signed_at) {
                Decision::Verified(v) => assert_eq!(v.method, Method::SeedHmac),
                other => panic!("{program} {user_id:?}: {other:?}"),
            }
            assert_eq!(
                decide(secret, "someone-else", &hash, signed_at),
                Decision::Rejected(Rejection::SignatureMismatch),
                "{program}: another user's id"
            );
            assert_eq!(
                decide("dfsk_another_secret", user_id, &hash, signed_at),
                Decision::Rejected(Rejection::SignatureMismatch),
                "{program}: another secret"
            );
            assert_eq!(
                decide(secret, user_id, &hash, signed_at - 301),
                Decision::Rejected(Rejection::SignatureExpired),
                "{program}: stale"
            );
        }
    }
}

/// Issue 17, finding 1, end to end with the page's real snippets: an attacker registers a user id
/// equal to a token's signing input, the customer's backend signs it with the snippet at login, and
/// the attacker sends `signing_input "." base64url(hex-decoded hash)` as a signed-claims token for
/// user 1001. Tokens are keyed with the claims key, so this is a mismatch (it verified, with the
/// attacker's plan and MRR, when both forms shared the secret).
#[test]
fn a_snippet_hash_of_a_registered_signing_input_is_not_a_token() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let secret = "dfsk_snippet_test_secret";
    let payload = format!(
        r#"{{"sub":"1001","iat":{},"plan":"enterprise","mrr":99999}}"#,
        now()
    );
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
        URL_SAFE_NO_PAD.encode(payload)
    );
    for (program, script) in SNIPPETS {
        let (hash, _) = sign_with(program, script, secret, &signing_input);
        let raw: Vec<u8> = (0..hash.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hash[i..i + 2], 16).unwrap())
            .collect();
        let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(raw));
        let body = json!({"app_id": "app_snippets", "user_id": "1001", "signature": forged});
        assert_eq!(
            decide_enforced(body, secret, true),
            Decision::Rejected(Rejection::SignatureMismatch),
            "{program}"
        );
    }
}
