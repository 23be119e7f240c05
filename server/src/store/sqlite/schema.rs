//! The embedded store's file: where it lives, who may read it, and its schema (versioned
//! migrations recorded in `PRAGMA user_version`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::store::StoreError;
use crate::store::sql::pending_migrations;

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
    // 4 (team invites): the console's Team page: each account's last login, and invitations
    // into a workspace (the link's token as its SHA-256 only; one pending per email).
    "ALTER TABLE console_accounts ADD COLUMN last_login_at INTEGER;
     CREATE TABLE console_invites (
         token_sha256 BLOB PRIMARY KEY,
         app_id TEXT NOT NULL REFERENCES workspaces(app_id) ON DELETE CASCADE,
         email TEXT NOT NULL,
         role TEXT NOT NULL,
         created_by TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         expires_at INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE UNIQUE INDEX console_invites_app_email ON console_invites(app_id, email);",
    // 5 (seed trait counts): of the seed-form calls verified per minute, those that carried plan
    // or MRR beside a signature that does not cover them (the Security page's recommendation).
    "ALTER TABLE call_counts ADD COLUMN seed_with_traits INTEGER NOT NULL DEFAULT 0;",
    // 6 (token issuers): the workspace's token issuers (public keys and identity providers), a JSON array of
    // their configurations (issuers::IssuerConfig): public keys and URLs only, nothing secret.
    "ALTER TABLE workspaces ADD COLUMN token_issuers TEXT NOT NULL DEFAULT '[]';",
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

/// Creates the data dir owner-only when it is missing, and refuses an existing one that other
/// users can read or write (or that is not a directory). Run before anything is written in it:
/// the database, and the default master key file, which the CLI creates first.
#[cfg(unix)]
pub fn prepare_data_dir(dir: &Path) -> Result<(), StoreError> {
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
pub fn prepare_data_dir(dir: &Path) -> Result<(), StoreError> {
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
    for (next, sql) in pending_migrations(MIGRATIONS, found)? {
        // IMMEDIATE, and the version read again inside: a server and a CLI opening a new
        // database together apply each migration once, whichever takes the write lock first.
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if now < next {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", next)?;
        }
        tx.commit()?;
    }
    Ok(())
}

/// The file every `serve` on a data dir holds a shared lock on for as long as it runs, so that
/// what must not run beside a live server (`migrate-to-postgres`) can tell, and keep one from
/// starting meanwhile.
pub const SERVE_LOCK_FILE: &str = "dropfix.serve.lock";

/// Takes the data dir's serve lock (shared: it says "served", several holders are possible); it
/// is released when the returned file is dropped or the process ends, however it ends.
pub fn hold_serve_lock(data_dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join(SERVE_LOCK_FILE);
    create_owner_only(&path)?;
    let file = std::fs::File::open(&path)
        .map_err(|e| StoreError::Setup(format!("cannot open {}: {e}", path.display())))?;
    file.try_lock_shared()
        .map_err(|e| StoreError::Setup(format!("cannot take the lock {}: {e}", path.display())))?;
    Ok(file)
}

/// Refuses (naming `what`) while a `serve` holds the data dir: what that server acknowledges
/// after this point would not be in what `what` reads. Otherwise returns the lock, held
/// exclusively until it is dropped, so that no `serve` starts on the data dir meanwhile.
pub fn refuse_if_served(data_dir: &Path, what: &str) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join(SERVE_LOCK_FILE);
    create_owner_only(&path)?;
    let file = std::fs::File::open(&path)
        .map_err(|e| StoreError::Setup(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Setup(format!(
            "a dropfix-server is serving from {}: stop it before {what} (calls it acknowledges \
             meanwhile would be missed); nothing was changed",
            data_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Setup(format!(
            "cannot check the lock {}: {e}",
            path.display()
        ))),
    }
}

/// How many migrations this build knows (tests of the schema-version refusal).
pub fn schema_version_known() -> usize {
    MIGRATIONS.len()
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
