//! The verifier over real HTTP, in-process: `dropfix_server::run` on `127.0.0.1:0` with a
//! temporary data dir. Every row of PROTOCOL.md's decision table, each followed by a look at the
//! store through the admin API; the stored-data rules; CORS; limits; key rotation with two live
//! secrets; strict mode changed at run time (admin API and CLI-style edit from another
//! connection); graceful shutdown finishing an in-flight request.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

use dropfix_core::claims::{self, Claims};
use dropfix_core::{SecretKey, StrictMode, seed};
use dropfix_server::Config;
use dropfix_server::workspace::WorkspacePatch;
use serde_json::{Value as Json, json};
use support::{ADMIN_TOKEN, Verifier, eventually, now, raw_request, with_store};

/// A verifier over a fresh embedded store that holds one workspace (not strict, local origins).
struct TestServer {
    server: Verifier,
    app: String,
    secret: SecretKey,
    dir: tempfile::TempDir,
}

impl Deref for TestServer {
    type Target = Verifier;

    fn deref(&self) -> &Verifier {
        &self.server
    }
}

impl TestServer {
    fn start(config: Config) -> TestServer {
        let dir = support::data_dir();
        let (app, secret) = support::workspace_on(
            &support::embedded(dir.path()),
            &support::keyring(dir.path()),
            "test",
            StrictMode::Off,
        );
        TestServer {
            server: Verifier::embedded(dir.path(), config),
            app,
            secret,
            dir,
        }
    }

    /// The stored record, or `None` (404).
    fn user(&self, user: &str) -> Option<Json> {
        let r = self.get_user(&self.app, user);
        match r.status {
            200 => Some(r.json()),
            404 => None,
            s => panic!("get user: {s} {}", r.text()),
        }
    }

    fn user_count(&self) -> usize {
        let r = self.admin(
            "GET",
            &format!("/v1/admin/workspaces/{}/users?limit=1000", self.app),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["users"].as_array().unwrap().len()
    }

    fn patch(&self, body: Json) {
        let r = self.admin(
            "PATCH",
            &format!("/v1/admin/workspaces/{}", self.app),
            Some(body),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

fn signed(app: &str, secret: &SecretKey, user: &str, signed_at: i64, traits: Json) -> Json {
    json!({"app_id": app, "user_id": user, "traits": traits,
           "signature": seed::sign(secret, user), "signedAt": signed_at})
}

fn token(secret: &SecretKey, sub: &str, plan: Option<&str>, mrr: Option<f64>) -> String {
    claims::sign(
        secret,
        &Claims {
            sub: sub.into(),
            iat: now(),
            plan: plan.map(String::from),
            mrr,
            ..Claims::default()
        },
    )
}

/// Asserts a 401 with `code`, no CORS surprise, a message, and that nothing was stored.
fn assert_rejected(s: &TestServer, body: Json, code: &str) {
    let users_before = s.user_count();
    let r = s.identify(&body);
    assert_eq!(r.status, 401, "{code}: {}", r.text());
    let j = r.json();
    assert_eq!(j["error"]["code"], code, "{j}");
    assert!(!j["error"]["message"].as_str().unwrap().is_empty());
    if let Some(sig) = body["signature"].as_str() {
        assert!(!r.text().contains(sig), "a 401 must not echo the signature");
    }
    let expected = seed::sign(&s.secret, body["user_id"].as_str().unwrap_or(""));
    assert!(
        !r.text().contains(&expected),
        "a 401 must not reveal the expected signature"
    );
    assert_eq!(s.user_count(), users_before, "{code}: a 401 stores nothing");
}

#[test]
fn decision_table_rows_over_http() {
    let s = TestServer::start(Config::default());
    let (app, key) = (s.app.clone(), s.secret.clone());
    let t = now();

    // No signature, not strict: 202, stored unverified.
    let r = s.identify(
        &json!({"app_id": app, "user_id": "u-unsigned", "traits": {"plan": "pro", "mrr": 10}}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"verified": false, "user_id": "u-unsigned", "method": null})
    );
    let u = s.user("u-unsigned").unwrap();
    assert_eq!(
        (u["verified"].clone(), u["plan"].clone()),
        (json!(false), json!("pro"))
    );

    // Valid seed signature: 200, stored verified with plan and MRR, how and when.
    let r = s.identify(&signed(
        &app,
        &key,
        "42",
        t,
        json!({"plan": "pro", "mrr": 49.0, "email": "ada@example.com"}),
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"verified": true, "user_id": "42", "method": "seed_hmac"})
    );
    let u = s.user("42").unwrap();
    assert_eq!(u["verified"], true);
    assert_eq!(u["method"], "seed_hmac");
    assert_eq!(u["plan"], "pro");
    assert_eq!(
        u["mrr"].to_string(),
        "49",
        "a whole MRR reads back as an integer"
    );
    assert_eq!(u["signed_at"], t);
    assert!(u["verified_at"].as_i64().unwrap() >= t);

    // A numeric user id is its decimal string, and `hash` is an alias.
    let r = s.identify(
        &json!({"app_id": app, "user_id": 7, "hash": seed::sign(&key, "7"), "signed_at": t}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(s.user("7").is_some());

    // Valid signed claims: 200, the token's values are the trusted ones.
    let tok = token(&key, "claims-user", Some("business"), Some(299.0));
    let r = s.identify(&json!({"app_id": app, "user_id": "claims-user", "signature": tok}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["method"], "signed_claims");
    let u = s.user("claims-user").unwrap();
    assert_eq!(
        (u["plan"].clone(), u["mrr"].clone()),
        (json!("business"), json!(299))
    );

    // The 401 rows: nothing stored.
    assert_rejected(
        &s,
        json!({"app_id": app, "user_id": "other", "signature": seed::sign(&key, "42"), "signedAt": t}),
        "signature_mismatch",
    );
    assert_rejected(
        &s,
        signed(&app, &SecretKey::new("dfsk_wrong"), "x1", t, json!({})),
        "signature_mismatch",
    );
    assert_rejected(
        &s,
        signed(&app, &key, "x2", t - 301, json!({})),
        "signature_expired",
    );
    assert_rejected(
        &s,
        signed(&app, &key, "x3", t + 120, json!({})),
        "signed_at_in_future",
    );
    assert_rejected(
        &s,
        json!({"app_id": app, "user_id": "x4", "signature": seed::sign(&key, "x4")}),
        "signed_at_missing",
    );
    assert_rejected(
        &s,
        signed(&app, &key, "x5", t * 1000, json!({})),
        "signed_at_not_seconds",
    );
    assert_rejected(
        &s,
        json!({"app_id": app, "user_id": "x6", "signature": "abc123", "signedAt": t}),
        "signature_malformed",
    );
    assert_rejected(
        &s,
        json!({"app_id": app, "user_id": "x7", "signature": token(&key, "x7", Some("pro"), None), "traits": {"plan": "enterprise"}}),
        "claims_mismatch",
    );
    assert_rejected(
        &s,
        json!({"app_id": app, "user_id": "x8", "signature": token(&key, "someone-else", None, None)}),
        "claims_mismatch",
    );
    let mut none_alg = tok.clone();
    none_alg.replace_range(
        ..tok.find('.').unwrap(),
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
    );
    assert_rejected(
        &s,
        json!({"app_id": app, "user_id": "claims-user", "signature": none_alg}),
        "signature_malformed",
    );
    // Signed-claims attacks, each a 401 with its code and nothing stored.
    let b64 = |v: &Json| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims_call =
        |user: &str, token: String| json!({"app_id": app, "user_id": user, "signature": token});
    let wrong_key = token(
        &SecretKey::new("dfsk_not_this_workspace"),
        "c1",
        Some("pro"),
        None,
    );
    assert_rejected(
        &s,
        claims_call("c1", wrong_key.clone()),
        "signature_mismatch",
    );
    // A token's refusals speak of tokens, not of the seed form's hex digest.
    let message = s.identify(&claims_call("c1", wrong_key)).json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("claims key") && !message.contains("hex"),
        "{message}"
    );
    let good = token(&key, "c2", Some("pro"), Some(49.0));
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&json!({"sub": "c2", "iat": now(), "plan": "enterprise"})),
        parts[2]
    );
    assert_rejected(&s, claims_call("c2", tampered), "signature_mismatch");
    let rs256 = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        parts[1],
        parts[2]
    );
    // A public-key alg goes to the workspace's token issuers (it has none), never to the key.
    assert_rejected(&s, claims_call("c2", rs256), "unknown_issuer");
    // Tokens too old, past their own expiry, or issued in the future: (sub, iat, exp, code).
    for (sub, iat, exp, code) in [
        ("c3", now() - 600, None, "signature_expired"),
        ("c4", now() - 10, Some(now() - 5), "signature_expired"),
        ("c5", now() + 600, None, "signed_at_in_future"),
    ] {
        let claims = Claims {
            sub: sub.into(),
            iat,
            exp,
            ..Claims::default()
        };
        assert_rejected(&s, claims_call(sub, claims::sign(&key, &claims)), code);
    }
    let r = s.identify(&json!({"app_id": "app_nope", "user_id": "x9"}));
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (401, json!("unknown_app"))
    );

    // Strict mode: unsigned is 401, signed still verifies.
    s.patch(json!({"strict": "on"}));
    assert_rejected(
        &s,
        json!({"app_id": app, "user_id": "x10"}),
        "signature_required",
    );
    assert_eq!(
        s.identify(&signed(&app, &key, "42", now(), json!({})))
            .status,
        200
    );

    // Signed claims required: the seed form and unsigned calls get their own code.
    s.patch(json!({"strict": "off", "require_signed_claims": true}));
    assert_rejected(
        &s,
        signed(&app, &key, "x11", now(), json!({})),
        "signed_claims_required",
    );
    assert_rejected(
        &s,
        json!({"app_id": app, "user_id": "x12"}),
        "signed_claims_required",
    );
    let r = s.identify(&json!({"app_id": app, "user_id": "claims-user", "signature": token(&key, "claims-user", Some("business"), None)}));
    assert_eq!(r.status, 200, "{}", r.text());

    // 400 / 413 / 415 / 405: nothing stored.
    let before = s.user_count();
    let r = s.identify(&json!({"app_id": app, "user_id": "", "traits": {}}));
    assert_eq!(
        (r.status, r.json()["error"]["field"].clone()),
        (400, json!("user_id"))
    );
    let r = s.identify(&json!({"app_id": app, "user_id": "n", "traits": {"mrr": -5}}));
    assert_eq!(
        (r.status, r.json()["error"]["field"].clone()),
        (400, json!("traits.mrr"))
    );
    let r = s.identify(&json!({"app_id": app, "user_id": "n", "traits": {"plan": 3}}));
    assert_eq!(
        (r.status, r.json()["error"]["field"].clone()),
        (400, json!("traits.plan"))
    );
    let big = format!(
        r#"{{"app_id":"{app}","user_id":"big","traits":{{"name":"{}"}}}}"#,
        "a".repeat(17 * 1024)
    );
    let r = s.request(
        "POST",
        "/v1/identify",
        &[("Content-Type", "application/json")],
        big.as_bytes(),
    );
    assert_eq!(r.status, 413);
    let text_type = [("Content-Type", "text/plain")];
    let r = s.request("POST", "/v1/identify", &text_type, b"{}");
    assert_eq!(r.status, 415);
    let r = s.request("GET", "/v1/identify", &[], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    assert_eq!(s.user_count(), before);

    // Metrics count outcomes by code.
    let m = s.admin("GET", "/metrics", None).text();
    assert!(
        m.contains(r#"dropfix_identify_requests_total{outcome="signature_mismatch"} 5"#),
        "{m}"
    );
    assert!(m.contains("dropfix_store_commit_batch_size"), "{m}");
    assert!(m.contains("dropfix_identify_duration_seconds"), "{m}");
}

#[test]
fn unverified_calls_never_overwrite_or_downgrade_a_verified_user() {
    let s = TestServer::start(Config::default());
    let (app, key) = (s.app.clone(), s.secret.clone());
    let r = s.identify(&signed(
        &app,
        &key,
        "u1",
        now(),
        json!({"plan": "starter", "mrr": 19}),
    ));
    assert_eq!(r.status, 200);
    let r = s.identify(
        &json!({"app_id": app, "user_id": "u1", "traits": {"plan": "enterprise", "mrr": 99999}}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let u = s.user("u1").unwrap();
    assert_eq!(u["verified"], true, "never downgraded");
    assert_eq!(u["method"], "seed_hmac");
    assert_eq!(
        (u["plan"].clone(), u["mrr"].clone()),
        (json!("starter"), json!(19))
    );
    assert_eq!(
        u["unverified_claims"]["plan"], "enterprise",
        "the claim is kept aside: {u}"
    );
    // Verified-only listing is what downstream reads.
    let r = s.identify(&json!({"app_id": app, "user_id": "u2", "traits": {"plan": "x"}}));
    assert_eq!(r.status, 202);
    let r = s.admin(
        "GET",
        &format!("/v1/admin/workspaces/{app}/users?verified=true"),
        None,
    );
    let ids: Vec<_> = r.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].clone())
        .collect();
    assert_eq!(ids, [json!("u1")]);
}

/// A custom trait named like a misspelled standard one (`emial`, `signupDate`, `Plan`) is stored
/// as sent, as a custom trait; with `?explain=1` (the SDK's debug mode) the answer says so, for
/// the call's traits and a token's; without it the answer is unchanged.
#[test]
fn explain_names_custom_traits_that_misspell_standard_ones() {
    let s = TestServer::start(Config::default());
    let (app, key) = (s.app.clone(), s.secret.clone());
    let explain = |body: &Json| {
        let bytes = body.to_string();
        s.request(
            "POST",
            "/v1/identify?app_id=x&explain=1",
            &[("Content-Type", "application/json")],
            bytes.as_bytes(),
        )
    };
    let traits = json!({"emial": "ada@example.com", "signupDate": "2024-03-01", "Plan": "pro",
                        "team": "core", "plan": "free"});
    let r = explain(&signed(&app, &key, "m1", now(), traits.clone()));
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["verified"], true);
    let hints: Vec<(&str, &str)> = j["hints"]
        .as_array()
        .expect("hints")
        .iter()
        .map(|h| (h["field"].as_str().unwrap(), h["message"].as_str().unwrap()))
        .collect();
    let mut fields: Vec<&str> = hints.iter().map(|h| h.0).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["traits.Plan", "traits.emial", "traits.signupDate"],
        "{j}"
    );
    let message = |field: &str| hints.iter().find(|h| h.0 == field).unwrap().1;
    assert!(message("traits.emial").ends_with("did you mean email?"));
    assert!(message("traits.signupDate").ends_with("did you mean signup_date?"));
    assert!(message("traits.Plan").contains("stored as a custom trait"));
    // Stored as sent: the hint changes nothing.
    let u = s.user("m1").unwrap();
    assert_eq!(u["email"], Json::Null);
    assert_eq!(u["plan"], "free");
    assert_eq!(u["custom"]["emial"], "ada@example.com", "{u}");

    // A token's custom traits, and an unverified call, are explained too.
    let tok = claims::sign(
        &key,
        &Claims {
            sub: "m2".into(),
            iat: now(),
            custom: vec![("nmae".into(), dropfix_core::Value::Str("Ada".into()))],
            ..Claims::default()
        },
    );
    let r = explain(&json!({"app_id": app, "user_id": "m2", "signature": tok}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["hints"][0]["field"], "traits.nmae", "{}", r.text());
    let r = explain(&json!({"app_id": app, "user_id": "m3", "traits": {"e-mail": "a@b.c"}}));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["hints"][0]["field"], "traits.e-mail");

    // Nothing to say, or not asked: no `hints` key at all.
    let r = explain(&signed(&app, &key, "m4", now(), json!({"team": "core"})));
    assert_eq!(
        r.json(),
        json!({"verified": true, "user_id": "m4", "method": "seed_hmac"})
    );
    let r = s.identify(&signed(&app, &key, "m5", now(), traits));
    assert_eq!(
        r.json(),
        json!({"verified": true, "user_id": "m5", "method": "seed_hmac"})
    );
}

/// Custom traits a token signs are the verified user's; what the browser adds beside a valid
/// token, or sends without one, is kept aside as a claim and never replaces them.
#[test]
fn custom_traits_a_token_signs_are_not_replaced_by_unsigned_ones() {
    let s = TestServer::start(Config::default());
    let (app, key) = (s.app.clone(), s.secret.clone());
    let tok = claims::sign(
        &key,
        &Claims {
            sub: "t1".into(),
            iat: now(),
            plan: Some("pro".into()),
            custom: vec![("seats".into(), dropfix_core::Value::Int(5))],
            ..Claims::default()
        },
    );
    // Beside the token: a trait it signs (same value) and two it does not.
    let r = s.identify(&json!({"app_id": app, "user_id": "t1", "signature": tok,
        "traits": {"seats": 5, "is_admin": true, "tier": "enterprise"}}));
    assert_eq!(r.status, 200, "{}", r.text());
    let u = s.user("t1").unwrap();
    assert_eq!(u["custom"], json!({"seats": 5}), "{u}");
    assert_eq!(
        u["unverified_claims"]["custom"],
        json!({"is_admin": true, "tier": "enterprise"}),
        "{u}"
    );
    // Without a signature: nothing of the verified user's set changes.
    let r = s.identify(&json!({"app_id": app, "user_id": "t1",
        "traits": {"seats": 9999, "tier": "platinum"}}));
    assert_eq!(r.status, 202, "{}", r.text());
    let u = s.user("t1").unwrap();
    assert_eq!(u["custom"], json!({"seats": 5}), "{u}");
    assert_eq!(u["plan"], "pro");
    assert_eq!(
        u["unverified_claims"]["custom"],
        json!({"seats": 9999, "tier": "platinum"})
    );
    // The seed form vouches for the call's traits, custom ones included, as before.
    let r = s.identify(&signed(&app, &key, "t1", now(), json!({"tier": "gold"})));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.user("t1").unwrap()["custom"], json!({"tier": "gold"}));
}

#[test]
fn report_only_strict_mode_stores_and_counts() {
    let s = TestServer::start(Config::default());
    s.patch(json!({"strict": "report_only"}));
    let r = s.identify(&json!({"app_id": s.app, "user_id": "r1"}));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(s.user("r1").unwrap()["verified"], false);
    let m = s.admin("GET", "/metrics", None).text();
    let line = format!(
        r#"dropfix_strict_would_reject_total{{app_id="{}"}} 1"#,
        s.app
    );
    assert!(m.contains(&line), "{m}");
}

#[test]
fn cors_follows_each_workspaces_allowed_origins() {
    let s = TestServer::start(Config::default());
    s.patch(json!({"allowed_origins": ["https://app.example.com"]}));
    let preflight = |origin: &str, query: &str| {
        s.request(
            "OPTIONS",
            &format!("/v1/identify{query}"),
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            b"",
        )
    };
    let q = format!("?app_id={}", s.app);
    let ok = preflight("https://app.example.com", &q);
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(ok.header("access-control-allow-methods"), Some("POST"));
    let bad = preflight("https://evil.example", &q);
    assert_eq!(
        (bad.status, bad.header("access-control-allow-origin")),
        (403, None)
    );
    // Localhost is no longer allowed for this workspace.
    assert_eq!(preflight("http://localhost:3000", &q).status, 403);

    let post = |origin: &str, user: &str| {
        s.request(
            "POST",
            "/v1/identify",
            &[("Content-Type", "application/json"), ("Origin", origin)],
            json!({"app_id": s.app, "user_id": user})
                .to_string()
                .as_bytes(),
        )
    };
    let r = post("https://app.example.com", "c1");
    assert_eq!(r.status, 202);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = post("https://evil.example", "c2");
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (403, None)
    );
    assert!(s.user("c2").is_none());
    // Errors carry CORS headers for allowed origins, so the SDK can read the code.
    let r = s.request(
        "POST",
        "/v1/identify",
        &[
            ("Content-Type", "application/json"),
            ("Origin", "https://app.example.com"),
        ],
        json!({"app_id": s.app, "user_id": "c3", "signature": "zz", "signedAt": now()})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let s = TestServer::start(Config {
        rate_per_ip: 2,
        ..Config::default()
    });
    let statuses: Vec<u16> = (0..6)
        .map(|i| {
            s.identify(&json!({"app_id": s.app, "user_id": format!("r{i}")}))
                .status
        })
        .collect();
    assert_eq!(
        &statuses[..4],
        [202, 202, 202, 202],
        "burst of twice the rate"
    );
    let r = s.identify(&json!({"app_id": s.app, "user_id": "r-limited"}));
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "rate_limited");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait));
    assert!(s.user("r-limited").is_none(), "a 429 stores nothing");

    let s = TestServer::start(Config {
        rate_per_app: 1,
        ..Config::default()
    });
    assert_eq!(
        s.identify(&json!({"app_id": s.app, "user_id": "a"})).status,
        202
    );
    assert_eq!(
        s.identify(&json!({"app_id": s.app, "user_id": "b"})).status,
        202
    );
    assert_eq!(
        s.identify(&json!({"app_id": s.app, "user_id": "c"})).status,
        429
    );
}

#[test]
fn key_rotation_keeps_both_secrets_until_retired() {
    let s = TestServer::start(Config::default());
    let (app, old) = (s.app.clone(), s.secret.clone());
    let r = s.admin(
        "POST",
        &format!("/v1/admin/workspaces/{app}/rotate"),
        Some(json!({"grace_seconds": 3600})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let new = SecretKey::new(r.json()["secret"].as_str().unwrap());
    assert_ne!(new.expose_secret(), old.expose_secret());
    // The new key's claims key comes with it (shown once), and is not the secret.
    let claims_key = r.json()["claims_key"].as_str().unwrap().to_string();
    assert_eq!(claims_key, new.expose_claims_key());
    assert!(claims_key.starts_with("dfck_") && claims_key != new.expose_secret());
    assert_eq!(
        s.identify(&signed(&app, &old, "k-old", now(), json!({})))
            .status,
        200
    );
    assert_eq!(
        s.identify(&signed(&app, &new, "k-new", now(), json!({})))
            .status,
        200
    );
    // The record says which key verified it, so operators see when the old one is unused.
    assert_ne!(
        s.user("k-old").unwrap()["key_id"],
        s.user("k-new").unwrap()["key_id"]
    );
    let r = s.admin(
        "POST",
        &format!("/v1/admin/workspaces/{app}/retire-old"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["keys"].as_array().unwrap().len(), 1);
    assert_rejected(
        &s,
        signed(&app, &old, "k-old-2", now(), json!({})),
        "signature_mismatch",
    );
    assert_eq!(
        s.identify(&signed(&app, &new, "k-new-2", now(), json!({})))
            .status,
        200
    );
    // Listing workspaces never shows a secret.
    let list = s.admin("GET", "/v1/admin/workspaces", None).text();
    assert!(
        !list.contains(new.expose_secret()) && !list.contains("secret"),
        "{list}"
    );
}

#[test]
fn edits_from_another_process_take_effect_while_running() {
    let s = TestServer::start(Config::default());
    assert_eq!(
        s.identify(&json!({"app_id": s.app, "user_id": "e1"}))
            .status,
        202
    );
    // What `dropfix-server workspace set APP --strict on` does: a separate connection.
    with_store(s.data_dir(), async |store| {
        store
            .update_workspace(
                &s.app,
                &WorkspacePatch {
                    strict: Some(StrictMode::Enforce),
                    ..Default::default()
                },
                "cli",
                now(),
            )
            .await
            .unwrap()
    });
    let mut attempt = 0;
    let rejected = eventually("strict mode to take effect", || {
        attempt += 1;
        let user = format!("e2-{attempt}");
        let r = s.identify(&json!({"app_id": s.app, "user_id": user}));
        (r.status == 401).then_some(user)
    });
    assert!(s.user(&rejected).is_none());
}

#[test]
fn admin_api_needs_the_token() {
    let s = TestServer::start(Config::default());
    let r = s.request("GET", "/v1/admin/workspaces", &[], b"");
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
    let wrong_token = [("Authorization", "Bearer wrong")];
    let r = s.request("GET", "/v1/admin/workspaces", &wrong_token, b"");
    assert_eq!(r.status, 401);
    let r = s.admin(
        "POST",
        "/v1/admin/workspaces",
        Some(json!({"name": "n", "strict": "sometimes"})),
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!("invalid_value"))
    );
    let r = s.admin(
        "POST",
        "/v1/admin/workspaces",
        Some(json!({"name": "n", "allowed_origins": ["example.com/"]})),
    );
    assert_eq!(r.status, 400);
    // Names that would forge lines in listings and logs, or that nobody could read.
    let long = "n".repeat(101);
    for name in ["a\u{0}b", "<b>x</b>\r\nINFO fake", "   ", long.as_str()] {
        let r = s.admin(
            "POST",
            "/v1/admin/workspaces",
            Some(json!({ "name": name })),
        );
        assert_eq!(r.status, 400, "{name:?}: {}", r.text());
        let r = s.admin(
            "PATCH",
            &format!("/v1/admin/workspaces/{}", s.app),
            Some(json!({ "name": name })),
        );
        assert_eq!(r.status, 400, "{name:?}: {}", r.text());
    }
    let r = s.admin(
        "POST",
        "/v1/admin/workspaces",
        Some(json!({"name": "second"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert!(created["secret"].as_str().unwrap().starts_with("dfsk_"));
    let (app2, key2) = (
        created["app_id"].as_str().unwrap().to_string(),
        SecretKey::new(created["secret"].as_str().unwrap()),
    );
    // The new workspace works at once, and the first workspace's secret does not verify it.
    assert_eq!(
        s.identify(&signed(&app2, &key2, "w2", now(), json!({})))
            .status,
        200
    );
    assert_eq!(
        s.identify(&signed(&app2, &s.secret, "w2", now(), json!({})))
            .status,
        401
    );
    let r = s.get_user(&app2, "nobody");
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (404, json!("user_not_found"))
    );
}

/// The identify body limit, at the byte: a body of exactly the limit is read, one byte more is
/// 413 whether declared or chunked, a declared oversize body is refused before it is sent (not
/// waited for), and a broken chunked body is 400 body_unreadable, not a size error.
#[test]
fn identify_bodies_are_read_within_the_limit() {
    let s = TestServer::start(Config {
        body_timeout: Duration::from_secs(60),
        ..Config::default()
    });
    let limit = dropfix_core::MAX_BODY_BYTES;
    let call = json!({"app_id": s.app, "user_id": "at-limit"}).to_string();
    let at_limit = format!("{}{call}", " ".repeat(limit - call.len()));
    let json_type = [("Content-Type", "application/json")];
    let r = s.request("POST", "/v1/identify", &json_type, at_limit.as_bytes());
    assert_eq!(r.status, 202, "{}", r.text());
    let over = format!(" {at_limit}");
    let r = s.request("POST", "/v1/identify", &json_type, over.as_bytes());
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (413, json!("body_too_large"))
    );

    // Declared too large, body never sent, connection left open: answered from the head.
    let mut stream = TcpStream::connect(s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /v1/identify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        limit + 1
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = [0u8; 12];
    stream
        .read_exact(&mut answer)
        .expect("an oversize declared body is answered without waiting for it");
    assert_eq!(&answer, b"HTTP/1.1 413");

    let chunked = |chunks: &[&[u8]]| {
        let mut req = b"POST /v1/identify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                        Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        for c in chunks {
            req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            req.extend_from_slice(c);
            req.extend_from_slice(b"\r\n");
        }
        req
    };
    let mut big = chunked(&[over.as_bytes()]);
    big.extend_from_slice(b"0\r\n\r\n");
    let r = raw_request(s.addr, &big);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (413, json!("body_too_large"))
    );
    let mut broken = chunked(&[b"{\"app_id\""]);
    broken.extend_from_slice(b"zz\r\nnot a chunk size\r\n");
    let r = raw_request(s.addr, &broken);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!("body_unreadable"))
    );
    assert!(s.user("at-limit").is_some());
}

/// Each endpoint answers only its methods: anything else is a 405 naming the allowed one (not
/// the endpoint's answer, nor a 404), and unknown paths are 404.
#[test]
fn endpoints_answer_their_methods_only() {
    let s = TestServer::start(Config::default());
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let with_token: &[(&str, &str)] = &[("Authorization", &auth)];
    let r = s.request("GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.request("GET", "/metrics", with_token, b"");
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .contains("# TYPE dropfix_connections_refused_per_client_cap counter")
    );
    for (method, path, allow) in [
        ("POST", "/healthz", "GET"),
        ("DELETE", "/healthz", "GET"),
        ("POST", "/metrics", "GET"),
        ("PUT", "/metrics", "GET"),
        ("GET", "/v1/identify", "POST"),
        ("PUT", "/v1/identify", "POST"),
    ] {
        let r = s.request(method, path, with_token, b"");
        assert_eq!(
            (
                r.status,
                r.header("allow"),
                r.json()["error"]["code"].clone()
            ),
            (405, Some(allow), json!("method_not_allowed")),
            "{method} {path}"
        );
    }
    // The console and the admin API answer their own prefixes only.
    let r = s.request("GET", "/console", &[], b"");
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/console/login"))
    );
    let r = s.request("GET", "/console/login", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let r = s.request("GET", "/v1/admin/workspaces", with_token, b"");
    assert_eq!(r.status, 200);
    for path in [
        "/",
        "/v1/identif",
        "/healthz/x",
        "/v1/admin",
        "/consoles",
        "/x/console/",
    ] {
        let r = s.request("GET", path, &[], b"");
        assert_eq!(
            (r.status, r.json()["error"]["code"].clone()),
            (404, json!("not_found")),
            "GET {path}"
        );
    }
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let mut s = TestServer::start(Config::default());
    let body = json!({"app_id": s.app, "user_id": "in-flight"}).to_string();
    let head = format!(
        "POST /v1/identify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // Send the head and half the body, then ask the server to stop.
    let mut stream = TcpStream::connect(s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.server.begin_stop();
    std::thread::sleep(Duration::from_millis(200));
    // New connections are refused once the listener is closed.
    eventually("listener closed", || {
        TcpStream::connect(s.addr).is_err().then_some(())
    });
    // The in-flight request completes and is answered.
    stream.write_all(&body.as_bytes()[10..]).unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).unwrap();
    let r = support::parse_response(&buf).expect("a response");
    assert_eq!(r.status, 202, "{}", r.text());
    s.server.stop();
    // And it was stored.
    let stored = with_store(s.data_dir(), async |store| {
        store.get_user(&s.app, "in-flight").await.unwrap()
    });
    assert!(stored.is_some());
}

#[test]
fn admin_query_values_are_checked_and_lists_match_single_users() {
    let s = TestServer::start(Config::default());
    let app = s.app.clone();
    let r = s.identify(&signed(
        &app,
        &s.secret,
        "q-verified",
        now(),
        json!({"plan": "pro", "mrr": 5000}),
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.identify(&json!({"app_id": app, "user_id": "q-unverified", "traits": {"plan": "x"}}));
    assert_eq!(r.status, 202);
    let list = |query: &str| {
        s.admin(
            "GET",
            &format!("/v1/admin/workspaces/{app}/users?{query}"),
            None,
        )
    };
    // What Python's requests sends for params={"verified": True}: refused, never "all users".
    for (query, param) in [
        ("verified=True", "verified"),
        ("verified=yes", "verified"),
        ("verified=", "verified"),
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=100001", "limit"),
        ("limit=-1", "limit"),
        ("after=", "after"),
        ("verifed=true", "verifed"),
        ("verified=true&verified=false", "verified"),
    ] {
        let r = list(query);
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["field"], param, "{query}: {e}");
        assert!(e["message"].as_str().unwrap().contains(param), "{e}");
    }
    let ids = |query: &str| -> Vec<String> {
        let r = list(query);
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        r.json()["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["user_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("verified=true"), ["q-verified"]);
    assert_eq!(ids("verified=1"), ["q-verified"]);
    assert_eq!(ids("verified=false"), ["q-unverified"]);
    assert_eq!(ids("verified=0"), ["q-unverified"]);
    assert_eq!(ids("limit=1").len(), 1);
    assert_eq!(ids("search=unver"), ["q-unverified"]);
    // The list and the single-user endpoint give the same record, fields in the same order,
    // and a whole MRR stays an integer.
    let listed = list("verified=true").text();
    let single = s.get_user(&app, "q-verified").text();
    let inner = listed
        .strip_prefix("{\"users\":[")
        .and_then(|t| t.split("],\"next_after\"").next())
        .unwrap();
    assert_eq!(inner, single);
    assert!(single.contains("\"mrr\":5000,"), "{single}");
    // Other admin endpoints take no query parameters at all.
    let r = s.admin("GET", &format!("/v1/admin/workspaces/{app}?x=1"), None);
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn cli_text_output_shows_rfc3339_times_in_aligned_columns() {
    let s = TestServer::start(Config::default());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dropfix-server"))
        .args(["workspace", "list", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let key_line = text.lines().find(|l| l.starts_with("key ")).unwrap();
    // "created 2026-11-25T16:00:00Z by test"
    let created = key_line.split("created ").nth(1).unwrap();
    let stamp = created
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(',');
    assert!(
        stamp.len() == 20 && stamp.as_bytes()[10] == b'T' && stamp.ends_with('Z'),
        "{key_line}"
    );
    // Every value starts in the same column, whatever the label's width.
    let columns: Vec<usize> = text
        .lines()
        .filter(|l| !l.is_empty() && l.contains(": "))
        .map(|l| {
            let colon = l.find(':').unwrap();
            colon + 1 + l[colon + 1..].len() - l[colon + 1..].trim_start().len()
        })
        .collect();
    assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour codes off a terminal");
}

/// The README's summary of the decision table names every refusal the verifier answers with
/// (`signed_claims_required` was missing), so a newcomer reading only the README sees them all.
#[test]
fn the_readme_decision_table_names_every_rejection_code() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .unwrap();
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| Situation | Status | Stored |"))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(!table.is_empty(), "the README's decision table");
    for r in dropfix_core::Rejection::ALL {
        let code = format!("{} `{}`", r.status(), r.code());
        assert!(
            table.iter().any(|row| row.contains(&code)),
            "{code} is not in the README's decision table"
        );
    }
}

/// The README states no figure that drifts with every change (mutant counts, how long a run
/// takes): those are printed by the runs themselves and recorded, dated, in RELIABILITY.md.
#[test]
fn the_readme_copies_no_drifting_figures() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .unwrap();
    let words: Vec<&str> = readme.split_whitespace().collect();
    let drifting: Vec<String> = words
        .windows(2)
        .filter(|w| {
            let n = w[0].trim_start_matches(['(', '~']);
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit())
                && ["mutants", "caught", "unviable", "missed"]
                    .iter()
                    .any(|n| w[1].trim_end_matches([',', '.', ')', ':']) == *n)
        })
        .map(|w| w.join(" "))
        .collect();
    assert!(drifting.is_empty(), "figures that drift: {drifting:?}");
    for phrase in ["minutes on 2", "minutes on two"] {
        assert!(
            !readme.contains(phrase),
            "a run time in the README: {phrase}"
        );
    }
}
