//! The command line: `serve`, `workspace ...`, `debug-signature`. Every flag has an environment
//! variable (`DROPFIX_*`) so a container or a systemd unit can configure it without arguments.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use dropfix_core::{SecretKey, StrictMode};
use serde_json::json;
use sha2::Digest;

use crate::sealing::{self, Keyring, MasterKey};
use crate::store::{AccountChange, Backend, Hooks, Role, Store, postgres};
use crate::workspace::{self, NewKey, NewWorkspace, Workspace, WorkspacePatch};
use crate::{diagnose, state::AppState, state::Config, web::now};

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
    /// Run the verifier (HTTP API on the embedded store, or on PostgreSQL with --database-url).
    Serve(ServeArgs),
    /// Create, list and change workspaces (works while a server runs on the same data dir).
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Explain why a signature fails: which check, and what to fix.
    DebugSignature(DebugArgs),
    /// The master keys that seal stored secrets: status, add, activate, rewrap, drop.
    #[command(subcommand)]
    MasterKey(MasterKeyCommand),
    /// Console accounts: create them and give them a role in workspaces.
    #[command(subcommand)]
    User(UserCommand),
    /// Copy the embedded store (--data-dir) to a new file, while a server serves it: the store
    /// as of one instant, checked and synced. The master keys are not in it: back up
    /// DATA_DIR/master.keys apart. (PostgreSQL: pg_dump, see docs/SCALING.md.)
    Backup {
        /// The backup file to create (never overwritten).
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        data: DataDir,
    },
    /// Restore a backup made by `backup` into a data dir that holds no store yet. Put the master
    /// key file back first (DATA_DIR/master.keys, or --master-key-file / DROPFIX_MASTER_KEYS):
    /// the restore then proves that it opens every restored secret.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        data: DataDir,
    },
    /// Copy an embedded store (--data-dir) into an empty PostgreSQL (--database-url), to scale
    /// out: same app ids, keys, users and console accounts. Stop the server on the data dir
    /// first. The master keys are the data dir's (DATA_DIR/master.keys) unless given.
    MigrateToPostgres {
        #[command(flatten)]
        data: DataDir,
        /// Copy everything else when some stored users hold values PostgreSQL refuses (a NUL
        /// character, which earlier versions stored): they are skipped and counted.
        /// Without it such users stop the copy, named, and nothing is copied.
        #[arg(long)]
        skip_unstorable: bool,
    },
}

#[derive(Debug, Subcommand)]
enum MasterKeyCommand {
    /// The keyring in use and how many stored secrets each master key seals.
    Status {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Print a new master key entry (`id:base64`) for DROPFIX_MASTER_KEYS; stores nothing.
    Generate {
        #[arg(long)]
        id: String,
    },
    /// Add a fresh master key to the key file. Without `--no-activate` it becomes the active
    /// key at once (one machine); with several instances add it everywhere first with
    /// `--no-activate`, then `activate` it.
    Add {
        #[arg(long)]
        no_activate: bool,
        /// Id of the new key (default: the next `mkN`).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Make a key of the key file the active one (it seals from now on).
    Activate {
        id: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Re-seal every stored secret with the active master key.
    Rewrap {
        #[command(flatten)]
        data: DataDir,
    },
    /// Remove a master key from the key file; refused while any stored secret is sealed with it.
    Drop {
        id: String,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Args, Clone)]
struct DataDir {
    /// Where the embedded database lives (created if missing; holds secrets, so owner-only:
    /// an existing directory other users can read or write is refused).
    #[arg(long, env = "DROPFIX_DATA_DIR", default_value = "./dropfix-data")]
    data_dir: PathBuf,
    /// File of master keys that seal the stored secrets (default for the embedded store:
    /// DATA_DIR/master.keys, created on first start). DROPFIX_MASTER_KEYS (comma-separated
    /// `id:base64` entries, first active) takes precedence over any file.
    #[arg(long, env = "DROPFIX_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Use this PostgreSQL instead of the embedded store (`postgres://user:pass@host/db`), so
    /// several verifiers can share one database. The data dir is then not used.
    #[arg(long, env = "DROPFIX_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// PostgreSQL connections this process keeps at most (plus one for change notifications).
    #[arg(long, env = "DROPFIX_DB_POOL_SIZE", default_value_t = postgres::DEFAULT_POOL_SIZE,
          value_parser = parse_pool_size)]
    db_pool_size: usize,
    /// Seconds to wait for a PostgreSQL connection, and for an identify call's write, before
    /// answering 503 (a down or hung database fails requests quickly instead of hanging them).
    #[arg(long, env = "DROPFIX_DB_TIMEOUT_SECS", default_value_t = postgres::DEFAULT_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=300))]
    db_timeout_secs: u64,
}

// The database URL usually holds a password: never print it.
impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir")
            .field("data_dir", &self.data_dir)
            .field("master_key_file", &self.master_key_file)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .field("db_pool_size", &self.db_pool_size)
            .field("db_timeout_secs", &self.db_timeout_secs)
            .finish()
    }
}

impl DataDir {
    fn backend(&self, ephemeral: bool) -> Backend {
        let postgres = self.database_url.as_ref().map(|url| postgres::PgOptions {
            url: url.clone(),
            pool_size: self.db_pool_size,
            timeout: Duration::from_secs(self.db_timeout_secs),
        });
        Backend::from_flags(self.data_dir.clone(), ephemeral, postgres)
    }

    /// The key file this command edits (`master-key ...`). On PostgreSQL there is no default:
    /// the data dir is not used there, and editing a file nobody reads would only mislead.
    fn key_file(&self) -> Result<PathBuf, Box<dyn std::error::Error>> {
        match (&self.master_key_file, &self.database_url) {
            (Some(path), _) => Ok(path.clone()),
            (None, Some(_)) => Err(format!(
                "with --database-url, name the key file to edit with --master-key-file (or set \
                 {} on every instance)",
                sealing::MASTER_KEYS_ENV
            )
            .into()),
            (None, None) => Ok(sealing::default_key_file(&self.data_dir)),
        }
    }

    /// The master keys, from the environment, the key file, or (embedded store) the default
    /// key file, created with a fresh key on first start. Never from the database.
    fn keyring(&self, backend: &Backend) -> Result<Keyring, Box<dyn std::error::Error>> {
        if let Ok(value) = std::env::var(sealing::MASTER_KEYS_ENV)
            && !value.trim().is_empty()
        {
            return Ok(Keyring::from_env_value(&value)?);
        }
        if let Some(path) = &self.master_key_file {
            return Ok(Keyring::load_file(path)?);
        }
        match backend {
            Backend::SqliteMemory => Ok(Keyring::new(vec![MasterKey::generate("ephemeral")?])?),
            Backend::Sqlite { data_dir } => {
                let path = sealing::default_key_file(data_dir);
                let (ring, created) = Keyring::load_or_create(&path)?;
                if created {
                    // stderr: stdout of a `--json` command is the JSON alone.
                    eprintln!(
                        "{}",
                        format_args!(
                            "master key file created: {} (it seals the stored secrets: back it up \
                         apart from the database, which is useless without it)",
                            path.display()
                        )
                    );
                }
                Ok(ring)
            }
            // Every instance must open what any other sealed, so the keys cannot be made up
            // here: a fresh key file on one machine would seal secrets the others cannot read.
            Backend::Postgres(_) => Err(format!(
                "with --database-url, give the master keys with {} or --master-key-file (the \
                 same keys on every instance); generate one with `dropfix-server master-key \
                 generate --id mk1`",
                sealing::MASTER_KEYS_ENV
            )
            .into()),
        }
    }
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
}

/// How a console account's password is given.
#[derive(Debug, Args)]
struct PasswordArgs {
    /// Read the password from the first line of standard input (keeps it out of `ps`).
    #[arg(long, conflicts_with = "password")]
    password_stdin: bool,
    /// The password (visible to other users in `ps`; prefer --password-stdin).
    #[arg(long)]
    password: Option<String>,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a console account and give it a role in a workspace.
    Create {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// The workspace (app id) the account belongs to.
        #[arg(long)]
        workspace: String,
        /// owner (may change settings) or viewer (may only look).
        #[arg(long, default_value = "owner", value_parser = parse_role)]
        role: Role,
        #[command(flatten)]
        data: DataDir,
    },
    /// Give an existing account a role in another workspace (or change its role there).
    AddToWorkspace {
        #[arg(long)]
        email: String,
        #[arg(long)]
        workspace: String,
        #[arg(long, default_value = "viewer", value_parser = parse_role)]
        role: Role,
        #[command(flatten)]
        data: DataDir,
    },
    /// Take an account's role in one workspace away (its other workspaces stay). Its open
    /// sessions lose that workspace on their next request.
    RemoveFromWorkspace {
        #[arg(long)]
        email: String,
        #[arg(long)]
        workspace: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Replace an account's password and end every session it has (a lost or leaked password).
    SetPassword {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        data: DataDir,
    },
    /// Delete an account: its memberships and sessions end at once (someone who left).
    Delete {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// List console accounts and their workspaces.
    List {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace; prints its app id and first secret key (shown once).
    Create {
        #[arg(long, value_parser = parse_name)]
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
    /// List workspaces and their keys (no secrets).
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
        #[arg(long, value_parser = parse_name)]
        name: Option<String>,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Add a secret key (a workspace has at most 10 live keys); the secret is shown once.
    AddKey {
        app_id: String,
        /// A name to tell keys apart (e.g. the service or environment that uses it).
        #[arg(long, default_value = "default")]
        label: String,
        /// The key stops verifying after this many seconds (default: never).
        #[arg(long)]
        expires_in_secs: Option<i64>,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Replace a key with a new one; the old key keeps verifying for the grace period. No other
    /// key changes (a key still in an earlier grace period keeps its own).
    Roll {
        app_id: String,
        /// The key to roll (default: the newest live key).
        #[arg(long)]
        key: Option<i64>,
        /// How long the old key keeps verifying: `now`, `1h`, `24h`, `7d` or seconds.
        #[arg(long, default_value = "7d", value_parser = parse_grace)]
        grace: i64,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Stop a key verifying now (refused for the only live key).
    Retire {
        app_id: String,
        #[arg(long)]
        key: i64,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Roll the newest key (same as `roll` without `--key`), grace in seconds.
    Rotate {
        app_id: String,
        #[arg(long, default_value_t = workspace::DEFAULT_ROTATION_GRACE_SECS)]
        grace_seconds: i64,
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// End every grace period now: only the newest key verifies.
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

fn parse_pool_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=1000) => Ok(n),
        _ => Err("expected a number of connections from 1 to 1000".into()),
    }
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

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "expected owner or viewer".to_string())
}

fn parse_name(s: &str) -> Result<String, String> {
    workspace::validate_name(s).map(|()| s.to_string())
}

fn parse_origin(s: &str) -> Result<String, String> {
    workspace::validate_origin_pattern(s).map(|()| s.to_string())
}

/// `now`, `1h`, `24h`, `7d`, or a number of seconds, up to 30 days.
fn parse_grace(s: &str) -> Result<i64, String> {
    let secs = match s.trim() {
        "now" | "0" => 0,
        t => {
            let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
                Some((i, _)) => t.split_at(i),
                None => (t, "s"),
            };
            let n: i64 = num
                .parse()
                .map_err(|_| format!("expected now, 1h, 24h, 7d or seconds, got {s:?}"))?;
            let unit_secs = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return Err(format!("unknown unit in {s:?}: use s, m, h or d")),
            };
            n.checked_mul(unit_secs).ok_or("grace period too long")?
        }
    };
    if secs > crate::admin::MAX_GRACE_SECS {
        return Err("the longest grace period is 30 days".into());
    }
    Ok(secs)
}

/// Runs the command line; the binary's whole `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Workspace(cmd) => workspace_command(cmd),
        Command::DebugSignature(args) => return debug_signature(args),
        Command::MasterKey(cmd) => master_key_command(cmd),
        Command::User(cmd) => user_command(cmd),
        Command::MigrateToPostgres {
            data,
            skip_unstorable,
        } => migrate_to_postgres(data, skip_unstorable),
        Command::Backup { to, data } => backup_command(&to, &data),
        Command::Restore { from, data } => restore_command(&from, data),
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
        max_connections: args.max_connections.max(1),
        max_connections_per_ip: args.max_connections_per_ip,
        rate_per_ip: args.rate_limit_per_ip,
        rate_per_app: args.rate_limit_per_app,
        trusted_proxies: args.trusted_proxies,
        metrics_listen: args.metrics_listen,
        console: crate::console::ConsoleConfig {
            // Under TLS the cookie is Secure and the forms' origin is https:// by itself.
            secure_cookies: args.console_secure_cookies || tls.is_some(),
            ..Default::default()
        },
        tls,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = args.workers {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.build()?;
    runtime.block_on(async move {
        let backend = args.data.backend(args.ephemeral);
        let hooks = Hooks::new(args.data.keyring(&backend)?);
        let store = Store::open(&backend, hooks.clone()).await?;
        let admin_sha256 = admin_token_hash(&store, args.admin_token.as_deref()).await?;
        // Only on an empty store, checked and created in one step: of several instances
        // starting together on one new database, one creates it.
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
        let state = AppState::with_store(config, store, hooks, admin_sha256);
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, ephemeral = args.ephemeral, "listening");
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

/// Rows of `label: value` with the values in one column, whatever the labels' widths.
fn print_rows(rows: &[(String, String)]) {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    for (k, v) in rows {
        println!("{:<width$} {v}", format!("{k}:"), width = width);
    }
}

fn print_workspace(ws: &Workspace, new_key: Option<&NewKey>, json_out: bool) {
    if json_out {
        let mut v = serde_json::to_value(ws.summary()).unwrap_or_default();
        if let Some(k) = new_key {
            v["key_id"] = k.key_id.into();
            v["secret"] = k.secret.expose_secret().into();
            v["claims_key"] = k.secret.expose_claims_key().into();
            if let Some(t) = k.old_key_expires_at {
                v["old_key_expires_at"] = t.into();
            }
        }
        println!("{v}");
        return;
    }
    let mut rows = vec![
        ("app_id".to_string(), ws.app_id.clone()),
        ("name".to_string(), ws.name.clone()),
        ("strict".to_string(), ws.strict.as_str().to_string()),
        (
            "require_signed_claims".to_string(),
            ws.require_signed_claims.to_string(),
        ),
        ("allowed_origins".to_string(), ws.allowed_origins.join(" ")),
    ];
    let now = now();
    for k in &ws.keys {
        let mut line = format!(
            "{:?}, created {} by {}",
            k.label,
            workspace::rfc3339(k.created_at),
            k.created_by
        );
        match k.expires_at {
            Some(t) if t <= now => line.push_str(&format!(", expired {}", workspace::rfc3339(t))),
            Some(t) => line.push_str(&format!(", expires {}", workspace::rfc3339(t))),
            None => {}
        }
        if let Some(t) = k.last_used_at {
            line.push_str(&format!(", last used {}", workspace::rfc3339(t)));
        }
        rows.push((format!("key {}", k.id), line));
    }
    if let Some(k) = new_key {
        rows.push((
            format!("secret (key {})", k.key_id),
            k.secret.expose_secret().to_string(),
        ));
        rows.push((
            format!("claims key (key {})", k.key_id),
            k.secret.expose_claims_key().to_string(),
        ));
        if let Some(t) = k.old_key_expires_at {
            rows.push(("old key verifies until".to_string(), workspace::rfc3339(t)));
        }
    }
    print_rows(&rows);
    if new_key.is_some() {
        println!(
            "(shown once: the secret signs the seed form (DROPFIX_SECRET_KEY); the claims key signs \
             signed-claims tokens (DROPFIX_CLAIMS_KEY, HS256))"
        );
    }
}

/// Opens the store a workspace command works on and runs `f` on it.
fn with_store<F, Fut>(data: &DataDir, f: F) -> CliResult
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = CliResult>,
{
    with_store_value(data, f)
}

fn with_store_value<T, F, Fut>(data: &DataDir, f: F) -> Result<T, Box<dyn std::error::Error>>
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = Result<T, Box<dyn std::error::Error>>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let backend = data.backend(false);
        let hooks = Hooks::new(data.keyring(&backend)?);
        let store = Store::open(&backend, hooks).await?;
        f(store).await
    })
}

const CLI_ACTOR: &str = "cli";

fn embedded_only(data: &DataDir, what: &str) -> CliResult {
    if data.database_url.is_some() {
        return Err(format!(
            "{what} is for the embedded store; back up PostgreSQL with pg_dump or its point-in-time \
             recovery (docs/SCALING.md, \"Backups\")"
        )
        .into());
    }
    Ok(())
}

fn backup_command(to: &Path, data: &DataDir) -> CliResult {
    embedded_only(data, "backup")?;
    let summary = crate::backup::backup(&data.data_dir, to)?;
    println!("backed up {summary} to {}", to.display());
    println!(
        "the master keys are not in it: keep {} (or your DROPFIX_MASTER_KEYS) backed up apart; \
         the backup is useless without them",
        sealing::default_key_file(&data.data_dir).display()
    );
    Ok(())
}

fn restore_command(from: &Path, data: DataDir) -> CliResult {
    embedded_only(&data, "restore")?;
    let key_file = sealing::default_key_file(&data.data_dir);
    let keys_at_hand = keyring_from_env() || data.master_key_file.is_some() || key_file.exists();
    let (summary, db) = crate::backup::restore(from, &data.data_dir)?;
    if !keys_at_hand {
        println!("restored {summary} into {}", db.display());
        println!(
            "no master keys yet: copy the master key file backed up with this store to {} (or \
             give --master-key-file / DROPFIX_MASTER_KEYS) before starting a server; a server \
             started without it cannot open the secrets",
            key_file.display()
        );
        return Ok(());
    }
    // Opening the store unseals every secret: proof that these keys are the right ones.
    let opened = with_store(&data, |store| async move {
        store.workspaces().await?;
        Ok(())
    });
    if let Err(e) = opened {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        return Err(format!(
            "the restored secrets do not open with the master keys given ({e}); nothing was \
             restored: give the key file that was backed up with this store"
        )
        .into());
    }
    println!(
        "restored {summary} into {}; every secret opens with the master keys given",
        db.display()
    );
    Ok(())
}

fn migrate_to_postgres(mut data: DataDir, skip_unstorable: bool) -> CliResult {
    if data.database_url.is_none() {
        return Err("give the PostgreSQL database to copy into with --database-url".into());
    }
    if !keyring_from_env() && data.master_key_file.is_none() {
        // The secrets stay sealed as they are: the instances need the keys that sealed them.
        let path = sealing::default_key_file(&data.data_dir);
        if !path.exists() {
            return Err(format!(
                "no master key file at {}: give --master-key-file",
                path.display()
            )
            .into());
        }
        data.master_key_file = Some(path);
    }
    // Opened as a store first and closed again: an embedded store written by an earlier version
    // gets its one-time upgrades (secrets bound to their key rows) before it is copied.
    let embedded = DataDir {
        database_url: None,
        ..data.clone()
    };
    with_store(&embedded, |_store| async move { Ok(()) })?;
    let sqlite = crate::store::sqlite::open_file(&data.data_dir)?;
    let key_file = data.master_key_file.clone();
    with_store(&data, |store| async move {
        let Store::Postgres(pg) = &store else {
            return Err("--database-url names no PostgreSQL database".into());
        };
        let counts = pg.import_embedded(&sqlite, skip_unstorable).await?;
        for (table, n) in counts {
            println!("{table}: {n} rows copied");
        }
        let keys = match key_file {
            Some(path) => format!(
                "--master-key-file {} (or its keys in {})",
                path.display(),
                sealing::MASTER_KEYS_ENV
            ),
            None => format!("the same {}", sealing::MASTER_KEYS_ENV),
        };
        println!(
            "done. Start every instance with --database-url and {keys}; keep the data dir until \
             they serve (it is no longer written to)."
        );
        Ok(())
    })
}

fn workspace_command(cmd: WorkspaceCommand) -> CliResult {
    match cmd {
        WorkspaceCommand::Create {
            name,
            strict,
            require_signed_claims,
            allowed_origins,
            data,
            json,
        } => with_store(&data, |store| async move {
            let allowed_origins = if allowed_origins.is_empty() {
                workspace::DEV_ORIGINS.map(String::from).to_vec()
            } else {
                allowed_origins
            };
            let new = NewWorkspace {
                name,
                strict,
                require_signed_claims,
                allowed_origins,
            };
            let k = store.create_workspace(&new, CLI_ACTOR, now()).await?;
            print_workspace(&k.workspace, Some(&k), json);
            Ok(())
        }),
        WorkspaceCommand::List { data, json } => with_store(&data, |store| async move {
            let list = store.workspaces().await?;
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
            Ok(())
        }),
        WorkspaceCommand::Set {
            app_id,
            strict,
            require_signed_claims,
            allowed_origins,
            name,
            data,
            json,
        } => with_store(&data, |store| async move {
            let patch = WorkspacePatch {
                name,
                strict,
                require_signed_claims,
                allowed_origins: (!allowed_origins.is_empty()).then_some(allowed_origins),
            };
            let ws = store
                .update_workspace(&app_id, &patch, CLI_ACTOR, now())
                .await?;
            print_workspace(&ws, None, json);
            Ok(())
        }),
        WorkspaceCommand::AddKey {
            app_id,
            label,
            expires_in_secs,
            data,
            json,
        } => with_store(&data, |store| async move {
            let now = now();
            let expires_at = expires_in_secs.map(|s| now.saturating_add(s));
            let k = store
                .create_key(&app_id, &label, expires_at, CLI_ACTOR, now)
                .await?;
            print_workspace(&k.workspace, Some(&k), json);
            Ok(())
        }),
        WorkspaceCommand::Roll {
            app_id,
            key,
            grace,
            data,
            json,
        } => with_store(&data, |store| async move {
            let k = store
                .roll_key(&app_id, key, grace, CLI_ACTOR, now())
                .await?;
            print_workspace(&k.workspace, Some(&k), json);
            Ok(())
        }),
        WorkspaceCommand::Retire {
            app_id,
            key,
            data,
            json,
        } => with_store(&data, |store| async move {
            let ws = store.retire_key(&app_id, key, CLI_ACTOR, now()).await?;
            print_workspace(&ws, None, json);
            Ok(())
        }),
        WorkspaceCommand::Rotate {
            app_id,
            grace_seconds,
            data,
            json,
        } => with_store(&data, |store| async move {
            if !(0..=crate::admin::MAX_GRACE_SECS).contains(&grace_seconds) {
                return Err("--grace-seconds must be between 0 and 2592000 (30 days)".into());
            }
            let k = store
                .roll_key(&app_id, None, grace_seconds, CLI_ACTOR, now())
                .await?;
            print_workspace(&k.workspace, Some(&k), json);
            Ok(())
        }),
        WorkspaceCommand::RetireOld { app_id, data, json } => {
            with_store(&data, |store| async move {
                let ws = store.retire_old_keys(&app_id, CLI_ACTOR, now()).await?;
                print_workspace(&ws, None, json);
                Ok(())
            })
        }
    }
}

fn keyring_from_env() -> bool {
    std::env::var(sealing::MASTER_KEYS_ENV).is_ok_and(|v| !v.trim().is_empty())
}

fn refuse_env_edit() -> CliResult {
    if keyring_from_env() {
        return Err(format!(
            "the keyring comes from {}: edit that variable instead (`dropfix-server master-key \
             generate --id ID` prints a new entry)",
            sealing::MASTER_KEYS_ENV
        )
        .into());
    }
    Ok(())
}

fn master_key_command(cmd: MasterKeyCommand) -> CliResult {
    match cmd {
        MasterKeyCommand::Status { data, json } => {
            let ring = data.keyring(&data.backend(false))?;
            with_store(&data, |store| async move {
                let counts = store.seal_counts().await?;
                let ids: Vec<&str> = ring.key_ids().collect();
                if json {
                    println!(
                        "{}",
                        json!({"active": ring.active_id(), "keys": ids,
                           "source": ring.source().to_string(), "sealed": counts.by_key})
                    );
                } else {
                    let mut rows = vec![
                        ("active".to_string(), ring.active_id().to_string()),
                        ("keys".to_string(), ids.join(" ")),
                        ("source".to_string(), ring.source().to_string()),
                    ];
                    for (id, n) in &counts.by_key {
                        rows.push((format!("secrets sealed with {id}"), n.to_string()));
                    }
                    print_rows(&rows);
                }
                Ok(())
            })
        }
        MasterKeyCommand::Generate { id } => {
            let key = MasterKey::generate(&id)?;
            println!("{}", key.export_entry().as_str());
            Ok(())
        }
        MasterKeyCommand::Add {
            no_activate,
            id,
            data,
        } => {
            refuse_env_edit()?;
            let path = data.key_file()?;
            let ring = Keyring::load_file(&path)?;
            let key = MasterKey::generate(&id.unwrap_or_else(|| ring.next_key_id()))?;
            Keyring::add_key_to_file(&path, &key, !no_activate)?;
            println!(
                "added master key {} to {}{}",
                key.id(),
                path.display(),
                if no_activate {
                    " (not active yet: `master-key activate` it once every instance has it)"
                } else {
                    " (active: new secrets are sealed with it; run `master-key rewrap` next)"
                }
            );
            Ok(())
        }
        MasterKeyCommand::Activate { id, data } => {
            refuse_env_edit()?;
            let path = data.key_file()?;
            Keyring::activate_key_in_file(&path, &id)?;
            println!("master key {id} is now active in {}", path.display());
            Ok(())
        }
        MasterKeyCommand::Rewrap { data } => with_store(&data, |store| async move {
            let n = store.rewrap_secrets().await?;
            println!("re-sealed {n} secret(s) with the active master key");
            Ok(())
        }),
        MasterKeyCommand::Drop { id, data } => {
            refuse_env_edit()?;
            let path = data.key_file()?;
            let still =
                with_store_value(&data, |store| async move { Ok(store.seal_counts().await?) })?
                    .by_key
                    .get(&id)
                    .copied()
                    .unwrap_or(0);
            if still > 0 {
                return Err(format!(
                    "{still} stored secret(s) are still sealed with master key {id}: run \
                     `dropfix-server master-key rewrap` first"
                )
                .into());
            }
            Keyring::remove_key_from_file(&path, &id)?;
            println!("master key {id} removed from {}", path.display());
            Ok(())
        }
    }
}

fn read_password(args: PasswordArgs) -> Result<String, Box<dyn std::error::Error>> {
    let password = match (args.password_stdin, args.password) {
        (true, _) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
        (false, Some(p)) => p,
        (false, None) => return Err("give the password with --password-stdin or --password".into()),
    };
    if password.chars().count() < crate::console::session::MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must be at least {} characters",
            crate::console::session::MIN_PASSWORD_CHARS
        )
        .into());
    }
    Ok(password)
}

/// Runs [`Store::change_account`]; an error names what was not found.
fn change_account(data: &DataDir, email: &str, change: &AccountChange) -> CliResult {
    with_store(data, |store| async move {
        if store
            .change_account(email, change, CLI_ACTOR, now())
            .await?
        {
            return Ok(());
        }
        Err(match change {
            AccountChange::RemoveFrom(app) if store.account_login(email).await?.is_some() => {
                format!("{email} is not a member of {app}")
            }
            _ => format!("no console account has email {email}"),
        }
        .into())
    })
}

fn user_command(cmd: UserCommand) -> CliResult {
    match cmd {
        UserCommand::Create {
            email,
            password,
            workspace,
            role,
            data,
        } => {
            let email = email.trim().to_lowercase();
            if !email.contains('@') || email.chars().any(char::is_whitespace) {
                return Err(format!("{email:?} is not an email address").into());
            }
            let password = read_password(password)?;
            let phc = crate::console::session::hash_password(&password)?;
            with_store(&data, |store| async move {
                if !store
                    .workspaces()
                    .await?
                    .iter()
                    .any(|w| w.app_id == workspace)
                {
                    return Err(format!("no workspace has app id {workspace}").into());
                }
                if store.create_account(&email, &phc, now()).await?.is_none() {
                    return Err(format!(
                        "an account with email {email} exists; use `user add-to-workspace`"
                    )
                    .into());
                }
                store
                    .add_member(&email, &workspace, role, CLI_ACTOR, now())
                    .await?;
                println!(
                    "created console account {email} ({} of {workspace})",
                    role.as_str()
                );
                Ok(())
            })
        }
        UserCommand::AddToWorkspace {
            email,
            workspace,
            role,
            data,
        } => with_store(&data, |store| async move {
            if !store
                .add_member(&email, &workspace, role, CLI_ACTOR, now())
                .await?
            {
                return Err(format!("no console account has email {email}").into());
            }
            println!("{email} is now {} of {workspace}", role.as_str());
            Ok(())
        }),
        UserCommand::RemoveFromWorkspace {
            email,
            workspace,
            data,
        } => {
            let change = AccountChange::RemoveFrom(workspace.clone());
            change_account(&data, &email, &change)?;
            println!("{email} no longer has access to {workspace}");
            Ok(())
        }
        UserCommand::SetPassword {
            email,
            password,
            data,
        } => {
            let password = read_password(password)?;
            let phc = crate::console::session::hash_password(&password)?;
            change_account(&data, &email, &AccountChange::SetPassword(phc))?;
            println!("{email} has a new password; every session it had has ended");
            Ok(())
        }
        UserCommand::Delete { email, data } => {
            change_account(&data, &email, &AccountChange::Delete)?;
            println!("{email} is deleted; its sessions have ended");
            Ok(())
        }
        UserCommand::List { data, json } => with_store(&data, |store| async move {
            let accounts = store.list_accounts().await?;
            if json {
                let v: Vec<_> = accounts
                    .iter()
                    .map(|a| {
                        json!({"email": a.email, "created_at": a.created_at,
                            "workspaces": a.memberships.iter()
                                .map(|m| json!({"app_id": m.app_id, "role": m.role.as_str()}))
                                .collect::<Vec<_>>()})
                    })
                    .collect();
                println!("{}", json!({ "accounts": v }));
            } else {
                let rows: Vec<(String, String)> = accounts
                    .iter()
                    .map(|a| {
                        let ws: Vec<String> = a
                            .memberships
                            .iter()
                            .map(|m| format!("{} ({})", m.app_id, m.role.as_str()))
                            .collect();
                        (a.email.clone(), ws.join(", "))
                    })
                    .collect();
                print_rows(&rows);
            }
            Ok(())
        }),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("dropfix-server").chain(args.iter().copied()))
    }

    #[test]
    fn every_store_command_takes_a_database_url_and_never_prints_it() {
        let url = "postgres://u:hunter2@db.internal/dropfix";
        let commands: [&[&str]; 16] = [
            &["serve"],
            &["workspace", "create", "--name", "x"],
            &["workspace", "list"],
            &["workspace", "set", "app_1", "--strict", "on"],
            &["workspace", "add-key", "app_1"],
            &["workspace", "roll", "app_1"],
            &["workspace", "retire", "app_1", "--key", "1"],
            &["workspace", "retire-old", "app_1"],
            &["master-key", "status"],
            &["master-key", "add"],
            &["master-key", "activate", "mk2"],
            &["master-key", "rewrap"],
            &["master-key", "drop", "mk1"],
            &["user", "create", "--email", "a@b.c", "--workspace", "app_1"],
            &[
                "user",
                "add-to-workspace",
                "--email",
                "a@b.c",
                "--workspace",
                "app_1",
            ],
            &["user", "list"],
        ];
        for cmd in commands {
            let mut args = cmd.to_vec();
            args.extend(["--database-url", url, "--db-pool-size", "3"]);
            let cli = parse(&args).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            assert!(!format!("{cli:?}").contains("hunter2"), "{cmd:?}");
            let data = match cli.command {
                Command::Serve(a) => a.data,
                Command::Workspace(
                    WorkspaceCommand::Create { data, .. }
                    | WorkspaceCommand::List { data, .. }
                    | WorkspaceCommand::Set { data, .. }
                    | WorkspaceCommand::AddKey { data, .. }
                    | WorkspaceCommand::Roll { data, .. }
                    | WorkspaceCommand::Retire { data, .. }
                    | WorkspaceCommand::Rotate { data, .. }
                    | WorkspaceCommand::RetireOld { data, .. },
                ) => data,
                Command::MasterKey(
                    MasterKeyCommand::Status { data, .. }
                    | MasterKeyCommand::Add { data, .. }
                    | MasterKeyCommand::Activate { data, .. }
                    | MasterKeyCommand::Rewrap { data }
                    | MasterKeyCommand::Drop { data, .. },
                ) => data,
                Command::User(
                    UserCommand::Create { data, .. }
                    | UserCommand::AddToWorkspace { data, .. }
                    | UserCommand::RemoveFromWorkspace { data, .. }
                    | UserCommand::SetPassword { data, .. }
                    | UserCommand::Delete { data, .. }
                    | UserCommand::List { data, .. },
                ) => data,
                Command::MigrateToPostgres { data, .. }
                | Command::Backup { data, .. }
                | Command::Restore { data, .. } => data,
                Command::MasterKey(MasterKeyCommand::Generate { .. })
                | Command::DebugSignature(_) => unreachable!(),
            };
            match data.backend(false) {
                Backend::Postgres(opts) => {
                    assert_eq!((opts.url.as_str(), opts.pool_size), (url, 3));
                    assert!(!format!("{opts:?}").contains("hunter2"));
                }
                other => panic!("{cmd:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn on_postgres_master_keys_must_be_given_and_no_key_file_is_made_up() {
        // Only when the environment does not supply the keys (the test must not depend on it).
        if keyring_from_env() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let args = [
            "workspace",
            "list",
            "--database-url",
            "postgres://h/d",
            "--data-dir",
        ];
        let mut args = args.to_vec();
        args.push(data_dir.to_str().unwrap());
        let Command::Workspace(WorkspaceCommand::List { data, .. }) = parse(&args).unwrap().command
        else {
            panic!()
        };
        let err = data.keyring(&data.backend(false)).unwrap_err().to_string();
        assert!(err.contains("DROPFIX_MASTER_KEYS"), "{err}");
        assert!(err.contains("--master-key-file"), "{err}");
        assert!(
            !data_dir.exists(),
            "a key file (or its directory) was created"
        );
        // `master-key add/activate/drop` do not edit a default file nobody reads.
        let err = data.key_file().unwrap_err().to_string();
        assert!(err.contains("--master-key-file"), "{err}");
        // A key file given explicitly is used.
        let file = dir.path().join("keys");
        Keyring::create_file(&file).unwrap();
        args.extend(["--master-key-file", file.to_str().unwrap()]);
        let Command::Workspace(WorkspaceCommand::List { data, .. }) = parse(&args).unwrap().command
        else {
            panic!()
        };
        assert!(data.keyring(&data.backend(false)).is_ok());
        assert_eq!(data.key_file().unwrap(), file);
    }

    #[test]
    fn without_a_url_the_embedded_store_is_used_and_ephemeral_conflicts_with_a_url() {
        let Command::Serve(a) = parse(&["serve", "--data-dir", "/tmp/d"]).unwrap().command else {
            panic!()
        };
        assert!(matches!(a.data.backend(false), Backend::Sqlite { .. }));
        assert!(matches!(a.data.backend(true), Backend::SqliteMemory));
        assert!(parse(&["serve", "--ephemeral", "--database-url", "postgres://h/d"]).is_err());
        assert!(
            parse(&[
                "serve",
                "--database-url",
                "postgres://h/d",
                "--db-pool-size",
                "0"
            ])
            .is_err()
        );
    }
}
