//! Public keys of token issuers: read from PEM (SubjectPublicKeyInfo or an X.509 certificate),
//! from a JWK, or from a JWKS document, and checked before they are trusted.
//!
//! Only signature keys of the supported families are kept: RSA of 2048 to 8192 bits, EC P-256
//! and P-384 (uncompressed points), and Ed25519. Private keys are refused outright (a JWK with
//! `d`, a PEM private key) so that what a workspace stores can verify and never sign, and
//! symmetric (`oct`) keys are refused: an HS256 secret is the claims key's job, not an issuer's.
//! PEM and certificates are parsed by rustls-pki-types and x509-parser; signatures are checked by
//! `ring` ([`super::verify`]).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};
use x509_parser::public_key::PublicKey as X509Key;

/// RSA moduli below this many bits are refused (and above 8192, which `ring` refuses too).
pub const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;

/// How many keys one JWKS (or one static issuer) may hold; providers publish two or three.
pub const MAX_KEYS: usize = 32;

/// Why a key (or a whole key set) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

fn err<T>(msg: impl Into<String>) -> Result<T, KeyError> {
    Err(KeyError(msg.into()))
}

/// The key material, in the forms `ring` verifies with (public: nothing here is secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// Big-endian modulus and exponent, without leading zero bytes.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed SEC1 point (`04 || x || y`).
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519([u8; 32]),
}

/// One public key an issuer signs with.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The `kid` tokens name it by (absent for a key registered without one).
    pub kid: Option<String>,
    /// The JWK's `alg`, when it restricts the key to one algorithm.
    pub alg: Option<String>,
    pub material: Material,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("type", &self.kind())
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

impl PublicKey {
    /// The key type as people name it: `RSA-2048`, `EC P-256`, `Ed25519`.
    pub fn kind(&self) -> String {
        match &self.material {
            Material::Rsa { n, .. } => format!("RSA-{}", bits(n)),
            Material::P256(_) => "EC P-256".into(),
            Material::P384(_) => "EC P-384".into(),
            Material::Ed25519(_) => "Ed25519".into(),
        }
    }

    /// The algorithms this key can verify, whatever an issuer allows.
    pub fn algorithms(&self) -> &'static [&'static str] {
        match self.material {
            Material::Rsa { .. } => &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
            Material::P256(_) => &["ES256"],
            Material::P384(_) => &["ES384"],
            Material::Ed25519(_) => &["EdDSA"],
        }
    }

    /// Whether this key may verify a token signed with `alg`: the key's family must make it,
    /// and a JWK that names its `alg` allows only that one.
    pub fn supports(&self, alg: &str) -> bool {
        self.algorithms().contains(&alg) && self.alg.as_deref().is_none_or(|a| a == alg)
    }

    /// The public JWK (RFC 7517) of this key: what a workspace stores and shows.
    pub fn to_jwk(&self) -> Json {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let mut jwk = match &self.material {
            Material::Rsa { n, e } => json!({"kty": "RSA", "n": b64(n), "e": b64(e)}),
            Material::P256(p) | Material::P384(p) => {
                let crv = if matches!(self.material, Material::P256(_)) {
                    "P-256"
                } else {
                    "P-384"
                };
                let half = (p.len() - 1) / 2;
                json!({"kty": "EC", "crv": crv, "x": b64(&p[1..1 + half]), "y": b64(&p[1 + half..])})
            }
            Material::Ed25519(x) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(x)}),
        };
        if let Some(kid) = &self.kid {
            jwk["kid"] = kid.clone().into();
        }
        if let Some(alg) = &self.alg {
            jwk["alg"] = alg.clone().into();
        }
        jwk["use"] = "sig".into();
        jwk
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): a stable name for a key without `kid`.
    pub fn thumbprint(&self) -> String {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        // The required members only, in lexicographic order, no whitespace.
        let canonical = match &self.material {
            Material::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n))
            }
            Material::P256(p) | Material::P384(p) => {
                let crv = if p.len() == 65 { "P-256" } else { "P-384" };
                let half = (p.len() - 1) / 2;
                format!(
                    r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                    b64(&p[1..1 + half]),
                    b64(&p[1 + half..])
                )
            }
            Material::Ed25519(x) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x)),
        };
        b64(&Sha256::digest(canonical.as_bytes()))
    }
}

/// The keys of one issuer, as registered or as last fetched from its JWKS URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    pub keys: Vec<PublicKey>,
    /// Keys of the document that were left out, and why (shown on the console: a provider that
    /// publishes an RSA-1024 key should be told, not silently ignored).
    pub skipped: Vec<String>,
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The kids, in document order (a key without one is shown by its thumbprint).
    pub fn kids(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.kid.clone().unwrap_or_else(|| k.thumbprint()))
            .collect()
    }

    /// The keys that may verify a token with this `kid` (every key when the token names none)
    /// and `alg`.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: &'a str,
    ) -> impl Iterator<Item = &'a PublicKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .filter(move |k| k.supports(alg))
    }

    /// Whether a key has this kid, whatever its algorithm.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// Reads a JWKS document (`{"keys": [...]}`) as a provider publishes it. Keys that are not
/// signature keys of a supported family are skipped with the reason; a document without one
/// usable key is an error.
pub fn parse_jwks(bytes: &[u8]) -> Result<KeySet, KeyError> {
    let doc: Json = serde_json::from_slice(bytes)
        .map_err(|e| KeyError(format!("the JWKS is not JSON: {e}")))?;
    let Some(keys) = doc.get("keys").and_then(Json::as_array) else {
        return err(r#"the JWKS has no "keys" array"#);
    };
    let mut set = KeySet::default();
    for (i, jwk) in keys.iter().enumerate() {
        let name = jwk
            .get("kid")
            .and_then(Json::as_str)
            .map_or_else(|| format!("key {i}"), |k| format!("kid {k}"));
        match parse_jwk(jwk) {
            Ok(key) if set.keys.len() < MAX_KEYS => set.keys.push(key),
            Ok(_) => set
                .skipped
                .push(format!("{name}: more than {MAX_KEYS} keys")),
            Err(KeyError(why)) => set.skipped.push(format!("{name}: {why}")),
        }
    }
    if set.keys.is_empty() {
        let why = if set.skipped.is_empty() {
            "it is empty".to_owned()
        } else {
            set.skipped.join("; ")
        };
        return err(format!("the JWKS holds no usable signature key: {why}"));
    }
    Ok(set)
}

/// Reads the public key(s) an operator registers: PEM (`PUBLIC KEY` or `CERTIFICATE`, one or
/// several), a JWK, or a JWKS. Unlike [`parse_jwks`], every key must be usable.
pub fn parse_keys(text: &str, kid: Option<&str>) -> Result<Vec<PublicKey>, KeyError> {
    let trimmed = text.trim_start();
    let mut keys = if trimmed.starts_with('{') {
        let doc: Json = serde_json::from_str(trimmed)
            .map_err(|e| KeyError(format!("the key is not valid JSON: {e}")))?;
        match doc.get("keys").and_then(Json::as_array) {
            Some(list) => list.iter().map(parse_jwk).collect::<Result<Vec<_>, _>>()?,
            None => vec![parse_jwk(&doc)?],
        }
    } else if trimmed.starts_with("-----BEGIN") {
        parse_pem(text.as_bytes())?
    } else {
        return err(
            "expected a PEM public key or certificate (-----BEGIN PUBLIC KEY-----), a \
                    JWK or a JWKS (JSON)",
        );
    };
    if keys.is_empty() {
        return err("no key found");
    }
    if keys.len() > MAX_KEYS {
        return err(format!("more than {MAX_KEYS} keys"));
    }
    if let Some(kid) = kid {
        if keys.len() != 1 {
            return err(
                "--kid names one key, but the file holds several: give each its kid in \
                        a JWKS instead",
            );
        }
        keys[0].kid = Some(kid.to_owned());
    }
    Ok(keys)
}

fn parse_pem(bytes: &[u8]) -> Result<Vec<PublicKey>, KeyError> {
    let mut keys = Vec::new();
    for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
        let (kind, der) = section.map_err(|e| KeyError(format!("unreadable PEM: {e:?}")))?;
        let key = match kind {
            SectionKind::PublicKey => from_spki(&der)?,
            SectionKind::Certificate => {
                let (_, cert) = X509Certificate::from_der(&der)
                    .map_err(|e| KeyError(format!("unreadable certificate: {e}")))?;
                from_spki(cert.public_key().raw)?
            }
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                return err(
                    "this is a PRIVATE key: register only the public half (for example \
                            `openssl pkey -in private.pem -pubout`); keep the private key on your \
                            backend",
                );
            }
            other => return err(format!("a PEM {other:?} is not a public key")),
        };
        keys.push(key);
    }
    if keys.is_empty() && std::str::from_utf8(bytes).is_ok_and(|s| s.contains("RSA PUBLIC KEY")) {
        return err(
            "PKCS#1 `RSA PUBLIC KEY` PEM is not read: convert it to a SubjectPublicKeyInfo \
                    with `openssl rsa -RSAPublicKey_in -in key.pem -pubout`",
        );
    }
    Ok(keys)
}

fn from_spki(der: &[u8]) -> Result<PublicKey, KeyError> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(der)
        .map_err(|e| KeyError(format!("unreadable public key: {e}")))?;
    let alg = &spki.algorithm.algorithm;
    let material = if *alg == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(X509Key::RSA(rsa)) => rsa_material(rsa.modulus, rsa.exponent)?,
            _ => return err("unreadable RSA public key"),
        }
    } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let point = spki.subject_public_key.data.to_vec();
        match curve {
            Some(c) if c == OID_EC_P256 => ec_material(point, 32)?,
            Some(c) if c == OID_NIST_EC_P384 => ec_material(point, 48)?,
            _ => return err("only the EC curves P-256 and P-384 are supported"),
        }
    } else if *alg == OID_SIG_ED25519 {
        let bytes: [u8; 32] = spki
            .subject_public_key
            .data
            .as_ref()
            .try_into()
            .map_err(|_| KeyError("an Ed25519 key is 32 bytes".into()))?;
        Material::Ed25519(bytes)
    } else {
        return err(format!(
            "unsupported key algorithm {alg}: use RSA (2048+ bits), EC P-256/P-384 or Ed25519"
        ));
    };
    Ok(PublicKey {
        kid: None,
        alg: None,
        material,
    })
}

/// Reads one JWK. A JWK with `use` must say `sig`; one with `key_ops` must allow `verify`.
pub fn parse_jwk(jwk: &Json) -> Result<PublicKey, KeyError> {
    let Some(obj) = jwk.as_object() else {
        return err("a JWK is a JSON object");
    };
    let text = |name: &str| obj.get(name).and_then(Json::as_str);
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|m| obj.contains_key(*m))
    {
        return err(
            "this JWK holds private or symmetric key material: register only the public \
                    key (without d, p, q, k...)",
        );
    }
    if let Some(u) = obj.get("use")
        && u.as_str() != Some("sig")
    {
        return err(r#"not a signature key ("use" is not "sig")"#);
    }
    if let Some(ops) = obj.get("key_ops")
        && !ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")))
    {
        return err(r#"its "key_ops" do not allow "verify""#);
    }
    let material = match text("kty") {
        Some("RSA") => rsa_material(&b64_member(obj, "n")?, &b64_member(obj, "e")?)?,
        Some("EC") => {
            let (x, y) = (b64_member(obj, "x")?, b64_member(obj, "y")?);
            let size = match text("crv") {
                Some("P-256") => 32,
                Some("P-384") => 48,
                _ => return err("only the EC curves P-256 and P-384 are supported"),
            };
            if x.len() != size || y.len() != size {
                return err("the EC key's x and y have the wrong length for its curve");
            }
            ec_material([&[4u8][..], &x, &y].concat(), size)?
        }
        Some("OKP") if text("crv") == Some("Ed25519") => {
            let x: [u8; 32] = b64_member(obj, "x")?
                .try_into()
                .map_err(|_| KeyError("an Ed25519 key is 32 bytes".into()))?;
            Material::Ed25519(x)
        }
        Some("OKP") => return err("only the OKP curve Ed25519 is supported"),
        Some("oct") => {
            return err(
                "symmetric (oct) keys are not token issuer keys: HS256 tokens are signed \
                        with the workspace's claims key",
            );
        }
        _ => return err(r#"unsupported "kty": use RSA, EC or OKP"#),
    };
    let alg = match text("alg") {
        Some(a) => Some(a.to_owned()),
        None if obj.contains_key("alg") => return err(r#""alg" is not a string"#),
        None => None,
    };
    let key = PublicKey {
        kid: text("kid").map(str::to_owned),
        alg,
        material,
    };
    if let Some(a) = &key.alg
        && !key.algorithms().contains(&a.as_str())
    {
        return err(format!(
            "its alg {a} cannot be used with a {} key",
            key.kind()
        ));
    }
    Ok(key)
}

fn b64_member(obj: &Map<String, Json>, name: &str) -> Result<Vec<u8>, KeyError> {
    let Some(s) = obj.get(name).and_then(Json::as_str) else {
        return err(format!("the JWK has no {name:?}"));
    };
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| KeyError(format!("the JWK's {name:?} is not base64url")))
}

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b[start..].to_vec()
}

/// The bit length of a big-endian unsigned integer.
fn bits(n: &[u8]) -> usize {
    let n = &n[n.iter().position(|&x| x != 0).unwrap_or(n.len())..];
    n.first()
        .map_or(0, |&top| n.len() * 8 - top.leading_zeros() as usize)
}

fn rsa_material(n: &[u8], e: &[u8]) -> Result<Material, KeyError> {
    let size = bits(n);
    if size < MIN_RSA_BITS {
        return err(format!(
            "RSA keys need at least {MIN_RSA_BITS} bits; this one has {size}"
        ));
    }
    if size > MAX_RSA_BITS {
        return err(format!(
            "RSA keys over {MAX_RSA_BITS} bits are not supported"
        ));
    }
    let e = strip_zeros(e);
    let small = e.len() <= 4 && e.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)) >= 3;
    if !small || e[e.len() - 1] & 1 == 0 {
        return err("the RSA public exponent is not an odd number from 3 to 2^32 (65537 usually)");
    }
    Ok(Material::Rsa {
        n: strip_zeros(n),
        e,
    })
}

fn ec_material(point: Vec<u8>, size: usize) -> Result<Material, KeyError> {
    if point.len() != 1 + 2 * size || point[0] != 4 {
        return err("the EC public key must be an uncompressed point");
    }
    // `ring` checks that the point is on the curve when it verifies.
    Ok(if size == 32 {
        Material::P256(point)
    } else {
        Material::P384(point)
    })
}

#[cfg(test)]
mod tests;
