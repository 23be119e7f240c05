//! `master-key ...`: the master keys that seal stored secrets. `status` and `rewrap` work on the
//! store; `add`, `activate` and `drop` edit the key file (never DROPFIX_MASTER_KEYS, which the
//! operator edits); `generate` only prints an entry.
//!
//! On PostgreSQL every serving instance registers the ids and fingerprints of the keys it holds
//! ([`crate::store::instances`]): `status` lists them beside this host's, and `activate`,
//! `rewrap` and `drop` refuse (unless `--force`) while a live instance would be left unable to
//! open what is sealed: a key it lacks, or holds under the same id with other bytes.

use std::io::{IsTerminal as _, Read as _};

use clap::Subcommand;
use serde_json::json;
use zeroize::Zeroizing;

use super::data_dir::{DataDir, keyring_from_env, with_store, with_store_value};
use super::{CliResult, print_rows};
use crate::sealing::{self, KeyAdded, Keyring, MasterKey};
use crate::store::Store;
use crate::store::instances::{Holds, InstanceKeys, LIVE_SECS, REFRESH};

#[derive(Debug, Subcommand)]
pub(super) enum MasterKeyCommand {
    /// The keyring in use: each key's fingerprint (never the key), the active one, how many
    /// stored secrets each seals; on PostgreSQL also the keys every live instance holds.
    Status {
        #[command(flatten)]
        data: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Print a new master key entry (`id:base64`) for DROPFIX_MASTER_KEYS, or for `master-key
    /// add --from-stdin` on every host; stores nothing.
    Generate {
        #[arg(long)]
        id: String,
    },
    /// Add a master key to the key file: a fresh one, or with --from-stdin the one `generate`
    /// printed. Without `--no-activate` it becomes the active key at once (one machine). With
    /// several instances: generate the key once, add it on every host with `--from-stdin
    /// --no-activate`, check that every host shows the same fingerprint (`master-key status`,
    /// /healthz), then `activate` it on every host.
    Add {
        /// Add it after the active key instead of as the active one: nothing is sealed with it
        /// until `activate`, so every instance can be given it first.
        #[arg(long)]
        no_activate: bool,
        /// Id of the new key (default: the next `mkN`).
        #[arg(long, conflicts_with = "from_stdin")]
        id: Option<String>,
        /// Add the key read from standard input (the `id:base64` line `master-key generate`
        /// prints) instead of a fresh one. Adding a key the file already holds changes
        /// nothing; another key under its id is refused. The key is never printed.
        #[arg(long)]
        from_stdin: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Make a key of the key file the active one (it seals from now on). On PostgreSQL, refused
    /// while a live instance does not hold that very key (see `status`).
    Activate {
        id: String,
        /// Activate even if live instances lack the key (they will answer 503 config_stale).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Re-seal every stored secret with the active master key. On PostgreSQL, refused while a
    /// live instance does not hold that very key (see `status`).
    Rewrap {
        /// Rewrap even if live instances lack the key (they will answer 503 config_stale).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Remove a master key from the key file; refused while any stored secret is sealed with
    /// it, and on PostgreSQL while a live instance still seals with it.
    Drop {
        id: String,
        /// Drop it even if a live instance still seals with it.
        #[arg(long)]
        force: bool,
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
        MasterKeyCommand::Status { data, json } => status(&data, json),
        MasterKeyCommand::Generate { id } => {
            let key = MasterKey::generate(&id)?;
            println!("{}", key.export_entry().as_str());
            Ok(())
        }
        MasterKeyCommand::Add {
            no_activate,
            id,
            from_stdin,
            data,
        } => add(no_activate, id, from_stdin, &data),
        MasterKeyCommand::Activate { id, force, data } => {
            refuse_env_edit()?;
            let path = data.key_file()?;
            if !force && data.database_url.is_some() {
                let ring = Keyring::load_file(&path)?;
                let fingerprint = ring
                    .fingerprint(&id)
                    .ok_or_else(|| format!("master key file {} has no key {id}", path.display()))?;
                let key_id = id.clone();
                with_store(&data, |store| async move {
                    every_instance_holds(&store, &key_id, &fingerprint, "activate it").await
                })?;
            }
            Keyring::activate_key_in_file(&path, &id)?;
            println!("master key {id} is now active in {}", path.display());
            Ok(())
        }
        MasterKeyCommand::Rewrap { force, data } => {
            let ring = data.keyring(&data.backend(false))?;
            with_store(&data, |store| async move {
                if !force {
                    let id = ring.active_id();
                    let fingerprint = ring.fingerprint(id).unwrap_or_default();
                    let doing = "rewrap the stored secrets to it";
                    every_instance_holds(&store, id, &fingerprint, doing).await?;
                }
                let n = store.rewrap_secrets().await?;
                println!("re-sealed {n} secret(s) with the active master key");
                Ok(())
            })
        }
        MasterKeyCommand::Drop { id, force, data } => {
            refuse_env_edit()?;
            let path = data.key_file()?;
            let (counts, instances) = with_store_value(&data, |store| async move {
                Ok((store.seal_counts().await?, store.live_instances().await?))
            })?;
            let still = counts.by_key.get(&id).copied().unwrap_or(0);
            if still > 0 {
                return Err(format!(
                    "{still} stored secret(s) are still sealed with master key {id}: run \
                     `dropfix-server master-key rewrap` first"
                )
                .into());
            }
            let sealing: Vec<String> = (instances.unwrap_or_default().iter())
                .filter(|i| i.active == id)
                .map(InstanceKeys::name)
                .collect();
            if !force && !sealing.is_empty() {
                return Err(format!(
                    "refusing to drop master key {id}: live instance(s) still seal new secrets \
                     with it, which this host could then not open: {}. Activate the new key \
                     there first (`master-key activate`), rewrap, then drop; --force drops it \
                     anyway",
                    sealing.join("; ")
                )
                .into());
            }
            Keyring::remove_key_from_file(&path, &id)?;
            println!("master key {id} removed from {}", path.display());
            Ok(())
        }
    }
}

fn status(data: &DataDir, json: bool) -> CliResult {
    let ring = data.keyring(&data.backend(false))?;
    with_store(data, |store| async move {
        let counts = store.seal_counts().await?;
        let instances = store.live_instances().await?;
        let ids: Vec<&str> = ring.key_ids().collect();
        let fingerprints: Vec<(&str, String)> = ring.fingerprints().collect();
        if json {
            let fps: serde_json::Map<String, serde_json::Value> = (fingerprints.iter())
                .map(|(id, fp)| ((*id).to_owned(), fp.as_str().into()))
                .collect();
            println!(
                "{}",
                json!({"active": ring.active_id(), "keys": ids, "fingerprints": fps,
                       "source": ring.source().to_string(), "sealed": counts.by_key,
                       "instances": instances})
            );
            return Ok(());
        }
        let mut rows = vec![
            ("active".to_string(), ring.active_id().to_string()),
            ("keys".to_string(), ids.join(" ")),
            ("source".to_string(), ring.source().to_string()),
        ];
        for (id, fp) in &fingerprints {
            let active = if *id == ring.active_id() {
                " (active)"
            } else {
                ""
            };
            rows.push((format!("key {id}"), format!("fingerprint {fp}{active}")));
        }
        for (id, n) in &counts.by_key {
            rows.push((format!("secrets sealed with {id}"), n.to_string()));
        }
        if let Some(instances) = &instances {
            rows.push((
                "instances".to_string(),
                format!(
                    "{} live on this database (registered in the last {LIVE_SECS} s)",
                    instances.len()
                ),
            ));
            for i in instances {
                rows.push((format!("instance {}", i.name()), compare(i, &fingerprints)));
            }
        }
        print_rows(&rows);
        Ok(())
    })
}

/// What an instance holds, next to this host's keys (`ours`, the active one first).
fn compare(instance: &InstanceKeys, ours: &[(&str, String)]) -> String {
    let held: Vec<String> = (instance.fingerprints.iter())
        .map(|(id, fp)| format!("{id} {fp}"))
        .collect();
    let mut differences = Vec::new();
    for (id, fp) in ours {
        match instance.holds(id, fp) {
            Holds::Same => {}
            Holds::Missing => differences.push(format!("lacks {id}")),
            Holds::Different(_) => differences.push(format!("holds another key as {id}")),
        }
    }
    for id in instance.fingerprints.keys() {
        if !ours.iter().any(|(ours, _)| ours == id) {
            differences.push(format!("also holds {id}"));
        }
    }
    let verdict = if differences.is_empty() {
        "the same keys as here".to_string()
    } else {
        differences.join(", ")
    };
    format!("active {}; {}; {verdict}", instance.active, held.join(", "))
}

/// On a shared database, refuses `doing` while a live instance does not hold key `id` with this
/// `fingerprint` (missing, or another key under its id): it could not open what that key seals.
async fn every_instance_holds(
    store: &Store,
    id: &str,
    fingerprint: &str,
    doing: &str,
) -> CliResult {
    let Some(instances) = store.live_instances().await? else {
        return Ok(());
    };
    let lacking: Vec<String> = (instances.iter())
        .filter_map(|i| match i.holds(id, fingerprint) {
            Holds::Same => None,
            Holds::Missing => Some(format!("{}: has no key {id}", i.name())),
            Holds::Different(theirs) => Some(format!(
                "{}: holds another key as {id} (fingerprint {theirs})",
                i.name()
            )),
        })
        .collect();
    if lacking.is_empty() {
        return Ok(());
    }
    Err(format!(
        "refusing to {doing}: live instance(s) on this database do not hold master key {id} \
         (fingerprint {fingerprint}) and could not open what it seals: {}. Add this very key \
         there (`dropfix-server master-key add --from-stdin --no-activate`, given the entry \
         `master-key generate` printed), check with `master-key status`, then run this again \
         (instances re-register every {} s; one stopped without unregistering is forgotten \
         after {LIVE_SECS} s). --force does it anyway",
        lacking.join("; "),
        REFRESH.as_secs()
    )
    .into())
}

fn add(no_activate: bool, id: Option<String>, from_stdin: bool, data: &DataDir) -> CliResult {
    refuse_env_edit()?;
    let path = data.key_file()?;
    let ring = Keyring::load_file(&path)?;
    let key = if from_stdin {
        key_from_stdin()?
    } else {
        MasterKey::generate(&id.unwrap_or_else(|| ring.next_key_id()))?
    };
    let (id, fingerprint) = (key.id(), key.fingerprint());
    match Keyring::add_key_to_file(&path, &key, !no_activate)? {
        KeyAdded::Added => println!(
            "added master key {id} (fingerprint {fingerprint}) to {}{}",
            path.display(),
            if no_activate {
                " (not active yet: `master-key activate` it once every instance has it)"
            } else {
                " (active: new secrets are sealed with it; run `master-key rewrap` next)"
            }
        ),
        KeyAdded::AlreadyThere => {
            let active = Keyring::load_file(&path)?.active_id() == id;
            println!(
                "master key {id} (fingerprint {fingerprint}) is already in {}: nothing changed{}",
                path.display(),
                match (active, no_activate) {
                    (true, _) => " (it is the active key)",
                    (false, true) => "",
                    (false, false) => " (not active: `master-key activate` makes it active)",
                }
            );
        }
    }
    Ok(())
}

/// Most bytes read from standard input for one key entry (a key file's bound).
const MAX_STDIN_BYTES: u64 = 64 * 1024;

/// The one key entry on standard input, checked as a key file line is; never echoed.
fn key_from_stdin() -> Result<MasterKey, Box<dyn std::error::Error>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("paste the `id:base64` entry, then press Ctrl-D:");
    }
    let mut bytes = Zeroizing::new(Vec::new());
    stdin
        .lock()
        .take(MAX_STDIN_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_STDIN_BYTES {
        return Err("standard input is larger than a key entry".into());
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| "standard input is not UTF-8 text")?;
    Ok(MasterKey::parse_one(text, "standard input")?)
}
