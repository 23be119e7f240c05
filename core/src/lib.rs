//! # dropfix-core
//!
//! Signing, verification and identify-payload validation for DropFix identity verification.
//! Pure: no IO, no clock, no randomness. The adapters (`dropfix-server`, `dropfix-wasm`) read the
//! clock and pass `now` in; the server supplies CSPRNG bytes when it generates a secret.
//!
//! ```
//! use dropfix_core::{decide, seed, Decision, Identify, Policy, SecretKey, StrictMode, Value};
//!
//! let secret = SecretKey::new("dfsk_example");
//! let now = 1_732_406_400;
//! // The customer's backend, after login (Step 1 of the page):
//! let dropfix_hash = seed::sign(&secret, "42");
//! // The browser's identify() call, as it arrives at the verifier:
//! let body: Value = serde_json::from_str(&format!(
//!     r#"{{"app_id":"app_1","user_id":"42","traits":{{"plan":"pro","mrr":49}},
//!          "hash":"{dropfix_hash}","signedAt":{now}}}"#
//! )).unwrap();
//! let call = Identify::from_wire(&body).unwrap();
//! let policy = Policy {
//!     secrets: &[secret], strict: StrictMode::Off, require_signed_claims: false,
//!     issuers: dropfix_core::NO_ISSUERS,
//! };
//! assert!(matches!(decide(&policy, &call, now), Decision::Verified(_)));
//! ```
#![no_std]

extern crate alloc;

pub mod claims;
mod decision;
pub mod issuer;
mod payload;
mod rejection;
mod secret;
pub mod seed;
pub mod timestamp;
mod value;

pub use decision::{
    Decision, Method, NO_ISSUERS, NoIssuers, Policy, StrictMode, TokenIssuers, TrustedTraits,
    Verified, decide,
};
pub use payload::{
    Identify, MAX_BODY_BYTES, MAX_CUSTOM_TRAITS, MAX_SIGNATURE_BYTES, MAX_TRAIT_STRING_BYTES,
    MAX_USER_ID_BYTES, RESERVED_TRAIT_NAMES, RESERVED_TRAIT_PREFIXES, Traits, ValidationError,
    is_reserved_trait,
};
pub use rejection::Rejection;
pub use secret::{
    CLAIMS_KEY_INFO, CLAIMS_KEY_PREFIX, CLAIMS_KEY_SALT, ClaimsKey, SECRET_ENTROPY_BYTES,
    SECRET_PREFIX, SecretKey, looks_like_secret,
};
pub use value::{MAX_DEPTH, Value};
