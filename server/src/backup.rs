//! Backups of the embedded store while a server serves it, and their restore.
//!
//! `backup` copies the database with SQLite's online backup API in a single step: one read
//! transaction, so the copy is the database as of one instant (every call acknowledged before
//! it started is in it), while the server keeps committing (WAL mode: readers never block the
//! writer). The copy is a self-contained file (rollback journal, not WAL), created 0600, checked
//! with `PRAGMA integrity_check` and synced to disk. It holds the sealed secrets but never the
//! master keys that open them: those are backed up apart (`DATA_DIR/master.keys`).
//!
//! `restore` puts such a copy into a data dir that holds no store yet, and, when the master keys
//! are at hand, proves that they open every restored secret before it reports success (a wrong
//! key file leaves the data dir as it was).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::sqlite::{DB_FILE, schema_version_known};

/// What a backup or a restore holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub workspaces: i64,
    pub keys: i64,
    pub users: i64,
    pub bytes: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} workspaces, {} keys (sealed), {} users, {} bytes",
            self.workspaces, self.keys, self.users, self.bytes
        )
    }
}

fn db_error(what: &str, path: &Path) -> impl Fn(rusqlite::Error) -> String {
    let (what, path) = (what.to_string(), path.display().to_string());
    move |e| format!("{what} {path}: {e}")
}

/// Counts and checks a DropFix database file.
fn inspect(conn: &Connection, path: &Path) -> Result<Summary, String> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db_error("cannot read", path))?;
    if version <= 0 || version as usize > schema_version_known() {
        return Err(format!(
            "{} is not a DropFix embedded store this version can read (schema version {version}, \
             known 1..={})",
            path.display(),
            schema_version_known()
        ));
    }
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(db_error("cannot check", path))?;
    if check != "ok" {
        return Err(format!(
            "{} failed SQLite's integrity check: {check}",
            path.display()
        ));
    }
    let count = |table: &str| -> Result<i64, String> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(db_error("cannot count rows in", path))
    };
    Ok(Summary {
        workspaces: count("workspaces")?,
        keys: count("keys")?,
        users: count("users")?,
        bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
    })
}

/// Creates `path` (which must not exist) owner-only.
fn create_new_private(path: &Path) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(|_| ()).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => format!(
            "{} exists: a backup never overwrites a file, give a new name",
            path.display()
        ),
        _ => format!("cannot create {}: {e}", path.display()),
    })
}

/// Syncs `path` and the directory holding it, so the file survives a crash right after.
fn sync(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", path.display()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Best effort: not every platform can open a directory for syncing.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Copies every page of `src` into `dst` in one step of the online backup API: one read
/// transaction, so one instant. (In several steps, each commit the server made in between
/// would restart the copy, and a busy server could keep it from ever finishing.) Retried while
/// the source is locked by a writer for a moment.
fn copy_all(src: &Connection, dst: &mut Connection) -> rusqlite::Result<()> {
    use rusqlite::backup::{Backup, StepResult};
    let backup = Backup::new(src, dst)?;
    let mut waits = 0;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked if waits < 300 => {
                waits += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some("the database stayed locked for 30 s".into()),
                ));
            }
        }
    }
}

/// Copies the embedded store in `data_dir` to the new file `to`, online.
pub fn backup(data_dir: &Path, to: &Path) -> Result<Summary, String> {
    let db = data_dir.join(DB_FILE);
    if !db.is_file() {
        return Err(format!("no embedded store at {}", db.display()));
    }
    let src = Connection::open_with_flags(
        &db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_error("cannot open", &db))?;
    // No busy handler on the source: a busy step returns at once and `copy_all` waits, so the
    // whole wait stays bounded by its 30 s.
    create_new_private(to)?;
    let copied = (|| {
        let mut dst = Connection::open(to).map_err(db_error("cannot write", to))?;
        copy_all(&src, &mut dst).map_err(db_error("cannot back up", &db))?;
        // A self-contained file: no -wal beside it to forget.
        dst.pragma_update(None, "journal_mode", "DELETE")
            .map_err(db_error("cannot write", to))?;
        let summary = inspect(&dst, to)?;
        drop(dst);
        sync(to)?;
        Ok(Summary {
            bytes: std::fs::metadata(to).map_or(0, |m| m.len()),
            ..summary
        })
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    copied
}

/// Puts the backup `from` into `data_dir` as its store. The data dir must hold no store yet.
/// Returns what was restored and where it is.
pub fn restore(from: &Path, data_dir: &Path) -> Result<(Summary, PathBuf), String> {
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(db_error("cannot open", from))?;
    let summary = inspect(&src, from)?;
    let db = data_dir.join(DB_FILE);
    // A journal left beside a missing database would be replayed onto the restored one.
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = data_dir.join(format!("{DB_FILE}{suffix}"));
        if p.exists() {
            return Err(format!(
                "{} already holds a store ({} exists): restore into a new data dir (or move \
                 that store and its -wal, -shm and -journal files away first; nothing was \
                 changed)",
                data_dir.display(),
                p.display()
            ));
        }
    }
    if !data_dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    }
    // Written under a temporary name and renamed, so a failure leaves no half store behind.
    let partial = data_dir.join(format!("{DB_FILE}.restoring"));
    let _ = std::fs::remove_file(&partial);
    create_new_private(&partial)?;
    let copied = (|| {
        let mut dst = Connection::open(&partial).map_err(db_error("cannot write", &partial))?;
        copy_all(&src, &mut dst).map_err(db_error("cannot restore from", from))?;
        drop(dst);
        sync(&partial)?;
        // A link fails if a store appeared meanwhile; rename would replace it.
        std::fs::hard_link(&partial, &db)
            .map_err(|e| format!("cannot move the restored store into place: {e}"))?;
        let _ = std::fs::remove_file(&partial);
        sync(&db)
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    Ok((summary, db))
}
