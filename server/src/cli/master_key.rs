//! `master-key ...`: the master keys that seal stored secrets. `status` and `rewrap` work on the
//! store; `add`, `activate` and `drop` edit the key file (never DROPFIX_MASTER_KEYS, which the
//! operator edits); `generate` only prints an entry.

use clap::Subcommand;
use serde_json::json;

use super::data_dir::{DataDir, keyring_from_env, with_store, with_store_value};
use super::{CliResult, print_rows};
use crate::sealing::{self, Keyring, MasterKey};

#[derive(Debug, Subcommand)]
pub(super) enum MasterKeyCommand {
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

pub(super) fn master_key_command(cmd: MasterKeyCommand) -> CliResult {
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
