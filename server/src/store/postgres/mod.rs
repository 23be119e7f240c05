//! The shared backend: PostgreSQL, for several verifier instances behind a load balancer.
//!
//! It keeps every promise of the embedded backend ([`super::sqlite`]), method by method:
//! - identify writes go to a per-instance batcher task (a bounded queue, like the SQLite store
//!   thread) that commits whatever is queued (up to [`MAX_BATCH`]) as one call of a PL/pgSQL
//!   function (one statement, its own transaction) running an `INSERT ... SELECT FROM
//!   UNNEST(...) ON CONFLICT DO UPDATE` per round, whose SQL states the stored-data rules of
//!   [`crate::users::merge`]. Each caller is answered only after the commit, and every caller
//!   of a failed batch gets the error (a 503, never a false 2xx);
//! - every key change is one transaction that first locks the workspace row (`FOR UPDATE`), so
//!   two instances rolling the same workspace at once run one after the other, and what the
//!   change reads cannot move before it commits;
//! - every workspace or key change bumps `config_version` and sends `NOTIFY dropfix_config` in
//!   the same transaction. Each instance LISTENs on a dedicated connection (not a pooled one: a
//!   pool would drop the notifications) and reloads its registry when one arrives; a 1 s poll of
//!   `config_version` catches a lost notification, and a lost listener reconnects with backoff
//!   and reloads everything;
//! - numbered migrations embedded in the binary run under a transaction-scoped advisory lock,
//!   so instances starting together do not race; a schema newer than this build is refused.
//!
//! Timeouts (pool wait, connect, and a bound on every database round) make a dead database
//! answer with errors within seconds instead of hanging requests.

mod batch;
mod import;

pub use import::{drop_tables_created, import_target};
mod sync;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use self::batch::{batcher, commit_batch};
use self::sync::{listen, migrate, poll_version, reload};
use super::sql::{Arg, Cell, Lock, Mode, Row, RowLock, Sql};
use super::{Hooks, Queued, StoreError};
use crate::metrics::{Metrics, PoolStatus, Sample};
use crate::sealing::Keyring;
use crate::users::IdentifyWrite;

/// Most identify writes committed in one transaction (as on SQLite).
pub const MAX_BATCH: usize = 512;
/// Queue depth before callers wait (backpressure rather than unbounded memory).
const QUEUE_DEPTH: usize = 8192;
/// The safety net under LISTEN/NOTIFY: how often `config_version` is compared.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between two attempts to reconnect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The notification channel of workspace changes.
const CHANNEL: &str = "dropfix_config";
/// Advisory lock key that serialises migrations across instances ("dropfix" in ASCII).
const MIGRATION_LOCK: i64 = 0x0064_726f_7066_6978;
/// First half of the two-part advisory lock that serialises the recent-rejections writes of one
/// workspace (the second half is a hash of its app id), so the trim that follows an insert
/// sees every row committed before it and the log stays bounded with several instances.
const REJECTIONS_LOCK: i32 = 0x6466_7272; // "dfrr"
/// Serialises "create the development workspace if there is none" across instances starting
/// together on an empty database, so only one of them creates (and announces) it.
const FIRST_WORKSPACE_LOCK: i64 = 0x0064_6677_6669_7273; // "dfwfirs"
/// Pool connections when `--db-pool-size` is not given.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Default bound on waiting for a pooled connection, on connecting, and (twice this) on one
/// database round trip of an operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Numbered migrations; `schema_migrations` records which have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_console.sql"),
    include_str!("../migrations/postgres/0003_instances.sql"),
    include_str!("../migrations/postgres/0004_team_invites.sql"),
    include_str!("../migrations/postgres/0005_seed_trait_counts.sql"),
    include_str!("../migrations/postgres/0006_token_issuers.sql"),
    include_str!("../migrations/postgres/0007_users_fillfactor.sql"),
    include_str!("../migrations/postgres/0008_verified_index_leads_with_verified.sql"),
];

/// How many migrations this build knows (tests of the schema-version refusal).
pub fn schema_version_known() -> usize {
    MIGRATIONS.len()
}

/// How to reach the database.
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/dbname` (or the key=value form).
    pub url: String,
    /// A URL of the same database that reaches it without a transaction-mode pooler
    /// (`--database-direct-url`): the LISTEN connection uses it. Without it the listener uses
    /// `url`, and when notifications do not come through that (a transaction pooler), changes
    /// arrive by the 1 s poll alone.
    pub direct_url: Option<String>,
    /// Pooled connections at most (plus one dedicated LISTEN connection).
    pub pool_size: usize,
    /// Bound on waiting for a pooled connection and on connecting.
    pub timeout: Duration,
}

impl PgOptions {
    pub fn new(url: impl Into<String>) -> PgOptions {
        PgOptions {
            url: url.into(),
            direct_url: None,
            pool_size: DEFAULT_POOL_SIZE,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

// The URL usually holds a password: never print it.
impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &"<redacted>")
            .field(
                "direct_url",
                &self.direct_url.as_ref().map(|_| "<redacted>"),
            )
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A database error as the log sees it: the SQLSTATE and message only. PostgreSQL's DETAIL
/// line can quote row values (a conflicting key, a secret), so it is left out.
impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(describe(&e))
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) if is_prepared_statement_error(db.code()) => format!(
            "{} ({}): a connection pooler in front of PostgreSQL (PgBouncer with pool_mode = \
             transaction before 1.21, or a managed transaction pooler) handed this session's \
             statements to different server connections, or kept another client's prepared \
             statements; this server sends none by name, so restart the pooler to clear \
             statements other clients left behind, or use session mode (pool_mode = session)",
            db.message(),
            db.code().code()
        ),
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        // "error connecting to server" alone does not say why: add the cause (refused, timed
        // out, authentication failed). These come from the client and quote no row values.
        None => {
            let text = match std::error::Error::source(e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            };
            if text.contains("does not support TLS") {
                format!(
                    "{text}: the URL's sslmode (require, verify-ca or verify-full) asks for TLS; \
                     turn ssl on in PostgreSQL, or lower sslmode on a network you trust"
                )
            } else {
                text
            }
        }
    }
}

/// 26000 (`prepared statement "s9" does not exist`) and 42P05 (`... already exists`): what a
/// transaction-mode pooler answers to a client that names statements.
fn is_prepared_statement_error(code: &tokio_postgres::error::SqlState) -> bool {
    use tokio_postgres::error::SqlState;
    *code == SqlState::INVALID_SQL_STATEMENT_NAME || *code == SqlState::DUPLICATE_PSTATEMENT
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => e.into(),
            PoolError::Timeout(kind) => {
                StoreError::Timeout(format!("no database connection in time ({kind:?})"))
            }
            other => StoreError::Postgres(other.to_string()),
        }
    }
}

/// A handle to the PostgreSQL store. Cheap to clone; background tasks stop when the last handle
/// is dropped.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    queue: mpsc::Sender<Pending>,
    hooks: Hooks,
    sync: Arc<ConfigSync>,
    op_timeout: Duration,
    /// How long an identify call waits for its batch's answer (`--db-timeout-secs`): a call
    /// queued behind a batch stuck on a hung database gets its 503 in this time, not after that
    /// batch's bound and then its own.
    answer_timeout: Duration,
    /// Benchmark A/B only (`DROPFIX_BENCH_PG_ROW_COMMITS=1`, bench/pg.sh): every call commits its
    /// own one-row transaction on a pooled connection instead of joining the batch, so batching
    /// can be measured against what it replaces. Never set in production.
    row_commits: bool,
    // Dropped with the last handle: the listener and the poller see it and stop.
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.inner.pool.status())
            .finish_non_exhaustive()
    }
}

type Pending = (IdentifyWrite, oneshot::Sender<Result<(), StoreError>>);

/// The config version this instance's registry reflects. The mutex also serialises reloads, so
/// an older snapshot never replaces a newer one.
#[derive(Debug, Default)]
struct ConfigSync {
    seen: tokio::sync::Mutex<Option<i64>>,
    /// The last version loaded, readable without the lock (the metrics).
    loaded: AtomicI64,
    /// Whether the LISTEN connection is up (the metrics).
    listening: AtomicBool,
}

/// A pooled connection, the wait for it (got or not) recorded in `dropfix_db_pool_wait_seconds`.
async fn pooled(pool: &Pool, metrics: &Metrics) -> Result<Object, PoolError> {
    let started = Instant::now();
    let got = pool.get().await;
    metrics.observe_pool_wait(started.elapsed().as_secs_f64());
    got
}

/// Where the LISTEN connection goes: the direct URL if one was given, else the pool's.
pub(super) struct Listener {
    connect: (
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    /// Whether it came from `--database-direct-url` (for the log line when it hears nothing).
    direct: bool,
}

fn pg_config(
    opts: &PgOptions,
) -> Result<
    (
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    StoreError,
> {
    let (mut cfg, tls) = super::pg_tls::config(&opts.url)?;
    if cfg.get_application_name().is_none() {
        cfg.application_name("dropfix-server");
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(opts.timeout);
    }
    // A database host that vanishes without closing the socket is noticed by keepalives.
    cfg.keepalives(true);
    cfg.keepalives_idle(Duration::from_secs(30));
    Ok((cfg, tls))
}

impl PgStore {
    /// Connects, migrates (under the advisory lock), loads the workspaces into the registry and
    /// starts the batcher, the listener and the version poll. Needs a tokio runtime.
    pub async fn open(opts: &PgOptions, hooks: Hooks) -> Result<PgStore, StoreError> {
        let (cfg, tls) = pg_config(opts)?;
        let manager = Manager::from_config(
            cfg.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.timeout))
            .create_timeout(Some(opts.timeout))
            .recycle_timeout(Some(opts.timeout))
            .build()
            .map_err(|e| StoreError::Setup(format!("cannot build the connection pool: {e}")))?;
        let op_timeout = opts.timeout * 2;
        // Migrations may wait for another instance's migrations: a longer bound.
        bounded(op_timeout * 6, migrate(&pool, &hooks.keyring.get())).await?;

        let sync = Arc::new(ConfigSync::default());
        bounded(op_timeout, reload(&pool, &hooks, &sync, true)).await?;
        let listener = match &opts.direct_url {
            Some(url) => Listener {
                connect: pg_config(&PgOptions {
                    url: url.clone(),
                    ..opts.clone()
                })?,
                direct: true,
            },
            None => Listener {
                connect: (cfg, tls),
                direct: false,
            },
        };

        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let (stop, stopped) = watch::channel(());
        tokio::spawn(batcher(rx, pool.clone(), hooks.clone(), op_timeout));
        let (listening_tx, listening) = oneshot::channel();
        tokio::spawn(listen(
            listener,
            pool.clone(),
            hooks.clone(),
            Arc::clone(&sync),
            op_timeout,
            stopped.clone(),
            listening_tx,
        ));
        // Opened means listening (or known not to hear anything through this URL, which the
        // listener has logged): a change committed from now on reaches this instance by
        // notification. If LISTEN cannot be set up in time, the poll still covers it (and the
        // listener keeps retrying), so this is not an error.
        if !matches!(
            tokio::time::timeout(op_timeout, listening).await,
            Ok(Ok(()))
        ) {
            tracing::warn!("not listening for workspace changes yet; relying on the 1 s poll");
        }
        tokio::spawn(poll_version(
            pool.clone(),
            hooks.clone(),
            Arc::clone(&sync),
            op_timeout,
            stopped,
        ));
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                queue,
                hooks,
                sync,
                op_timeout,
                answer_timeout: opts.timeout,
                row_commits: std::env::var("DROPFIX_BENCH_PG_ROW_COMMITS").is_ok_and(|v| v == "1"),
                _stop: stop,
            }),
        })
    }

    /// A pooled connection and the work on it, bounded in time as a whole.
    async fn with_client<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Object) -> Result<T, StoreError>,
    {
        bounded(self.inner.op_timeout, async {
            let mut client = pooled(&self.inner.pool, &self.inner.hooks.metrics).await?;
            f(&mut client).await
        })
        .await
    }

    /// Runs a rule in a transaction on a pooled connection, bounded in time as a whole: a
    /// [`Mode::Read`] one read-only in one snapshot (`REPEATABLE READ`), the others read-write
    /// (`READ COMMITTED`: what a rule changes, it locks first, see [`Sql::row_lock`]). After a
    /// [`Mode::Config`] one this instance's registry is reloaded, so it answers with the change
    /// at once (the others hear of it through NOTIFY or the version poll).
    pub(super) async fn run<T, F>(&self, mode: Mode, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut PgConn<'_, '_>, &Keyring) -> Result<T, StoreError>,
    {
        let ring = self.inner.hooks.keyring.get();
        let out = self
            .with_client(async |c| {
                let tx = match mode {
                    Mode::Read => {
                        c.build_transaction()
                            .isolation_level(IsolationLevel::RepeatableRead)
                            .read_only(true)
                            .start()
                            .await?
                    }
                    Mode::Write | Mode::Config => c.transaction().await?,
                };
                let out = f(&mut PgConn(&tx), &ring).await?;
                tx.commit().await?;
                Ok(out)
            })
            .await?;
        if mode == Mode::Config {
            self.reload().await?;
        }
        Ok(out)
    }

    /// How long an identify call waits for its answer; see [`Inner::answer_timeout`].
    pub fn answer_timeout(&self) -> Duration {
        self.inner.answer_timeout
    }

    /// Hands `write` to this instance's batcher; see [`super::Queued`].
    pub fn enqueue(&self, write: IdentifyWrite) -> Queued {
        let (done, wait) = oneshot::channel();
        if self.inner.row_commits {
            let inner = Arc::clone(&self.inner);
            return Queued::Waiting(Box::pin(async move {
                let mut one = vec![(write, done)];
                let metrics = &inner.hooks.metrics;
                commit_batch(&inner.pool, metrics, &mut one, inner.op_timeout).await;
                wait.await.map_err(|_| StoreError::Closed)?
            }));
        }
        match self.inner.queue.try_send((write, done)) {
            Ok(()) => Queued::Ready(wait),
            Err(mpsc::error::TrySendError::Full(pending)) => {
                let inner = Arc::clone(&self.inner);
                Queued::Waiting(Box::pin(async move {
                    inner
                        .queue
                        .send(pending)
                        .await
                        .map_err(|_| StoreError::Closed)?;
                    wait.await.map_err(|_| StoreError::Closed)?
                }))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Queued::Failed(StoreError::Closed),
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with_client(async |c| {
            c.batch_execute("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    pub async fn reload(&self) -> Result<(), StoreError> {
        let i = &self.inner;
        bounded(i.op_timeout, reload(&i.pool, &i.hooks, &i.sync, true)).await
    }

    pub(super) fn hooks(&self) -> &Hooks {
        &self.inner.hooks
    }

    /// The pool, the batcher's queue, the config version and the listener, for a scrape.
    pub(super) fn fill_sample(&self, sample: &mut Sample) {
        let i = &self.inner;
        let status = i.pool.status();
        sample.pool = Some(PoolStatus {
            max: status.max_size,
            open: status.size,
            in_use: status.size.saturating_sub(status.available),
            waiting: status.waiting,
        });
        sample.store_queue_length = i.queue.max_capacity() - i.queue.capacity();
        sample.config_version = Some(i.sync.loaded.load(Ordering::Relaxed));
        sample.listener_connected = Some(i.sync.listening.load(Ordering::Relaxed));
    }
}

/// `fut`, or an error once `limit` has passed (a database that stopped answering).
async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
        Err(StoreError::Timeout(format!(
            "the database did not answer within {limit:?}"
        )))
    })
}

/// A transaction on a pooled connection, as the rules use it ([`Sql`]).
pub(super) struct PgConn<'c, 't>(&'c deadpool_postgres::Transaction<'t>);

impl ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // Each variant checks that the parameter's type is one it can be sent as.
        match self {
            Arg::Int(v) => v.to_sql_checked(ty, out),
            Arg::Real(v) => v.to_sql_checked(ty, out),
            Arg::Text(v) => v.to_sql_checked(ty, out),
            Arg::Bool(v) => v.to_sql_checked(ty, out),
            Arg::Bytes(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <Option<i64>>::accepts(ty)
            || <Option<f64>>::accepts(ty)
            || <Option<&str>>::accepts(ty)
            || <Option<bool>>::accepts(ty)
            || <&[u8]>::accepts(ty)
    }

    to_sql_checked!();
}

fn cells(r: &tokio_postgres::Row) -> Result<Row, StoreError> {
    let mut out = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let cell = match *col.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Cell::Int),
            Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(|v| Cell::Int(v.into())),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Cell::Real),
            Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(Cell::Bool),
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Cell::Bytes),
            _ => r.try_get::<_, Option<String>>(i)?.map(Cell::Text),
        };
        out.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row(out))
}

/// The arguments with the type each is sent as, for tokio-postgres' `*_typed` calls.
///
/// No statement of this backend is prepared by name: each goes out as the unnamed statement
/// (Parse, Bind, Execute, Sync in one message), which lives only until the next one.
/// A transaction-mode pooler (PgBouncer `pool_mode = transaction` before 1.21, Supabase's port
/// 6543, many managed poolers) hands each transaction, and each statement outside one, to
/// whichever server connection is free: a statement named on one connection does not exist on
/// the next (`prepared statement "s9" does not exist`), and one left behind collides with the
/// next client's name (`already exists`). Planning each statement again costs little off the
/// hot path (a rule runs a few statements per admin or console request); on it, the identify
/// batch is a call of a PL/pgSQL function, whose plans the server keeps per connection
/// (`batch::BATCH_FUNCTION`).
fn typed<'a>(args: &'a [Arg<'_>]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    args.iter()
        .map(|a| {
            let ty = match a {
                Arg::Int(_) => Type::INT8,
                Arg::Real(_) => Type::FLOAT8,
                Arg::Text(_) => Type::TEXT,
                Arg::Bool(_) => Type::BOOL,
                Arg::Bytes(_) => Type::BYTEA,
            };
            (a as &(dyn ToSql + Sync), ty)
        })
        .collect()
}

impl Sql for PgConn<'_, '_> {
    // Every statement is sent unnamed, with its parameter types, in one round trip (see
    // [`typed`]): a rule that runs one statement per row (a flush of rejections) pays one round
    // trip per row, as a cached prepared statement would.
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        Ok(self.0.execute_typed(sql, &typed(args)).await?)
    }

    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        self.0
            .query_typed(sql, &typed(args))
            .await?
            .iter()
            .map(cells)
            .collect()
    }

    fn row_lock(&self, lock: RowLock) -> &'static str {
        match lock {
            RowLock::Update => " FOR UPDATE",
            RowLock::Share => " FOR SHARE",
        }
    }

    async fn lock(&mut self, lock: Lock<'_>) -> Result<(), StoreError> {
        match lock {
            Lock::FirstWorkspace => {
                let sql = "SELECT pg_advisory_xact_lock($1)";
                self.0
                    .execute_typed(sql, &[(&FIRST_WORKSPACE_LOCK, Type::INT8)])
                    .await?
            }
            Lock::Rejections(app) => {
                let sql = "SELECT pg_advisory_xact_lock($1, hashtext($2))";
                let args: [(&(dyn ToSql + Sync), Type); 2] =
                    [(&REJECTIONS_LOCK, Type::INT4), (&app, Type::TEXT)];
                self.0.execute_typed(sql, &args).await?
            }
        };
        Ok(())
    }

    /// Bumps `config_version` and notifies every instance; both take effect at COMMIT.
    async fn config_changed(&mut self) -> Result<(), StoreError> {
        self.0
            .execute_typed(
                "WITH v AS (UPDATE config_version SET version = version + 1 RETURNING version)
                 SELECT pg_notify($1, version::text) FROM v",
                &[(&CHANNEL, Type::TEXT)],
            )
            .await?;
        Ok(())
    }

    /// `ILIKE` on a "C"-collated column folds ASCII case only: SQLite's `LIKE`.
    fn ilike(&self) -> &'static str {
        "ILIKE"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_never_printed() {
        let opts = PgOptions::new("postgres://u:hunter2@db/x");
        assert!(!format!("{opts:?}").contains("hunter2"));
    }
}
