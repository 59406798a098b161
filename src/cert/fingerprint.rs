//! How every cache, log line and summary names "these bytes": their SHA-256.

use std::fmt;

use aws_lc_rs::digest::{digest, SHA256};

/// The SHA-256 of some bytes — a certificate's DER, or the header value it came in (which
/// bytes is said where it is used). Shown as lower-case hex, as `openssl x509 -fingerprint
/// -sha256` shows it without colons.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, bytes).as_ref());
        Self(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // On the stack: every request's log line shows one.
        let mut text = [0u8; 64];
        hex::encode_to_slice(self.0, &mut text).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}
