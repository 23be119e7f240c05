//! The keys of the JWKS URLs the workspaces trust, fetched ([`super::fetch`]) and cached, one
//! [`JwksCache`] per process. Several instances each fetch for themselves: nothing here is
//! shared through the store.
//!
//! - **Reading is never a wait.** [`JwksCache::get`] returns what is cached now: a map lookup
//!   and two uncontended read locks, none held across an await.
//! - **Lifetime.** A fetched set is cached for its `Cache-Control: max-age` (less `Age`), else
//!   its `Expires`, else [`DEFAULT_LIFETIME`] (1 h), clamped to [[`MIN_LIFETIME`] (1 min),
//!   [`MAX_LIFETIME`] (24 h)], and refreshed in the background at 80 % of it, so calls never
//!   wait for a routine refresh.
//! - **Unknown `kid`.** A token naming a key the cache lacks (a provider that rotated, or an
//!   attacker's random kid) calls [`JwksCache::refresh`]: it fetches again unless a fetch of that
//!   URL started within [`REFETCH_INTERVAL`] (30 s), and concurrent callers share one fetch. An
//!   attacker sending random kids at any rate makes the provider see at most one fetch per URL
//!   per 30 s from them.
//! - **Outage.** A failed fetch keeps the last good keys verifying, retried with backoff
//!   ([`RETRY_MIN`] 5 s doubling to [`RETRY_MAX`] 10 min), for at most [`MAX_STALE`] (72 h)
//!   after the last successful fetch; then they are dropped, and the URL has no keys (the
//!   verifier answers 503 `issuer_unavailable`, as for a provider that never answered).
//!
//! [`JwksCache::status`] says where each URL stands (for the console and the logs), and every
//! fetch is counted in `dropfix_jwks_fetches_total` by result; the keys held, the last success
//! and staleness are scraped per URL ([`JwksCache::samples`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::JwksKeys;
use super::fetch::{FetchError, FetchErrorKind, FetchOptions, Fetcher};
use super::keys::{KeySet, parse_jwks};
use crate::metrics::{JwksSample, Metrics};

/// The shortest a fetched set is cached, whatever its headers say (`no-store` included).
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);
/// The longest a fetched set is cached before a refresh, whatever its headers say.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How long a set whose response says nothing about caching is cached.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// A token's unknown `kid` fetches again at most this often per URL.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// The last good keys keep verifying at most this long after the last successful fetch while
/// fetches fail; then they are dropped.
pub const MAX_STALE: Duration = Duration::from_secs(72 * 3600);
/// The first retry after a failed fetch; each further failure doubles it...
pub const RETRY_MIN: Duration = Duration::from_secs(5);
/// ...up to this.
pub const RETRY_MAX: Duration = Duration::from_secs(600);

/// The cache's durations: the constants above by default; tests shorten them.
#[derive(Debug, Clone)]
pub struct Timing {
    pub min_lifetime: Duration,
    pub max_lifetime: Duration,
    pub default_lifetime: Duration,
    pub refetch_interval: Duration,
    pub max_stale: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            min_lifetime: MIN_LIFETIME,
            max_lifetime: MAX_LIFETIME,
            default_lifetime: DEFAULT_LIFETIME,
            refetch_interval: REFETCH_INTERVAL,
            max_stale: MAX_STALE,
            retry_min: RETRY_MIN,
            retry_max: RETRY_MAX,
        }
    }
}

impl Timing {
    /// How long a set is cached, from what its response said.
    pub fn lifetime(&self, said: Option<Duration>) -> Duration {
        said.unwrap_or(self.default_lifetime)
            .clamp(self.min_lifetime, self.max_lifetime.max(self.min_lifetime))
    }

    /// The wait before the retry that follows `failures` failed fetches in a row.
    fn backoff(&self, failures: u32) -> Duration {
        let doubled = self
            .retry_min
            .saturating_mul(1 << failures.saturating_sub(1).min(20));
        doubled.min(self.retry_max)
    }
}

/// Where one JWKS URL stands (the console's issuer page, `/metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct JwksStatus {
    pub url: String,
    /// When a fetch last succeeded.
    pub last_success: Option<SystemTime>,
    /// When a fetch last started.
    pub last_attempt: Option<SystemTime>,
    /// Why the last fetch failed, when it did (no secret: the host, a status, a size...).
    pub last_error: Option<String>,
    /// A fetch is under way.
    pub fetching: bool,
    /// The key ids of the set held (a key without one by its thumbprint).
    pub kids: Vec<String>,
    /// Keys of the document that were left out, and why (an RSA key under 2048 bits...).
    pub skipped: Vec<String>,
    /// The number of keys held (0: none; calls naming this URL get 503 `issuer_unavailable`).
    pub key_count: usize,
    /// When the keys held reach the end of their cache lifetime.
    pub expires: Option<SystemTime>,
    /// The keys held are past their cache lifetime: kept verifying because refreshes fail.
    pub stale: bool,
    /// When the keys held are dropped unless a fetch succeeds before ([`MAX_STALE`] after the
    /// last success).
    pub drop_at: Option<SystemTime>,
}

/// The JWKS of every URL in use, kept fresh in the background.
pub struct JwksCache {
    shared: Arc<Shared>,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("urls", &self.read_entries().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What the fetch tasks need of the cache.
struct Shared {
    fetcher: Fetcher,
    timing: Timing,
    metrics: Arc<Metrics>,
}

/// One URL.
struct Entry {
    url: String,
    /// The keys that verify now, read by [`JwksCache::get`].
    current: RwLock<Option<Current>>,
    state: Mutex<State>,
    /// Bumped each time a fetch ends: callers of `refresh` and the refresher wait on it.
    done: watch::Sender<u64>,
    /// The background refresher, stopped when the URL is no longer tracked.
    refresher: Mutex<Option<AbortHandle>>,
}

struct Current {
    keys: Arc<KeySet>,
    fetched: Instant,
}

struct State {
    fetching: bool,
    /// When the last fetch started (the 30 s gate of `refresh`).
    last_start: Option<Instant>,
    last_attempt: Option<SystemTime>,
    last_success: Option<SystemTime>,
    last_error: Option<String>,
    /// Failed fetches since the last success.
    failures: u32,
    /// When the keys held reach the end of their lifetime.
    expires: Option<Instant>,
    /// When the refresher fetches next.
    next_due: Instant,
}

impl JwksCache {
    /// An empty cache; fetches as `options` says, counts them in `metrics`. Tracks nothing until
    /// [`JwksCache::track`].
    pub fn new(options: FetchOptions, timing: Timing, metrics: Arc<Metrics>) -> JwksCache {
        JwksCache {
            shared: Arc::new(Shared {
                fetcher: Fetcher::new(options),
                timing,
                metrics,
            }),
            entries: RwLock::default(),
        }
    }

    pub fn timing(&self) -> &Timing {
        &self.shared.timing
    }

    fn read_entries(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The keys of `url` held now, without waiting: `None` when none were ever fetched, or the
    /// last success is older than [`MAX_STALE`], or `url` is not tracked.
    pub fn get(&self, url: &str) -> Option<Arc<KeySet>> {
        self.read_entries().get(url)?.keys(&self.shared.timing)
    }

    /// Makes `urls` the set of JWKS URLs in use (at start and after each change of the
    /// workspaces): new ones are fetched at once and then kept fresh in the background; the
    /// ones no longer listed are forgotten (their keys, status and refresher). Needs a tokio
    /// runtime.
    pub fn track<I, S>(&self, urls: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let wanted: HashSet<String> = urls.into_iter().map(Into::into).collect();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|url, entry| {
            let keep = wanted.contains(url);
            if !keep {
                entry.stop();
            }
            keep
        });
        for url in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = entries.entry(url) {
                let entry = Entry::spawn(&self.shared, slot.key().clone());
                slot.insert(entry);
            }
        }
    }

    /// The URLs tracked now.
    pub fn urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = self.read_entries().keys().cloned().collect();
        urls.sort_unstable();
        urls
    }

    /// For a token whose `kid` the cached set lacks (or when there are no keys yet): fetches
    /// `url` again unless a fetch of it started within [`REFETCH_INTERVAL`] (then a fetch under
    /// way is waited for, else the current keys are returned at once), waiting at most `wait`.
    /// Concurrent callers share one fetch. A URL not tracked yet is tracked from now on (until
    /// the next [`JwksCache::track`] leaves it out).
    pub async fn refresh(&self, url: &str, wait: Duration) -> Option<Arc<KeySet>> {
        let entry = self.entry(url);
        let mut done = entry.done.subscribe();
        if start(&self.shared, &entry, true) {
            let _ = tokio::time::timeout(wait, done.changed()).await;
        }
        entry.keys(&self.shared.timing)
    }

    fn entry(&self, url: &str) -> Arc<Entry> {
        if let Some(entry) = self.read_entries().get(url) {
            return Arc::clone(entry);
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            entries
                .entry(url.to_string())
                .or_insert_with(|| Entry::spawn(&self.shared, url.to_string())),
        )
    }

    /// Where `url` stands; `None` when it is not tracked.
    pub fn status(&self, url: &str) -> Option<JwksStatus> {
        let entry = Arc::clone(self.read_entries().get(url)?);
        Some(entry.status(&self.shared.timing))
    }

    /// Every tracked URL's status, by URL.
    pub fn statuses(&self) -> Vec<JwksStatus> {
        let entries: Vec<Arc<Entry>> = self.read_entries().values().cloned().collect();
        let mut all: Vec<JwksStatus> = entries
            .iter()
            .map(|e| e.status(&self.shared.timing))
            .collect();
        all.sort_by(|a, b| a.url.cmp(&b.url));
        all
    }

    /// The per-URL series of `/metrics`.
    pub fn samples(&self) -> Vec<JwksSample> {
        self.statuses()
            .into_iter()
            .map(|s| JwksSample {
                url: s.url,
                keys: s.key_count,
                last_success: s.last_success.map(epoch_secs),
                stale: s.stale,
            })
            .collect()
    }
}

impl JwksKeys for JwksCache {
    fn get(&self, url: &str) -> Option<Arc<KeySet>> {
        JwksCache::get(self, url)
    }
}

impl Drop for JwksCache {
    fn drop(&mut self) {
        for entry in self.read_entries().values() {
            entry.stop();
        }
    }
}

fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `at` (an instant) on the wall clock.
fn wall(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    }
}

impl Entry {
    /// A new entry for `url` with its refresher running (its first fetch starts at once).
    fn spawn(shared: &Arc<Shared>, url: String) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            url,
            current: RwLock::new(None),
            state: Mutex::new(State {
                fetching: false,
                last_start: None,
                last_attempt: None,
                last_success: None,
                last_error: None,
                failures: 0,
                expires: None,
                next_due: Instant::now(),
            }),
            done: watch::Sender::new(0),
            refresher: Mutex::new(None),
        });
        let task = tokio::spawn(refresher(Arc::clone(shared), Arc::clone(&entry)));
        *entry.refresher.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        entry
    }

    fn stop(&self) {
        if let Some(task) = self
            .refresher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Held for a few field updates, never across an await.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keys(&self, timing: &Timing) -> Option<Arc<KeySet>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        let current = current.as_ref()?;
        (current.fetched.elapsed() <= timing.max_stale).then(|| Arc::clone(&current.keys))
    }

    /// Drops keys whose last success is older than `max_stale`.
    fn drop_if_too_old(&self, timing: &Timing) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current
            .as_ref()
            .is_some_and(|c| c.fetched.elapsed() > timing.max_stale)
        {
            *current = None;
            tracing::warn!(
                url = %self.url,
                max_stale_secs = timing.max_stale.as_secs(),
                "JWKS keys dropped: no successful fetch for too long; tokens of this issuer \
                 get 503 issuer_unavailable until the provider answers"
            );
        }
    }

    fn status(&self, timing: &Timing) -> JwksStatus {
        let (kids, skipped, key_count, fetched) = {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            match current
                .as_ref()
                .filter(|c| c.fetched.elapsed() <= timing.max_stale)
            {
                Some(c) => (
                    c.keys.kids(),
                    c.keys.skipped.clone(),
                    c.keys.len(),
                    Some(c.fetched),
                ),
                None => (Vec::new(), Vec::new(), 0, None),
            }
        };
        let st = self.state();
        let held = fetched.is_some();
        JwksStatus {
            url: self.url.clone(),
            last_success: st.last_success,
            last_attempt: st.last_attempt,
            last_error: st.last_error.clone(),
            fetching: st.fetching,
            kids,
            skipped,
            key_count,
            expires: st.expires.filter(|_| held).map(wall),
            stale: held && st.expires.is_some_and(|e| Instant::now() > e),
            drop_at: fetched.map(|f| wall(f + timing.max_stale)),
        }
    }
}

/// Starts a fetch of `entry` unless one is under way (then `true`: wait for it) or, when
/// `gated`, one started within the refetch interval (then `false`: nothing to wait for).
fn start(shared: &Arc<Shared>, entry: &Arc<Entry>, gated: bool) -> bool {
    let mut st = entry.state();
    if st.fetching {
        return true;
    }
    if gated
        && st
            .last_start
            .is_some_and(|t| t.elapsed() < shared.timing.refetch_interval)
    {
        return false;
    }
    st.fetching = true;
    st.last_start = Some(Instant::now());
    st.last_attempt = Some(SystemTime::now());
    drop(st);
    // A task of its own: a caller that stops waiting does not cancel the fetch others share.
    tokio::spawn(fetch_once(Arc::clone(shared), Arc::clone(entry)));
    true
}

/// Ends a fetch however it ends (a panic in a parser included): the entry is no longer
/// `fetching`, and waiters wake.
struct Finish(Arc<Entry>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.state().fetching = false;
        self.0.done.send_modify(|n| *n = n.wrapping_add(1));
    }
}

async fn fetch_once(shared: Arc<Shared>, entry: Arc<Entry>) {
    let _finish = Finish(Arc::clone(&entry));
    let result = match shared.fetcher.get(&entry.url).await {
        Ok(fetched) => parse_jwks(&fetched.body)
            .map(|keys| (keys, fetched.lifetime))
            .map_err(|e| FetchError {
                kind: FetchErrorKind::Invalid,
                message: format!("the document is not a usable JWKS: {e}"),
            }),
        Err(e) => Err(e),
    };
    let timing = &shared.timing;
    let now = Instant::now();
    match result {
        Ok((keys, said)) => {
            shared.metrics.jwks_fetch("ok");
            let lifetime = timing.lifetime(said);
            let count = keys.len();
            *entry.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Current {
                keys: Arc::new(keys),
                fetched: now,
            });
            let mut st = entry.state();
            if st.failures > 0 {
                tracing::info!(url = %entry.url, keys = count, "JWKS fetched again after failures");
            } else {
                tracing::debug!(url = %entry.url, keys = count, lifetime_secs = lifetime.as_secs(), "JWKS fetched");
            }
            st.failures = 0;
            st.last_error = None;
            st.last_success = Some(SystemTime::now());
            st.expires = Some(now + lifetime);
            st.next_due = now + lifetime.mul_f64(0.8);
        }
        Err(e) => {
            shared.metrics.jwks_fetch(e.kind.label());
            let held = entry.keys(timing).map(|k| k.len());
            let mut st = entry.state();
            st.failures = st.failures.saturating_add(1);
            let retry = timing.backoff(st.failures);
            st.next_due = st.last_start.unwrap_or(now) + retry;
            st.last_error = Some(e.message.clone());
            tracing::warn!(
                url = %entry.url,
                result = e.kind.label(),
                error = %e,
                failures = st.failures,
                retry_secs = retry.as_secs_f64(),
                keys_held = held.unwrap_or(0),
                "JWKS fetch failed; the last good keys (if any) keep verifying"
            );
        }
    }
}

/// Keeps `entry` fresh: its first fetch at once, then at 80 % of each lifetime, retries with
/// backoff; drops keys past `max_stale`. Stopped by [`Entry::stop`].
async fn refresher(shared: Arc<Shared>, entry: Arc<Entry>) {
    loop {
        let mut done = entry.done.subscribe();
        let (fetching, due) = {
            let st = entry.state();
            (st.fetching, st.next_due)
        };
        if fetching {
            let _ = done.changed().await;
        } else {
            // A fetch ending meanwhile (a `refresh`) moves the next one: computed again.
            let mut wake = due;
            if let Some(fetched) = entry
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|c| c.fetched)
            {
                wake = wake.min(fetched + shared.timing.max_stale + Duration::from_millis(1));
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => {
                    if Instant::now() >= due && start(&shared, &entry, false) {
                        let _ = done.changed().await;
                    }
                }
                _ = done.changed() => {}
            }
        }
        entry.drop_if_too_old(&shared.timing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_clamped_and_backoff_doubles_to_its_cap() {
        let t = Timing::default();
        assert_eq!(t.lifetime(None), Duration::from_secs(3600));
        assert_eq!(t.lifetime(Some(Duration::ZERO)), Duration::from_secs(60));
        assert_eq!(
            t.lifetime(Some(Duration::from_secs(5))),
            Duration::from_secs(60)
        );
        assert_eq!(
            t.lifetime(Some(Duration::from_secs(600))),
            Duration::from_secs(600)
        );
        assert_eq!(
            t.lifetime(Some(Duration::from_secs(7 * 86400))),
            Duration::from_secs(86400)
        );
        let waits: Vec<u64> = (1..=10).map(|n| t.backoff(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(t.backoff(u32::MAX), Duration::from_secs(600));
    }
}
