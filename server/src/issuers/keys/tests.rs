//! Reading issuer keys: every accepted form (PEM SubjectPublicKeyInfo, certificate, JWK of each
//! type, JWKS) and the refusals, each with a message that says what to do.

use rcgen::{
    CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
    SignatureAlgorithm,
};
use serde_json::json;

use super::*;

// Public keys made once with openssl for these tests (public: nothing here is secret).
const RSA_2048: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApws8/hDWwTk8FqKTH/Kf
ji9pxqVxI9Av5DYUMxLk4O0JWjvoR3ALeNhfvONO2CbeF4SOPPgAJ1qIyCM/ci5v
X+8UmN3OSirxkLhlUnvLMwG9YatGQICIJLK83yJzA4yNcdUIpKC/AJrJoBF4dkUi
PXmNPyS1U9Lp17iQzjPvomJ8xUbWv56XAhmXa4IJlEsaS10jU9bJ9sxLWi++GV/m
PrzSaoCKZeHC6G094JkAyo5qdwnCZtu1u+DZ3O5S1kjWNqvulr9/nfFfxJhcHDHV
pVWdTzbCKZ3THHB9GequEWAFz1aekyGWFAltOISGdvnINOK/S7X2n+zoauZ96McK
mQIDAQAB
-----END PUBLIC KEY-----
";
const RSA_1024: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC/Qs5cJWJajDlKRzyP7jL6mP6M
9qtlC4gVtyFU2UunuKjvITHt7CZz56Kx70c3UMjF9Jt5iwzOv0HV3vPKLVuH+hXY
Y2g841/K7VkrIMWjTy1F0pACW+bkHXw8UFFvycOQgFnbfBPcRENIjUoBU0TR2D+r
ueV2SDrALxOw5geLsQIDAQAB
-----END PUBLIC KEY-----
";
const RSA_2048_PKCS1: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEApws8/hDWwTk8FqKTH/Kfji9pxqVxI9Av5DYUMxLk4O0JWjvoR3AL
eNhfvONO2CbeF4SOPPgAJ1qIyCM/ci5vX+8UmN3OSirxkLhlUnvLMwG9YatGQICI
JLK83yJzA4yNcdUIpKC/AJrJoBF4dkUiPXmNPyS1U9Lp17iQzjPvomJ8xUbWv56X
AhmXa4IJlEsaS10jU9bJ9sxLWi++GV/mPrzSaoCKZeHC6G094JkAyo5qdwnCZtu1
u+DZ3O5S1kjWNqvulr9/nfFfxJhcHDHVpVWdTzbCKZ3THHB9GequEWAFz1aekyGW
FAltOISGdvnINOK/S7X2n+zoauZ96McKmQIDAQAB
-----END RSA PUBLIC KEY-----
";
const SECP256K1: &str = "-----BEGIN PUBLIC KEY-----
MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAE/+PoPk46RRbxZdBfHCoxaZjQgzYevOM7
Jr4RYBjVZhfQvWQo1ixpsc03WDGJRlwBqXOFGaK/WzHBFKRZ8Yf8sA==
-----END PUBLIC KEY-----
";

fn generated(alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).unwrap()
}

fn one(text: &str) -> PublicKey {
    let mut keys = parse_keys(text, None).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(keys.len(), 1);
    keys.remove(0)
}

fn refusal(text: &str) -> String {
    parse_keys(text, None).expect_err(text).0
}

#[test]
fn pem_public_keys_of_each_family() {
    let cases = [
        (&PKCS_ECDSA_P256_SHA256, "EC P-256", &["ES256"][..]),
        (&PKCS_ECDSA_P384_SHA384, "EC P-384", &["ES384"][..]),
        (&PKCS_ED25519, "Ed25519", &["EdDSA"][..]),
    ];
    for (alg, kind, algs) in cases {
        let pair = generated(alg);
        let key = one(&pair.public_key_pem());
        assert_eq!(key.kind(), kind);
        assert_eq!(key.algorithms(), algs);
        assert_eq!((key.kid.as_deref(), key.alg.as_deref()), (None, None));
        // The material is the key's raw public key (the SEC1 point, or Ed25519's 32 bytes).
        let raw = pair.public_key_raw();
        match &key.material {
            Material::P256(p) | Material::P384(p) => assert_eq!(p.as_slice(), raw),
            Material::Ed25519(x) => assert_eq!(x.as_slice(), raw),
            Material::Rsa { .. } => unreachable!(),
        }
    }
    let rsa = one(RSA_2048);
    assert_eq!(rsa.kind(), "RSA-2048");
    assert!(rsa.supports("RS256") && rsa.supports("PS512") && !rsa.supports("ES256"));
    let Material::Rsa { n, e } = &rsa.material else {
        unreachable!()
    };
    assert_eq!((n.len(), e.as_slice()), (256, &[1u8, 0, 1][..]));
}

#[test]
fn a_certificate_gives_its_public_key() {
    for alg in [&PKCS_ECDSA_P256_SHA256, &PKCS_ED25519] {
        let pair = generated(alg);
        let cert = CertificateParams::new(vec!["issuer.example".into()])
            .unwrap()
            .self_signed(&pair)
            .unwrap();
        assert_eq!(one(&cert.pem()), one(&pair.public_key_pem()));
    }
}

#[test]
fn several_pem_keys_and_kid() {
    let (a, b) = (generated(&PKCS_ECDSA_P256_SHA256), generated(&PKCS_ED25519));
    let both = format!("{}\n{}", a.public_key_pem(), b.public_key_pem());
    let keys = parse_keys(&both, None).unwrap();
    assert_eq!(keys.len(), 2);
    // --kid names one key only.
    let why = parse_keys(&both, Some("k1")).unwrap_err().0;
    assert!(why.contains("--kid names one key"), "{why}");
    let keys = parse_keys(&a.public_key_pem(), Some("k1")).unwrap();
    assert_eq!(keys[0].kid.as_deref(), Some("k1"));
}

#[test]
fn jwks_of_each_type_round_trip_and_keep_kid_and_alg() {
    let keys = [
        one(&generated(&PKCS_ECDSA_P256_SHA256).public_key_pem()),
        one(&generated(&PKCS_ECDSA_P384_SHA384).public_key_pem()),
        one(&generated(&PKCS_ED25519).public_key_pem()),
        one(RSA_2048),
    ];
    for key in keys {
        let mut jwk = key.to_jwk();
        assert_eq!(jwk["use"], "sig");
        assert!(jwk.get("d").is_none());
        assert_eq!(parse_jwk(&jwk).unwrap(), key, "{jwk}");
        jwk["kid"] = "k-1".into();
        jwk["alg"] = key.algorithms()[0].into();
        let named = parse_jwk(&jwk).unwrap();
        assert_eq!(named.kid.as_deref(), Some("k-1"));
        // A JWK that names its alg allows only that one.
        assert!(named.supports(key.algorithms()[0]));
        for other in ["RS256", "PS256", "ES256", "EdDSA"] {
            assert_eq!(
                named.supports(other),
                other == key.algorithms()[0],
                "{other}"
            );
        }
        assert_eq!(
            named.thumbprint(),
            key.thumbprint(),
            "kid and alg are not thumbprinted"
        );
        // The JWK read as text, and inside a JWKS, is the same key.
        assert_eq!(one(&jwk.to_string()), named);
        assert_eq!(one(&json!({"keys": [jwk]}).to_string()), named);
    }
}

#[test]
fn thumbprints_match_the_rfcs() {
    // RFC 7638 section 3.1.
    let rsa = json!({
        "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    });
    assert_eq!(
        parse_jwk(&rsa).unwrap().thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    // RFC 8037 appendix A.3.
    let ed =
        json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    assert_eq!(
        parse_jwk(&ed).unwrap().thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn private_symmetric_and_weak_keys_are_refused() {
    let pair = generated(&PKCS_ECDSA_P256_SHA256);
    assert!(refusal(&pair.serialize_pem()).contains("PRIVATE key"));
    let mut jwk = one(&pair.public_key_pem()).to_jwk();
    for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        let mut private = jwk.clone();
        private[member] = "AAAA".into();
        assert!(
            parse_jwk(&private)
                .unwrap_err()
                .0
                .contains("private or symmetric"),
            "{member}"
        );
    }
    let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
    assert!(
        parse_jwk(&oct)
            .unwrap_err()
            .0
            .contains("private or symmetric")
    );
    let oct = json!({"kty": "oct"});
    assert!(parse_jwk(&oct).unwrap_err().0.contains("symmetric (oct)"));
    // RSA under 2048 bits, as PEM and as JWK.
    let why = refusal(RSA_1024);
    assert!(
        why.contains("at least 2048 bits") && why.contains("1024"),
        "{why}"
    );
    let small = match &one(RSA_2048).material {
        Material::Rsa { n, e } => {
            json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n[..128]), "e": URL_SAFE_NO_PAD.encode(e)})
        }
        _ => unreachable!(),
    };
    assert!(parse_jwk(&small).unwrap_err().0.contains("at least 2048"));
    // An even RSA exponent is no RSA key.
    let even = json!({"kty": "RSA", "n": rsa_n_b64(), "e": URL_SAFE_NO_PAD.encode([2u8])});
    assert!(parse_jwk(&even).unwrap_err().0.contains("exponent"));
    // Not for signatures, or not for verifying.
    jwk["use"] = "enc".into();
    assert!(parse_jwk(&jwk).unwrap_err().0.contains("signature key"));
    jwk["use"] = "sig".into();
    jwk["key_ops"] = json!(["encrypt"]);
    assert!(parse_jwk(&jwk).unwrap_err().0.contains("verify"));
    jwk["key_ops"] = json!(["verify"]);
    assert!(parse_jwk(&jwk).is_ok());
}

fn rsa_n_b64() -> String {
    match &one(RSA_2048).material {
        Material::Rsa { n, .. } => URL_SAFE_NO_PAD.encode(n),
        _ => unreachable!(),
    }
}

#[test]
fn malformed_and_unsupported_keys_say_what_to_do() {
    let ec = one(&generated(&PKCS_ECDSA_P256_SHA256).public_key_pem()).to_jwk();
    let cases = [
        (json!([1]), "a JWK is a JSON object"),
        (json!({"kty": "DSA"}), "unsupported \"kty\""),
        (
            json!({"kty": "EC", "crv": "P-521", "x": ec["x"], "y": ec["y"]}),
            "P-256 and P-384",
        ),
        (
            json!({"kty": "EC", "crv": "P-256", "x": ec["x"]}),
            "no \"y\"",
        ),
        (
            json!({"kty": "EC", "crv": "P-384", "x": ec["x"], "y": ec["y"]}),
            "wrong length",
        ),
        (
            json!({"kty": "EC", "crv": "P-256", "x": "!!", "y": ec["y"]}),
            "not base64url",
        ),
        (
            json!({"kty": "OKP", "crv": "X25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
            "Ed25519",
        ),
        (
            json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
            "32 bytes",
        ),
        (
            json!({"kty": "EC", "crv": "P-256", "x": ec["x"], "y": ec["y"], "alg": "RS256"}),
            "cannot be used",
        ),
        (
            json!({"kty": "EC", "crv": "P-256", "x": ec["x"], "y": ec["y"], "alg": 7}),
            "not a string",
        ),
    ];
    for (jwk, expected) in cases {
        let why = parse_jwk(&jwk).unwrap_err().0;
        assert!(why.contains(expected), "{jwk}: {why}");
    }
    for (text, expected) in [
        ("hello", "expected a PEM public key"),
        ("{not json", "not valid JSON"),
        (RSA_2048_PKCS1, "RSA PUBLIC KEY"),
        (SECP256K1, "P-256 and P-384"),
        ("{\"keys\": []}", "no key found"),
    ] {
        let why = refusal(text);
        assert!(why.contains(expected), "{text}: {why}");
    }
    // One bad key in a registered JWKS refuses the whole file.
    let jwks = json!({"keys": [ec, {"kty": "oct", "k": "AAAA"}]});
    assert!(refusal(&jwks.to_string()).contains("private or symmetric"));
}

#[test]
fn a_published_jwks_skips_what_it_cannot_use_and_says_why() {
    let ec = one(&generated(&PKCS_ECDSA_P256_SHA256).public_key_pem());
    let mut good = ec.to_jwk();
    good["kid"] = "sig-1".into();
    let doc = json!({"keys": [
        good,
        {"kid": "enc-1", "kty": "RSA", "use": "enc", "n": rsa_n_b64(), "e": "AQAB"},
        {"kid": "small", "kty": "RSA", "n": "AQAB", "e": "AQAB"},
    ]});
    let set = parse_jwks(doc.to_string().as_bytes()).unwrap();
    assert_eq!(set.kids(), ["sig-1"]);
    assert!(set.has_kid("sig-1") && !set.has_kid("enc-1"));
    assert_eq!(set.skipped.len(), 2);
    assert!(
        set.skipped[0].starts_with("kid enc-1:"),
        "{:?}",
        set.skipped
    );
    assert!(set.skipped[1].contains("2048"), "{:?}", set.skipped);
    assert_eq!(set.candidates(Some("sig-1"), "ES256").count(), 1);
    assert_eq!(set.candidates(Some("sig-1"), "RS256").count(), 0);
    assert_eq!(set.candidates(None, "ES256").count(), 1);
    assert_eq!(set.candidates(Some("other"), "ES256").count(), 0);
    for bad in [
        &b"nope"[..],
        b"{}",
        br#"{"keys": []}"#,
        br#"{"keys": [{"kty": "oct"}]}"#,
    ] {
        assert!(parse_jwks(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    // More than MAX_KEYS: the rest are skipped, not an error.
    let many: Vec<Json> = (0..MAX_KEYS + 2)
        .map(|i| {
            let mut k = ec.to_jwk();
            k["kid"] = format!("k{i}").into();
            k
        })
        .collect();
    let set = parse_jwks(json!({"keys": many}).to_string().as_bytes()).unwrap();
    assert_eq!((set.len(), set.skipped.len()), (MAX_KEYS, 2));
    // ... but a registration of that many is refused.
    assert!(refusal(&json!({"keys": many}).to_string()).contains("more than"));
}

#[test]
fn debug_shows_no_key_material() {
    let key = one(RSA_2048);
    let shown = format!("{key:?}");
    assert!(shown.contains("RSA-2048") && shown.contains(&key.thumbprint()));
    assert!(!shown.contains(&rsa_n_b64()[..40]));
}
