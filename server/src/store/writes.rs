//! What both backends share on the identify write path: how a caller learns its write was
//! committed ([`Queued`]), and the stored-data rules of [`crate::users::merge`] as the SQL
//! clause every upsert ends with ([`merge_on_conflict`]).

use crate::store::StoreError;
use crate::users::IdentifyWrite;

/// The stored-data rules of [`crate::users::merge`] as the `ON CONFLICT ... DO UPDATE` clause
/// both backends' identify upserts end with, written once: `u` is the stored row, `excluded` the
/// call's row as the upsert would insert it (trusted values when verified, claimed ones when
/// not; `custom` is `'{}'` when the call sent none), and `claims` the SQL expression for the
/// call's claims object, which becomes the stored `unverified_claims` when an unverified call
/// reaches a verified user. `server/tests/store_behaviour.rs` checks both backends against
/// `merge`.
///
/// The update happens only if it changes the record beyond [`crate::users::SEEN_RESOLUTION`]:
/// a call that leaves every value as stored and moves the times (`last_seen`, `verified_at`,
/// `signed_at`) by less than that updates no row, so the repeat calls of an active user cost
/// no page written (SQLite) and no new row version (PostgreSQL, whose batch also leaves such
/// calls out before the upsert: [`merge_changes`]).
///
/// `rows` narrows the clause for SQLite, whose update rewrites an index entry whenever a column
/// of that index is in the SET list, even to the value it has: see [`MergeRows`].
pub(crate) fn merge_on_conflict(claims: &str, rows: MergeRows) -> String {
    let (set, changed) = merge_rule(claims, rows);
    let only = if rows == MergeRows::VerifiedOnly {
        "u.verified AND "
    } else {
        ""
    };
    format!("ON CONFLICT (app_id, user_id) DO UPDATE SET\n    {set}\nWHERE {only}(\n    {changed})")
}

/// Whether the stored row `u` would change beyond [`crate::users::SEEN_RESOLUTION`] under the
/// call `excluded` (the condition of [`merge_on_conflict`]'s update). PostgreSQL locks a row
/// that an `ON CONFLICT DO UPDATE` reaches even when its condition then updates nothing (a
/// WAL record and a dirtied page), so its batch also filters with this before the upsert.
pub(crate) fn merge_changes(claims: &str) -> String {
    merge_rule(claims, MergeRows::Any).1
}

/// The SET list of [`merge_on_conflict`] and the condition that it changes the row, from one
/// list of columns.
fn merge_rule(claims: &str, rows: MergeRows) -> (String, String) {
    let trait_value = |col: &'static str| {
        (
            col,
            format!(
                "CASE WHEN u.verified AND NOT excluded.verified THEN u.{col}
                WHEN excluded.verified AND NOT u.verified THEN excluded.{col}
                ELSE COALESCE(excluded.{col}, u.{col}) END"
            ),
        )
    };
    let verification = |col: &'static str| {
        (
            col,
            format!("CASE WHEN excluded.verified THEN excluded.{col} ELSE u.{col} END"),
        )
    };
    let mut values = Vec::new();
    if rows == MergeRows::Any {
        values.push(("verified", "u.verified OR excluded.verified".to_string()));
    }
    values.extend(["method", "key_id"].map(verification));
    values.extend(["name", "email", "plan", "mrr", "signup_date"].map(trait_value));
    values.push((
        "custom",
        "CASE WHEN u.verified AND NOT excluded.verified THEN u.custom
        WHEN excluded.verified AND NOT u.verified THEN excluded.custom
        WHEN excluded.custom = '{}' THEN u.custom ELSE excluded.custom END"
            .to_string(),
    ));
    values.push((
        "unverified_claims",
        format!(
            "CASE
        WHEN excluded.verified THEN excluded.unverified_claims
        WHEN u.verified THEN COALESCE({claims}, u.unverified_claims)
        ELSE NULL END"
        ),
    ));
    let mut times = vec![
        verification("verified_at"),
        verification("signed_at"),
        ("last_seen", "excluded.last_seen".to_string()),
    ];
    let set = values
        .iter()
        .chain(&times)
        .map(|(col, value)| format!("{col} = {value}"))
        .collect::<Vec<_>>()
        .join(",\n    ");
    // A time "moves" when it goes from or to NULL, or by at least the resolution either way.
    let resolution = crate::users::SEEN_RESOLUTION;
    let changed = values
        .iter()
        .map(|(col, value)| format!("({value}) IS DISTINCT FROM u.{col}"))
        .chain(times.drain(..).map(|(col, value)| {
            format!(
                "COALESCE(abs(({value}) - u.{col}) >= {resolution}, ({value}) IS DISTINCT FROM u.{col})"
            )
        }))
        .collect::<Vec<_>>()
        .join("\n    OR ");
    (set, changed)
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
    /// [`MergeRows::Any`] form, which promotes it (and which also updates nothing when the call
    /// found a verified row it leaves unchanged to the minute).
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

/// The keys a batch's verified writes used, each once, with the latest time it was used (a
/// batch records `last_used_at` once per key, not per call), by key id.
pub(crate) fn keys_used<'a>(writes: impl Iterator<Item = &'a IdentifyWrite>) -> Vec<(i64, i64)> {
    let mut used: Vec<(i64, i64)> = writes
        .filter_map(|w| w.verification.map(|v| (v.key_id, w.now)))
        .collect();
    used.sort_unstable();
    // Keep the latest time per key (the vector is sorted by key, then time).
    used.dedup_by(|a, b| {
        if a.0 == b.0 {
            b.1 = b.1.max(a.1);
            true
        } else {
            false
        }
    });
    used
}
