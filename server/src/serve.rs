//! The serve loop: accepts connections (within the connection caps), speaks HTTP/1.1, or HTTPS
//! with HTTP/1.1 or HTTP/2 by ALPN, hands each request to [`crate::http::handle`], and shuts down
//! gracefully; keeps this instance registered in a shared database with the master keys it
//! holds; and the token-free metrics listener beside it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::http;
use crate::limits::{self, ConnectionCaps};
use crate::state::{AppState, Config};
use crate::store::instances::{self, Instance};

/// The most a request head (request line and headers) may take. A browser's identify call
/// sends well under 2 KiB; this leaves room for long cookies or proxy headers.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// hyper's per-connection read buffer bound: a whole valid identify request (head and the
/// largest body) fits, nothing more is buffered. hyper's default (~400 KiB) let every connection
/// that sent an unfinished head hold that much memory; past this bound the head is refused with
/// 431 and the connection closed. hyper checks the bound after a read, so a head may overshoot
/// it by one read (measured: heads up to 49,097 bytes are read). (hyper requires at least 8192.)
pub const MAX_BUF_BYTES: usize = MAX_HEAD_BYTES + dropfix_core::MAX_BODY_BYTES;

/// HTTPS connections: HTTP/1.1 with [`http1_builder`]'s settings, or HTTP/2 when the client
/// chose it by ALPN (at most 100 concurrent streams, headers bounded like an HTTP/1.1 head).
fn auto_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(MAX_BUF_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_header_list_size(16 * 1024)
        .keep_alive_interval(Some(config.header_timeout))
        .keep_alive_timeout(config.header_timeout);
    builder
}

/// The HTTP/1.1 settings every connection gets: a head must arrive within the header timeout
/// and fit in [`MAX_BUF_BYTES`].
fn http1_builder(config: &Config) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(MAX_BUF_BYTES);
    builder
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, then stops accepting, lets
/// in-flight requests finish (up to `config.shutdown_grace`) and returns. With
/// `config.metrics_listen`, also serves [`run_metrics`] there for as long.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let metrics_task = match state.config.metrics_listen {
        Some(addr) => {
            let metrics_listener = TcpListener::bind(addr).await?;
            tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening (no token: keep this address private)");
            let metrics_state = Arc::clone(&state);
            Some(tokio::spawn(run_metrics(
                metrics_listener,
                metrics_state,
                std::future::pending(),
            )))
        }
        None => None,
    };
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(state.config.max_connections));
    let caps = ConnectionCaps::new(state.config.max_connections_per_ip);
    let builder = http1_builder(&state.config);
    let tls = state.config.tls.clone();
    let tls_watcher = tls.as_ref().map(|t| t.spawn_watcher());
    // The protocol is the one ALPN chose, so no connection waits in hyper-util's version
    // sniffing (a read with no timeout): HTTP/1.1 has its header timeout from the first byte.
    let auto = auto_builder(&state.config);
    let (auto_h1, auto_h2) = (auto.clone().http1_only(), auto.http2_only());
    let limits_state = Arc::clone(&state);
    let pruner = tokio::spawn(async move {
        // Every 10 s: a bounded limiter that a flood filled gives its room back soon after.
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            limits_state.limits.prune();
            limits_state.console.login_limits.prune();
        }
    });
    // On a shared database, the master keys this instance holds are registered before it
    // accepts a call, and kept current, so that a key rollout run from any host can check them.
    let me = Instance::this_process(listener.local_addr()?);
    if let Err(e) = state.store.register_instance(&me).await {
        tracing::warn!(error = %e, "registering this instance's master keys failed; retrying");
    }
    let registration = tokio::spawn(keep_registered(Arc::clone(&state), me.clone()));
    tokio::pin!(shutdown);
    // A permit is taken before accepting (when all are taken, new clients wait in the kernel's
    // queue) and kept across connections refused by the per-client cap, so those never hold one.
    let mut permit = None;
    loop {
        let held = match permit.take() {
            Some(p) => p,
            None => tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => p.expect("semaphore is never closed"),
                () = &mut shutdown => break,
            },
        };
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener, "accept failed") => match accepted {
                Some(a) => a,
                None => {
                    permit = Some(held);
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ip = peer.ip();
        let slot = if limits::is_trusted(ip, &state.config.trusted_proxies) {
            None
        } else {
            match caps.try_open(ip) {
                Some(slot) => Some(slot),
                None => {
                    // Closed without a word: an answer would cost what the cap saves. debug, not
                    // warn: a client can repeat this at will; the count is in the metrics.
                    tracing::debug!(%ip, "connection refused: client at its connection cap");
                    state.metrics.connection_refused();
                    drop(stream);
                    permit = Some(held);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let handler_state = Arc::clone(&state);
        let service = service_fn(move |req| http::handle(Arc::clone(&handler_state), ip, req));
        if let Some(tls) = &tls {
            // The handshake runs in the connection's task, bounded by the header timeout and
            // holding the client's connection slot, so a client that never finishes it costs
            // one slot for that long, like a slow request head.
            let acceptor = tls.acceptor().clone();
            let watcher = graceful.watcher();
            let (auto_h1, auto_h2) = (auto_h1.clone(), auto_h2.clone());
            let handshake_timeout = state.config.header_timeout;
            let handler_state = Arc::clone(&state);
            tokio::spawn(async move {
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                        // HTTP/2 has no header timeout of its own: a connection that has not
                        // started a request within it is closed, as an HTTP/1.1 one would be.
                        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
                        let seen = Arc::clone(&started);
                        let service = service_fn(move |req| {
                            seen.store(true, std::sync::atomic::Ordering::Relaxed);
                            http::handle(Arc::clone(&handler_state), ip, req)
                        });
                        let auto = if h2 { &auto_h2 } else { &auto_h1 };
                        let conn =
                            watcher.watch(auto.serve_connection(TokioIo::new(stream), service));
                        tokio::pin!(conn);
                        let idle = async {
                            tokio::time::sleep(handshake_timeout).await;
                            if !h2 || started.load(std::sync::atomic::Ordering::Relaxed) {
                                std::future::pending::<()>().await;
                            }
                        };
                        tokio::select! {
                            ended = &mut conn => if let Err(e) = ended {
                                tracing::debug!(error = %e, "connection ended with an error");
                            },
                            () = idle => tracing::debug!(%ip, "HTTP/2 connection without a request closed"),
                        }
                    }
                    // debug: any client can repeat these at will (a plain-HTTP request on the
                    // HTTPS port is one).
                    Ok(Err(e)) => tracing::debug!(%ip, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%ip, "TLS handshake did not finish in time"),
                }
                drop(slot);
                drop(held);
            });
            continue;
        }
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
            drop(held);
        });
    }
    drop(listener);
    // Whatever is still answered closes its connection.
    state.start_draining();
    pruner.abort();
    registration.abort();
    if let Some(task) = tls_watcher {
        task.abort();
    }
    if let Some(task) = metrics_task {
        task.abort();
    }
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(state.config.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
    // The console's counts of calls answered since the last flush, so a restart loses none;
    // then gone from the live instances at once (a key rollout need not wait for the row to
    // age). Each is bounded, so a database that stopped answering cannot hold up the exit.
    let last_writes = Duration::from_secs(2);
    match tokio::time::timeout(last_writes, state.console.stats.flush(&state.store)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "final flush of console counts failed"),
        Err(_) => tracing::warn!("final flush of console counts did not finish in 2 s"),
    }
    match tokio::time::timeout(last_writes, state.store.unregister_instance(&me)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "unregistering this instance failed; its entry ages out")
        }
        Err(_) => tracing::warn!("unregistering this instance did not finish; its entry ages out"),
    }
    Ok(())
}

/// Writes this instance's registration again every [`instances::REFRESH`], with the keyring as
/// of then (a key file changed since is read again). A failure is logged once until it passes:
/// an unreachable database is reported by the health check already.
async fn keep_registered(state: Arc<AppState>, me: Instance) {
    let mut tick = tokio::time::interval(instances::REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut failing = false;
    loop {
        tick.tick().await;
        match state.store.register_instance(&me).await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                tracing::warn!(error = %e, "refreshing this instance's registration failed");
                failing = true;
            }
            Err(e) => tracing::debug!(error = %e, "refreshing this instance's registration failed"),
        }
    }
}

/// Most connections the metrics listener serves at once (Prometheus needs one or two).
const METRICS_MAX_CONNECTIONS: usize = 16;

/// Serves `GET /metrics`, without a token, on `listener` until `shutdown` completes; any other
/// request gets 404. For a private address only (see [`Config::metrics_listen`]). Dropping or
/// aborting this future closes its connections too.
pub async fn run_metrics(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let builder = http1_builder(&state.config);
    let permits = Arc::new(Semaphore::new(METRICS_MAX_CONNECTIONS));
    // Connections live in this set, so they end with this future.
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p.expect("semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = accept(&listener, "metrics accept failed") => match accepted {
                Some(a) => a,
                None => continue,
            },
            () = &mut shutdown => break,
        };
        let scraped = Arc::clone(&state);
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let res = http::metrics_only(&scraped, &req);
            std::future::ready(Ok::<_, std::convert::Infallible>(res))
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        connections.spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    Ok(())
}

/// Accepts one connection. On an error (out of file descriptors and the like) it logs `failed`
/// and pauses briefly, so the loop backs off instead of spinning, and gives `None`.
async fn accept(
    listener: &TcpListener,
    failed: &str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener.accept().await {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!(error = %e, "{failed}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}
