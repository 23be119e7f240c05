//! Identify outcomes for the console's live counts and recent rejections.
//!
//! The identify path only touches memory: [`Stats`] adds each outcome to a per-(workspace,
//! minute) counter and queues rejections. A task (started with the [`crate::state::AppState`])
//! moves them to the store every couple of seconds, where the store *adds* them to what is there,
//! so with several verifier instances on one PostgreSQL the console shows totals across all of
//! them. A rejected call still stores no user: the rejections go to their own bounded log.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use dropfix_core::{Rejection, SecretKey, seed};

use crate::store::{CallCounts, CountsDelta, MAX_RECENT_REJECTIONS, RejectionEntry, Store};

/// How an accepted identify call counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    VerifiedSeed,
    /// Verified with the seed form, with plan or MRR beside it (outside the signature).
    VerifiedSeedWithTraits,
    VerifiedClaims,
    Unverified,
    /// Accepted unverified in report-only mode; strict mode `on` would refuse it.
    WouldReject,
}

/// Rejections queued in memory between flushes, at most (if the store is down for a long time,
/// the oldest are dropped rather than growing without bound; the counts are never dropped).
const MAX_QUEUED_REJECTIONS: usize = 10 * MAX_RECENT_REJECTIONS;

#[derive(Debug, Default)]
struct Pending {
    counts: HashMap<String, HashMap<i64, CallCounts>>,
    rejections: VecDeque<RejectionEntry>,
}

/// This instance's not-yet-flushed counts and rejections.
#[derive(Debug, Default)]
pub struct Stats {
    // A std Mutex: held for a hash-map update, never across an await.
    pending: Mutex<Pending>,
}

impl Stats {
    fn counts_at<R>(&self, app_id: &str, now: i64, f: impl FnOnce(&mut CallCounts) -> R) -> R {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        // Allocates the app id only the first time a workspace is seen between two flushes.
        let per_app = match p.counts.get_mut(app_id) {
            Some(m) => m,
            None => p.counts.entry(app_id.to_string()).or_default(),
        };
        f(per_app.entry(now.div_euclid(60)).or_default())
    }

    /// Counts an accepted (stored) identify call.
    pub fn count(&self, app_id: &str, now: i64, outcome: Outcome) {
        self.counts_at(app_id, now, |c| match outcome {
            Outcome::VerifiedSeed => c.verified_seed += 1,
            Outcome::VerifiedSeedWithTraits => {
                c.verified_seed += 1;
                c.seed_with_traits += 1;
            }
            Outcome::VerifiedClaims => c.verified_claims += 1,
            Outcome::Unverified => c.unverified += 1,
            Outcome::WouldReject => c.would_reject += 1,
        });
    }

    /// Counts a refused call and queues it for the recent-rejections log.
    pub fn reject(&self, entry: RejectionEntry) {
        self.counts_at(&entry.app_id, entry.at, |c| c.rejected += 1);
        self.queue(entry);
    }

    /// [`Stats::reject`] for an identify call refused with `code`.
    pub fn refused(
        &self,
        app_id: &str,
        at: i64,
        code: &str,
        origin: Option<&str>,
        user_id: &str,
        key_id: Option<i64>,
    ) {
        self.reject(rejection(app_id, at, code, true, origin, user_id, key_id));
    }

    /// Queues a report-only would-be rejection for the log (its count comes with [`Stats::count`]
    /// once the call is stored).
    pub fn would_refuse(
        &self,
        app_id: &str,
        at: i64,
        code: &str,
        origin: Option<&str>,
        user_id: &str,
    ) {
        self.queue(rejection(app_id, at, code, false, origin, user_id, None));
    }

    fn queue(&self, entry: RejectionEntry) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.rejections.len() >= MAX_QUEUED_REJECTIONS {
            p.rejections.pop_front();
        }
        p.rejections.push_back(entry);
    }

    fn take(&self) -> (Vec<CountsDelta>, Vec<RejectionEntry>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let p = std::mem::take(&mut *p);
        let counts = p
            .counts
            .into_iter()
            .flat_map(|(app_id, minutes)| {
                minutes
                    .into_iter()
                    .map(move |(minute, counts)| CountsDelta {
                        app_id: app_id.clone(),
                        minute,
                        counts,
                    })
            })
            .collect();
        (counts, p.rejections.into())
    }

    /// Puts back what a failed flush took, so the next flush adds it (nothing is counted twice:
    /// a failed flush committed nothing).
    fn restore(&self, counts: Vec<CountsDelta>, rejections: Vec<RejectionEntry>) {
        for d in counts {
            self.counts_at(&d.app_id, d.minute * 60, |c| c.add(&d.counts));
        }
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let newer = std::mem::replace(&mut p.rejections, rejections.into());
        p.rejections.extend(newer);
        let excess = p.rejections.len().saturating_sub(MAX_QUEUED_REJECTIONS);
        p.rejections.drain(..excess);
    }

    /// Writes what is pending to the store (adding to the stored counts).
    pub async fn flush(&self, store: &Store) -> Result<(), crate::store::StoreError> {
        let (counts, rejections) = self.take();
        if counts.is_empty() && rejections.is_empty() {
            return Ok(());
        }
        if let Err(e) = store
            .add_call_stats(counts.clone(), rejections.clone())
            .await
        {
            self.restore(counts, rejections);
            return Err(e);
        }
        Ok(())
    }
}

/// A rejection log entry.
pub fn rejection(
    app_id: &str,
    at: i64,
    code: &str,
    enforced: bool,
    origin: Option<&str>,
    user_id: &str,
    key_id: Option<i64>,
) -> RejectionEntry {
    RejectionEntry {
        app_id: app_id.to_string(),
        at,
        code: code.to_string(),
        enforced,
        key_id,
        origin: origin.map(str::to_string),
        user_id: Some(user_id.to_string()),
    }
}

/// For a refusal of a call whose seed signature did verify (expired, from the future, seed form
/// where signed claims are required), which key signed it. `None` for mismatches and malformed
/// signatures: those are what a forger sends, and they cost no extra HMAC here.
pub fn signing_key(
    code: &str,
    secrets: &[SecretKey],
    key_ids: &[i64],
    user_id: &str,
    signature: Option<&str>,
) -> Option<i64> {
    let worth_looking = [
        Rejection::SignatureExpired,
        Rejection::SignedAtInFuture,
        Rejection::SignedAtNotSeconds,
        Rejection::SignedClaimsRequired,
    ]
    .iter()
    .any(|r| r.code() == code);
    if !worth_looking {
        return None;
    }
    match seed::verify(secrets, user_id, signature?) {
        seed::SeedCheck::Valid { key_index } => key_ids.get(key_index).copied(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_to_their_minute_and_a_take_empties() {
        let s = Stats::default();
        s.count("a", 120, Outcome::VerifiedSeed);
        s.count("a", 179, Outcome::WouldReject);
        s.count("a", 180, Outcome::Unverified);
        s.reject(rejection(
            "b",
            61,
            "signature_mismatch",
            true,
            None,
            "u",
            None,
        ));
        let (mut counts, rej) = s.take();
        counts.sort_by(|x, y| (&x.app_id, x.minute).cmp(&(&y.app_id, y.minute)));
        assert_eq!(counts.len(), 3);
        assert_eq!((counts[0].minute, counts[0].counts.verified_seed), (2, 1));
        assert_eq!(counts[0].counts.would_reject, 1);
        assert_eq!((counts[1].minute, counts[1].counts.unverified), (3, 1));
        assert_eq!(
            (counts[2].app_id.as_str(), counts[2].counts.rejected),
            ("b", 1)
        );
        assert_eq!(rej.len(), 1);
        assert_eq!(s.take(), (vec![], vec![]));
    }

    #[test]
    fn a_failed_flush_is_restored_once() {
        let s = Stats::default();
        s.count("a", 0, Outcome::Unverified);
        let (c, r) = s.take();
        s.count("a", 0, Outcome::Unverified);
        s.restore(c, r);
        let (c, _) = s.take();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].counts.unverified, 2);
    }

    #[test]
    fn the_rejection_queue_keeps_the_newest() {
        let s = Stats::default();
        for i in 0..(MAX_QUEUED_REJECTIONS as i64 + 5) {
            s.reject(rejection(
                "a",
                i,
                "signature_mismatch",
                true,
                None,
                "u",
                None,
            ));
        }
        let (counts, rej) = s.take();
        assert_eq!(rej.len(), MAX_QUEUED_REJECTIONS);
        assert_eq!(rej[0].at, 5);
        // Counts are never dropped.
        let total: u64 = counts.iter().map(|d| d.counts.rejected).sum();
        assert_eq!(total, MAX_QUEUED_REJECTIONS as u64 + 5);
    }
}
