//! The command line: `serve`, `workspace ...`, `debug-signature`. Every flag has an environment
//! variable (`DROPFIX_*`) so a container or a systemd unit can configure it without arguments.

mod backup;
mod debug_signature;
mod master_key;
mod migrate;
mod serve;
mod user;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::sealing::{self, Keyring, MasterKey};
use crate::store::{Backend, Hooks, Store, postgres};
use backup::{backup_command, restore_command};
use debug_signature::{DebugArgs, debug_signature};
use master_key::{MasterKeyCommand, master_key_command};
use migrate::migrate_to_postgres;
use serve::{ServeArgs, serve};
use user::{UserCommand, user_command};
use workspace::{WorkspaceCommand, workspace_command};

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

fn parse_pool_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=1000) => Ok(n),
        _ => Err("expected a number of connections from 1 to 1000".into()),
    }
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

fn keyring_from_env() -> bool {
    std::env::var(sealing::MASTER_KEYS_ENV).is_ok_and(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("dropfix-server").chain(args.iter().copied()))
    }

    /// The store flags of the command `args` names, read from its innermost subcommand's
    /// matches: what every store command flattens in, whichever enum its variant is in.
    fn store_flags(args: &[&str]) -> DataDir {
        let matches = Cli::command()
            .try_get_matches_from(std::iter::once("dropfix-server").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let mut leaf = &matches;
        while let Some((_, sub)) = leaf.subcommand() {
            leaf = sub;
        }
        DataDir::from_arg_matches(leaf).unwrap_or_else(|e| panic!("{args:?}: {e}"))
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
            let data = store_flags(&args);
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
        let data = store_flags(&args);
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
        let data = store_flags(&args);
        assert!(data.keyring(&data.backend(false)).is_ok());
        assert_eq!(data.key_file().unwrap(), file);
    }

    #[test]
    fn without_a_url_the_embedded_store_is_used_and_ephemeral_conflicts_with_a_url() {
        let data = store_flags(&["serve", "--data-dir", "/tmp/d"]);
        assert!(matches!(data.backend(false), Backend::Sqlite { .. }));
        assert!(matches!(data.backend(true), Backend::SqliteMemory));
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
