//! The storage interface: everything that reads or writes stored data (identify writes,
//! workspaces and keys, users, the audit log, admin reads, health) goes through [`Store`]. HTTP
//! handlers, the CLI and the admin API call these methods and never learn which backend answers.
//!
//! The rules on stored data are written once, above the backends, against [`sql::Sql`]
//! (statements, rows, locks): `config` (workspaces, keys, sealed secrets), `accounts` (console
//! accounts and sessions), `team` (a workspace's members and invitations, with its own facade
//! methods), `stats` (live counts, rejections), `records` (users, audit log),
//! `instances` (the instances serving a shared database and the master keys they hold);
//! `secrets`, `model` and `writes` hold what they and the backends share. A backend is the SQL
//! execution below them, plus what only its engine does:
//! - [`sqlite`]: the embedded default, a SQLite file owned by one writer thread that commits
//!   queued identify writes together (group commit);
//! - [`postgres`]: a shared PostgreSQL for several verifier instances, with identify writes
//!   batched per instance into one upsert statement, and LISTEN/NOTIFY to keep them current.
//!
//! A third engine is added as a module that implements [`sql::Sql`] for its transactions, runs a
//! rule in the transaction a [`Mode`] asks for, and brings its migrations and identify batch.
//!
//! Rules every backend keeps (and `server/tests/store_behaviour.rs` checks on each): a 2xx is
//! sent only after the write is committed; the stored-data rules of [`crate::users::merge`];
//! every key change is one transaction that reads what it changes; a schema newer than the build
//! is refused; workspace changes made anywhere reach this instance's registry within a second.

mod accounts;
mod config;
mod error;
pub mod instances;
mod model;
mod outage;
pub mod pg_tls;
pub mod postgres;
mod records;
mod secrets;
pub mod sql;
pub mod sqlite;
mod stats;
mod team;
mod writes;

pub use error::StoreError;
pub use model::{
    Account, AccountChange, AccountLogin, AuditEntry, CallCounts, CountsDelta,
    MAX_RECENT_REJECTIONS, Membership, RejectionEntry, Role, SessionRules,
};
pub use outage::Outage;
pub use secrets::{
    SECRETS_BOUND_META, SealCounts, open_secret, rewrap_secret, seal_secret, secret_aad,
    upgrade_secrets,
};
pub use sql::Mode;
pub use team::{
    INVITE_TTL_SECS, InviteFor, MAX_PENDING_INVITES, PendingInvite, Team, TeamMember, TeamRefusal,
};
pub use writes::Queued;
pub(crate) use writes::{MergeRows, keys_used, merge_changes, merge_on_conflict};

use std::path::PathBuf;
use std::sync::Arc;

use crate::issuers::IssuerConfig;
use crate::metrics::{Metrics, Sample};
use crate::sealing::{Keyring, KeyringHandle};
use crate::users::{IdentifyWrite, UserQuery, UserRecord};
use crate::workspace::{
    IssuerRuleError, NewKey, NewWorkspace, Registry, Workspace, WorkspacePatch,
};

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded store: `dropfix.sqlite3` in this directory.
    Sqlite { data_dir: PathBuf },
    /// The embedded store in memory (`serve --ephemeral`, tests, benchmarks).
    SqliteMemory,
    /// A shared PostgreSQL (`--database-url`), for several verifier instances.
    Postgres(postgres::PgOptions),
}

impl Backend {
    /// PostgreSQL when a database URL is given, else the embedded store in `data_dir`, or in
    /// memory when `ephemeral`.
    pub fn from_flags(
        data_dir: PathBuf,
        ephemeral: bool,
        postgres: Option<postgres::PgOptions>,
    ) -> Backend {
        match postgres {
            Some(opts) => Backend::Postgres(opts),
            None if ephemeral => Backend::SqliteMemory,
            None => Backend::Sqlite { data_dir },
        }
    }
}

/// What a store reports to and keeps current in the rest of the server.
#[derive(Debug, Clone)]
pub struct Hooks {
    /// Kept current with every workspace change, wherever it was made.
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    /// Seals secrets before they are stored and opens them when workspaces load.
    pub keyring: Arc<KeyringHandle>,
    /// Whether the store answers, as calls and health checks see it (and what the log says).
    pub outage: Arc<Outage>,
}

impl Hooks {
    /// Fresh hooks around `keyring` (a server passes the same ones to its state).
    pub fn new(keyring: Keyring) -> Hooks {
        Hooks {
            registry: Arc::default(),
            metrics: Arc::default(),
            keyring: Arc::new(KeyringHandle::new(keyring)),
            outage: Arc::default(),
        }
    }
}

/// A reload of the workspaces failed. When the stored workspaces cannot be read with this
/// instance's master keys (a rewrap to a key it lacks), the registry is marked stale, which
/// fails the health check and identify calls until a reload succeeds; other errors (the
/// database away) are retried by the next poll and reported by the health check already.
pub(crate) fn reload_failed(registry: &crate::workspace::Registry, e: &StoreError) {
    if !matches!(e, StoreError::Sealing(_)) {
        tracing::warn!(error = %e, "reloading workspaces failed; the next poll retries");
        return;
    }
    if !registry.is_stale() {
        tracing::error!(
            error = %e,
            "the stored workspaces changed and cannot be loaded with this verifier's master \
             keys: it refuses identify calls and fails /healthz until they can. Add the master \
             key the secrets are sealed with to its key file (it is read again when it changes, \
             and the instance recovers by itself at its next reload) or, with \
             DROPFIX_MASTER_KEYS, restart it with that key; if the error names a key row, that \
             row was changed outside DropFix"
        );
    }
    registry.mark_stale(&e.to_string());
}

/// A handle to the store. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Runs a rule (an `async` expression over `$c: &mut impl Sql` and `$ring: &Keyring`) on
/// whichever backend this is, in the transaction `$mode` asks for. The expression is written
/// once and compiled once per backend; it must own what it uses (`move`): on the embedded store
/// it runs on the store thread.
macro_rules! on_backend {
    ($self:ident, $mode:expr, |$c:ident, $ring:ident| $rule:expr) => {
        $self.counted(match $self {
            Store::Sqlite(s) => s.run($mode, move |$c, $ring| sql::run_now($rule)).await,
            Store::Postgres(s) => s.run($mode, async move |$c, $ring| $rule.await).await,
        })
    };
}

impl Store {
    /// Opens the store (creating and migrating it as needed), loads the workspaces into
    /// `hooks.registry` and keeps them current from then on. Needs a tokio runtime.
    pub async fn open(backend: &Backend, hooks: Hooks) -> Result<Store, StoreError> {
        Ok(match backend {
            Backend::Sqlite { data_dir } => {
                Store::Sqlite(sqlite::SqliteStore::open_dir(data_dir, hooks)?)
            }
            Backend::SqliteMemory => Store::Sqlite(sqlite::SqliteStore::open_memory(hooks)?),
            Backend::Postgres(opts) => Store::Postgres(postgres::PgStore::open(opts, hooks).await?),
        })
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Fills the store's part of a scrape: its backend and queue, and on PostgreSQL the pool,
    /// the config version and the listener.
    pub fn fill_sample(&self, sample: &mut Sample) {
        sample.backend = self.backend_name();
        match self {
            Store::Sqlite(s) => sample.store_queue_length = s.queue_length(),
            Store::Postgres(s) => s.fill_sample(sample),
        }
    }

    /// `result`, its error counted in `dropfix_store_errors_total` (see [`StoreError::kind`]).
    /// The identify path counts its own (`crate::http`), so its future holds no metrics handle.
    fn counted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Some(kind) = result.as_ref().err().and_then(StoreError::kind) {
            let hooks = match self {
                Store::Sqlite(s) => s.hooks(),
                Store::Postgres(s) => s.hooks(),
            };
            hooks.metrics.store_error(kind);
        }
        result
    }

    /// Stores an accepted identify call; resolves once it is committed (a 2xx may be sent
    /// then), or with the error that kept it from being stored.
    ///
    /// The write is handed to the backend when this is called, not when the future is first
    /// polled, and the future holds only the answer's receiver: it is moved with the request's
    /// future on every call, so it is kept small.
    pub fn identify(
        &self,
        write: IdentifyWrite,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        // The embedded store answers or fails by itself; a PostgreSQL write waits at most the
        // database timeout (its batch may still commit after that: the 503 then says the write
        // was not confirmed, which is true).
        // The core refuses these at the door; this keeps every backend to one rule whatever the
        // caller (PostgreSQL cannot store NUL in text or jsonb, SQLite could).
        let invalid = write.nul_field().map(StoreError::InvalidValue);
        let (queued, limit) = match (self, invalid) {
            (_, Some(e)) => (Queued::Failed(e), None),
            (Store::Sqlite(s), None) => (s.enqueue(write), None),
            (Store::Postgres(s), None) => (s.enqueue(write), Some(s.answer_timeout())),
        };
        async move {
            match limit {
                None => queued.done().await,
                Some(limit) => tokio::time::timeout(limit, queued.done())
                    .await
                    .unwrap_or_else(|_| {
                        Err(StoreError::Timeout(format!(
                            "no answer from the database within {limit:?}"
                        )))
                    }),
            }
        }
    }

    /// Whether the store answers (health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.counted(match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        })
    }

    /// Reads every workspace now and puts them in the registry (after this instance changed
    /// one, so its own answer reflects the change at once).
    pub async fn reload(&self) -> Result<(), StoreError> {
        self.counted(match self {
            Store::Sqlite(s) => s.reload().await,
            Store::Postgres(s) => s.reload().await,
        })
    }

    pub async fn workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        on_backend!(self, Mode::Read, |c, ring| config::load_workspaces(
            c, ring, None
        ))
    }

    /// When each key of a workspace last verified a call (keys never used are absent). A plain
    /// read: nothing is unsealed, so a console page can show it without loading workspaces.
    pub async fn key_last_used(
        &self,
        app_id: &str,
    ) -> Result<std::collections::HashMap<i64, i64>, StoreError> {
        let app = app_id.to_owned();
        on_backend!(self, Mode::Read, |c, _ring| config::key_last_used(c, &app))
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        on_backend!(self, Mode::Read, |c, _ring| config::meta_get(c, &key))
    }

    pub async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        on_backend!(self, Mode::Write, |c, _ring| config::meta_set(
            c, &key, &value
        ))
    }

    /// Stores `value` under `key` unless it has one already; returns the value that stands (so
    /// instances starting together agree on one).
    pub async fn meta_set_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        on_backend!(self, Mode::Write, |c, _ring| config::meta_set_if_absent(
            c, &key, &value
        ))
    }

    /// Creates a workspace with a fresh app id and its first key (the secret is shown once).
    pub async fn create_workspace(
        &self,
        new: &NewWorkspace,
        actor: &str,
        now: i64,
    ) -> Result<NewKey, StoreError> {
        let (new, actor) = (new.clone(), actor.to_owned());
        let created = on_backend!(self, Mode::Config, |c, ring| {
            config::create_workspace(c, ring, &new, &actor, now, false)
        });
        // Without `only_if_none` a workspace is always created.
        created?.ok_or_else(|| StoreError::Setup("no workspace was created".into()))
    }

    /// Creates a workspace as [`Store::create_workspace`] does, but only if the store has none,
    /// checked and created in one step: of several instances starting together on an empty
    /// database, one creates it and the others get `None`.
    pub async fn create_first_workspace(
        &self,
        new: &NewWorkspace,
        actor: &str,
        now: i64,
    ) -> Result<Option<NewKey>, StoreError> {
        let (new, actor) = (new.clone(), actor.to_owned());
        on_backend!(self, Mode::Config, |c, ring| {
            config::create_workspace(c, ring, &new, &actor, now, true)
        })
    }

    pub async fn update_workspace(
        &self,
        app_id: &str,
        patch: &WorkspacePatch,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        let (app, patch, actor) = (app_id.to_owned(), patch.clone(), actor.to_owned());
        on_backend!(self, Mode::Config, |c, ring| {
            config::update_workspace(c, ring, &app, &patch, &actor, now)
        })
    }

    /// Adds a key (at most [`crate::workspace::MAX_LIVE_KEYS`] live at once).
    pub async fn create_key(
        &self,
        app_id: &str,
        label: &str,
        expires_at: Option<i64>,
        actor: &str,
        now: i64,
    ) -> Result<NewKey, StoreError> {
        let (app, label, actor) = (app_id.to_owned(), label.to_owned(), actor.to_owned());
        on_backend!(self, Mode::Config, |c, ring| {
            config::create_key(c, ring, &app, &label, expires_at, &actor, now)
        })
    }

    /// Replaces a key (the newest live one when `key_id` is `None`) with a new one; the old key
    /// keeps verifying for `grace_secs` (0: stops now). No other key changes.
    pub async fn roll_key(
        &self,
        app_id: &str,
        key_id: Option<i64>,
        grace_secs: i64,
        actor: &str,
        now: i64,
    ) -> Result<NewKey, StoreError> {
        let (app, actor) = (app_id.to_owned(), actor.to_owned());
        on_backend!(self, Mode::Config, |c, ring| {
            config::roll_key(c, ring, &app, key_id, grace_secs, &actor, now)
        })
    }

    /// Stops a key verifying now and forgets its secret.
    pub async fn retire_key(
        &self,
        app_id: &str,
        key_id: i64,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        let (app, actor) = (app_id.to_owned(), actor.to_owned());
        on_backend!(self, Mode::Config, |c, ring| {
            config::retire_key(c, ring, &app, key_id, &actor, now)
        })
    }

    /// Adds a token issuer (checked by [`IssuerConfig::check`] first).
    pub async fn add_issuer(
        &self,
        app_id: &str,
        issuer: IssuerConfig,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        let (app, actor) = (app_id.to_owned(), actor.to_owned());
        let issuer = issuer.check().map_err(IssuerRuleError::Invalid)?.config;
        on_backend!(self, Mode::Config, |c, ring| {
            config::add_issuer(c, ring, &app, &issuer, &actor, now)
        })
    }

    /// Removes the token issuer named `name`.
    pub async fn remove_issuer(
        &self,
        app_id: &str,
        name: &str,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        let (app, name, actor) = (app_id.to_owned(), name.to_owned(), actor.to_owned());
        on_backend!(self, Mode::Config, |c, ring| {
            config::remove_issuer(c, ring, &app, &name, &actor, now)
        })
    }

    /// Retires every key but the newest live one (ends all grace periods now).
    pub async fn retire_old_keys(
        &self,
        app_id: &str,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        let (app, actor) = (app_id.to_owned(), actor.to_owned());
        on_backend!(self, Mode::Config, |c, ring| {
            config::retire_old_keys(c, ring, &app, &actor, now)
        })
    }

    pub async fn get_user(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        // No stored id holds a NUL (it is refused on the way in), and PostgreSQL refuses it even
        // as a parameter: answered here, alike on both backends.
        if user_id.contains('\0') || app_id.contains('\0') {
            return Ok(None);
        }
        let (app, user) = (app_id.to_owned(), user_id.to_owned());
        on_backend!(self, Mode::Read, |c, _ring| records::get_user(
            c, &app, &user
        ))
    }

    /// Users in user-id order after `query.after`.
    pub async fn list_users(
        &self,
        app_id: &str,
        query: &UserQuery,
    ) -> Result<Vec<UserRecord>, StoreError> {
        if app_id.contains('\0') || query.search.as_deref().is_some_and(|s| s.contains('\0')) {
            // Nothing stored contains a NUL.
            return Ok(Vec::new());
        }
        if let Some(after) = query.after.as_deref()
            && let Some(at) = after.find('\0')
        {
            // No stored id holds a NUL, so the ids after "x\0..." are exactly those after "x".
            let query = UserQuery {
                after: Some(after[..at].to_string()),
                ..query.clone()
            };
            return self.list_users_now(app_id, query).await;
        }
        self.list_users_now(app_id, query.clone()).await
    }

    /// Deletes one user's stored data; `false` when there was none.
    pub async fn delete_user(
        &self,
        app_id: &str,
        user_id: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        if user_id.contains('\0') || app_id.contains('\0') {
            return Ok(false);
        }
        let (app, user, actor) = (app_id.to_owned(), user_id.to_owned(), actor.to_owned());
        on_backend!(self, Mode::Write, |c, _ring| {
            records::delete_user(c, &app, &user, &actor, now)
        })
    }

    /// Re-seals every stored secret that is not sealed with the active master key; returns
    /// how many were rewritten. Each workspace's secrets change in one transaction.
    pub async fn rewrap_secrets(&self) -> Result<u64, StoreError> {
        on_backend!(self, Mode::Config, |c, ring| config::rewrap_secrets(
            c, ring
        ))
    }

    /// Registers this serving instance and the master keys it holds now (or refreshes its
    /// registration), for [`Store::live_instances`]. Nothing on the embedded store.
    pub async fn register_instance(&self, me: &instances::Instance) -> Result<(), StoreError> {
        let Store::Postgres(s) = self else {
            return Ok(());
        };
        let me = me.clone();
        s.run(Mode::Write, async move |c, ring| {
            instances::register(c, &me, ring).await
        })
        .await
    }

    /// Removes this instance's registration (it stops serving).
    pub async fn unregister_instance(&self, me: &instances::Instance) -> Result<(), StoreError> {
        let Store::Postgres(s) = self else {
            return Ok(());
        };
        let id = me.id.clone();
        s.run(Mode::Write, async move |c, _ring| {
            instances::unregister(c, &id).await
        })
        .await
    }

    /// The instances serving this database lately, with the master keys each holds; `None` on
    /// the embedded store, which does not track them (one host, one key file).
    pub async fn live_instances(&self) -> Result<Option<Vec<instances::InstanceKeys>>, StoreError> {
        let Store::Postgres(s) = self else {
            return Ok(None);
        };
        s.run(Mode::Read, async move |c, _ring| instances::live(c).await)
            .await
            .map(Some)
    }

    pub async fn seal_counts(&self) -> Result<SealCounts, StoreError> {
        on_backend!(self, Mode::Read, |c, _ring| config::seal_counts(c))
    }

    /// The newest audit entries of a workspace, newest first.
    pub async fn audit_log(
        &self,
        app_id: &str,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let app = app_id.to_owned();
        on_backend!(self, Mode::Read, |c, _ring| records::audit_log(
            c, &app, limit
        ))
    }
    // -----------------------------------------------------------------------------------------
    // Console: accounts, memberships, sessions, call counts, recent rejections

    /// Creates a console account; `None` when the email is taken.
    pub async fn create_account(
        &self,
        email: &str,
        password_phc: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (email, phc) = (email.to_owned(), password_phc.to_owned());
        on_backend!(self, Mode::Write, |c, _ring| {
            accounts::create_account(c, &email, &phc, now)
        })
    }

    /// Gives an account a role in a workspace (replacing its role there); `false` when no
    /// account has this email.
    pub async fn add_member(
        &self,
        email: &str,
        app_id: &str,
        role: Role,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (email, app, actor) = (email.to_owned(), app_id.to_owned(), actor.to_owned());
        on_backend!(self, Mode::Write, |c, _ring| {
            accounts::add_member(c, &email, &app, role, &actor, now)
        })
    }

    /// Takes console access away from the account with this email, in one transaction, and
    /// audits it in each workspace it leaves; `false` when no account has this email (or, for
    /// [`AccountChange::RemoveFrom`], it is not a member there). A session of a removed member
    /// stops reaching that workspace on its next request (roles are read per request).
    pub async fn change_account(
        &self,
        email: &str,
        change: &AccountChange,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (email, change, actor) = (email.to_owned(), change.clone(), actor.to_owned());
        on_backend!(self, Mode::Write, |c, _ring| {
            accounts::change_account(c, &email, &change, &actor, now)
        })
    }

    /// Every console account with its memberships, by email.
    pub async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        on_backend!(self, Mode::Read, |c, _ring| accounts::list_accounts(c))
    }

    /// The account a login names (by email, case-insensitively).
    pub async fn account_login(&self, email: &str) -> Result<Option<AccountLogin>, StoreError> {
        if email.contains('\0') {
            // No account's email holds a NUL (PostgreSQL would refuse the parameter).
            return Ok(None);
        }
        let email = email.to_owned();
        on_backend!(self, Mode::Read, |c, _ring| accounts::account_login(
            c, &email
        ))
    }

    /// Stores a new session (only the token's SHA-256), and forgets every session that has
    /// ended under `rules` (so sessions nobody presents again do not pile up).
    pub async fn create_session(
        &self,
        token_sha256: [u8; 32],
        account_id: i64,
        rules: SessionRules,
        now: i64,
    ) -> Result<(), StoreError> {
        on_backend!(self, Mode::Write, |c, _ring| {
            accounts::create_session(c, &token_sha256, account_id, rules, now)
        })
    }

    /// The account of a live session, marking it used at `now`; an expired session is deleted
    /// and gives `None`.
    pub async fn resume_session(
        &self,
        token_sha256: [u8; 32],
        rules: SessionRules,
        now: i64,
    ) -> Result<Option<Account>, StoreError> {
        on_backend!(self, Mode::Write, |c, _ring| {
            accounts::resume_session(c, &token_sha256, rules, now)
        })
    }

    /// Ends a session (logout).
    pub async fn delete_session(&self, token_sha256: [u8; 32]) -> Result<(), StoreError> {
        on_backend!(self, Mode::Write, |c, _ring| accounts::delete_session(
            c,
            &token_sha256
        ))
    }

    /// Adds (never overwrites) per-minute call counts and appends recent rejections, keeping the
    /// newest [`MAX_RECENT_REJECTIONS`] per workspace. Several instances flush into the same
    /// rows, so the stored counts are totals across instances.
    pub async fn add_call_stats(
        &self,
        counts: Vec<CountsDelta>,
        rejections: Vec<RejectionEntry>,
    ) -> Result<(), StoreError> {
        if counts.is_empty() && rejections.is_empty() {
            return Ok(());
        }
        on_backend!(self, Mode::Write, |c, _ring| {
            stats::add_call_stats(c, &counts, &rejections)
        })
    }

    /// A workspace's per-minute counts from `since_minute` on, oldest first.
    pub async fn call_counts(
        &self,
        app_id: &str,
        since_minute: i64,
    ) -> Result<Vec<(i64, CallCounts)>, StoreError> {
        let app = app_id.to_owned();
        on_backend!(self, Mode::Read, |c, _ring| stats::call_counts(
            c,
            &app,
            since_minute
        ))
    }

    /// A workspace's recent rejections, newest first.
    pub async fn recent_rejections(&self, app_id: &str) -> Result<Vec<RejectionEntry>, StoreError> {
        let app = app_id.to_owned();
        on_backend!(self, Mode::Read, |c, _ring| stats::recent_rejections(
            c, &app
        ))
    }

    /// Adds an audit entry for an action that changes nothing else in the store (a console
    /// export, a membership change).
    pub async fn append_audit(
        &self,
        app_id: &str,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError> {
        let (app, actor, action) = (app_id.to_owned(), actor.to_owned(), action.to_owned());
        on_backend!(self, Mode::Write, |c, _ring| {
            config::audit(c, &app, &actor, &action, detail, now)
        })
    }

    async fn list_users_now(
        &self,
        app_id: &str,
        query: UserQuery,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let app = app_id.to_owned();
        on_backend!(self, Mode::Read, |c, _ring| records::list_users(
            c, &app, &query
        ))
    }
}
