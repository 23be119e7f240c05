//! # dropfix-server
//!
//! The DropFix verifier: receives `POST /v1/identify` calls from browsers, verifies them with
//! `dropfix-core`, decides (the decision table of PROTOCOL.md), stores accepted calls durably in
//! an embedded SQLite database, and answers. Also an admin API and CLI for workspaces and keys.
//!
//! The library is the whole server; `main.rs` only parses the command line. Tests and embedders
//! call [`run`] with their own listener (bound to `127.0.0.1:0`) and shutdown future.
//!
//! - [`http`]: routing, identify, CORS, limits, admin API
//! - [`store`]: the storage interface and its backends (embedded SQLite with group commit)
//! - [`workspace`]: workspaces, keys and the rules on them, the in-memory registry
//! - [`users`]: stored users and the stored-data rules of an identify call
//! - [`diagnose`]: the `debug-signature` command's checks
//! - [`cli`]: command-line interface

pub mod admin;
pub mod cli;
pub mod console;
pub mod diagnose;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod store;
pub mod users;
pub mod workspace;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::store::{Backend, Hooks, Store};
use crate::workspace::Registry;

/// Tunables of a running server (from flags and environment variables, see [`cli`]).
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
    /// Identify calls per second per client IP (0 = unlimited), with a burst of twice that.
    pub rate_per_ip: u32,
    /// Identify calls per second per workspace (0 = unlimited), with a burst of twice that.
    pub rate_per_app: u32,
    /// The web console under `/console`.
    pub console: console::ConsoleConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            max_connections: 10_000,
            rate_per_ip: 1_000,
            rate_per_app: 10_000,
            console: console::ConsoleConfig::default(),
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
    pub async fn new(
        config: Config,
        backend: &Backend,
        admin_token_sha256: [u8; 32],
    ) -> Result<Arc<AppState>, store::StoreError> {
        let hooks = Hooks {
            registry: Arc::new(Registry::default()),
            metrics: Arc::new(Metrics::default()),
        };
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

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, then stops accepting, lets
/// in-flight requests finish (up to `config.shutdown_grace`) and returns.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(state.config.max_connections));
    let limits_state = Arc::clone(&state);
    let pruner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits_state.limits.prune();
            limits_state.console.login_limits.prune();
        }
    });
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p.expect("semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let ip = peer.ip();
        let handler_state = Arc::clone(&state);
        let service = service_fn(move |req| http::handle(Arc::clone(&handler_state), ip, req));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(state.config.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    pruner.abort();
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(state.config.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
    // The console's counts of calls answered since the last flush, so a restart loses none.
    if let Err(e) = state.console.stats.flush(&state.store).await {
        tracing::warn!(error = %e, "final flush of console counts failed");
    }
    Ok(())
}
