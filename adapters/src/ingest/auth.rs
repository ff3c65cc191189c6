//! Adapter authentication: per-adapter tokens, stored as SHA-256 hashes.
//!
//! Why hashes: the node's configuration file then holds nothing that lets
//! a reader impersonate an adapter. Why a constant-time comparison: the
//! time a byte-by-byte compare takes would tell an attacker how many
//! leading bytes of a guess are right.

use sha2::{Digest, Sha256};

/// One adapter allowed to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterCredential {
    /// The adapter's name, as sent in Hello.
    pub name: String,
    /// SHA-256 of its token.
    pub token_sha256: [u8; 32],
}

impl AdapterCredential {
    /// A credential from a plain token (hashes it).
    pub fn from_token(name: impl Into<String>, token: &[u8]) -> AdapterCredential {
        AdapterCredential {
            name: name.into(),
            token_sha256: token_sha256(token),
        }
    }
}

/// SHA-256 of a token, as stored in the node's configuration.
pub fn token_sha256(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Compares two digests in time independent of where they differ.
pub(crate) fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Whether `token` is `adapter`'s token. An unknown adapter name still
/// costs one hash and one comparison, so names cannot be probed by timing.
pub(crate) fn authenticate(credentials: &[AdapterCredential], adapter: &str, token: &[u8]) -> bool {
    let presented = token_sha256(token);
    let mut ok = false;
    let mut matched = false;
    for c in credentials {
        if c.name == adapter {
            matched = true;
            ok |= digests_equal(&c.token_sha256, &presented);
        }
    }
    if !matched {
        let _ = digests_equal(&[0u8; 32], &presented);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_name_and_hash() {
        let creds = vec![
            AdapterCredential::from_token("ups", b"alpha"),
            AdapterCredential::from_token("dhl", b"beta"),
        ];
        assert!(authenticate(&creds, "ups", b"alpha"));
        assert!(!authenticate(&creds, "ups", b"beta"));
        assert!(!authenticate(&creds, "fedex", b"alpha"));
        assert!(!authenticate(&creds, "dhl", b"alph"));
    }
}
