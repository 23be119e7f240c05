//! The storage interface: everything that reads or writes stored data (identify writes,
//! workspaces and keys, users, the audit log, admin reads, health) goes through [`Store`]. HTTP
//! handlers, the CLI and the admin API call these methods and never learn which backend answers.
//!
//! Two backends, one module each:
//! - [`sqlite`]: the embedded default, a SQLite file owned by one writer thread that commits
//!   queued identify writes together (group commit);
//! - [`postgres`]: a shared PostgreSQL for several verifier instances, with identify writes
//!   batched per instance into one upsert statement.
//!
//! Rules every backend keeps (and `server/tests/store_behaviour.rs` checks on each): a 2xx is
//! sent only after the write is committed; the stored-data rules of [`crate::users::merge`];
//! every key change is one transaction that reads what it changes; a schema newer than the build
//! is refused; workspace changes made anywhere reach this instance's registry within a second.

mod accounts;
mod config;
pub mod pg_tls;
pub mod postgres;
mod records;
pub mod sql;
pub mod sqlite;
mod stats;

pub use sql::Mode;

use std::path::PathBuf;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::sealing::{Keyring, KeyringHandle};
use crate::users::{IdentifyWrite, UserQuery, UserRecord};
use crate::workspace::{KeyRuleError, NewKey, NewWorkspace, Registry, Workspace, WorkspacePatch};

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
}

impl Hooks {
    /// Fresh hooks around `keyring` (a server passes the same ones to its state).
    pub fn new(keyring: Keyring) -> Hooks {
        Hooks {
            registry: Arc::default(),
            metrics: Arc::default(),
            keyring: Arc::new(KeyringHandle::new(keyring)),
        }
    }
}

/// The associated data a workspace secret is sealed with: its key row (workspace and key id), so
/// a sealed value copied into another row, of another workspace or of a retired key of the same
/// one, does not open.
pub fn secret_aad(app_id: &str, key_id: i64) -> Vec<u8> {
    format!("dropfix-secret:v2:{app_id}:{key_id}").into_bytes()
}

/// What secrets were sealed with before they were bound to their key row (workspace only):
/// read once, by [`upgrade_secret`], and never again.
fn legacy_secret_aad(app_id: &str) -> Vec<u8> {
    format!("dropfix-secret:{app_id}").into_bytes()
}

/// The `meta` key recording that every stored secret is sealed and bound to its key row. Set by
/// the one-time upgrade a store runs when it opens without it; from then on a secret in the
/// clear or sealed the old way is refused as tampering instead of adopted.
pub const SECRETS_BOUND_META: &str = "secrets_bound_to_key_rows";

/// Seals a secret for storage in key row `key_id` of `app_id`.
pub fn seal_secret(
    ring: &Keyring,
    app_id: &str,
    key_id: i64,
    secret: &dropfix_core::SecretKey,
) -> String {
    ring.seal(secret.expose_secret(), &secret_aad(app_id, key_id))
}

/// Opens the secret stored in key row `key_id` of `app_id`. A value that is not sealed, or not
/// sealed for this row, is refused: stored secrets are never read in the clear.
pub fn open_secret(
    ring: &Keyring,
    app_id: &str,
    key_id: i64,
    stored: &str,
) -> Result<dropfix_core::SecretKey, StoreError> {
    if crate::sealing::sealed_key_id(stored).is_none() {
        return Err(StoreError::Sealing(format!(
            "key {key_id} of workspace {app_id} is stored in the clear, which this store never \
             writes: it was put there by hand (tampering?). Delete the row or replace it with a \
             key made by `workspace add-key`"
        )));
    }
    ring.unseal(stored, &secret_aad(app_id, key_id))
        .map(|s| dropfix_core::SecretKey::new(s.as_str()))
        .map_err(|e| StoreError::Sealing(format!("key {key_id} of workspace {app_id}: {e}")))
}

/// The one-time upgrade of a stored secret to the current form: a secret in the clear (written
/// before sealing existed) is sealed, one sealed for its workspace only is opened that way and
/// sealed again bound to its row; one already bound is left as is (`None`).
fn upgrade_secret(
    ring: &Keyring,
    app_id: &str,
    key_id: i64,
    stored: &str,
) -> Result<Option<String>, StoreError> {
    let aad = secret_aad(app_id, key_id);
    if crate::sealing::sealed_key_id(stored).is_none() {
        return Ok(Some(ring.seal(stored, &aad)));
    }
    if ring.unseal(stored, &aad).is_ok() {
        return Ok(None);
    }
    let clear = ring
        .unseal(stored, &legacy_secret_aad(app_id))
        .map_err(|e| StoreError::Sealing(format!("key {key_id} of workspace {app_id}: {e}")))?;
    Ok(Some(ring.seal(&clear, &aad)))
}

/// The one-time upgrade of every stored secret (`rows`: key id, app id, stored value), as the
/// updates to make. Refused when a row already has the current form: the upgrade runs only on a
/// store that never had it, and the record of it ([`SECRETS_BOUND_META`]) being absent from one
/// that did means the database was changed outside DropFix (deleting the record to have a
/// secret written in the clear adopted is exactly the tampering this guards against).
pub fn upgrade_secrets(
    ring: &Keyring,
    rows: &[(i64, String, String)],
) -> Result<Vec<(i64, String)>, StoreError> {
    if let Some((id, app, _)) = rows.iter().find(|(id, app, stored)| {
        crate::sealing::sealed_key_id(stored).is_some()
            && ring.unseal(stored, &secret_aad(app, *id)).is_ok()
    }) {
        return Err(StoreError::Sealing(format!(
            "key {id} of workspace {app} is already sealed to its row, yet the record that this \
             store's secrets were upgraded ({SECRETS_BOUND_META} in its meta table) is missing: \
             the database was changed outside DropFix (tampering?); refusing to adopt any stored \
             secret"
        )));
    }
    let mut updates = Vec::new();
    for (id, app, stored) in rows {
        if let Some(sealed) = upgrade_secret(ring, app, *id, stored)? {
            updates.push((*id, sealed));
        }
    }
    Ok(updates)
}

/// Re-seals a stored secret with the active master key (`None`: already sealed with it). A value
/// in the clear is refused like [`open_secret`] refuses it.
pub fn rewrap_secret(
    ring: &Keyring,
    app_id: &str,
    key_id: i64,
    stored: &str,
) -> Result<Option<String>, StoreError> {
    open_secret(ring, app_id, key_id, stored)?;
    ring.rewrap(stored, &secret_aad(app_id, key_id))
        .map_err(|e| StoreError::Sealing(e.to_string()))
}

/// The stored-data rules of [`crate::users::merge`] as the `ON CONFLICT ... DO UPDATE` clause
/// both backends' identify upserts end with, written once: `u` is the stored row, `excluded` the
/// call's row as the upsert would insert it (trusted values when verified, claimed ones when
/// not; `custom` is `'{}'` when the call sent none), and `claims` the SQL expression for the
/// call's claims object, which becomes the stored `unverified_claims` when an unverified call
/// reaches a verified user. `server/tests/store_behaviour.rs` checks both backends against
/// `merge`.
///
/// `rows` narrows the clause for SQLite, whose update rewrites an index entry whenever a column
/// of that index is in the SET list, even to the value it has: see [`MergeRows`].
pub(crate) fn merge_on_conflict(claims: &str, rows: MergeRows) -> String {
    let value = |col: &str| {
        format!(
            "{col} = CASE WHEN u.verified AND NOT excluded.verified THEN u.{col}
                WHEN excluded.verified AND NOT u.verified THEN excluded.{col}
                ELSE COALESCE(excluded.{col}, u.{col}) END"
        )
    };
    let values = ["name", "email", "plan", "mrr", "signup_date"].map(value);
    let (set_verified, only) = match rows {
        MergeRows::Any => ("verified = u.verified OR excluded.verified,\n    ", ""),
        MergeRows::KeepVerified => ("", ""),
        MergeRows::VerifiedOnly => ("", "\nWHERE u.verified"),
    };
    format!(
        "ON CONFLICT (app_id, user_id) DO UPDATE SET
    {set_verified}method = CASE WHEN excluded.verified THEN excluded.method ELSE u.method END,
    key_id = CASE WHEN excluded.verified THEN excluded.key_id ELSE u.key_id END,
    verified_at = CASE WHEN excluded.verified THEN excluded.verified_at ELSE u.verified_at END,
    signed_at = CASE WHEN excluded.verified THEN excluded.signed_at ELSE u.signed_at END,
    {},
    custom = CASE WHEN u.verified AND NOT excluded.verified THEN u.custom
        WHEN excluded.verified AND NOT u.verified THEN excluded.custom
        WHEN excluded.custom = '{{}}' THEN u.custom ELSE excluded.custom END,
    unverified_claims = CASE
        WHEN excluded.verified THEN excluded.unverified_claims
        WHEN u.verified THEN COALESCE({claims}, u.unverified_claims)
        ELSE NULL END,
    last_seen = excluded.last_seen{only}",
        values.join(",\n    ")
    )
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
             keys: it refuses identify calls and fails /healthz until they can (give it the \
             master key the secrets are sealed with, then restart it; or, if the error names a \
             key row, that row was changed outside DropFix)"
        );
    }
    registry.mark_stale(&e.to_string());
}

/// Which form of [`merge_on_conflict`] a write uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MergeRows {
    /// Any call onto any stored row: `verified` is in the SET list.
    Any,
    /// An unverified call: `u.verified OR false` is the stored value, so `verified` is left out
    /// of the SET list (and the verified index untouched).
    KeepVerified,
    /// A verified call onto a stored verified row: `verified` stays true and is left out; onto
    /// an unverified row the clause updates nothing (no row changed), and the caller runs the
    /// [`MergeRows::Any`] form, which promotes it.
    VerifiedOnly,
}

/// An identify write handed to a backend: how its caller learns that it was committed.
pub enum Queued {
    /// In the queue; the backend answers on this channel after the commit.
    Ready(tokio::sync::oneshot::Receiver<Result<(), StoreError>>),
    /// The queue was full (or a benchmark knob commits alone): waits for room, then the answer.
    Waiting(std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>),
    /// The store has stopped, or the write was refused before it reached the backend.
    Failed(StoreError),
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Queued::Ready(_) => "Queued::Ready",
            Queued::Waiting(_) => "Queued::Waiting",
            Queued::Failed(_) => "Queued::Failed",
        })
    }
}

impl Queued {
    /// Resolves once the write is committed, or with why it was not.
    pub async fn done(self) -> Result<(), StoreError> {
        match self {
            Queued::Ready(answer) => answer.await.map_err(|_| StoreError::Closed)?,
            Queued::Waiting(wait) => wait.await,
            Queued::Failed(e) => Err(e),
        }
    }
}

/// How many stored secrets each master key seals (for `master-key status` and `drop`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SealCounts {
    /// Master key id -> number of secrets sealed with it.
    pub by_key: std::collections::BTreeMap<String, u64>,
}

/// Why the store could not do something. Details go to the log, never to HTTP clients.
#[derive(Debug)]
pub enum StoreError {
    Sqlite(rusqlite::Error),
    Postgres(String),
    /// The store has stopped (only during shutdown or after a fatal error).
    Closed,
    /// The database's schema version is not one this build knows (written by a newer
    /// dropfix-server, or not a DropFix database): opening it could corrupt it.
    UnknownSchema {
        found: i64,
        known: usize,
    },
    /// No workspace has this app id.
    WorkspaceNotFound,
    /// A key operation broke a key rule (the caller's mistake, answered 4xx).
    Key(KeyRuleError),
    /// A stored secret could not be unsealed (missing master key, tampered value).
    Sealing(String),
    /// Opening the store failed for a reason the operator must fix (permissions, paths).
    Setup(String),
    /// A value no backend may store (a NUL character): refused before any backend sees it, so
    /// both backends accept exactly the same writes. Names the field.
    InvalidValue(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Sqlite(e) => write!(f, "sqlite: {e}"),
            StoreError::Postgres(e) => write!(f, "postgres: {e}"),
            StoreError::Closed => f.write_str("store stopped"),
            StoreError::UnknownSchema { found, known } => write!(
                f,
                "the database has schema version {found}, this dropfix-server knows 0..={known} \
                 (written by a newer version?); refusing to open it"
            ),
            StoreError::WorkspaceNotFound => f.write_str("no workspace has this app id"),
            StoreError::Key(e) => write!(f, "{e}"),
            StoreError::Sealing(e) => write!(f, "sealed secret: {e}"),
            StoreError::Setup(e) => f.write_str(e),
            StoreError::InvalidValue(field) => {
                write!(f, "{field} holds a NUL character, which no backend stores")
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl From<KeyRuleError> for StoreError {
    fn from(e: KeyRuleError) -> Self {
        StoreError::Key(e)
    }
}

/// One entry of a workspace's audit log: who changed what, never a secret value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    /// `workspace.create`, `workspace.update`, `key.create`, `key.roll`, `key.retire`, ...
    pub action: String,
    pub detail: serde_json::Value,
}

/// A change to a console account that takes access away ([`Store::change_account`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// Removes its membership of this workspace (app id); its other workspaces stay.
    RemoveFrom(String),
    /// Deletes the account, its memberships and its sessions.
    Delete,
    /// Replaces its password (an argon2id PHC string) and ends every session it has.
    SetPassword(String),
}

/// A console account's role in one workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Role {
    /// May change settings and keys.
    Owner,
    /// May only look.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// One workspace a console account belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub app_id: String,
    pub role: Role,
}

/// A console account with its memberships (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    /// Stored lower-cased.
    pub email: String,
    pub created_at: i64,
    pub memberships: Vec<Membership>,
}

/// What a login needs: the account and its argon2id PHC string.
#[derive(Debug, Clone)]
pub struct AccountLogin {
    pub id: i64,
    pub password_phc: String,
}

/// How a console session is checked: `token_sha256` is the SHA-256 of the cookie's token (the
/// token itself is never stored); it is valid while both limits hold.
#[derive(Debug, Clone, Copy)]
pub struct SessionRules {
    /// Ends after this many seconds without a request.
    pub idle_secs: i64,
    /// Ends this many seconds after login, however active.
    pub absolute_secs: i64,
}

/// Identify outcomes counted per workspace and minute (the console's live counts). Each call
/// counts once, in exactly one of these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallCounts {
    pub verified_seed: u64,
    pub verified_claims: u64,
    /// Accepted unverified, and strict mode would accept it too (off, nothing to report).
    pub unverified: u64,
    /// Accepted unverified in report-only mode; strict mode `on` would have refused it.
    pub would_reject: u64,
    pub rejected: u64,
}

impl CallCounts {
    pub fn add(&mut self, o: &CallCounts) {
        self.verified_seed += o.verified_seed;
        self.verified_claims += o.verified_claims;
        self.unverified += o.unverified;
        self.would_reject += o.would_reject;
        self.rejected += o.rejected;
    }

    pub fn verified(&self) -> u64 {
        self.verified_seed + self.verified_claims
    }

    pub fn total(&self) -> u64 {
        self.verified() + self.unverified + self.would_reject + self.rejected
    }

    pub fn is_zero(&self) -> bool {
        self.total() == 0
    }
}

/// Counts to add to one workspace's minute bucket (`minute` = Unix seconds / 60).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountsDelta {
    pub app_id: String,
    pub minute: i64,
    pub counts: CallCounts,
}

/// Most recent rejections kept per workspace.
pub const MAX_RECENT_REJECTIONS: usize = 100;

/// One refused (or, in report-only mode, would-be-refused) identify call, as the console shows
/// it. Never traits, signatures or tokens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectionEntry {
    pub app_id: String,
    pub at: i64,
    /// The 401 (or 403 `origin_not_allowed`) code.
    pub code: String,
    /// `false` for a report-only call that was accepted unverified.
    pub enforced: bool,
    pub key_id: Option<i64>,
    pub origin: Option<String>,
    pub user_id: Option<String>,
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
        match $self {
            Store::Sqlite(s) => s.run($mode, move |$c, $ring| sql::run_now($rule)).await,
            Store::Postgres(s) => s.run($mode, async move |$c, $ring| $rule.await).await,
        }
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
                        Err(StoreError::Postgres(format!(
                            "no answer from the database within {limit:?}"
                        )))
                    }),
            }
        }
    }

    /// Whether the store answers (health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// Reads every workspace now and puts them in the registry (after this instance changed
    /// one, so its own answer reflects the change at once).
    pub async fn reload(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.reload().await,
            Store::Postgres(s) => s.reload().await,
        }
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
