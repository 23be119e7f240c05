//! The verifier instances serving a shared database, and the master keys each holds (ids and
//! fingerprints, never a key): each serving instance registers itself when it starts and again
//! every [`REFRESH`] (so a key file it reloaded shows), and unregisters when it stops. A master
//! key rollout reads them to check, before a key is activated or secrets are rewrapped to it,
//! that every live instance holds that very key (the same fingerprint), not merely its id.
//!
//! PostgreSQL only (`verifier_instances`, migration 3, and its clock): the embedded store's
//! instances share one host and one key file, so there is nothing to compare.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::StoreError;
use super::sql::{Sql, args};
use crate::sealing::Keyring;

/// How often a serving instance writes its row again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// An instance whose row is older than this is taken for gone (killed without unregistering):
/// many refreshes, so a live instance on a slow database is never missed.
pub const LIVE_SECS: i64 = 60;

/// Rows not refreshed for this long are deleted by the next registration, so instances that
/// were killed do not pile up.
const FORGET_SECS: i64 = 24 * 3600;

/// The database's clock in Unix seconds: every row's time comes from it, so hosts whose clocks
/// disagree still agree on which instances are live.
const DB_NOW: &str = "CAST(EXTRACT(EPOCH FROM now()) AS bigint)";

/// A serving instance, as it describes itself to the others.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instance {
    /// Random per process: a restarted instance is a new one.
    pub id: String,
    pub host: String,
    /// Where it listens.
    pub listen: String,
    pub pid: u32,
    /// Its dropfix-server version.
    pub version: String,
}

impl Instance {
    /// This process, serving on `listen`.
    pub fn this_process(listen: SocketAddr) -> Instance {
        Instance {
            id: crate::workspace::random_token("", 8),
            host: hostname(),
            listen: listen.to_string(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The machine's name, for an operator to recognise an instance by ("unknown" when it cannot
/// be read: the listen address and pid still tell instances apart).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A registered instance and the keys it reported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceKeys {
    #[serde(flatten)]
    pub instance: Instance,
    /// The id of the key it seals with.
    pub active: String,
    /// Every key it holds: id -> fingerprint.
    pub fingerprints: BTreeMap<String, String>,
    /// Seconds since it last wrote its row.
    pub seen_secs_ago: i64,
}

/// Whether an instance holds a given key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holds {
    /// The same key: same id, same fingerprint.
    Same,
    /// No key with this id.
    Missing,
    /// Another key under this id (its fingerprint).
    Different(String),
}

impl InstanceKeys {
    /// Whether this instance holds the key `id` whose fingerprint is `fingerprint`.
    pub fn holds(&self, id: &str, fingerprint: &str) -> Holds {
        match self.fingerprints.get(id) {
            Some(fp) if fp == fingerprint => Holds::Same,
            Some(fp) => Holds::Different(fp.clone()),
            None => Holds::Missing,
        }
    }

    /// How an operator recognises it: `host listen (pid N, seen S s ago)`.
    pub fn name(&self) -> String {
        let i = &self.instance;
        format!(
            "{} {} (pid {}, seen {} s ago)",
            i.host, i.listen, i.pid, self.seen_secs_ago
        )
    }
}

/// Writes (or refreshes) `me`'s row with the keys of `ring`, and forgets rows long dead.
pub(crate) async fn register(
    c: &mut impl Sql,
    me: &Instance,
    ring: &Keyring,
) -> Result<(), StoreError> {
    let keys: BTreeMap<&str, String> = ring.fingerprints().collect();
    let keys = serde_json::to_string(&keys).unwrap_or_default();
    c.exec(
        &format!(
            "INSERT INTO verifier_instances (instance_id, host, listen, pid, version, active_key,
                 key_fingerprints, started_at, seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, {DB_NOW}, {DB_NOW})
             ON CONFLICT (instance_id) DO UPDATE SET active_key = excluded.active_key,
                 key_fingerprints = excluded.key_fingerprints, seen_at = excluded.seen_at"
        ),
        args![
            &me.id,
            &me.host,
            &me.listen,
            i64::from(me.pid),
            &me.version,
            ring.active_id(),
            &keys
        ],
    )
    .await?;
    c.exec(
        &format!("DELETE FROM verifier_instances WHERE seen_at < {DB_NOW} - $1"),
        args![FORGET_SECS],
    )
    .await?;
    Ok(())
}

/// Deletes `id`'s row (the instance stops).
pub(crate) async fn unregister(c: &mut impl Sql, id: &str) -> Result<(), StoreError> {
    c.exec(
        "DELETE FROM verifier_instances WHERE instance_id = $1",
        args![id],
    )
    .await?;
    Ok(())
}

/// The instances that wrote their row in the last [`LIVE_SECS`], by host and address.
pub(crate) async fn live(c: &mut impl Sql) -> Result<Vec<InstanceKeys>, StoreError> {
    let rows = c
        .rows(
            &format!(
                "SELECT instance_id, host, listen, pid, version, active_key, key_fingerprints,
                        {DB_NOW} - seen_at
                 FROM verifier_instances WHERE seen_at >= {DB_NOW} - $1
                 ORDER BY host, listen, instance_id"
            ),
            args![LIVE_SECS],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(InstanceKeys {
                instance: Instance {
                    id: r.text(0)?,
                    host: r.text(1)?,
                    listen: r.text(2)?,
                    pid: u32::try_from(r.i64(3)?).unwrap_or_default(),
                    version: r.text(4)?,
                },
                active: r.text(5)?,
                // A row this build cannot read holds no key it could vouch for.
                fingerprints: serde_json::from_str(r.str(6)?).unwrap_or_default(),
                seen_secs_ago: r.i64(7)?.max(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_holds_a_key_only_with_its_fingerprint() {
        let inst = InstanceKeys {
            instance: Instance::this_process("127.0.0.1:8787".parse().unwrap()),
            active: "mk1".into(),
            fingerprints: [("mk1", "aaaa"), ("mk2", "bbbb")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            seen_secs_ago: 3,
        };
        assert_eq!(inst.holds("mk2", "bbbb"), Holds::Same);
        assert_eq!(inst.holds("mk2", "cccc"), Holds::Different("bbbb".into()));
        assert_eq!(inst.holds("mk3", "bbbb"), Holds::Missing);
        let name = inst.name();
        assert!(
            name.contains("127.0.0.1:8787") && name.contains("seen 3 s ago"),
            "{name}"
        );
        assert_eq!(inst.instance.pid, std::process::id());
        assert_eq!(inst.instance.id.len(), 16);
    }
}
