//! One master key: its id, its 32 secret bytes (wiped on drop, redacted from `Debug`), the
//! `id:base64` entry a key file line or a `DROPFIX_MASTER_KEYS` entry holds, and the fingerprint
//! that tells two copies of a key apart without showing either.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::{KeyringError, random_bytes};

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Longest key id.
pub const MAX_KEY_ID_LEN: usize = 32;

/// What a fingerprint hashes before the key id and the key: a hash of this form is never the
/// hash of anything else (the bare key's SHA-256, another program's fingerprint of it).
const FINGERPRINT_DOMAIN: &[u8] = b"dropfix-master-key-fingerprint:v1:";

/// Hex characters of a fingerprint: 64 bits, enough to tell keys apart, far too few to say
/// anything about a key that is 256 random bits.
const FINGERPRINT_HEX_CHARS: usize = 16;

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

    /// The key's fingerprint: the first 16 hex characters of SHA-256 over
    /// `dropfix-master-key-fingerprint:v1:` || id || `:` || the 32 key bytes. Two hosts holding
    /// the same key under the same id show the same fingerprint; it may be shown, logged and
    /// stored anywhere (it reveals nothing usable about the key).
    pub fn fingerprint(&self) -> String {
        let mut hash = sha2::Sha256::new();
        hash.update(FINGERPRINT_DOMAIN);
        hash.update(self.id.as_bytes());
        hash.update(b":");
        hash.update(&self.key[..]);
        let mut hex = hex::encode(hash.finalize());
        hex.truncate(FINGERPRINT_HEX_CHARS);
        hex
    }

    /// Whether `other` is this key: the same id and the same bytes (compared in constant time).
    pub fn same_key(&self, other: &MasterKey) -> bool {
        self.id == other.id && bool::from(self.key[..].ct_eq(&other.key[..]))
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

    /// Reads the one key `text` holds, in a key file's form (blank lines and `#` lines ignored,
    /// every entry checked as a key file's is): `master-key add --from-stdin` reads what
    /// `master-key generate` printed on another machine. `origin` names the text in errors,
    /// which never repeat key material.
    pub fn parse_one(text: &str, origin: &str) -> Result<MasterKey, KeyringError> {
        let mut found = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = MasterKey::parse_entry(line, &|| format!("{origin} line {}", n + 1))?;
            if found.is_some() {
                return Err(KeyringError::Invalid {
                    origin: origin.to_owned(),
                    problem: "holds more than one key entry: give one `id:base64` entry".into(),
                });
            }
            found = Some(key);
        }
        found.ok_or_else(|| KeyringError::Invalid {
            origin: origin.to_owned(),
            problem: "holds no key entry: expected one `id:base64` line, as `dropfix-server \
                      master-key generate --id ID` prints it"
                .into(),
        })
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
    use crate::sealing::test_support::{AAD, SECRET, entry};

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
    fn sealing_fingerprints_tell_keys_apart_and_show_nothing_of_them() {
        let bytes = [7u8; MASTER_KEY_LEN];
        let key = MasterKey::new("mk2", bytes).unwrap();
        let fp = key.fingerprint();
        // A fixed vector: another implementation (or `sha256sum`, see docs/SEALING.md) agrees.
        let mut input = b"dropfix-master-key-fingerprint:v1:mk2:".to_vec();
        input.extend_from_slice(&bytes);
        assert_eq!(fp, hex::encode(sha2::Sha256::digest(&input))[..16]);
        assert_eq!(fp.len(), 16);
        // Not the bare key's hash, nor its hex or base64.
        assert!(!hex::encode(sha2::Sha256::digest(bytes)).starts_with(&fp));
        assert!(!hex::encode(bytes).contains(&fp));
        // The same key under the same id anywhere has the same fingerprint; another key, or the
        // same bytes under another id, another one.
        assert_eq!(MasterKey::new("mk2", bytes).unwrap().fingerprint(), fp);
        assert_ne!(
            MasterKey::new("mk2", [8; MASTER_KEY_LEN])
                .unwrap()
                .fingerprint(),
            fp
        );
        assert_ne!(MasterKey::new("mk3", bytes).unwrap().fingerprint(), fp);
        assert!(key.same_key(&MasterKey::new("mk2", bytes).unwrap()));
        assert!(!key.same_key(&MasterKey::new("mk2", [8; MASTER_KEY_LEN]).unwrap()));
        assert!(!key.same_key(&MasterKey::new("mk3", bytes).unwrap()));
    }

    #[test]
    fn sealing_one_entry_is_read_as_a_key_file_line_is() {
        let text = format!("# from host a\n\n  {}  \n", entry("mk2", 3));
        let key = MasterKey::parse_one(&text, "standard input").unwrap();
        assert!(key.same_key(&MasterKey::new("mk2", [3; MASTER_KEY_LEN]).unwrap()));
        let short = STANDARD.encode([3u8; 31]);
        let cases = [
            (String::new(), "standard input: holds no key entry"),
            ("# nothing\n".into(), "holds no key entry"),
            (
                format!("{}\n{}", entry("mk2", 3), entry("mk3", 4)),
                "holds more than one key entry",
            ),
            (
                format!("mk2:{short}"),
                "standard input line 1: key `mk2` is 31 bytes",
            ),
            (
                format!("\nMK2:{}", STANDARD.encode([3u8; 32])),
                "line 2: the key id is not valid",
            ),
            (STANDARD.encode([3u8; 32]), "found no `:`"),
        ];
        for (text, expected) in cases {
            let err = MasterKey::parse_one(&text, "standard input")
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains(&short) && !err.contains(&STANDARD.encode([3u8; 32])));
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
}
