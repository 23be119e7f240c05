//! Identify writes on the embedded store: one upsert statement per call, batched into one
//! transaction per group commit.

use rusqlite::{Connection, Transaction, params};

use super::Pending;
use crate::store::{MergeRows, StoreError, keys_used};
use crate::users::IdentifyWrite;

/// One identify write as one statement: the stored-data rules of [`crate::users::merge`] stated
/// in SQL ([`super::merge_on_conflict`], shared with the PostgreSQL backend), so the write
/// neither reads the stored user back nor rebuilds it in Rust. Three forms (see
/// [`MergeRows`]): SQLite rewrites the `users_verified` entry of every row whose update names
/// `verified`, a second random B-tree page dirtied per call, so only a write that can change it
/// (a verified call reaching an unverified or new user) uses the form that sets it.
struct Upserts {
    any: String,
    keep_verified: String,
    verified_only: String,
}

static UPSERT_USER: std::sync::LazyLock<Upserts> = std::sync::LazyLock::new(|| Upserts {
    any: upsert_user(MergeRows::Any),
    keep_verified: upsert_user(MergeRows::KeepVerified),
    verified_only: upsert_user(MergeRows::VerifiedOnly),
});

fn upsert_user(rows: MergeRows) -> String {
    format!(
        "
INSERT INTO users AS u (app_id, user_id, verified, method, key_id, verified_at, signed_at,
    name, email, plan, mrr, signup_date, custom, unverified_claims, first_seen, last_seen)
VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?3 THEN ?6 END, ?7,
    CASE WHEN ?3 THEN ?8 ELSE ?13 END,
    CASE WHEN ?3 THEN ?9 ELSE ?14 END,
    CASE WHEN ?3 THEN ?10 ELSE ?15 END,
    CASE WHEN ?3 THEN ?11 ELSE ?16 END,
    CASE WHEN ?3 THEN ?12 ELSE ?17 END,
    COALESCE(?19, '{{}}'), CASE WHEN ?3 THEN ?18 END, ?6, ?6)
{}",
        crate::store::merge_on_conflict("?18", rows)
    )
}

/// The [`UPSERT_USER`] statements of one transaction, prepared once per batch (looking a 2 KB
/// statement up in the statement cache hashes and compares its text).
struct UpsertStatements<'c> {
    any: rusqlite::CachedStatement<'c>,
    keep_verified: rusqlite::CachedStatement<'c>,
    verified_only: rusqlite::CachedStatement<'c>,
}

impl<'c> UpsertStatements<'c> {
    fn prepare(tx: &'c Transaction<'_>) -> rusqlite::Result<Self> {
        Ok(UpsertStatements {
            any: tx.prepare_cached(&UPSERT_USER.any)?,
            keep_verified: tx.prepare_cached(&UPSERT_USER.keep_verified)?,
            verified_only: tx.prepare_cached(&UPSERT_USER.verified_only)?,
        })
    }

    /// Stores one write: an unverified call never changes `verified`; a verified one first as
    /// an update of a verified user, and only if that changed no row (the user is stored
    /// unverified) with the form that promotes it.
    fn apply(&mut self, w: &IdentifyWrite) -> rusqlite::Result<()> {
        if w.verification.is_none() {
            return upsert(&mut self.keep_verified, w).map(drop);
        }
        if upsert(&mut self.verified_only, w)? == 0 {
            upsert(&mut self.any, w)?;
        }
        Ok(())
    }
}

/// Runs one form of [`UPSERT_USER`] for one write; returns the rows it inserted or updated.
fn upsert(stmt: &mut rusqlite::Statement<'_>, w: &IdentifyWrite) -> rusqlite::Result<usize> {
    let v = w.verification;
    let (t, c) = (&w.trusted, &w.claimed);
    stmt.execute(params![
        w.app_id,
        w.user_id,
        v.is_some(),
        v.map(|v| v.method),
        v.map(|v| v.key_id),
        w.now,
        v.map(|v| v.signed_at),
        t.name,
        t.email,
        t.plan,
        t.mrr,
        t.signup_date,
        c.name,
        c.email,
        c.plan,
        c.mrr,
        c.signup_date,
        w.claims_json(),
        w.custom_json(),
    ])
}

/// Records when each key last verified a call: once per key per batch, not per call.
fn touch_keys(tx: &Transaction<'_>, batch: &[Pending]) -> rusqlite::Result<()> {
    let used = keys_used(batch.iter().map(|(w, _)| w));
    if used.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "UPDATE keys SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
    )?;
    for (id, at) in used {
        stmt.execute(params![id, at])?;
    }
    Ok(())
}

/// Commits the batch in one transaction and answers every caller. If the transaction fails as
/// a whole, each write is retried in its own transaction so one bad record cannot fail the
/// others; whoever still fails gets the error (and so a 503, never a false 2xx).
pub(super) fn commit_batch(conn: &mut Connection, batch: &mut Vec<Pending>) {
    let together = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        {
            let mut upserts = UpsertStatements::prepare(&tx)?;
            for (w, _) in batch.iter() {
                upserts.apply(w)?;
            }
        }
        touch_keys(&tx, batch)?;
        tx.commit()
    })();
    match together {
        Ok(()) => {
            for (_, done) in batch.drain(..) {
                let _ = done.send(Ok(()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, size = batch.len(), "batch commit failed; retrying one by one");
            for (w, done) in batch.drain(..) {
                let one = (|| -> rusqlite::Result<()> {
                    let tx = conn.transaction()?;
                    UpsertStatements::prepare(&tx)?.apply(&w)?;
                    tx.commit()
                })();
                if let Err(e) = &one {
                    tracing::error!(error = %e, "storing an identify call failed");
                }
                let _ = done.send(one.map_err(StoreError::from));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::open_memory_conn;

    /// alone (no index entry deleted and reinserted), per SQLite's own query plan.
    #[test]
    fn only_the_promoting_upsert_rewrites_the_verified_index() {
        let conn = open_memory_conn().unwrap();
        let index_deletes = |sql: &str| {
            let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            // Unbound parameters are NULL: the plan does not depend on them.
            let mut rows = stmt.raw_query();
            let mut n = 0;
            while let Some(row) = rows.next().unwrap() {
                n += usize::from(row.get::<_, String>(1).unwrap() == "IdxDelete");
            }
            n
        };
        assert!(index_deletes(&UPSERT_USER.any) > 0);
        assert_eq!(index_deletes(&UPSERT_USER.keep_verified), 0);
        assert_eq!(index_deletes(&UPSERT_USER.verified_only), 0);
    }
}
