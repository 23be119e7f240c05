//! The language the store's rules speak to a backend: statements with arguments, rows back.
//!
//! Rule code (workspaces and keys, accounts and sessions, counts, user reads) is written once,
//! against [`Sql`], in the modules next to this one. A backend implements [`Sql`] for its
//! connection inside a transaction and says how it runs a rule ([`Mode`]); what differs between
//! engines is here and nowhere else:
//! - placeholders: statements are written with `$1, $2, ...`; a backend that spells them
//!   otherwise rewrites them ([`numbered_to_question`] for SQLite);
//! - locking: [`Sql::row_lock`] is the clause that locks the rows a statement reads until the
//!   transaction ends (PostgreSQL `FOR UPDATE`), or nothing where the transaction holds the
//!   whole database's write lock from its start (SQLite `BEGIN IMMEDIATE`); [`Sql::lock`] takes
//!   a named lock (PostgreSQL advisory locks) or nothing for the same reason;
//! - [`Sql::config_changed`]: tells the other instances to reload workspaces (PostgreSQL NOTIFY;
//!   SQLite instances see the commit through `PRAGMA data_version`);
//! - [`Sql::ilike`]: an ASCII-case-insensitive LIKE.
//!
//! The identify write path is not here: each backend keeps its own batched upsert, tuned to its
//! engine (it is the hot path).

use crate::store::StoreError;

/// One statement argument. Typed even when `NULL`, so that an engine that types parameters
/// (PostgreSQL) gets the column's type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<&'a str>),
    Bool(Option<bool>),
    Bytes(&'a [u8]),
}

/// `Arg::from` for each type a statement argument may have: `(type, variant, wrap)`.
macro_rules! arg_from {
    ($(($t:ty, $variant:ident, $wrap:expr)),* $(,)?) => {$(
        impl<'a> From<$t> for Arg<'a> {
            fn from(v: $t) -> Self {
                Arg::$variant($wrap(v))
            }
        }
    )*};
}

arg_from!(
    (i64, Int, Some),
    (Option<i64>, Int, std::convert::identity),
    (f64, Real, Some),
    (bool, Bool, Some),
    (Option<bool>, Bool, std::convert::identity),
    (&'a str, Text, Some),
    (&'a String, Text, |v: &'a String| Some(v.as_str())),
    (Option<&'a str>, Text, std::convert::identity),
    (&'a [u8], Bytes, std::convert::identity),
);

/// `&[Arg]` from values: `args![app_id, now, expires_at]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::store::sql::Arg::from($a)),*]
    };
}
pub(crate) use args;

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// A result row, read by column index with the type the rule expects. A value of another type
/// is an error (a schema this build does not know), never a guess.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row(pub(crate) Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> Result<&Cell, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Setup(format!("a result row has no column {i}")))
    }

    fn wrong(&self, i: usize, want: &str) -> StoreError {
        StoreError::Setup(format!(
            "column {i} of a stored row is not {want} ({:?}); is this a DropFix database?",
            self.0.get(i).map(std::mem::discriminant)
        ))
    }

    pub(crate) fn opt_i64(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(*v)),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    pub(crate) fn i64(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_i64(i)?.ok_or_else(|| self.wrong(i, "an integer"))
    }

    /// A count stored as an integer; a negative one reads as 0.
    pub(crate) fn count(&self, i: usize) -> Result<u64, StoreError> {
        Ok(u64::try_from(self.i64(i)?).unwrap_or(0))
    }

    pub(crate) fn opt_f64(&self, i: usize) -> Result<Option<f64>, StoreError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Real(v) => Ok(Some(*v)),
            // SQLite stores a REAL that is a whole number as given; it reads back as REAL, but
            // a value written by hand may be an integer.
            Cell::Int(v) => Ok(Some(*v as f64)),
            _ => Err(self.wrong(i, "a number")),
        }
    }

    /// A boolean column (SQLite stores 0/1).
    pub(crate) fn opt_bool(&self, i: usize) -> Result<Option<bool>, StoreError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Bool(v) => Ok(Some(*v)),
            Cell::Int(v) => Ok(Some(*v != 0)),
            _ => Err(self.wrong(i, "a boolean")),
        }
    }

    pub(crate) fn bool(&self, i: usize) -> Result<bool, StoreError> {
        self.opt_bool(i)?.ok_or_else(|| self.wrong(i, "a boolean"))
    }

    pub(crate) fn opt_str(&self, i: usize) -> Result<Option<&str>, StoreError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Text(v) => Ok(Some(v)),
            _ => Err(self.wrong(i, "text")),
        }
    }

    pub(crate) fn str(&self, i: usize) -> Result<&str, StoreError> {
        self.opt_str(i)?.ok_or_else(|| self.wrong(i, "text"))
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.opt_str(i)?.map(str::to_owned))
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.str(i)?.to_owned())
    }
}

/// Which rows a locking read locks until the transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowLock {
    /// Nobody else may change or lock them (the rows this transaction is about to change).
    Update,
    /// Nobody else may change them (rows this transaction's writes depend on).
    Share,
}

/// A lock held until the transaction ends, for what no single row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock<'a> {
    /// Creating the first workspace of an empty store (instances starting together create one).
    FirstWorkspace,
    /// One workspace's log of recent rejections (appended and trimmed by every instance).
    Rejections(&'a str),
}

/// How a backend runs a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads, in one consistent snapshot.
    Read,
    /// Reads and writes in one transaction that commits when the rule succeeds.
    Write,
    /// As [`Mode::Write`], for a change to workspaces or keys: this instance's registry is
    /// reloaded right after the commit, so its next answer reflects the change.
    Config,
}

/// A connection inside a transaction, as the rules use it. Implemented by each backend.
pub(crate) trait Sql {
    /// Runs one statement; returns how many rows it changed.
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError>;

    /// Runs one query; returns its rows.
    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError>;

    /// Runs one query; returns its rows, each read by `read`.
    async fn rows_as<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        read: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.rows(sql, args).await?.iter().map(read).collect()
    }

    /// The first row of a query, if any.
    async fn row(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<Row>, StoreError> {
        Ok(self.rows(sql, args).await?.into_iter().next())
    }

    /// The clause (with its leading space) that makes a `SELECT` lock the rows it reads.
    fn row_lock(&self, lock: RowLock) -> &'static str;

    /// Takes a named lock until the transaction ends.
    async fn lock(&mut self, lock: Lock<'_>) -> Result<(), StoreError>;

    /// Tells the other instances, at commit, that workspaces or keys changed.
    async fn config_changed(&mut self) -> Result<(), StoreError>;

    /// `LIKE` that folds ASCII case (the same matches on every backend).
    fn ilike(&self) -> &'static str;
}

/// The migrations a database whose schema is at version `found` still needs, each with the
/// version it brings the schema to (1 for the first). A schema newer than this build knows
/// (written by a newer dropfix-server, or not DropFix's) is refused: migrating or writing it
/// could corrupt it.
pub(crate) fn pending_migrations<'m>(
    migrations: &'m [&'m str],
    found: i64,
) -> Result<impl Iterator<Item = (i64, &'m str)>, StoreError> {
    let known = migrations.len();
    let version = usize::try_from(found)
        .ok()
        .filter(|&v| v <= known)
        .ok_or(StoreError::UnknownSchema { found, known })?;
    Ok((1..).zip(migrations.iter().copied()).skip(version))
}

/// `$1, $2` placeholders as `?1, ?2` (SQLite reads `$1` as a *named* parameter, numbered by
/// first appearance, so `$2 ... $1` would bind the wrong values).
pub(crate) fn numbered_to_question(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs a future that never waits (a rule over SQLite, whose statements run synchronously on
/// the store thread) to its end, on the calling thread.
pub(crate) fn run_now<T>(
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => Err(StoreError::Setup(
            "a store rule waited on the embedded store's thread (a bug)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_keep_their_numbers() {
        assert_eq!(
            numbered_to_question("UPDATE keys SET secret = $2 WHERE id = $1 AND x = '$'"),
            "UPDATE keys SET secret = ?2 WHERE id = ?1 AND x = '$'"
        );
    }

    #[test]
    fn a_value_of_another_type_is_an_error() {
        let row = Row(vec![Cell::Text("x".into()), Cell::Int(1), Cell::Null]);
        assert!(row.i64(0).is_err());
        assert_eq!(row.i64(1).unwrap(), 1);
        assert!(row.bool(1).unwrap());
        assert_eq!(row.opt_str(2).unwrap(), None);
        assert!(row.str(2).is_err());
        assert!(row.str(3).is_err());
    }
}
