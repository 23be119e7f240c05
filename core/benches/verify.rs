//! Verification cost next to the hardware floor, in one run (`cargo bench -p dropfix-core`).
//!
//! The floor of a seed-form check is two SHA-256 compressions: the inner block (user id +
//! padding) and the outer block (inner digest + padding) of an HMAC whose keyed state was
//! computed once per secret. `seed::verify` adds hex-decoding the signature and a constant-time
//! compare; "naive" re-keys the HMAC on every call (what a customer's one-liner does).
//! BENCHMARKS.md reports the ratios.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dropfix_core::claims::{self, Claims};
use dropfix_core::{Identify, Policy, SecretKey, StrictMode, Value, decide, seed};
use hmac::{KeyInit, Mac};

const SECRET: &str = "dfsk_3f1c9a7be25d4c0e8a6b1d2f9e7c5a3b1d0f2e4c6a8b9d7f5e3c1a2b4d6f8e0a";
const USER: &str = "user_01HF8Z6Q4N2M7K3J5R9T1V0W8X";
const NOW: i64 = 1_732_406_400;

fn floor_two_compressions(state: &mut [u32; 8], blocks: &[[u8; 64]; 2]) {
    sha2::block_api::compress256(state, &blocks[..1]);
    sha2::block_api::compress256(state, &blocks[1..]);
}

fn benches(c: &mut Criterion) {
    let key = SecretKey::new(SECRET);
    let other = SecretKey::new("dfsk_another_workspace_secret_for_rotation");
    let sig = seed::sign(&key, USER);
    let mut g = c.benchmark_group("seed");
    g.bench_function("floor: 2 x sha256 compress", |b| {
        let mut blocks = [[0u8; 64]; 2];
        blocks[0][..USER.len()].copy_from_slice(USER.as_bytes());
        blocks[0][USER.len()] = 0x80;
        blocks[1][32] = 0x80;
        let mut state = [0x6a09e667u32; 8];
        b.iter(|| {
            floor_two_compressions(black_box(&mut state), black_box(&blocks));
            state[0]
        })
    });
    g.bench_function("seed::verify (1 secret)", |b| {
        let secrets = [key.clone()];
        b.iter(|| seed::verify(black_box(&secrets), black_box(USER), black_box(&sig)))
    });
    g.bench_function("seed::verify (2 secrets, match on 2nd)", |b| {
        let secrets = [other.clone(), key.clone()];
        b.iter(|| seed::verify(black_box(&secrets), black_box(USER), black_box(&sig)))
    });
    // Where the time above the floor goes.
    g.bench_function("part: hex-decode 64 digits", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(black_box(&sig), &mut out).is_ok()
        })
    });
    g.bench_function("part: keyed HMAC clone + update + finalize", |b| {
        let keyed = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        b.iter(|| {
            let mut mac = black_box(&keyed).clone();
            mac.update(black_box(USER).as_bytes());
            mac.finalize().into_bytes()[0]
        })
    });
    g.bench_function("naive: re-key HMAC per call + hex compare", |b| {
        b.iter(|| {
            let mut mac =
                hmac::Hmac::<sha2::Sha256>::new_from_slice(black_box(SECRET).as_bytes()).unwrap();
            mac.update(black_box(USER).as_bytes());
            let expected = hex::decode(black_box(&sig)).unwrap();
            mac.verify_slice(&expected).is_ok()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("claims");
    let token = claims::sign(
        &key,
        &Claims {
            sub: USER.into(),
            iat: NOW,
            exp: Some(NOW + 300),
            plan: Some("pro".into()),
            mrr: Some(49.0),
            ..Claims::default()
        },
    );
    g.bench_function("claims::verify", |b| {
        let secrets = [key.clone()];
        b.iter(|| claims::verify(black_box(&secrets), black_box(&token), NOW).is_ok())
    });
    g.finish();

    let mut g = c.benchmark_group("request");
    let body = format!(
        r#"{{"app_id":"app_0123456789abcdef01234567","user_id":"{USER}","traits":{{"name":"Ada Lovelace","email":"ada@example.com","plan":"pro","mrr":49.0,"signup_date":"2024-03-01"}},"hash":"{sig}","signedAt":{NOW}}}"#
    );
    g.bench_function("parse + validate + decide (seed form)", |b| {
        let secrets = [key.clone()];
        let policy = Policy {
            secrets: &secrets,
            strict: StrictMode::Off,
            require_signed_claims: false,
            issuers: dropfix_core::NO_ISSUERS,
        };
        b.iter(|| {
            let value: Value = serde_json::from_str(black_box(&body)).unwrap();
            let call = Identify::from_wire(&value).unwrap();
            decide(&policy, &call, NOW)
        })
    });
    g.finish();
}

criterion_group!(verify, benches);
criterion_main!(verify);
