//! Identify writes on PostgreSQL: a per-instance batcher task commits whatever is queued as one
//! call of the batch function ([`BATCH_FUNCTION`]): one statement, one round trip, its own
//! transaction; a failed batch is split to find the write that cannot be stored.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use deadpool_postgres::{Pool, PoolError};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_postgres::types::{ToSql, Type};

use super::{MAX_BATCH, Pending, describe, pooled};
use crate::metrics::Metrics;
use crate::store::{Hooks, MergeRows, StoreError, keys_used, merge_changes, merge_on_conflict};
use crate::users::IdentifyWrite;

/// One round of the batch: at most one write per user, as columns for UNNEST.
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
///
/// `$20` is each write's round and `r` the round the loop of [`BATCH_FUNCTION`] is at.
fn upsert_round() -> String {
    let claims = "(SELECT s.claims FROM src s WHERE s.app_id = excluded.app_id AND s.user_id = excluded.user_id)";
    format!(
        "
    WITH src AS (
        SELECT * FROM UNNEST(
            $1::text[], $2::text[], $3::int8[], $4::bool[], $5::text[], $6::int8[], $7::int8[],
            $8::text[], $9::text[], $10::text[], $11::float8[], $12::text[],
            $13::text[], $14::text[], $15::text[], $16::float8[], $17::text[],
            $18::text[], $19::text[], $20::int4[]
        ) AS s(app_id, user_id, now, verified, method, key_id, signed_at,
               t_name, t_email, t_plan, t_mrr, t_signup_date,
               c_name, c_email, c_plan, c_mrr, c_signup_date,
               claims, custom, round)
        WHERE s.round = r
    ), ins AS (
        SELECT app_id, user_id, verified, method, key_id, CASE WHEN verified THEN now END AS verified_at,
            signed_at,
            CASE WHEN verified THEN t_name ELSE c_name END AS name,
            CASE WHEN verified THEN t_email ELSE c_email END AS email,
            CASE WHEN verified THEN t_plan ELSE c_plan END AS plan,
            CASE WHEN verified THEN t_mrr ELSE c_mrr END AS mrr,
            CASE WHEN verified THEN t_signup_date ELSE c_signup_date END AS signup_date,
            COALESCE(custom, '{{}}') AS custom,
            CASE WHEN verified THEN claims END AS unverified_claims,
            now AS first_seen, now AS last_seen
        FROM src
    )
    INSERT INTO users AS u (app_id, user_id, verified, method, key_id, verified_at, signed_at,
        name, email, plan, mrr, signup_date, custom, unverified_claims, first_seen, last_seen)
    SELECT excluded.*
    FROM ins AS excluded
    LEFT JOIN users AS u ON u.app_id = excluded.app_id AND u.user_id = excluded.user_id
    WHERE u.user_id IS NULL OR {changes}
    {conflict};",
        // The join leaves out the calls that would change nothing (see `merge_changes`): the
        // conflict clause alone would still lock their rows. It keeps its own condition for a
        // row another instance changed since. The join is one probe of the primary key per call
        // (the only index that leads with app_id since migration 8, and nested loops only),
        // whatever the statistics of `users` when the plan was made.
        changes = merge_changes(claims),
        // PostgreSQL decides from the values, not the SET list, whether an indexed column
        // changed (an update that changes none can be HOT), so one form serves every call.
        conflict = merge_on_conflict(claims, MergeRows::Any),
    )
}

/// The identify batch as one PL/pgSQL function, created by the migrations (see
/// `sync::migrate`): its name ends with a hash of its text, so instances of different versions
/// on one database (a rolling upgrade) each call their own rules.
///
/// Why a function: PL/pgSQL keeps the plans of its statements per server connection (a generic
/// plan, `plan_cache_mode` below), so the upsert is planned once per connection, not once per
/// batch, yet the call itself is a plain unnamed `SELECT`: it needs no prepared statement of
/// the client's, and works the same through a transaction-mode pooler, where a statement
/// prepared by name on one server connection is missing on the next. And the whole batch (its
/// rounds, then the keys' `last_used_at`) is one statement in its own transaction: one round
/// trip where BEGIN, a statement per round and COMMIT were three or more.
///
/// Arguments: `$1`-`$19` the writes' columns ([`Columns::params`]), `$20` each write's round,
/// `$21` the number of rounds, `$22`/`$23` the keys used and when (`keys_used`).
pub(super) static BATCH_FUNCTION: LazyLock<BatchFunction> = LazyLock::new(|| {
    let body = format!(
        "
BEGIN
    FOR r IN 1..$21 LOOP{}
    END LOOP;
    UPDATE keys k SET last_used_at = t.at
    FROM UNNEST($22::int8[], $23::int8[]) AS t(id, at)
    WHERE k.id = t.id AND (k.last_used_at IS NULL OR k.last_used_at < t.at);
END
",
        upsert_round()
    );
    let args = "text[], text[], int8[], bool[], text[], int8[], int8[], \
        text[], text[], text[], float8[], text[], text[], text[], text[], float8[], text[], \
        text[], text[], int4[], int4, int8[], int8[]";
    // The plans are made once per connection, maybe while `users` is still empty, and kept
    // until the table's statistics change: every lookup here is by key, so only index scans
    // and nested loops, whatever those statistics said (see migration 8 for what they did).
    let settings = "SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off";
    let hash = hex::encode(&Sha256::digest(format!("{args}\n{settings}\n{body}").as_bytes())[..6]);
    let name = format!("dropfix_identify_{hash}");
    let create = format!(
        "CREATE FUNCTION {name}({args}) RETURNS void LANGUAGE plpgsql
{settings}
AS $dropfix${body}$dropfix$"
    );
    let call = format!(
        "SELECT {name}({})",
        (1..=23)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    BatchFunction { name, create, call }
});

/// See [`BATCH_FUNCTION`].
pub(super) struct BatchFunction {
    /// `dropfix_identify_` and 12 hex digits of the hash of its arguments, settings and body.
    pub(super) name: String,
    /// `CREATE FUNCTION ...`, run once per database by the migrations.
    pub(super) create: String,
    /// `SELECT name($1, ..., $23)`.
    call: String,
}

/// A batch's writes as the function's columns: rounds one after the other, each in key order.
#[derive(Default)]
struct Columns<'a> {
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
    round: Vec<i32>,
    rounds: i32,
    key_ids: Vec<i64>,
    key_ats: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, w: &'a IdentifyWrite, round: i32) {
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
        self.round.push(round);
        self.rounds = self.rounds.max(round);
    }

    /// The arguments with their types, in the order of [`BATCH_FUNCTION`]'s `$n` (sent
    /// unnamed: see `super::typed`).
    fn params(&self) -> [(&(dyn ToSql + Sync), Type); 23] {
        let (text, int8, boolean, float8) = (
            Type::TEXT_ARRAY,
            Type::INT8_ARRAY,
            Type::BOOL_ARRAY,
            Type::FLOAT8_ARRAY,
        );
        [
            (&self.app_id, text.clone()),
            (&self.user_id, text.clone()),
            (&self.now, int8.clone()),
            (&self.verified, boolean),
            (&self.method, text.clone()),
            (&self.key_id, int8.clone()),
            (&self.signed_at, int8.clone()),
            (&self.t_name, text.clone()),
            (&self.t_email, text.clone()),
            (&self.t_plan, text.clone()),
            (&self.t_mrr, float8.clone()),
            (&self.t_signup_date, text.clone()),
            (&self.c_name, text.clone()),
            (&self.c_email, text.clone()),
            (&self.c_plan, text.clone()),
            (&self.c_mrr, float8),
            (&self.c_signup_date, text.clone()),
            (&self.claims, text.clone()),
            (&self.custom, text),
            (&self.round, Type::INT4_ARRAY),
            (&self.rounds, Type::INT4),
            (&self.key_ids, int8.clone()),
            (&self.key_ats, int8),
        ]
    }
}

/// A batch as columns, split into rounds: the first write of each user in round 1, its second
/// in round 2, and so on. One statement cannot upsert a row twice, and applying the rounds in
/// order keeps the exact arrival-order outcome of the calls one by one. A write equal to the
/// user's previous one in the batch (the same call again within the second, as a busy user's
/// pages send it) is stored once: it would change nothing ([`IdentifyWrite`]), and each round
/// is a statement. Within a round, rows are in key order so that two instances lock the same
/// users in the same order.
fn columns<'a>(writes: &[&'a IdentifyWrite]) -> Columns<'a> {
    let mut seen: HashMap<(&str, &str), (i32, &IdentifyWrite)> =
        HashMap::with_capacity(writes.len());
    let mut ordered: Vec<(i32, &'a IdentifyWrite)> = writes
        .iter()
        .filter_map(|w| {
            let (round, last) = seen.entry((&w.app_id, &w.user_id)).or_insert((0, w));
            if *round > 0 && *last == *w {
                return None;
            }
            *round += 1;
            *last = w;
            Some((*round, *w))
        })
        .collect();
    // Stable: a user's writes are in different rounds, so arrival order within a round does
    // not matter, and the sort key is unique.
    ordered.sort_unstable_by(|(ra, a), (rb, b)| {
        (ra, &a.app_id, &a.user_id).cmp(&(rb, &b.app_id, &b.user_id))
    });
    let mut columns = Columns::default();
    for (round, w) in ordered {
        columns.push(w, round);
    }
    (columns.key_ids, columns.key_ats) = keys_used(writes.iter().copied()).into_iter().unzip();
    columns
}

/// Commits `writes` as one call of [`BATCH_FUNCTION`], outside any transaction block, so the
/// call is its own transaction: answered only after its commit.
async fn write_batch(
    pool: &Pool,
    metrics: &Metrics,
    writes: &[&IdentifyWrite],
) -> Result<(), BatchError> {
    let columns = columns(writes);
    let client = pooled(pool, metrics).await.map_err(BatchError::pool)?;
    client
        .execute_typed(&BATCH_FUNCTION.call, &columns.params())
        .await?;
    Ok(())
}

/// Why a batch failed, and whether retrying helps.
struct BatchError {
    message: String,
    kind: Failure,
    /// No answer in time (a [`Failure::Unavailable`] that is counted as a timeout).
    timed_out: bool,
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
        // The message without StoreError's "postgres: ", which to_store_error adds back.
        let (timed_out, message) = match StoreError::from(e) {
            StoreError::Timeout(m) => (true, m),
            StoreError::Postgres(m) => (false, m),
            other => (false, other.to_string()),
        };
        BatchError {
            timed_out,
            message,
            kind: Failure::Unavailable,
        }
    }

    /// The error every caller of the failed batch gets.
    fn to_store_error(&self) -> StoreError {
        if self.timed_out {
            StoreError::Timeout(self.message.clone())
        } else {
            StoreError::Postgres(self.message.clone())
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
            message: describe(&e),
            kind,
            timed_out: false,
        }
    }
}

async fn bounded_batch(
    limit: Duration,
    pool: &Pool,
    metrics: &Metrics,
    writes: &[&IdentifyWrite],
) -> Result<(), BatchError> {
    tokio::time::timeout(limit, write_batch(pool, metrics, writes))
        .await
        .unwrap_or_else(|_| {
            Err(BatchError {
                message: format!("the database did not answer within {limit:?}"),
                kind: Failure::Unavailable,
                timed_out: true,
            })
        })
}

/// The batcher task: drains whatever is queued (up to [`MAX_BATCH`]), commits it, answers every
/// caller, repeats. One batch is in flight at a time, so writes commit in arrival order. Ends
/// when every store handle is dropped (after answering what was queued).
pub(super) async fn batcher(
    mut rx: mpsc::Receiver<Pending>,
    pool: Pool,
    hooks: Hooks,
    limit: Duration,
) {
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
        commit_batch(&pool, &hooks.metrics, &mut batch, limit).await;
    }
    tracing::debug!("postgres batcher stopped");
}

pub(super) async fn commit_batch(
    pool: &Pool,
    metrics: &Metrics,
    batch: &mut Vec<Pending>,
    limit: Duration,
) {
    let writes: Vec<&IdentifyWrite> = batch.iter().map(|(w, _)| w).collect();
    let mut result = bounded_batch(limit, pool, metrics, &writes).await;
    if let Err(e) = &result
        && e.kind == Failure::Transient
    {
        tracing::info!(error = %e.message, size = writes.len(), "batch conflicted; retrying");
        result = bounded_batch(limit, pool, metrics, &writes).await;
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
            bisect(pool, metrics, limit, &writes, &mut answers).await;
            for ((_, done), answer) in batch.drain(..).zip(answers) {
                let answer = answer.unwrap_or_else(|| Err("not committed".into()));
                let _ = done.send(answer.map_err(StoreError::Postgres));
            }
        }
        Err(e) => {
            // The database away is logged once, by the calls' outage tracker (store::Outage).
            if e.kind == Failure::Unavailable {
                tracing::debug!(error = %e.message, size = batch.len(), "storing identify calls failed");
            } else {
                tracing::error!(error = %e.message, size = batch.len(), "storing identify calls failed");
            }
            for (_, done) in batch.drain(..) {
                let _ = done.send(Err(e.to_store_error()));
            }
        }
    }
}

/// Whether stored JSON text holds a NUL character escaped as `\u0000` in a string, which
/// PostgreSQL's jsonb refuses. (Text that does not parse is left for the insert to report.)
pub(super) fn json_text_has_nul(s: &str) -> bool {
    s.contains("\\u0000")
        && serde_json::from_str::<serde_json::Value>(s)
            .is_ok_and(|v| crate::users::json_has_nul(&v))
}

/// Commits `writes` in halves after their batch failed on a value: the half without the bad
/// write commits at its first try, so one bad write costs about 2 log2(n) small statements
/// instead of one statement per write, and only it gets the error.
async fn bisect(
    pool: &Pool,
    metrics: &Metrics,
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
        match bounded_batch(limit, pool, metrics, part).await {
            Ok(()) => out.fill(Some(Ok(()))),
            Err(e) if e.kind != Failure::Unavailable && part.len() > 1 => {
                Box::pin(bisect(pool, metrics, limit, part, out)).await;
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
        let mut ws = [
            write("b", false),
            write("a", true),
            write("b", true),
            write("b", false),
            write("c", false),
        ];
        ws[1].verification.as_mut().unwrap().key_id = 7;
        ws[1].now = 5;
        ws[2].now = 9;
        let refs: Vec<&IdentifyWrite> = ws.iter().collect();
        let c = columns(&refs);
        assert_eq!(c.user_id, vec!["a", "b", "c", "b", "b"]);
        assert_eq!(c.round, vec![1, 1, 1, 2, 3]);
        assert_eq!(c.rounds, 3);
        // Arrival order per user is kept: b's first write (unverified) comes first.
        assert_eq!(c.verified, vec![true, false, false, true, false]);
        // Each key once, with the latest time it verified a call.
        assert_eq!((c.key_ids, c.key_ats), (vec![1, 7], vec![9, 5]));
    }

    #[test]
    fn a_users_call_repeated_unchanged_is_stored_once() {
        let (a, b) = (write("a", true), write("b", false));
        let mut a_later = a.clone();
        a_later.now = 2;
        let ws = [&a, &b, &a, &a, &b, &a_later, &a, &b];
        let c = columns(&ws);
        // a: a (a a dropped), a_later, a again (differs from a_later); b: b (b dropped), b.
        assert_eq!(c.user_id, vec!["a", "b", "a", "a"]);
        assert_eq!(c.round, vec![1, 1, 2, 3]);
        assert_eq!(c.now, vec![1, 1, 2, 1]);
        assert_eq!(c.rounds, 3);
    }

    #[test]
    fn the_function_is_named_by_its_text_and_called_with_every_argument() {
        let f = &*BATCH_FUNCTION;
        assert!(f.name.starts_with("dropfix_identify_") && f.name.len() == 29);
        assert!(f.create.contains(&f.name) && f.call.contains(&f.name));
        // Plans kept per connection must not depend on how big `users` was when made.
        for setting in ["enable_seqscan", "enable_hashjoin", "enable_mergejoin"] {
            assert!(
                f.create.contains(&format!("SET {setting} = off")),
                "{setting}"
            );
        }
        assert!(f.call.ends_with("$22, $23)"));
        assert_eq!(
            f.call.matches('$').count(),
            Columns::default().params().len()
        );
    }
}
