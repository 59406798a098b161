//! The signers of the admin API (contract §9): `signers.toml`, one `[[signer]]` per shared
//! secret — key id, secret (base64 of 32 or more bytes), HMAC algorithm, the actions it may
//! take, an optional expiry, `active`. Judged like the key store (its permissions, a message
//! naming file, entry and field for anything wrong), and never showing a secret.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::httpsig::{Algorithm, Refusal};
use crate::keystore::parse_time;
use crate::permissions::Permissions;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    signer: Vec<toml::Table>,
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
        let warning = Permissions::of(path)
            .map_err(|source| SignersError::Read {
                path: path.to_owned(),
                source,
            })?
            .judge("signers file", "the signers' secrets", path, allow_open)
            .map_err(|message| SignersError::File {
                path: path.to_owned(),
                message,
            })?;
        let text = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|source| SignersError::Read {
                path: path.to_owned(),
                source,
            })?;
        Ok((Self::parse(path, &text)?, warning))
    }

    /// Parses signers text (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, SignersError> {
        // toml's Display quotes the offending line, which may be a secret: the message only.
        let raw: RawFile = toml::from_str(text).map_err(|e| SignersError::File {
            path: path.to_owned(),
            message: format!("not a signers file: {}", e.message().trim_end()),
        })?;
        let mut by_id = BTreeMap::new();
        for (i, table) in raw.signer.into_iter().enumerate() {
            let label = match table.get("key_id").and_then(toml::Value::as_str) {
                Some(id) if valid_key_id(id) => format!(" (key_id {id:?})"),
                _ => String::new(),
            };
            let error = |field: &'static str, message: String| SignersError::Entry {
                path: path.to_owned(),
                entry: i + 1,
                label: label.clone(),
                field,
                message,
            };
            let string = |field: &'static str| match table.get(field) {
                Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(error(field, "must be a string".into())),
                None => Ok(None),
            };
            let required =
                |field: &'static str| string(field)?.ok_or_else(|| error(field, "missing".into()));
            if let Some(unknown) = table.keys().find(|k| {
                ![
                    "key_id",
                    "secret",
                    "algorithm",
                    "actions",
                    "expires",
                    "active",
                ]
                .contains(&k.as_str())
            }) {
                return Err(error("signer", format!("unknown field `{unknown}`")));
            }
            let key_id = required("key_id")?;
            if !valid_key_id(key_id) {
                return Err(error(
                    "key_id",
                    "must be 1 to 64 letters, digits, '.', '_' or '-'".into(),
                ));
            }
            let secret = Zeroizing::new(BASE64.decode(required("secret")?.trim()).map_err(|_| {
                error(
                    "secret",
                    "is not base64 (standard alphabet, with padding); `ccs-endpoint signers add` makes one".into(),
                )
            })?);
            if secret.len() < MIN_SECRET_BYTES {
                return Err(error(
                    "secret",
                    format!(
                        "is {} bytes; a signer's secret must be at least {MIN_SECRET_BYTES} random bytes",
                        secret.len()
                    ),
                ));
            }
            let algorithm = match required("algorithm")? {
                "hmac-sha256" => Algorithm::HmacSha256,
                "hmac-sha384" => Algorithm::HmacSha384,
                "hmac-sha512" => Algorithm::HmacSha512,
                other => {
                    return Err(error(
                        "algorithm",
                        format!("{other:?} is not hmac-sha256, hmac-sha384 or hmac-sha512"),
                    ))
                }
            };
            let actions = match table.get("actions") {
                Some(toml::Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        let name = item.as_str().unwrap_or_default();
                        Action::ALL.into_iter().find(|a| a.name() == name).ok_or_else(|| {
                            error(
                                "actions",
                                format!("{item} is not an action (status, disable, enable, shutdown, renew, export)"),
                            )
                        })
                    })
                    .collect::<Result<BTreeSet<Action>, _>>()?,
                Some(_) => return Err(error("actions", "must be a list".into())),
                None => return Err(error("actions", "missing".into())),
            };
            if actions.is_empty() {
                return Err(error(
                    "actions",
                    "is empty: this signer could do nothing".into(),
                ));
            }
            let expires = string("expires")?
                .map(parse_time)
                .transpose()
                .map_err(|e| error("expires", e))?;
            let active = match table.get("active") {
                None => true,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return Err(error("active", "must be true or false".into())),
            };
            let key_id = key_id.to_owned();
            let signer = Signer {
                key_id: key_id.clone(),
                secret,
                algorithm,
                actions,
                expires,
                active,
            };
            if by_id.insert(key_id, signer).is_some() {
                return Err(error(
                    "key_id",
                    "duplicate: another entry has this key id".into(),
                ));
            }
        }
        Ok(Self { by_id })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="; // 34 bytes

    fn parse(text: &str) -> Result<Signers, SignersError> {
        Signers::parse(Path::new("/etc/ccs/signers.toml"), text)
    }

    #[test]
    fn reads_signers_and_refuses_the_unusable_ones() {
        let signers = parse(&format!(
            "[[signer]]\nkey_id = \"soc-oncall\"\nsecret = \"{SECRET}\"\nalgorithm = \"hmac-sha256\"\nactions = [\"status\", \"disable\", \"shutdown\"]\n\n\
             [[signer]]\nkey_id = \"old\"\nsecret = \"{SECRET}\"\nalgorithm = \"hmac-sha512\"\nactions = [\"status\"]\nexpires = \"2020-01-01T00:00:00Z\"\n\n\
             [[signer]]\nkey_id = \"off\"\nsecret = \"{SECRET}\"\nalgorithm = \"hmac-sha384\"\nactions = [\"enable\"]\nactive = false\n"
        ))
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let soc = signers.signer("soc-oncall", now).unwrap();
        assert_eq!(soc.algorithm, Algorithm::HmacSha256);
        assert!(soc.actions.contains(&Action::Disable) && !soc.actions.contains(&Action::Enable));
        assert_eq!(soc.secret().len(), 34);
        assert!(!format!("{soc:?}").contains(SECRET));
        assert!(matches!(
            signers.signer("old", now),
            Err(Refusal::Expired(..))
        ));
        assert!(matches!(
            signers.signer("off", now),
            Err(Refusal::Inactive(_))
        ));
        assert!(matches!(
            signers.signer("nobody", now),
            Err(Refusal::UnknownKey(_))
        ));
    }

    #[test]
    fn errors_name_the_entry_and_field_and_never_the_secret() {
        let entry = |fields: &str| format!("[[signer]]\n{fields}\n");
        let ok = format!("key_id = \"a\"\nsecret = \"{SECRET}\"\nalgorithm = \"hmac-sha256\"\nactions = [\"status\"]");
        let rows = [
            (ok.replace("hmac-sha256", "hmac-md5"), "field `algorithm`"),
            (ok.replace("\"status\"", "\"delete\""), "field `actions`"),
            (
                ok.replace("[\"status\"]", "[]"),
                "field `actions`: is empty",
            ),
            (ok.replace(SECRET, "c2hvcnQ="), "field `secret`: is 5 bytes"),
            (
                ok.replace(SECRET, "not base64!"),
                "field `secret`: is not base64",
            ),
            (ok.replace("\"a\"", "\"a b\""), "field `key_id`"),
            (format!("{ok}\nexpires = \"soon\""), "field `expires`"),
            (
                format!("{ok}\nrole = \"admin\""),
                "field `signer`: unknown field `role`",
            ),
        ];
        for (fields, expected) in rows {
            let error = parse(&entry(&fields)).err().unwrap().to_string();
            assert!(
                error.contains("signers /etc/ccs/signers.toml: entry 1"),
                "{error}"
            );
            assert!(error.contains(expected), "{fields}\n→ {error}");
            assert!(
                !error.contains(SECRET) && !error.contains("not base64!\""),
                "{error}"
            );
        }
        let twice = format!("{}{}", entry(&ok), entry(&ok));
        assert!(parse(&twice)
            .err()
            .unwrap()
            .to_string()
            .contains("entry 2 (key_id \"a\"): field `key_id`: duplicate"));
    }
}
