//! What every request handler shares: the server's tunables ([`Config`]) and its running state
//! ([`AppState`]: the store, the workspace registry, the metrics, the limits, the console's
//! counts). Below every route; only the serve loop and the CLI build it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::store::{Backend, Hooks, Store};
use crate::workspace::Registry;
use crate::{console, sealing, store, tls};

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
    pub console: console::ConsoleConfig,
    /// Serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) instead of plain HTTP/1.1.
    pub tls: Option<Arc<tls::Tls>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            rate_per_ip: 1_000,
            rate_per_app: 10_000,
            trusted_proxies: Vec::new(),
            metrics_listen: None,
            console: console::ConsoleConfig::default(),
            tls: None,
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
    pub limits: Limits,
    /// SHA-256 of the admin token (the token itself is not kept).
    pub admin_token_sha256: [u8; 32],
    /// The console's live counts (flushed to the store by a task) and login limits.
    pub console: Arc<console::ConsoleState>,
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
        let state = Arc::new(AppState {
            admin_token_sha256,
            config,
            store,
            registry: hooks.registry,
            metrics: hooks.metrics,
            limits,
            console: Arc::default(),
        });
        console::stats::spawn_flusher(Arc::downgrade(&state), flush_every);
        state
    }
}
