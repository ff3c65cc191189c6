//! Sealing buyer contact addresses before they reach the `orders` topic,
//! and the node key they are sealed with.
//!
//! Why: the log is kept for a month, archived, copied for replays and read
//! by tools; an email address or phone number in it would spread personal
//! data to every copy. The API seals each address with XChaCha20-Poly1305
//! (random 192-bit nonces, so no nonce bookkeeping across restarts) under
//! a key derived from the node key file, with the channel as associated
//! data (a sealed email cannot be replayed as a phone number). Only the
//! delivery edge opens addresses, right before sending
//! ([`ContactSealer`] implements the delivery's `ContactOpener`).
//!
//! The node key file (`contacts.key`, 32 random bytes, mode 0600) is
//! created on first start; losing it makes stored addresses unreadable,
//! which is the point of keeping it out of the log directory's copies.
//! Two keys are derived from it with HMAC-SHA256 and distinct labels: the
//! sealing key and the key of per-order tracking tokens.
//!
//! Sealed address text: `dl1.` followed by hex of nonce (24 bytes) then
//! ciphertext and tag (16 bytes).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::common::Generate as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use dropline_operators::model::Channel;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::delivery::contact::{ContactOpener, OpenError};
use crate::http::hex;

/// File name of the node key inside the key directory.
pub const KEY_FILE_NAME: &str = "contacts.key";
/// Bytes of the node key.
pub const NODE_KEY_BYTES: usize = 32;
/// Prefix of a sealed address (format version 1).
pub const SEALED_PREFIX: &str = "dl1.";
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
const SEAL_LABEL: &[u8] = b"dropline contact seal v1";
const TOKEN_LABEL: &[u8] = b"dropline order token v1";
/// Bytes of a per-order tracking token (rendered as hex).
pub const ORDER_TOKEN_BYTES: usize = 16;

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading, creating or syncing the key file failed.
    #[error("node key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a key.
    #[error("node key file {path} holds {bytes} bytes, expected {NODE_KEY_BYTES}")]
    WrongLength {
        /// The file.
        path: PathBuf,
        /// Its length.
        bytes: usize,
    },
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

/// Why an address could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The system random source failed (no nonce).
    #[error("the system random source failed")]
    Random,
    /// The cipher refused the input (longer than the AEAD allows).
    #[error("the address could not be encrypted")]
    Encrypt,
}

fn derive(master: &[u8; NODE_KEY_BYTES], label: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail here.
    match <Hmac<Sha256> as Mac>::new_from_slice(master) {
        Ok(mut mac) => {
            mac.update(label);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0u8; 32],
    }
}

/// Seals and opens contact addresses, and computes per-order tokens.
#[derive(Clone)]
pub struct ContactSealer {
    cipher: XChaCha20Poly1305,
    token_key: [u8; 32],
}

impl std::fmt::Debug for ContactSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContactSealer(..)")
    }
}

fn random_key() -> Result<[u8; NODE_KEY_BYTES], KeyError> {
    let key = chacha20poly1305::Key::try_generate().map_err(|_| KeyError::Random)?;
    let mut out = [0u8; NODE_KEY_BYTES];
    out.copy_from_slice(key.as_slice());
    Ok(out)
}

impl ContactSealer {
    /// A sealer from a node key (tests; the node uses [`ContactSealer::load_or_create`]).
    pub fn from_key(master: &[u8; NODE_KEY_BYTES]) -> ContactSealer {
        let seal_key = derive(master, SEAL_LABEL);
        ContactSealer {
            cipher: XChaCha20Poly1305::new(&seal_key.into()),
            token_key: derive(master, TOKEN_LABEL),
        }
    }

    /// Loads `<dir>/contacts.key`, creating it (32 random bytes, mode 0600,
    /// fsync'd, directory fsync'd) on first start.
    pub fn load_or_create(dir: &Path) -> Result<ContactSealer, KeyError> {
        let path = dir.join(KEY_FILE_NAME);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; NODE_KEY_BYTES] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| KeyError::WrongLength {
                            path: path.clone(),
                            bytes: bytes.len(),
                        })?;
                return Ok(ContactSealer::from_key(&key));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        let key = random_key()?;
        let tmp = dir.join(format!("{KEY_FILE_NAME}.tmp"));
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(&key).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        // A racing first start of another process would have failed on the
        // log's lock first; hard_link refuses to replace an existing key.
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&tmp);
                return ContactSealer::load_or_create(dir);
            }
            Err(e) => return Err(io(e)),
        }
        std::fs::remove_file(&tmp).map_err(io)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(ContactSealer::from_key(&key))
    }

    /// Seals `address` for `channel`.
    pub fn seal(&self, channel: Channel, address: &str) -> Result<String, SealError> {
        let nonce = XNonce::try_generate().map_err(|_| SealError::Random)?;
        let aad = [channel as u8];
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: address.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Encrypt)?;
        let mut bytes = Vec::with_capacity(NONCE_BYTES + sealed.len());
        bytes.extend_from_slice(nonce.as_slice());
        bytes.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", hex::encode(&bytes)))
    }

    /// Seals arbitrary bytes (a rejected request kept as a dead letter),
    /// bound to `context`: nonce (24 bytes), ciphertext, tag (16 bytes).
    pub fn seal_bytes(&self, context: &[u8], bytes: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce = XNonce::try_generate().map_err(|_| SealError::Random)?;
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: bytes,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Encrypt)?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens bytes sealed by [`ContactSealer::seal_bytes`] with the same context.
    pub fn open_bytes(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_BYTES + TAG_BYTES {
            return Err(OpenError::DoesNotOpen);
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| OpenError::DoesNotOpen)?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map_err(|_| OpenError::DoesNotOpen)
    }

    /// Whether a stored address is in sealed form.
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }

    /// Opens a sealed address for `channel`.
    pub fn open(&self, channel: Channel, stored: &str) -> Result<String, OpenError> {
        let hex_text = stored
            .strip_prefix(SEALED_PREFIX)
            .ok_or(OpenError::DoesNotOpen)?;
        let bytes = hex::decode(hex_text).ok_or(OpenError::DoesNotOpen)?;
        if bytes.len() < NONCE_BYTES + TAG_BYTES {
            return Err(OpenError::DoesNotOpen);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| OpenError::DoesNotOpen)?;
        let aad = [channel as u8];
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::DoesNotOpen)?;
        String::from_utf8(plain).map_err(|_| OpenError::DoesNotOpen)
    }

    /// The per-order tracking token of a parcel: HMAC-SHA256 of the
    /// tracking number and order id under the token key, first 16 bytes in
    /// hex. Given to the storefront at creation; it unlocks the full
    /// timeline without the postal code.
    pub fn order_token(&self, tracking_number: &str, order_id: &str) -> String {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.token_key).map(|mut m| {
            m.update(tracking_number.as_bytes());
            m.update(&[0]);
            m.update(order_id.as_bytes());
            m.finalize().into_bytes()
        });
        match mac {
            Ok(d) => hex::encode(&d[..ORDER_TOKEN_BYTES]),
            Err(_) => String::new(),
        }
    }

    /// Whether `token` is the parcel's order token (constant-time compare).
    pub fn verify_order_token(&self, tracking_number: &str, order_id: &str, token: &str) -> bool {
        let want = self.order_token(tracking_number, order_id);
        want.len() == token.len()
            && want
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl ContactOpener for ContactSealer {
    fn open(&self, channel: Channel, stored: &str) -> Result<String, OpenError> {
        ContactSealer::open(self, channel, stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_channel_binding() {
        let s = ContactSealer::from_key(&[7; 32]);
        let sealed = s.seal(Channel::Email, "buyer@example.com").unwrap();
        assert!(ContactSealer::is_sealed(&sealed));
        assert!(!sealed.contains("example"));
        assert_eq!(
            s.open(Channel::Email, &sealed).unwrap(),
            "buyer@example.com"
        );
        assert_eq!(s.open(Channel::Sms, &sealed), Err(OpenError::DoesNotOpen));
        let other = ContactSealer::from_key(&[8; 32]);
        assert_eq!(
            other.open(Channel::Email, &sealed),
            Err(OpenError::DoesNotOpen)
        );
        // Two seals of one address differ (random nonces).
        assert_ne!(sealed, s.seal(Channel::Email, "buyer@example.com").unwrap());
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let a = ContactSealer::load_or_create(dir.path()).unwrap();
        let sealed = a.seal(Channel::Sms, "+15550100").unwrap();
        let meta = std::fs::metadata(dir.path().join(KEY_FILE_NAME)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let b = ContactSealer::load_or_create(dir.path()).unwrap();
        assert_eq!(b.open(Channel::Sms, &sealed).unwrap(), "+15550100");
        assert_eq!(a.order_token("T1", "O1"), b.order_token("T1", "O1"));
        assert!(b.verify_order_token("T1", "O1", &a.order_token("T1", "O1")));
        assert!(!b.verify_order_token("T1", "O2", &a.order_token("T1", "O1")));
    }
}
