//! The flags every store command takes (`--data-dir`, `--master-key-file`, `--database-url`, the
//! pool's), what they select (the embedded store or PostgreSQL, and the master keys), and how a
//! command opens that store.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::CliResult;
use crate::sealing::{self, Keyring, MasterKey};
use crate::store::{Backend, Hooks, Store, postgres, sqlite};

#[derive(Args, Clone)]
pub(super) struct DataDir {
    /// Where the embedded database lives (created if missing; holds secrets, so owner-only:
    /// an existing directory other users can read or write is refused).
    #[arg(long, env = "DROPFIX_DATA_DIR", default_value = "./dropfix-data")]
    pub(super) data_dir: PathBuf,
    /// File of master keys that seal the stored secrets (default for the embedded store:
    /// DATA_DIR/master.keys, created on first start). DROPFIX_MASTER_KEYS (comma-separated
    /// `id:base64` entries, first active) takes precedence over any file.
    #[arg(long, env = "DROPFIX_MASTER_KEY_FILE")]
    pub(super) master_key_file: Option<PathBuf>,
    /// Use this PostgreSQL instead of the embedded store (`postgres://user:pass@host/db`), so
    /// several verifiers can share one database. The data dir is then not used.
    #[arg(long, env = "DROPFIX_DATABASE_URL", hide_env_values = true)]
    pub(super) database_url: Option<String>,
    /// A second URL of the same database for what needs a session of its own: the connection
    /// that LISTENs for workspace changes. Give it when --database-url goes through a
    /// transaction-mode pooler (PgBouncer pool_mode = transaction, Supabase's port 6543), which
    /// cannot deliver notifications: point it at PostgreSQL itself or at a session-mode pool.
    /// Without it, behind such a pooler, changes made by other instances arrive by the 1 s poll.
    #[arg(
        long,
        env = "DROPFIX_DATABASE_DIRECT_URL",
        hide_env_values = true,
        requires = "database_url"
    )]
    pub(super) database_direct_url: Option<String>,
    /// PostgreSQL connections this process keeps at most (plus one for change notifications).
    #[arg(long, env = "DROPFIX_DB_POOL_SIZE", default_value_t = postgres::DEFAULT_POOL_SIZE,
          value_parser = parse_pool_size)]
    pub(super) db_pool_size: usize,
    /// Seconds to wait for a PostgreSQL connection, and for an identify call's write, before
    /// answering 503 (a down or hung database fails requests quickly instead of hanging them).
    #[arg(long, env = "DROPFIX_DB_TIMEOUT_SECS", default_value_t = postgres::DEFAULT_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub(super) db_timeout_secs: u64,
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
            .field(
                "database_direct_url",
                &self.database_direct_url.as_ref().map(|_| "<redacted>"),
            )
            .field("db_pool_size", &self.db_pool_size)
            .field("db_timeout_secs", &self.db_timeout_secs)
            .finish()
    }
}

impl DataDir {
    pub(super) fn backend(&self, ephemeral: bool) -> Backend {
        let postgres = self.database_url.as_ref().map(|url| postgres::PgOptions {
            url: url.clone(),
            direct_url: self.database_direct_url.clone(),
            pool_size: self.db_pool_size,
            timeout: Duration::from_secs(self.db_timeout_secs),
        });
        Backend::from_flags(self.data_dir.clone(), ephemeral, postgres)
    }

    /// The key file this command edits (`master-key ...`). On PostgreSQL there is no default:
    /// the data dir is not used there, and editing a file nobody reads would only mislead.
    pub(super) fn key_file(&self) -> Result<PathBuf, Box<dyn std::error::Error>> {
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
    pub(super) fn keyring(&self, backend: &Backend) -> Result<Keyring, Box<dyn std::error::Error>> {
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
                // Before the key file is created in it: a directory other users can write is
                // refused with nothing written there.
                sqlite::prepare_data_dir(data_dir)?;
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

/// Opens the store a workspace command works on and runs `f` on it.
pub(super) fn with_store<F, Fut>(data: &DataDir, f: F) -> CliResult
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = CliResult>,
{
    with_store_value(data, f)
}

pub(super) fn with_store_value<T, F, Fut>(
    data: &DataDir,
    f: F,
) -> Result<T, Box<dyn std::error::Error>>
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

pub(super) fn keyring_from_env() -> bool {
    std::env::var(sealing::MASTER_KEYS_ENV).is_ok_and(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;
    use crate::cli::Cli;

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
            args.extend(["--database-direct-url", "postgres://u:direct-pw@db/dropfix"]);
            let cli = parse(&args).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            assert!(!format!("{cli:?}").contains("hunter2"), "{cmd:?}");
            assert!(!format!("{cli:?}").contains("direct-pw"), "{cmd:?}");
            let data = store_flags(&args);
            match data.backend(false) {
                Backend::Postgres(opts) => {
                    assert_eq!((opts.url.as_str(), opts.pool_size), (url, 3));
                    assert_eq!(
                        opts.direct_url.as_deref(),
                        Some("postgres://u:direct-pw@db/dropfix")
                    );
                    assert!(!format!("{opts:?}").contains("hunter2"));
                    assert!(!format!("{opts:?}").contains("direct-pw"));
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
