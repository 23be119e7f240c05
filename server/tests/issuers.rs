//! Public-key tokens through the running verifier: a workspace trusts its backend's public key
//! (registered through the admin API, P-256 and Ed25519 here; every algorithm and three JWT
//! libraries are in tests/issuer_interop.rs), identify calls carrying tokens signed with the
//! private key are stored verified with the token's traits, and every refusal stores nothing.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dropfix_core::StrictMode;
use dropfix_server::Config;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::{Value as Json, json};
use support::{Verifier, now};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key of the customer's backend.
enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl Signer {
    fn es256() -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Signer::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn eddsa() -> Signer {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Signer::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            Signer::Es256(_) => "ES256",
            Signer::EdDsa(_) => "EdDSA",
        }
    }

    fn public_jwk(&self, kid: &str) -> Json {
        match self {
            Signer::Es256(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&p[1..33]), "y": b64(&p[33..])})
            }
            Signer::EdDsa(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(k.public_key().as_ref())})
            }
        }
    }

    /// A compact JWS over `header` and `payload` as given (attacks change either).
    fn sign_raw(&self, header: &Json, payload: &Json) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let sig = match self {
            Signer::Es256(k) => k
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Signer::EdDsa(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }

    fn sign(&self, kid: &str, payload: &Json) -> String {
        self.sign_raw(
            &json!({"alg": self.alg(), "kid": kid, "typ": "JWT"}),
            payload,
        )
    }
}

struct Env {
    server: Verifier,
    app: String,
    _dir: tempfile::TempDir,
}

fn start(strict: StrictMode) -> Env {
    let dir = support::data_dir();
    let (app, _secret) = support::workspace_on(
        &support::embedded(dir.path()),
        &support::keyring(dir.path()),
        "issuers",
        strict,
    );
    Env {
        server: Verifier::embedded(dir.path(), Config::default()),
        app,
        _dir: dir,
    }
}

impl Env {
    fn add_issuer(&self, body: Json) -> support::Response {
        let path = format!("/v1/admin/workspaces/{}/issuers", self.app);
        self.server.admin("POST", &path, Some(body))
    }

    fn identify(&self, user: &str, traits: Json, token: &str) -> support::Response {
        self.server.identify(&json!({
            "app_id": self.app, "user_id": user, "traits": traits, "signature": token,
        }))
    }

    fn stored(&self, user: &str) -> Option<Json> {
        let r = self.server.get_user(&self.app, user);
        (r.status == 200).then(|| r.json())
    }
}

fn claims(user: &str, extra: Json) -> Json {
    let t = now();
    let mut c = json!({"sub": user, "iat": t, "exp": t + 300});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
fn tokens_of_a_registered_public_key_verify_and_store_their_traits() {
    let env = start(StrictMode::Enforce);
    let (es, ed) = (Signer::es256(), Signer::eddsa());
    let r = env.add_issuer(json!({
        "name": "backend",
        "public_keys": [{"keys": [es.public_jwk("es-1"), ed.public_jwk("ed-1")]}],
    }));
    assert_eq!(r.status, 201, "{}", r.text());
    let listed = r.json();
    assert_eq!(
        listed["token_issuers"][0]["key_ids"],
        json!(["es-1", "ed-1"])
    );
    for (signer, kid, user) in [(&es, "es-1", "u-es"), (&ed, "ed-1", "u-ed")] {
        let token = signer.sign(
            kid,
            &claims(user, json!({"plan": "pro", "mrr": 49, "seats": 5})),
        );
        let r = env.identify(user, json!({"plan": "pro"}), &token);
        assert_eq!(r.status, 200, "{}: {}", signer.alg(), r.text());
        assert_eq!(r.json()["method"], "issuer_token");
        let u = env.stored(user).unwrap();
        assert_eq!(u["verified"], true, "{u}");
        assert_eq!(u["method"], "issuer_token", "{u}");
        assert_eq!(u["plan"], "pro", "{u}");
        assert_eq!(u["mrr"], 49.0, "{u}");
        assert_eq!(u["custom"]["seats"], 5, "{u}");
    }
}

#[test]
fn every_refusal_has_its_code_and_stores_nothing() {
    let env = start(StrictMode::Enforce);
    let (es, other) = (Signer::es256(), Signer::es256());
    let r = env.add_issuer(
        json!({"name": "backend", "public_keys": [es.public_jwk("k1")],
        "audiences": ["my-app"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let good = |extra: Json| {
        claims(
            "victim",
            json!({"aud": "my-app"})
                .as_object()
                .unwrap()
                .clone()
                .into_iter()
                .chain(extra.as_object().unwrap().clone())
                .collect::<serde_json::Map<_, _>>()
                .into(),
        )
    };
    let public_pem_bytes = es.public_jwk("k1").to_string();
    let hs256 = {
        // HS256 "signed" with the public key's JWK text as the secret (alg confusion).
        use hmac::{KeyInit, Mac};
        let header = b64(br#"{"alg":"HS256","kid":"k1"}"#);
        let payload = b64(good(json!({})).to_string().as_bytes());
        let input = format!("{header}.{payload}");
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(public_pem_bytes.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(good(json!({})).to_string().as_bytes())
    );
    let cases: Vec<(&str, String, &str, u16)> = vec![
        (
            "another key, same kid",
            other.sign("k1", &good(json!({}))),
            "signature_mismatch",
            401,
        ),
        (
            "the attacker's key embedded as jwk",
            other.sign_raw(
                &json!({"alg": "ES256", "kid": "k1", "jwk": other.public_jwk("k1")}),
                &good(json!({})),
            ),
            "signature_mismatch",
            401,
        ),
        (
            "the attacker's JWKS as jku",
            other.sign_raw(
                &json!({"alg": "ES256", "jku": "https://evil.example/jwks.json"}),
                &good(json!({})),
            ),
            "signature_mismatch",
            401,
        ),
        (
            "HS256 keyed with the public JWK",
            hs256,
            "signature_mismatch",
            401,
        ),
        ("alg none", none, "signature_malformed", 401),
        (
            "an unknown kid",
            es.sign("k2", &good(json!({}))),
            "unknown_key_id",
            401,
        ),
        (
            "wrong aud",
            es.sign("k1", &good(json!({"aud": "other-app"}))),
            "audience_mismatch",
            401,
        ),
        (
            "an iss the key is not registered with",
            es.sign("k1", &good(json!({"iss": "https://idp.example/"}))),
            "unknown_issuer",
            401,
        ),
        (
            "expired",
            es.sign("k1", &good(json!({"exp": now() - 1}))),
            "token_expired",
            401,
        ),
        (
            "not yet valid",
            es.sign("k1", &good(json!({"nbf": now() + 3600}))),
            "token_not_yet_valid",
            401,
        ),
        (
            "no exp",
            {
                let mut c = good(json!({}));
                c.as_object_mut().unwrap().remove("exp");
                es.sign("k1", &c)
            },
            "signature_malformed",
            401,
        ),
        (
            "a token for another user",
            es.sign("k1", &claims("someone-else", json!({"aud": "my-app"}))),
            "claims_mismatch",
            401,
        ),
        (
            "RS256 named for an EC key",
            es.sign_raw(&json!({"alg": "RS256", "kid": "k1"}), &good(json!({}))),
            "algorithm_not_allowed",
            401,
        ),
    ];
    for (what, token, code, status) in cases {
        let r = env.identify("victim", json!({"plan": "enterprise"}), &token);
        assert_eq!(
            (
                r.status,
                r.json()["error"]["code"].as_str().unwrap_or_default()
            ),
            (status, code),
            "{what}: {}",
            r.text()
        );
        assert!(
            env.stored("victim").is_none(),
            "{what}: a refused call was stored"
        );
    }
    // Traits the browser sends against the token's: tampering.
    let token = es.sign("k1", &good(json!({"plan": "free"})));
    let r = env.identify("victim", json!({"plan": "enterprise"}), &token);
    assert_eq!(r.json()["error"]["code"], "claims_mismatch");
    assert!(env.stored("victim").is_none());
    // And the honest call goes through.
    let r = env.identify("victim", json!({"plan": "free"}), &token);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn the_admin_api_refuses_what_cannot_verify_and_lists_no_private_material() {
    let env = start(StrictMode::Off);
    let es = Signer::es256();
    let mut private = es.public_jwk("k1");
    private["d"] = json!("c2VjcmV0");
    for (body, code) in [
        (
            json!({"name": "p", "public_keys": [private]}),
            "invalid_issuer",
        ),
        (
            json!({"name": "o", "public_keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            "invalid_issuer",
        ),
        (
            json!({"name": "j", "jwks_url": "http://idp.example/jwks", "iss": "x", "audiences": ["a"]}),
            "invalid_issuer",
        ),
        (
            json!({"name": "j", "jwks_url": "https://idp.example/jwks", "iss": "x"}),
            "invalid_issuer",
        ),
        (
            json!({"name": "bad name!", "public_keys": [es.public_jwk("k")]}),
            "invalid_issuer",
        ),
        (
            json!({"name": "n", "public_keys": [es.public_jwk("k")], "algorithms": ["HS256"]}),
            "invalid_issuer",
        ),
        (
            json!({"name": "n", "public_keys": [es.public_jwk("k")], "algorithms": ["RS256"]}),
            "invalid_issuer",
        ),
        // A shared signer's key (an iss) without an audience would take other apps' tokens.
        (
            json!({"name": "n", "public_keys": [es.public_jwk("k")], "iss": "https://accounts.example"}),
            "invalid_issuer",
        ),
        // RSA with e = 1 can never verify anything.
        (
            json!({"name": "n", "public_keys": [{"kty": "RSA", "e": "AQ", "n": b64(&[0xc5; 256])}]}),
            "invalid_issuer",
        ),
    ] {
        let r = env.add_issuer(body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], code, "{body}");
    }
    let r = env.add_issuer(json!({"name": "n", "public_keys": [es.public_jwk("k")]}));
    assert_eq!(r.status, 201);
    assert_eq!(
        env.add_issuer(json!({"name": "n", "public_keys": [es.public_jwk("k")]}))
            .status,
        409
    );
    let listed = env.server.admin(
        "GET",
        &format!("/v1/admin/workspaces/{}/issuers", env.app),
        None,
    );
    assert!(!listed.text().contains("\"d\""), "{}", listed.text());
    let gone = env.server.admin(
        "DELETE",
        &format!("/v1/admin/workspaces/{}/issuers/n", env.app),
        None,
    );
    assert_eq!(gone.status, 200, "{}", gone.text());
    assert_eq!(gone.json()["token_issuers"], json!([]));
    let again = env.server.admin(
        "DELETE",
        &format!("/v1/admin/workspaces/{}/issuers/n", env.app),
        None,
    );
    assert_eq!(again.status, 404);
}

// ---------------------------------------------------------------------------------------------
// An identity provider's tokens: keys fetched from its JWKS URL

mod idp {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use dropfix_core::StrictMode;
    use dropfix_server::Config;
    use dropfix_server::issuers::jwks::Timing;
    use serde_json::{Value as Json, json};

    use super::support::idp::{Answer, Ca, Provider, new_ca, options};
    use super::support::{Verifier, now};
    use super::{Env, Signer};

    const ISS: &str = "https://idp.test/";

    fn jwks(keys: &[(&Signer, &str)]) -> Answer {
        let keys: Vec<Json> = keys.iter().map(|(s, kid)| s.public_jwk(kid)).collect();
        Answer::Json {
            body: json!({ "keys": keys }).to_string(),
            headers: "Cache-Control: max-age=3600\r\n".into(),
        }
    }

    fn timing() -> Timing {
        Timing {
            refetch_interval: Duration::from_secs(1),
            max_stale: Duration::from_secs(4),
            min_lifetime: Duration::from_secs(2),
            max_lifetime: Duration::from_secs(2),
            default_lifetime: Duration::from_secs(2),
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_millis(500),
        }
    }

    /// A verifier whose JWKS fetches trust `ca` and may reach 127.0.0.1 (`allow_private`).
    fn start(ca: &Ca, allow_private: bool) -> Env {
        let dir = super::support::data_dir();
        let (app, _) = super::support::workspace_on(
            &super::support::embedded(dir.path()),
            &super::support::keyring(dir.path()),
            "idp",
            StrictMode::Enforce,
        );
        let mut jwks = options(ca);
        jwks.allow_private_addresses = allow_private;
        jwks.timeout = Duration::from_secs(2);
        let config = Config {
            jwks,
            jwks_timing: timing(),
            ..Config::default()
        };
        Env {
            server: Verifier::embedded(dir.path(), config),
            app,
            _dir: dir,
        }
    }

    fn id_token(signer: &Signer, kid: &str, user: &str) -> String {
        let t = now();
        signer.sign(
            kid,
            &json!({"iss": ISS, "aud": ["client-1", "other"], "sub": user, "iat": t, "exp": t + 3600,
                "email": format!("{user}@example.com"), "email_verified": true,
                "https://acme.example/plan": "pro"}),
        )
    }

    fn code(r: &super::support::Response) -> (u16, String) {
        let code = r.json()["error"]["code"].as_str().unwrap_or("").to_string();
        (r.status, code)
    }

    fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + within;
        while !f() {
            assert!(Instant::now() < end, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn a_providers_tokens_verify_through_rotation_and_outage() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ca = new_ca("idp test CA");
        let (a, b) = (Signer::es256(), Signer::es256());
        let provider = rt.block_on(Provider::start(&ca, jwks(&[(&a, "a")])));
        let env = start(&ca, true);
        let r = env.add_issuer(
            json!({"name": "idp", "jwks_url": provider.url(), "iss": ISS,
            "audiences": ["client-1"], "claims": [
                {"claim": "email", "trait": "email"},
                {"claim": "https://acme.example/plan", "trait": "plan"}]}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        // The provider's token verifies; its mapped claims are the trusted traits.
        let r = env.identify("u1", json!({}), &id_token(&a, "a", "u1"));
        assert_eq!(r.status, 200, "{}", r.text());
        let u = env.stored("u1").unwrap();
        assert_eq!(
            (u["email"].as_str(), u["plan"].as_str()),
            (Some("u1@example.com"), Some("pro"))
        );
        assert_eq!(u["custom"], json!({}), "unmapped claims are no traits: {u}");
        // An email the provider calls unverified is not vouched for.
        let t = now();
        let unverified = a.sign(
            "a",
            &json!({"iss": ISS, "aud": "client-1", "sub": "u0", "iat": t,
            "exp": t + 600, "email": "ceo@victim.example", "email_verified": false}),
        );
        assert_eq!(env.identify("u0", json!({}), &unverified).status, 200);
        assert_eq!(env.stored("u0").unwrap()["email"], Json::Null);
        // The console shows the issuer and its fetched keys.
        let listed = env.server.admin(
            "GET",
            &format!("/v1/admin/workspaces/{}/issuers", env.app),
            None,
        );
        let fetch = &listed.json()["token_issuers"][0]["fetch"];
        assert_eq!(fetch["ok"], true, "{fetch}");
        assert_eq!(fetch["key_ids"], json!(["a"]), "{fetch}");
        // Rotation: the provider now serves only key b. A token naming b makes the verifier
        // fetch again (once the refetch interval since the last fetch has passed).
        provider.set(jwks(&[(&b, "b")]));
        std::thread::sleep(Duration::from_millis(1100));
        let r = env.identify("u2", json!({}), &id_token(&b, "b", "u2"));
        assert_eq!(r.status, 200, "after rotation: {}", r.text());
        // The old kid is gone with the old set.
        let r = env.identify("u3", json!({}), &id_token(&a, "a", "u3"));
        assert_eq!(code(&r), (401, "unknown_key_id".into()), "{}", r.text());
        assert!(env.stored("u3").is_none());
        // Outage: the last good keys keep verifying...
        provider.set(Answer::Down);
        let r = env.identify("u4", json!({}), &id_token(&b, "b", "u4"));
        assert_eq!(r.status, 200, "during the outage: {}", r.text());
        // ...until the staleness bound (4 s here, 72 h in production) drops them: 503, not 401.
        let mut n = 0;
        wait_until(
            "the stale keys were never dropped",
            Duration::from_secs(10),
            || {
                n += 1;
                let user = format!("stale-{n}");
                env.identify(&user, json!({}), &id_token(&b, "b", &user))
                    .status
                    == 503
            },
        );
        let r = env.identify("u5", json!({}), &id_token(&b, "b", "u5"));
        assert_eq!(code(&r), (503, "issuer_unavailable".into()), "{}", r.text());
        assert!(env.stored("u5").is_none());
        // The provider is back: the next token fetches and verifies.
        provider.set(jwks(&[(&b, "b")]));
        wait_until(
            "the provider's return was never noticed",
            Duration::from_secs(10),
            || {
                env.identify("u6", json!({}), &id_token(&b, "b", "u6"))
                    .status
                    == 200
            },
        );
        drop(rt);
    }

    #[test]
    fn random_kids_cannot_make_the_verifier_hammer_the_provider() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ca = new_ca("idp test CA");
        let a = Signer::es256();
        let provider = rt.block_on(Provider::start(&ca, jwks(&[(&a, "a")])));
        let env = start(&ca, true);
        let r = env.add_issuer(
            json!({"name": "idp", "jwks_url": provider.url(), "iss": ISS,
            "audiences": ["client-1"]}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(
            env.identify("u1", json!({}), &id_token(&a, "a", "u1"))
                .status,
            200
        );
        let before = provider.requests();
        // 3 s of tokens with random kids, as fast as one client sends them.
        let end = Instant::now() + Duration::from_secs(3);
        let mut sent = 0;
        while Instant::now() < end {
            let kid = format!("random-{sent}");
            let r = env.identify("u2", json!({}), &id_token(&a, &kid, "u2"));
            assert_eq!(code(&r), (401, "unknown_key_id".into()));
            sent += 1;
        }
        let fetched = provider.requests() - before;
        // One refetch per second (the test's interval; 30 s in production), plus the background
        // refresh of the 2 s lifetime.
        assert!(sent > 100, "only {sent} calls sent");
        assert!(fetched <= 6, "{sent} random kids caused {fetched} fetches");
    }

    #[test]
    fn a_provider_never_reached_or_on_a_private_address_gives_503_and_no_connection() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ca = new_ca("idp test CA");
        let a = Signer::es256();
        let provider = rt.block_on(Provider::start(&ca, jwks(&[(&a, "a")])));
        // Without the operator flag, 127.0.0.1 is refused before any connection.
        let env = start(&ca, false);
        let r = env.add_issuer(
            json!({"name": "idp", "jwks_url": provider.url(), "iss": ISS,
            "audiences": ["client-1"]}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let r = env.identify("u1", json!({}), &id_token(&a, "a", "u1"));
        assert_eq!(code(&r), (503, "issuer_unavailable".into()), "{}", r.text());
        assert!(env.stored("u1").is_none());
        assert_eq!(provider.connections.load(Ordering::SeqCst), 0);
        let fetch = &env
            .server
            .admin(
                "GET",
                &format!("/v1/admin/workspaces/{}/issuers", env.app),
                None,
            )
            .json()["token_issuers"][0]["fetch"];
        assert_eq!(fetch["ok"], false, "{fetch}");
        assert!(
            fetch["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("private"),
            "{fetch}"
        );
        // A provider that is down from the start: 503 too.
        provider.set(Answer::Down);
        let env = start(&ca, true);
        env.add_issuer(
            json!({"name": "idp", "jwks_url": provider.url(), "iss": ISS,
            "audiences": ["client-1"]}),
        );
        let r = env.identify("u1", json!({}), &id_token(&a, "a", "u1"));
        assert_eq!(code(&r), (503, "issuer_unavailable".into()), "{}", r.text());
    }
}
