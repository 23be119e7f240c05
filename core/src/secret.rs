//! The workspace secret key.
//!
//! The HMAC key is the UTF-8 bytes of the secret *string*, exactly as the seed page's Node
//! (`createHmac('sha256', process.env.DROPFIX_SECRET_KEY)`), Python (`.encode()`) and Ruby
//! (`OpenSSL::HMAC.hexdigest('SHA256', ENV[...], ...)`) snippets use it: never hex- or
//! base64-decoded. The keyed HMAC state (inner and outer padded blocks) is computed once per key,
//! so verifying a short user id costs two SHA-256 compressions instead of four.
//!
//! # Two keys: the seed form and signed claims
//!
//! The seed form is an oracle: whoever can register a user id `x` (a username, say) gets the
//! customer's backend to return `HMAC(secret, x)`. If signed-claims tokens were keyed with the same
//! secret, a user id equal to a token's signing input would be signed as a valid token (and a
//! token's signing input would be a valid seed-form user id). So tokens are keyed with the
//! workspace's **claims key**, derived from the secret with HKDF-SHA256 (RFC 5869):
//!
//! ```text
//! prk        = HMAC-SHA256(key = "dropfix signed-claims", msg = UTF-8 bytes of the secret)  // Extract
//! okm        = HMAC-SHA256(key = prk, msg = "dropfix/claims-key/v1" || 0x01)               // Expand, L = 32
//! claims key = "dfck_" + lowercase hex(okm)     (the JWT library's HS256 key is this string's UTF-8 bytes)
//! ```
//!
//! Why the seed form can never compute it: every seed-form signature is an HMAC *keyed with the
//! secret*. Extract keys its HMAC with the public salt and takes the secret as the *message*, so
//! `prk` is not `HMAC(secret, x)` for any `x` an attacker could register; obtaining it from the
//! oracle would mean HMAC(secret, ·) and HMAC(salt, ·) agree on an output, which HMAC-SHA256 as a
//! PRF does not allow. Expand then keys with `prk`, which nobody outside the backend holds. (A
//! claims key derived as `HMAC(secret, "some label")` would fall to registering the label as a user
//! id; that is the trap this construction avoids.) Each stored secret has its own claims key, so
//! existing workspaces and rotations keep working: rotating the secret rotates the claims key too.

use alloc::string::String;
use core::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit};
use sha2::Sha256;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Every secret DropFix generates starts with this prefix, so a secret pasted into browser code or
/// a trait can be recognised and refused before it is ever sent.
pub const SECRET_PREFIX: &str = "dfsk_";

/// Bytes of CSPRNG output in a generated secret (256 bits of entropy).
pub const SECRET_ENTROPY_BYTES: usize = 32;

/// Every claims key starts with this prefix, so one pasted where the secret belongs (or into the
/// browser) can be recognised.
pub const CLAIMS_KEY_PREFIX: &str = "dfck_";

/// HKDF salt of the claims key (public; it keys the Extract step, see the module docs).
pub const CLAIMS_KEY_SALT: &[u8] = b"dropfix signed-claims";

/// HKDF info of the claims key; the version lets a future key schedule coexist with this one.
pub const CLAIMS_KEY_INFO: &[u8] = b"dropfix/claims-key/v1";

/// A workspace secret key. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct SecretKey {
    secret: String,
    keyed: HmacSha256,
    claims: ClaimsKey,
}

/// The workspace's signed-claims key, derived from a [`SecretKey`] (see the module docs): the key
/// a customer's backend gives its JWT library to sign HS256 tokens. `Debug` and `Display` never
/// show it.
#[derive(Clone)]
pub struct ClaimsKey {
    key: String,
    keyed: HmacSha256,
}

impl ClaimsKey {
    fn derive(secret: &str) -> Self {
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(CLAIMS_KEY_SALT), secret.as_bytes())
            .expand(CLAIMS_KEY_INFO, &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut key = String::with_capacity(CLAIMS_KEY_PREFIX.len() + 2 * okm.len());
        key.push_str(CLAIMS_KEY_PREFIX);
        key.push_str(&hex::encode(okm));
        // The JWT HMAC key is the string's UTF-8 bytes, so any JWT library signs with it as-is.
        let keyed =
            HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
        ClaimsKey { key, keyed }
    }

    /// The claims key string (`dfck_` + 64 hex digits), for the customer's backend to sign
    /// tokens with. Named loudly so that every call site is easy to audit.
    pub fn expose_claims_key(&self) -> &str {
        &self.key
    }

    /// A clone of the precomputed keyed HMAC state.
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

impl fmt::Debug for ClaimsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimsKey(<redacted>)")
    }
}

impl fmt::Display for ClaimsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl SecretKey {
    /// Wraps a secret string. Any string works as an HMAC key; the customer's snippets sign with
    /// whatever is in `DROPFIX_SECRET_KEY`, so no format is imposed here.
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        let keyed =
            HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
        let claims = ClaimsKey::derive(&secret);
        SecretKey {
            secret,
            keyed,
            claims,
        }
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

    /// The signed-claims key derived from this secret (signed-claims tokens are keyed with it; the
    /// seed form keeps the secret itself).
    pub fn claims_key(&self) -> &ClaimsKey {
        &self.claims
    }

    /// The claims key string: shorthand for `claims_key().expose_claims_key()`.
    pub fn expose_claims_key(&self) -> &str {
        self.claims.expose_claims_key()
    }

    /// A clone of the precomputed keyed HMAC state of the seed form (keyed with the secret).
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

/// Whether a string looks like a DropFix secret key or claims key (it carries the generated
/// prefix). A claims key forges tokens as surely as the secret forges seed signatures, so neither
/// may travel from the browser.
pub fn looks_like_secret(s: &str) -> bool {
    let s = s.trim_start();
    s.starts_with(SECRET_PREFIX) || s.starts_with(CLAIMS_KEY_PREFIX)
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
    fn claims_key_debug_and_display_redact() {
        let key = SecretKey::new("dfsk_supersecretvalue");
        let ck = key.claims_key();
        let shown = format!("{ck:?}{ck}{ck:#?}{key:?}");
        assert_eq!(format!("{ck:?}"), "ClaimsKey(<redacted>)");
        assert_eq!(format!("{ck}"), "<redacted>");
        assert!(!shown.contains(&key.expose_claims_key()[5..]), "{shown}");
        assert!(!shown.contains("dfck_"), "{shown}");
    }

    #[test]
    fn claims_key_is_hkdf_sha256_of_the_secret() {
        // RFC 5869 with L = 32 is one Expand block: prk = HMAC(salt, ikm); okm = HMAC(prk, info || 1).
        use hmac::Mac;
        let secret = "dfsk_example";
        let mut extract = HmacSha256::new_from_slice(CLAIMS_KEY_SALT).unwrap();
        extract.update(secret.as_bytes());
        let prk = extract.finalize().into_bytes();
        let mut expand = HmacSha256::new_from_slice(&prk).unwrap();
        expand.update(CLAIMS_KEY_INFO);
        expand.update(&[1]);
        let okm = expand.finalize().into_bytes();
        let key = SecretKey::new(secret);
        assert_eq!(
            key.expose_claims_key(),
            format!("{CLAIMS_KEY_PREFIX}{}", hex::encode(okm))
        );
        assert_eq!(key.expose_claims_key().len(), 69);
        // The precomputed state is keyed with the claims key string's bytes.
        let mut direct = HmacSha256::new_from_slice(key.expose_claims_key().as_bytes()).unwrap();
        direct.update(b"m");
        let mut pre = key.claims_key().mac();
        pre.update(b"m");
        assert_eq!(direct.finalize().into_bytes(), pre.finalize().into_bytes());
        // Each secret has its own claims key (a rotation rotates it too).
        assert_ne!(
            SecretKey::new("dfsk_other").expose_claims_key(),
            key.expose_claims_key()
        );
        assert!(looks_like_secret(key.expose_claims_key()));
    }

    #[test]
    fn seed_state_is_keyed_with_the_secret_itself() {
        use hmac::Mac;
        let key = SecretKey::new("dfsk_example");
        let mut direct = HmacSha256::new_from_slice(b"dfsk_example").unwrap();
        direct.update(b"42");
        let mut pre = key.mac();
        pre.update(b"42");
        assert_eq!(direct.finalize().into_bytes(), pre.finalize().into_bytes());
        assert_eq!(key.clone().expose_secret(), "dfsk_example");
    }

    #[test]
    fn generated_secret_has_prefix_and_256_bits() {
        let key = SecretKey::from_random_bytes(&[0xab; 32]);
        assert!(key.expose_secret().starts_with(SECRET_PREFIX));
        assert_eq!(key.expose_secret().len(), SECRET_PREFIX.len() + 64);
        assert!(looks_like_secret(key.expose_secret()));
        assert!(looks_like_secret("  dfsk_x"));
        assert!(looks_like_secret(" dfck_x"));
        assert!(!looks_like_secret("pro"));
        assert!(!looks_like_secret("dfs"));
        assert!(!looks_like_secret("x dfsk_"));
    }
}
