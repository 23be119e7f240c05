//! Public-key tokens issued by the ordinary JWT library of each backend language (Node `jose`,
//! PyJWT with `cryptography`, ruby-jwt with `rbnacl` for EdDSA), for ES256, ES384, EdDSA, RS256
//! and PS256, verify in the core through the verifier's token issuers (`WorkspaceIssuers`) with the
//! public key registered as PEM and as JWK, in a workspace that holds no secret at all; and the
//! attack set is refused, each case with its exact decision code.
//!
//! Keys are made by the `openssl` CLI for each run; nothing here is a fixed test key.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use dropfix_core::{Decision, Method, Rejection, TokenIssuers, Value};
use dropfix_server::issuers::keys::parse_keys;
use dropfix_server::issuers::{Issuer, IssuerConfig, NoJwks, WorkspaceIssuers};
use dropfix_tests::{decide_with_issuers, run, tests_dir};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;

const LIBRARIES: [(&str, &str); 3] = [
    ("node", "jwt/pk-node.mjs"),
    ("python3", "jwt/pk-python.py"),
    ("ruby", "jwt/pk-ruby.rb"),
];
/// (alg, key file, kid)
const ALGS: [(&str, &str, &str); 5] = [
    ("ES256", "ec", "backend-ec"),
    ("ES384", "ec384", "backend-ec384"),
    ("EdDSA", "ed", "backend-ed"),
    ("RS256", "rsa", "backend-rsa"),
    ("PS256", "rsa", "backend-rsa"),
];
const ISS: &str = "https://backend.example";
const AUD: &str = "dropfix-app";

/// Private keys in PKCS#8 PEM and their public halves (SPKI PEM), made for this run.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let keys = Keys {
            dir: tempfile::tempdir().unwrap(),
        };
        let specs: [(&str, &[&str]); 6] = [
            (
                "ec",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            ),
            (
                "ec384",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            ),
            ("ed", &["-algorithm", "ED25519"]),
            (
                "rsa",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            ),
            (
                "rsa1024",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
            ),
            // The attacker's key: a valid key pair nobody registered.
            (
                "attacker",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            ),
        ];
        for (name, args) in specs {
            let private = keys.private(name);
            openssl(&[&["genpkey"], args, &["-out", path_str(&private)]].concat());
            openssl(&[
                "pkey",
                "-in",
                path_str(&private),
                "-pubout",
                "-out",
                path_str(&keys.public(name)),
            ]);
        }
        keys
    }

    fn private(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pem"))
    }

    fn public(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pub.pem"))
    }

    fn public_pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.public(name)).unwrap()
    }

    /// The public JWK as node:crypto exports it (independent of the verifier's own conversion).
    fn public_jwk(&self, name: &str) -> Json {
        let out = run(
            "node",
            &["jwt/pk-node.mjs"],
            &[
                ("KEY_FILE", path_str(&self.private(name))),
                ("PRINT_JWK", "1"),
            ],
        );
        serde_json::from_str(out.trim()).unwrap()
    }

    /// The private JWK (with `d`) as node:crypto exports it.
    fn private_jwk(&self, name: &str) -> Json {
        let out = run(
            "node",
            &["jwt/pk-node.mjs"],
            &[
                ("KEY_FILE", path_str(&self.private(name))),
                ("PRINT_JWK", "private"),
            ],
        );
        serde_json::from_str(out.trim()).unwrap()
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed by scripts/setup.sh");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How a token is minted: by which library, with which key and claims.
#[derive(Clone)]
struct Mint<'a> {
    program: &'a str,
    script: &'a str,
    alg: &'a str,
    key: &'a str,
    kid: Option<&'a str>,
    iss: Option<&'a str>,
    aud: Option<&'a str>,
    sub: &'a str,
    exp_in: Option<&'a str>,
    nbf_in: Option<&'a str>,
    extra_header: Option<String>,
}

impl<'a> Mint<'a> {
    fn node(alg: &'a str, key: &'a str, kid: &'a str) -> Mint<'a> {
        Mint {
            program: "node",
            script: "jwt/pk-node.mjs",
            alg,
            key,
            kid: Some(kid),
            iss: Some(ISS),
            aud: Some(AUD),
            sub: "42",
            exp_in: None,
            nbf_in: None,
            extra_header: None,
        }
    }

    fn token(&self, keys: &Keys) -> String {
        let private = keys.private(self.key);
        let mut env = vec![
            ("KEY_FILE", path_str(&private)),
            ("ALG", self.alg),
            ("SUB", self.sub),
            ("PLAN", "pro"),
            ("MRR", "49"),
            ("SIGNUP_DATE", "2024-03-01"),
            ("TEAM", "core"),
        ];
        let optional = [
            ("KID", self.kid),
            ("ISS", self.iss),
            ("AUD", self.aud),
            ("EXP_IN", self.exp_in),
            ("NBF_IN", self.nbf_in),
            ("EXTRA_HEADER", self.extra_header.as_deref()),
        ];
        env.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        run(self.program, &[self.script], &env).trim().to_owned()
    }
}

/// A static-key issuer as the CLI registers one: the key file's text through `parse_keys`, stored
/// as public JWKs, then checked.
fn issuer(name: &str, key_texts: &[(&str, &str)], iss: Option<&str>, auds: &[&str]) -> Issuer {
    let keys: Vec<Json> = key_texts
        .iter()
        .flat_map(|(text, kid)| parse_keys(text, Some(kid)).expect("the key registers"))
        .map(|k| k.to_jwk())
        .collect();
    let config: IssuerConfig = serde_json::from_value(json!({
        "name": name,
        "keys": keys,
    }))
    .unwrap();
    IssuerConfig {
        iss: iss.map(str::to_owned),
        audiences: auds.iter().map(|a| (*a).to_owned()).collect(),
        ..config
    }
    .check()
    .expect("the issuer configuration is valid")
}

/// The backend's issuer with its three keys registered as PEM files.
fn backend_pem(keys: &Keys) -> Issuer {
    let (ec, ec384, ed, rsa) = (
        keys.public_pem("ec"),
        keys.public_pem("ec384"),
        keys.public_pem("ed"),
        keys.public_pem("rsa"),
    );
    issuer(
        "backend",
        &[
            (&ec, "backend-ec"),
            (&ec384, "backend-ec384"),
            (&ed, "backend-ed"),
            (&rsa, "backend-rsa"),
        ],
        Some(ISS),
        &[AUD],
    )
}

/// The same issuer with its keys registered as JWKs (node:crypto's export, kid added).
fn backend_jwk(keys: &Keys) -> Issuer {
    let jwk = |name: &str, kid: &str| {
        let mut jwk = keys.public_jwk(name);
        jwk["kid"] = kid.into();
        jwk.to_string()
    };
    let (ec, ec384, ed, rsa) = (
        jwk("ec", "backend-ec"),
        jwk("ec384", "backend-ec384"),
        jwk("ed", "backend-ed"),
        jwk("rsa", "backend-rsa"),
    );
    issuer(
        "backend",
        &[
            (&ec, "backend-ec"),
            (&ec384, "backend-ec384"),
            (&ed, "backend-ed"),
            (&rsa, "backend-rsa"),
        ],
        Some(ISS),
        &[AUD],
    )
}

/// The decision of a workspace that trusts `issuers` and holds no secret.
fn decide(issuers: &[Issuer], user_id: &str, traits: Json, token: &str) -> Decision {
    let workspace = WorkspaceIssuers {
        issuers,
        jwks: &NoJwks,
    };
    let body = json!({
        "app_id": "app_pk", "user_id": user_id, "traits": traits, "signature": token,
    });
    decide_with_issuers(body, None, true, &workspace)
}

fn refused(issuers: &[Issuer], token: &str) -> Rejection {
    match decide(issuers, "42", json!({}), token) {
        Decision::Rejected(r) => r,
        other => panic!("expected a refusal, got {other:?} for {token}"),
    }
}

fn assert_verified(decision: Decision, what: &str) {
    match decision {
        Decision::Verified(v) => {
            assert_eq!(v.method, Method::IssuerToken, "{what}");
            assert_eq!(v.key_index, 0, "{what}");
            assert_eq!(v.trusted.plan.as_deref(), Some("pro"), "{what}");
            assert_eq!(v.trusted.mrr, Some(49.0), "{what}");
            assert_eq!(
                v.trusted.signup_date.as_deref(),
                Some("2024-03-01"),
                "{what}"
            );
            assert_eq!(
                v.trusted.custom,
                [("team".to_owned(), Value::Str("core".into()))],
                "{what}"
            );
        }
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn tokens_from_real_libraries_verify_with_keys_registered_as_pem_and_as_jwk() {
    let keys = Keys::new();
    let (pem, jwk) = ([backend_pem(&keys)], [backend_jwk(&keys)]);
    // Both registrations store the same public keys.
    assert_eq!(pem[0].config.keys, jwk[0].config.keys);
    for (program, script) in LIBRARIES {
        for (alg, key, kid) in ALGS {
            let mint = Mint {
                program,
                script,
                ..Mint::node(alg, key, kid)
            };
            let token = mint.token(&keys);
            for (how, issuers) in [("PEM", &pem), ("JWK", &jwk)] {
                let what = format!("{program} {alg} key as {how}");
                let sent = json!({"plan": "pro", "mrr": 49, "signup_date": "2024-03-01"});
                assert_verified(decide(issuers.as_slice(), "42", sent, &token), &what);
                // The browser may omit the traits: the token's values are the trusted ones.
                assert_verified(decide(issuers.as_slice(), "42", json!({}), &token), &what);
                // What the page sends must agree with what the backend signed.
                for (user_id, traits) in [
                    ("43", json!({})),
                    ("42", json!({"plan": "enterprise"})),
                    ("42", json!({"mrr": 4900})),
                    ("42", json!({"team": "other"})),
                ] {
                    assert_eq!(
                        decide(issuers.as_slice(), user_id, traits.clone(), &token),
                        Decision::Rejected(Rejection::ClaimsMismatch),
                        "{what}: {user_id} {traits}"
                    );
                }
            }
            // Without a kid the issuer's keys that make the algorithm are tried.
            let token = Mint { kid: None, ..mint }.token(&keys);
            assert_verified(
                decide(&pem, "42", json!({}), &token),
                &format!("{program} {alg} without kid"),
            );
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with this header and payload, HS256-signed with `key` (the alg confusion attack).
fn hs256(header: &Json, payload: &Json, key: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

fn payload() -> Json {
    let now = dropfix_tests::now();
    json!({"sub": "42", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 300, "plan": "enterprise"})
}

/// A JWS ECDSA signature (`r || s`, 64 bytes) in the DER form of X.509 and OpenSSL.
fn der_signature(raw: &[u8]) -> Vec<u8> {
    fn integer(b: &[u8]) -> Vec<u8> {
        let start = b.iter().position(|&x| x != 0).unwrap_or(b.len() - 1);
        let mut v = b[start..].to_vec();
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }
    let body = [integer(&raw[..32]), integer(&raw[32..])].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

fn swap_signature(token: &str, f: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", b64(&f(&URL_SAFE_NO_PAD.decode(sig).unwrap())))
}

#[test]
fn the_attack_set_is_refused_with_the_right_code() {
    let keys = Keys::new();
    let backend = [backend_pem(&keys)];
    let valid = Mint::node("ES256", "ec", "backend-ec");
    assert_verified(
        decide(&backend, "42", json!({}), &valid.token(&keys)),
        "control",
    );

    // Alg confusion: HS256 keyed with the public key's PEM bytes, or its JWK JSON bytes. HS256
    // stays with the claims key, which this workspace does not even have.
    for name in ["ec", "rsa", "ed"] {
        let pem = keys.public_pem(name);
        let jwk = backend[0].static_keys.as_ref().unwrap().keys[0].to_jwk();
        for key in [
            pem.as_bytes(),
            jwk.to_string().as_bytes(),
            pem.trim().as_bytes(),
        ] {
            for header in [
                json!({"alg": "HS256", "kid": "backend-ec"}),
                json!({"alg": "HS256"}),
            ] {
                let token = hs256(&header, &payload(), key);
                assert_eq!(
                    refused(&backend, &token),
                    Rejection::SignatureMismatch,
                    "HS256 keyed with the {name} public key"
                );
            }
        }
    }

    // alg none, with an empty and with a non-empty signature.
    let none_input = format!(
        "{}.{}",
        b64(br#"{"alg":"none"}"#),
        b64(payload().to_string().as_bytes())
    );
    for token in [format!("{none_input}."), format!("{none_input}.AAAA")] {
        assert_eq!(
            refused(&backend, &token),
            Rejection::SignatureMalformed,
            "{token}"
        );
    }

    // A token that brings its own key (jwk, jku, x5c, x5u) signed by the attacker: the header is
    // ignored, the registered keys do not verify it.
    let attacker_jwk = keys.public_jwk("attacker");
    let attacker_cert = keys.dir.path().join("attacker.crt");
    openssl(&[
        "req",
        "-new",
        "-x509",
        "-key",
        path_str(&keys.private("attacker")),
        "-subj",
        "/CN=attacker",
        "-days",
        "1",
        "-out",
        path_str(&attacker_cert),
    ]);
    let cert_pem = std::fs::read_to_string(&attacker_cert).unwrap();
    let cert_b64: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(STANDARD.decode(&cert_b64).is_ok());
    let embedded = [
        json!({"jwk": attacker_jwk}),
        json!({"jku": "https://attacker.example/jwks.json"}),
        json!({"x5c": [cert_b64]}),
        json!({"x5u": "https://attacker.example/cert.pem"}),
    ];
    for header in embedded {
        for kid in [None, Some("backend-ec")] {
            let token = Mint {
                key: "attacker",
                kid,
                extra_header: Some(header.to_string()),
                ..valid.clone()
            }
            .token(&keys);
            assert_eq!(
                refused(&backend, &token),
                Rejection::SignatureMismatch,
                "embedded {header} kid {kid:?}"
            );
        }
        // Naming a kid of its own only gets it told that no key has that kid.
        let token = Mint {
            key: "attacker",
            kid: Some("attacker-key"),
            extra_header: Some(header.to_string()),
            ..valid.clone()
        }
        .token(&keys);
        assert_eq!(
            refused(&backend, &token),
            Rejection::UnknownKeyId,
            "{header}"
        );
    }

    // iss and aud.
    let cases = [
        (
            Mint {
                iss: Some("https://evil.example"),
                ..valid.clone()
            },
            Some(Rejection::UnknownIssuer),
        ),
        (
            Mint {
                iss: None,
                ..valid.clone()
            },
            Some(Rejection::UnknownIssuer),
        ),
        (
            Mint {
                aud: Some("another-app"),
                ..valid.clone()
            },
            Some(Rejection::AudienceMismatch),
        ),
        (
            Mint {
                aud: None,
                ..valid.clone()
            },
            Some(Rejection::AudienceMismatch),
        ),
        (
            Mint {
                aud: Some("another-app,third-app"),
                ..valid.clone()
            },
            Some(Rejection::AudienceMismatch),
        ),
        (
            Mint {
                aud: Some("another-app,dropfix-app"),
                ..valid.clone()
            },
            None,
        ),
        (
            Mint {
                aud: Some("dropfix-app,another-app"),
                ..valid.clone()
            },
            None,
        ),
        // Time: exp is in the past, nbf is beyond the 60 s skew, or within it.
        (
            Mint {
                exp_in: Some("-5"),
                ..valid.clone()
            },
            Some(Rejection::TokenExpired),
        ),
        (
            Mint {
                nbf_in: Some("3600"),
                ..valid.clone()
            },
            Some(Rejection::TokenNotYetValid),
        ),
        (
            Mint {
                nbf_in: Some("30"),
                ..valid.clone()
            },
            None,
        ),
        // A kid that names no key; a key of another family than the token's alg.
        (
            Mint {
                kid: Some("no-such-key"),
                ..valid.clone()
            },
            Some(Rejection::UnknownKeyId),
        ),
        (
            Mint {
                kid: Some("backend-rsa"),
                ..valid.clone()
            },
            Some(Rejection::AlgorithmNotAllowed),
        ),
        (
            Mint {
                kid: Some("backend-ec"),
                key: "attacker",
                ..valid.clone()
            },
            Some(Rejection::SignatureMismatch),
        ),
    ];
    for (mint, expected) in cases {
        let what = format!(
            "iss {:?} aud {:?} exp_in {:?} nbf_in {:?} kid {:?}",
            mint.iss, mint.aud, mint.exp_in, mint.nbf_in, mint.kid
        );
        let token = mint.token(&keys);
        match expected {
            Some(code) => assert_eq!(refused(&backend, &token), code, "{what}"),
            None => assert_verified(decide(&backend, "42", json!({}), &token), &what),
        }
    }

    // The same from the other two libraries, for the claims every library sets differently.
    for &(program, script) in &LIBRARIES[1..] {
        for (mint, expected) in [
            (
                Mint {
                    aud: Some("another-app"),
                    ..valid.clone()
                },
                Rejection::AudienceMismatch,
            ),
            (
                Mint {
                    aud: Some("x,y"),
                    ..valid.clone()
                },
                Rejection::AudienceMismatch,
            ),
            (
                Mint {
                    iss: Some("https://evil.example"),
                    ..valid.clone()
                },
                Rejection::UnknownIssuer,
            ),
            (
                Mint {
                    exp_in: Some("-5"),
                    ..valid.clone()
                },
                Rejection::TokenExpired,
            ),
            (
                Mint {
                    nbf_in: Some("3600"),
                    ..valid.clone()
                },
                Rejection::TokenNotYetValid,
            ),
        ] {
            let token = Mint {
                program,
                script,
                ..mint
            }
            .token(&keys);
            assert_eq!(refused(&backend, &token), expected, "{program} {token}");
        }
        let token = Mint {
            program,
            script,
            aud: Some("x,dropfix-app"),
            ..valid.clone()
        }
        .token(&keys);
        assert_verified(decide(&backend, "42", json!({}), &token), program);
    }

    // A token for user X sent as user Y, or with a plan it does not carry.
    let token = Mint {
        sub: "user-x",
        ..valid.clone()
    }
    .token(&keys);
    assert_eq!(
        decide(&backend, "user-y", json!({}), &token),
        Decision::Rejected(Rejection::ClaimsMismatch)
    );
    assert!(matches!(
        decide(&backend, "user-x", json!({}), &token),
        Decision::Verified(_)
    ));

    // The algorithm comes from the issuer's configuration: RS256 refused where only ES256 is
    // allowed, and a PS256 token relabelled RS256 (or back) does not verify.
    let es_only = issuer(
        "es-only",
        &[(&keys.public_pem("ec"), "backend-ec")],
        Some(ISS),
        &[AUD],
    );
    let es_only = [IssuerConfig {
        algorithms: vec!["ES256".into()],
        ..es_only.config
    }
    .check()
    .unwrap()];
    // (A key that can make none of the allowed algorithms is refused at registration.)
    let rsa_es_only = IssuerConfig {
        algorithms: vec!["ES256".into()],
        ..backend[0].config.clone()
    };
    let why = rsa_es_only.check().unwrap_err();
    assert!(
        why.contains("can make none of the allowed algorithms"),
        "{why}"
    );
    let rs = Mint::node("RS256", "rsa", "backend-rsa").token(&keys);
    assert_eq!(refused(&es_only, &rs), Rejection::AlgorithmNotAllowed);
    assert_verified(
        decide(&es_only, "42", json!({}), &valid.token(&keys)),
        "ES256 only",
    );
    let relabel = |token: &str, alg: &str| {
        let (header, rest) = token.split_once('.').unwrap();
        let mut h: Json = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        h["alg"] = alg.into();
        format!("{}.{rest}", b64(h.to_string().as_bytes()))
    };
    let ps = Mint::node("PS256", "rsa", "backend-rsa").token(&keys);
    assert_eq!(
        refused(&backend, &relabel(&ps, "RS256")),
        Rejection::SignatureMismatch
    );
    assert_eq!(
        refused(&backend, &relabel(&rs, "PS256")),
        Rejection::SignatureMismatch
    );
    // An ES256 signature relabelled EdDSA meets the Ed25519 key, which it is not from.
    assert_eq!(
        refused(&backend, &relabel(&valid.token(&keys), "EdDSA")),
        Rejection::AlgorithmNotAllowed
    );

    // ECDSA signatures in JWS's raw `r || s` form only: the same signature in DER is refused.
    let token = valid.token(&keys);
    let der = swap_signature(&token, der_signature);
    assert_ne!(der, token);
    assert_eq!(refused(&backend, &der), Rejection::SignatureMismatch);

    // A valid token of issuer A sent to a workspace that trusts only issuer B.
    let issuer_b = [issuer(
        "partner",
        &[(&keys.public_pem("attacker"), "partner-ec")],
        Some("https://partner.example"),
        &[AUD],
    )];
    assert_eq!(
        refused(&issuer_b, &valid.token(&keys)),
        Rejection::UnknownIssuer
    );
    // ... and when B claims the same iss (a misconfiguration, or a look-alike): A's kid is not
    // B's, and without a kid B's key does not verify A's signature.
    let look_alike = [issuer(
        "look-alike",
        &[(&keys.public_pem("attacker"), "partner-ec")],
        Some(ISS),
        &[AUD],
    )];
    assert_eq!(
        refused(&look_alike, &valid.token(&keys)),
        Rejection::UnknownKeyId
    );
    let no_kid = Mint {
        kid: None,
        ..valid.clone()
    }
    .token(&keys);
    assert_eq!(refused(&look_alike, &no_kid), Rejection::SignatureMismatch);
    // With both trusted, each token is verified by its own issuer (the index says which).
    let both = [look_alike[0].clone(), backend[0].clone()];
    match decide(&both, "42", json!({}), &valid.token(&keys)) {
        Decision::Verified(v) => assert_eq!(v.key_index, 1),
        other => panic!("{other:?}"),
    }

    // A workspace without issuers: a public-key token is from an unknown issuer.
    assert_eq!(refused(&[], &valid.token(&keys)), Rejection::UnknownIssuer);
    let workspace = WorkspaceIssuers {
        issuers: &backend,
        jwks: &NoJwks,
    };
    assert!(
        workspace
            .verify(&valid.token(&keys), dropfix_tests::now())
            .is_ok()
    );
}

#[test]
fn what_cannot_verify_is_refused_at_registration() {
    let keys = Keys::new();
    let refusal = |text: &str| parse_keys(text, Some("k")).expect_err(text).0;

    // RSA-1024, as PEM and as JWK.
    let small = refusal(&keys.public_pem("rsa1024"));
    assert!(small.contains("2048") && small.contains("1024"), "{small}");
    let small = refusal(&keys.public_jwk("rsa1024").to_string());
    assert!(small.contains("2048"), "{small}");

    // Private keys: PKCS#8 PEM, and JWKs with d (EC, OKP, RSA).
    for name in ["ec", "ed", "rsa"] {
        let pem = std::fs::read_to_string(keys.private(name)).unwrap();
        assert!(refusal(&pem).contains("PRIVATE"), "{name} PEM");
        let jwk = keys.private_jwk(name);
        assert!(jwk.get("d").is_some());
        assert!(refusal(&jwk.to_string()).contains("private"), "{name} JWK");
        let jwks = json!({"keys": [keys.public_jwk(name), jwk]});
        assert!(
            refusal(&jwks.to_string()).contains("private"),
            "{name} in a JWKS"
        );
    }
    // A symmetric key is no issuer key.
    let oct = json!({"kty": "oct", "k": b64(b"0123456789abcdef0123456789abcdef")});
    assert!(refusal(&oct.to_string()).contains("symmetric"));
    // And a registered issuer never holds private material: its stored keys are public JWKs.
    let stored = serde_json::to_string(&backend_pem(&keys).config).unwrap();
    for member in ["\"d\"", "\"p\"", "\"q\"", "\"k\"", "PRIVATE"] {
        assert!(!stored.contains(member), "{member} in {stored}");
    }
}

/// The code block of docs/ISSUERS.md marked `<!-- test: NAME -->`.
fn guide_snippet(name: &str) -> String {
    let guide = std::fs::read_to_string(tests_dir().join("../docs/ISSUERS.md")).unwrap();
    let marker = format!("<!-- test: {name} -->");
    let mut lines = guide.lines().skip_while(|l| l.trim() != marker).skip(1);
    let fence = lines
        .next()
        .unwrap_or_else(|| panic!("no snippet {name} in docs/ISSUERS.md"));
    assert!(fence.starts_with("```"), "{name}: {fence}");
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    assert!(body.len() >= 8, "{name}: snippet too short");
    body.join("\n") + "\n"
}

/// Runs `program file` in `cwd` and returns its trimmed stdout.
fn run_in(cwd: &Path, program: &str, file: &Path) -> String {
    let out = Command::new(program)
        .arg(file)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("could not start {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_guides_snippets_sign_tokens_the_verifier_accepts() {
    // The guide's setup: an ES256 key in ./dropfix-private.pem, its public half registered with
    // kid backend-2026, iss https://app.acme.com and aud dropfix.
    let keys = Keys::new();
    let cwd = keys.dir.path();
    std::fs::copy(keys.private("ec"), cwd.join("dropfix-private.pem")).unwrap();
    let workspace = [issuer(
        "backend",
        &[(&keys.public_pem("ec"), "backend-2026")],
        Some("https://app.acme.com"),
        &["dropfix"],
    )];
    let user = "{ id: 42, email: 'ada@example.com', plan: 'pro' }";
    // The Node snippet lives in tests/jwt/ while it runs, so that `jose` resolves from there.
    let jose = tempfile::Builder::new()
        .prefix(".guide-jose-")
        .suffix(".mjs")
        .tempfile_in(tests_dir().join("jwt"))
        .unwrap();
    std::fs::write(
        jose.path(),
        guide_snippet("jose") + &format!("console.log(await dropfixToken({user}))\n"),
    )
    .unwrap();
    let python = cwd.join("guide.py");
    std::fs::write(
        &python,
        guide_snippet("pyjwt")
            + "\nprint(dropfix_token({\"id\": 42, \"email\": \"ada@example.com\", \"plan\": \"pro\"}))\n",
    )
    .unwrap();
    let ruby = cwd.join("guide.rb");
    std::fs::write(
        &ruby,
        guide_snippet("ruby-jwt") + &format!("puts dropfix_token({user})\n"),
    )
    .unwrap();
    for (program, file) in [
        ("node".to_owned(), jose.path()),
        (dropfix_tests::python(), python.as_path()),
        ("ruby".to_owned(), ruby.as_path()),
    ] {
        let token = run_in(cwd, &program, file);
        match decide(
            &workspace,
            "42",
            json!({"email": "ada@example.com", "plan": "pro"}),
            &token,
        ) {
            Decision::Verified(v) => {
                assert_eq!(v.method, Method::IssuerToken, "{program}");
                assert_eq!(v.trusted.email.as_deref(), Some("ada@example.com"));
                assert_eq!(v.trusted.plan.as_deref(), Some("pro"), "{program}");
            }
            other => panic!("{program}: {other:?}"),
        }
        assert_eq!(
            decide(&workspace, "42", json!({"plan": "enterprise"}), &token),
            Decision::Rejected(Rejection::ClaimsMismatch),
            "{program}"
        );
    }
}
