//! Workspaces: their settings and keys, the SQL that edits them (shared by the CLI and the admin
//! API), and the in-memory registry the identify path reads.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use dropfix_core::{SECRET_ENTROPY_BYTES, SecretKey, StrictMode};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::store::StoreError;

/// Grace period of the old key after a rotation, unless the operator says otherwise.
pub const DEFAULT_ROTATION_GRACE_SECS: i64 = 7 * 24 * 3600;

/// Origins a new workspace accepts when none are given: local development only.
pub const DEV_ORIGINS: [&str; 2] = ["http://localhost:*", "http://127.0.0.1:*"];

/// One secret key of a workspace.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: i64,
    pub secret: SecretKey,
    pub created_at: i64,
    /// Set on the old key by a rotation: it stops verifying at this time.
    pub expires_at: Option<i64>,
}

impl Key {
    fn live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| now < t)
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
    /// Newest first. At most two are live at any time.
    pub keys: Vec<Key>,
    secrets: Vec<SecretKey>,
}

impl Workspace {
    /// The secrets that verify at `now`, newest first, and the key ids in the same order.
    /// Borrowed unless a rotated-out key has expired since the last reload.
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
            keys: self
                .keys
                .iter()
                .map(|k| KeySummary {
                    id: k.id,
                    created_at: k.created_at,
                    expires_at: k.expires_at,
                })
                .collect(),
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
}

#[derive(Debug, Clone, Serialize)]
pub struct KeySummary {
    pub id: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
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
    Ok(())
}

/// The workspaces the identify path reads, swapped whole on every reload.
#[derive(Debug, Default)]
pub struct Registry {
    // A std RwLock: held only to clone an Arc, never across an await.
    by_app: RwLock<Arc<HashMap<String, Arc<Workspace>>>>,
}

impl Registry {
    pub fn replace(&self, workspaces: Vec<Workspace>) {
        let map = workspaces
            .into_iter()
            .map(|w| (w.app_id.clone(), Arc::new(w)))
            .collect();
        *self.by_app.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
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

pub fn load_workspaces(conn: &Connection) -> Result<Vec<Workspace>, StoreError> {
    let mut keys: HashMap<String, Vec<Key>> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT app_id, id, secret, created_at, expires_at FROM keys ORDER BY id DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Key {
                id: r.get(1)?,
                secret: SecretKey::new(r.get::<_, String>(2)?),
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
            },
        ))
    })?;
    for row in rows {
        let (app, key) = row?;
        keys.entry(app).or_default().push(key);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT app_id, name, strict, require_signed_claims, allowed_origins FROM workspaces",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (app_id, name, strict, require_signed_claims, origins) = row?;
        let keys = keys.remove(&app_id).unwrap_or_default();
        out.push(Workspace {
            secrets: keys.iter().map(|k| k.secret.clone()).collect(),
            keys,
            strict: StrictMode::parse(&strict).unwrap_or(StrictMode::Enforce),
            require_signed_claims,
            allowed_origins: serde_json::from_str(&origins).unwrap_or_default(),
            app_id,
            name,
        });
    }
    Ok(out)
}

pub fn get_workspace(conn: &Connection, app_id: &str) -> Result<Option<Workspace>, StoreError> {
    Ok(load_workspaces(conn)?
        .into_iter()
        .find(|w| w.app_id == app_id))
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

/// A random token with the given prefix (app ids, admin tokens).
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

/// Creates a workspace with a fresh app id and secret; returns both (the secret is shown once).
pub fn create_workspace(
    conn: &mut Connection,
    new: &NewWorkspace,
    now: i64,
) -> Result<(Workspace, SecretKey), StoreError> {
    let app_id = random_token("app_", 12);
    let secret = generate_secret();
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO workspaces (app_id, name, strict, require_signed_claims, allowed_origins, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            app_id,
            new.name,
            new.strict.as_str(),
            new.require_signed_claims,
            serde_json::to_string(&new.allowed_origins).unwrap_or_else(|_| "[]".into()),
            now
        ],
    )?;
    tx.execute(
        "INSERT INTO keys (app_id, secret, created_at) VALUES (?1, ?2, ?3)",
        params![app_id, secret.expose_secret(), now],
    )?;
    tx.commit()?;
    let ws = get_workspace(conn, &app_id)?
        .ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))?;
    Ok((ws, secret))
}

/// Changes to a workspace's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct WorkspacePatch {
    pub name: Option<String>,
    pub strict: Option<StrictMode>,
    pub require_signed_claims: Option<bool>,
    pub allowed_origins: Option<Vec<String>>,
}

pub fn update_workspace(
    conn: &Connection,
    app_id: &str,
    patch: &WorkspacePatch,
) -> Result<Option<Workspace>, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let exists: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM workspaces WHERE app_id = ?1",
            [app_id],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(None);
    }
    if let Some(name) = &patch.name {
        tx.execute(
            "UPDATE workspaces SET name = ?2 WHERE app_id = ?1",
            params![app_id, name],
        )?;
    }
    if let Some(strict) = patch.strict {
        tx.execute(
            "UPDATE workspaces SET strict = ?2 WHERE app_id = ?1",
            params![app_id, strict.as_str()],
        )?;
    }
    if let Some(required) = patch.require_signed_claims {
        tx.execute(
            "UPDATE workspaces SET require_signed_claims = ?2 WHERE app_id = ?1",
            params![app_id, required],
        )?;
    }
    if let Some(origins) = &patch.allowed_origins {
        tx.execute(
            "UPDATE workspaces SET allowed_origins = ?2 WHERE app_id = ?1",
            params![
                app_id,
                serde_json::to_string(origins).unwrap_or_else(|_| "[]".into())
            ],
        )?;
    }
    tx.commit()?;
    get_workspace(conn, app_id)
}

/// What a rotation returns: the new secret (shown once) and when the old key stops verifying.
#[derive(Debug)]
pub struct Rotation {
    pub workspace: Workspace,
    pub secret: SecretKey,
    pub old_key_expires_at: i64,
}

/// Adds a new key; the previous newest key keeps verifying for `grace_secs`. Any older key still
/// live is retired now, so at most two secrets ever verify.
pub fn rotate_key(
    conn: &Connection,
    app_id: &str,
    grace_secs: i64,
    now: i64,
) -> Result<Option<Rotation>, StoreError> {
    let Some(ws) = get_workspace(conn, app_id)? else {
        return Ok(None);
    };
    let secret = generate_secret();
    let expires = now.saturating_add(grace_secs.max(0));
    let tx = conn.unchecked_transaction()?;
    for (i, key) in ws.keys.iter().enumerate() {
        let until = if i == 0 { expires } else { now };
        if key.expires_at.is_none_or(|t| t > until) {
            tx.execute(
                "UPDATE keys SET expires_at = ?2 WHERE id = ?1",
                params![key.id, until],
            )?;
        }
    }
    tx.execute(
        "INSERT INTO keys (app_id, secret, created_at) VALUES (?1, ?2, ?3)",
        params![app_id, secret.expose_secret(), now],
    )?;
    tx.execute(
        "DELETE FROM keys WHERE app_id = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2",
        params![app_id, now],
    )?;
    tx.commit()?;
    let workspace = get_workspace(conn, app_id)?
        .ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))?;
    Ok(Some(Rotation {
        workspace,
        secret,
        old_key_expires_at: expires,
    }))
}

/// Ends the grace period now: only the newest key verifies from here on.
pub fn retire_old_keys(conn: &Connection, app_id: &str) -> Result<Option<Workspace>, StoreError> {
    let Some(ws) = get_workspace(conn, app_id)? else {
        return Ok(None);
    };
    if let Some(newest) = ws.keys.first() {
        conn.execute(
            "DELETE FROM keys WHERE app_id = ?1 AND id <> ?2",
            params![app_id, newest.id],
        )?;
    }
    get_workspace(conn, app_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::open_in_memory;

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

    #[test]
    fn rotation_keeps_two_live_keys_then_retires() {
        let mut conn = open_in_memory().unwrap();
        let (ws, first) = create_workspace(
            &mut conn,
            &NewWorkspace {
                name: "t".into(),
                strict: StrictMode::Off,
                require_signed_claims: false,
                allowed_origins: vec![],
            },
            100,
        )
        .unwrap();
        assert!(first.expose_secret().starts_with("dfsk_"));
        let r = rotate_key(&conn, &ws.app_id, 50, 200).unwrap().unwrap();
        let (live, _) = r.workspace.live_secrets(210);
        assert_eq!(live.len(), 2);
        assert_eq!(live[0].expose_secret(), r.secret.expose_secret());
        assert_eq!(live[1].expose_secret(), first.expose_secret());
        let (live, _) = r.workspace.live_secrets(250);
        assert_eq!(live.len(), 1, "the old key expires after the grace period");
        // A second rotation during the grace period retires the oldest at once.
        let r2 = rotate_key(&conn, &ws.app_id, 50, 220).unwrap().unwrap();
        let (live, _) = r2.workspace.live_secrets(221);
        assert_eq!(live.len(), 2);
        assert_eq!(live[1].expose_secret(), r.secret.expose_secret());
        let ws = retire_old_keys(&conn, &ws.app_id).unwrap().unwrap();
        assert_eq!(ws.live_secrets(221).0.len(), 1);
    }
}
