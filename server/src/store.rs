//! The embedded durable store: SQLite (WAL) in the data directory, owned by one thread.
//!
//! Every write goes through that thread. It drains whatever identify writes are queued (up to
//! [`MAX_BATCH`]) and commits them in one transaction, so a burst of N calls costs one fsync,
//! not N, and each caller is answered only after the commit that holds its record. That is the
//! contract of the HTTP layer: a 2xx is sent only once the record is durable.
//!
//! Everything else (admin reads and edits, workspace reloads) runs on the same thread as a
//! closure over the connection ([`Store::call`]), between batches. SQLite allows one writer at
//! a time anyway, and admin traffic is rare next to identify calls.
//!
//! The SQL that the CLI also needs (workspaces, migrations) is plain functions over a
//! `&Connection`, so the CLI runs it directly on the same file while a server may be running;
//! the server notices such edits through `PRAGMA data_version` (see [`Store::spawn`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::workspace::{Registry, load_workspaces};

/// Most identify writes committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// Queue depth before callers wait (backpressure rather than unbounded memory).
const QUEUE_DEPTH: usize = 8192;
/// How often the server looks for edits made by another process (the CLI).
const POLL_INTERVAL: Duration = Duration::from_millis(500);

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
];

/// Why the store could not do something. Details go to the log, never to HTTP clients.
#[derive(Debug)]
pub enum StoreError {
    Sqlite(rusqlite::Error),
    /// The store thread has stopped (only during shutdown or after a fatal error).
    Closed,
    /// The database's schema version is not one this build knows (written by a newer
    /// dropfix-server, or not a DropFix database): opening it could corrupt it.
    UnknownSchema {
        found: i64,
        known: usize,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Sqlite(e) => write!(f, "sqlite: {e}"),
            StoreError::Closed => f.write_str("store thread stopped"),
            StoreError::UnknownSchema { found, known } => write!(
                f,
                "the database has schema version {found}, this dropfix-server knows 0..={known} \
                 (written by a newer version?); refusing to open it"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

/// Opens (creating if needed) the database file in `data_dir` and brings its schema up to date.
pub fn open(data_dir: &Path) -> Result<Connection, StoreError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
    restrict_permissions(data_dir);
    let conn = Connection::open(data_dir.join("dropfix.sqlite3"))?;
    // WAL: readers (the CLI) never block the writer. synchronous=FULL: a commit is on disk (not
    // only in the OS cache) before it returns, so an acknowledged record survives power loss
    // too; group commit is what keeps that affordable.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    migrate(&conn)?;
    Ok(conn)
}

/// An in-memory database with the same schema (`serve --ephemeral`: benchmarks, throwaway demos).
pub fn open_in_memory() -> Result<Connection, StoreError> {
    let conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&conn)?;
    Ok(conn)
}

/// The data directory holds every workspace secret: only its owner may read it.
fn restrict_permissions(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len();
    let version = usize::try_from(found)
        .ok()
        .filter(|&v| v <= known)
        .ok_or(StoreError::UnknownSchema { found, known })?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

pub fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// What an accepted (200 or 202) identify call writes.
#[derive(Debug, Clone)]
pub struct IdentifyWrite {
    pub app_id: String,
    pub user_id: String,
    /// Server clock, Unix seconds.
    pub now: i64,
    /// Set when the call verified.
    pub verification: Option<Verification>,
    /// Values the verification vouches for (empty for unverified calls).
    pub trusted: Claimed,
    /// What the browser sent.
    pub claimed: Claimed,
    /// Custom traits (always unverified), as a JSON object.
    pub custom: Map<String, Json>,
}

#[derive(Debug, Clone, Copy)]
pub struct Verification {
    pub method: &'static str,
    pub key_id: i64,
    pub signed_at: i64,
}

/// The four protected traits, plus signup date.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Claimed {
    pub name: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
    pub mrr: Option<f64>,
    pub signup_date: Option<String>,
}

impl Claimed {
    fn is_empty(&self) -> bool {
        *self == Claimed::default()
    }

    /// `self` with `newer`'s present values laid over it.
    fn overlay(mut self, newer: &Claimed) -> Claimed {
        macro_rules! take {
            ($($f:ident),*) => {$( if newer.$f.is_some() { self.$f = newer.$f.clone(); } )*};
        }
        take!(name, email, plan, mrr, signup_date);
        self
    }

    /// The values of `self` that `trusted` does not cover (what stays an unverified claim).
    fn not_covered_by(&self, trusted: &Claimed) -> Claimed {
        macro_rules! keep {
            ($($f:ident),*) => { Claimed { $( $f: if trusted.$f.is_none() { self.$f.clone() } else { None }, )* } };
        }
        keep!(name, email, plan, mrr, signup_date)
    }
}

/// A stored user, as the admin API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRecord {
    pub user_id: String,
    pub verified: bool,
    pub method: Option<String>,
    pub verified_at: Option<i64>,
    pub signed_at: Option<i64>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
    pub mrr: Option<f64>,
    pub signup_date: Option<String>,
    pub custom: Json,
    pub unverified_claims: Option<Json>,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Which key verified it (to tell when a rotated-out key is still in use).
    pub key_id: Option<i64>,
}

const USER_COLUMNS: &str = "user_id, verified, method, verified_at, signed_at, name, email, plan, \
     mrr, signup_date, custom, unverified_claims, first_seen, last_seen, key_id";

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
        custom: json_col(10)?.unwrap_or_else(|| Json::Object(Map::new())),
        unverified_claims: json_col(11)?,
        first_seen: r.get(12)?,
        last_seen: r.get(13)?,
        key_id: r.get(14)?,
    })
}

pub fn get_user(
    conn: &Connection,
    app_id: &str,
    user_id: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE app_id = ?1 AND user_id = ?2");
    Ok(conn
        .query_row(&sql, [app_id, user_id], user_from_row)
        .optional()?)
}

/// Users of a workspace in user-id order, after the `after` cursor.
pub fn list_users(
    conn: &Connection,
    app_id: &str,
    verified_only: bool,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<UserRecord>, StoreError> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE app_id = ?1 AND (?2 = 0 OR verified = 1) \
         AND user_id > ?3 ORDER BY user_id LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            app_id,
            verified_only,
            after.unwrap_or(""),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        user_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Applies one accepted identify call, under the stored-data rules of PROTOCOL.md:
/// - a verified call sets the trusted values (and how and when it was verified);
/// - an unverified call never overwrites the trusted values of a verified user nor makes it
///   unverified: what it claimed is kept aside in `unverified_claims`;
/// - an unverified call for a never-verified user records what it claims.
fn apply_identify(tx: &Transaction<'_>, w: &IdentifyWrite) -> rusqlite::Result<()> {
    let existing = {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE app_id = ?1 AND user_id = ?2");
        tx.prepare_cached(&sql)?
            .query_row([&w.app_id, &w.user_id], user_from_row)
            .optional()?
    };
    let stored = existing.as_ref().map(|u| Claimed {
        name: u.name.clone(),
        email: u.email.clone(),
        plan: u.plan.clone(),
        mrr: u.mrr,
        signup_date: u.signup_date.clone(),
    });
    let was_verified = existing.as_ref().is_some_and(|u| u.verified);
    let claims_json = |c: &Claimed| -> Option<String> {
        if c.is_empty() {
            return None;
        }
        let mut v = serde_json::to_value(c).unwrap_or(Json::Null);
        if let Json::Object(m) = &mut v {
            m.retain(|_, v| !v.is_null());
            m.insert("at".into(), w.now.into());
        }
        Some(v.to_string())
    };

    let (verified, method, key_id, verified_at, signed_at, values, unverified_claims) =
        match (&w.verification, &existing) {
            (Some(v), _) => {
                // Only values a verification vouched for stay: a never-verified user's earlier
                // claims are not promoted to trusted by a later verification.
                let base = if was_verified {
                    stored.clone().unwrap_or_default()
                } else {
                    Claimed::default()
                };
                let leftover = w.claimed.not_covered_by(&w.trusted);
                (
                    true,
                    Some(v.method.to_string()),
                    Some(v.key_id),
                    Some(w.now),
                    Some(v.signed_at),
                    base.overlay(&w.trusted),
                    claims_json(&leftover),
                )
            }
            (None, Some(u)) if u.verified => (
                true,
                u.method.clone(),
                u.key_id,
                u.verified_at,
                u.signed_at,
                stored.clone().unwrap_or_default(),
                claims_json(&w.claimed)
                    .or_else(|| u.unverified_claims.as_ref().map(|j| j.to_string())),
            ),
            (None, _) => (
                false,
                None,
                None,
                None,
                None,
                stored.clone().unwrap_or_default().overlay(&w.claimed),
                None,
            ),
        };
    // Custom traits are unverified by nature; a call that sends some replaces the set (bounded
    // by the core's per-call limit), a call that sends none keeps what is there.
    let custom = if w.custom.is_empty() {
        existing
            .as_ref()
            .map(|u| u.custom.to_string())
            .unwrap_or_else(|| "{}".into())
    } else {
        Json::Object(w.custom.clone()).to_string()
    };
    tx.prepare_cached(
        "INSERT INTO users (app_id, user_id, verified, method, key_id, verified_at, signed_at,
             name, email, plan, mrr, signup_date, custom, unverified_claims, first_seen, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)
         ON CONFLICT (app_id, user_id) DO UPDATE SET
             verified = excluded.verified, method = excluded.method, key_id = excluded.key_id,
             verified_at = excluded.verified_at, signed_at = excluded.signed_at,
             name = excluded.name, email = excluded.email, plan = excluded.plan,
             mrr = excluded.mrr, signup_date = excluded.signup_date, custom = excluded.custom,
             unverified_claims = excluded.unverified_claims, last_seen = excluded.last_seen",
    )?
    .execute(params![
        w.app_id,
        w.user_id,
        verified,
        method,
        key_id,
        verified_at,
        signed_at,
        values.name,
        values.email,
        values.plan,
        values.mrr,
        values.signup_date,
        custom,
        unverified_claims,
        w.now,
    ])?;
    Ok(())
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

// Identify is the hot variant; boxing it would add an allocation to every call.
#[allow(clippy::large_enum_variant)]
enum Command {
    Identify(IdentifyWrite, oneshot::Sender<Result<(), StoreError>>),
    Call(Job),
    Poll,
}

/// A handle to the store thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    tx: mpsc::Sender<Command>,
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

impl Store {
    /// Starts the store thread on `conn`. It loads the workspaces into `registry` now and again
    /// whenever another process (the CLI) commits to the database. Must be called inside a
    /// tokio runtime (it starts the poll ticker). The thread ends when every handle is dropped.
    pub fn spawn(
        conn: Connection,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Result<Store, StoreError> {
        registry.replace(load_workspaces(&conn)?);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("dropfix-store".into())
            .spawn(move || store_thread(conn, rx, registry, metrics))
            .map_err(|e| StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(e.into())))?;
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
        Ok(Store { tx })
    }

    /// Stores one accepted identify call; returns once it is committed.
    pub async fn identify(&self, write: IdentifyWrite) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Identify(write, done))
            .await
            .map_err(|_| StoreError::Closed)?;
        wait.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on the store thread and returns its result.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
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

    /// Reloads the workspaces into the registry (after the server itself edited them).
    pub async fn reload_workspaces(&self, registry: Arc<Registry>) -> Result<(), StoreError> {
        let workspaces = self.call(|conn| load_workspaces(conn)).await?;
        registry.replace(workspaces);
        Ok(())
    }
}

fn store_thread(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Command>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
) {
    let mut seen_version = data_version(&conn).unwrap_or(0);
    let mut batch: Vec<(IdentifyWrite, oneshot::Sender<Result<(), StoreError>>)> = Vec::new();
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
            metrics.observe_batch(batch.len());
            commit_batch(&mut conn, &mut batch);
        }
        for job in jobs.drain(..) {
            job(&mut conn);
        }
        if std::mem::take(&mut poll) {
            match data_version(&conn) {
                Ok(v) if v != seen_version => {
                    seen_version = v;
                    match load_workspaces(&conn) {
                        Ok(ws) => {
                            tracing::info!(workspaces = ws.len(), "workspaces reloaded");
                            registry.replace(ws);
                        }
                        Err(e) => tracing::error!(error = %e, "reloading workspaces failed"),
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
fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<(IdentifyWrite, oneshot::Sender<Result<(), StoreError>>)>,
) {
    let together = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        for (w, _) in batch.iter() {
            apply_identify(&tx, w)?;
        }
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
                    apply_identify(&tx, &w)?;
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

    fn write(user: &str, verified: bool, plan: &str, mrr: f64) -> IdentifyWrite {
        let claimed = Claimed {
            plan: Some(plan.into()),
            mrr: Some(mrr),
            ..Claimed::default()
        };
        IdentifyWrite {
            app_id: "app_t".into(),
            user_id: user.into(),
            now: 1000,
            verification: verified.then_some(Verification {
                method: "seed_hmac",
                key_id: 1,
                signed_at: 990,
            }),
            trusted: if verified {
                claimed.clone()
            } else {
                Claimed::default()
            },
            claimed,
            custom: Map::new(),
        }
    }

    fn apply(conn: &mut Connection, w: &IdentifyWrite) {
        let tx = conn.transaction().unwrap();
        apply_identify(&tx, w).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn unverified_never_overwrites_verified_values() {
        let mut conn = open_in_memory().unwrap();
        apply(&mut conn, &write("u", true, "pro", 49.0));
        apply(&mut conn, &write("u", false, "enterprise", 9999.0));
        let u = get_user(&conn, "app_t", "u").unwrap().unwrap();
        assert!(u.verified);
        assert_eq!(u.plan.as_deref(), Some("pro"));
        assert_eq!(u.mrr, Some(49.0));
        assert_eq!(u.method.as_deref(), Some("seed_hmac"));
        let claims = u.unverified_claims.unwrap();
        assert_eq!(claims["plan"], "enterprise");
        assert_eq!(claims["mrr"], 9999.0);
    }

    #[test]
    fn verification_does_not_promote_earlier_claims() {
        let mut conn = open_in_memory().unwrap();
        let mut w = write("u", false, "enterprise", 9999.0);
        w.claimed.email = Some("x@example.com".into());
        apply(&mut conn, &w);
        let mut v = write("u", true, "pro", 49.0);
        v.claimed.email = None;
        v.trusted.email = None;
        apply(&mut conn, &v);
        let u = get_user(&conn, "app_t", "u").unwrap().unwrap();
        assert_eq!(u.plan.as_deref(), Some("pro"));
        assert_eq!(u.email, None, "an unverified email must not become trusted");
    }

    #[test]
    fn listing_filters_verified_and_pages() {
        let mut conn = open_in_memory().unwrap();
        for (i, v) in [true, false, true, false].iter().enumerate() {
            apply(&mut conn, &write(&format!("u{i}"), *v, "p", 1.0));
        }
        let all = list_users(&conn, "app_t", false, None, 10).unwrap();
        assert_eq!(all.len(), 4);
        let verified = list_users(&conn, "app_t", true, None, 10).unwrap();
        let ids: Vec<_> = verified.iter().map(|u| u.user_id.as_str()).collect();
        assert_eq!(ids, ["u0", "u2"]);
        let page = list_users(&conn, "app_t", false, Some("u1"), 1).unwrap();
        assert_eq!(page[0].user_id, "u2");
    }

    #[test]
    fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()).unwrap());
        let conn = open(dir.path()).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(dir.path()).unwrap();
        let newer = MIGRATIONS.len() as i64 + 1;
        conn.pragma_update(None, "user_version", newer).unwrap();
        drop(conn);
        match open(dir.path()) {
            Err(StoreError::UnknownSchema { found, known }) => {
                assert_eq!((found, known), (newer, MIGRATIONS.len()));
            }
            other => panic!("expected UnknownSchema, got {:?}", other.map(|_| ())),
        }
    }
}
