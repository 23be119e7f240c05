//! Per-request cost of verifying an identify call's token, by algorithm, in one run: HS256 signed
//! claims (the claims key) next to public-key tokens of a registered issuer (ES256, EdDSA, RS256,
//! PS256). Each measures the whole decision (`dropfix_core::decide`: parse the token, choose the
//! issuer and key, check the signature and the claims), not only the signature.
//!
//! `cargo bench -p dropfix-server --bench issuer_tokens`; BENCHMARKS.md quotes a run.
//! The RSA key in fixtures/ is a throwaway made for this benchmark and signs nothing else.

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use dropfix_core::claims::{self, Claims};
use dropfix_core::{Decision, Identify, Policy, SecretKey, StrictMode, Traits, decide};
use dropfix_server::issuers::{IssuerInput, NoJwks, WorkspaceIssuers};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::json;

const NOW: i64 = 1_900_000_000;
const RSA_PEM: &str = include_str!("fixtures/rsa2048-test-only.pem");

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn payload() -> String {
    json!({"sub": "42", "iat": NOW, "exp": NOW + 300, "plan": "pro", "mrr": 49}).to_string()
}

fn input(alg: &str) -> String {
    let header = json!({"alg": alg, "kid": "k1", "typ": "JWT"}).to_string();
    format!("{}.{}", b64(header.as_bytes()), b64(payload().as_bytes()))
}

/// A token of each public-key algorithm and the JWK that verifies it.
fn tokens() -> Vec<(&'static str, String, serde_json::Value)> {
    let rng = SystemRandom::new();
    let mut out = Vec::new();
    let es = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref(),
        &rng,
    )
    .unwrap();
    let p = es.public_key().as_ref();
    let jwk =
        json!({"kty": "EC", "crv": "P-256", "kid": "k1", "x": b64(&p[1..33]), "y": b64(&p[33..])});
    let i = input("ES256");
    let sig = es.sign(&rng, i.as_bytes()).unwrap();
    out.push(("ES256", format!("{i}.{}", b64(sig.as_ref())), jwk));

    let ed =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": b64(ed.public_key().as_ref())});
    let i = input("EdDSA");
    out.push((
        "EdDSA",
        format!("{i}.{}", b64(ed.sign(i.as_bytes()).as_ref())),
        jwk,
    ));

    let rsa = RsaKeyPair::from_pkcs8(&pem_der(RSA_PEM)).unwrap();
    let parts = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(rsa.public());
    let (n, e) = (parts.n, parts.e);
    let jwk = json!({"kty": "RSA", "kid": "k1", "n": b64(&n), "e": b64(&e)});
    for (alg, padding) in [
        (
            "RS256",
            &signature::RSA_PKCS1_SHA256 as &dyn signature::RsaEncoding,
        ),
        ("PS256", &signature::RSA_PSS_SHA256),
    ] {
        let i = input(alg);
        let mut sig = vec![0; rsa.public().modulus_len()];
        rsa.sign(padding, &rng, i.as_bytes(), &mut sig).unwrap();
        out.push((alg, format!("{i}.{}", b64(&sig)), jwk.clone()));
    }
    out
}

fn call(token: String) -> Identify {
    Identify {
        app_id: "app_bench".into(),
        user_id: "42".into(),
        traits: Traits::default(),
        signature: Some(token),
        signed_at: None,
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("token verification (whole decision)");
    let secret = SecretKey::new("dfsk_bench_secret");
    let hs = claims::sign(
        &secret,
        &Claims::from_traits(
            "42",
            NOW,
            Some(NOW + 300),
            Traits {
                plan: Some("pro".into()),
                mrr: Some(49.0),
                ..Traits::default()
            },
        ),
    );
    let secrets = [secret];
    let none = dropfix_core::NO_ISSUERS;
    let policy = Policy {
        secrets: &secrets,
        strict: StrictMode::Enforce,
        require_signed_claims: true,
        issuers: none,
    };
    let hs_call = call(hs);
    assert!(matches!(
        decide(&policy, &hs_call, NOW),
        Decision::Verified(_)
    ));
    g.bench_function("HS256 (claims key)", |b| {
        b.iter(|| decide(black_box(&policy), black_box(&hs_call), NOW))
    });
    for (alg, token, jwk) in tokens() {
        let issuer = IssuerInput {
            name: "backend".into(),
            public_keys: vec![jwk],
            algorithms: Some(vec![alg.into()]),
            ..Default::default()
        }
        .into_config()
        .unwrap()
        .check()
        .unwrap();
        let list = [issuer];
        let issuers = WorkspaceIssuers {
            issuers: &list,
            jwks: &NoJwks,
        };
        let policy = Policy {
            issuers: &issuers,
            ..policy
        };
        let the_call = call(token);
        let verified = decide(&policy, &the_call, NOW);
        assert!(
            matches!(verified, Decision::Verified(_)),
            "{alg}: {verified:?}"
        );
        g.bench_function(alg, |b| {
            b.iter(|| decide(black_box(&policy), black_box(&the_call), NOW))
        });
    }
    g.finish();
}

criterion_group!(issuer_tokens, benches);
criterion_main!(issuer_tokens);
