//! What the log says while the store is away: one line when it stops answering (with the
//! cause and what to do), a summary every [`SUMMARY_EVERY`] while it stays away (how many
//! calls were refused), and one line when it answers again (how long it was away). The calls
//! refused meanwhile are logged one by one only at debug level: a 10 s database outage under
//! load used to write thousands of identical ERROR lines.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::StoreError;

/// How often a summary is logged while the store stays away.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// The store's availability as the calls and health checks see it. Shared by the whole server.
#[derive(Debug, Default)]
pub struct Outage {
    /// Whether `since` is set: read on every successful call without taking the lock.
    down: AtomicBool,
    since: Mutex<Option<Down>>,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    refused: u64,
    last_summary: Instant,
}

impl Outage {
    /// A call (`refused`: a client's call answered 503) or a health check failed with `e`.
    /// Errors that are not the store being away (a rule's refusal, a value no store takes, a
    /// secret that cannot be unsealed) are not an outage and are left to their callers.
    pub fn failed(&self, e: &StoreError, refused: bool) {
        if matches!(e.kind(), Some("unavailable" | "timeout")) {
            self.unanswered(e, refused);
        }
    }

    /// The store did not answer, for `cause`.
    pub fn unanswered(&self, cause: &dyn std::fmt::Display, refused: bool) {
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match since.as_mut() {
            None => {
                tracing::error!(
                    error = %cause,
                    "the store stopped answering: identify calls get 503 and nothing is stored \
                     until it answers again (this log says when); check that the database is \
                     up and reachable from this host (--database-url), or the data dir's disk"
                );
                *since = Some(Down {
                    since: now,
                    refused: u64::from(refused),
                    last_summary: now,
                });
                self.down.store(true, Ordering::Relaxed);
            }
            Some(down) => {
                down.refused += u64::from(refused);
                if now.duration_since(down.last_summary) >= SUMMARY_EVERY {
                    down.last_summary = now;
                    tracing::warn!(
                        error = %cause,
                        down_secs = now.duration_since(down.since).as_secs(),
                        refused_calls = down.refused,
                        "the store is still not answering"
                    );
                }
            }
        }
    }

    /// The store answered (a stored call, a health check). Cheap while it is up.
    pub fn answered(&self) {
        if !self.down.load(Ordering::Relaxed) {
            return;
        }
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(down) = since.take() {
            self.down.store(false, Ordering::Relaxed);
            tracing::info!(
                down_secs = format_args!("{:.1}", down.since.elapsed().as_secs_f64()),
                refused_calls = down.refused,
                "the store answers again"
            );
        }
    }

    /// Whether the store is away (as last seen).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines logged while `f` runs (plain text, no colours).
    fn logged(f: impl FnOnce()) -> Vec<String> {
        let buf = std::sync::Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = std::sync::Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || SharedBuf(std::sync::Arc::clone(&writer)))
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    struct SharedBuf(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A thousand refused calls and health checks during an outage: one line when it starts,
    /// one when it ends (with the count), none per call.
    #[test]
    fn an_outage_is_two_lines_not_one_per_call() {
        let o = Outage::default();
        let lines = logged(|| {
            let e = StoreError::Postgres("connection refused".into());
            for i in 0..1000 {
                o.failed(&e, i % 10 != 0);
            }
            o.answered();
            o.answered();
        });
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].contains("ERROR") && lines[0].contains("connection refused"));
        assert!(
            lines[0].contains("--database-url"),
            "says what to check: {}",
            lines[0]
        );
        assert!(lines[1].contains("INFO") && lines[1].contains("refused_calls=900"));
    }

    #[test]
    fn only_the_store_being_away_is_an_outage() {
        let o = Outage::default();
        o.failed(&StoreError::WorkspaceNotFound, true);
        o.failed(&StoreError::InvalidValue("x".into()), true);
        o.failed(&StoreError::Sealing("x".into()), true);
        assert!(!o.is_down());
        o.failed(&StoreError::Postgres("connection refused".into()), true);
        o.failed(&StoreError::Closed, false);
        assert!(o.is_down());
        assert_eq!(o.since.lock().unwrap().as_ref().unwrap().refused, 1);
        o.answered();
        assert!(!o.is_down());
        o.answered();
        assert!(!o.is_down());
    }
}
