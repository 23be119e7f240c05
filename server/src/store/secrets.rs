//! Workspace secrets as stored: sealed under the keyring's active master key and bound to
//! their key row, so a sealed value copied into another row does not open. The rules every
//! backend applies when it writes, reads, upgrades or re-seals a stored secret.

use crate::sealing::Keyring;
use crate::store::StoreError;

/// The associated data a workspace secret is sealed with: its key row (workspace and key id), so
/// a sealed value copied into another row, of another workspace or of a retired key of the same
/// one, does not open.
pub fn secret_aad(app_id: &str, key_id: i64) -> Vec<u8> {
    format!("dropfix-secret:v2:{app_id}:{key_id}").into_bytes()
}

/// What secrets were sealed with before they were bound to their key row (workspace only):
/// read once, by [`upgrade_secret`], and never again.
fn legacy_secret_aad(app_id: &str) -> Vec<u8> {
    format!("dropfix-secret:{app_id}").into_bytes()
}

/// The `meta` key recording that every stored secret is sealed and bound to its key row. Set by
/// the one-time upgrade a store runs when it opens without it; from then on a secret in the
/// clear or sealed the old way is refused as tampering instead of adopted.
pub const SECRETS_BOUND_META: &str = "secrets_bound_to_key_rows";

/// Seals a secret for storage in key row `key_id` of `app_id`.
pub fn seal_secret(
    ring: &Keyring,
    app_id: &str,
    key_id: i64,
    secret: &dropfix_core::SecretKey,
) -> String {
    ring.seal(secret.expose_secret(), &secret_aad(app_id, key_id))
}

/// Opens the secret stored in key row `key_id` of `app_id`. A value that is not sealed, or not
/// sealed for this row, is refused: stored secrets are never read in the clear.
pub fn open_secret(
    ring: &Keyring,
    app_id: &str,
    key_id: i64,
    stored: &str,
) -> Result<dropfix_core::SecretKey, StoreError> {
    if crate::sealing::sealed_key_id(stored).is_none() {
        return Err(StoreError::Sealing(format!(
            "key {key_id} of workspace {app_id} is stored in the clear, which this store never \
             writes: it was put there by hand (tampering?). Delete the row or replace it with a \
             key made by `workspace add-key`"
        )));
    }
    ring.unseal(stored, &secret_aad(app_id, key_id))
        .map(|s| dropfix_core::SecretKey::new(s.as_str()))
        .map_err(|e| StoreError::Sealing(format!("key {key_id} of workspace {app_id}: {e}")))
}

/// The one-time upgrade of a stored secret to the current form: a secret in the clear (written
/// before sealing existed) is sealed, one sealed for its workspace only is opened that way and
/// sealed again bound to its row; one already bound is left as is (`None`).
fn upgrade_secret(
    ring: &Keyring,
    app_id: &str,
    key_id: i64,
    stored: &str,
) -> Result<Option<String>, StoreError> {
    let aad = secret_aad(app_id, key_id);
    if crate::sealing::sealed_key_id(stored).is_none() {
        return Ok(Some(ring.seal(stored, &aad)));
    }
    if ring.unseal(stored, &aad).is_ok() {
        return Ok(None);
    }
    let clear = ring
        .unseal(stored, &legacy_secret_aad(app_id))
        .map_err(|e| StoreError::Sealing(format!("key {key_id} of workspace {app_id}: {e}")))?;
    Ok(Some(ring.seal(&clear, &aad)))
}

/// The one-time upgrade of every stored secret (`rows`: key id, app id, stored value), as the
/// updates to make. Refused when a row already has the current form: the upgrade runs only on a
/// store that never had it, and the record of it ([`SECRETS_BOUND_META`]) being absent from one
/// that did means the database was changed outside DropFix (deleting the record to have a
/// secret written in the clear adopted is exactly the tampering this guards against).
pub fn upgrade_secrets(
    ring: &Keyring,
    rows: &[(i64, String, String)],
) -> Result<Vec<(i64, String)>, StoreError> {
    if let Some((id, app, _)) = rows.iter().find(|(id, app, stored)| {
        crate::sealing::sealed_key_id(stored).is_some()
            && ring.unseal(stored, &secret_aad(app, *id)).is_ok()
    }) {
        return Err(StoreError::Sealing(format!(
            "key {id} of workspace {app} is already sealed to its row, yet the record that this \
             store's secrets were upgraded ({SECRETS_BOUND_META} in its meta table) is missing: \
             the database was changed outside DropFix (tampering?); refusing to adopt any stored \
             secret"
        )));
    }
    let mut updates = Vec::new();
    for (id, app, stored) in rows {
        if let Some(sealed) = upgrade_secret(ring, app, *id, stored)? {
            updates.push((*id, sealed));
        }
    }
    Ok(updates)
}

/// Re-seals a stored secret with the active master key (`None`: already sealed with it). A value
/// in the clear is refused like [`open_secret`] refuses it.
pub fn rewrap_secret(
    ring: &Keyring,
    app_id: &str,
    key_id: i64,
    stored: &str,
) -> Result<Option<String>, StoreError> {
    open_secret(ring, app_id, key_id, stored)?;
    ring.rewrap(stored, &secret_aad(app_id, key_id))
        .map_err(|e| StoreError::Sealing(e.to_string()))
}

/// How many stored secrets each master key seals (for `master-key status` and `drop`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SealCounts {
    /// Master key id -> number of secrets sealed with it.
    pub by_key: std::collections::BTreeMap<String, u64>,
}
