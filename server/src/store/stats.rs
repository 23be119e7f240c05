//! The console's live figures as stored: identify outcomes per workspace and minute, and each
//! workspace's last rejections. Every instance flushes into the same rows, so counts are only
//! ever added to. Written once for every backend, over [`Sql`].

use super::sql::{Lock, Sql, args};
use super::{CallCounts, CountsDelta, MAX_RECENT_REJECTIONS, RejectionEntry, StoreError};

/// Per-minute counts older than this are deleted when new ones are flushed (the console shows
/// at most 7 days).
const COUNTS_KEEP_MINUTES: i64 = 8 * 24 * 60;

/// Adds the counts and appends the rejections, trimming each workspace's log to the newest
/// [`MAX_RECENT_REJECTIONS`].
pub(crate) async fn add_call_stats(
    c: &mut impl Sql,
    counts: &[CountsDelta],
    rejections: &[RejectionEntry],
) -> Result<(), StoreError> {
    // In key order, so that two instances flushing at once lock the same rows in the same
    // order (and neither waits on the other for ever).
    let mut sorted: Vec<&CountsDelta> = counts.iter().collect();
    sorted.sort_by(|a, b| (&a.app_id, a.minute).cmp(&(&b.app_id, b.minute)));
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for d in sorted {
        let k = &d.counts;
        c.exec(
            "INSERT INTO call_counts AS cc (app_id, minute, verified_seed, verified_claims,
                 unverified, would_reject, rejected, seed_with_traits)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (app_id, minute) DO UPDATE SET
                 verified_seed = cc.verified_seed + excluded.verified_seed,
                 verified_claims = cc.verified_claims + excluded.verified_claims,
                 unverified = cc.unverified + excluded.unverified,
                 would_reject = cc.would_reject + excluded.would_reject,
                 rejected = cc.rejected + excluded.rejected,
                 seed_with_traits = cc.seed_with_traits + excluded.seed_with_traits",
            args![
                &d.app_id,
                d.minute,
                n(k.verified_seed),
                n(k.verified_claims),
                n(k.unverified),
                n(k.would_reject),
                n(k.rejected),
                n(k.seed_with_traits),
            ],
        )
        .await?;
    }
    if let Some(newest) = counts.iter().map(|d| d.minute).max() {
        c.exec(
            "DELETE FROM call_counts WHERE minute < $1",
            args![newest - COUNTS_KEEP_MINUTES],
        )
        .await?;
    }
    let mut apps: Vec<&str> = rejections.iter().map(|r| r.app_id.as_str()).collect();
    apps.sort_unstable();
    apps.dedup();
    // One writer per workspace log at a time (locks taken in app id order): without it, two
    // instances could each trim to the limit before seeing the other's rows.
    for app in &apps {
        c.lock(Lock::Rejections(app)).await?;
    }
    for r in rejections {
        c.exec(
            "INSERT INTO recent_rejections (app_id, at, code, enforced, key_id, origin, user_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            args![
                &r.app_id,
                r.at,
                &r.code,
                r.enforced,
                r.key_id,
                r.origin.as_deref(),
                r.user_id.as_deref(),
            ],
        )
        .await?;
    }
    for app in apps {
        c.exec(
            "DELETE FROM recent_rejections WHERE app_id = $1 AND id <= (
                 SELECT id FROM recent_rejections WHERE app_id = $1
                 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            args![app, MAX_RECENT_REJECTIONS as i64],
        )
        .await?;
    }
    Ok(())
}

/// A workspace's per-minute counts from `since_minute` on, oldest first.
pub(crate) async fn call_counts(
    c: &mut impl Sql,
    app_id: &str,
    since_minute: i64,
) -> Result<Vec<(i64, CallCounts)>, StoreError> {
    c.rows_as(
        "SELECT minute, verified_seed, verified_claims, unverified, would_reject, rejected,
             seed_with_traits
         FROM call_counts WHERE app_id = $1 AND minute >= $2 ORDER BY minute",
        args![app_id, since_minute],
        |r| {
            Ok((
                r.i64(0)?,
                CallCounts {
                    verified_seed: r.count(1)?,
                    verified_claims: r.count(2)?,
                    unverified: r.count(3)?,
                    would_reject: r.count(4)?,
                    rejected: r.count(5)?,
                    seed_with_traits: r.count(6)?,
                },
            ))
        },
    )
    .await
}

/// A workspace's recent rejections, newest first.
pub(crate) async fn recent_rejections(
    c: &mut impl Sql,
    app_id: &str,
) -> Result<Vec<RejectionEntry>, StoreError> {
    c.rows_as(
        "SELECT at, code, enforced, key_id, origin, user_id FROM recent_rejections
         WHERE app_id = $1 ORDER BY id DESC LIMIT $2",
        args![app_id, MAX_RECENT_REJECTIONS as i64],
        |r| {
            Ok(RejectionEntry {
                app_id: app_id.to_string(),
                at: r.i64(0)?,
                code: r.text(1)?,
                enforced: r.bool(2)?,
                key_id: r.opt_i64(3)?,
                origin: r.opt_text(4)?,
                user_id: r.opt_text(5)?,
            })
        },
    )
    .await
}
