//! `serve`: its flags, logging, the first start's dev workspace and admin token, and the
//! signals that stop the server.
//!
//! A start binds its addresses first and checks the data dir before it writes anything (the
//! key file, the database, the admin token): a start that cannot serve leaves nothing behind
//! and prints no secret.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use dropfix_core::StrictMode;
use sha2::Digest;

use super::CliResult;
use super::data_dir::DataDir;
use crate::state::{AppState, Config};
use crate::store::{Backend, Hooks, Store};
use crate::web::now;
use crate::workspace::{self, NewWorkspace};

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, env = "DROPFIX_LISTEN", default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    #[command(flatten)]
    data: DataDir,
    /// Bearer token for /v1/admin. If unset, one is generated on first start, printed once, and
    /// only its hash is kept.
    #[arg(long, env = "DROPFIX_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// On PostgreSQL, create the `development` workspace (strict off, localhost origins) on a
    /// database that holds no workspace, and print its secret. Without it a first start on
    /// PostgreSQL creates none (its secret would sit in the logs) and says how to create the
    /// first one. The embedded store always creates it on a first start.
    #[arg(long, env = "DROPFIX_CREATE_DEV_WORKSPACE")]
    create_dev_workspace: bool,
    /// Log as JSON lines (stderr) instead of text.
    #[arg(long, env = "DROPFIX_JSON_LOGS")]
    json_logs: bool,
    /// Keep everything in memory: nothing survives a restart (benchmarks, throwaway demos).
    #[arg(long, env = "DROPFIX_EPHEMERAL", conflicts_with = "database_url")]
    ephemeral: bool,
    /// Identify calls per second per client IP (burst twice that); 0 = unlimited.
    #[arg(long, env = "DROPFIX_RATE_LIMIT_PER_IP", default_value_t = Config::default().rate_per_ip)]
    rate_limit_per_ip: u32,
    /// Identify calls per second per workspace (burst twice that); 0 = unlimited.
    #[arg(long, env = "DROPFIX_RATE_LIMIT_PER_APP", default_value_t = Config::default().rate_per_app)]
    rate_limit_per_app: u32,
    /// Seconds a client has to send a request head (and the most a keep-alive connection idles).
    #[arg(long, env = "DROPFIX_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds a client has to send a request body.
    #[arg(long, env = "DROPFIX_BODY_TIMEOUT_SECS", default_value_t = 10)]
    body_timeout_secs: u64,
    /// Seconds a graceful shutdown waits for in-flight requests.
    #[arg(long, env = "DROPFIX_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// Seconds to keep serving after SIGTERM or Ctrl-C, with /healthz answering 503 `draining`
    /// and HTTP/1.1 responses closing their connections, before the listener closes: longer than
    /// the load balancer takes to mark the instance down. A second signal ends it early; 0: none.
    #[arg(long, env = "DROPFIX_DRAIN_SECS", default_value_t = 5)]
    drain_secs: u64,
    /// Open connections at most.
    #[arg(long, env = "DROPFIX_MAX_CONNECTIONS", default_value_t = Config::default().max_connections)]
    max_connections: usize,
    /// Open connections at most per client address (IPv6: per /64); 0 = no cap. Connections over
    /// the cap are closed at once. Trusted proxies are exempt.
    #[arg(long, env = "DROPFIX_MAX_CONNECTIONS_PER_IP", default_value_t = Config::default().max_connections_per_ip)]
    max_connections_per_ip: usize,
    /// A load balancer or reverse proxy (CIDR or address, repeatable; env: comma-separated)
    /// whose X-Forwarded-For / Forwarded header names the client for rate limits. Headers from
    /// any other peer are ignored.
    #[arg(long = "trusted-proxy", env = "DROPFIX_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_ip_net)]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Also serve GET /metrics without a token on this address, for Prometheus on a private
    /// interface (on the main address /metrics needs the admin token).
    #[arg(long, env = "DROPFIX_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Worker threads (default: one per CPU).
    #[arg(long, env = "DROPFIX_WORKERS")]
    workers: Option<usize>,
    /// The console is served over https by a TLS proxy: mark its session cookie Secure and
    /// expect https:// origins on its forms (automatic with --tls-cert).
    #[arg(long, env = "DROPFIX_CONSOLE_SECURE_COOKIES")]
    console_secure_cookies: bool,
    /// Serve HTTPS with this certificate: a PEM file, the server's certificate first, then its
    /// chain. Needs --tls-key. Reloaded without a restart when the files change (checked every
    /// 10 s) or at SIGHUP.
    #[arg(long, env = "DROPFIX_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key: PEM, PKCS#8, PKCS#1 RSA or SEC1 EC.
    #[arg(long, env = "DROPFIX_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Let token issuers' JWKS URLs resolve to private, loopback, link-local and other
    /// non-public addresses. Off by default, so a workspace's settings cannot make the verifier
    /// reach inside its own network; for tests and identity providers on a private network.
    #[arg(long, env = "DROPFIX_JWKS_ALLOW_PRIVATE_ADDRESSES")]
    jwks_allow_private_addresses: bool,
    /// Also trust the CA certificates of this PEM file for JWKS URLs (an identity provider with
    /// a private CA), besides the system's CA bundle.
    #[arg(long, env = "DROPFIX_JWKS_CA_FILE")]
    jwks_ca_file: Option<PathBuf>,
}

/// `10.0.0.0/8`, `fd00::/8`, or one address (`10.0.0.2` = `10.0.0.2/32`).
fn parse_ip_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{s:?} is not an IP address or CIDR block (e.g. 10.0.0.0/8)"))
}

pub(super) fn serve(args: ServeArgs) -> CliResult {
    init_logging(args.json_logs);
    // Checked before anything is opened or written: a certificate that cannot be served stops
    // the start with what is wrong with which file.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(std::sync::Arc::new(crate::tls::Tls::new(
            crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
        )?)),
        _ => None,
    };
    let mut jwks = crate::issuers::fetch::FetchOptions {
        allow_private_addresses: args.jwks_allow_private_addresses,
        ..Default::default()
    };
    if let Some(ca) = &args.jwks_ca_file {
        jwks.add_ca_file(ca)?;
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    if tls.is_none() && !args.console_secure_cookies && !args.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %args.listen,
            "the console is served over plain HTTP on a non-loopback address: passwords and \
             session cookies cross the network in clear. Serve HTTPS with --tls-cert/--tls-key, \
             or behind an HTTPS proxy with --console-secure-cookies"
        );
    }
    let config = Config {
        header_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
        body_timeout: Duration::from_secs(args.body_timeout_secs.max(1)),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        drain: Duration::from_secs(args.drain_secs),
        max_connections: args.max_connections.max(1),
        max_connections_per_ip: args.max_connections_per_ip,
        rate_per_ip: args.rate_limit_per_ip,
        rate_per_app: args.rate_limit_per_app,
        trusted_proxies: args.trusted_proxies,
        // Bound below, before anything is written, and served beside `run`.
        metrics_listen: None,
        console: crate::console::ConsoleConfig {
            // Under TLS the cookie is Secure and the forms' origin is https:// by itself.
            secure_cookies: args.console_secure_cookies || tls.is_some(),
            ..Default::default()
        },
        tls,
        jwks,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = args.workers {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.build()?;
    let serving = runtime.block_on(async move {
        // Bound first: an address in use stops the start before anything is written.
        let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
            format!("cannot listen on {}: {e} (nothing was written)", args.listen)
        })?;
        let metrics_listener = match args.metrics_listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                format!("cannot serve metrics on {addr}: {e} (nothing was written)")
            })?),
            None => None,
        };
        let backend = args.data.backend(args.ephemeral);
        let hooks = Hooks::new(args.data.keyring(&backend)?);
        // Taken before the store is opened (the data dir was checked with the keyring) and held
        // until the process ends: migrate-to-postgres refuses a served data dir.
        let serving = match &backend {
            Backend::Sqlite { data_dir } => Some(crate::store::sqlite::hold_serve_lock(data_dir)?),
            _ => None,
        };
        let store = Store::open(&backend, hooks.clone()).await?;
        let admin_sha256 = admin_token_hash(&store, args.admin_token.as_deref()).await?;
        first_workspace(&store, &backend, args.create_dev_workspace).await?;
        let state = AppState::with_store(config, store, hooks, admin_sha256);
        if let Some(metrics_listener) = metrics_listener {
            tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening (no token: keep this address private)");
            let metrics_state = std::sync::Arc::clone(&state);
            tokio::spawn(crate::serve::run_metrics(
                metrics_listener,
                metrics_state,
                std::future::pending(),
            ));
        }
        let addr = listener.local_addr()?;
        tracing::info!(%addr, ephemeral = args.ephemeral, "listening");
        let signals = StopSignals::new()?;
        announce(&format!("dropfix-server listening on {scheme}://{addr}"));
        #[cfg(unix)]
        if scheme == "http" {
            // SIGHUP (`systemctl reload`) reloads the certificate under TLS; without TLS there
            // is nothing to reload, and the signal's default action would end the process.
            tokio::spawn(async {
                use tokio::signal::unix::{SignalKind, signal};
                if let Ok(mut hup) = signal(SignalKind::hangup()) {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: nothing to reload (no --tls-cert)");
                    }
                }
            });
        }
        let draining = Arc::clone(&state);
        crate::serve::run(listener, state, drain_then_stop(draining, signals)).await?;
        Ok::<_, Box<dyn std::error::Error>>(serving)
    })?;
    // The last store handle goes with the runtime; the store thread finishes what is queued.
    // Every acknowledged write was committed before its response anyway, so nothing left (a
    // blocking DNS lookup of a reconnecting pool, a password check) may delay the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    drop(serving);
    tracing::info!("stopped");
    Ok(())
}

/// The first workspace of an empty store. The embedded store gets the `development` one (its
/// secret printed); PostgreSQL only when asked (`--create-dev-workspace`): its instances' output
/// usually goes to a log collector, which would keep the secret. Of several instances starting
/// together on one new database, one creates it (checked and created in one step).
async fn first_workspace(
    store: &Store,
    backend: &Backend,
    create_dev_workspace: bool,
) -> CliResult {
    if matches!(backend, Backend::Postgres(_)) && !create_dev_workspace {
        if store.workspaces().await?.is_empty() {
            tracing::info!(
                "the database holds no workspace yet: create the first with `dropfix-server \
                 workspace create --name NAME --allowed-origin https://app.example.com \
                 --database-url ...` (its secret is printed there, once), or start one \
                 instance with --create-dev-workspace for a development workspace"
            );
        }
        return Ok(());
    }
    let dev = NewWorkspace {
        name: "development".into(),
        strict: StrictMode::Off,
        require_signed_claims: false,
        allowed_origins: workspace::DEV_ORIGINS.map(String::from).to_vec(),
    };
    if let Some(k) = store.create_first_workspace(&dev, "serve", now()).await? {
        announce(&format!(
            "dev workspace app_id={} secret={}",
            k.workspace.app_id,
            k.secret.expose_secret()
        ));
    }
    Ok(())
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let given = std::env::var("DROPFIX_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .filter(|f| EnvFilter::try_new(f).is_ok());
    let mut filter = EnvFilter::new(given.as_deref().unwrap_or("info"));
    // deadpool's own line for each lost connection says only "db error" (and comes once per
    // pooled connection): the store's outage line says why, once. Unless the filter names it.
    if !given.as_deref().is_some_and(|f| f.contains("deadpool")) {
        filter = filter.add_directive("deadpool.postgres=error".parse().expect("a directive"));
    }
    // Colour codes only for a person at a terminal: in a file, journald or a log collector they
    // are noise that breaks grep. NO_COLOR (no-color.org) turns them off at a terminal too.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Prints a line on stdout and flushes it: the lines tools and tests wait for.
fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Completes when the listener should close: at the first SIGTERM or Ctrl-C the instance starts
/// draining ([`AppState::start_draining`]) for `config.drain`, or until a second signal.
async fn drain_then_stop(state: Arc<AppState>, mut signals: StopSignals) {
    signals.recv().await;
    let drain = state.config.drain;
    if drain.is_zero() {
        return;
    }
    state.start_draining();
    tracing::info!(
        drain_secs = drain.as_secs(),
        "draining: /healthz answers 503 while calls are still served, then the listener closes \
         (a second signal stops now)"
    );
    tokio::select! {
        () = tokio::time::sleep(drain) => {}
        () = signals.recv() => tracing::info!("second signal: draining cut short"),
    }
}

/// SIGTERM and Ctrl-C (SIGINT), heard from when this is made: before the listening line is
/// printed, so a signal sent as soon as it appears is not met by the default action (the process
/// ending at once, without a drain).
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received");
    }
}

/// Below this an admin token is warned about at start (a generated one has 48 hex characters).
const MIN_ADMIN_TOKEN_CHARS: usize = 20;

/// The admin token's SHA-256: from the flag, else the stored hash, else a new token printed
/// once (only its hash is kept).
async fn admin_token_hash(
    store: &Store,
    flag: Option<&str>,
) -> Result<[u8; 32], Box<dyn std::error::Error>> {
    if let Some(token) = flag {
        let token = token.trim();
        if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
            tracing::warn!(
                "the admin token is shorter than {MIN_ADMIN_TOKEN_CHARS} characters: anyone who \
                 reaches this port could guess it; use a long random one (without \
                 DROPFIX_ADMIN_TOKEN, a 24-byte one is generated and printed once)"
            );
        }
        return Ok(sha2::Sha256::digest(token.as_bytes()).into());
    }
    if let Some(hash) = store
        .meta_get("admin_token_sha256")
        .await?
        .and_then(|h| hex::decode(h).ok())
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
    {
        return Ok(hash);
    }
    let token = workspace::random_token("dfadm_", 24);
    let hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    // Another instance starting on the same new database may store its token first: then that
    // one is the token, and this instance neither shows nor keeps its own.
    let stored = store
        .meta_set_if_absent("admin_token_sha256", &hex::encode(hash))
        .await?;
    if stored != hex::encode(hash) {
        return hex::decode(&stored)
            .ok()
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .ok_or_else(|| "the stored admin token hash is not 32 bytes of hex".into());
    }
    announce(&format!(
        "admin token: {token}  (shown once; only its hash is stored. Set \
         DROPFIX_ADMIN_TOKEN to choose your own)"
    ));
    Ok(hash)
}
