//! `backup` and `restore` of the embedded store ([`crate::backup`] does the copying). The master
//! keys are never in a backup: these commands say where they must be kept, and a restore proves
//! that the keys given open every restored secret.

use std::path::Path;

use super::CliResult;
use super::data_dir::{DataDir, keyring_from_env, with_store};
use crate::sealing;

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

pub(super) fn backup_command(to: &Path, data: &DataDir) -> CliResult {
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

pub(super) fn restore_command(from: &Path, data: DataDir) -> CliResult {
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
