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

pub mod postgres;
pub mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

use crate::metrics::Metrics;
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

/// A handle to the store. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Calls the same method on whichever backend this is.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            Store::Postgres(s) => s.$method($($arg),*).await,
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

    /// Stores one accepted identify call; returns once it is committed.
    pub async fn identify(&self, write: IdentifyWrite) -> Result<(), StoreError> {
        dispatch!(self.identify(write))
    }

    /// Whether the store answers (health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self.ping())
    }

    /// Reads every workspace now and puts them in the registry (after this instance changed
    /// one, so its own answer reflects the change at once).
    pub async fn reload(&self) -> Result<(), StoreError> {
        dispatch!(self.reload())
    }

    pub async fn workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        dispatch!(self.workspaces())
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self.meta_get(key))
    }

    pub async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        dispatch!(self.meta_set(key, value))
    }

    /// Creates a workspace with a fresh app id and its first key (the secret is shown once).
    pub async fn create_workspace(
        &self,
        new: &NewWorkspace,
        actor: &str,
        now: i64,
    ) -> Result<NewKey, StoreError> {
        dispatch!(self.create_workspace(new, actor, now))
    }

    pub async fn update_workspace(
        &self,
        app_id: &str,
        patch: &WorkspacePatch,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        dispatch!(self.update_workspace(app_id, patch, actor, now))
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
        dispatch!(self.create_key(app_id, label, expires_at, actor, now))
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
        dispatch!(self.roll_key(app_id, key_id, grace_secs, actor, now))
    }

    /// Stops a key verifying now and forgets its secret.
    pub async fn retire_key(
        &self,
        app_id: &str,
        key_id: i64,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        dispatch!(self.retire_key(app_id, key_id, actor, now))
    }

    /// Retires every key but the newest live one (ends all grace periods now).
    pub async fn retire_old_keys(
        &self,
        app_id: &str,
        actor: &str,
        now: i64,
    ) -> Result<Workspace, StoreError> {
        dispatch!(self.retire_old_keys(app_id, actor, now))
    }

    pub async fn get_user(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        dispatch!(self.get_user(app_id, user_id))
    }

    /// Users in user-id order after `query.after`.
    pub async fn list_users(
        &self,
        app_id: &str,
        query: &UserQuery,
    ) -> Result<Vec<UserRecord>, StoreError> {
        dispatch!(self.list_users(app_id, query))
    }

    /// Deletes one user's stored data; `false` when there was none.
    pub async fn delete_user(
        &self,
        app_id: &str,
        user_id: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self.delete_user(app_id, user_id, actor, now))
    }

    /// The newest audit entries of a workspace, newest first.
    pub async fn audit_log(
        &self,
        app_id: &str,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        dispatch!(self.audit_log(app_id, limit))
    }
}
