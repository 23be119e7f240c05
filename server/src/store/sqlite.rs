//! The embedded backend: SQLite (WAL) in the data directory, owned by one thread.
//!
//! Every write goes through that thread. It drains whatever identify writes are queued (up to
//! [`MAX_BATCH`]) and commits them in one transaction, so a burst of N calls costs one fsync,
//! not N, and each caller is answered only after the commit that holds its record: a 2xx is
//! sent only once the record is durable.
//!
//! Everything else (admin reads and edits, workspace reloads) runs on the same thread as a
//! closure over the connection, between batches. SQLite allows one writer at a time anyway, and
//! admin traffic is rare next to identify calls. Another process (the CLI) may open the same
//! file: its key changes run in `BEGIN IMMEDIATE` transactions, so the read that decides a change
//! and the change itself happen under the write lock, and the server notices the commit through
//! `PRAGMA data_version` within [`POLL_INTERVAL`].

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use dropfix_core::{SecretKey, StrictMode};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use super::{
    Account, AccountChange, AccountLogin, AuditEntry, CallCounts, CountsDelta, Hooks,
    MAX_RECENT_REJECTIONS, Membership, MergeRows, Queued, RejectionEntry, Role, SealCounts,
    SessionRules, StoreError, open_secret, seal_secret,
};
use crate::sealing::{Keyring, sealed_key_id};
use crate::users::{IdentifyWrite, UserQuery, UserRecord};
use crate::workspace::{
    Key, NewKey, NewWorkspace, Workspace, WorkspacePatch, check_new_key, check_retire,
    generate_secret, key_to_roll, random_token, rolled_expiry,
};

/// Most identify writes committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// Queue depth before callers wait (backpressure rather than unbounded memory).
const QUEUE_DEPTH: usize = 8192;
/// How often the server looks for edits made by another process (the CLI): a `PRAGMA
/// data_version` read, so a change reaches a running server well within the second promised
/// even on a busy machine.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The database file in the data directory.
pub const DB_FILE: &str = "dropfix.sqlite3";

/// Versioned schema migrations; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: workspaces, their keys, users, and server metadata.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE workspaces (
         app_id TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         strict TEXT NOT NULL DEFAULT 'off',
         require_signed_claims INTEGER NOT NULL DEFAULT 0,
         allowed_origins TEXT NOT NULL DEFAULT '[]',
         created_at INTEGER NOT NULL
     );
     CREATE TABLE keys (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id TEXT NOT NULL REFERENCES workspaces(app_id) ON DELETE CASCADE,
         secret TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         expires_at INTEGER
     );
     CREATE INDEX keys_app ON keys(app_id);
     CREATE TABLE users (
         app_id TEXT NOT NULL,
         user_id TEXT NOT NULL,
         verified INTEGER NOT NULL,
         method TEXT,
         key_id INTEGER,
         verified_at INTEGER,
         signed_at INTEGER,
         name TEXT,
         email TEXT,
         plan TEXT,
         mrr REAL,
         signup_date TEXT,
         custom TEXT NOT NULL DEFAULT '{}',
         unverified_claims TEXT,
         first_seen INTEGER NOT NULL,
         last_seen INTEGER NOT NULL,
         PRIMARY KEY (app_id, user_id)
     ) WITHOUT ROWID;
     CREATE INDEX users_verified ON users(app_id, verified, user_id);",
    // 2: named keys (up to ten live), who made them and when they were last used; audit log.
    "ALTER TABLE keys ADD COLUMN label TEXT NOT NULL DEFAULT 'default';
     ALTER TABLE keys ADD COLUMN created_by TEXT NOT NULL DEFAULT 'cli';
     ALTER TABLE keys ADD COLUMN last_used_at INTEGER;
     CREATE TABLE audit_log (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id TEXT NOT NULL,
         at INTEGER NOT NULL,
         actor TEXT NOT NULL,
         action TEXT NOT NULL,
         detail TEXT NOT NULL DEFAULT '{}'
     );
     CREATE INDEX audit_app ON audit_log(app_id, id);",
    // 3: the console: accounts (argon2id PHC strings), their workspaces and roles, sessions
    // (SHA-256 of the token only), identify outcomes per workspace and minute (added to by
    // every instance), and the last rejections per workspace (a bounded log, trimmed on insert).
    "CREATE TABLE console_accounts (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         email TEXT NOT NULL UNIQUE,
         password_phc TEXT NOT NULL,
         created_at INTEGER NOT NULL
     );
     CREATE TABLE console_members (
         account_id INTEGER NOT NULL REFERENCES console_accounts(id) ON DELETE CASCADE,
         app_id TEXT NOT NULL REFERENCES workspaces(app_id) ON DELETE CASCADE,
         role TEXT NOT NULL,
         PRIMARY KEY (account_id, app_id)
     ) WITHOUT ROWID;
     CREATE TABLE console_sessions (
         token_sha256 BLOB PRIMARY KEY,
         account_id INTEGER NOT NULL REFERENCES console_accounts(id) ON DELETE CASCADE,
         created_at INTEGER NOT NULL,
         last_seen INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE call_counts (
         app_id TEXT NOT NULL,
         minute INTEGER NOT NULL,
         verified_seed INTEGER NOT NULL DEFAULT 0,
         verified_claims INTEGER NOT NULL DEFAULT 0,
         unverified INTEGER NOT NULL DEFAULT 0,
         would_reject INTEGER NOT NULL DEFAULT 0,
         rejected INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (app_id, minute)
     ) WITHOUT ROWID;
     CREATE TABLE recent_rejections (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         app_id TEXT NOT NULL,
         at INTEGER NOT NULL,
         code TEXT NOT NULL,
         enforced INTEGER NOT NULL,
         key_id INTEGER,
         origin TEXT,
         user_id TEXT
     );
     CREATE INDEX recent_rejections_app ON recent_rejections(app_id, id);",
];

/// Opens (creating if needed) the database file in `data_dir` and brings its schema up to date.
/// The directory holds every workspace secret: it is created owner-only, and an existing one
/// that other users can read or write is refused rather than used.
pub fn open_file(data_dir: &Path) -> Result<Connection, StoreError> {
    prepare_data_dir(data_dir)?;
    let path = data_dir.join(DB_FILE);
    create_owner_only(&path)?;
    let conn = Connection::open(&path)?;
    // WAL: readers (the CLI) never block the writer. synchronous=FULL: a commit is on disk (not
    // only in the OS cache) before it returns, so an acknowledged record survives power loss
    // too; group commit is what keeps that affordable. SQLite gives the -wal and -shm files the
    // database file's permissions, so they are owner-only too.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // SQLite's default page cache is 2 MB: with a million stored users every upsert's B-tree
    // walk then misses it and pays a read() per page. 64 MB keeps the users index's interior
    // pages (and the hot leaves) resident (bench/hotpath.sh PREFILL=1000000: 2.3k -> 8.8k req/s).
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    migrate(&conn)?;
    Ok(conn)
}

/// An in-memory database with the same schema.
pub fn open_memory_conn() -> Result<Connection, StoreError> {
    let conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&conn)?;
    Ok(conn)
}

#[cfg(unix)]
fn prepare_data_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let setup = |msg: String| StoreError::Setup(msg);
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| setup(format!("cannot create data dir {}: {e}", dir.display())))?;
    }
    let meta = std::fs::metadata(dir)
        .map_err(|e| setup(format!("cannot read data dir {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(setup(format!(
            "data dir {} is not a directory",
            dir.display()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(setup(format!(
            "data dir {} has mode {mode:o}: other users could read the workspace secrets in \
             it. Make it owner-only (`chmod 700 {}`) and start again",
            dir.display(),
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn prepare_data_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Setup(format!("cannot create data dir {}: {e}", dir.display())))
}

/// Creates `path` with mode 0600 if it does not exist; tightens an existing one (an older
/// version created it 0644) so the file and the -wal/-shm files SQLite derives from it are
/// owner-only.
fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let setup = |e: std::io::Error| {
            StoreError::Setup(format!("cannot create {} owner-only: {e}", path.display()))
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                for suffix in ["", "-wal", "-shm"] {
                    let p = path.with_file_name(format!(
                        "{}{suffix}",
                        path.file_name().unwrap_or_default().to_string_lossy()
                    ));
                    if let Ok(m) = std::fs::metadata(&p)
                        && m.permissions().mode() & 0o077 != 0
                    {
                        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                            .map_err(setup)?;
                    }
                }
            }
            Err(e) => return Err(setup(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len();
    let version = usize::try_from(found)
        .ok()
        .filter(|&v| v <= known)
        .ok_or(StoreError::UnknownSchema { found, known })?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        // IMMEDIATE, and the version read again inside: a server and a CLI opening a new
        // database together apply each migration once, whichever takes the write lock first.
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let next = i64::try_from(i + 1).unwrap_or(i64::MAX);
        if now < next {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", next)?;
        }
        tx.commit()?;
    }
    Ok(())
}

/// How many migrations this build knows (tests of the schema-version refusal).
pub fn schema_version_known() -> usize {
    MIGRATIONS.len()
}

// ---------------------------------------------------------------------------------------------
// Workspaces and keys

fn load_workspaces(conn: &Connection, ring: &Keyring) -> Result<Vec<Workspace>, StoreError> {
    let mut keys: HashMap<String, Vec<Key>> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT app_id, id, secret, created_at, expires_at, label, created_by, last_used_at
         FROM keys ORDER BY id DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(2)?,
            Key {
                id: r.get(1)?,
                secret: SecretKey::new(""),
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
                label: r.get(5)?,
                created_by: r.get(6)?,
                last_used_at: r.get(7)?,
            },
        ))
    })?;
    for row in rows {
        let (app, sealed, mut key) = row?;
        key.secret = open_secret(ring, &app, key.id, &sealed)?;
        keys.entry(app).or_default().push(key);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT app_id, name, strict, require_signed_claims, allowed_origins FROM workspaces
         ORDER BY app_id",
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
        out.push(Workspace::new(
            app_id,
            name,
            // An unreadable setting fails closed: enforce.
            StrictMode::parse(&strict).unwrap_or(StrictMode::Enforce),
            require_signed_claims,
            serde_json::from_str(&origins).unwrap_or_default(),
            keys,
        ));
    }
    Ok(out)
}

fn get_workspace(conn: &Connection, ring: &Keyring, app_id: &str) -> Result<Workspace, StoreError> {
    load_workspaces(conn, ring)?
        .into_iter()
        .find(|w| w.app_id == app_id)
        .ok_or(StoreError::WorkspaceNotFound)
}

/// A write transaction that takes SQLite's write lock before its first read, so what it reads
/// cannot change before it commits (two CLIs rotating at once run one after the other).
fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

fn require_workspace(tx: &Transaction<'_>, app_id: &str) -> Result<(), StoreError> {
    tx.query_row(
        "SELECT 1 FROM workspaces WHERE app_id = ?1",
        [app_id],
        |r| r.get::<_, i64>(0),
    )
    .optional()?
    .map(|_| ())
    .ok_or(StoreError::WorkspaceNotFound)
}

fn audit(
    tx: &Transaction<'_>,
    app_id: &str,
    actor: &str,
    action: &str,
    detail: Json,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO audit_log (app_id, at, actor, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![app_id, now, actor, action, detail.to_string()])?;
    Ok(())
}

/// Forgets keys whose grace period is over (their secrets no longer verify anything).
fn purge_expired(tx: &Transaction<'_>, app_id: &str, now: i64) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM keys WHERE app_id = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2",
        params![app_id, now],
    )?;
    Ok(())
}

fn live_key_ids(tx: &Transaction<'_>, app_id: &str, now: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = tx.prepare_cached(
        "SELECT id FROM keys WHERE app_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
         ORDER BY id DESC",
    )?;
    let ids = stmt.query_map(params![app_id, now], |r| r.get(0))?;
    ids.collect()
}

// Every column of a key row is one argument; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn insert_key(
    tx: &Transaction<'_>,
    ring: &Keyring,
    app_id: &str,
    label: &str,
    secret: &SecretKey,
    expires_at: Option<i64>,
    actor: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    // The sealed secret is bound to its row's id, known once the row exists.
    tx.execute(
        "INSERT INTO keys (app_id, secret, created_at, expires_at, label, created_by)
         VALUES (?1, '', ?2, ?3, ?4, ?5)",
        params![app_id, now, expires_at, label, actor],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "UPDATE keys SET secret = ?2 WHERE id = ?1",
        params![id, seal_secret(ring, app_id, id, secret)],
    )?;
    Ok(id)
}

fn origins_json(origins: &[String]) -> String {
    serde_json::to_string(origins).unwrap_or_else(|_| "[]".into())
}

fn create_workspace(
    conn: &mut Connection,
    ring: &Keyring,
    new: &NewWorkspace,
    actor: &str,
    now: i64,
    only_if_none: bool,
) -> Result<Option<NewKey>, StoreError> {
    let app_id = random_token("app_", 12);
    let secret = generate_secret();
    // IMMEDIATE: the check below and the insert are one step for every process on this file.
    let tx = write_tx(conn)?;
    if only_if_none
        && tx
            .query_row("SELECT 1 FROM workspaces LIMIT 1", [], |_| Ok(()))
            .optional()?
            .is_some()
    {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO workspaces (app_id, name, strict, require_signed_claims, allowed_origins, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            app_id,
            new.name,
            new.strict.as_str(),
            new.require_signed_claims,
            origins_json(&new.allowed_origins),
            now
        ],
    )?;
    let key_id = insert_key(&tx, ring, &app_id, "default", &secret, None, actor, now)?;
    audit(
        &tx,
        &app_id,
        actor,
        "workspace.create",
        json!({"name": new.name, "strict": new.strict.as_str(),
               "require_signed_claims": new.require_signed_claims,
               "allowed_origins": new.allowed_origins, "key_id": key_id}),
        now,
    )?;
    tx.commit()?;
    Ok(Some(NewKey {
        workspace: get_workspace(conn, ring, &app_id)?,
        key_id,
        secret,
        old_key_expires_at: None,
    }))
}

fn update_workspace(
    conn: &mut Connection,
    ring: &Keyring,
    app_id: &str,
    patch: &WorkspacePatch,
    actor: &str,
    now: i64,
) -> Result<Workspace, StoreError> {
    let tx = write_tx(conn)?;
    require_workspace(&tx, app_id)?;
    let mut changed = serde_json::Map::new();
    if let Some(name) = &patch.name {
        tx.execute(
            "UPDATE workspaces SET name = ?2 WHERE app_id = ?1",
            params![app_id, name],
        )?;
        changed.insert("name".into(), name.clone().into());
    }
    if let Some(strict) = patch.strict {
        tx.execute(
            "UPDATE workspaces SET strict = ?2 WHERE app_id = ?1",
            params![app_id, strict.as_str()],
        )?;
        changed.insert("strict".into(), strict.as_str().into());
    }
    if let Some(required) = patch.require_signed_claims {
        tx.execute(
            "UPDATE workspaces SET require_signed_claims = ?2 WHERE app_id = ?1",
            params![app_id, required],
        )?;
        changed.insert("require_signed_claims".into(), required.into());
    }
    if let Some(origins) = &patch.allowed_origins {
        tx.execute(
            "UPDATE workspaces SET allowed_origins = ?2 WHERE app_id = ?1",
            params![app_id, origins_json(origins)],
        )?;
        changed.insert("allowed_origins".into(), json!(origins));
    }
    if !changed.is_empty() {
        audit(
            &tx,
            app_id,
            actor,
            "workspace.update",
            Json::Object(changed),
            now,
        )?;
    }
    tx.commit()?;
    get_workspace(conn, ring, app_id)
}

fn create_key(
    conn: &mut Connection,
    ring: &Keyring,
    app_id: &str,
    label: &str,
    expires_at: Option<i64>,
    actor: &str,
    now: i64,
) -> Result<NewKey, StoreError> {
    let secret = generate_secret();
    let tx = write_tx(conn)?;
    require_workspace(&tx, app_id)?;
    purge_expired(&tx, app_id, now)?;
    check_new_key(
        label,
        expires_at,
        live_key_ids(&tx, app_id, now)?.len(),
        now,
    )?;
    let key_id = insert_key(&tx, ring, app_id, label, &secret, expires_at, actor, now)?;
    audit(
        &tx,
        app_id,
        actor,
        "key.create",
        json!({"key_id": key_id, "label": label, "expires_at": expires_at}),
        now,
    )?;
    tx.commit()?;
    Ok(NewKey {
        workspace: get_workspace(conn, ring, app_id)?,
        key_id,
        secret,
        old_key_expires_at: None,
    })
}

fn roll_key(
    conn: &mut Connection,
    ring: &Keyring,
    app_id: &str,
    key_id: Option<i64>,
    grace_secs: i64,
    actor: &str,
    now: i64,
) -> Result<NewKey, StoreError> {
    let secret = generate_secret();
    let tx = write_tx(conn)?;
    require_workspace(&tx, app_id)?;
    purge_expired(&tx, app_id, now)?;
    let live = live_key_ids(&tx, app_id, now)?;
    let old_id = key_to_roll(&live, key_id, grace_secs)?;
    let (label, current_expiry): (String, Option<i64>) = tx.query_row(
        "SELECT label, expires_at FROM keys WHERE id = ?1",
        [old_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let until = rolled_expiry(current_expiry, now, grace_secs);
    tx.execute(
        "UPDATE keys SET expires_at = ?2 WHERE id = ?1",
        params![old_id, until],
    )?;
    let new_id = insert_key(&tx, ring, app_id, &label, &secret, None, actor, now)?;
    purge_expired(&tx, app_id, now)?;
    audit(
        &tx,
        app_id,
        actor,
        "key.roll",
        json!({"key_id": old_id, "new_key_id": new_id, "label": label,
               "old_key_expires_at": until, "grace_seconds": grace_secs.max(0)}),
        now,
    )?;
    tx.commit()?;
    Ok(NewKey {
        workspace: get_workspace(conn, ring, app_id)?,
        key_id: new_id,
        secret,
        old_key_expires_at: Some(until),
    })
}

fn retire_key(
    conn: &mut Connection,
    ring: &Keyring,
    app_id: &str,
    key_id: i64,
    actor: &str,
    now: i64,
) -> Result<Workspace, StoreError> {
    let tx = write_tx(conn)?;
    require_workspace(&tx, app_id)?;
    purge_expired(&tx, app_id, now)?;
    let live = live_key_ids(&tx, app_id, now)?;
    check_retire(&live, key_id)?;
    tx.execute(
        "DELETE FROM keys WHERE app_id = ?1 AND id = ?2",
        params![app_id, key_id],
    )?;
    audit(
        &tx,
        app_id,
        actor,
        "key.retire",
        json!({"key_id": key_id}),
        now,
    )?;
    tx.commit()?;
    get_workspace(conn, ring, app_id)
}

fn retire_old_keys(
    conn: &mut Connection,
    ring: &Keyring,
    app_id: &str,
    actor: &str,
    now: i64,
) -> Result<Workspace, StoreError> {
    let tx = write_tx(conn)?;
    require_workspace(&tx, app_id)?;
    purge_expired(&tx, app_id, now)?;
    let live = live_key_ids(&tx, app_id, now)?;
    if let Some((newest, older)) = live.split_first()
        && !older.is_empty()
    {
        tx.execute(
            "DELETE FROM keys WHERE app_id = ?1 AND id <> ?2",
            params![app_id, newest],
        )?;
        audit(
            &tx,
            app_id,
            actor,
            "key.retire_old",
            json!({"kept_key_id": newest, "retired_key_ids": older}),
            now,
        )?;
    }
    tx.commit()?;
    get_workspace(conn, ring, app_id)
}

fn audit_log(conn: &Connection, app_id: &str, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, actor, action, detail FROM audit_log WHERE app_id = ?1
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![app_id, i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                detail: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or(Json::Null),
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// Stores `value` unless `key` has one, and returns the value that stands.
fn meta_set_if_absent(conn: &Connection, key: &str, value: &str) -> Result<String, StoreError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        [key, value],
    )?;
    Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?)
}

/// Re-seals every secret that is not sealed with the active master key (and seals any secret
/// an older version stored in the clear), one transaction for all of them.
fn rewrap_secrets(conn: &mut Connection, ring: &Keyring) -> Result<u64, StoreError> {
    let tx = write_tx(conn)?;
    let rows: Vec<(i64, String, String)> = {
        let mut stmt = tx.prepare("SELECT id, app_id, secret FROM keys")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut changed = 0;
    for (id, app_id, stored) in rows {
        let resealed = super::rewrap_secret(ring, &app_id, id, &stored)?;
        if let Some(sealed) = resealed {
            tx.execute(
                "UPDATE keys SET secret = ?2 WHERE id = ?1",
                params![id, sealed],
            )?;
            changed += 1;
        }
    }
    tx.commit()?;
    Ok(changed)
}

fn seal_counts(conn: &Connection) -> Result<SealCounts, StoreError> {
    let mut counts = SealCounts::default();
    let mut stmt = conn.prepare("SELECT secret FROM keys")?;
    for stored in stmt.query_map([], |r| r.get::<_, String>(0))? {
        let stored = stored?;
        let id = sealed_key_id(&stored).unwrap_or("(not sealed)");
        *counts.by_key.entry(id.to_string()).or_default() += 1;
    }
    Ok(counts)
}

/// The one-time upgrade of stored secrets ([`super::upgrade_secret`]), before anything reads
/// them: run while [`super::SECRETS_BOUND_META`] is absent, then recorded in the same
/// transaction. Afterwards a secret in the clear is refused, never adopted.
fn upgrade_secrets(conn: &mut Connection, ring: &Keyring) -> Result<(), StoreError> {
    // Done already (every start after the first): a plain read, no write lock.
    if meta_get(conn, super::SECRETS_BOUND_META)?.is_some() {
        return Ok(());
    }
    let tx = write_tx(conn)?;
    if meta_get(&tx, super::SECRETS_BOUND_META)?.is_some() {
        return Ok(());
    }
    let rows: Vec<(i64, String, String)> = {
        let mut stmt = tx.prepare("SELECT id, app_id, secret FROM keys")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?
    };
    let updates = super::upgrade_secrets(ring, &rows)?;
    let changed = updates.len();
    for (id, sealed) in updates {
        tx.execute(
            "UPDATE keys SET secret = ?2 WHERE id = ?1",
            params![id, sealed],
        )?;
    }
    meta_set(&tx, super::SECRETS_BOUND_META, "1")?;
    tx.commit()?;
    if changed > 0 {
        tracing::info!(
            secrets = changed,
            "stored secrets sealed and bound to their key rows (one-time upgrade)"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Users

/// The user columns in [`user_from_row`]'s order, as a macro so statements are `&'static str`
/// built at compile time (no `format!` on the identify path).
macro_rules! user_columns {
    () => {
        "user_id, verified, method, verified_at, signed_at, name, email, plan, mrr, signup_date, \
         custom, unverified_claims, first_seen, last_seen, key_id"
    };
}
const SELECT_USER: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE app_id = ?1 AND user_id = ?2"
);

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    let json_col = |i: usize| -> rusqlite::Result<Option<Json>> {
        let text: Option<String> = r.get(i)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    };
    Ok(UserRecord {
        user_id: r.get(0)?,
        verified: r.get(1)?,
        method: r.get(2)?,
        verified_at: r.get(3)?,
        signed_at: r.get(4)?,
        name: r.get(5)?,
        email: r.get(6)?,
        plan: r.get(7)?,
        mrr: r.get(8)?,
        signup_date: r.get(9)?,
        custom: json_col(10)?.unwrap_or_else(|| Json::Object(serde_json::Map::new())),
        unverified_claims: json_col(11)?,
        first_seen: r.get(12)?,
        last_seen: r.get(13)?,
        key_id: r.get(14)?,
    })
}

fn get_user(
    conn: &Connection,
    app_id: &str,
    user_id: &str,
) -> Result<Option<UserRecord>, StoreError> {
    Ok(conn
        .prepare_cached(SELECT_USER)?
        .query_row([app_id, user_id], user_from_row)
        .optional()?)
}

/// `LIKE` pattern for "contains", with the wildcards in the search text escaped.
fn contains_pattern(search: &str) -> String {
    let mut p = String::with_capacity(search.len() + 2);
    p.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn list_users(
    conn: &Connection,
    app_id: &str,
    q: &UserQuery,
) -> Result<Vec<UserRecord>, StoreError> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE app_id = ?1 AND (?2 IS NULL OR verified = ?2)
         AND user_id > ?3 AND (?4 IS NULL OR user_id LIKE ?4 ESCAPE '\\')
         ORDER BY user_id LIMIT ?5"
    );
    let mut stmt = conn.prepare_cached(SQL)?;
    let rows = stmt.query_map(
        params![
            app_id,
            q.verified,
            q.after.as_deref().unwrap_or(""),
            q.search.as_deref().map(contains_pattern),
            i64::try_from(q.limit).unwrap_or(i64::MAX)
        ],
        user_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn delete_user(
    conn: &mut Connection,
    app_id: &str,
    user_id: &str,
    actor: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let tx = write_tx(conn)?;
    let n = tx.execute(
        "DELETE FROM users WHERE app_id = ?1 AND user_id = ?2",
        params![app_id, user_id],
    )?;
    if n > 0 {
        audit(
            &tx,
            app_id,
            actor,
            "user.delete",
            json!({"user_id": user_id}),
            now,
        )?;
    }
    tx.commit()?;
    Ok(n > 0)
}

/// One identify write as one statement: the stored-data rules of [`crate::users::merge`] stated
/// in SQL ([`super::merge_on_conflict`], shared with the PostgreSQL backend), so the write
/// neither reads the stored user back nor rebuilds it in Rust. Three forms (see
/// [`MergeRows`]): SQLite rewrites the `users_verified` entry of every row whose update names
/// `verified`, a second random B-tree page dirtied per call, so only a write that can change it
/// (a verified call reaching an unverified or new user) uses the form that sets it.
struct Upserts {
    any: String,
    keep_verified: String,
    verified_only: String,
}

static UPSERT_USER: std::sync::LazyLock<Upserts> = std::sync::LazyLock::new(|| Upserts {
    any: upsert_user(MergeRows::Any),
    keep_verified: upsert_user(MergeRows::KeepVerified),
    verified_only: upsert_user(MergeRows::VerifiedOnly),
});

fn upsert_user(rows: MergeRows) -> String {
    format!(
        "
INSERT INTO users AS u (app_id, user_id, verified, method, key_id, verified_at, signed_at,
    name, email, plan, mrr, signup_date, custom, unverified_claims, first_seen, last_seen)
VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?3 THEN ?6 END, ?7,
    CASE WHEN ?3 THEN ?8 ELSE ?13 END,
    CASE WHEN ?3 THEN ?9 ELSE ?14 END,
    CASE WHEN ?3 THEN ?10 ELSE ?15 END,
    CASE WHEN ?3 THEN ?11 ELSE ?16 END,
    CASE WHEN ?3 THEN ?12 ELSE ?17 END,
    COALESCE(?19, '{{}}'), CASE WHEN ?3 THEN ?18 END, ?6, ?6)
{}",
        super::merge_on_conflict("?18", rows)
    )
}

/// The [`UPSERT_USER`] statements of one transaction, prepared once per batch (looking a 2 KB
/// statement up in the statement cache hashes and compares its text).
struct UpsertStatements<'c> {
    any: rusqlite::CachedStatement<'c>,
    keep_verified: rusqlite::CachedStatement<'c>,
    verified_only: rusqlite::CachedStatement<'c>,
}

impl<'c> UpsertStatements<'c> {
    fn prepare(tx: &'c Transaction<'_>) -> rusqlite::Result<Self> {
        Ok(UpsertStatements {
            any: tx.prepare_cached(&UPSERT_USER.any)?,
            keep_verified: tx.prepare_cached(&UPSERT_USER.keep_verified)?,
            verified_only: tx.prepare_cached(&UPSERT_USER.verified_only)?,
        })
    }

    /// Stores one write: an unverified call never changes `verified`; a verified one first as
    /// an update of a verified user, and only if that changed no row (the user is stored
    /// unverified) with the form that promotes it.
    fn apply(&mut self, w: &IdentifyWrite) -> rusqlite::Result<()> {
        if w.verification.is_none() {
            return upsert(&mut self.keep_verified, w).map(drop);
        }
        if upsert(&mut self.verified_only, w)? == 0 {
            upsert(&mut self.any, w)?;
        }
        Ok(())
    }
}

/// Runs one form of [`UPSERT_USER`] for one write; returns the rows it inserted or updated.
fn upsert(stmt: &mut rusqlite::Statement<'_>, w: &IdentifyWrite) -> rusqlite::Result<usize> {
    let v = w.verification;
    let (t, c) = (&w.trusted, &w.claimed);
    stmt.execute(params![
        w.app_id,
        w.user_id,
        v.is_some(),
        v.map(|v| v.method),
        v.map(|v| v.key_id),
        w.now,
        v.map(|v| v.signed_at),
        t.name,
        t.email,
        t.plan,
        t.mrr,
        t.signup_date,
        c.name,
        c.email,
        c.plan,
        c.mrr,
        c.signup_date,
        w.claims_json(),
        w.custom_json(),
    ])
}

/// Records when each key last verified a call: once per key per batch, not per call.
fn touch_keys(tx: &Transaction<'_>, batch: &[Pending]) -> rusqlite::Result<()> {
    let mut used: Vec<(i64, i64)> = batch
        .iter()
        .filter_map(|(w, _)| w.verification.map(|v| (v.key_id, w.now)))
        .collect();
    if used.is_empty() {
        return Ok(());
    }
    used.sort_unstable();
    used.dedup_by(|a, b| {
        // Keep the latest time per key (the vector is sorted by key, then time).
        if a.0 == b.0 {
            b.1 = b.1.max(a.1);
            true
        } else {
            false
        }
    });
    let mut stmt = tx.prepare_cached(
        "UPDATE keys SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
    )?;
    for (id, at) in used {
        stmt.execute(params![id, at])?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Console: accounts, sessions, call counts, recent rejections

/// Per-minute counts older than this are deleted when new ones are flushed (the console shows
/// at most 7 days).
const COUNTS_KEEP_MINUTES: i64 = 8 * 24 * 60;

fn create_account(
    conn: &mut Connection,
    email: &str,
    password_phc: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let tx = write_tx(conn)?;
    let n = tx.execute(
        "INSERT INTO console_accounts (email, password_phc, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (email) DO NOTHING",
        params![email.to_lowercase(), password_phc, now],
    )?;
    let id = (n == 1).then(|| tx.last_insert_rowid());
    tx.commit()?;
    Ok(id)
}

fn add_member(
    conn: &mut Connection,
    email: &str,
    app_id: &str,
    role: Role,
    actor: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let tx = write_tx(conn)?;
    require_workspace(&tx, app_id)?;
    let email = email.to_lowercase();
    let Some(account_id) = account_by_email(&tx, &email)? else {
        return Ok(false);
    };
    tx.execute(
        "INSERT INTO console_members (account_id, app_id, role) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, app_id) DO UPDATE SET role = excluded.role",
        params![account_id, app_id, role.as_str()],
    )?;
    audit(
        &tx,
        app_id,
        actor,
        "member.set",
        json!({"email": email, "role": role.as_str()}),
        now,
    )?;
    tx.commit()?;
    Ok(true)
}

/// The id of the account with this (lower-cased) email.
fn account_by_email(conn: &Connection, email: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT id FROM console_accounts WHERE email = ?1",
        [email],
        |r| r.get(0),
    )
    .optional()
}

fn change_account(
    conn: &mut Connection,
    email: &str,
    change: &AccountChange,
    actor: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let tx = write_tx(conn)?;
    let email = email.to_lowercase();
    let Some(id) = account_by_email(&tx, &email)? else {
        return Ok(false);
    };
    match change {
        AccountChange::RemoveFrom(app_id) => {
            let n = tx.execute(
                "DELETE FROM console_members WHERE account_id = ?1 AND app_id = ?2",
                params![id, app_id],
            )?;
            if n == 0 {
                return Ok(false);
            }
            audit(
                &tx,
                app_id,
                actor,
                "member.remove",
                json!({"email": email}),
                now,
            )?;
        }
        AccountChange::Delete => {
            for m in memberships(&tx, id)? {
                let detail = json!({"email": email, "account_deleted": true});
                audit(&tx, &m.app_id, actor, "member.remove", detail, now)?;
            }
            tx.execute("DELETE FROM console_sessions WHERE account_id = ?1", [id])?;
            tx.execute("DELETE FROM console_members WHERE account_id = ?1", [id])?;
            tx.execute("DELETE FROM console_accounts WHERE id = ?1", [id])?;
        }
        AccountChange::SetPassword(phc) => {
            tx.execute(
                "UPDATE console_accounts SET password_phc = ?1 WHERE id = ?2",
                params![phc, id],
            )?;
            tx.execute("DELETE FROM console_sessions WHERE account_id = ?1", [id])?;
        }
    }
    tx.commit()?;
    Ok(true)
}

fn memberships(conn: &Connection, account_id: i64) -> rusqlite::Result<Vec<Membership>> {
    let mut stmt = conn.prepare_cached(
        "SELECT app_id, role FROM console_members WHERE account_id = ?1 ORDER BY app_id",
    )?;
    let rows = stmt.query_map([account_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (app_id, role) = row?;
        // An unreadable role fails closed: look only.
        let role = Role::parse(&role).unwrap_or(Role::Viewer);
        out.push(Membership { app_id, role });
    }
    Ok(out)
}

fn account(conn: &Connection, id: i64) -> rusqlite::Result<Option<Account>> {
    let row = conn
        .query_row(
            "SELECT email, created_at FROM console_accounts WHERE id = ?1",
            [id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )
        .optional()?;
    let Some((email, created_at)) = row else {
        return Ok(None);
    };
    Ok(Some(Account {
        id,
        email,
        created_at,
        memberships: memberships(conn, id)?,
    }))
}

fn list_accounts(conn: &Connection) -> Result<Vec<Account>, StoreError> {
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM console_accounts ORDER BY email")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(a) = account(conn, id)? {
            out.push(a);
        }
    }
    Ok(out)
}

fn account_login(conn: &Connection, email: &str) -> Result<Option<AccountLogin>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, password_phc FROM console_accounts WHERE email = ?1",
            [email.to_lowercase()],
            |r| {
                Ok(AccountLogin {
                    id: r.get(0)?,
                    password_phc: r.get(1)?,
                })
            },
        )
        .optional()?)
}

fn resume_session(
    conn: &mut Connection,
    token: [u8; 32],
    rules: SessionRules,
    now: i64,
) -> Result<Option<Account>, StoreError> {
    let tx = write_tx(conn)?;
    let row = tx
        .query_row(
            "SELECT account_id, created_at, last_seen FROM console_sessions WHERE token_sha256 = ?1",
            [&token[..]],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
        )
        .optional()?;
    let Some((account_id, created_at, last_seen)) = row else {
        return Ok(None);
    };
    let idle_over = now.saturating_sub(last_seen) >= rules.idle_secs;
    let absolute_over = now.saturating_sub(created_at) >= rules.absolute_secs;
    if idle_over || absolute_over {
        tx.execute(
            "DELETE FROM console_sessions WHERE token_sha256 = ?1",
            [&token[..]],
        )?;
        tx.commit()?;
        return Ok(None);
    }
    if now > last_seen {
        tx.execute(
            "UPDATE console_sessions SET last_seen = ?2 WHERE token_sha256 = ?1",
            params![&token[..], now],
        )?;
    }
    let account = account(&tx, account_id)?;
    tx.commit()?;
    Ok(account)
}

fn add_call_stats(
    conn: &mut Connection,
    counts: &[CountsDelta],
    rejections: &[RejectionEntry],
) -> Result<(), StoreError> {
    let tx = write_tx(conn)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO call_counts (app_id, minute, verified_seed, verified_claims, unverified,
                 would_reject, rejected)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (app_id, minute) DO UPDATE SET
                 verified_seed = verified_seed + excluded.verified_seed,
                 verified_claims = verified_claims + excluded.verified_claims,
                 unverified = unverified + excluded.unverified,
                 would_reject = would_reject + excluded.would_reject,
                 rejected = rejected + excluded.rejected",
        )?;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for d in counts {
            let c = &d.counts;
            stmt.execute(params![
                d.app_id,
                d.minute,
                n(c.verified_seed),
                n(c.verified_claims),
                n(c.unverified),
                n(c.would_reject),
                n(c.rejected)
            ])?;
        }
        if let Some(newest) = counts.iter().map(|d| d.minute).max() {
            tx.execute(
                "DELETE FROM call_counts WHERE minute < ?1",
                [newest - COUNTS_KEEP_MINUTES],
            )?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO recent_rejections (app_id, at, code, enforced, key_id, origin, user_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for r in rejections {
            stmt.execute(params![
                r.app_id, r.at, r.code, r.enforced, r.key_id, r.origin, r.user_id
            ])?;
        }
        let mut apps: Vec<&str> = rejections.iter().map(|r| r.app_id.as_str()).collect();
        apps.sort_unstable();
        apps.dedup();
        let mut trim = tx.prepare_cached(
            "DELETE FROM recent_rejections WHERE app_id = ?1 AND id <= (
                 SELECT id FROM recent_rejections WHERE app_id = ?1
                 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )?;
        for app in apps {
            trim.execute(params![app, MAX_RECENT_REJECTIONS as i64])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn call_counts(
    conn: &Connection,
    app_id: &str,
    since_minute: i64,
) -> Result<Vec<(i64, CallCounts)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT minute, verified_seed, verified_claims, unverified, would_reject, rejected
         FROM call_counts WHERE app_id = ?1 AND minute >= ?2 ORDER BY minute",
    )?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    let rows = stmt.query_map(params![app_id, since_minute], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            CallCounts {
                verified_seed: n(r.get(1)?),
                verified_claims: n(r.get(2)?),
                unverified: n(r.get(3)?),
                would_reject: n(r.get(4)?),
                rejected: n(r.get(5)?),
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn recent_rejections(conn: &Connection, app_id: &str) -> Result<Vec<RejectionEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, code, enforced, key_id, origin, user_id FROM recent_rejections
         WHERE app_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![app_id, MAX_RECENT_REJECTIONS as i64], |r| {
        Ok(RejectionEntry {
            app_id: app_id.to_string(),
            at: r.get(0)?,
            code: r.get(1)?,
            enforced: r.get(2)?,
            key_id: r.get(3)?,
            origin: r.get(4)?,
            user_id: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

// ---------------------------------------------------------------------------------------------
// The store thread

type Job = Box<dyn FnOnce(&mut Connection) + Send>;
type Pending = (IdentifyWrite, oneshot::Sender<Result<(), StoreError>>);

// Identify is the hot variant; boxing it would add an allocation to every call.
#[allow(clippy::large_enum_variant)]
enum Command {
    Identify(IdentifyWrite, oneshot::Sender<Result<(), StoreError>>),
    Call(Job),
    Poll,
}

/// A handle to the store thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    tx: mpsc::Sender<Command>,
    hooks: Hooks,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Identify(..) => "Identify",
            Command::Call(_) => "Call",
            Command::Poll => "Poll",
        })
    }
}

impl SqliteStore {
    pub fn open_dir(data_dir: &Path, hooks: Hooks) -> Result<SqliteStore, StoreError> {
        Self::spawn(open_file(data_dir)?, hooks)
    }

    pub fn open_memory(hooks: Hooks) -> Result<SqliteStore, StoreError> {
        Self::spawn(open_memory_conn()?, hooks)
    }

    /// Starts the store thread on `conn`. It loads the workspaces into the registry now and
    /// again whenever another process (the CLI) commits to the database. Must be called inside
    /// a tokio runtime (it starts the poll ticker). The thread ends when every handle is dropped.
    pub fn spawn(mut conn: Connection, hooks: Hooks) -> Result<SqliteStore, StoreError> {
        upgrade_secrets(&mut conn, &hooks.keyring.get())?;
        // The version is read before the load, here rather than when the thread gets going: a
        // change committed by another process in between is then seen by the first poll. Read
        // in the thread, a change committed before the thread started counted as already
        // loaded, and waited for the next change (found by a test under a loaded machine).
        let seen_version = data_version(&conn)?;
        hooks
            .registry
            .replace(load_workspaces(&conn, &hooks.keyring.get())?);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let thread_hooks = hooks.clone();
        std::thread::Builder::new()
            .name("dropfix-store".into())
            .spawn(move || store_thread(conn, rx, thread_hooks, seen_version))
            .map_err(|e| StoreError::Setup(format!("cannot start the store thread: {e}")))?;
        let ticker = tx.downgrade();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(POLL_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(tx) = ticker.upgrade() else { break };
                if tx.send(Command::Poll).await.is_err() {
                    break;
                }
            }
        });
        Ok(SqliteStore { tx, hooks })
    }

    /// Hands `write` to the store thread; see [`super::Queued`].
    pub fn enqueue(&self, write: IdentifyWrite) -> Queued {
        let (done, wait) = oneshot::channel();
        match self.tx.try_send(Command::Identify(write, done)) {
            Ok(()) => Queued::Ready(wait),
            Err(TrySendError::Full(cmd)) => {
                let tx = self.tx.clone();
                Queued::Waiting(Box::pin(async move {
                    tx.send(cmd).await.map_err(|_| StoreError::Closed)?;
                    wait.await.map_err(|_| StoreError::Closed)?
                }))
            }
            Err(TrySendError::Closed(_)) => Queued::Failed(StoreError::Closed),
        }
    }

    /// Runs `f` on the store thread and returns its result.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, wait) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = done.send(f(conn));
        });
        self.tx
            .send(Command::Call(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        wait.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a change and then reloads the registry, so this instance answers with the change
    /// at once (other processes see it through `data_version`).
    async fn change<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // The reload runs on the store thread right after the change, so a poll can never
        // install newer workspaces between the two that this older list would then replace.
        let hooks = self.hooks.clone();
        self.call(move |c| {
            let out = f(c)?;
            hooks
                .registry
                .replace(load_workspaces(c, &hooks.keyring.get())?);
            Ok(out)
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(|c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())
                .map_err(StoreError::from)
        })
        .await
    }

    pub async fn reload(&self) -> Result<(), StoreError> {
        let hooks = self.hooks.clone();
        self.call(move |c| match load_workspaces(c, &hooks.keyring.get()) {
            Ok(ws) => {
                hooks.registry.replace(ws);
                Ok(())
            }
            Err(e) => {
                // As the poll does: workspaces that cannot be loaded stop decisions.
                super::reload_failed(&hooks.registry, &e);
                Err(e)
            }
        })
        .await
    }

    pub async fn workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        let ring = self.hooks.keyring.get();
        self.call(move |c| load_workspaces(c, &ring)).await
    }

    pub async fn key_last_used(&self, app_id: &str) -> Result<HashMap<i64, i64>, StoreError> {
        let app = app_id.to_string();
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, last_used_at FROM keys WHERE app_id = ?1 AND last_used_at IS NOT NULL",
            )?;
            let rows = stmt.query_map([&app], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.call(move |c| meta_get(c, &key)).await
    }

    pub async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.call(move |c| meta_set(c, &key, &value)).await
    }

    pub async fn meta_set_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.call(move |c| meta_set_if_absent(c, &key, &value))
            .await
    }

    pub async fn create_workspace(
        &self,
        new: &NewWorkspace,
        actor: &str,
        now: i64,
    ) -> Result<NewKey, StoreError> {
        let (new, actor) = (new.clone(), actor.to_string());
        let ring = self.hooks.keyring.get();
        let created = self.change(move |c| create_workspace(c, &ring, &new, &actor, now, false));
        // Without `only_if_none` a workspace is always created.
        created
            .await?
            .ok_or_else(|| StoreError::Setup("no workspace was created".into()))
    }

    pub async fn create_first_workspace(
        &self,
        new: &NewWorkspace,
        actor: &str,
        now: i64,
    ) -> Result<Option<NewKey>, StoreError> {
        let (new, actor) = (new.clone(), actor.to_string());
        let ring = self.hooks.keyring.get();
        self.change(move |c| create_workspace(c, &ring, &new, &actor, now, true))
            .await
    }

    pub async fn update_workspace(
        &self,
        app_id: &str,
        patch: &WorkspacePatch,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        let (app, patch, actor) = (app_id.to_string(), patch.clone(), actor.to_string());
        let ring = self.hooks.keyring.get();
        self.change(move |c| update_workspace(c, &ring, &app, &patch, &actor, now))
            .await
    }

    pub async fn create_key(
        &self,
        app_id: &str,
        label: &str,
        expires_at: Option<i64>,
        actor: &str,
        now: i64,
    ) -> Result<NewKey, StoreError> {
        let (app, label, actor) = (app_id.to_string(), label.to_string(), actor.to_string());
        let ring = self.hooks.keyring.get();
        self.change(move |c| create_key(c, &ring, &app, &label, expires_at, &actor, now))
            .await
    }

    pub async fn roll_key(
        &self,
        app_id: &str,
        key_id: Option<i64>,
        grace_secs: i64,
        actor: &str,
        now: i64,
    ) -> Result<NewKey, StoreError> {
        let (app, actor) = (app_id.to_string(), actor.to_string());
        let ring = self.hooks.keyring.get();
        self.change(move |c| roll_key(c, &ring, &app, key_id, grace_secs, &actor, now))
            .await
    }

    pub async fn retire_key(
        &self,
        app_id: &str,
        key_id: i64,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        let (app, actor) = (app_id.to_string(), actor.to_string());
        let ring = self.hooks.keyring.get();
        self.change(move |c| retire_key(c, &ring, &app, key_id, &actor, now))
            .await
    }

    pub async fn retire_old_keys(
        &self,
        app_id: &str,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        let (app, actor) = (app_id.to_string(), actor.to_string());
        let ring = self.hooks.keyring.get();
        self.change(move |c| retire_old_keys(c, &ring, &app, &actor, now))
            .await
    }

    pub async fn get_user(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let (app, user) = (app_id.to_string(), user_id.to_string());
        self.call(move |c| get_user(c, &app, &user)).await
    }

    pub async fn list_users(
        &self,
        app_id: &str,
        query: &UserQuery,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let (app, query) = (app_id.to_string(), query.clone());
        self.call(move |c| list_users(c, &app, &query)).await
    }

    pub async fn delete_user(
        &self,
        app_id: &str,
        user_id: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (app, user, actor) = (app_id.to_string(), user_id.to_string(), actor.to_string());
        self.call(move |c| delete_user(c, &app, &user, &actor, now))
            .await
    }

    pub async fn rewrap_secrets(&self) -> Result<u64, StoreError> {
        let ring = self.hooks.keyring.get();
        let n = self.call(move |c| rewrap_secrets(c, &ring)).await?;
        self.reload().await?;
        Ok(n)
    }

    pub async fn seal_counts(&self) -> Result<SealCounts, StoreError> {
        self.call(|c| seal_counts(c)).await
    }

    pub async fn audit_log(
        &self,
        app_id: &str,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let app = app_id.to_string();
        self.call(move |c| audit_log(c, &app, limit)).await
    }
    pub async fn create_account(
        &self,
        email: &str,
        password_phc: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (email, phc) = (email.to_string(), password_phc.to_string());
        self.call(move |c| create_account(c, &email, &phc, now))
            .await
    }

    pub async fn add_member(
        &self,
        email: &str,
        app_id: &str,
        role: Role,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (email, app, actor) = (email.to_string(), app_id.to_string(), actor.to_string());
        self.call(move |c| add_member(c, &email, &app, role, &actor, now))
            .await
    }

    pub async fn change_account(
        &self,
        email: &str,
        change: &AccountChange,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (email, change, actor) = (email.to_string(), change.clone(), actor.to_string());
        self.call(move |c| change_account(c, &email, &change, &actor, now))
            .await
    }

    pub async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.call(|c| list_accounts(c)).await
    }

    pub async fn account_login(&self, email: &str) -> Result<Option<AccountLogin>, StoreError> {
        let email = email.to_string();
        self.call(move |c| account_login(c, &email)).await
    }

    pub async fn create_session(
        &self,
        token_sha256: [u8; 32],
        account_id: i64,
        rules: SessionRules,
        now: i64,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = write_tx(c)?;
            tx.execute(
                "DELETE FROM console_sessions WHERE last_seen <= ?1 OR created_at <= ?2",
                params![
                    now.saturating_sub(rules.idle_secs),
                    now.saturating_sub(rules.absolute_secs)
                ],
            )?;
            tx.execute(
                "INSERT INTO console_sessions (token_sha256, account_id, created_at, last_seen)
                 VALUES (?1, ?2, ?3, ?3)",
                params![&token_sha256[..], account_id, now],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn resume_session(
        &self,
        token_sha256: [u8; 32],
        rules: SessionRules,
        now: i64,
    ) -> Result<Option<Account>, StoreError> {
        self.call(move |c| resume_session(c, token_sha256, rules, now))
            .await
    }

    pub async fn delete_session(&self, token_sha256: [u8; 32]) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "DELETE FROM console_sessions WHERE token_sha256 = ?1",
                [&token_sha256[..]],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn add_call_stats(
        &self,
        counts: Vec<CountsDelta>,
        rejections: Vec<RejectionEntry>,
    ) -> Result<(), StoreError> {
        self.call(move |c| add_call_stats(c, &counts, &rejections))
            .await
    }

    pub async fn call_counts(
        &self,
        app_id: &str,
        since_minute: i64,
    ) -> Result<Vec<(i64, CallCounts)>, StoreError> {
        let app = app_id.to_string();
        self.call(move |c| call_counts(c, &app, since_minute)).await
    }

    pub async fn recent_rejections(&self, app_id: &str) -> Result<Vec<RejectionEntry>, StoreError> {
        let app = app_id.to_string();
        self.call(move |c| recent_rejections(c, &app)).await
    }

    pub async fn append_audit(
        &self,
        app_id: &str,
        actor: &str,
        action: &str,
        detail: Json,
        now: i64,
    ) -> Result<(), StoreError> {
        let (app, actor, action) = (app_id.to_string(), actor.to_string(), action.to_string());
        self.call(move |c| {
            let tx = write_tx(c)?;
            audit(&tx, &app, &actor, &action, detail, now)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

fn store_thread(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Command>,
    hooks: Hooks,
    mut seen_version: i64,
) {
    let mut batch: Vec<Pending> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut poll = false;
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Identify(w, done) => batch.push((w, done)),
                Command::Call(job) => jobs.push(job),
                Command::Poll => poll = true,
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            hooks.metrics.observe_batch(batch.len());
            commit_batch(&mut conn, &mut batch);
        }
        for job in jobs.drain(..) {
            job(&mut conn);
        }
        if std::mem::take(&mut poll) {
            match data_version(&conn) {
                Ok(v) if v != seen_version => {
                    // The version is recorded only once loaded, so a failed load is retried
                    // at the next poll.
                    match load_workspaces(&conn, &hooks.keyring.get()) {
                        Ok(ws) => {
                            tracing::info!(workspaces = ws.len(), "workspaces reloaded");
                            hooks.registry.replace(ws);
                            seen_version = v;
                        }
                        Err(e) => super::reload_failed(&hooks.registry, &e),
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "reading data_version failed"),
            }
        }
    }
    tracing::debug!("store thread stopped");
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "data_version", |r| r.get(0))
}

/// Commits the batch in one transaction and answers every caller. If the transaction fails as
/// a whole, each write is retried in its own transaction so one bad record cannot fail the
/// others; whoever still fails gets the error (and so a 503, never a false 2xx).
fn commit_batch(conn: &mut Connection, batch: &mut Vec<Pending>) {
    let together = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        {
            let mut upserts = UpsertStatements::prepare(&tx)?;
            for (w, _) in batch.iter() {
                upserts.apply(w)?;
            }
        }
        touch_keys(&tx, batch)?;
        tx.commit()
    })();
    match together {
        Ok(()) => {
            for (_, done) in batch.drain(..) {
                let _ = done.send(Ok(()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, size = batch.len(), "batch commit failed; retrying one by one");
            for (w, done) in batch.drain(..) {
                let one = (|| -> rusqlite::Result<()> {
                    let tx = conn.transaction()?;
                    UpsertStatements::prepare(&tx)?.apply(&w)?;
                    tx.commit()
                })();
                if let Err(e) = &one {
                    tracing::error!(error = %e, "storing an identify call failed");
                }
                let _ = done.send(one.map_err(StoreError::from));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_idempotent() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        drop(open_file(&dir).unwrap());
        let conn = open_file(&dir).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    /// The forms of the identify upsert that cannot change `verified` leave the verified index
    /// alone (no index entry deleted and reinserted), per SQLite's own query plan.
    #[test]
    fn only_the_promoting_upsert_rewrites_the_verified_index() {
        let conn = open_memory_conn().unwrap();
        let index_deletes = |sql: &str| {
            let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            // Unbound parameters are NULL: the plan does not depend on them.
            let mut rows = stmt.raw_query();
            let mut n = 0;
            while let Some(row) = rows.next().unwrap() {
                n += usize::from(row.get::<_, String>(1).unwrap() == "IdxDelete");
            }
            n
        };
        assert!(index_deletes(&UPSERT_USER.any) > 0);
        assert_eq!(index_deletes(&UPSERT_USER.keep_verified), 0);
        assert_eq!(index_deletes(&UPSERT_USER.verified_only), 0);
    }

    #[test]
    fn like_wildcards_in_a_search_are_literal() {
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[cfg(unix)]
    #[test]
    fn files_are_owner_only_and_an_open_data_dir_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let conn = open_file(&dir).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for f in [DB_FILE, "dropfix.sqlite3-wal", "dropfix.sqlite3-shm"] {
            let p = dir.join(f);
            if p.exists() {
                assert_eq!(mode(&p), 0o600, "{f}");
            }
        }
        assert!(dir.join("dropfix.sqlite3-wal").exists());
        drop(conn);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = open_file(&dir).unwrap_err().to_string();
        assert!(err.contains("chmod 700"), "{err}");
    }
}
