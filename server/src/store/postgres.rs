//! The shared backend: PostgreSQL, for several verifier instances behind a load balancer.
//!
//! It keeps every promise of the embedded backend ([`super::sqlite`]), method by method:
//! - identify writes go to a per-instance batcher task (a bounded queue, like the SQLite store
//!   thread) that commits whatever is queued (up to [`MAX_BATCH`]) in one transaction, as one
//!   `INSERT ... SELECT FROM UNNEST(...) ON CONFLICT DO UPDATE` statement per round, whose SQL
//!   states the stored-data rules of [`crate::users::merge`]. Each caller is answered only after
//!   the COMMIT, and every caller of a failed batch gets the error (a 503, never a false 2xx);
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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
    Transaction,
};
use dropfix_core::{SecretKey, StrictMode};
use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{AsyncMessage, IsolationLevel};

use super::{
    Account, AccountChange, AccountLogin, AuditEntry, CallCounts, CountsDelta, Hooks,
    MAX_RECENT_REJECTIONS, Membership, Queued, RejectionEntry, Role, SECRETS_BOUND_META,
    SealCounts, SessionRules, StoreError, open_secret, rewrap_secret, seal_secret,
};
use crate::sealing::{Keyring, sealed_key_id};
use crate::users::{IdentifyWrite, UserQuery, UserRecord};
use crate::workspace::{
    Key, NewKey, NewWorkspace, Workspace, WorkspacePatch, check_new_key, check_retire,
    generate_secret, key_to_roll, random_token, rolled_expiry,
};

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
/// Per-minute counts older than this are deleted when new ones are flushed (the console shows
/// at most 7 days), as on SQLite.
const COUNTS_KEEP_MINUTES: i64 = 8 * 24 * 60;
/// Pool connections when `--db-pool-size` is not given.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Default bound on waiting for a pooled connection, on connecting, and (twice this) on one
/// database round trip of an operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Numbered migrations; `schema_migrations` records which have run.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_init.sql"),
    include_str!("migrations/postgres/0002_console.sql"),
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
    /// Pooled connections at most (plus one dedicated LISTEN connection).
    pub pool_size: usize,
    /// Bound on waiting for a pooled connection and on connecting.
    pub timeout: Duration,
}

impl PgOptions {
    pub fn new(url: impl Into<String>) -> PgOptions {
        PgOptions {
            url: url.into(),
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

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => e.into(),
            PoolError::Timeout(kind) => {
                StoreError::Postgres(format!("no database connection in time ({kind:?})"))
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

        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let (stop, stopped) = watch::channel(());
        tokio::spawn(batcher(rx, pool.clone(), hooks.clone(), op_timeout));
        let (listening_tx, listening) = oneshot::channel();
        tokio::spawn(listen(
            (cfg, tls),
            pool.clone(),
            hooks.clone(),
            Arc::clone(&sync),
            op_timeout,
            stopped.clone(),
            listening_tx,
        ));
        // Opened means listening: a change committed from now on reaches this instance by
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
            let mut client = self.inner.pool.get().await?;
            f(&mut client).await
        })
        .await
    }

    /// Runs a change and then reloads the registry, so this instance answers with the change
    /// at once (the others hear of it through NOTIFY or the version poll).
    async fn change<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Object) -> Result<T, StoreError>,
    {
        let out = self.with_client(f).await?;
        self.reload().await?;
        Ok(out)
    }

    /// Copies everything an embedded store holds into this database, which must hold no
    /// workspace, user or console account yet, in one transaction: the same app ids, key ids
    /// and sealed secrets (so the instances need the embedded store's master keys), users,
    /// audit log, console accounts, roles and sessions, counts and recent rejections, and the
    /// admin token's hash. Users are copied in pages, so memory does not grow with their number.
    /// Not bounded by the database timeout: it takes as long as the data needs.
    pub async fn import_embedded(
        &self,
        from: &rusqlite::Connection,
        skip_unstorable: bool,
    ) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        // Another importer (or a server creating its first workspace) waits, then sees data.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FIRST_WORKSPACE_LOCK])
            .await?;
        let held: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM workspaces) + (SELECT count(*) FROM users)
                      + (SELECT count(*) FROM console_accounts)",
                &[],
            )
            .await?
            .get(0);
        if held > 0 {
            return Err(StoreError::Setup(
                "the PostgreSQL database already holds workspaces, users or console accounts; \
                 import into an empty one (a server started on it creates a development \
                 workspace: import before starting any)"
                    .into(),
            ));
        }
        use rusqlite::OptionalExtension as _;
        // One snapshot of the embedded store for the whole copy.
        let snapshot = from.unchecked_transaction()?;
        let mut counts = Vec::new();
        macro_rules! copy {
            ($table:literal, $select:literal, $insert:literal, |$r:ident| [$($col:expr),* $(,)?]) => {{
                let insert = tx.prepare($insert).await?;
                let mut stmt = from.prepare($select)?;
                let mut rows = stmt.query([])?;
                let mut n = 0u64;
                while let Some($r) = rows.next()? {
                    tx.execute(&insert, &[$(&$col),*]).await?;
                    n += 1;
                }
                counts.push(($table, n));
            }};
        }
        copy!(
            "meta",
            "SELECT key, value FROM meta",
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            |r| [r.get::<_, String>(0)?, r.get::<_, String>(1)?]
        );
        copy!(
            "workspaces",
            "SELECT app_id, name, strict, require_signed_claims, allowed_origins, created_at
             FROM workspaces",
            "INSERT INTO workspaces (app_id, name, strict, require_signed_claims,
                 allowed_origins, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            |r| [
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ]
        );
        copy!(
            "keys",
            "SELECT id, app_id, secret, created_at, expires_at, label, created_by, last_used_at
             FROM keys",
            "INSERT INTO keys (id, app_id, secret, created_at, expires_at, label, created_by,
                 last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            |r| [
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<i64>>(7)?,
            ]
        );
        // Users, a page at a time in key order.
        let insert = tx
            .prepare(
                "INSERT INTO users (app_id, user_id, verified, method, key_id, verified_at,
                     signed_at, name, email, plan, mrr, signup_date, custom, unverified_claims,
                     first_seen, last_seen)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .await?;
        let mut page = from.prepare(
            "SELECT app_id, user_id, verified, method, key_id, verified_at, signed_at, name,
                 email, plan, mrr, signup_date, custom, unverified_claims, first_seen, last_seen
             FROM users WHERE (app_id, user_id) > (?1, ?2) ORDER BY app_id, user_id LIMIT 1000",
        )?;
        let (mut after, mut n) = ((String::new(), String::new()), 0u64);
        // Rows PostgreSQL would refuse (a NUL character, stored by versions that let it through):
        // named, or skipped and counted when asked.
        let mut refused: Vec<String> = Vec::new();
        loop {
            let mut rows = page.query(rusqlite::params![after.0, after.1])?;
            let mut last = None;
            while let Some(r) = rows.next()? {
                let (app, user): (String, String) = (r.get(0)?, r.get(1)?);
                let text: [(&str, Option<String>); 6] = [
                    ("method", r.get(3)?),
                    ("name", r.get(7)?),
                    ("email", r.get(8)?),
                    ("plan", r.get(9)?),
                    ("signup_date", r.get(11)?),
                    ("unverified_claims", r.get(13)?),
                ];
                let custom: String = r.get(12)?;
                // Plain text holds a NUL only raw; the JSON columns may hold one escaped.
                let is_json = |column: &str| matches!(column, "custom" | "unverified_claims");
                let unstorable = std::iter::once(("user_id", Some(user.clone())))
                    .chain(std::iter::once(("custom", Some(custom.clone()))))
                    .chain(text.iter().cloned())
                    .find(|(column, v)| {
                        v.as_deref().is_some_and(|v| {
                            v.contains('\0') || is_json(column) && json_text_has_nul(v)
                        })
                    })
                    .map(|(column, _)| column);
                if let Some(column) = unstorable {
                    refused.push(format!(
                        "workspace {app}, user {:?}: {column} holds a NUL character",
                        user
                    ));
                    last = Some((app, user));
                    continue;
                }
                tx.execute(
                    &insert,
                    &[
                        &app,
                        &user,
                        &r.get::<_, bool>(2)?,
                        &text[0].1,
                        &r.get::<_, Option<i64>>(4)?,
                        &r.get::<_, Option<i64>>(5)?,
                        &r.get::<_, Option<i64>>(6)?,
                        &text[1].1,
                        &text[2].1,
                        &text[3].1,
                        &r.get::<_, Option<f64>>(10)?,
                        &text[4].1,
                        &custom,
                        &text[5].1,
                        &r.get::<_, i64>(14)?,
                        &r.get::<_, i64>(15)?,
                    ],
                )
                .await?;
                n += 1;
                last = Some((app, user));
            }
            match last {
                Some(l) => after = l,
                None => break,
            }
        }
        if !refused.is_empty() && !skip_unstorable {
            let shown = refused.len().min(20);
            return Err(StoreError::Setup(format!(
                "{} stored user(s) cannot be stored in PostgreSQL, so nothing was copied:\n  {}{}\n\
                 fix or delete them in the embedded store (the console or the admin API), or copy \
                 everything else with --skip-unstorable",
                refused.len(),
                refused[..shown].join("\n  "),
                if refused.len() > shown { "\n  ..." } else { "" },
            )));
        }
        if !refused.is_empty() {
            counts.push((
                "users skipped (unstorable, --skip-unstorable)",
                refused.len() as u64,
            ));
        }
        counts.push(("users", n));
        copy!(
            "audit_log",
            "SELECT id, app_id, at, actor, action, detail FROM audit_log",
            "INSERT INTO audit_log (id, app_id, at, actor, action, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
            |r| [
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ]
        );
        copy!(
            "console_accounts",
            "SELECT id, email, password_phc, created_at FROM console_accounts",
            "INSERT INTO console_accounts (id, email, password_phc, created_at)
             VALUES ($1, $2, $3, $4)",
            |r| [
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ]
        );
        copy!(
            "console_members",
            "SELECT account_id, app_id, role FROM console_members",
            "INSERT INTO console_members (account_id, app_id, role) VALUES ($1, $2, $3)",
            |r| [
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?
            ]
        );
        copy!(
            "console_sessions",
            "SELECT token_sha256, account_id, created_at, last_seen FROM console_sessions",
            "INSERT INTO console_sessions (token_sha256, account_id, created_at, last_seen)
             VALUES ($1, $2, $3, $4)",
            |r| [
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ]
        );
        copy!(
            "call_counts",
            "SELECT app_id, minute, verified_seed, verified_claims, unverified, would_reject,
                 rejected FROM call_counts",
            "INSERT INTO call_counts (app_id, minute, verified_seed, verified_claims, unverified,
                 would_reject, rejected) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            |r| [
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ]
        );
        copy!(
            "recent_rejections",
            "SELECT id, app_id, at, code, enforced, key_id, origin, user_id
             FROM recent_rejections",
            "INSERT INTO recent_rejections (id, app_id, at, code, enforced, key_id, origin,
                 user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            |r| [
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ]
        );
        // Ids were copied as they were: new rows continue after them, and after any id the
        // embedded store ever gave (AUTOINCREMENT never reuses one; a retired key's id must
        // not come back, users and rejections still name it).
        for table in ["keys", "audit_log", "console_accounts", "recent_rejections"] {
            let given: i64 = from
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                         GREATEST((SELECT COALESCE(max(id), 0) FROM {table}), $1) + 1, false)"
                ),
                &[&given],
            )
            .await?;
        }
        drop(snapshot);
        // The instances must open every copied secret with the keys this import was given:
        // checked before the commit, so a wrong key file leaves the database empty.
        load_workspaces(&tx, &self.inner.hooks.keyring.get(), None).await?;
        config_changed(&tx).await?;
        tx.commit().await?;
        drop(client);
        self.reload().await?;
        Ok(counts)
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
                commit_batch(&inner.pool, &mut one, inner.op_timeout).await;
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
            c.query_one("SELECT 1", &[]).await?;
            Ok(())
        })
        .await
    }

    pub async fn reload(&self) -> Result<(), StoreError> {
        let i = &self.inner;
        bounded(i.op_timeout, reload(&i.pool, &i.hooks, &i.sync, true)).await
    }

    pub async fn workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        let ring = self.inner.hooks.keyring.get();
        self.with_client(async |c| load_workspaces(&*c, &ring, None).await)
            .await
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with_client(async |c| {
            let row = c
                .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    pub async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with_client(async |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn meta_set_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.with_client(async |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await?;
            let row = c
                .query_one("SELECT value FROM meta WHERE key = $1", &[&key])
                .await?;
            Ok(row.get(0))
        })
        .await
    }

    pub async fn create_workspace(
        &self,
        new: &NewWorkspace,
        actor: &str,
        now: i64,
    ) -> Result<NewKey, StoreError> {
        let ring = self.inner.hooks.keyring.get();
        let created =
            self.change(async |c| create_workspace(c, &ring, new, actor, now, false).await);
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
        let ring = self.inner.hooks.keyring.get();
        self.change(async |c| create_workspace(c, &ring, new, actor, now, true).await)
            .await
    }

    pub async fn update_workspace(
        &self,
        app_id: &str,
        patch: &WorkspacePatch,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        let ring = self.inner.hooks.keyring.get();
        self.change(async |c| update_workspace(c, &ring, app_id, patch, actor, now).await)
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
        let ring = self.inner.hooks.keyring.get();
        self.change(async |c| create_key(c, &ring, app_id, label, expires_at, actor, now).await)
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
        let ring = self.inner.hooks.keyring.get();
        self.change(async |c| roll_key(c, &ring, app_id, key_id, grace_secs, actor, now).await)
            .await
    }

    pub async fn retire_key(
        &self,
        app_id: &str,
        key_id: i64,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        let ring = self.inner.hooks.keyring.get();
        self.change(async |c| retire_key(c, &ring, app_id, key_id, actor, now).await)
            .await
    }

    pub async fn retire_old_keys(
        &self,
        app_id: &str,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        let ring = self.inner.hooks.keyring.get();
        self.change(async |c| retire_old_keys(c, &ring, app_id, actor, now).await)
            .await
    }

    pub async fn get_user(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        self.with_client(async |c| {
            let sql =
                format!("SELECT {USER_COLUMNS} FROM users WHERE app_id = $1 AND user_id = $2");
            let stmt = c.prepare_cached(&sql).await?;
            let row = c.query_opt(&stmt, &[&app_id, &user_id]).await?;
            Ok(row.as_ref().map(user_from_row))
        })
        .await
    }

    pub async fn list_users(
        &self,
        app_id: &str,
        q: &UserQuery,
    ) -> Result<Vec<UserRecord>, StoreError> {
        // ILIKE on a "C"-collated column folds ASCII case only: the same matches as SQLite's
        // LIKE. The id order is byte order on both backends, so cursors page identically.
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE app_id = $1
             AND ($2::boolean IS NULL OR verified = $2) AND user_id > $3
             AND ($4::text IS NULL OR user_id ILIKE $4 ESCAPE '\\')
             ORDER BY user_id LIMIT $5"
        );
        let after = q.after.as_deref().unwrap_or("");
        let pattern = q.search.as_deref().map(contains_pattern);
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        self.with_client(async |c| {
            let stmt = c.prepare_cached(&sql).await?;
            let rows = c
                .query(&stmt, &[&app_id, &q.verified, &after, &pattern, &limit])
                .await?;
            Ok(rows.iter().map(user_from_row).collect())
        })
        .await
    }

    pub async fn delete_user(
        &self,
        app_id: &str,
        user_id: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with_client(async |c| {
            let tx = c.transaction().await?;
            let n = tx
                .execute(
                    "DELETE FROM users WHERE app_id = $1 AND user_id = $2",
                    &[&app_id, &user_id],
                )
                .await?;
            if n > 0 {
                audit(
                    &tx,
                    app_id,
                    actor,
                    "user.delete",
                    json!({"user_id": user_id}),
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn audit_log(
        &self,
        app_id: &str,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_client(async |c| {
            let rows = c
                .query(
                    "SELECT at, actor, action, detail FROM audit_log WHERE app_id = $1
                     ORDER BY id DESC LIMIT $2",
                    &[&app_id, &limit],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| AuditEntry {
                    at: r.get(0),
                    actor: r.get(1),
                    action: r.get(2),
                    detail: serde_json::from_str(r.get::<_, &str>(3)).unwrap_or(Json::Null),
                })
                .collect())
        })
        .await
    }

    /// Re-seals, in one transaction, every secret not sealed with the active master key (and
    /// seals any stored in the clear); the other instances reload through the version bump.
    pub async fn rewrap_secrets(&self) -> Result<u64, StoreError> {
        let ring = self.inner.hooks.keyring.get();
        let changed = self
            .with_client(async |c| rewrap_secrets(c, &ring).await)
            .await?;
        self.reload().await?;
        Ok(changed)
    }

    pub async fn seal_counts(&self) -> Result<SealCounts, StoreError> {
        self.with_client(async |c| {
            let rows = c.query("SELECT secret FROM keys", &[]).await?;
            let mut counts = SealCounts::default();
            for r in &rows {
                let id = sealed_key_id(r.get(0)).unwrap_or("(not sealed)");
                *counts.by_key.entry(id.to_string()).or_default() += 1;
            }
            Ok(counts)
        })
        .await
    }

    // -----------------------------------------------------------------------------------------
    // Console: accounts, memberships, sessions, call counts, recent rejections

    pub async fn create_account(
        &self,
        email: &str,
        password_phc: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let email = email.to_lowercase();
        self.with_client(async |c| {
            let row = c
                .query_opt(
                    "INSERT INTO console_accounts (email, password_phc, created_at)
                     VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING RETURNING id",
                    &[&email, &password_phc, &now],
                )
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
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
        let email = email.to_lowercase();
        self.with_client(async |c| {
            let tx = c.transaction().await?;
            // FOR SHARE: the workspace cannot vanish before the membership commits.
            tx.query_opt(
                "SELECT 1 FROM workspaces WHERE app_id = $1 FOR SHARE",
                &[&app_id],
            )
            .await?
            .ok_or(StoreError::WorkspaceNotFound)?;
            let Some(account) = tx
                .query_opt(
                    "SELECT id FROM console_accounts WHERE email = $1",
                    &[&email],
                )
                .await?
            else {
                return Ok(false);
            };
            let account_id: i64 = account.get(0);
            tx.execute(
                "INSERT INTO console_members (account_id, app_id, role) VALUES ($1, $2, $3)
                 ON CONFLICT (account_id, app_id) DO UPDATE SET role = excluded.role",
                &[&account_id, &app_id, &role.as_str()],
            )
            .await?;
            audit(
                &tx,
                app_id,
                actor,
                "member.set",
                json!({"email": email, "role": role.as_str()}),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    pub async fn change_account(
        &self,
        email: &str,
        change: &AccountChange,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let email = email.to_lowercase();
        self.with_client(async |c| {
            let tx = c.transaction().await?;
            let Some(account) = tx
                .query_opt(
                    "SELECT id FROM console_accounts WHERE email = $1 FOR UPDATE",
                    &[&email],
                )
                .await?
            else {
                return Ok(false);
            };
            let id: i64 = account.get(0);
            match change {
                AccountChange::RemoveFrom(app_id) => {
                    let n = tx
                        .execute(
                            "DELETE FROM console_members WHERE account_id = $1 AND app_id = $2",
                            &[&id, app_id],
                        )
                        .await?;
                    if n == 0 {
                        return Ok(false);
                    }
                    let detail = json!({"email": email});
                    audit(&tx, app_id, actor, "member.remove", detail, now).await?;
                }
                AccountChange::Delete => {
                    let apps = tx
                        .query(
                            "SELECT app_id FROM console_members WHERE account_id = $1 ORDER BY app_id",
                            &[&id],
                        )
                        .await?;
                    for row in &apps {
                        let app_id: String = row.get(0);
                        let detail = json!({"email": email, "account_deleted": true});
                        audit(&tx, &app_id, actor, "member.remove", detail, now).await?;
                    }
                    // Memberships and sessions go with it (ON DELETE CASCADE).
                    tx.execute("DELETE FROM console_accounts WHERE id = $1", &[&id])
                        .await?;
                }
                AccountChange::SetPassword(phc) => {
                    tx.execute(
                        "UPDATE console_accounts SET password_phc = $1 WHERE id = $2",
                        &[phc, &id],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM console_sessions WHERE account_id = $1",
                        &[&id],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    pub async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.with_client(async |c| {
            // One snapshot for both reads, so a membership never names an account not listed.
            let tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let accounts = tx
                .query(
                    "SELECT id, email, created_at FROM console_accounts ORDER BY email",
                    &[],
                )
                .await?;
            let members = tx
                .query(
                    "SELECT account_id, app_id, role FROM console_members ORDER BY app_id",
                    &[],
                )
                .await?;
            tx.commit().await?;
            let mut by_account: HashMap<i64, Vec<Membership>> = HashMap::new();
            for m in &members {
                by_account
                    .entry(m.get(0))
                    .or_default()
                    .push(membership(m.get(1), m.get(2)));
            }
            Ok(accounts
                .iter()
                .map(|a| {
                    let id: i64 = a.get(0);
                    Account {
                        id,
                        email: a.get(1),
                        created_at: a.get(2),
                        memberships: by_account.remove(&id).unwrap_or_default(),
                    }
                })
                .collect())
        })
        .await
    }

    pub async fn account_login(&self, email: &str) -> Result<Option<AccountLogin>, StoreError> {
        let email = email.to_lowercase();
        self.with_client(async |c| {
            let row = c
                .query_opt(
                    "SELECT id, password_phc FROM console_accounts WHERE email = $1",
                    &[&email],
                )
                .await?;
            Ok(row.map(|r| AccountLogin {
                id: r.get(0),
                password_phc: r.get(1),
            }))
        })
        .await
    }

    pub async fn create_session(
        &self,
        token_sha256: [u8; 32],
        account_id: i64,
        rules: SessionRules,
        now: i64,
    ) -> Result<(), StoreError> {
        let idle_before = now.saturating_sub(rules.idle_secs);
        let absolute_before = now.saturating_sub(rules.absolute_secs);
        self.with_client(async |c| {
            let tx = c.transaction().await?;
            tx.execute(
                "DELETE FROM console_sessions WHERE last_seen <= $1 OR created_at <= $2",
                &[&idle_before, &absolute_before],
            )
            .await?;
            tx.execute(
                "INSERT INTO console_sessions (token_sha256, account_id, created_at, last_seen)
                 VALUES ($1, $2, $3, $3)",
                &[&&token_sha256[..], &account_id, &now],
            )
            .await?;
            tx.commit().await?;
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
        let token = &token_sha256[..];
        self.with_client(async |c| {
            let tx = c.transaction().await?;
            // Locked: a logout or expiry on another instance is not undone by this request.
            let Some(row) = tx
                .query_opt(
                    "SELECT account_id, created_at, last_seen FROM console_sessions
                     WHERE token_sha256 = $1 FOR UPDATE",
                    &[&token],
                )
                .await?
            else {
                return Ok(None);
            };
            let (account_id, created_at, last_seen): (i64, i64, i64) =
                (row.get(0), row.get(1), row.get(2));
            let idle_over = now.saturating_sub(last_seen) >= rules.idle_secs;
            let absolute_over = now.saturating_sub(created_at) >= rules.absolute_secs;
            if idle_over || absolute_over {
                tx.execute(
                    "DELETE FROM console_sessions WHERE token_sha256 = $1",
                    &[&token],
                )
                .await?;
                tx.commit().await?;
                return Ok(None);
            }
            if now > last_seen {
                tx.execute(
                    "UPDATE console_sessions SET last_seen = $2 WHERE token_sha256 = $1",
                    &[&token, &now],
                )
                .await?;
            }
            let account = tx
                .query_opt(
                    "SELECT email, created_at FROM console_accounts WHERE id = $1",
                    &[&account_id],
                )
                .await?;
            let members = tx
                .query(
                    "SELECT app_id, role FROM console_members WHERE account_id = $1
                     ORDER BY app_id",
                    &[&account_id],
                )
                .await?;
            tx.commit().await?;
            Ok(account.map(|a| Account {
                id: account_id,
                email: a.get(0),
                created_at: a.get(1),
                memberships: members
                    .iter()
                    .map(|m| membership(m.get(0), m.get(1)))
                    .collect(),
            }))
        })
        .await
    }

    pub async fn delete_session(&self, token_sha256: [u8; 32]) -> Result<(), StoreError> {
        self.with_client(async |c| {
            c.execute(
                "DELETE FROM console_sessions WHERE token_sha256 = $1",
                &[&&token_sha256[..]],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn add_call_stats(
        &self,
        counts: Vec<CountsDelta>,
        rejections: Vec<RejectionEntry>,
    ) -> Result<(), StoreError> {
        if counts.is_empty() && rejections.is_empty() {
            return Ok(());
        }
        self.with_client(async |c| add_call_stats(c, &counts, &rejections).await)
            .await
    }

    pub async fn call_counts(
        &self,
        app_id: &str,
        since_minute: i64,
    ) -> Result<Vec<(i64, CallCounts)>, StoreError> {
        self.with_client(async |c| {
            let rows = c
                .query(
                    "SELECT minute, verified_seed, verified_claims, unverified, would_reject,
                         rejected
                     FROM call_counts WHERE app_id = $1 AND minute >= $2 ORDER BY minute",
                    &[&app_id, &since_minute],
                )
                .await?;
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        r.get(0),
                        CallCounts {
                            verified_seed: n(r.get(1)),
                            verified_claims: n(r.get(2)),
                            unverified: n(r.get(3)),
                            would_reject: n(r.get(4)),
                            rejected: n(r.get(5)),
                        },
                    )
                })
                .collect())
        })
        .await
    }

    pub async fn key_last_used(&self, app_id: &str) -> Result<HashMap<i64, i64>, StoreError> {
        self.with_client(async |c| {
            let rows = c
                .query(
                    "SELECT id, last_used_at FROM keys
                     WHERE app_id = $1 AND last_used_at IS NOT NULL",
                    &[&app_id],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
        .await
    }

    pub async fn recent_rejections(&self, app_id: &str) -> Result<Vec<RejectionEntry>, StoreError> {
        let limit = MAX_RECENT_REJECTIONS as i64;
        self.with_client(async |c| {
            let rows = c
                .query(
                    "SELECT at, code, enforced, key_id, origin, user_id FROM recent_rejections
                     WHERE app_id = $1 ORDER BY id DESC LIMIT $2",
                    &[&app_id, &limit],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| RejectionEntry {
                    app_id: app_id.to_string(),
                    at: r.get(0),
                    code: r.get(1),
                    enforced: r.get(2),
                    key_id: r.get(3),
                    origin: r.get(4),
                    user_id: r.get(5),
                })
                .collect())
        })
        .await
    }

    pub async fn append_audit(
        &self,
        app_id: &str,
        actor: &str,
        action: &str,
        detail: Json,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with_client(async |c| {
            let tx = c.transaction().await?;
            audit(&tx, app_id, actor, action, detail, now).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

/// A membership row; an unreadable role fails closed: look only (as on SQLite).
fn membership(app_id: String, role: &str) -> Membership {
    Membership {
        app_id,
        role: Role::parse(role).unwrap_or(Role::Viewer),
    }
}

/// Re-seals every key row that the active master key did not seal, in one transaction. The
/// workspace rows are locked first, in app id order, as every key change locks its workspace
/// before its keys: a roll on another instance waits for the rewrap (or the rewrap for it)
/// instead of writing a secret the rewrap then misses or deadlocking with it.
async fn rewrap_secrets(c: &mut Object, ring: &Keyring) -> Result<u64, StoreError> {
    let tx = c.transaction().await?;
    tx.execute("SELECT 1 FROM workspaces ORDER BY app_id FOR UPDATE", &[])
        .await?;
    let rows = tx
        .query(
            "SELECT id, app_id, secret FROM keys ORDER BY id FOR UPDATE",
            &[],
        )
        .await?;
    let update = tx
        .prepare("UPDATE keys SET secret = $2 WHERE id = $1")
        .await?;
    let mut changed = 0u64;
    for r in &rows {
        let (id, app_id, stored): (i64, &str, &str) = (r.get(0), r.get(1), r.get(2));
        let resealed = rewrap_secret(ring, app_id, id, stored)?;
        if let Some(sealed) = resealed {
            tx.execute(&update, &[&id, &sealed]).await?;
            changed += 1;
        }
    }
    if changed > 0 {
        // The secrets are the same, but instances holding a stale copy of the rows should
        // reload before anyone drops the old master key.
        config_changed(&tx).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// Adds the counts (several instances flush into the same rows, so never overwrite) and
/// appends the rejections, trimming each workspace's log to the newest
/// [`MAX_RECENT_REJECTIONS`], all in one transaction.
async fn add_call_stats(
    c: &mut Object,
    counts: &[CountsDelta],
    rejections: &[RejectionEntry],
) -> Result<(), StoreError> {
    let tx = c.transaction().await?;
    if !counts.is_empty() {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut app = Vec::with_capacity(counts.len());
        let mut minute = Vec::with_capacity(counts.len());
        let mut cols: [Vec<i64>; 5] = Default::default();
        for d in counts {
            app.push(d.app_id.as_str());
            minute.push(d.minute);
            let c = &d.counts;
            for (col, v) in cols.iter_mut().zip([
                c.verified_seed,
                c.verified_claims,
                c.unverified,
                c.would_reject,
                c.rejected,
            ]) {
                col.push(n(v));
            }
        }
        // Summed per bucket first (one statement cannot update a row twice), and in key order
        // so that two instances flushing at once lock the same rows in the same order.
        let stmt = tx
            .prepare_cached(
                "INSERT INTO call_counts AS cc (app_id, minute, verified_seed, verified_claims,
                     unverified, would_reject, rejected)
                 SELECT app_id, minute, sum(vs)::bigint, sum(vc)::bigint, sum(u)::bigint,
                     sum(wr)::bigint, sum(r)::bigint
                 FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[],
                     $6::int8[], $7::int8[]) AS d(app_id, minute, vs, vc, u, wr, r)
                 GROUP BY app_id, minute
                 ORDER BY app_id, minute
                 ON CONFLICT (app_id, minute) DO UPDATE SET
                     verified_seed = cc.verified_seed + excluded.verified_seed,
                     verified_claims = cc.verified_claims + excluded.verified_claims,
                     unverified = cc.unverified + excluded.unverified,
                     would_reject = cc.would_reject + excluded.would_reject,
                     rejected = cc.rejected + excluded.rejected",
            )
            .await?;
        tx.execute(
            &stmt,
            &[
                &app, &minute, &cols[0], &cols[1], &cols[2], &cols[3], &cols[4],
            ],
        )
        .await?;
        if let Some(newest) = counts.iter().map(|d| d.minute).max() {
            tx.execute(
                "DELETE FROM call_counts WHERE minute < $1",
                &[&(newest - COUNTS_KEEP_MINUTES)],
            )
            .await?;
        }
    }
    if !rejections.is_empty() {
        let mut apps: Vec<&str> = rejections.iter().map(|r| r.app_id.as_str()).collect();
        apps.sort_unstable();
        apps.dedup();
        // One writer per workspace log at a time (locks taken in app id order): without it,
        // two instances could each trim to 100 before seeing the other's rows.
        for app in &apps {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&REJECTIONS_LOCK, app],
            )
            .await?;
        }
        let mut cols = RejectionColumns::default();
        for r in rejections {
            cols.app_id.push(&r.app_id);
            cols.at.push(r.at);
            cols.code.push(&r.code);
            cols.enforced.push(r.enforced);
            cols.key_id.push(r.key_id);
            cols.origin.push(r.origin.as_deref());
            cols.user_id.push(r.user_id.as_deref());
        }
        // WITH ORDINALITY keeps the flush's order, so ids (the log's order) follow it.
        tx.execute(
            "INSERT INTO recent_rejections (app_id, at, code, enforced, key_id, origin, user_id)
             SELECT app_id, at, code, enforced, key_id, origin, user_id
             FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::bool[], $5::int8[],
                 $6::text[], $7::text[])
                 WITH ORDINALITY AS r(app_id, at, code, enforced, key_id, origin, user_id, n)
             ORDER BY n",
            &[
                &cols.app_id,
                &cols.at,
                &cols.code,
                &cols.enforced,
                &cols.key_id,
                &cols.origin,
                &cols.user_id,
            ],
        )
        .await?;
        let keep = MAX_RECENT_REJECTIONS as i64;
        tx.execute(
            "DELETE FROM recent_rejections r USING UNNEST($1::text[]) AS a(app_id)
             WHERE r.app_id = a.app_id AND r.id <= (
                 SELECT id FROM recent_rejections WHERE app_id = a.app_id
                 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            &[&apps, &keep],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[derive(Default)]
struct RejectionColumns<'a> {
    app_id: Vec<&'a str>,
    at: Vec<i64>,
    code: Vec<&'a str>,
    enforced: Vec<bool>,
    key_id: Vec<Option<i64>>,
    origin: Vec<Option<&'a str>>,
    user_id: Vec<Option<&'a str>>,
}

/// `fut`, or an error once `limit` has passed (a database that stopped answering).
async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
        Err(StoreError::Postgres(format!(
            "the database did not answer within {limit:?}"
        )))
    })
}

// ---------------------------------------------------------------------------------------------
// Migrations

async fn migrate(pool: &Pool, ring: &Keyring) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Held until COMMIT: a second instance starting now waits here, then finds the work done.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found: i64 = tx
        .query_one(
            "SELECT COALESCE(max(version), 0)::bigint FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let known = MIGRATIONS.len();
    let version = usize::try_from(found)
        .ok()
        .filter(|&v| v <= known)
        .ok_or(StoreError::UnknownSchema { found, known })?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.batch_execute(sql).await?;
        let n = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&n])
            .await?;
        tracing::info!(version = n, "postgres schema migrated");
    }
    // Under the same lock: instances starting together upgrade the stored secrets once.
    upgrade_secrets(&tx, ring).await?;
    tx.commit().await?;
    Ok(())
}

/// The one-time upgrade of stored secrets ([`upgrade_secret`]) before anything reads them: run
/// while [`SECRETS_BOUND_META`] is absent (under the migration lock, so once), then recorded in
/// the same transaction; the other instances are told to reload. Afterwards a secret in the clear
/// is refused, never adopted.
async fn upgrade_secrets(tx: &Transaction<'_>, ring: &Keyring) -> Result<(), StoreError> {
    let done = tx
        .query_opt("SELECT 1 FROM meta WHERE key = $1", &[&SECRETS_BOUND_META])
        .await?;
    if done.is_some() {
        return Ok(());
    }
    let rows = tx
        .query(
            "SELECT id, app_id, secret FROM keys ORDER BY id FOR UPDATE",
            &[],
        )
        .await?;
    let update = tx
        .prepare("UPDATE keys SET secret = $2 WHERE id = $1")
        .await?;
    let rows: Vec<(i64, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let updates = super::upgrade_secrets(ring, &rows)?;
    let changed = updates.len();
    for (id, sealed) in &updates {
        tx.execute(&update, &[id, sealed]).await?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ($1, '1') ON CONFLICT (key) DO NOTHING",
        &[&SECRETS_BOUND_META],
    )
    .await?;
    if changed > 0 {
        config_changed(tx).await?;
        tracing::info!(
            secrets = changed,
            "stored secrets sealed and bound to their key rows (one-time upgrade)"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Keeping the registry current

/// Reloads the registry: always when `force`, else only if `config_version` moved since the
/// last load. The version and the workspaces come from one snapshot, so the version recorded is
/// exactly the one the registry reflects.
async fn reload(
    pool: &Pool,
    hooks: &Hooks,
    sync: &ConfigSync,
    force: bool,
) -> Result<(), StoreError> {
    let mut seen = sync.seen.lock().await;
    let mut client = pool.get().await?;
    if !force {
        let stmt = client
            .prepare_cached("SELECT version FROM config_version")
            .await?;
        let version: i64 = client.query_one(&stmt, &[]).await?.get(0);
        if *seen == Some(version) {
            return Ok(());
        }
    }
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let version: i64 = tx
        .query_one("SELECT version FROM config_version", &[])
        .await?
        .get(0);
    let workspaces = match load_workspaces(&tx, &hooks.keyring.get(), None).await {
        Ok(w) => w,
        Err(e) => {
            super::reload_failed(&hooks.registry, &e);
            // Forget the version, so the poll retries even if nothing changes meanwhile (a
            // key file mended after a forced reload failed).
            *seen = None;
            return Err(e);
        }
    };
    tx.commit().await?;
    if !force {
        tracing::info!(
            workspaces = workspaces.len(),
            version,
            "workspaces reloaded"
        );
    }
    hooks.registry.replace(workspaces);
    *seen = Some(version);
    Ok(())
}

/// LISTENs on a connection of its own and reloads on every notification; reconnects (with
/// backoff) when the connection is lost and then reloads everything, since notifications sent
/// while it was away are gone.
async fn listen(
    (cfg, tls): (
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    pool: Pool,
    hooks: Hooks,
    sync: Arc<ConfigSync>,
    op_timeout: Duration,
    mut stop: watch::Receiver<()>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = async {
            let (client, mut conn) =
                bounded(op_timeout, async { Ok(cfg.connect(tls.clone()).await?) }).await?;
            let (notify_tx, mut notify_rx) = mpsc::unbounded_channel::<()>();
            // The connection must be polled for the client to work at all; poll_message is
            // what hands out notifications (a plain `conn.await` would drop them).
            let driver = tokio::spawn(async move {
                loop {
                    match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                        Some(Ok(AsyncMessage::Notification(_))) => {
                            if notify_tx.send(()).is_err() {
                                break;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            tracing::warn!(error = %describe(&e), "listener connection lost");
                            break;
                        }
                        None => break,
                    }
                }
            });
            let listening = async {
                bounded(op_timeout, async {
                    Ok(client.batch_execute(&format!("LISTEN {CHANNEL}")).await?)
                })
                .await?;
                // Whatever changed while nobody listened.
                bounded(op_timeout, reload(&pool, &hooks, &sync, true)).await?;
                Ok::<_, StoreError>(())
            }
            .await;
            if let Err(e) = listening {
                driver.abort();
                return Err(e);
            }
            tracing::debug!("listening for workspace changes");
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
            backoff = Duration::from_millis(100);
            while notify_rx.recv().await.is_some() {
                // One reload covers every notification already queued.
                while notify_rx.try_recv().is_ok() {}
                // A failed reload is logged by `reload_failed` or retried by the poll.
                if let Err(e) = bounded(op_timeout, reload(&pool, &hooks, &sync, false)).await {
                    tracing::debug!(error = %e, "reloading workspaces after a notification failed");
                }
            }
            drop(client);
            Ok::<_, StoreError>(())
        };
        tokio::select! {
            r = session => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, retry_in = ?backoff, "workspace listener down");
                }
            }
            _ = stop.changed() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The safety net: compares `config_version` every second and reloads when it moved.
async fn poll_version(
    pool: Pool,
    hooks: Hooks,
    sync: Arc<ConfigSync>,
    op_timeout: Duration,
    mut stop: watch::Receiver<()>,
) {
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = bounded(op_timeout, reload(&pool, &hooks, &sync, false)).await {
            tracing::debug!(error = %e, "config version poll failed");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Workspaces and keys

async fn load_workspaces(
    c: &impl GenericClient,
    ring: &Keyring,
    app_id: Option<&str>,
) -> Result<Vec<Workspace>, StoreError> {
    let mut keys: HashMap<String, Vec<Key>> = HashMap::new();
    let rows = c
        .query(
            "SELECT app_id, id, secret, created_at, expires_at, label, created_by, last_used_at
             FROM keys WHERE ($1::text IS NULL OR app_id = $1) ORDER BY id DESC",
            &[&app_id],
        )
        .await?;
    for r in &rows {
        let app: String = r.get(0);
        let secret = open_secret(ring, &app, r.get(1), r.get(2))?;
        keys.entry(app).or_default().push(Key {
            id: r.get(1),
            secret,
            created_at: r.get(3),
            expires_at: r.get(4),
            label: r.get(5),
            created_by: r.get(6),
            last_used_at: r.get(7),
        });
    }
    let rows = c
        .query(
            "SELECT app_id, name, strict, require_signed_claims, allowed_origins FROM workspaces
             WHERE ($1::text IS NULL OR app_id = $1) ORDER BY app_id",
            &[&app_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let app_id: String = r.get(0);
            let keys = keys.remove(&app_id).unwrap_or_default();
            Workspace::new(
                app_id,
                r.get(1),
                // An unreadable setting fails closed: enforce.
                StrictMode::parse(r.get(2)).unwrap_or(StrictMode::Enforce),
                r.get(3),
                serde_json::from_str(r.get(4)).unwrap_or_default(),
                keys,
            )
        })
        .collect())
}

async fn get_workspace(
    c: &impl GenericClient,
    ring: &Keyring,
    app_id: &str,
) -> Result<Workspace, StoreError> {
    load_workspaces(c, ring, Some(app_id))
        .await?
        .pop()
        .ok_or(StoreError::WorkspaceNotFound)
}

/// Locks the workspace row until COMMIT: every key change of this workspace, from any instance
/// or the CLI, waits here, so the keys it reads next cannot change before it commits.
async fn lock_workspace(tx: &Transaction<'_>, app_id: &str) -> Result<(), StoreError> {
    tx.query_opt(
        "SELECT 1 FROM workspaces WHERE app_id = $1 FOR UPDATE",
        &[&app_id],
    )
    .await?
    .map(|_| ())
    .ok_or(StoreError::WorkspaceNotFound)
}

/// Tells every instance that workspaces changed; both take effect at COMMIT (and only then).
async fn config_changed(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute(
        "WITH v AS (UPDATE config_version SET version = version + 1 RETURNING version)
         SELECT pg_notify($1, version::text) FROM v",
        &[&CHANNEL],
    )
    .await?;
    Ok(())
}

async fn audit(
    tx: &Transaction<'_>,
    app_id: &str,
    actor: &str,
    action: &str,
    detail: Json,
    now: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit_log (app_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&app_id, &now, &actor, &action, &detail.to_string()],
    )
    .await?;
    Ok(())
}

/// Forgets keys whose grace period is over (their secrets no longer verify anything).
async fn purge_expired(tx: &Transaction<'_>, app_id: &str, now: i64) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM keys WHERE app_id = $1 AND expires_at IS NOT NULL AND expires_at <= $2",
        &[&app_id, &now],
    )
    .await?;
    Ok(())
}

async fn live_key_ids(
    tx: &Transaction<'_>,
    app_id: &str,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let rows = tx
        .query(
            "SELECT id FROM keys WHERE app_id = $1 AND (expires_at IS NULL OR expires_at > $2)
             ORDER BY id DESC",
            &[&app_id, &now],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

// Every column of a key row is one argument; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
async fn insert_key(
    tx: &Transaction<'_>,
    ring: &Keyring,
    app_id: &str,
    label: &str,
    secret: &SecretKey,
    expires_at: Option<i64>,
    actor: &str,
    now: i64,
) -> Result<i64, StoreError> {
    // The sealed secret is bound to its row's id, known once the row exists.
    let id: i64 = tx
        .query_one(
            "INSERT INTO keys (app_id, secret, created_at, expires_at, label, created_by)
             VALUES ($1, '', $2, $3, $4, $5) RETURNING id",
            &[&app_id, &now, &expires_at, &label, &actor],
        )
        .await?
        .get(0);
    tx.execute(
        "UPDATE keys SET secret = $2 WHERE id = $1",
        &[&id, &seal_secret(ring, app_id, id, secret)],
    )
    .await?;
    Ok(id)
}

fn origins_json(origins: &[String]) -> String {
    serde_json::to_string(origins).unwrap_or_else(|_| "[]".into())
}

async fn create_workspace(
    c: &mut Object,
    ring: &Keyring,
    new: &NewWorkspace,
    actor: &str,
    now: i64,
    only_if_none: bool,
) -> Result<Option<NewKey>, StoreError> {
    let app_id = random_token("app_", 12);
    let secret = generate_secret();
    let tx = c.transaction().await?;
    if only_if_none {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FIRST_WORKSPACE_LOCK])
            .await?;
        if tx
            .query_opt("SELECT 1 FROM workspaces LIMIT 1", &[])
            .await?
            .is_some()
        {
            return Ok(None);
        }
    }
    tx.execute(
        "INSERT INTO workspaces (app_id, name, strict, require_signed_claims, allowed_origins,
             created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &app_id,
            &new.name,
            &new.strict.as_str(),
            &new.require_signed_claims,
            &origins_json(&new.allowed_origins),
            &now,
        ],
    )
    .await?;
    let key_id = insert_key(&tx, ring, &app_id, "default", &secret, None, actor, now).await?;
    audit(
        &tx,
        &app_id,
        actor,
        "workspace.create",
        json!({"name": new.name, "strict": new.strict.as_str(),
               "require_signed_claims": new.require_signed_claims,
               "allowed_origins": new.allowed_origins, "key_id": key_id}),
        now,
    )
    .await?;
    config_changed(&tx).await?;
    tx.commit().await?;
    Ok(Some(NewKey {
        workspace: get_workspace(&*c, ring, &app_id).await?,
        key_id,
        secret,
        old_key_expires_at: None,
    }))
}

async fn update_workspace(
    c: &mut Object,
    ring: &Keyring,
    app_id: &str,
    patch: &WorkspacePatch,
    actor: &str,
    now: i64,
) -> Result<Workspace, StoreError> {
    let tx = c.transaction().await?;
    lock_workspace(&tx, app_id).await?;
    let mut changed = serde_json::Map::new();
    if let Some(name) = &patch.name {
        tx.execute(
            "UPDATE workspaces SET name = $2 WHERE app_id = $1",
            &[&app_id, name],
        )
        .await?;
        changed.insert("name".into(), name.clone().into());
    }
    if let Some(strict) = patch.strict {
        tx.execute(
            "UPDATE workspaces SET strict = $2 WHERE app_id = $1",
            &[&app_id, &strict.as_str()],
        )
        .await?;
        changed.insert("strict".into(), strict.as_str().into());
    }
    if let Some(required) = patch.require_signed_claims {
        tx.execute(
            "UPDATE workspaces SET require_signed_claims = $2 WHERE app_id = $1",
            &[&app_id, &required],
        )
        .await?;
        changed.insert("require_signed_claims".into(), required.into());
    }
    if let Some(origins) = &patch.allowed_origins {
        tx.execute(
            "UPDATE workspaces SET allowed_origins = $2 WHERE app_id = $1",
            &[&app_id, &origins_json(origins)],
        )
        .await?;
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
        )
        .await?;
        config_changed(&tx).await?;
    }
    tx.commit().await?;
    get_workspace(&*c, ring, app_id).await
}

async fn create_key(
    c: &mut Object,
    ring: &Keyring,
    app_id: &str,
    label: &str,
    expires_at: Option<i64>,
    actor: &str,
    now: i64,
) -> Result<NewKey, StoreError> {
    let secret = generate_secret();
    let tx = c.transaction().await?;
    lock_workspace(&tx, app_id).await?;
    purge_expired(&tx, app_id, now).await?;
    check_new_key(
        label,
        expires_at,
        live_key_ids(&tx, app_id, now).await?.len(),
        now,
    )?;
    let key_id = insert_key(&tx, ring, app_id, label, &secret, expires_at, actor, now).await?;
    audit(
        &tx,
        app_id,
        actor,
        "key.create",
        json!({"key_id": key_id, "label": label, "expires_at": expires_at}),
        now,
    )
    .await?;
    config_changed(&tx).await?;
    tx.commit().await?;
    Ok(NewKey {
        workspace: get_workspace(&*c, ring, app_id).await?,
        key_id,
        secret,
        old_key_expires_at: None,
    })
}

async fn roll_key(
    c: &mut Object,
    ring: &Keyring,
    app_id: &str,
    key_id: Option<i64>,
    grace_secs: i64,
    actor: &str,
    now: i64,
) -> Result<NewKey, StoreError> {
    let secret = generate_secret();
    let tx = c.transaction().await?;
    lock_workspace(&tx, app_id).await?;
    purge_expired(&tx, app_id, now).await?;
    let live = live_key_ids(&tx, app_id, now).await?;
    let old_id = key_to_roll(&live, key_id, grace_secs)?;
    let row = tx
        .query_one(
            "SELECT label, expires_at FROM keys WHERE id = $1",
            &[&old_id],
        )
        .await?;
    let (label, current_expiry): (String, Option<i64>) = (row.get(0), row.get(1));
    let until = rolled_expiry(current_expiry, now, grace_secs);
    tx.execute(
        "UPDATE keys SET expires_at = $2 WHERE id = $1",
        &[&old_id, &until],
    )
    .await?;
    let new_id = insert_key(&tx, ring, app_id, &label, &secret, None, actor, now).await?;
    purge_expired(&tx, app_id, now).await?;
    audit(
        &tx,
        app_id,
        actor,
        "key.roll",
        json!({"key_id": old_id, "new_key_id": new_id, "label": label,
               "old_key_expires_at": until, "grace_seconds": grace_secs.max(0)}),
        now,
    )
    .await?;
    config_changed(&tx).await?;
    tx.commit().await?;
    Ok(NewKey {
        workspace: get_workspace(&*c, ring, app_id).await?,
        key_id: new_id,
        secret,
        old_key_expires_at: Some(until),
    })
}

async fn retire_key(
    c: &mut Object,
    ring: &Keyring,
    app_id: &str,
    key_id: i64,
    actor: &str,
    now: i64,
) -> Result<Workspace, StoreError> {
    let tx = c.transaction().await?;
    lock_workspace(&tx, app_id).await?;
    purge_expired(&tx, app_id, now).await?;
    let live = live_key_ids(&tx, app_id, now).await?;
    check_retire(&live, key_id)?;
    tx.execute(
        "DELETE FROM keys WHERE app_id = $1 AND id = $2",
        &[&app_id, &key_id],
    )
    .await?;
    audit(
        &tx,
        app_id,
        actor,
        "key.retire",
        json!({"key_id": key_id}),
        now,
    )
    .await?;
    config_changed(&tx).await?;
    tx.commit().await?;
    get_workspace(&*c, ring, app_id).await
}

async fn retire_old_keys(
    c: &mut Object,
    ring: &Keyring,
    app_id: &str,
    actor: &str,
    now: i64,
) -> Result<Workspace, StoreError> {
    let tx = c.transaction().await?;
    lock_workspace(&tx, app_id).await?;
    purge_expired(&tx, app_id, now).await?;
    let live = live_key_ids(&tx, app_id, now).await?;
    if let Some((newest, older)) = live.split_first()
        && !older.is_empty()
    {
        tx.execute(
            "DELETE FROM keys WHERE app_id = $1 AND id <> $2",
            &[&app_id, newest],
        )
        .await?;
        audit(
            &tx,
            app_id,
            actor,
            "key.retire_old",
            json!({"kept_key_id": newest, "retired_key_ids": older}),
            now,
        )
        .await?;
        config_changed(&tx).await?;
    }
    tx.commit().await?;
    get_workspace(&*c, ring, app_id).await
}

// ---------------------------------------------------------------------------------------------
// Users

const USER_COLUMNS: &str = "user_id, verified, method, verified_at, signed_at, name, email, plan, \
     mrr, signup_date, custom, unverified_claims, first_seen, last_seen, key_id";

fn user_from_row(r: &tokio_postgres::Row) -> UserRecord {
    let json_col = |i: usize| -> Option<Json> {
        r.get::<_, Option<&str>>(i)
            .and_then(|t| serde_json::from_str(t).ok())
    };
    UserRecord {
        user_id: r.get(0),
        verified: r.get(1),
        method: r.get(2),
        verified_at: r.get(3),
        signed_at: r.get(4),
        name: r.get(5),
        email: r.get(6),
        plan: r.get(7),
        mrr: r.get(8),
        signup_date: r.get(9),
        custom: json_col(10).unwrap_or_else(|| Json::Object(serde_json::Map::new())),
        unverified_claims: json_col(11),
        first_seen: r.get(12),
        last_seen: r.get(13),
        key_id: r.get(14),
    }
}

/// `ILIKE` pattern for "contains", with the wildcards in the search text escaped.
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

/// One round of a batch: at most one write per user, as columns for UNNEST.
///
/// The statement is [`crate::users::merge`] in SQL. `u` is the stored row, `excluded` the row
/// this call would insert for a new user (trusted values for a verified call, claimed values
/// for an unverified one), `src` the call as sent:
/// - a verified call sets the verification columns; its trusted values overlay the stored
///   ones of an already verified user, and replace the claims of a never-verified user (a
///   verification does not promote earlier unverified claims); what it claimed beyond what
///   was vouched for is its `unverified_claims`;
/// - an unverified call for a verified user changes no trusted value and no verification
///   column: only `unverified_claims` (what it claimed, or the previous ones if it claimed
///   nothing);
/// - an unverified call for an unverified user overlays its claimed values;
/// - custom traits are replaced only by a call that sent some, and never by an unverified call
///   for a verified user (they are among its `unverified_claims`); `first_seen` is kept.
static UPSERT_USERS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "
WITH src AS (
    SELECT * FROM UNNEST(
        $1::text[], $2::text[], $3::int8[], $4::bool[], $5::text[], $6::int8[], $7::int8[],
        $8::text[], $9::text[], $10::text[], $11::float8[], $12::text[],
        $13::text[], $14::text[], $15::text[], $16::float8[], $17::text[],
        $18::text[], $19::text[]
    ) AS s(app_id, user_id, now, verified, method, key_id, signed_at,
           t_name, t_email, t_plan, t_mrr, t_signup_date,
           c_name, c_email, c_plan, c_mrr, c_signup_date,
           claims, custom)
)
INSERT INTO users AS u (app_id, user_id, verified, method, key_id, verified_at, signed_at,
    name, email, plan, mrr, signup_date, custom, unverified_claims, first_seen, last_seen)
SELECT app_id, user_id, verified, method, key_id, CASE WHEN verified THEN now END, signed_at,
    CASE WHEN verified THEN t_name ELSE c_name END,
    CASE WHEN verified THEN t_email ELSE c_email END,
    CASE WHEN verified THEN t_plan ELSE c_plan END,
    CASE WHEN verified THEN t_mrr ELSE c_mrr END,
    CASE WHEN verified THEN t_signup_date ELSE c_signup_date END,
    COALESCE(custom, '{{}}'),
    CASE WHEN verified THEN claims END,
    now, now
FROM src
{}",
        // PostgreSQL decides from the values, not the SET list, whether an indexed column
        // changed (an update that changes none can be HOT), so one form serves every call.
        super::merge_on_conflict(
            "(SELECT s.claims FROM src s WHERE s.app_id = excluded.app_id AND s.user_id = excluded.user_id)",
            super::MergeRows::Any,
        )
    )
});

/// Records when each key last verified a call: once per key per batch, not per call.
const TOUCH_KEYS: &str = "
UPDATE keys k SET last_used_at = t.at
FROM UNNEST($1::int8[], $2::int8[]) AS t(id, at)
WHERE k.id = t.id AND (k.last_used_at IS NULL OR k.last_used_at < t.at)";

#[derive(Default)]
struct Round<'a> {
    app_id: Vec<&'a str>,
    user_id: Vec<&'a str>,
    now: Vec<i64>,
    verified: Vec<bool>,
    method: Vec<Option<&'a str>>,
    key_id: Vec<Option<i64>>,
    signed_at: Vec<Option<i64>>,
    t_name: Vec<Option<&'a str>>,
    t_email: Vec<Option<&'a str>>,
    t_plan: Vec<Option<&'a str>>,
    t_mrr: Vec<Option<f64>>,
    t_signup_date: Vec<Option<&'a str>>,
    c_name: Vec<Option<&'a str>>,
    c_email: Vec<Option<&'a str>>,
    c_plan: Vec<Option<&'a str>>,
    c_mrr: Vec<Option<f64>>,
    c_signup_date: Vec<Option<&'a str>>,
    claims: Vec<Option<String>>,
    custom: Vec<Option<String>>,
}

impl<'a> Round<'a> {
    fn push(&mut self, w: &'a IdentifyWrite) {
        self.app_id.push(&w.app_id);
        self.user_id.push(&w.user_id);
        self.now.push(w.now);
        self.verified.push(w.verification.is_some());
        self.method.push(w.verification.map(|v| v.method));
        self.key_id.push(w.verification.map(|v| v.key_id));
        self.signed_at.push(w.verification.map(|v| v.signed_at));
        self.t_name.push(w.trusted.name.as_deref());
        self.t_email.push(w.trusted.email.as_deref());
        self.t_plan.push(w.trusted.plan.as_deref());
        self.t_mrr.push(w.trusted.mrr);
        self.t_signup_date.push(w.trusted.signup_date.as_deref());
        self.c_name.push(w.claimed.name.as_deref());
        self.c_email.push(w.claimed.email.as_deref());
        self.c_plan.push(w.claimed.plan.as_deref());
        self.c_mrr.push(w.claimed.mrr);
        self.c_signup_date.push(w.claimed.signup_date.as_deref());
        self.claims.push(w.claims_json());
        self.custom.push(w.custom_json());
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 19] {
        [
            &self.app_id,
            &self.user_id,
            &self.now,
            &self.verified,
            &self.method,
            &self.key_id,
            &self.signed_at,
            &self.t_name,
            &self.t_email,
            &self.t_plan,
            &self.t_mrr,
            &self.t_signup_date,
            &self.c_name,
            &self.c_email,
            &self.c_plan,
            &self.c_mrr,
            &self.c_signup_date,
            &self.claims,
            &self.custom,
        ]
    }
}

/// Splits a batch into rounds: the first write of each user in round 1, its second in round 2,
/// and so on. One statement cannot upsert a row twice, and applying the rounds in order keeps
/// the exact arrival-order outcome of the calls one by one. Within a round, rows are in key
/// order so that two instances lock the same users in the same order.
fn rounds<'a>(writes: &[&'a IdentifyWrite]) -> Vec<Round<'a>> {
    let mut seen: HashMap<(&str, &str), usize> = HashMap::with_capacity(writes.len());
    let mut by_round: Vec<Vec<&'a IdentifyWrite>> = Vec::new();
    for w in writes {
        let n = seen.entry((&w.app_id, &w.user_id)).or_insert(0);
        if by_round.len() <= *n {
            by_round.push(Vec::new());
        }
        by_round[*n].push(w);
        *n += 1;
    }
    by_round
        .into_iter()
        .map(|mut ws| {
            ws.sort_unstable_by(|a, b| (&a.app_id, &a.user_id).cmp(&(&b.app_id, &b.user_id)));
            let mut round = Round::default();
            for w in ws {
                round.push(w);
            }
            round
        })
        .collect()
}

/// Commits `writes` in one transaction: one upsert per round, then the keys' `last_used_at`.
async fn write_batch(pool: &Pool, writes: &[&IdentifyWrite]) -> Result<(), BatchError> {
    let mut client = pool.get().await.map_err(BatchError::pool)?;
    let tx = client.transaction().await?;
    let upsert = tx.prepare_cached(&UPSERT_USERS).await?;
    for round in rounds(writes) {
        tx.execute(&upsert, &round.params()).await?;
    }
    let mut used: Vec<(i64, i64)> = writes
        .iter()
        .filter_map(|w| w.verification.map(|v| (v.key_id, w.now)))
        .collect();
    if !used.is_empty() {
        used.sort_unstable();
        // Keep the latest time per key (sorted by key, then time).
        used.dedup_by(|a, b| {
            if a.0 == b.0 {
                b.1 = b.1.max(a.1);
                true
            } else {
                false
            }
        });
        let (ids, ats): (Vec<i64>, Vec<i64>) = used.into_iter().unzip();
        let touch = tx.prepare_cached(TOUCH_KEYS).await?;
        tx.execute(&touch, &[&ids, &ats]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Why a batch failed, and whether retrying helps.
struct BatchError {
    message: String,
    kind: Failure,
}

#[derive(PartialEq, Eq)]
enum Failure {
    /// Deadlock or serialization failure between instances: the whole batch may be retried.
    Transient,
    /// The database refused a value (say, a NUL character in a text value): retried one write
    /// at a time, so one bad record cannot fail the others.
    Data,
    /// The database is unreachable or failing: every caller gets the error now.
    Unavailable,
}

impl BatchError {
    fn pool(e: PoolError) -> BatchError {
        BatchError {
            message: StoreError::from(e).to_string(),
            kind: Failure::Unavailable,
        }
    }
}

impl From<tokio_postgres::Error> for BatchError {
    fn from(e: tokio_postgres::Error) -> Self {
        let kind = match e.code().map(|c| c.code()) {
            Some(c) if c.starts_with("40") => Failure::Transient,
            Some(c) if c.starts_with("22") || c.starts_with("23") || c.starts_with("54") => {
                Failure::Data
            }
            _ => Failure::Unavailable,
        };
        BatchError {
            message: format!("postgres: {}", describe(&e)),
            kind,
        }
    }
}

async fn bounded_batch(
    limit: Duration,
    pool: &Pool,
    writes: &[&IdentifyWrite],
) -> Result<(), BatchError> {
    tokio::time::timeout(limit, write_batch(pool, writes))
        .await
        .unwrap_or_else(|_| {
            Err(BatchError {
                message: format!("postgres: the database did not answer within {limit:?}"),
                kind: Failure::Unavailable,
            })
        })
}

/// The batcher task: drains whatever is queued (up to [`MAX_BATCH`]), commits it, answers every
/// caller, repeats. One batch is in flight at a time, so writes commit in arrival order. Ends
/// when every store handle is dropped (after answering what was queued).
async fn batcher(mut rx: mpsc::Receiver<Pending>, pool: Pool, hooks: Hooks, limit: Duration) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        hooks.metrics.observe_batch(batch.len());
        commit_batch(&pool, &mut batch, limit).await;
    }
    tracing::debug!("postgres batcher stopped");
}

async fn commit_batch(pool: &Pool, batch: &mut Vec<Pending>, limit: Duration) {
    let writes: Vec<&IdentifyWrite> = batch.iter().map(|(w, _)| w).collect();
    let mut result = bounded_batch(limit, pool, &writes).await;
    if let Err(e) = &result
        && e.kind == Failure::Transient
    {
        tracing::info!(error = %e.message, size = writes.len(), "batch conflicted; retrying");
        result = bounded_batch(limit, pool, &writes).await;
    }
    drop(writes);
    match result {
        Ok(()) => {
            for (_, done) in batch.drain(..) {
                let _ = done.send(Ok(()));
            }
        }
        Err(e) if e.kind != Failure::Unavailable && batch.len() > 1 => {
            tracing::warn!(error = %e.message, size = batch.len(), "batch commit failed; retrying it in halves");
            let mut answers = vec![None; batch.len()];
            let writes: Vec<&IdentifyWrite> = batch.iter().map(|(w, _)| w).collect();
            bisect(pool, limit, &writes, &mut answers).await;
            for ((_, done), answer) in batch.drain(..).zip(answers) {
                let answer = answer.unwrap_or_else(|| Err("not committed".into()));
                let _ = done.send(answer.map_err(StoreError::Postgres));
            }
        }
        Err(e) => {
            tracing::error!(error = %e.message, size = batch.len(), "storing identify calls failed");
            for (_, done) in batch.drain(..) {
                let _ = done.send(Err(StoreError::Postgres(e.message.clone())));
            }
        }
    }
}

/// Whether stored JSON text holds a NUL character escaped as `\u0000` in a string, which
/// PostgreSQL's jsonb refuses. (Text that does not parse is left for the insert to report.)
fn json_text_has_nul(s: &str) -> bool {
    s.contains("\\u0000")
        && serde_json::from_str::<serde_json::Value>(s)
            .is_ok_and(|v| crate::users::json_has_nul(&v))
}

/// Commits `writes` in halves after their batch failed on a value: the half without the bad
/// write commits at its first try, so one bad write costs about 2 log2(n) small statements
/// instead of one statement per write, and only it gets the error.
async fn bisect(
    pool: &Pool,
    limit: Duration,
    writes: &[&IdentifyWrite],
    answers: &mut [Option<Result<(), String>>],
) {
    let mid = writes.len() / 2;
    let (left, right) = answers.split_at_mut(mid);
    for (part, out) in [(&writes[..mid], left), (&writes[mid..], right)] {
        if part.is_empty() {
            continue;
        }
        match bounded_batch(limit, pool, part).await {
            Ok(()) => out.fill(Some(Ok(()))),
            Err(e) if e.kind != Failure::Unavailable && part.len() > 1 => {
                Box::pin(bisect(pool, limit, part, out)).await;
            }
            Err(e) => {
                tracing::error!(error = %e.message, size = part.len(), "storing identify calls failed");
                out.fill(Some(Err(e.message)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::{Claimed, Verification};

    fn write(user: &str, verified: bool) -> IdentifyWrite {
        IdentifyWrite {
            app_id: "app".into(),
            user_id: user.into(),
            now: 1,
            verification: verified.then_some(Verification {
                method: "hmac",
                key_id: 1,
                signed_at: 1,
            }),
            trusted: Claimed::default(),
            claimed: Claimed::default(),
            custom: serde_json::Map::new(),
            claimed_custom: serde_json::Map::new(),
        }
    }

    #[test]
    fn a_batch_splits_into_rounds_with_one_write_per_user_each() {
        let ws = [
            write("b", false),
            write("a", true),
            write("b", true),
            write("b", false),
            write("c", false),
        ];
        let refs: Vec<&IdentifyWrite> = ws.iter().collect();
        let rounds = rounds(&refs);
        let users: Vec<Vec<&str>> = rounds.iter().map(|r| r.user_id.clone()).collect();
        assert_eq!(users, vec![vec!["a", "b", "c"], vec!["b"], vec!["b"]]);
        // Arrival order per user is kept: b's first write (unverified) comes first.
        assert_eq!(rounds[0].verified, vec![true, false, false]);
        assert_eq!(rounds[1].verified, vec![true]);
        assert_eq!(rounds[2].verified, vec![false]);
    }

    #[test]
    fn the_url_is_never_printed() {
        let opts = PgOptions::new("postgres://u:hunter2@db/x");
        assert!(!format!("{opts:?}").contains("hunter2"));
    }
}
