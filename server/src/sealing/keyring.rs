//! The keyring: an ordered set of master keys, the first active; where it came from
//! (`DROPFIX_MASTER_KEYS`, a key file, code); the handle a running server reads it through; and
//! why a keyring could not be loaded, created or edited.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::MasterKey;

/// The environment variable holding a keyring: comma-separated `id:base64` entries, first active.
pub const MASTER_KEYS_ENV: &str = "DROPFIX_MASTER_KEYS";

/// Where a keyring came from, named in error messages so an operator knows what to edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The `DROPFIX_MASTER_KEYS` environment variable.
    Env,
    /// A key file.
    File(PathBuf),
    /// Built in code ([`Keyring::new`]).
    Memory,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => write!(f, "the {MASTER_KEYS_ENV} environment variable"),
            KeySource::File(path) => write!(f, "the key file {}", path.display()),
            KeySource::Memory => f.write_str("a keyring built in code"),
        }
    }
}

/// An ordered set of master keys: the first (active) one seals, every one unseals.
#[derive(Clone)]
pub struct Keyring {
    /// Never empty; `keys[0]` is the active key; ids are distinct.
    keys: Vec<MasterKey>,
    source: KeySource,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active_id())
            .field("keys", &self.key_ids().collect::<Vec<_>>())
            .field("source", &self.source)
            .finish()
    }
}

impl Keyring {
    /// A keyring of `keys`, the first active. Fails when empty or when two keys share an id.
    pub fn new(keys: Vec<MasterKey>) -> Result<Keyring, KeyringError> {
        Keyring::with_source(keys, KeySource::Memory, || "keyring".into())
    }

    pub(super) fn with_source(
        keys: Vec<MasterKey>,
        source: KeySource,
        origin: impl Fn() -> String,
    ) -> Result<Keyring, KeyringError> {
        if keys.is_empty() {
            return Err(KeyringError::Invalid {
                origin: origin(),
                problem: "holds no master key".into(),
            });
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.id() == key.id()) {
                return Err(KeyringError::Invalid {
                    origin: origin(),
                    problem: format!("key id `{}` appears more than once", key.id()),
                });
            }
        }
        Ok(Keyring { keys, source })
    }

    /// Parses the value of `DROPFIX_MASTER_KEYS`: comma-separated `id:base64` entries, the first
    /// active. Whitespace around entries is ignored; an empty entry is an error (a stray comma
    /// usually means a key went missing).
    pub fn from_env_value(value: &str) -> Result<Keyring, KeyringError> {
        if value.trim().is_empty() {
            return Err(KeyringError::Invalid {
                origin: MASTER_KEYS_ENV.into(),
                problem: "is set but empty: give at least one `id:base64-key` entry".into(),
            });
        }
        let mut keys = Vec::new();
        for (i, entry) in value.split(',').enumerate() {
            let origin = || format!("{MASTER_KEYS_ENV} entry {}", i + 1);
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(KeyringError::Invalid {
                    origin: origin(),
                    problem: "is empty (stray comma?)".into(),
                });
            }
            keys.push(MasterKey::parse_entry(entry, &origin)?);
        }
        Keyring::with_source(keys, KeySource::Env, || MASTER_KEYS_ENV.into())
    }

    /// The id of the active key, the one [`Keyring::seal`] uses.
    pub fn active_id(&self) -> &str {
        self.active_key().id()
    }

    /// The active key: the one that seals.
    pub(super) fn active_key(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// Ids of every key, the active one first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id())
    }

    /// Each key's id and fingerprint ([`MasterKey::fingerprint`]), the active one first: what
    /// `master-key status`, `/healthz` and `/metrics` show, so that hosts can be compared.
    pub fn fingerprints(&self) -> impl Iterator<Item = (&str, String)> {
        self.keys.iter().map(|k| (k.id(), k.fingerprint()))
    }

    /// The fingerprint of key `id`, if the ring holds it.
    pub fn fingerprint(&self, id: &str) -> Option<String> {
        self.key(id).map(MasterKey::fingerprint)
    }

    /// Whether the ring holds a key with this id.
    pub fn contains(&self, id: &str) -> bool {
        self.key(id).is_some()
    }

    /// Where this keyring was loaded from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// A new id for a key added to this ring: `mkN` with N one past the highest `mkN` present.
    pub fn next_key_id(&self) -> String {
        let highest = self
            .keys
            .iter()
            .filter_map(|k| k.id().strip_prefix("mk")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        format!("mk{}", highest.saturating_add(1))
    }

    /// The key with this id, if the ring holds it.
    pub(super) fn key(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id() == id)
    }
}

/// Why a keyring could not be loaded, created or edited. No variant carries key material.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyringError {
    /// A file operation failed.
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    /// The keyring's text is wrong; `origin` says where (variable entry, file line).
    Invalid { origin: String, problem: String },
    /// The key file is open to group or others (Unix).
    InsecurePermissions { path: PathBuf, mode: u32 },
    /// [`Keyring::create_file`] found a file already there.
    AlreadyExists { path: PathBuf },
    /// The key file holds no key with this id.
    NoSuchKey { path: PathBuf, id: String },
    /// The active key cannot be removed.
    ActiveKey { path: PathBuf, id: String },
    /// The key file holds another key under the id of the key being added (the fingerprints of
    /// both: two hosts must never hold different keys under one id).
    IdTaken {
        path: PathBuf,
        id: String,
        held: String,
        given: String,
    },
}

impl KeyringError {
    pub(super) fn io(path: &Path, action: &'static str, source: io::Error) -> KeyringError {
        KeyringError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    }
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringError::Io {
                path,
                action,
                source,
            } => write!(
                f,
                "master key file {}: {action} failed: {source}",
                path.display()
            ),
            KeyringError::Invalid { origin, problem } => write!(f, "{origin}: {problem}"),
            KeyringError::InsecurePermissions { path, mode } => write!(
                f,
                "master key file {} has mode {mode:04o}: group or others may read or write it; \
                 restrict it with `chmod 600 {}`",
                path.display(),
                path.display()
            ),
            KeyringError::AlreadyExists { path } => write!(
                f,
                "master key file {} already exists; refusing to replace it (the secrets sealed \
                 with its keys would be lost)",
                path.display()
            ),
            KeyringError::NoSuchKey { path, id } => {
                write!(f, "master key file {} has no key {id}", path.display())
            }
            KeyringError::ActiveKey { path, id } => write!(
                f,
                "key {id} is the active key in {}: add or activate another key and rewrap the \
                 secrets before dropping it",
                path.display()
            ),
            KeyringError::IdTaken {
                path,
                id,
                held,
                given,
            } => write!(
                f,
                "master key file {} already holds another key with id {id} (fingerprint {held}; \
                 the key given has fingerprint {given}): refusing to replace it. If the file's \
                 key is the wrong one and nothing is sealed with it yet, drop it first \
                 (`master-key drop {id}`)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for KeyringError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyringError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The keyring a running server seals and unseals with. When it came from a key file, the file
/// is read again whenever it changes, so a `master-key add` or `activate` on the same machine
/// reaches a running server without a restart (an unreadable new version is logged and the
/// previous keyring kept).
#[derive(Debug)]
pub struct KeyringHandle {
    current: std::sync::RwLock<(std::sync::Arc<Keyring>, Option<std::time::SystemTime>)>,
}

fn modified(source: &KeySource) -> Option<std::time::SystemTime> {
    match source {
        KeySource::File(path) => fs::metadata(path).and_then(|m| m.modified()).ok(),
        _ => None,
    }
}

impl KeyringHandle {
    pub fn new(ring: Keyring) -> KeyringHandle {
        let mtime = modified(&ring.source);
        KeyringHandle {
            current: std::sync::RwLock::new((std::sync::Arc::new(ring), mtime)),
        }
    }

    /// The keyring as of now.
    pub fn get(&self) -> std::sync::Arc<Keyring> {
        let (ring, seen) = {
            let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
            (std::sync::Arc::clone(&guard.0), guard.1)
        };
        let KeySource::File(path) = &ring.source else {
            return ring;
        };
        let now = modified(&ring.source);
        if now == seen {
            return ring;
        }
        match Keyring::load_file(path) {
            Ok(fresh) => {
                let fresh = std::sync::Arc::new(fresh);
                *self.current.write().unwrap_or_else(|e| e.into_inner()) =
                    (std::sync::Arc::clone(&fresh), now);
                tracing::info!(
                    active = fresh.active_id(),
                    "master key file changed: keyring reloaded"
                );
                fresh
            }
            Err(e) => {
                tracing::error!(error = %e, "master key file changed but cannot be read; keeping the previous keyring");
                ring
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use super::*;
    use crate::sealing::MASTER_KEY_LEN;
    use crate::sealing::test_support::{AAD, SECRET, entry};

    #[test]
    fn sealing_env_value_parsing() {
        let ring =
            Keyring::from_env_value(&format!(" {} , {}\n", entry("mk2", 2), entry("mk1", 1)))
                .unwrap();
        assert_eq!(ring.active_id(), "mk2");
        assert_eq!(ring.key_ids().collect::<Vec<_>>(), ["mk2", "mk1"]);
        assert_eq!(ring.source(), &KeySource::Env);
        // Unpadded and URL-safe spellings of a key are the same key.
        let key = [0xfb; MASTER_KEY_LEN];
        let a = Keyring::from_env_value(&format!("mk1:{}", STANDARD.encode(key))).unwrap();
        let b = Keyring::from_env_value(&format!("mk1:{}", URL_SAFE_NO_PAD.encode(key))).unwrap();
        assert_eq!(
            b.unseal(&a.seal(SECRET, AAD), AAD).unwrap().as_str(),
            SECRET
        );

        let short = STANDARD.encode([5u8; 31]);
        let long = STANDARD.encode([5u8; 33]);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "is set but empty"),
            ("  \n".into(), "is set but empty"),
            (format!("{},", entry("mk1", 1)), "entry 2: is empty"),
            (
                format!("{},,{}", entry("mk1", 1), entry("mk2", 2)),
                "entry 2: is empty",
            ),
            (
                "mk1:***notbase64***".into(),
                "entry 1: key `mk1` is not valid base64",
            ),
            (format!("mk1:{short}"), "key `mk1` is 31 bytes long"),
            (
                format!("{},mk2:{long}", entry("mk1", 1)),
                "entry 2: key `mk2` is 33 bytes long",
            ),
            (
                format!("{},{}", entry("mk1", 1), entry("mk1", 2)),
                "`mk1` appears more than once",
            ),
            (STANDARD.encode([5u8; 32]), "found no `:`"),
            (
                format!("MK1:{}", STANDARD.encode([5u8; 32])),
                "key id is not valid",
            ),
            (
                format!(":{}", STANDARD.encode([5u8; 32])),
                "key id is not valid",
            ),
            (
                format!("{}:{}", "a".repeat(33), STANDARD.encode([5u8; 32])),
                "key id is not valid",
            ),
        ];
        for (value, expected) in cases {
            let err = Keyring::from_env_value(&value).unwrap_err().to_string();
            assert!(err.starts_with(MASTER_KEYS_ENV), "{value:?}: {err}");
            assert!(err.contains(expected), "{value:?}: {err}");
            for secret in [&short, &long] {
                assert!(!err.contains(secret.as_str()), "{err}");
            }
            assert!(!err.contains(&STANDARD.encode([5u8; 32])), "{err}");
        }
    }
}
