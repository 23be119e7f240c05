//! The command line: `serve`, `workspace ...`, `debug-signature`. Every flag has an environment
//! variable (`DROPFIX_*`) so a container or a systemd unit can configure it without arguments.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use dropfix_core::{SecretKey, StrictMode};
use serde_json::json;
use sha2::Digest;

use crate::store::{self, StoreError};
use crate::workspace::{self, NewWorkspace, Workspace, WorkspacePatch};
use crate::{AppState, Config, diagnose, http::now};

#[derive(Debug, Parser)]
#[command(
    name = "dropfix-server",
    version,
    about = "The DropFix identify verifier"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the verifier (HTTP API on the embedded store).
    Serve(ServeArgs),
    /// Create, list and change workspaces (works while a server runs on the same data dir).
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Explain why a signature fails: which check, and what to fix.
    DebugSignature(DebugArgs),
}

#[derive(Debug, Args)]
struct DataDir {
    /// Where the database lives (created if missing; holds secrets, so mode 0700).
    #[arg(long, env = "DROPFIX_DATA_DIR", default_value = "./dropfix-data")]
    data_dir: PathBuf,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, env = "DROPFIX_LISTEN", default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    #[command(flatten)]
    data: DataDir,
    /// Bearer token for /v1/admin. If unset, one is generated on first start, printed once, and
    /// only its hash is kept.
    #[arg(long, env = "DROPFIX_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Log as JSON lines (stderr) instead of text.
    #[arg(long, env = "DROPFIX_JSON_LOGS")]
    json_logs: bool,
    /// Keep everything in memory: nothing survives a restart (benchmarks, throwaway demos).
    #[arg(long, env = "DROPFIX_EPHEMERAL")]
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
}

#[derive(Debug, Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace; prints its app id and secret (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// off | report_only | on
        #[arg(long, default_value = "off", value_parser = parse_strict)]
        strict: StrictMode,
        /// Reject the seed form and unsigned calls: only signed-claims tokens verify.
        #[arg(long)]
        require_signed_claims: bool,
        /// Browser origin allowed to call identify (repeatable; `https://app.example.com`,
        /// `http://localhost:*`, `*`). Default: localhost and 127.0.0.1 on any port.
        #[arg(long = "allowed-origin", value_parser = parse_origin)]
        allowed_origins: Vec<String>,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// List workspaces (no secrets).
    List {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Change settings; a running server picks them up within a second.
    Set {
        app_id: String,
        #[arg(long, value_parser = parse_strict)]
        strict: Option<StrictMode>,
        #[arg(long)]
        require_signed_claims: Option<bool>,
        /// Replaces the allowed origins (repeatable).
        #[arg(long = "allowed-origin", value_parser = parse_origin)]
        allowed_origins: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// New secret; the old one keeps verifying for the grace period (default 7 days).
    Rotate {
        app_id: String,
        #[arg(long, default_value_t = workspace::DEFAULT_ROTATION_GRACE_SECS)]
        grace_seconds: i64,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// End the grace period now: only the newest secret verifies.
    RetireOld {
        app_id: String,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct DebugArgs {
    /// The workspace secret key.
    #[arg(long, env = "DROPFIX_SECRET_KEY", hide_env_values = true)]
    secret: String,
    /// The user id passed to identify().
    #[arg(long)]
    user_id: String,
    /// The signature (or signed-claims token) passed to identify().
    #[arg(long)]
    signature: String,
    /// The signedAt passed to identify().
    #[arg(long)]
    signed_at: Option<i64>,
    /// Check against this time instead of now (Unix seconds), e.g. when the call was made.
    #[arg(long)]
    now: Option<i64>,
    /// The user's email, to test whether the backend signed it instead of the id.
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    json: bool,
}

fn parse_strict(s: &str) -> Result<StrictMode, String> {
    StrictMode::parse(s).ok_or_else(|| "expected off, report_only or on".to_string())
}

/// `10.0.0.0/8`, `fd00::/8`, or one address (`10.0.0.2` = `10.0.0.2/32`).
fn parse_ip_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{s:?} is not an IP address or CIDR block (e.g. 10.0.0.0/8)"))
}

fn parse_origin(s: &str) -> Result<String, String> {
    workspace::validate_origin_pattern(s).map(|()| s.to_string())
}

/// Runs the command line; the binary's whole `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Workspace(cmd) => workspace_command(cmd),
        Command::DebugSignature(args) => return debug_signature(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dropfix-server: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("DROPFIX_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
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

fn serve(args: ServeArgs) -> CliResult {
    init_logging(args.json_logs);
    let conn = if args.ephemeral {
        store::open_in_memory()?
    } else {
        store::open(&args.data.data_dir)?
    };
    let admin_sha256: [u8; 32] = match &args.admin_token {
        Some(token) => sha2::Sha256::digest(token.trim().as_bytes()).into(),
        None => match store::meta_get(&conn, "admin_token_sha256")?
            .and_then(|h| hex::decode(h).ok())
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
        {
            Some(hash) => hash,
            None => {
                let token = workspace::random_token("dfadm_", 24);
                let hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
                store::meta_set(&conn, "admin_token_sha256", &hex::encode(hash))?;
                announce(&format!(
                    "admin token: {token}  (shown once; only its hash is stored. Set \
                     DROPFIX_ADMIN_TOKEN to choose your own)"
                ));
                hash
            }
        },
    };
    let mut conn = conn;
    if workspace::load_workspaces(&conn)?.is_empty() {
        let (ws, secret) = workspace::create_workspace(
            &mut conn,
            &NewWorkspace {
                name: "development".into(),
                strict: StrictMode::Off,
                require_signed_claims: false,
                allowed_origins: workspace::DEV_ORIGINS.map(String::from).to_vec(),
            },
            now(),
        )?;
        announce(&format!(
            "dev workspace app_id={} secret={}",
            ws.app_id,
            secret.expose_secret()
        ));
    }
    let config = Config {
        header_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
        body_timeout: Duration::from_secs(args.body_timeout_secs.max(1)),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        max_connections: args.max_connections.max(1),
        max_connections_per_ip: args.max_connections_per_ip,
        rate_per_ip: args.rate_limit_per_ip,
        rate_per_app: args.rate_limit_per_app,
        trusted_proxies: args.trusted_proxies,
        metrics_listen: args.metrics_listen,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = args.workers {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.build()?;
    runtime.block_on(async move {
        let state = AppState::new(config, conn, admin_sha256)?;
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, ephemeral = args.ephemeral, "listening");
        announce(&format!("dropfix-server listening on http://{addr}"));
        crate::run(listener, state, shutdown_signal()).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    // Dropping the runtime drops the last store handle; the store thread finishes what is
    // queued. Every acknowledged write was committed before its response anyway.
    tracing::info!("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

fn print_workspace(ws: &Workspace, secret: Option<&SecretKey>, json_out: bool) {
    if json_out {
        let mut v = serde_json::to_value(ws.summary()).unwrap_or_default();
        if let Some(s) = secret {
            v["secret"] = s.expose_secret().into();
        }
        println!("{v}");
        return;
    }
    println!("app_id:                {}", ws.app_id);
    println!("name:                  {}", ws.name);
    println!("strict:                {}", ws.strict.as_str());
    println!("require_signed_claims: {}", ws.require_signed_claims);
    println!("allowed_origins:       {}", ws.allowed_origins.join(" "));
    for k in &ws.keys {
        match k.expires_at {
            Some(t) => println!(
                "key {}:                 created {}, expires {t}",
                k.id, k.created_at
            ),
            None => println!("key {}:                 created {}", k.id, k.created_at),
        }
    }
    if let Some(s) = secret {
        println!("secret:                {}", s.expose_secret());
        println!("(shown once: put it in your backend's DROPFIX_SECRET_KEY)");
    }
}

fn not_found(app_id: &str) -> Box<dyn std::error::Error> {
    format!("no workspace with app id {app_id:?}").into()
}

fn workspace_command(cmd: WorkspaceCommand) -> CliResult {
    let open =
        |d: &DataDir| -> Result<rusqlite::Connection, StoreError> { store::open(&d.data_dir) };
    match cmd {
        WorkspaceCommand::Create {
            name,
            strict,
            require_signed_claims,
            allowed_origins,
            data,
            json,
        } => {
            let mut conn = open(&data)?;
            let allowed_origins = if allowed_origins.is_empty() {
                workspace::DEV_ORIGINS.map(String::from).to_vec()
            } else {
                allowed_origins
            };
            let (ws, secret) = workspace::create_workspace(
                &mut conn,
                &NewWorkspace {
                    name,
                    strict,
                    require_signed_claims,
                    allowed_origins,
                },
                now(),
            )?;
            print_workspace(&ws, Some(&secret), json);
        }
        WorkspaceCommand::List { data, json } => {
            let conn = open(&data)?;
            let list = workspace::load_workspaces(&conn)?;
            if json {
                let v: Vec<_> = list.iter().map(Workspace::summary).collect();
                println!("{}", json!({ "workspaces": v }));
            } else {
                for (i, ws) in list.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    print_workspace(ws, None, false);
                }
            }
        }
        WorkspaceCommand::Set {
            app_id,
            strict,
            require_signed_claims,
            allowed_origins,
            name,
            data,
            json,
        } => {
            let conn = open(&data)?;
            let patch = WorkspacePatch {
                name,
                strict,
                require_signed_claims,
                allowed_origins: (!allowed_origins.is_empty()).then_some(allowed_origins),
            };
            let ws = workspace::update_workspace(&conn, &app_id, &patch)?
                .ok_or_else(|| not_found(&app_id))?;
            print_workspace(&ws, None, json);
        }
        WorkspaceCommand::Rotate {
            app_id,
            grace_seconds,
            data,
            json,
        } => {
            let conn = open(&data)?;
            let r = workspace::rotate_key(&conn, &app_id, grace_seconds, now())?
                .ok_or_else(|| not_found(&app_id))?;
            print_workspace(&r.workspace, Some(&r.secret), json);
            if !json {
                println!(
                    "the previous secret keeps verifying until {}",
                    r.old_key_expires_at
                );
            }
        }
        WorkspaceCommand::RetireOld { app_id, data, json } => {
            let conn = open(&data)?;
            let ws =
                workspace::retire_old_keys(&conn, &app_id)?.ok_or_else(|| not_found(&app_id))?;
            print_workspace(&ws, None, json);
        }
    }
    Ok(())
}

fn debug_signature(args: DebugArgs) -> ExitCode {
    let report = diagnose::diagnose(&diagnose::Input {
        secret: SecretKey::new(args.secret),
        user_id: args.user_id,
        signature: args.signature,
        signed_at: args.signed_at,
        now: args.now.unwrap_or_else(now),
        email: args.email,
    });
    if args.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        for f in &report.findings {
            println!(
                "{} {:<9} {}",
                if f.ok { "ok  " } else { "FAIL" },
                f.check,
                f.detail
            );
        }
        match (&report.code, &report.fix) {
            (None, _) => println!("\nthe verifier would accept this call (200, verified)"),
            (Some(code), fix) => {
                println!("\nthe verifier would answer 401 {code}");
                if let Some(fix) = fix {
                    println!("fix: {fix}");
                }
            }
        }
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
