//! What the unit tests of the sealing modules share: a secret, its associated data and key
//! entries.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::MASTER_KEY_LEN;

pub(super) const SECRET: &str =
    "dfsk_2f1c9a7be04d35c8a61f0e9d7b2c4a5e8f3d1b6c9a0e7f4d2b5c8a1e3f6d9b0c";
pub(super) const AAD: &[u8] = b"app_1234";

/// A key file line or `DROPFIX_MASTER_KEYS` entry: key `id`, all 32 bytes `byte`.
pub(super) fn entry(id: &str, byte: u8) -> String {
    format!("{id}:{}", STANDARD.encode([byte; MASTER_KEY_LEN]))
}
