//! Secrets sealed at rest under a keyring of master keys.
//!
//! A verifier needs each workspace secret in the clear to compute HMACs, so secrets cannot be
//! hashed like admin tokens. Instead the store keeps them *sealed*: encrypted and authenticated
//! with XChaCha20-Poly1305 under a 32-byte master key that never enters the database. A copy of
//! the database (a backup, a `pg_dump`, a stolen SQLite file) then holds no usable secret.
//!
//! # Sealed values
//!
//! [`Keyring::seal`] returns a self-describing ASCII string:
//!
//! ```text
//! dfseal1:<key id>:<base64url, no padding, of nonce (24 bytes) || ciphertext || tag (16 bytes)>
//! ```
//!
//! - `dfseal1` names this format, so a later format can be told apart.
//! - The key id names the master key that sealed the value, so one database can hold values
//!   sealed under several master keys while a rotation is under way, and [`sealed_key_id`] finds
//!   the ones still under an old key.
//! - The nonce is 24 random bytes per value: XChaCha's nonce is long enough that random nonces
//!   never collide in practice, so no counter has to be kept (or shared between instances).
//! - The caller supplies associated data (the store binds the workspace's app id): a sealed value
//!   copied into another workspace's row fails to open. The `dfseal1:<key id>:` header is
//!   authenticated as well, so it cannot be edited to point at another key.
//!
//! # Keyrings
//!
//! A [`Keyring`] is an ordered list of [`MasterKey`]s. The first is *active*: it seals every new
//! value. Every key in the ring unseals. Key ids are short names an operator sees in messages and
//! in the database (`mk1`, `mk2`, `2026-11`): 1 to 32 characters from `a-z 0-9 _ -`.
//!
//! A keyring comes from one of two places, never from the database:
//!
//! - the environment variable [`MASTER_KEYS_ENV`] (`DROPFIX_MASTER_KEYS`): comma-separated
//!   `id:base64` entries, the first active ([`Keyring::from_env_value`]). This suits several
//!   verifier instances that get their configuration from an orchestrator.
//! - a key file ([`Keyring::load_file`]): one `id:base64` entry per line, blank lines and lines
//!   starting with `#` ignored, **the first entry is active**. The file must not be readable or
//!   writable by group or others (mode `0600`); a looser file is refused. The embedded default
//!   keeps it at `DATA_DIR/master.keys` ([`default_key_file`]) and creates it on first start
//!   ([`Keyring::load_or_create`]).
//!
//! A key is 32 bytes in standard base64 (44 characters with padding; unpadded and URL-safe
//! spellings are accepted too). `head -c 32 /dev/urandom | base64` makes one.
//!
//! # Example
//!
//! ```
//! use dropfix_server::sealing::{Keyring, MasterKey, sealed_key_id};
//!
//! let ring = Keyring::new(vec![MasterKey::generate("mk1")?])?;
//! // Bind the value to its workspace: the app id is the associated data.
//! let sealed = ring.seal("dfsk_0123", b"app_42");
//! assert_eq!(sealed_key_id(&sealed), Some("mk1"));
//! assert_eq!(ring.unseal(&sealed, b"app_42")?.as_str(), "dfsk_0123");
//! assert!(ring.unseal(&sealed, b"app_43").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Rotation without downtime
//!
//! 1. Add the new key to every instance's keyring *after* the active one (every instance can now
//!    open values sealed with it): [`Keyring::add_key_to_file`] with `activate = false`, or append
//!    the entry to `DROPFIX_MASTER_KEYS`.
//! 2. Make it active everywhere (move it first: [`Keyring::activate_key_in_file`]). New values are
//!    now sealed with it.
//! 3. Rewrap: re-seal every stored value still under the old key ([`Keyring::rewrap`]).
//! 4. Drop the old key ([`Keyring::remove_key_from_file`]) once nothing is sealed with it.
//!
//! A single instance (the embedded default) can do 1 and 2 in one step with
//! [`Keyring::add_new_key_to_file`].
//!
//! Key files are rewritten atomically (a new `0600` file renamed over the old one), so a reader
//! never sees half a file. Two processes editing the same key file at the same moment are not
//! coordinated: the last rename wins.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::AeadInOut as _;
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize as _, Zeroizing};

/// The environment variable holding a keyring: comma-separated `id:base64` entries, first active.
pub const MASTER_KEYS_ENV: &str = "DROPFIX_MASTER_KEYS";

/// File name of the embedded default key file inside the data directory.
pub const DEFAULT_KEY_FILE_NAME: &str = "master.keys";

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Longest key id.
pub const MAX_KEY_ID_LEN: usize = 32;

/// The format tag every sealed value starts with.
const SEAL_TAG: &str = "dfseal1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A key file larger than this is not a key file (and is not read into memory whole).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The embedded default key file: `DATA_DIR/master.keys`.
pub fn default_key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(DEFAULT_KEY_FILE_NAME)
}

/// Whether `id` is a valid key id: 1 to 32 characters from `a-z 0-9 _ -`.
pub fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The id of the master key that sealed `sealed`, or `None` when `sealed` is not a sealed value
/// (for example a secret stored in the clear by an older version). Reads the header only; it
/// does not check that the value opens.
pub fn sealed_key_id(sealed: &str) -> Option<&str> {
    let rest = sealed.strip_prefix(SEAL_TAG)?.strip_prefix(':')?;
    let (id, _) = rest.split_once(':')?;
    is_valid_key_id(id).then_some(id)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS CSPRNG failing is not something a verifier can carry on from (same as workspace.rs).
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// Associated data actually authenticated: the value's header, then the caller's data. Key ids
/// contain no `:`, so the split between the two parts is unambiguous.
fn full_aad(key_id: &str, aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEAL_TAG.len() + key_id.len() + 2 + aad.len());
    out.extend_from_slice(SEAL_TAG.as_bytes());
    out.push(b':');
    out.extend_from_slice(key_id.as_bytes());
    out.push(b':');
    out.extend_from_slice(aad);
    out
}

// ------------------------------------------------------------------------------------------------
// Master keys

/// One master key: an operator-visible id and 32 secret bytes. The bytes are wiped from memory
/// when the key is dropped and never appear in `Debug` output.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl MasterKey {
    /// A key from its id and bytes. Fails when the id is not valid ([`is_valid_key_id`]).
    pub fn new(id: &str, key: [u8; MASTER_KEY_LEN]) -> Result<MasterKey, KeyringError> {
        let key = Zeroizing::new(key);
        if !is_valid_key_id(id) {
            return Err(KeyringError::Invalid {
                origin: "master key".into(),
                problem: format!(
                    "the key id is not valid (1 to {MAX_KEY_ID_LEN} characters from a-z 0-9 _ -)"
                ),
            });
        }
        Ok(MasterKey {
            id: id.to_owned(),
            key,
        })
    }

    /// A fresh key of 32 bytes from the OS CSPRNG.
    pub fn generate(id: &str) -> Result<MasterKey, KeyringError> {
        MasterKey::new(id, random_bytes())
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as one `id:base64` entry, the form a key file line and a `DROPFIX_MASTER_KEYS`
    /// entry take. This is secret material: show it only to the operator who asked for it.
    pub fn export_entry(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(self.id.len() + 1 + 44));
        out.push_str(&self.id);
        out.push(':');
        STANDARD.encode_string(&self.key[..], &mut out);
        out
    }

    /// Parses one `id:base64` entry (as [`MasterKey::export_entry`] writes it), for a key
    /// generated on one machine and added to the keyrings of the others. Error texts never
    /// repeat the key material.
    pub fn parse(entry: &str) -> Result<MasterKey, KeyringError> {
        MasterKey::parse_entry(entry.trim(), &|| "master key".to_owned())
    }

    fn parse_entry(entry: &str, origin: &dyn Fn() -> String) -> Result<MasterKey, KeyringError> {
        let Some((id, b64)) = entry.split_once(':') else {
            return Err(KeyringError::Invalid {
                origin: origin(),
                problem: "expected `id:base64-key`, found no `:`".into(),
            });
        };
        let id = id.trim();
        if !is_valid_key_id(id) {
            return Err(KeyringError::Invalid {
                origin: origin(),
                // The text before the `:` is not repeated: it might be key material put in the
                // wrong place.
                problem: format!(
                    "the key id is not valid (1 to {MAX_KEY_ID_LEN} characters from a-z 0-9 _ -)"
                ),
            });
        }
        let b64 = b64.trim();
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(b64).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| KeyringError::Invalid {
                origin: origin(),
                problem: format!("key `{id}` is not valid base64"),
            })?;
        let key: [u8; MASTER_KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            KeyringError::Invalid {
                origin: origin(),
                problem: format!(
                    "key `{id}` is {} bytes long; a master key is {MASTER_KEY_LEN} random bytes \
                         (make one with `head -c 32 /dev/urandom | base64`)",
                    bytes.len()
                ),
            }
        })?;
        MasterKey::new(id, key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.key).into())
    }
}

// ------------------------------------------------------------------------------------------------
// Keyrings

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

    fn with_source(
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
            if keys[..i].iter().any(|k| k.id == key.id) {
                return Err(KeyringError::Invalid {
                    origin: origin(),
                    problem: format!("key id `{}` appears more than once", key.id),
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

    /// Loads a key file (format in the module docs). Refuses a file that group or others may
    /// read or write.
    pub fn load_file(path: &Path) -> Result<Keyring, KeyringError> {
        let text = read_key_file(path)?;
        Keyring::parse_file_text(&text, path)
    }

    fn parse_file_text(text: &str, path: &Path) -> Result<Keyring, KeyringError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let origin = || format!("{} line {}", path.display(), n + 1);
            keys.push(MasterKey::parse_entry(line, &origin)?);
        }
        Keyring::with_source(keys, KeySource::File(path.to_owned()), || {
            path.display().to_string()
        })
    }

    /// Creates a key file at `path` holding one fresh key (`mk1`), mode `0600`, and returns its
    /// keyring. Refuses to replace an existing file. Missing parent directories are created
    /// (mode `0700`).
    ///
    /// The file appears complete or not at all: it is written under a temporary name and then
    /// hard-linked into place, which fails if `path` exists, so two processes starting together
    /// cannot both create a key (one gets [`KeyringError::AlreadyExists`] and loads the other's).
    pub fn create_file(path: &Path) -> Result<Keyring, KeyringError> {
        let key = MasterKey::generate("mk1")?;
        let mut text = Zeroizing::new(String::from(FILE_HEADER));
        text.push_str(&key.export_entry());
        text.push('\n');
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir_all(dir)
                .map_err(|e| KeyringError::io(dir, "create directory", e))?;
        }
        let tmp = write_temp_file(path, &text)?;
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(KeyringError::AlreadyExists {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(KeyringError::io(path, "create", e)),
        }
        sync_parent_dir(path)?;
        Keyring::with_source(vec![key], KeySource::File(path.to_owned()), || {
            path.display().to_string()
        })
    }

    /// Loads the key file at `path`, creating it with one fresh key when it does not exist.
    /// Returns `true` as the second value when it created the file, so the caller can say where
    /// the new key is (and that it must be backed up: without it the stored secrets are lost).
    pub fn load_or_create(path: &Path) -> Result<(Keyring, bool), KeyringError> {
        match Keyring::load_file(path) {
            Ok(ring) => Ok((ring, false)),
            Err(KeyringError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                match Keyring::create_file(path) {
                    Ok(ring) => Ok((ring, true)),
                    // Another process created it between our two steps: use theirs.
                    Err(KeyringError::AlreadyExists { .. }) => {
                        Ok((Keyring::load_file(path)?, false))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Adds a fresh key to the key file at `path` as the new active key (first entry) and returns
    /// its id (`mkN`, one past the highest `mkN` in the file). For a single instance; with several
    /// instances add the key everywhere first ([`Keyring::add_key_to_file`] with
    /// `activate = false`) and activate it afterwards.
    pub fn add_new_key_to_file(path: &Path) -> Result<String, KeyringError> {
        let ring = Keyring::load_file(path)?;
        let key = MasterKey::generate(&ring.next_key_id())?;
        Keyring::add_key_to_file(path, &key, true)?;
        Ok(key.id)
    }

    /// Adds `key` to the key file at `path`: first (active) when `activate`, else last.
    /// Refuses an id already in the file.
    pub fn add_key_to_file(
        path: &Path,
        key: &MasterKey,
        activate: bool,
    ) -> Result<(), KeyringError> {
        edit_key_file(path, |ring, lines| {
            if ring.contains(&key.id) {
                return Err(KeyringError::Invalid {
                    origin: path.display().to_string(),
                    problem: format!("already holds a key with id `{}`", key.id),
                });
            }
            let at = if activate {
                first_key_line(lines)
            } else {
                last_key_line(lines).map_or(lines.len(), |i| i + 1)
            };
            lines.insert(at, FileLine::key(key.id.clone(), key.export_entry()));
            Ok(())
        })
    }

    /// Makes key `id` (already in the file) the active one by moving it to the first entry.
    pub fn activate_key_in_file(path: &Path, id: &str) -> Result<(), KeyringError> {
        edit_key_file(path, |_, lines| {
            let i = find_key_line(lines, id).ok_or_else(|| KeyringError::NoSuchKey {
                path: path.to_owned(),
                id: id.to_owned(),
            })?;
            let line = lines.remove(i);
            lines.insert(first_key_line(lines), line);
            Ok(())
        })
    }

    /// Removes key `id` from the key file. Refuses the active key (activate another one and
    /// rewrap first). The caller checks that no stored value is still sealed with `id`: values
    /// sealed with a dropped key cannot be opened again unless the key is added back.
    pub fn remove_key_from_file(path: &Path, id: &str) -> Result<(), KeyringError> {
        edit_key_file(path, |ring, lines| {
            if ring.active_id() == id {
                return Err(KeyringError::ActiveKey {
                    path: path.to_owned(),
                    id: id.to_owned(),
                });
            }
            let i = find_key_line(lines, id).ok_or_else(|| KeyringError::NoSuchKey {
                path: path.to_owned(),
                id: id.to_owned(),
            })?;
            lines.remove(i);
            Ok(())
        })
    }

    /// The id of the active key, the one [`Keyring::seal`] uses.
    pub fn active_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Ids of every key, the active one first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
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
            .filter_map(|k| k.id.strip_prefix("mk")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        format!("mk{}", highest.saturating_add(1))
    }

    fn key(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Seals `plaintext` with the active key, binding `aad` (which must be given again to
    /// unseal). Every call uses a fresh random nonce, so sealing the same value twice gives two
    /// different strings.
    pub fn seal(&self, plaintext: &str, aad: &[u8]) -> String {
        let key = &self.keys[0];
        let nonce: [u8; NONCE_LEN] = random_bytes();
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext.as_bytes());
        let tag = key
            .cipher()
            .encrypt_inout_detached(
                &XNonce::from(nonce),
                &full_aad(&key.id, aad),
                (&mut buf[NONCE_LEN..]).into(),
            )
            // Only fails for inputs of about 256 GiB, far beyond any secret.
            .expect("XChaCha20-Poly1305 accepts any secret-sized input");
        buf.extend_from_slice(&tag);
        let mut out =
            String::with_capacity(SEAL_TAG.len() + key.id.len() + 2 + buf.len() * 4 / 3 + 4);
        out.push_str(SEAL_TAG);
        out.push(':');
        out.push_str(&key.id);
        out.push(':');
        URL_SAFE_NO_PAD.encode_string(&buf, &mut out);
        out
    }

    /// Opens a value made by [`Keyring::seal`] with the key it names, checking `aad`.
    pub fn unseal(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<String>, SealError> {
        if !sealed.starts_with(SEAL_TAG) || sealed.as_bytes().get(SEAL_TAG.len()) != Some(&b':') {
            return Err(SealError::Malformed {
                reason: "it does not start with `dfseal1:`",
            });
        }
        let Some(key_id) = sealed_key_id(sealed) else {
            return Err(SealError::Malformed {
                reason: "it has no valid master key id after `dfseal1:`",
            });
        };
        let body = &sealed[SEAL_TAG.len() + 1 + key_id.len() + 1..];
        let Some(key) = self.key(key_id) else {
            return Err(SealError::UnknownKey {
                key_id: key_id.to_owned(),
                keyring: self.key_ids().collect::<Vec<_>>().join(", "),
                source: self.source.to_string(),
            });
        };
        let mut buf =
            Zeroizing::new(
                URL_SAFE_NO_PAD
                    .decode(body)
                    .map_err(|_| SealError::Malformed {
                        reason: "its body is not unpadded base64url",
                    })?,
            );
        if buf.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed {
                reason: "it is too short to hold a nonce and a tag",
            });
        }
        let nonce = XNonce::try_from(&buf[..NONCE_LEN]).expect("slice has the nonce length");
        let tag_at = buf.len() - TAG_LEN;
        let tag =
            chacha20poly1305::Tag::try_from(&buf[tag_at..]).expect("slice has the tag length");
        key.cipher()
            .decrypt_inout_detached(
                &nonce,
                &full_aad(key_id, aad),
                (&mut buf[NONCE_LEN..tag_at]).into(),
                &tag,
            )
            .map_err(|_| SealError::Unauthentic {
                key_id: key_id.to_owned(),
            })?;
        match std::str::from_utf8(&buf[NONCE_LEN..tag_at]) {
            Ok(text) => Ok(Zeroizing::new(text.to_owned())),
            // Authentic but not text: sealed by something other than `seal(&str, ..)`.
            Err(_) => Err(SealError::Malformed {
                reason: "its plaintext is not UTF-8",
            }),
        }
    }

    /// Re-seals `sealed` with the active key when another key sealed it: `Ok(Some(new value))`,
    /// or `Ok(None)` when it is already under the active key. Either way the value is opened
    /// first, so a rewrap pass also finds values that no longer open.
    pub fn rewrap(&self, sealed: &str, aad: &[u8]) -> Result<Option<String>, SealError> {
        let plaintext = self.unseal(sealed, aad)?;
        if sealed_key_id(sealed) == Some(self.active_id()) {
            return Ok(None);
        }
        Ok(Some(self.seal(&plaintext, aad)))
    }
}

// ------------------------------------------------------------------------------------------------
// Key files

const FILE_HEADER: &str = "\
# DropFix master keys: they decrypt the workspace secrets stored in the database.
# Keep this file private (mode 0600) and back it up apart from the database:
# without it the stored secrets cannot be recovered.
# One `id:base64-key` per line; the first key seals new secrets, every key opens.
";

/// One line of a key file, kept verbatim so that edits preserve comments and order.
struct FileLine {
    /// The key id when this line holds a key.
    key_id: Option<String>,
    text: Zeroizing<String>,
}

impl FileLine {
    fn key(id: String, text: Zeroizing<String>) -> FileLine {
        FileLine {
            key_id: Some(id),
            text,
        }
    }
}

fn first_key_line(lines: &[FileLine]) -> usize {
    lines
        .iter()
        .position(|l| l.key_id.is_some())
        .unwrap_or(lines.len())
}

fn last_key_line(lines: &[FileLine]) -> Option<usize> {
    lines.iter().rposition(|l| l.key_id.is_some())
}

fn find_key_line(lines: &[FileLine], id: &str) -> Option<usize> {
    lines.iter().position(|l| l.key_id.as_deref() == Some(id))
}

/// Loads the key file (with every check of [`Keyring::load_file`]), lets `edit` change its lines,
/// checks that the result is still a valid keyring and replaces the file atomically.
fn edit_key_file(
    path: &Path,
    edit: impl FnOnce(&Keyring, &mut Vec<FileLine>) -> Result<(), KeyringError>,
) -> Result<(), KeyringError> {
    let text = read_key_file(path)?;
    let ring = Keyring::parse_file_text(&text, path)?;
    let mut lines: Vec<FileLine> = text
        .lines()
        .map(|line| {
            let trimmed = line.trim();
            let key_id = (!trimmed.is_empty() && !trimmed.starts_with('#'))
                .then(|| trimmed.split_once(':').map(|(id, _)| id.trim().to_owned()))
                .flatten();
            FileLine {
                key_id,
                text: Zeroizing::new(line.to_owned()),
            }
        })
        .collect();
    edit(&ring, &mut lines)?;
    let mut new_text = Zeroizing::new(String::with_capacity(text.len() + 64));
    for line in &lines {
        new_text.push_str(&line.text);
        new_text.push('\n');
    }
    // Never write a file that would not load.
    Keyring::parse_file_text(&new_text, path)?;
    // Replace the file a symlink points at, not the link: key files mounted from a secret
    // store are often links, and replacing the link would silently detach it.
    let target = fs::canonicalize(path).map_err(|e| KeyringError::io(path, "resolve", e))?;
    let tmp = write_temp_file(&target, &new_text)?;
    if let Err(e) = fs::rename(&tmp, &target) {
        let _ = fs::remove_file(&tmp);
        return Err(KeyringError::io(&target, "replace", e));
    }
    sync_parent_dir(&target)
}

/// Reads a key file after checking (on the open file, so the check and the read see the same
/// file) that group and others have no access to it.
fn read_key_file(path: &Path) -> Result<Zeroizing<String>, KeyringError> {
    let file = File::open(path).map_err(|e| KeyringError::io(path, "open", e))?;
    let meta = file
        .metadata()
        .map_err(|e| KeyringError::io(path, "inspect", e))?;
    if !meta.is_file() {
        return Err(KeyringError::Invalid {
            origin: path.display().to_string(),
            problem: "is not a regular file".into(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyringError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyringError::io(path, "read", e))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyringError::Invalid {
            origin: path.display().to_string(),
            problem: format!("is larger than {MAX_KEY_FILE_BYTES} bytes: not a key file"),
        });
    }
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err(KeyringError::Invalid {
                origin: path.display().to_string(),
                problem: "is not UTF-8 text".into(),
            })
        }
    }
}

/// Writes `text` to a new file next to `path`, created with mode 0600 from the start (never
/// loosened and tightened afterwards), flushed to disk. Returns its path.
fn write_temp_file(path: &Path, text: &str) -> Result<PathBuf, KeyringError> {
    let name = path
        .file_name()
        .ok_or_else(|| KeyringError::Invalid {
            origin: path.display().to_string(),
            problem: "is not a file path".into(),
        })?
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", hex::encode(random_bytes::<8>())));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(KeyringError::io(&tmp, "write", e))
        }
    }
}

fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes a rename or link in the file's directory durable.
fn sync_parent_dir(path: &Path) -> Result<(), KeyringError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| KeyringError::io(dir, "sync directory", e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Errors

/// Why a sealed value did not open. No variant carries secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// Not a value [`Keyring::seal`] produced (or a truncated one).
    Malformed { reason: &'static str },
    /// Sealed with a master key this keyring does not hold.
    UnknownKey {
        /// Id of the missing key.
        key_id: String,
        /// Ids the keyring does hold, comma-separated.
        keyring: String,
        /// Where the keyring was loaded from ([`KeySource`]'s text).
        source: String,
    },
    /// The key named by the value did not authenticate it: the value was altered, was moved
    /// from the record it was sealed for (different associated data), or the key with that id
    /// in this keyring is not the key that sealed it.
    Unauthentic { key_id: String },
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Malformed { reason } => {
                write!(f, "stored value is not a sealed secret: {reason}")
            }
            SealError::UnknownKey {
                key_id,
                keyring,
                source,
            } => write!(
                f,
                "secret sealed with master key {key_id}, which is not in the keyring (it holds \
                 {keyring}, loaded from {source}): add key {key_id} back to the keyring, then \
                 rewrap the secrets before dropping it again"
            ),
            SealError::Unauthentic { key_id } => write!(
                f,
                "secret sealed with master key {key_id} failed authentication: it was altered, \
                 moved from the workspace it belongs to, or the key named {key_id} in this \
                 keyring is not the one that sealed it"
            ),
        }
    }
}

impl std::error::Error for SealError {}

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
}

impl KeyringError {
    fn io(path: &Path, action: &'static str, source: io::Error) -> KeyringError {
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

// ------------------------------------------------------------------------------------------------
// The keyring of a running process

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
    use super::*;

    const SECRET: &str = "dfsk_2f1c9a7be04d35c8a61f0e9d7b2c4a5e8f3d1b6c9a0e7f4d2b5c8a1e3f6d9b0c";
    const AAD: &[u8] = b"app_1234";

    fn ring(ids: &[&str]) -> Keyring {
        Keyring::new(
            ids.iter()
                .map(|id| MasterKey::generate(id).unwrap())
                .collect(),
        )
        .unwrap()
    }

    fn entry(id: &str, byte: u8) -> String {
        format!("{id}:{}", STANDARD.encode([byte; MASTER_KEY_LEN]))
    }

    #[test]
    fn sealing_round_trip() {
        let ring = ring(&["mk1"]);
        for plaintext in [SECRET, "", "é ü 🔑", &"x".repeat(10_000)] {
            let sealed = ring.seal(plaintext, AAD);
            assert!(sealed.starts_with("dfseal1:mk1:"), "{sealed}");
            assert!(sealed.is_ascii());
            assert_eq!(sealed_key_id(&sealed), Some("mk1"));
            assert_eq!(ring.unseal(&sealed, AAD).unwrap().as_str(), plaintext);
        }
        // Fresh nonce per call.
        assert_ne!(ring.seal(SECRET, AAD), ring.seal(SECRET, AAD));
    }

    #[test]
    fn sealing_wrong_aad_fails() {
        let ring = ring(&["mk1"]);
        let sealed = ring.seal(SECRET, b"app_1234");
        for other in [&b"app_1235"[..], b"", b"app_123", b"app_12345"] {
            assert_eq!(
                ring.unseal(&sealed, other),
                Err(SealError::Unauthentic {
                    key_id: "mk1".into()
                })
            );
        }
    }

    #[test]
    fn sealing_any_changed_character_fails() {
        let ring = ring(&["mk1", "mk2"]);
        let sealed = ring.seal(SECRET, AAD);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_:";
        for i in 0..sealed.len() {
            for &c in alphabet {
                if sealed.as_bytes()[i] == c {
                    continue;
                }
                let mut bytes = sealed.clone().into_bytes();
                bytes[i] = c;
                let tampered = String::from_utf8(bytes).unwrap();
                assert!(
                    ring.unseal(&tampered, AAD).is_err(),
                    "changing position {i} to {} still opened",
                    c as char
                );
            }
        }
        // Truncated and extended values fail too.
        for cut in 0..sealed.len() {
            assert!(ring.unseal(&sealed[..cut], AAD).is_err(), "cut at {cut}");
        }
        assert!(ring.unseal(&format!("{sealed}A"), AAD).is_err());
        assert!(ring.unseal(&format!("{sealed}AA"), AAD).is_err());
    }

    #[test]
    fn sealing_tampered_byte_in_body_fails_authentication() {
        let ring = ring(&["mk1"]);
        let sealed = ring.seal(SECRET, AAD);
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let tampered = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&bad));
            assert_eq!(
                ring.unseal(&tampered, AAD),
                Err(SealError::Unauthentic {
                    key_id: "mk1".into()
                }),
                "byte {i}"
            );
        }
    }

    #[test]
    fn sealing_header_is_authenticated() {
        // Two rings that hold the same bytes under different ids: relabelling a value to the
        // other id must not open it.
        let bytes = [7u8; MASTER_KEY_LEN];
        let ring = Keyring::new(vec![
            MasterKey::new("mk1", bytes).unwrap(),
            MasterKey::new("mk2", bytes).unwrap(),
        ])
        .unwrap();
        let sealed = ring.seal(SECRET, AAD);
        let relabelled = sealed.replacen("dfseal1:mk1:", "dfseal1:mk2:", 1);
        assert_eq!(
            ring.unseal(&relabelled, AAD),
            Err(SealError::Unauthentic {
                key_id: "mk2".into()
            })
        );
    }

    #[test]
    fn sealing_unknown_key_error_names_the_id() {
        let old = ring(&["mk1"]);
        let sealed = old.seal(SECRET, AAD);
        let new = ring(&["mk2", "mk3"]);
        let err = new.unseal(&sealed, AAD).unwrap_err();
        assert!(matches!(&err, SealError::UnknownKey { key_id, .. } if key_id == "mk1"));
        let text = err.to_string();
        assert!(
            text.contains("master key mk1, which is not in the keyring"),
            "{text}"
        );
        assert!(text.contains("mk2, mk3"), "{text}");
        assert!(text.contains("add key mk1 back"), "{text}");
        assert!(!text.contains(SECRET) && !text.contains(&sealed), "{text}");
    }

    #[test]
    fn sealing_same_id_different_key_is_unauthentic() {
        // Two instances configured with different bytes under the same id: the message must not
        // claim the key is missing.
        let a = ring(&["mk1"]);
        let b = ring(&["mk1"]);
        let err = b.unseal(&a.seal(SECRET, AAD), AAD).unwrap_err();
        assert_eq!(
            err,
            SealError::Unauthentic {
                key_id: "mk1".into()
            }
        );
        assert!(err.to_string().contains("is not the one that sealed it"));
    }

    #[test]
    fn sealing_rejects_values_it_did_not_make() {
        let ring = ring(&["mk1"]);
        for value in [
            "",
            SECRET,
            "dfseal1",
            "dfseal1:",
            "dfseal1:mk1",
            "dfseal1:mk1:",
            "dfseal1:MK1:AAAA",
            "dfseal2:mk1:AAAA",
            "dfseal1:mk1:not base64!",
            "dfseal1:mk1:AAAA",
        ] {
            assert!(
                matches!(ring.unseal(value, AAD), Err(SealError::Malformed { .. })),
                "{value:?}"
            );
        }
        assert_eq!(sealed_key_id(SECRET), None);
        assert_eq!(sealed_key_id("dfseal1:MK1:xx"), None);
        assert_eq!(sealed_key_id("dfseal1:mk1"), None);
        assert_eq!(sealed_key_id("dfseal1:mk-2_b:xx"), Some("mk-2_b"));
    }

    #[test]
    fn sealing_rotation_add_rewrap_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = default_key_file(dir.path());
        let (ring1, created) = Keyring::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(ring1.active_id(), "mk1");
        let sealed_old = ring1.seal(SECRET, AAD);

        let new_id = Keyring::add_new_key_to_file(&path).unwrap();
        assert_eq!(new_id, "mk2");
        let (ring2, created) = Keyring::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(ring2.key_ids().collect::<Vec<_>>(), ["mk2", "mk1"]);
        // The old key still opens what it sealed; new values use the new key.
        assert_eq!(ring2.unseal(&sealed_old, AAD).unwrap().as_str(), SECRET);
        assert_eq!(sealed_key_id(&ring2.seal(SECRET, AAD)), Some("mk2"));

        let rewrapped = ring2
            .rewrap(&sealed_old, AAD)
            .unwrap()
            .expect("moved to mk2");
        assert_eq!(sealed_key_id(&rewrapped), Some("mk2"));
        assert_eq!(ring2.rewrap(&rewrapped, AAD).unwrap(), None);
        // A rewrap keeps the binding to the record.
        assert!(ring2.rewrap(&sealed_old, b"other").is_err());

        Keyring::remove_key_from_file(&path, "mk1").unwrap();
        let ring3 = Keyring::load_file(&path).unwrap();
        assert_eq!(ring3.key_ids().collect::<Vec<_>>(), ["mk2"]);
        assert_eq!(ring3.unseal(&rewrapped, AAD).unwrap().as_str(), SECRET);
        let err = ring3.unseal(&sealed_old, AAD).unwrap_err();
        assert!(matches!(err, SealError::UnknownKey { ref key_id, .. } if key_id == "mk1"));
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn sealing_multi_instance_rotation_add_then_activate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.keys");
        let ring1 = Keyring::create_file(&path).unwrap();
        let sealed_old = ring1.seal(SECRET, AAD);

        // The new key is made once and its entry handed to every instance.
        let generated = MasterKey::generate(&ring1.next_key_id()).unwrap();
        let mk2 = MasterKey::parse(&generated.export_entry()).unwrap();
        assert_eq!(mk2.id(), "mk2");
        Keyring::add_key_to_file(&path, &mk2, false).unwrap();
        let staged = Keyring::load_file(&path).unwrap();
        assert_eq!(
            staged.active_id(),
            "mk1",
            "adding without activating keeps mk1 active"
        );
        assert!(staged.contains("mk2"));
        // Adding the same id again is refused.
        assert!(matches!(
            Keyring::add_key_to_file(&path, &mk2, true),
            Err(KeyringError::Invalid { .. })
        ));

        Keyring::activate_key_in_file(&path, "mk2").unwrap();
        let active = Keyring::load_file(&path).unwrap();
        assert_eq!(active.key_ids().collect::<Vec<_>>(), ["mk2", "mk1"]);
        // An instance that only staged mk2 opens what the activated one seals.
        assert_eq!(
            staged
                .unseal(&active.seal(SECRET, AAD), AAD)
                .unwrap()
                .as_str(),
            SECRET
        );
        assert!(active.rewrap(&sealed_old, AAD).unwrap().is_some());
        assert!(matches!(
            Keyring::activate_key_in_file(&path, "mk9"),
            Err(KeyringError::NoSuchKey { .. })
        ));
        // The file kept its comments and its mode.
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# DropFix master keys"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn sealing_remove_refuses_active_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.keys");
        Keyring::create_file(&path).unwrap();
        let err = Keyring::remove_key_from_file(&path, "mk1").unwrap_err();
        assert!(matches!(err, KeyringError::ActiveKey { .. }), "{err}");
        assert!(err.to_string().contains("active key"), "{err}");
        assert!(matches!(
            Keyring::remove_key_from_file(&path, "mk7"),
            Err(KeyringError::NoSuchKey { .. })
        ));
        assert_eq!(Keyring::load_file(&path).unwrap().active_id(), "mk1");
    }

    #[cfg(unix)]
    #[test]
    fn sealing_created_key_file_is_0600_and_never_replaced() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("master.keys");
        let ring = Keyring::create_file(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let before = fs::read(&path).unwrap();
        let err = Keyring::create_file(&path).unwrap_err();
        assert!(matches!(err, KeyringError::AlreadyExists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before, "existing file untouched");
        // No temporary files left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        // The created ring and the file agree.
        let loaded = Keyring::load_file(&path).unwrap();
        assert_eq!(
            loaded
                .unseal(&ring.seal(SECRET, AAD), AAD)
                .unwrap()
                .as_str(),
            SECRET
        );
        assert_eq!(loaded.source(), &KeySource::File(path.clone()));
    }

    #[cfg(unix)]
    #[test]
    fn sealing_edit_through_a_symlink_replaces_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.keys");
        let link = dir.path().join("master.keys");
        Keyring::create_file(&real).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        Keyring::add_new_key_to_file(&link).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(Keyring::load_file(&real).unwrap().active_id(), "mk2");
        assert_eq!(Keyring::load_file(&link).unwrap().active_id(), "mk2");
    }

    #[test]
    fn sealing_master_key_entry_round_trip() {
        let key = MasterKey::generate("2026-11").unwrap();
        let entry = key.export_entry();
        assert!(entry.starts_with("2026-11:") && entry.len() == "2026-11:".len() + 44);
        let parsed = MasterKey::parse(&format!(" {}\n", entry.as_str())).unwrap();
        let a = Keyring::new(vec![key]).unwrap();
        let b = Keyring::new(vec![parsed]).unwrap();
        assert_eq!(
            b.unseal(&a.seal(SECRET, AAD), AAD).unwrap().as_str(),
            SECRET
        );
        let err = MasterKey::parse("mk1:AAAA").unwrap_err().to_string();
        assert!(err.contains("3 bytes long"), "{err}");
        assert!(MasterKey::new("Bad Id", [0; MASTER_KEY_LEN]).is_err());
        assert!(MasterKey::generate("").is_err());
        assert!(Keyring::new(Vec::new()).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn sealing_key_file_open_to_group_or_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.keys");
        Keyring::create_file(&path).unwrap();
        for mode in [0o640, 0o604, 0o620, 0o602, 0o644] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = Keyring::load_file(&path).unwrap_err();
            assert!(
                matches!(err, KeyringError::InsecurePermissions { .. }),
                "{err}"
            );
            let text = err.to_string();
            assert!(text.contains(&format!("{mode:04o}")), "{text}");
            assert!(text.contains("chmod 600"), "{text}");
            // load_or_create must not treat it as missing and must not edit it either.
            assert!(Keyring::load_or_create(&path).is_err());
            assert!(Keyring::add_new_key_to_file(&path).is_err());
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(Keyring::load_file(&path).is_ok());
    }

    #[test]
    fn sealing_key_file_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let write = |text: &str| {
            let _ = fs::remove_file(&path);
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options
                .open(&path)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        };
        write(&format!(
            "# comment\n\n  {}  \n# another\n{}\n",
            entry("2026-11", 1),
            entry("mk1", 2)
        ));
        let ring = Keyring::load_file(&path).unwrap();
        assert_eq!(ring.key_ids().collect::<Vec<_>>(), ["2026-11", "mk1"]);
        assert_eq!(ring.next_key_id(), "mk2");

        write("# only comments\n\n");
        let err = Keyring::load_file(&path).unwrap_err().to_string();
        assert!(err.contains("holds no master key"), "{err}");

        write(&format!("{}\n{}\n", entry("mk1", 1), entry("mk1", 2)));
        let err = Keyring::load_file(&path).unwrap_err().to_string();
        assert!(err.contains("`mk1` appears more than once"), "{err}");

        let secretish = STANDARD.encode([9u8; 16]);
        write(&format!("# c\nmk1:{secretish}\n"));
        let err = Keyring::load_file(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("16 bytes"), "{err}");
        assert!(!err.contains(&secretish), "{err}");

        let missing = Keyring::load_file(&dir.path().join("absent")).unwrap_err();
        assert!(
            matches!(missing, KeyringError::Io { ref source, .. } if source.kind() == io::ErrorKind::NotFound)
        );
    }

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

    #[test]
    fn sealing_debug_never_shows_key_bytes() {
        let bytes = [0xa5u8; MASTER_KEY_LEN];
        let key = MasterKey::new("mk1", bytes).unwrap();
        let ring = Keyring::new(vec![key.clone(), MasterKey::generate("mk2").unwrap()]).unwrap();
        let err =
            Keyring::from_env_value(&format!("mk1:{}", STANDARD.encode([0xa5u8; 31]))).unwrap_err();
        for text in [
            format!("{key:?}"),
            format!("{key:#?}"),
            format!("{ring:?}"),
            format!("{ring:#?}"),
            format!("{err:?}"),
        ] {
            assert!(text.contains("mk1"), "{text}");
            for leak in [
                hex::encode(bytes),
                hex::encode(&bytes[..4]),
                STANDARD.encode(bytes),
                STANDARD.encode(&bytes[..6]),
                URL_SAFE_NO_PAD.encode(bytes),
                "165".into(), // 0xa5 as a decimal byte list
                "0xa5".into(),
            ] {
                assert!(!text.contains(&leak), "{leak} in {text}");
            }
        }
        assert!(format!("{key:?}").contains("<redacted>"));
    }

    #[test]
    fn sealing_output_does_not_contain_the_plaintext() {
        let ring = ring(&["mk1"]);
        let sealed = ring.seal(SECRET, AAD);
        let mut leaks = vec![SECRET.to_owned(), hex::encode(SECRET)];
        // Base64 of the secret at every alignment, in both alphabets.
        for skip in 0..3 {
            let tail = &SECRET.as_bytes()[skip..];
            for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
                let mut enc = engine.encode(tail);
                enc.truncate(enc.len() - 4); // drop the final group, which depends on the end
                leaks.push(enc);
            }
        }
        // Any 12-character run of the secret (its random part is hex).
        for window in SECRET.as_bytes().windows(12) {
            leaks.push(String::from_utf8(window.to_vec()).unwrap());
        }
        for leak in leaks {
            assert!(!sealed.contains(&leak), "{leak} found in {sealed}");
        }
    }
}
