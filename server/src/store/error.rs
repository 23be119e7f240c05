//! Why the store could not do something, and how each reason is counted.

use crate::workspace::{IssuerRuleError, KeyRuleError};

/// Why the store could not do something. Details go to the log, never to HTTP clients.
#[derive(Debug)]
pub enum StoreError {
    Sqlite(rusqlite::Error),
    Postgres(String),
    /// The database did not answer in time (PostgreSQL: a pooled connection, a round, or a
    /// batch's answer).
    Timeout(String),
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
    /// A token issuer change broke a rule (the caller's mistake, answered 4xx).
    Issuer(IssuerRuleError),
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
            StoreError::Postgres(e) | StoreError::Timeout(e) => write!(f, "postgres: {e}"),
            StoreError::Closed => f.write_str("store stopped"),
            StoreError::UnknownSchema { found, known } => write!(
                f,
                "the database has schema version {found}, this dropfix-server knows 0..={known} \
                 (written by a newer version?); refusing to open it"
            ),
            StoreError::WorkspaceNotFound => f.write_str("no workspace has this app id"),
            StoreError::Key(e) => write!(f, "{e}"),
            StoreError::Issuer(e) => write!(f, "{e}"),
            StoreError::Sealing(e) => write!(f, "sealed secret: {e}"),
            StoreError::Setup(e) => f.write_str(e),
            StoreError::InvalidValue(field) => {
                write!(f, "{field} holds a NUL character, which no backend stores")
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// Its kind in `dropfix_store_errors_total` (one of [`crate::metrics::STORE_ERROR_KINDS`]);
    /// `None` for the caller's mistakes (no such workspace, a key rule), which are answered 4xx
    /// and say nothing about the store.
    pub fn kind(&self) -> Option<&'static str> {
        use rusqlite::ErrorCode as Code;
        Some(match self {
            StoreError::WorkspaceNotFound | StoreError::Key(_) | StoreError::Issuer(_) => {
                return None;
            }
            StoreError::Timeout(_) => "timeout",
            StoreError::Sealing(_) => "sealing",
            StoreError::InvalidValue(_) => "invalid_value",
            // PostgreSQL's errors are mostly a database away or failing; the rules' own
            // refusals are checked before any statement runs.
            StoreError::Postgres(_) | StoreError::Closed => "unavailable",
            StoreError::Sqlite(e) => match e.sqlite_error_code() {
                Some(Code::DatabaseBusy | Code::DatabaseLocked) => "timeout",
                Some(
                    Code::SystemIoFailure
                    | Code::DiskFull
                    | Code::CannotOpen
                    | Code::ReadOnly
                    | Code::DatabaseCorrupt
                    | Code::NotADatabase
                    | Code::PermissionDenied
                    | Code::OutOfMemory
                    | Code::FileLockingProtocolFailed,
                ) => "unavailable",
                _ => "other",
            },
            StoreError::UnknownSchema { .. } | StoreError::Setup(_) => "other",
        })
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl From<IssuerRuleError> for StoreError {
    fn from(e: IssuerRuleError) -> Self {
        StoreError::Issuer(e)
    }
}

impl From<KeyRuleError> for StoreError {
    fn from(e: KeyRuleError) -> Self {
        StoreError::Key(e)
    }
}
