//! Signature checks of issuer tokens, by `ring`: the same constant-time primitives the TLS stack
//! already builds on, so verifying public-key tokens adds no cryptographic code of its own. The
//! algorithm is the one the token names *and* the issuer allows *and* the key's family makes
//! (checked by the caller through [`PublicKey::supports`]); `ring` itself then refuses RSA
//! moduli outside 2048..=8192 bits and takes ECDSA signatures in JWS's fixed `r || s` form only
//! (a DER-encoded signature fails).

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm};

use super::keys::{Material, PublicKey};

/// Whether `sig` is `key`'s signature with `alg` over `msg`. `false` for an algorithm the key
/// cannot make (so a caller that forgot [`PublicKey::supports`] still fails closed).
pub fn verify(key: &PublicKey, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
    if !key.supports(alg) {
        return false;
    }
    match &key.material {
        Material::Rsa { n, e } => {
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return false,
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .is_ok()
        }
        Material::P256(point) => unparsed(&signature::ECDSA_P256_SHA256_FIXED, point, msg, sig),
        Material::P384(point) => unparsed(&signature::ECDSA_P384_SHA384_FIXED, point, msg, sig),
        Material::Ed25519(x) => unparsed(&signature::ED25519, x, msg, sig),
    }
}

fn unparsed(alg: &'static dyn VerificationAlgorithm, key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(alg, key).verify(msg, sig).is_ok()
}
