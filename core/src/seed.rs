//! The seed form of the signature: `hex(HMAC-SHA256(secret, user_id))`, exactly what the seed
//! page's Node, Python and Ruby snippets print.
//!
//! Verification decodes the hex (either case) and compares the MAC bytes in constant time through
//! `hmac`'s `verify_slice` (which uses `subtle`), never `==` on strings.

use alloc::string::String;

use hmac::Mac;

use crate::secret::SecretKey;

/// Length of a seed-form signature: 32 bytes as hex.
pub const SEED_SIGNATURE_HEX_LEN: usize = 64;

/// Signs a user id in the seed form: lowercase hex, as the page's snippets produce.
pub fn sign(secret: &SecretKey, user_id: &str) -> String {
    let mut mac = secret.mac();
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature` has the seed form's shape: exactly 64 hex digits of either case.
pub fn is_seed_form(signature: &str) -> bool {
    signature.len() == SEED_SIGNATURE_HEX_LEN && signature.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The outcome of checking a seed-form signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedCheck {
    /// Matches the active secret at this index.
    Valid { key_index: usize },
    /// Well-formed but matches no active secret.
    Mismatch,
    /// Not 64 hex digits.
    Malformed,
}

/// Checks a seed-form signature against every active secret (one, or two during a rotation).
pub fn verify(secrets: &[SecretKey], user_id: &str, signature: &str) -> SeedCheck {
    let mut expected = [0u8; 32];
    if signature.len() != SEED_SIGNATURE_HEX_LEN
        || hex::decode_to_slice(signature, &mut expected).is_err()
    {
        return SeedCheck::Malformed;
    }
    for (key_index, secret) in secrets.iter().enumerate() {
        let mut mac = secret.mac();
        mac.update(user_id.as_bytes());
        if mac.verify_slice(&expected).is_ok() {
            return SeedCheck::Valid { key_index };
        }
    }
    SeedCheck::Mismatch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_either_hex_case() {
        let key = SecretKey::new("s3cr3t");
        let sig = sign(&key, "42");
        assert_eq!(
            verify(core::slice::from_ref(&key), "42", &sig),
            SeedCheck::Valid { key_index: 0 }
        );
        let upper = sig.to_ascii_uppercase();
        assert_eq!(
            verify(&[key], "42", &upper),
            SeedCheck::Valid { key_index: 0 }
        );
    }

    #[test]
    fn second_active_secret_verifies_during_rotation() {
        let old = SecretKey::new("old");
        let new = SecretKey::new("new");
        let sig = sign(&old, "u");
        assert_eq!(
            verify(&[new, old], "u", &sig),
            SeedCheck::Valid { key_index: 1 }
        );
    }

    #[test]
    fn malformed_shapes() {
        let key = [SecretKey::new("k")];
        assert_eq!(verify(&key, "u", ""), SeedCheck::Malformed);
        assert_eq!(verify(&key, "u", &"g".repeat(64)), SeedCheck::Malformed);
        assert_eq!(verify(&key, "u", &"a".repeat(63)), SeedCheck::Malformed);
        assert_eq!(verify(&key, "u", &"a".repeat(64)), SeedCheck::Mismatch);
    }
}
