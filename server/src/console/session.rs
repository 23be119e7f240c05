//! Who is asking: passwords (argon2id PHC strings), session tokens and their cookie. (The login
//! rate limits are [`crate::limits::login`].)
//!
//! A session token is 256 random bits sent only in an `HttpOnly; SameSite=Strict` cookie; the
//! store keeps its SHA-256, so a copy of the database does not log anyone in and any verifier
//! instance can check any session.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use hyper::header::{self, HeaderMap};
use sha2::{Digest, Sha256};

use crate::state::ConsoleConfig;
use crate::store::SessionRules;

/// The session cookie. Not `__Host-`: that prefix requires `Path=/`, and the cookie is scoped to
/// `/console` so identify calls never carry it.
pub const COOKIE: &str = "dropfix_console";

/// Shortest password `user create` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// An argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password failed: {e}"))
}

/// Whether `password` matches the PHC string. Slow on purpose (argon2id).
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A login for an email no account has still runs argon2 once against this hash, so the answer
/// takes as long as for a real account with a wrong password.
pub fn verify_unknown_account(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| {
        hash_password("not any account's password").expect("argon2 with default parameters")
    });
    let _ = verify_password(password, phc);
}

/// A new session token (the cookie value) and its SHA-256 (what the store keeps).
pub fn new_token() -> (String, [u8; 32]) {
    let token = crate::workspace::random_token("", 32);
    let digest = Sha256::digest(token.as_bytes()).into();
    (token, digest)
}

/// The SHA-256 of the session token in the request's cookie, if it has one.
pub fn token_from(headers: &HeaderMap) -> Option<[u8; 32]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        // Tokens are 64 hex digits; anything else is not ours and is not worth a store lookup.
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|v| Sha256::digest(v.as_bytes()).into())
}

/// `Set-Cookie` for a new session (no `Max-Age`: the server ends sessions, and a browser
/// session cookie also ends when the browser closes).
pub fn set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Longest email a login form may carry (RFC 5321's limit on a path): a longer one is refused
/// before any limit is consulted, so it costs nothing lasting.
pub const MAX_EMAIL_BYTES: usize = 254;

/// How long a console session lasts, as the store checks it.
pub(crate) fn rules(cfg: &ConsoleConfig) -> SessionRules {
    SessionRules {
        idle_secs: cfg.session_idle.as_secs().try_into().unwrap_or(i64::MAX),
        absolute_secs: cfg
            .session_absolute
            .as_secs()
            .try_into()
            .unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip_is_argon2id() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse batterY", &phc));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn cookie_is_found_among_others_and_malformed_ones_are_ignored() {
        let (token, digest) = new_token();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={token}; c=d").parse().unwrap(),
        );
        assert_eq!(token_from(&h), Some(digest));
        h.insert(header::COOKIE, format!("{COOKIE}=short").parse().unwrap());
        assert_eq!(token_from(&h), None);
        assert!(set_cookie(&token, true).ends_with("; Secure"));
        assert!(!set_cookie(&token, false).contains("Secure"));
    }
}
