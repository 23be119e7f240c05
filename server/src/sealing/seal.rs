//! Sealed values: the `dfseal1:<key id>:<base64url>` format, sealing with the active key,
//! opening with the key a value names, rewrapping under the active key, and why a value did
//! not open.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::XNonce;
use chacha20poly1305::aead::AeadInOut as _;
use zeroize::Zeroizing;

use super::{Keyring, is_valid_key_id, random_bytes};

/// The format tag every sealed value starts with.
const SEAL_TAG: &str = "dfseal1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The id of the master key that sealed `sealed`, or `None` when `sealed` is not a sealed value
/// (for example a secret stored in the clear by an older version). Reads the header only; it
/// does not check that the value opens.
pub fn sealed_key_id(sealed: &str) -> Option<&str> {
    let rest = sealed.strip_prefix(SEAL_TAG)?.strip_prefix(':')?;
    let (id, _) = rest.split_once(':')?;
    is_valid_key_id(id).then_some(id)
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

impl Keyring {
    /// Seals `plaintext` with the active key, binding `aad` (which must be given again to
    /// unseal). Every call uses a fresh random nonce, so sealing the same value twice gives two
    /// different strings.
    pub fn seal(&self, plaintext: &str, aad: &[u8]) -> String {
        let key = self.active_key();
        let nonce: [u8; NONCE_LEN] = random_bytes();
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext.as_bytes());
        let tag = key
            .cipher()
            .encrypt_inout_detached(
                &XNonce::from(nonce),
                &full_aad(key.id(), aad),
                (&mut buf[NONCE_LEN..]).into(),
            )
            // Only fails for inputs of about 256 GiB, far beyond any secret.
            .expect("XChaCha20-Poly1305 accepts any secret-sized input");
        buf.extend_from_slice(&tag);
        let mut out =
            String::with_capacity(SEAL_TAG.len() + key.id().len() + 2 + buf.len() * 4 / 3 + 4);
        out.push_str(SEAL_TAG);
        out.push(':');
        out.push_str(key.id());
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
                source: self.source().to_string(),
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
        /// Where the keyring was loaded from ([`KeySource`](super::KeySource)'s text).
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

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};

    use super::*;
    use crate::sealing::test_support::{AAD, SECRET};
    use crate::sealing::{MASTER_KEY_LEN, MasterKey};

    fn ring(ids: &[&str]) -> Keyring {
        Keyring::new(
            ids.iter()
                .map(|id| MasterKey::generate(id).unwrap())
                .collect(),
        )
        .unwrap()
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
