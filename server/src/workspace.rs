//! Workspaces and their keys as plain types, the rules on them (which keys verify now, which
//! origins may call), and the in-memory registry the identify path reads. No SQL here: the
//! backends in [`crate::store`] load and change these, so both backends share one set of rules.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use dropfix_core::{SECRET_ENTROPY_BYTES, SecretKey, StrictMode};
use serde::Serialize;

use crate::issuers::{Issuer, IssuerConfig};

/// Grace period of the old key after a rotation, unless the operator says otherwise.
pub const DEFAULT_ROTATION_GRACE_SECS: i64 = 7 * 24 * 3600;

/// Live keys a workspace may have at once (each one is a secret that verifies).
pub const MAX_LIVE_KEYS: usize = 10;

/// Longest key label.
pub const MAX_LABEL_CHARS: usize = 64;

/// Origins a new workspace accepts when none are given: local development only.
pub const DEV_ORIGINS: [&str; 2] = ["http://localhost:*", "http://127.0.0.1:*"];

/// One secret key of a workspace.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: i64,
    pub label: String,
    pub secret: SecretKey,
    pub created_at: i64,
    /// Who created it (`cli`, `admin-api`, or a console account's email).
    pub created_by: String,
    /// It stops verifying at this time (set by a roll's grace period or chosen at creation).
    pub expires_at: Option<i64>,
    /// Last time a call verified with it, flushed per commit batch.
    pub last_used_at: Option<i64>,
}

impl Key {
    pub fn live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }

    pub fn summary(&self) -> KeySummary {
        KeySummary {
            id: self.id,
            label: self.label.clone(),
            created_at: self.created_at,
            created_by: self.created_by.clone(),
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
        }
    }
}

/// A workspace as the identify path sees it.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub app_id: String,
    pub name: String,
    pub strict: StrictMode,
    pub require_signed_claims: bool,
    pub allowed_origins: Vec<String>,
    /// Newest first, live and expired alike until a backend purges expired ones.
    pub keys: Vec<Key>,
    /// Its token issuers (public keys, identity providers), in the order they were added.
    pub issuers: Vec<Issuer>,
    secrets: Vec<SecretKey>,
    /// The app id as a shared string, for per-call bookkeeping that must not allocate (the
    /// per-workspace rate limiter's key).
    shared_id: Arc<str>,
}

impl Workspace {
    pub fn new(
        app_id: String,
        name: String,
        strict: StrictMode,
        require_signed_claims: bool,
        allowed_origins: Vec<String>,
        mut keys: Vec<Key>,
    ) -> Workspace {
        keys.sort_by_key(|k| std::cmp::Reverse(k.id));
        Workspace {
            shared_id: Arc::from(app_id.as_str()),
            secrets: keys.iter().map(|k| k.secret.clone()).collect(),
            keys,
            app_id,
            name,
            strict,
            require_signed_claims,
            allowed_origins,
            issuers: Vec::new(),
        }
    }

    /// This workspace with these token issuers.
    pub fn with_issuers(self, issuers: Vec<Issuer>) -> Workspace {
        Workspace { issuers, ..self }
    }

    /// Its token issuer named `name`.
    pub fn issuer(&self, name: &str) -> Option<&Issuer> {
        self.issuers.iter().find(|i| i.config.name == name)
    }

    /// The secrets that verify at `now`, newest first, and the key ids in the same order.
    /// Borrowed unless a key has expired since the last reload.
    pub fn live_secrets(&self, now: i64) -> (Cow<'_, [SecretKey]>, Vec<i64>) {
        let ids: Vec<i64> = self
            .keys
            .iter()
            .filter(|k| k.live(now))
            .map(|k| k.id)
            .collect();
        if ids.len() == self.keys.len() {
            (Cow::Borrowed(&self.secrets), ids)
        } else {
            let live = self
                .keys
                .iter()
                .filter(|k| k.live(now))
                .map(|k| k.secret.clone())
                .collect();
            (Cow::Owned(live), ids)
        }
    }

    /// The app id, shared (cloning it is a reference count, not an allocation).
    pub fn shared_id(&self) -> &Arc<str> {
        &self.shared_id
    }

    pub fn live_keys(&self, now: i64) -> impl Iterator<Item = &Key> {
        self.keys.iter().filter(move |k| k.live(now))
    }

    pub fn key(&self, id: i64) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|pattern| origin_matches(pattern, origin))
    }

    /// The public view (no secrets).
    pub fn summary(&self) -> WorkspaceSummary {
        WorkspaceSummary {
            app_id: self.app_id.clone(),
            name: self.name.clone(),
            strict: self.strict.as_str(),
            require_signed_claims: self.require_signed_claims,
            allowed_origins: self.allowed_origins.clone(),
            keys: self.keys.iter().map(Key::summary).collect(),
            token_issuers: self.issuers.iter().map(|i| i.config.clone()).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceSummary {
    pub app_id: String,
    pub name: String,
    pub strict: &'static str,
    pub require_signed_claims: bool,
    pub allowed_origins: Vec<String>,
    pub keys: Vec<KeySummary>,
    /// Public keys and URLs only: nothing here can sign.
    pub token_issuers: Vec<IssuerConfig>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeySummary {
    pub id: i64,
    pub label: String,
    pub created_at: i64,
    pub created_by: String,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// `pattern` is `*`, an exact origin, or an origin whose port is `*` (any port, or none).
/// Scheme and host compare case-insensitively, as browsers serialise them in lower case anyway.
pub fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(base) = pattern.strip_suffix(":*") {
        let Some(rest) = origin.get(..base.len()) else {
            return false;
        };
        if !rest.eq_ignore_ascii_case(base) {
            return false;
        }
        let tail = &origin[base.len()..];
        return tail.is_empty()
            || tail
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    }
    pattern.eq_ignore_ascii_case(origin)
}

/// Checks an allowed-origin entry an operator typed, so a typo fails loudly instead of silently
/// blocking every browser.
pub fn validate_origin_pattern(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let (scheme, rest) = pattern.split_once("://").ok_or_else(|| {
        format!("allowed origin {pattern:?} needs a scheme, like https://app.example.com")
    })?;
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "allowed origin {pattern:?}: scheme must be http or https"
        ));
    }
    if rest.is_empty() || rest.contains('/') {
        return Err(format!(
            "allowed origin {pattern:?} must be scheme://host[:port] with no path (no trailing slash)"
        ));
    }
    // What a browser puts in its Origin header: a lower-or-upper-case ASCII host name (IDNs in
    // their xn-- form), an IPv4 address or a bracketed IPv6 one, and a port only when it is not
    // the scheme's default. Anything else could never match, so it is refused here.
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or_else(|| {
                format!("allowed origin {pattern:?}: an IPv6 address needs its closing ]")
            })?;
            if addr.is_empty()
                || !addr
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(format!(
                    "allowed origin {pattern:?}: {addr:?} is not an IPv6 address"
                ));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| {
                    format!("allowed origin {pattern:?} must be scheme://host[:port]")
                })?),
            };
            (None, port)
        }
        None => match rest.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(rest), None),
        },
    };
    if let Some(host) = host {
        let label_ok =
            |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if host.contains('*') {
            return Err(format!(
                "allowed origin {pattern:?}: a wildcard may only stand for the port \
                 (http://localhost:*) or the whole entry (*); list each host"
            ));
        }
        if !host.split('.').all(label_ok) {
            return Err(format!(
                "allowed origin {pattern:?}: {host:?} is not a host name a browser sends \
                 (letters, digits, - and . only; an international name in its xn-- form)"
            ));
        }
    }
    match (scheme, port) {
        (_, None | Some("*")) => Ok(()),
        ("https", Some("443")) | ("http", Some("80")) => Err(format!(
            "allowed origin {pattern:?}: browsers leave the default port out of the origin, so \
             write it without :{}",
            port.unwrap_or_default()
        )),
        // As a browser writes it: digits only, no leading zero.
        (_, Some(p))
            if !p.starts_with('0')
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok() =>
        {
            Ok(())
        }
        (_, Some(p)) => Err(format!(
            "allowed origin {pattern:?}: port {p:?} must be a number from 1 to 65535, or *"
        )),
    }
}

/// The workspaces the identify path reads, swapped whole on every reload.
#[derive(Debug, Default)]
pub struct Registry {
    // A std RwLock: held only to clone an Arc, never across an await.
    by_app: RwLock<Arc<HashMap<String, Arc<Workspace>>>>,
    /// Set when a change to the stored workspaces could not be loaded (a secret this instance
    /// cannot unseal), until a reload succeeds: the registry is then older than the database,
    /// and a retired key or a tightened strict mode would not apply here.
    stale: std::sync::atomic::AtomicBool,
    stale_reason: std::sync::Mutex<String>,
    /// When [`Registry::replace`] last ran, in milliseconds since the epoch (0: never), for
    /// the metrics.
    loaded_at_ms: std::sync::atomic::AtomicU64,
}

impl Registry {
    pub fn replace(&self, workspaces: Vec<Workspace>) {
        let map = workspaces
            .into_iter()
            .map(|w| (w.app_id.clone(), Arc::new(w)))
            .collect();
        *self.by_app.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        self.stale
            .store(false, std::sync::atomic::Ordering::Release);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.loaded_at_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// When the workspaces were last loaded (a [`Registry::replace`]), in seconds since the
    /// epoch; `None` before the first load.
    pub fn last_reload(&self) -> Option<f64> {
        match self.loaded_at_ms.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            ms => Some(ms as f64 / 1000.0),
        }
    }

    /// Records that the stored workspaces changed but could not be loaded (see
    /// [`Registry::stale`]); the next successful [`Registry::replace`] clears it.
    pub fn mark_stale(&self, why: &str) {
        *self.stale_reason.lock().unwrap_or_else(|e| e.into_inner()) = why.to_string();
        self.stale.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Why the workspaces here are older than the stored ones, if they are. The verifier then
    /// refuses identify calls (503) and fails its health check rather than decide with keys
    /// or modes that may have been retired.
    pub fn stale(&self) -> Option<String> {
        self.stale
            .load(std::sync::atomic::Ordering::Acquire)
            .then(|| {
                self.stale_reason
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            })
    }

    /// [`Registry::stale`] without the reason: one atomic load, for the identify path.
    pub fn is_stale(&self) -> bool {
        self.stale.load(std::sync::atomic::Ordering::Acquire)
    }

    fn snapshot(&self) -> Arc<HashMap<String, Arc<Workspace>>> {
        Arc::clone(&self.by_app.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn get(&self, app_id: &str) -> Option<Arc<Workspace>> {
        self.snapshot().get(app_id).cloned()
    }

    /// Whether any workspace accepts calls from `origin` (for preflights that name no app).
    pub fn any_allows_origin(&self, origin: &str) -> bool {
        self.snapshot().values().any(|w| w.allows_origin(origin))
    }

    pub fn all(&self) -> Vec<Arc<Workspace>> {
        let mut v: Vec<_> = self.snapshot().values().cloned().collect();
        v.sort_by(|a, b| a.app_id.cmp(&b.app_id));
        v
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS CSPRNG failing is not something a verifier can carry on from.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// A fresh secret with 256 bits from the OS CSPRNG.
pub fn generate_secret() -> SecretKey {
    SecretKey::from_random_bytes(&random_bytes::<SECRET_ENTROPY_BYTES>())
}

/// A random token with the given prefix (app ids, admin tokens, session ids).
pub fn random_token(prefix: &str, bytes: usize) -> String {
    let raw = random_bytes::<32>();
    format!("{prefix}{}", hex::encode(&raw[..bytes.min(32)]))
}

/// Settings of a new workspace.
#[derive(Debug, Clone)]
pub struct NewWorkspace {
    pub name: String,
    pub strict: StrictMode,
    pub require_signed_claims: bool,
    pub allowed_origins: Vec<String>,
}

/// Changes to a workspace's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct WorkspacePatch {
    pub name: Option<String>,
    pub strict: Option<StrictMode>,
    pub require_signed_claims: Option<bool>,
    pub allowed_origins: Option<Vec<String>>,
}

/// A key just made: the secret is shown once, then only its id and label.
#[derive(Debug)]
pub struct NewKey {
    pub workspace: Workspace,
    pub key_id: i64,
    pub secret: SecretKey,
    /// Set by a roll: when the key that was rolled stops verifying.
    pub old_key_expires_at: Option<i64>,
}

/// Why a key operation was refused (the workspace exists; the request breaks a key rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRuleError {
    NoSuchKey,
    /// Already [`MAX_LIVE_KEYS`] live keys.
    TooManyKeys,
    /// Retiring it would leave no key that verifies.
    LastLiveKey,
    /// Label empty, too long or with control characters.
    BadLabel,
    /// Expiry not in the future.
    BadExpiry,
}

impl KeyRuleError {
    pub fn code(&self) -> &'static str {
        match self {
            KeyRuleError::NoSuchKey => "key_not_found",
            KeyRuleError::TooManyKeys => "too_many_keys",
            KeyRuleError::LastLiveKey => "last_live_key",
            KeyRuleError::BadLabel => "invalid_label",
            KeyRuleError::BadExpiry => "invalid_expiry",
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            KeyRuleError::NoSuchKey => "this workspace has no live key with that id",
            KeyRuleError::TooManyKeys => {
                "a workspace has at most 10 live keys: retire one that is no longer used first"
            }
            KeyRuleError::LastLiveKey => {
                "this is the workspace's only live key; retiring it would make every signed call \
                 fail. Create or roll a key first"
            }
            KeyRuleError::BadLabel => {
                "a key label is 1 to 64 characters without control characters"
            }
            KeyRuleError::BadExpiry => {
                "a key's expiry must be in the future and no later than 9999-12-31 23:59:59 UTC"
            }
        }
    }
}

impl std::fmt::Display for KeyRuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Checks a key label an operator typed.
/// Longest workspace name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A workspace name: not blank, at most [`MAX_NAME_CHARS`], no control characters (a name is
/// printed in CLI listings and logs, where a newline would forge a line).
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("a workspace name cannot be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "a workspace name has at most {MAX_NAME_CHARS} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(
            "a workspace name cannot contain control characters (newlines, tabs, NUL)".into(),
        );
    }
    Ok(())
}

pub fn validate_label(label: &str) -> Result<(), KeyRuleError> {
    let n = label.chars().count();
    if label.trim().is_empty() || n > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(KeyRuleError::BadLabel);
    }
    Ok(())
}

/// The latest time a key may expire: 9999-12-31 23:59:59 UTC, the last second RFC 3339 (and so
/// every page and CLI listing that shows it as a date) can write.
pub const LATEST_EXPIRY: i64 = 253_402_300_799;

/// `t` (Unix seconds) as RFC 3339 in UTC, clamped to 1970..=9999 so that any stored value can
/// be shown.
pub fn rfc3339(t: i64) -> String {
    let secs = t.clamp(0, LATEST_EXPIRY).unsigned_abs();
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

/// The checks on a key about to be created, given how many keys are live now.
pub fn check_new_key(
    label: &str,
    expires_at: Option<i64>,
    live_count: usize,
    now: i64,
) -> Result<(), KeyRuleError> {
    validate_label(label)?;
    if expires_at.is_some_and(|t| t <= now || t > LATEST_EXPIRY) {
        return Err(KeyRuleError::BadExpiry);
    }
    if live_count >= MAX_LIVE_KEYS {
        return Err(KeyRuleError::TooManyKeys);
    }
    Ok(())
}

/// Which key a roll replaces: `key_id` if it is live, else (`None`) the newest live key.
/// `live` is newest first. The rolled key stays live through its grace period, so the new key
/// must fit beside it.
pub fn key_to_roll(
    live: &[i64],
    key_id: Option<i64>,
    grace_secs: i64,
) -> Result<i64, KeyRuleError> {
    let old = match key_id {
        Some(id) if live.contains(&id) => id,
        Some(_) => return Err(KeyRuleError::NoSuchKey),
        None => *live.first().ok_or(KeyRuleError::NoSuchKey)?,
    };
    if live.len() >= MAX_LIVE_KEYS && grace_secs > 0 {
        return Err(KeyRuleError::TooManyKeys);
    }
    Ok(old)
}

/// Whether `key_id` may be retired: it must be live and not the only live key.
/// Whether key `key_id` may be retired: it must be live, and not the last live key unless the
/// workspace has a token issuer (then it verifies public-key tokens only, and stores no secret).
pub fn check_retire(live: &[i64], key_id: i64, has_issuers: bool) -> Result<(), KeyRuleError> {
    if !live.contains(&key_id) {
        return Err(KeyRuleError::NoSuchKey);
    }
    if live.len() == 1 && !has_issuers {
        return Err(KeyRuleError::LastLiveKey);
    }
    Ok(())
}

/// A change to a workspace's token issuers that breaks a rule (the caller's mistake, 4xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerRuleError {
    /// The configuration is refused; the message says what to change.
    Invalid(String),
    /// The workspace already has an issuer of this name.
    Exists,
    NotFound,
    /// Already [`crate::issuers::MAX_ISSUERS`].
    TooMany,
    /// Removing it would leave the workspace neither a live key nor an issuer.
    LastVerifier,
}

impl IssuerRuleError {
    pub fn code(&self) -> &'static str {
        match self {
            IssuerRuleError::Invalid(_) => "invalid_issuer",
            IssuerRuleError::Exists => "issuer_exists",
            IssuerRuleError::NotFound => "issuer_not_found",
            IssuerRuleError::TooMany => "too_many_issuers",
            IssuerRuleError::LastVerifier => "last_verifier",
        }
    }

    pub fn message(&self) -> String {
        match self {
            IssuerRuleError::Invalid(why) => why.clone(),
            IssuerRuleError::Exists => {
                "this workspace already has a token issuer of that name: remove it first, or \
                 choose another name"
                    .into()
            }
            IssuerRuleError::NotFound => "this workspace has no token issuer of that name".into(),
            IssuerRuleError::TooMany => format!(
                "a workspace has at most {} token issuers",
                crate::issuers::MAX_ISSUERS
            ),
            IssuerRuleError::LastVerifier => {
                "this is the workspace's last token issuer and it has no secret key: removing it \
                 would leave nothing to verify signed calls with. Add a key or another issuer \
                 first"
                    .into()
            }
        }
    }
}

impl std::fmt::Display for IssuerRuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// What a roll does to the rolled key: it keeps verifying for `grace_secs` from `now`, but never
/// longer than it already would have (a second roll never extends, and never cuts short any
/// other key: only the rolled key's expiry moves).
pub fn rolled_expiry(current: Option<i64>, now: i64, grace_secs: i64) -> i64 {
    let until = now.saturating_add(grace_secs.max(0)).min(LATEST_EXPIRY);
    current.map_or(until, |t| t.min(until))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_patterns_that_could_never_match_are_refused() {
        for ok in [
            "*",
            "https://app.example.com",
            "http://localhost:*",
            "http://127.0.0.1:8080",
            "https://[::1]:8443",
            "http://[::1]",
            "https://xn--bcher-kva.example",
            "https://APP.Example.com",
        ] {
            assert_eq!(validate_origin_pattern(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("https://*.example.com", "wildcard"),
            ("https://*", "wildcard"),
            ("https://a.com:443", "default port"),
            ("http://a.com:80", "default port"),
            ("https://user@a.com", "host name"),
            ("https://a.com\r\nX: y", "host name"),
            ("https://bücher.example", "xn--"),
            ("https://a..com", "host name"),
            ("https://a.com:0", "1 to 65535"),
            ("https://a.com:08080", "1 to 65535"),
            ("https://a.com:+8443", "1 to 65535"),
            ("https://a.com:99999", "1 to 65535"),
            ("https://a.com:", "1 to 65535"),
            ("https://[::1", "closing ]"),
            ("https://[zz]", "IPv6"),
            ("https://a.com/", "no path"),
            ("ftp://a.com", "scheme"),
        ] {
            let e = validate_origin_pattern(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn every_time_formats_as_a_date() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(LATEST_EXPIRY), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn origin_patterns() {
        assert!(origin_matches(
            "http://localhost:*",
            "http://localhost:5173"
        ));
        assert!(origin_matches("http://localhost:*", "http://localhost"));
        assert!(origin_matches("http://localhost:*", "HTTP://LOCALHOST:1"));
        assert!(!origin_matches(
            "http://localhost:*",
            "http://localhost.evil.example"
        ));
        assert!(!origin_matches("http://localhost:*", "http://localhost:"));
        assert!(!origin_matches(
            "http://localhost:*",
            "https://localhost:5173"
        ));
        assert!(origin_matches(
            "https://app.example.com",
            "https://app.example.com"
        ));
        assert!(!origin_matches(
            "https://app.example.com",
            "https://app.example.com.evil"
        ));
        assert!(origin_matches("*", "https://anything"));
        assert!(validate_origin_pattern("https://app.example.com").is_ok());
        assert!(validate_origin_pattern("https://app.example.com/").is_err());
        assert!(validate_origin_pattern("app.example.com").is_err());
    }
}
