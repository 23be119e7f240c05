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
//! 1. Generate the new key once ([`MasterKey::generate`], [`MasterKey::export_entry`]) and add
//!    that same key to every instance's keyring *after* the active one (every instance can now
//!    open values sealed with it): [`MasterKey::parse_one`] then [`Keyring::add_key_to_file`]
//!    with `activate = false`, or append the entry to `DROPFIX_MASTER_KEYS`. A key generated on
//!    each host would give the hosts different keys under one id.
//! 2. Check that every instance holds it: [`MasterKey::fingerprint`] is the same wherever the
//!    same key is held under the same id, and tells nothing about the key.
//! 3. Make it active everywhere (move it first: [`Keyring::activate_key_in_file`]). New values
//!    are now sealed with it.
//! 4. Rewrap: re-seal every stored value still under the old key ([`Keyring::rewrap`]).
//! 5. Drop the old key ([`Keyring::remove_key_from_file`]) once nothing is sealed with it.
//!
//! A single instance (the embedded default) can do 1 and 3 in one step with
//! [`Keyring::add_new_key_to_file`].
//!
//! Key files are rewritten atomically (a new `0600` file renamed over the old one), so a reader
//! never sees half a file. Two processes editing the same key file at the same moment are not
//! coordinated: the last rename wins.

// The code by concern: `master_key.rs` (one key, its `id:base64` entry), `keyring.rs` (the
// ordered set, `DROPFIX_MASTER_KEYS`, the running process's reloading handle and the keyring's
// errors), `key_file.rs` (reading, creating and editing key files), `seal.rs` (the `dfseal1`
// format: seal, unseal, rewrap).

mod key_file;
mod keyring;
mod master_key;
mod seal;
#[cfg(test)]
mod test_support;

pub use key_file::{DEFAULT_KEY_FILE_NAME, KeyAdded, default_key_file};
pub use keyring::{KeySource, Keyring, KeyringError, KeyringHandle, MASTER_KEYS_ENV};
pub use master_key::{MASTER_KEY_LEN, MAX_KEY_ID_LEN, MasterKey, is_valid_key_id};
pub use seal::{SealError, sealed_key_id};

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS CSPRNG failing is not something a verifier can carry on from (same as workspace.rs).
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}
