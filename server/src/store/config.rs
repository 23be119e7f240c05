//! Workspaces and keys as stored: loading them (unsealing every secret), and every change to
//! them, each in one transaction that first locks what it is about to change. Written once for
//! every backend, over [`Sql`].
//!
//! The rules themselves (how many live keys, which key a roll replaces, how long a rolled key
//! keeps verifying) are [`crate::workspace`]'s; this module reads what they decide on, asks
//! them, writes the outcome and its audit entry.

use std::collections::HashMap;

use dropfix_core::{SecretKey, StrictMode};
use serde_json::{Value as Json, json};

use super::sql::{Lock, RowLock, Sql, args};
use super::{SECRETS_BOUND_META, SealCounts, StoreError, open_secret, seal_secret};
use crate::issuers::{Issuer, IssuerConfig, MAX_ISSUERS};
use crate::sealing::{Keyring, sealed_key_id};
use crate::workspace::{
    IssuerRuleError, Key, NewKey, NewWorkspace, Workspace, WorkspacePatch, check_new_key,
    check_retire, generate_secret, key_to_roll, random_token, rolled_expiry,
};

/// Every workspace (or the one named) with its keys, secrets unsealed, by app id.
pub(crate) async fn load_workspaces(
    c: &mut impl Sql,
    ring: &Keyring,
    app_id: Option<&str>,
) -> Result<Vec<Workspace>, StoreError> {
    let mut keys: HashMap<String, Vec<Key>> = HashMap::new();
    let rows = c
        .rows(
            "SELECT app_id, id, secret, created_at, expires_at, label, created_by, last_used_at
             FROM keys WHERE (CAST($1 AS TEXT) IS NULL OR app_id = $1) ORDER BY id DESC",
            args![app_id],
        )
        .await?;
    for r in &rows {
        let (app, id) = (r.text(0)?, r.i64(1)?);
        let secret = open_secret(ring, &app, id, r.str(2)?)?;
        keys.entry(app).or_default().push(Key {
            id,
            secret,
            created_at: r.i64(3)?,
            expires_at: r.opt_i64(4)?,
            label: r.text(5)?,
            created_by: r.text(6)?,
            last_used_at: r.opt_i64(7)?,
        });
    }
    let rows = c
        .rows(
            "SELECT app_id, name, strict, require_signed_claims, allowed_origins, token_issuers
             FROM workspaces
             WHERE (CAST($1 AS TEXT) IS NULL OR app_id = $1) ORDER BY app_id",
            args![app_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let app_id = r.text(0)?;
            let keys = keys.remove(&app_id).unwrap_or_default();
            let issuers = read_issuers(&app_id, r.str(5)?);
            Ok(Workspace::new(
                app_id,
                r.text(1)?,
                // An unreadable setting fails closed: enforce.
                StrictMode::parse(r.str(2)?).unwrap_or(StrictMode::Enforce),
                r.bool(3)?,
                serde_json::from_str(r.str(4)?).unwrap_or_default(),
                keys,
            )
            .with_issuers(issuers))
        })
        .collect()
}

/// The stored issuers of a workspace, each checked again. One that no longer passes (written by
/// another version, or edited by hand) is left out and logged: its tokens are refused
/// (`unknown_issuer`), which fails closed, while the workspace's other issuers keep working.
fn read_issuers(app_id: &str, stored: &str) -> Vec<Issuer> {
    let configs: Vec<IssuerConfig> = match serde_json::from_str(stored) {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(app_id, error = %e, "the stored token issuers are unreadable; \
                            none of them verifies until they are set again");
            return Vec::new();
        }
    };
    configs
        .into_iter()
        .filter_map(|config| {
            let name = config.name.clone();
            config
                .check()
                .map_err(|e| {
                    tracing::error!(
                        app_id,
                        issuer = name,
                        error = e,
                        "a stored token issuer is \
                                    refused; its tokens are refused until it is set again"
                    );
                })
                .ok()
        })
        .collect()
}

/// The stored issuer configurations of a locked workspace, as written.
async fn stored_issuers(c: &mut impl Sql, app_id: &str) -> Result<Vec<IssuerConfig>, StoreError> {
    let row = c
        .row(
            "SELECT token_issuers FROM workspaces WHERE app_id = $1",
            args![app_id],
        )
        .await?
        .ok_or(StoreError::WorkspaceNotFound)?;
    // Unreadable: start again from none rather than refuse every change (read_issuers logged it).
    Ok(serde_json::from_str(row.str(0)?).unwrap_or_default())
}

async fn write_issuers(
    c: &mut impl Sql,
    app_id: &str,
    issuers: &[IssuerConfig],
) -> Result<(), StoreError> {
    let json = serde_json::to_string(issuers).unwrap_or_else(|_| "[]".into());
    c.exec(
        "UPDATE workspaces SET token_issuers = $2 WHERE app_id = $1",
        args![app_id, &json],
    )
    .await?;
    Ok(())
}

/// Adds a checked issuer configuration ([`IssuerConfig::check`]).
pub(crate) async fn add_issuer(
    c: &mut impl Sql,
    ring: &Keyring,
    app_id: &str,
    issuer: &IssuerConfig,
    actor: &str,
    now: i64,
) -> Result<Workspace, StoreError> {
    lock_workspace(c, app_id).await?;
    let mut issuers = stored_issuers(c, app_id).await?;
    if issuers.iter().any(|i| i.name == issuer.name) {
        return Err(IssuerRuleError::Exists.into());
    }
    if issuers.len() >= MAX_ISSUERS {
        return Err(IssuerRuleError::TooMany.into());
    }
    issuers.push(issuer.clone());
    write_issuers(c, app_id, &issuers).await?;
    let detail = json!({"name": issuer.name, "iss": issuer.iss, "jwks_url": issuer.jwks_url,
        "audiences": issuer.audiences, "keys": issuer.keys.len()});
    config_audited(c, app_id, actor, "issuer.add", detail, now).await?;
    get_workspace(c, ring, app_id).await
}

pub(crate) async fn remove_issuer(
    c: &mut impl Sql,
    ring: &Keyring,
    app_id: &str,
    name: &str,
    actor: &str,
    now: i64,
) -> Result<Workspace, StoreError> {
    lock_workspace(c, app_id).await?;
    let mut issuers = stored_issuers(c, app_id).await?;
    let before = issuers.len();
    issuers.retain(|i| i.name != name);
    if issuers.len() == before {
        return Err(IssuerRuleError::NotFound.into());
    }
    if issuers.is_empty() && live_key_ids(c, app_id, now).await?.is_empty() {
        return Err(IssuerRuleError::LastVerifier.into());
    }
    write_issuers(c, app_id, &issuers).await?;
    config_audited(
        c,
        app_id,
        actor,
        "issuer.remove",
        json!({"name": name}),
        now,
    )
    .await?;
    get_workspace(c, ring, app_id).await
}

async fn get_workspace(
    c: &mut impl Sql,
    ring: &Keyring,
    app_id: &str,
) -> Result<Workspace, StoreError> {
    load_workspaces(c, ring, Some(app_id))
        .await?
        .pop()
        .ok_or(StoreError::WorkspaceNotFound)
}

/// Locks the workspace row until the transaction ends: every key change of this workspace,
/// from any instance or the CLI, waits here, so the keys it reads next cannot change before it
/// commits.
async fn lock_workspace(c: &mut impl Sql, app_id: &str) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT 1 FROM workspaces WHERE app_id = $1{}",
        c.row_lock(RowLock::Update)
    );
    c.row(&sql, args![app_id])
        .await?
        .map(|_| ())
        .ok_or(StoreError::WorkspaceNotFound)
}

/// Appends an audit entry (the shapes of `detail` are in docs/API.md).
pub(crate) async fn audit(
    c: &mut impl Sql,
    app_id: &str,
    actor: &str,
    action: &str,
    detail: Json,
    now: i64,
) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO audit_log (app_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)",
        args![app_id, now, actor, action, &detail.to_string()],
    )
    .await?;
    Ok(())
}

/// Audits a change to workspaces or keys and tells the other instances of it.
async fn config_audited(
    c: &mut impl Sql,
    app_id: &str,
    actor: &str,
    action: &str,
    detail: Json,
    now: i64,
) -> Result<(), StoreError> {
    audit(c, app_id, actor, action, detail, now).await?;
    c.config_changed().await
}

/// Forgets keys whose grace period is over (their secrets no longer verify anything).
async fn purge_expired(c: &mut impl Sql, app_id: &str, now: i64) -> Result<(), StoreError> {
    c.exec(
        "DELETE FROM keys WHERE app_id = $1 AND expires_at IS NOT NULL AND expires_at <= $2",
        args![app_id, now],
    )
    .await?;
    Ok(())
}

/// The workspace's live keys, newest first.
async fn live_key_ids(c: &mut impl Sql, app_id: &str, now: i64) -> Result<Vec<i64>, StoreError> {
    c.rows_as(
        "SELECT id FROM keys WHERE app_id = $1 AND (expires_at IS NULL OR expires_at > $2)
         ORDER BY id DESC",
        args![app_id, now],
        |r| r.i64(0),
    )
    .await
}

/// A key row as [`insert_key`] writes it.
struct KeyRow<'a> {
    app_id: &'a str,
    label: &'a str,
    secret: &'a SecretKey,
    expires_at: Option<i64>,
}

async fn insert_key(
    c: &mut impl Sql,
    ring: &Keyring,
    key: KeyRow<'_>,
    actor: &str,
    now: i64,
) -> Result<i64, StoreError> {
    // The sealed secret is bound to its row's id, known once the row exists.
    let row = c
        .row(
            "INSERT INTO keys (app_id, secret, created_at, expires_at, label, created_by)
             VALUES ($1, '', $2, $3, $4, $5) RETURNING id",
            args![key.app_id, now, key.expires_at, key.label, actor],
        )
        .await?;
    let id = row
        .ok_or_else(|| StoreError::Setup("the key insert returned no id".into()))?
        .i64(0)?;
    store_secret(c, id, &seal_secret(ring, key.app_id, id, key.secret)).await?;
    Ok(id)
}

/// Writes the sealed secret of key row `id`.
async fn store_secret(c: &mut impl Sql, id: i64, sealed: &str) -> Result<(), StoreError> {
    c.exec(
        "UPDATE keys SET secret = $2 WHERE id = $1",
        args![id, sealed],
    )
    .await?;
    Ok(())
}

fn origins_json(origins: &[String]) -> String {
    serde_json::to_string(origins).unwrap_or_else(|_| "[]".into())
}

/// Creates a workspace and its first key; with `only_if_none`, only if the store has no
/// workspace yet (checked and created in one step), else `None`.
pub(crate) async fn create_workspace(
    c: &mut impl Sql,
    ring: &Keyring,
    new: &NewWorkspace,
    actor: &str,
    now: i64,
    only_if_none: bool,
) -> Result<Option<NewKey>, StoreError> {
    let app_id = random_token("app_", 12);
    let secret = generate_secret();
    if only_if_none {
        c.lock(Lock::FirstWorkspace).await?;
        if c.row("SELECT 1 FROM workspaces LIMIT 1", &[])
            .await?
            .is_some()
        {
            return Ok(None);
        }
    }
    c.exec(
        "INSERT INTO workspaces (app_id, name, strict, require_signed_claims, allowed_origins,
             created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            &app_id,
            &new.name,
            new.strict.as_str(),
            new.require_signed_claims,
            &origins_json(&new.allowed_origins),
            now,
        ],
    )
    .await?;
    let key = KeyRow {
        app_id: &app_id,
        label: "default",
        secret: &secret,
        expires_at: None,
    };
    let key_id = insert_key(c, ring, key, actor, now).await?;
    let detail = json!({"name": new.name, "strict": new.strict.as_str(),
        "require_signed_claims": new.require_signed_claims,
        "allowed_origins": new.allowed_origins, "key_id": key_id});
    config_audited(c, &app_id, actor, "workspace.create", detail, now).await?;
    Ok(Some(NewKey {
        workspace: get_workspace(c, ring, &app_id).await?,
        key_id,
        secret,
        old_key_expires_at: None,
    }))
}

pub(crate) async fn update_workspace(
    c: &mut impl Sql,
    ring: &Keyring,
    app_id: &str,
    patch: &WorkspacePatch,
    actor: &str,
    now: i64,
) -> Result<Workspace, StoreError> {
    lock_workspace(c, app_id).await?;
    let mut changed = serde_json::Map::new();
    let set = "UPDATE workspaces SET ";
    if let Some(name) = &patch.name {
        let sql = format!("{set}name = $2 WHERE app_id = $1");
        c.exec(&sql, args![app_id, name]).await?;
        changed.insert("name".into(), name.clone().into());
    }
    if let Some(strict) = patch.strict {
        let sql = format!("{set}strict = $2 WHERE app_id = $1");
        c.exec(&sql, args![app_id, strict.as_str()]).await?;
        changed.insert("strict".into(), strict.as_str().into());
    }
    if let Some(required) = patch.require_signed_claims {
        let sql = format!("{set}require_signed_claims = $2 WHERE app_id = $1");
        c.exec(&sql, args![app_id, required]).await?;
        changed.insert("require_signed_claims".into(), required.into());
    }
    if let Some(origins) = &patch.allowed_origins {
        let sql = format!("{set}allowed_origins = $2 WHERE app_id = $1");
        c.exec(&sql, args![app_id, &origins_json(origins)]).await?;
        changed.insert("allowed_origins".into(), json!(origins));
    }
    if !changed.is_empty() {
        let detail = Json::Object(changed);
        config_audited(c, app_id, actor, "workspace.update", detail, now).await?;
    }
    get_workspace(c, ring, app_id).await
}

/// Locks the workspace, forgets its expired keys and returns the live ones, newest first: how
/// every key change starts.
async fn begin_key_change(
    c: &mut impl Sql,
    app_id: &str,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    lock_workspace(c, app_id).await?;
    purge_expired(c, app_id, now).await?;
    live_key_ids(c, app_id, now).await
}

pub(crate) async fn create_key(
    c: &mut impl Sql,
    ring: &Keyring,
    app_id: &str,
    label: &str,
    expires_at: Option<i64>,
    actor: &str,
    now: i64,
) -> Result<NewKey, StoreError> {
    let secret = generate_secret();
    let live = begin_key_change(c, app_id, now).await?;
    check_new_key(label, expires_at, live.len(), now)?;
    let key = KeyRow {
        app_id,
        label,
        secret: &secret,
        expires_at,
    };
    let key_id = insert_key(c, ring, key, actor, now).await?;
    let detail = json!({"key_id": key_id, "label": label, "expires_at": expires_at});
    config_audited(c, app_id, actor, "key.create", detail, now).await?;
    Ok(NewKey {
        workspace: get_workspace(c, ring, app_id).await?,
        key_id,
        secret,
        old_key_expires_at: None,
    })
}

pub(crate) async fn roll_key(
    c: &mut impl Sql,
    ring: &Keyring,
    app_id: &str,
    key_id: Option<i64>,
    grace_secs: i64,
    actor: &str,
    now: i64,
) -> Result<NewKey, StoreError> {
    let secret = generate_secret();
    let live = begin_key_change(c, app_id, now).await?;
    let old_id = key_to_roll(&live, key_id, grace_secs)?;
    let row = c
        .row(
            "SELECT label, expires_at FROM keys WHERE id = $1",
            args![old_id],
        )
        .await?
        .ok_or(StoreError::WorkspaceNotFound)?;
    let (label, current_expiry) = (row.text(0)?, row.opt_i64(1)?);
    let until = rolled_expiry(current_expiry, now, grace_secs);
    c.exec(
        "UPDATE keys SET expires_at = $2 WHERE id = $1",
        args![old_id, until],
    )
    .await?;
    let key = KeyRow {
        app_id,
        label: &label,
        secret: &secret,
        expires_at: None,
    };
    let new_id = insert_key(c, ring, key, actor, now).await?;
    purge_expired(c, app_id, now).await?;
    let detail = json!({"key_id": old_id, "new_key_id": new_id, "label": label,
        "old_key_expires_at": until, "grace_seconds": grace_secs.max(0)});
    config_audited(c, app_id, actor, "key.roll", detail, now).await?;
    Ok(NewKey {
        workspace: get_workspace(c, ring, app_id).await?,
        key_id: new_id,
        secret,
        old_key_expires_at: Some(until),
    })
}

pub(crate) async fn retire_key(
    c: &mut impl Sql,
    ring: &Keyring,
    app_id: &str,
    key_id: i64,
    actor: &str,
    now: i64,
) -> Result<Workspace, StoreError> {
    let live = begin_key_change(c, app_id, now).await?;
    check_retire(&live, key_id, !stored_issuers(c, app_id).await?.is_empty())?;
    c.exec(
        "DELETE FROM keys WHERE app_id = $1 AND id = $2",
        args![app_id, key_id],
    )
    .await?;
    let detail = json!({"key_id": key_id});
    config_audited(c, app_id, actor, "key.retire", detail, now).await?;
    get_workspace(c, ring, app_id).await
}

pub(crate) async fn retire_old_keys(
    c: &mut impl Sql,
    ring: &Keyring,
    app_id: &str,
    actor: &str,
    now: i64,
) -> Result<Workspace, StoreError> {
    let live = begin_key_change(c, app_id, now).await?;
    if let Some((newest, older)) = live.split_first()
        && !older.is_empty()
    {
        c.exec(
            "DELETE FROM keys WHERE app_id = $1 AND id <> $2",
            args![app_id, *newest],
        )
        .await?;
        let detail = json!({"kept_key_id": newest, "retired_key_ids": older});
        config_audited(c, app_id, actor, "key.retire_old", detail, now).await?;
    }
    get_workspace(c, ring, app_id).await
}

/// When each key of a workspace last verified a call (keys never used are absent).
pub(crate) async fn key_last_used(
    c: &mut impl Sql,
    app_id: &str,
) -> Result<HashMap<i64, i64>, StoreError> {
    let used = c
        .rows_as(
            "SELECT id, last_used_at FROM keys WHERE app_id = $1 AND last_used_at IS NOT NULL",
            args![app_id],
            |r| Ok((r.i64(0)?, r.i64(1)?)),
        )
        .await?;
    Ok(used.into_iter().collect())
}

// ---------------------------------------------------------------------------------------------
// Sealed secrets

/// Every key row, locked: the workspace rows first, in app id order, as every key change locks
/// its workspace before its keys (a roll elsewhere waits for this transaction, or it for the
/// roll, instead of writing a secret this one then misses, or deadlocking with it).
async fn lock_all_keys(c: &mut impl Sql) -> Result<Vec<(i64, String, String)>, StoreError> {
    let lock = c.row_lock(RowLock::Update);
    let sql = format!("SELECT 1 FROM workspaces ORDER BY app_id{lock}");
    c.rows(&sql, &[]).await?;
    let sql = format!("SELECT id, app_id, secret FROM keys ORDER BY id{lock}");
    c.rows_as(&sql, &[], |r| Ok((r.i64(0)?, r.text(1)?, r.text(2)?)))
        .await
}

/// Re-seals every secret that is not sealed with the active master key (and seals any stored
/// in the clear); returns how many were rewritten.
pub(crate) async fn rewrap_secrets(c: &mut impl Sql, ring: &Keyring) -> Result<u64, StoreError> {
    let mut changed = 0u64;
    for (id, app_id, stored) in lock_all_keys(c).await? {
        if let Some(sealed) = super::rewrap_secret(ring, &app_id, id, &stored)? {
            store_secret(c, id, &sealed).await?;
            changed += 1;
        }
    }
    if changed > 0 {
        // The secrets are the same, but instances holding a stale copy of the rows should
        // reload before anyone drops the old master key.
        c.config_changed().await?;
    }
    Ok(changed)
}

/// The one-time upgrade of stored secrets ([`super::upgrade_secrets`]), before anything reads
/// them: run while [`SECRETS_BOUND_META`] is absent, then recorded in the same transaction.
/// Afterwards a secret in the clear is refused, never adopted. Returns how many it rewrote.
pub(crate) async fn upgrade_secrets(c: &mut impl Sql, ring: &Keyring) -> Result<usize, StoreError> {
    if meta_get(c, SECRETS_BOUND_META).await?.is_some() {
        return Ok(0);
    }
    let updates = super::upgrade_secrets(ring, &lock_all_keys(c).await?)?;
    for (id, sealed) in &updates {
        store_secret(c, *id, sealed).await?;
    }
    c.exec(
        "INSERT INTO meta (key, value) VALUES ($1, '1') ON CONFLICT (key) DO NOTHING",
        args![SECRETS_BOUND_META],
    )
    .await?;
    if !updates.is_empty() {
        c.config_changed().await?;
        tracing::info!(
            secrets = updates.len(),
            "stored secrets sealed and bound to their key rows (one-time upgrade)"
        );
    }
    Ok(updates.len())
}

/// How many stored secrets each master key seals.
pub(crate) async fn seal_counts(c: &mut impl Sql) -> Result<SealCounts, StoreError> {
    let mut counts = SealCounts::default();
    for r in c.rows("SELECT secret FROM keys", &[]).await? {
        let id = sealed_key_id(r.str(0)?).unwrap_or("(not sealed)");
        *counts.by_key.entry(id.to_string()).or_default() += 1;
    }
    Ok(counts)
}

// ---------------------------------------------------------------------------------------------
// Server metadata

pub(crate) async fn meta_get(c: &mut impl Sql, key: &str) -> Result<Option<String>, StoreError> {
    match c
        .row("SELECT value FROM meta WHERE key = $1", args![key])
        .await?
    {
        Some(r) => Ok(Some(r.text(0)?)),
        None => Ok(None),
    }
}

pub(crate) async fn meta_set(c: &mut impl Sql, key: &str, value: &str) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        args![key, value],
    )
    .await?;
    Ok(())
}

/// Stores `value` unless `key` has one, and returns the value that stands.
pub(crate) async fn meta_set_if_absent(
    c: &mut impl Sql,
    key: &str,
    value: &str,
) -> Result<String, StoreError> {
    c.exec(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        args![key, value],
    )
    .await?;
    meta_get(c, key)
        .await?
        .ok_or_else(|| StoreError::Setup(format!("meta {key} vanished")))
}
