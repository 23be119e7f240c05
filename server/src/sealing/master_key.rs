//! One master key: its id, its 32 secret bytes (wiped on drop, redacted from `Debug`) and the
//! `id:base64` entry a key file line or a `DROPFIX_MASTER_KEYS` entry holds.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305};
use zeroize::Zeroizing;

use super::{KeyringError, random_bytes};

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Longest key id.
pub const MAX_KEY_ID_LEN: usize = 32;

/// Whether `id` is a valid key id: 1 to 32 characters from `a-z 0-9 _ -`.
pub fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The error for an id that [`is_valid_key_id`] refuses. It does not repeat the id: the text
/// before an entry's `:` might be key material put in the wrong place.
fn invalid_key_id(origin: String) -> KeyringError {
    KeyringError::Invalid {
        origin,
        problem: format!(
            "the key id is not valid (1 to {MAX_KEY_ID_LEN} characters from a-z 0-9 _ -)"
        ),
    }
}

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
            return Err(invalid_key_id("master key".into()));
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

    /// Parses one `id:base64` entry; `origin` names it in errors (a variable entry, a file line).
    pub(super) fn parse_entry(
        entry: &str,
        origin: &dyn Fn() -> String,
    ) -> Result<MasterKey, KeyringError> {
        let Some((id, b64)) = entry.split_once(':') else {
            return Err(KeyringError::Invalid {
                origin: origin(),
                problem: "expected `id:base64-key`, found no `:`".into(),
            });
        };
        let id = id.trim();
        if !is_valid_key_id(id) {
            return Err(invalid_key_id(origin()));
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

    /// The AEAD cipher under this key, for [`Keyring::seal`](super::Keyring::seal) and
    /// [`Keyring::unseal`](super::Keyring::unseal).
    pub(super) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.key).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::Keyring;
    use crate::sealing::test_support::{AAD, SECRET};

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
}
