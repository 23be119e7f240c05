//! What every request handler shares: the server's tunables ([`Config`]) and its running state
//! ([`AppState`]: the store, the workspace registry, the metrics, the limits, the console's
//! counts). Below every route; only the serve loop and the CLI build it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ipnet::IpNet;

use crate::issuers::fetch::FetchOptions;
use crate::issuers::jwks::{JwksCache, Timing};
use crate::limits::{self, Limits};
use crate::metrics::{Metrics, Sample};
use crate::store::{Backend, Hooks, Store};
use crate::workspace::Registry;
use crate::{sealing, stats, store, tls};

/// Tunables of a running server (from flags and environment variables, see [`crate::cli`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// A client must send its whole request head within this time (slowloris guard; also
    /// closes keep-alive connections that sit idle between requests).
    pub header_timeout: Duration,
    /// A request body must arrive within this time.
    pub body_timeout: Duration,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// How long `serve` keeps serving after SIGTERM with `/healthz` at 503 (`draining`), so a
    /// load balancer takes the instance out before its listener closes (`--drain-secs`).
    /// Embedders drain with [`AppState::start_draining`] before completing the shutdown future.
    pub drain: Duration,
    /// Open connections at most; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Open connections at most per client (TCP peer; IPv6 per /64), 0 = no cap. A connection
    /// over the cap is closed as soon as it is accepted, and never takes one of the
    /// `max_connections` slots, so one client cannot keep everyone else waiting. Trusted proxies
    /// are exempt: they carry many clients' connections.
    pub max_connections_per_ip: usize,
    /// Identify calls per second per client IP (IPv6: per /64; 0 = unlimited), with a burst of
    /// twice that.
    pub rate_per_ip: u32,
    /// Accepted identify calls per second per workspace (0 = unlimited), with a burst of twice
    /// that. Rejected calls do not count: a forger cannot spend an honest workspace's quota.
    pub rate_per_app: u32,
    /// Peers whose `X-Forwarded-For` / `Forwarded` header names the client (load balancers,
    /// reverse proxies). From anyone else the headers are ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// Also serve `GET /metrics` without a token on this address (a private interface for
    /// Prometheus). On the main port `/metrics` needs the admin token.
    pub metrics_listen: Option<SocketAddr>,
    /// The web console under `/console`.
    pub console: ConsoleConfig,
    /// Serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) instead of plain HTTP/1.1.
    pub tls: Option<Arc<tls::Tls>>,
    /// How the token issuers' JWKS are fetched (`--jwks-allow-private-addresses`,
    /// `--jwks-ca-file`).
    pub jwks: FetchOptions,
    /// The JWKS cache's durations (the documented constants; tests shorten them).
    pub jwks_timing: Timing,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            drain: Duration::ZERO,
            max_connections: 10_000,
            max_connections_per_ip: 256,
            rate_per_ip: 1_000,
            rate_per_app: 10_000,
            trusted_proxies: Vec::new(),
            metrics_listen: None,
            console: ConsoleConfig::default(),
            tls: None,
            jwks: FetchOptions::default(),
            jwks_timing: Timing::default(),
        }
    }
}

/// Console settings (from `serve` flags; tests shorten the durations).
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Mark the session cookie `Secure` and expect `https://` origins: set when a TLS proxy
    /// serves the console (the verifier itself speaks plain HTTP).
    pub secure_cookies: bool,
    /// A session ends after this long without a request...
    pub session_idle: Duration,
    /// ...and this long after login, however active.
    pub session_absolute: Duration,
    /// How often this instance adds its counts to the store.
    pub stats_flush: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            secure_cookies: false,
            session_idle: Duration::from_secs(12 * 3600),
            session_absolute: Duration::from_secs(7 * 24 * 3600),
            stats_flush: Duration::from_secs(2),
        }
    }
}

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    /// Logs the store's outages once, with a summary and the recovery (not each refused call).
    pub outage: Arc<crate::store::Outage>,
    /// The master keys the store seals and opens with (the key file read again when it
    /// changes), shown by id and fingerprint in `/healthz` and `/metrics`.
    pub keyring: Arc<sealing::KeyringHandle>,
    pub limits: Limits,
    /// SHA-256 of the admin token (the token itself is not kept).
    pub admin_token_sha256: [u8; 32],
    /// The console's live counts (flushed to the store by a task) and login limits.
    pub console: Arc<ConsoleState>,
    /// The keys of the JWKS URLs the workspaces' token issuers name, kept fresh in the
    /// background.
    pub jwks: Arc<JwksCache>,
    /// Set when shutdown begins: `/healthz` answers 503 and HTTP/1.1 responses close their
    /// connection, while requests are still served.
    draining: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// Opens the store on `backend` and builds the shared state. Needs a tokio runtime.
    /// `keyring` holds the master keys that seal and open the stored secrets.
    pub async fn new(
        config: Config,
        backend: &Backend,
        keyring: sealing::Keyring,
        admin_token_sha256: [u8; 32],
    ) -> Result<Arc<AppState>, store::StoreError> {
        let hooks = Hooks::new(keyring);
        let store = Store::open(backend, hooks.clone()).await?;
        Ok(AppState::with_store(
            config,
            store,
            hooks,
            admin_token_sha256,
        ))
    }

    /// The shared state over a store that is already open with these `hooks`. Starts the task
    /// that flushes the console's counts, so it needs a tokio runtime.
    pub fn with_store(
        config: Config,
        store: Store,
        hooks: Hooks,
        admin_token_sha256: [u8; 32],
    ) -> Arc<AppState> {
        let limits = Limits::new(config.rate_per_ip, config.rate_per_app);
        let flush_every = config.console.stats_flush;
        let jwks = Arc::new(JwksCache::new(
            config.jwks.clone(),
            config.jwks_timing.clone(),
            Arc::clone(&hooks.metrics),
        ));
        let state = Arc::new(AppState {
            admin_token_sha256,
            config,
            store,
            registry: hooks.registry,
            metrics: hooks.metrics,
            outage: hooks.outage,
            keyring: hooks.keyring,
            limits,
            console: Arc::default(),
            jwks,
            draining: Default::default(),
        });
        spawn_flusher(Arc::downgrade(&state), flush_every);
        spawn_issuer_tracker(Arc::downgrade(&state));
        state
    }

    /// `/metrics`: the counts, and what this instance reads now of its store, workspaces and
    /// certificate.
    pub fn metrics_text(&self) -> String {
        let mut sample = Sample {
            config_stale: self.registry.is_stale(),
            config_last_reload: self.registry.last_reload(),
            tls_expiry: self.config.tls.as_ref().map(|t| {
                t.not_after()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64())
            }),
            jwks: self.jwks.samples(),
            ..Sample::default()
        };
        self.store.fill_sample(&mut sample);
        // The key file is read again when it changes: the master keys as of this scrape.
        self.metrics.master_keys(&self.keyring.get());
        self.metrics.render(&sample)
    }
}

impl AppState {
    /// Starts draining: `/healthz` answers 503 `draining` (a load balancer stops sending new
    /// calls), and every HTTP/1.1 response closes its connection (keep-alive clients reconnect,
    /// through the balancer, elsewhere). Requests are still served.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The JWKS keys this verifier holds, for decisions and checks.
    pub fn jwks_keys(&self) -> &dyn crate::issuers::JwksKeys {
        &*self.jwks
    }

    /// What this verifier knows of a JWKS URL's keys (the admin API's and console's view):
    /// `ok` (keys held and fresh), a one-line `summary`, and the details.
    pub fn jwks_status(&self, url: &str) -> serde_json::Value {
        let Some(s) = self.jwks.status(url) else {
            return serde_json::json!({"ok": false, "summary": "not fetched by this verifier yet"});
        };
        let secs = |t: Option<std::time::SystemTime>| {
            t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64)
        };
        let when = |t: Option<std::time::SystemTime>| {
            secs(t).map_or_else(|| "never".to_string(), crate::workspace::rfc3339)
        };
        let summary = match (s.key_count, s.stale, &s.last_error) {
            (0, _, Some(e)) => format!("no keys: the provider never answered usably ({e})"),
            (0, _, None) if s.fetching => "fetching the keys now".to_string(),
            (0, _, None) => "no keys yet".to_string(),
            (n, true, e) => format!(
                "{n} keys, STALE: refreshes fail ({}); still verifying until {}",
                e.as_deref().unwrap_or("unknown error"),
                when(s.drop_at)
            ),
            (n, false, _) => format!(
                "{n} keys ({}), fetched {}, fresh until {}",
                s.kids.join(", "),
                when(s.last_success),
                when(s.expires)
            ),
        };
        serde_json::json!({
            "ok": s.key_count > 0 && !s.stale,
            "summary": summary,
            "key_ids": s.kids,
            "skipped": s.skipped,
            "last_success": secs(s.last_success),
            "last_attempt": secs(s.last_attempt),
            "last_error": s.last_error,
            "expires": secs(s.expires),
            "stale": s.stale,
            "drop_at": secs(s.drop_at),
        })
    }
}

/// Keeps the JWKS cache's URLs those of the workspaces' issuers: checked every second (a
/// workspace change reaches the registry within a second anyway), while the state lives.
fn spawn_issuer_tracker(state: Weak<AppState>) {
    tokio::spawn(async move {
        let mut last: Option<Vec<String>> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else {
                return;
            };
            let mut urls: Vec<String> = state
                .registry
                .all()
                .iter()
                .flat_map(|w| w.issuers.iter().filter_map(|i| i.config.jwks_url.clone()))
                .collect();
            urls.sort_unstable();
            urls.dedup();
            if last.as_ref() != Some(&urls) {
                state.jwks.track(urls.iter().cloned());
                last = Some(urls);
            }
        }
    });
}

/// Flushes `state.console.stats` every `every` while the state lives (the task holds it weakly, so a
/// stopped server's store is not kept open by it).
fn spawn_flusher(state: Weak<AppState>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else { break };
            if let Err(e) = state.console.stats.flush(&state.store).await {
                // While the store is away (as the calls and health checks found), that is
                // logged once by the outage tracker (store::Outage); a failure beside a store
                // that answers is worth a line of its own.
                if state.outage.is_down() {
                    tracing::debug!(error = %e, "flushing console counts failed; kept for the next try");
                } else {
                    tracing::warn!(error = %e, "flushing console counts failed; kept for the next try");
                }
            }
        }
    });
}

/// The console's in-memory state on one instance.
#[derive(Debug)]
pub struct ConsoleState {
    pub stats: stats::Stats,
    pub login_limits: limits::login::LoginLimits,
    /// CSV exports running on this instance, by account.
    pub exports: RunningExports,
    /// Password checks (argon2id) that may run at once: one per core, at least two.
    pub password_checks: Arc<tokio::sync::Semaphore>,
}

impl Default for ConsoleState {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ConsoleState {
            stats: Default::default(),
            login_limits: Default::default(),
            exports: Default::default(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(cores.max(2))),
        }
    }
}

/// The accounts with a CSV export running on this instance (the console's export takes and
/// frees their places).
#[derive(Debug, Default)]
pub struct RunningExports(Mutex<HashSet<i64>>);

impl RunningExports {
    pub(crate) fn set(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        // A std Mutex: held for one set operation, never across an await.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `series` in `text`.
    fn value<'t>(text: &'t str, series: &str) -> Option<&'t str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    #[tokio::test]
    async fn a_scrape_reads_the_registry_and_the_store_now() {
        let key = sealing::MasterKey::generate("mk1").unwrap();
        let ring = sealing::Keyring::new(vec![key]).unwrap();
        let backend = Backend::SqliteMemory;
        let state = AppState::new(Config::default(), &backend, ring, [0; 32])
            .await
            .unwrap();
        let text = state.metrics_text();
        assert_eq!(value(&text, "dropfix_config_stale"), Some("0"));
        assert_eq!(value(&text, "dropfix_store_queue_length"), Some("0"));
        let build = format!(
            "dropfix_build_info{{version=\"{}\",backend=\"sqlite\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(value(&text, &build), Some("1"), "{text}");
        let loaded: f64 = value(&text, "dropfix_config_last_reload_timestamp_seconds")
            .expect("the store loaded the workspaces when it opened")
            .parse()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(loaded <= now && now - loaded < 60.0, "{loaded} vs {now}");

        state.registry.mark_stale("a change could not be loaded");
        assert_eq!(
            value(&state.metrics_text(), "dropfix_config_stale"),
            Some("1")
        );
        state.registry.replace(Vec::new());
        assert_eq!(
            value(&state.metrics_text(), "dropfix_config_stale"),
            Some("0")
        );
    }
}
