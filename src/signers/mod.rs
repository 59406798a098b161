//! The signers of the admin API (contract §9): `signers.toml`, one `[[signer]]` per shared
//! secret — key id, secret (base64 of 32 or more bytes), HMAC algorithm, the actions it may
//! take, an optional expiry, `active`. Judged like the key store (its permissions, a message
//! naming file, entry and field for anything wrong), and never showing a secret.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use zeroize::Zeroizing;

mod parse;
#[cfg(test)]
mod tests;

use crate::httpsig::{Algorithm, Refusal};
use crate::secret_file::{SecretFile, SecretFileError};

/// The fewest secret bytes a signer may have (RFC 2104: at least the hash's output).
pub const MIN_SECRET_BYTES: usize = 32;

/// What a signer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Status,
    Disable,
    Enable,
    Shutdown,
    Renew,
    /// Escrow: the key wrapped to a certificate of `[api] export_to` (issue 15).
    Export,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Status,
        Action::Disable,
        Action::Enable,
        Action::Shutdown,
        Action::Renew,
        Action::Export,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Status => "status",
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Shutdown => "shutdown",
            Action::Renew => "renew",
            Action::Export => "export",
        }
    }
}

/// One signer.
pub struct Signer {
    pub key_id: String,
    secret: Zeroizing<Vec<u8>>,
    pub algorithm: Algorithm,
    pub actions: BTreeSet<Action>,
    pub expires: Option<OffsetDateTime>,
    pub active: bool,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .field("secret", &"redacted")
            .field("algorithm", &self.algorithm)
            .field("actions", &self.actions)
            .field("expires", &self.expires)
            .field("active", &self.active)
            .finish()
    }
}

impl Signer {
    /// The HMAC key (the decoded secret).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

/// Every signer of a signers file, by key id.
#[derive(Debug, Default)]
pub struct Signers {
    by_id: BTreeMap<String, Signer>,
}

/// A signers file that cannot be used: names the file, the entry and the field.
#[derive(Debug, thiserror::Error)]
pub enum SignersError {
    #[error("signers {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signers {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("signers {path}: entry {entry}{label}: field `{field}`: {message}")]
    Entry {
        path: PathBuf,
        entry: usize,
        label: String,
        field: &'static str,
        message: String,
    },
}

/// Whether `key_id` can name a signer: 1 to 64 letters, digits, `.`, `_`, `-` (it is quoted
/// in a structured field and shown in logs and the audit chain).
pub fn valid_key_id(key_id: &str) -> bool {
    (1..=64).contains(&key_id.len())
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Signers {
    /// Reads `path` after judging its permissions (as the key store's); the warning to log.
    pub fn load(path: &Path, allow_open: bool) -> Result<(Self, Option<String>), SignersError> {
        let file = SecretFile {
            path,
            kind: "signers file",
            holds: "the signers' secrets",
        };
        let (text, warning) = file.read_judged(allow_open).map_err(|e| match e {
            SecretFileError::Read(source) => SignersError::Read {
                path: path.to_owned(),
                source,
            },
            SecretFileError::Permissions(message) => SignersError::File {
                path: path.to_owned(),
                message,
            },
        })?;
        Ok((Self::parse(path, &text)?, warning))
    }

    /// The signer `key_id` names, active or not (to check a signature made in the past).
    pub fn any(&self, key_id: &str) -> Option<&Signer> {
        self.by_id.get(key_id)
    }

    /// The signer `key_id` names, if it may sign at `now`.
    pub fn signer(&self, key_id: &str, now: OffsetDateTime) -> Result<&Signer, Refusal> {
        let signer = self
            .by_id
            .get(key_id)
            .ok_or_else(|| Refusal::UnknownKey(key_id.to_owned()))?;
        if !signer.active {
            return Err(Refusal::Inactive(key_id.to_owned()));
        }
        match signer.expires {
            Some(t) if t <= now => Err(Refusal::Expired(
                key_id.to_owned(),
                crate::protocol::format_timestamp(t),
            )),
            _ => Ok(signer),
        }
    }

    /// What of `self` stays in force at once when the file changes to `new`: only what both
    /// allow (kill wins at once, contract §7) — a signer in both with the same secret and
    /// algorithm, active only if both say so, with the actions both give and the earlier
    /// expiry. What `new` adds (a signer, an action, a later expiry, a reactivation, a new
    /// secret) waits until the file has settled.
    pub fn narrowed_by(&self, new: &Signers) -> Signers {
        let by_id = self
            .by_id
            .iter()
            .filter_map(|(id, old)| {
                let new = new.by_id.get(id)?;
                if new.algorithm != old.algorithm || new.secret.as_slice() != old.secret.as_slice()
                {
                    return None;
                }
                let expires = match (old.expires, new.expires) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Some((
                    id.clone(),
                    Signer {
                        key_id: id.clone(),
                        secret: old.secret.clone(),
                        algorithm: old.algorithm,
                        actions: old.actions.intersection(&new.actions).copied().collect(),
                        expires,
                        active: old.active && new.active,
                    },
                ))
            })
            .collect();
        Signers { by_id }
    }

    /// Whether `self` and `other` say the same of every signer.
    pub fn same_as(&self, other: &Signers) -> bool {
        self.by_id.len() == other.by_id.len()
            && self.by_id.iter().zip(&other.by_id).all(|((a, x), (b, y))| {
                a == b
                    && x.algorithm == y.algorithm
                    && x.secret.as_slice() == y.secret.as_slice()
                    && x.actions == y.actions
                    && x.expires == y.expires
                    && x.active == y.active
            })
    }

    /// The key ids of the signers who may take `action` at `now`: active, unexpired and
    /// allowed it.
    pub fn electorate(&self, action: Action, now: OffsetDateTime) -> Vec<String> {
        self.by_id
            .keys()
            .filter(|id| {
                self.signer(id, now)
                    .is_ok_and(|s| s.actions.contains(&action))
            })
            .cloned()
            .collect()
    }

    /// Every signer's key id.
    pub fn signer_ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
