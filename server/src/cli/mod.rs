//! The command line: `serve`, `workspace ...`, `debug-signature`. Every flag has an environment
//! variable (`DROPFIX_*`) so a container or a systemd unit can configure it without arguments.
//!
//! This file holds the top-level commands, their dispatch, and the little the command groups
//! share; each group is a file of its own:
//!
//! - `serve`: the server's flags and start;
//! - `workspace`, `user` (console accounts), `master_key`: the `workspace ...`, `user ...` and
//!   `master-key ...` commands;
//! - `backup` (backup and restore), `migrate` (migrate-to-postgres), `debug_signature`;
//! - `data_dir`: the flags every store command takes, and how a command opens its store.

mod backup;
mod data_dir;
mod debug_signature;
mod master_key;
mod migrate;
mod serve;
mod user;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use backup::{backup_command, restore_command};
use data_dir::DataDir;
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
    /// The master keys that seal stored secrets: status, generate, add, activate, rewrap, drop.
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

const CLI_ACTOR: &str = "cli";
