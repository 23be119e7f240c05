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

mod schema;
mod upsert;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

pub use schema::{
    DB_FILE, SERVE_LOCK_FILE, hold_serve_lock, open_file, open_memory_conn, prepare_data_dir,
    refuse_if_served, schema_version_known,
};

use super::sql::{Arg, Cell, Lock, Mode, Row, RowLock, Sql, numbered_to_question, run_now};
use super::{Hooks, Queued, StoreError, config};
use crate::sealing::Keyring;
use crate::users::IdentifyWrite;
use crate::workspace::Workspace;

/// Most identify writes committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// Queue depth before callers wait (backpressure rather than unbounded memory).
const QUEUE_DEPTH: usize = 8192;
/// How often the server looks for edits made by another process (the CLI): a `PRAGMA
/// data_version` read, so a change reaches a running server well within the second promised
/// even on a busy machine.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

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

    pub(super) fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// Commands queued for the store thread and not yet taken (the metrics).
    pub fn queue_length(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
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

    /// Runs a rule on the store thread: a [`Mode::Write`] or [`Mode::Config`] one in a
    /// `BEGIN IMMEDIATE` transaction, which takes the database's write lock before its first
    /// read (the CLI in another process waits, so what the rule reads cannot change before it
    /// commits); after a [`Mode::Config`] one the registry is reloaded, on the store thread
    /// right after the commit, so a poll can never install newer workspaces between the two
    /// that this older list would then replace. Other processes see the change through
    /// `data_version`.
    pub(super) async fn run<T, F>(&self, mode: Mode, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Lite<'_>, &Keyring) -> Result<T, StoreError> + Send + 'static,
    {
        let hooks = self.hooks.clone();
        self.call(move |conn| {
            let ring = hooks.keyring.get();
            let out = match mode {
                // A deferred transaction: one snapshot for all the rule's reads.
                Mode::Read => {
                    let tx = conn.transaction()?;
                    let out = f(&mut Lite(&tx), &ring)?;
                    tx.commit()?;
                    out
                }
                Mode::Write | Mode::Config => {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let out = f(&mut Lite(&tx), &ring)?;
                    tx.commit()?;
                    out
                }
            };
            if mode == Mode::Config {
                hooks.registry.replace(load_workspaces(conn, &ring)?);
            }
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

    /// Reads every workspace now and puts them in the registry.
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
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "data_version", |r| r.get(0))
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
            upsert::commit_batch(&mut conn, &mut batch);
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

/// Every workspace, unsealed.
fn load_workspaces(conn: &Connection, ring: &Keyring) -> Result<Vec<Workspace>, StoreError> {
    run_now(config::load_workspaces(&mut Lite(conn), ring, None))
}

/// The one-time upgrade of stored secrets ([`config::upgrade_secrets`]).
fn upgrade_secrets(conn: &mut Connection, ring: &Keyring) -> Result<(), StoreError> {
    // Done already (every start after the first): a plain read, no write lock.
    let key = super::SECRETS_BOUND_META;
    if run_now(config::meta_get(&mut Lite(conn), key))?.is_some() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    run_now(config::upgrade_secrets(&mut Lite(&tx), ring))?;
    tx.commit()?;
    Ok(())
}

/// The embedded store's connection as the rules use it ([`Sql`]). Its statements run
/// synchronously on the store thread, so its futures never wait ([`run_now`]).
pub(super) struct Lite<'c>(&'c Connection);

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match *self {
            Arg::Int(v) => v.map_or(ToSqlOutput::Owned(Value::Null), ToSqlOutput::from),
            Arg::Real(v) => v.map_or(ToSqlOutput::Owned(Value::Null), ToSqlOutput::from),
            Arg::Bool(v) => v.map_or(ToSqlOutput::Owned(Value::Null), ToSqlOutput::from),
            Arg::Text(v) => ToSqlOutput::Borrowed(v.map_or(ValueRef::Null, ValueRef::from)),
            Arg::Bytes(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
        })
    }
}

impl Sql for Lite<'_> {
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let mut stmt = self.0.prepare_cached(&numbered_to_question(sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(args))? as u64)
    }

    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        use rusqlite::types::ValueRef;
        let mut stmt = self.0.prepare_cached(&numbered_to_question(sql))?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(match r.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Real(v) => Cell::Real(v),
                    ValueRef::Text(v) => Cell::Text(String::from_utf8_lossy(v).into_owned()),
                    ValueRef::Blob(v) => Cell::Bytes(v.to_vec()),
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }

    /// Nothing: a writing transaction here holds the database's write lock from its start.
    fn row_lock(&self, _: RowLock) -> &'static str {
        ""
    }

    /// Nothing, for the same reason.
    async fn lock(&mut self, _: Lock<'_>) -> Result<(), StoreError> {
        Ok(())
    }

    /// Nothing: the other processes see the commit through `PRAGMA data_version`.
    async fn config_changed(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// SQLite's LIKE folds ASCII case by default.
    fn ilike(&self) -> &'static str {
        "LIKE"
    }
}
