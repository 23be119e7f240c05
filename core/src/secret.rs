//! The workspace secret key.
//!
//! The HMAC key is the UTF-8 bytes of the secret *string*, exactly as the seed page's Node
//! (`createHmac('sha256', process.env.DROPFIX_SECRET_KEY)`), Python (`.encode()`) and Ruby
//! (`OpenSSL::HMAC.hexdigest('SHA256', ENV[...], ...)`) snippets use it: never hex- or
//! base64-decoded. The keyed HMAC state (inner and outer padded blocks) is computed once per key,
//! so verifying a short user id costs two SHA-256 compressions instead of four.

use alloc::string::String;
use core::fmt;

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Every secret DropFix generates starts with this prefix, so a secret pasted into browser code or
/// a trait can be recognised and refused before it is ever sent.
pub const SECRET_PREFIX: &str = "dfsk_";

/// Bytes of CSPRNG output in a generated secret (256 bits of entropy).
pub const SECRET_ENTROPY_BYTES: usize = 32;

/// A workspace secret key. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct SecretKey {
    secret: String,
    keyed: HmacSha256,
}

impl SecretKey {
    /// Wraps a secret string. Any string works as an HMAC key; the customer's snippets sign with
    /// whatever is in `DROPFIX_SECRET_KEY`, so no format is imposed here.
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        let keyed =
            HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
        SecretKey { secret, keyed }
    }

    /// Builds a new secret from CSPRNG bytes supplied by the caller (the core does no IO):
    /// `dfsk_` followed by the lowercase hex of 32 random bytes.
    pub fn from_random_bytes(bytes: &[u8; SECRET_ENTROPY_BYTES]) -> Self {
        let mut secret = String::with_capacity(SECRET_PREFIX.len() + 2 * SECRET_ENTROPY_BYTES);
        secret.push_str(SECRET_PREFIX);
        secret.push_str(&hex::encode(bytes));
        Self::new(secret)
    }

    /// The secret string itself, for showing once at creation and for storage. Named loudly so
    /// that every call site is easy to audit.
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }

    /// A clone of the precomputed keyed HMAC state.
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Whether a string looks like a DropFix secret key (it carries the generated prefix).
pub fn looks_like_secret(s: &str) -> bool {
    s.trim_start().starts_with(SECRET_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn debug_and_display_redact() {
        let key = SecretKey::new("dfsk_supersecretvalue");
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
        assert_eq!(format!("{key}"), "<redacted>");
        assert!(!format!("{key:?}{key}{key:#?}").contains("supersecret"));
    }

    #[test]
    fn generated_secret_has_prefix_and_256_bits() {
        let key = SecretKey::from_random_bytes(&[0xab; 32]);
        assert!(key.expose_secret().starts_with(SECRET_PREFIX));
        assert_eq!(key.expose_secret().len(), SECRET_PREFIX.len() + 64);
        assert!(looks_like_secret(key.expose_secret()));
        assert!(!looks_like_secret("pro"));
    }
}
