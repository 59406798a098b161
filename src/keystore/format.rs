//! The key-store file format: `[[key]]` entries with `instance`, `key_id`, the secret (`secret`,
//! or its `kcv` when the secret lives in a token), `not_after` and `disabled`. Parsing is all or
//! nothing, and every error names the file, the entry and the field without quoting a secret.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use toml::Value;

use super::KeyState;
use crate::protocol::{InstanceName, KeyId};
use crate::secret::{Kcv, Secret};
use crate::secret_file;
use zeroize::Zeroizing;

/// A key-store file that cannot be used. Names the file, the entry and the field; never
/// contains any part of a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("key store {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key store {path}: line {line}: not valid TOML: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("key store {path}: {message}")]
    Shape { path: PathBuf, message: String },
    #[error("key store {path}: entry {entry}{label}: field `{field}`: {message}")]
    Entry {
        path: PathBuf,
        /// 1-based position among the `[[key]]` entries.
        entry: usize,
        /// ` (instance "x", key_id n)` where those could be read.
        label: String,
        field: &'static str,
        message: String,
    },
    #[error("key store {path}: {message}")]
    Permissions { path: PathBuf, message: String },
    #[error("key store {path}: {message}")]
    Token { path: PathBuf, message: String },
}

/// Where a key-store file's secrets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsIn {
    /// Each entry has its `secret` (`[keys] backend = "file"`).
    File,
    /// Each entry has the `kcv` of its secret, which lives in a PKCS#11 token
    /// (`[keys] backend = "pkcs11"`); a `secret` in the file is refused.
    Token,
}

impl SecretsIn {
    fn fields(self) -> &'static [&'static str] {
        match self {
            SecretsIn::File => &[
                "instance",
                "key_id",
                "secret",
                "not_after",
                "lease",
                "disabled",
            ],
            SecretsIn::Token => &[
                "instance",
                "key_id",
                "kcv",
                "not_after",
                "lease",
                "disabled",
            ],
        }
    }
}

/// One `[[key]]` entry of a key-store file: its state, and its secret when the file holds it.
pub struct KeyEntry {
    pub state: KeyState,
    pub secret: Option<Secret>,
}

impl fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEntry")
            .field("state", &self.state)
            .field("secret", &self.secret.as_ref().map(|_| "redacted"))
            .finish()
    }
}

/// Reads and validates the entries of a key-store file: all of them or an error naming the
/// file, the entry and the field. Never quotes a secret.
pub fn parse_entries(
    path: &Path,
    text: &str,
    secrets: SecretsIn,
) -> Result<Vec<KeyEntry>, KeyStoreError> {
    let mut table: toml::Table = secret_file::toml(text).map_err(|e| KeyStoreError::Syntax {
        path: path.to_owned(),
        line: e.line,
        message: shown_names(e.message.trim()),
    })?;
    let shape = |message: String| KeyStoreError::Shape {
        path: path.to_owned(),
        message,
    };
    if let Some(unknown) = table.keys().find(|k| k.as_str() != "key") {
        return Err(shape(format!(
            "unknown top-level item {}: the file holds only [[key]] entries",
            shown_name(unknown)
        )));
    }
    let raw_entries = match table.remove("key") {
        None => Vec::new(),
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(shape(
                "`key` must be an array of tables: write [[key]]".into(),
            ))
        }
    };
    let mut seen = BTreeSet::new();
    let mut entries = Vec::with_capacity(raw_entries.len());
    for (index, entry) in raw_entries.into_iter().enumerate() {
        let mut parser = EntryParser {
            path,
            entry: index + 1,
            label: String::new(),
            secrets,
        };
        let key = parser.parse(entry)?;
        if !seen.insert((key.state.instance.clone(), key.state.key_id)) {
            return Err(parser.error(
                "key_id",
                format!(
                    "duplicate: instance {:?} already has key_id {} in an earlier entry",
                    key.state.instance.as_str(),
                    key.state.key_id
                ),
            ));
        }
        entries.push(key);
    }
    Ok(entries)
}

/// Reads the key-store file at `path` and parses its entries (see [`parse_entries`]).
pub fn read_entries(path: &Path, secrets: SecretsIn) -> Result<Vec<KeyEntry>, KeyStoreError> {
    parse_entries(path, &read_text(path)?, secrets)
}

/// The text of the key-store file at `path`, wiped when dropped.
pub(super) fn read_text(path: &Path) -> Result<Zeroizing<String>, KeyStoreError> {
    secret_file::read(path).map_err(|source| KeyStoreError::Read {
        path: path.to_owned(),
        source,
    })
}

struct EntryParser<'a> {
    path: &'a Path,
    entry: usize,
    label: String,
    secrets: SecretsIn,
}

impl EntryParser<'_> {
    fn error(&self, field: &'static str, message: String) -> KeyStoreError {
        KeyStoreError::Entry {
            path: self.path.to_owned(),
            entry: self.entry,
            label: self.label.clone(),
            field,
            message,
        }
    }

    fn parse(&mut self, entry: Value) -> Result<KeyEntry, KeyStoreError> {
        let Value::Table(mut table) = entry else {
            return Err(self.error("key", "each [[key]] entry must be a table".into()));
        };
        // Take the secret out first so that every early return below drops (and wipes) it.
        let secret_text = match table.remove("secret") {
            Some(Value::String(s)) => Some(Zeroizing::new(s)),
            Some(other) => {
                // The value is dropped unwiped only if it was not a string: then it cannot be
                // a well-formed secret either.
                return Err(self.error(
                    "secret",
                    format!(
                        "must be a string of 64 hex characters, not {}",
                        other.type_str()
                    ),
                ));
            }
            None => None,
        };
        let fields = self.secrets.fields();
        if let Some(unknown) = table.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(self.error(
                "key",
                format!(
                    "unknown field {} (allowed: {})",
                    shown_name(unknown),
                    fields.join(", ")
                ),
            ));
        }

        let instance = match table.get("instance") {
            Some(Value::String(s)) => InstanceName::parse(s)
                // The value is not quoted: a secret pasted into the wrong field must not be
                // printed (found by fuzz/fuzz_targets/keystore.rs).
                .map_err(|e| self.error("instance", e.to_string()))?,
            Some(other) => {
                return Err(self.error(
                    "instance",
                    format!("must be a string, not {}", other.type_str()),
                ))
            }
            None => return Err(self.error("instance", "missing".into())),
        };
        self.label = format!(" (instance {:?})", instance.as_str());
        let key_id = match table.get("key_id") {
            Some(Value::Integer(n)) => KeyId::try_from(*n)
                .map_err(|_| self.error("key_id", format!("must not be negative (found {n})")))?,
            Some(other) => {
                return Err(self.error(
                    "key_id",
                    format!("must be an integer such as 1, not {}", other.type_str()),
                ))
            }
            None => return Err(self.error("key_id", "missing".into())),
        };
        self.label = format!(" (instance {:?}, key_id {key_id})", instance.as_str());

        let (secret, kcv) = match (self.secrets, secret_text) {
            (SecretsIn::File, Some(text)) => {
                let secret =
                    Secret::from_hex(&text).map_err(|e| self.error("secret", e.to_string()))?;
                let kcv = secret.kcv();
                (Some(secret), kcv)
            }
            (SecretsIn::File, None) => return Err(self.error("secret", "missing".into())),
            (SecretsIn::Token, Some(_)) => return Err(self.error(
                "secret",
                "not allowed: [keys] backend = \"pkcs11\" keeps secrets in the token, never in this file; remove the line and import the key with `ccs-endpoint keys import`".into(),
            )),
            (SecretsIn::Token, None) => match table.get("kcv") {
                Some(Value::String(s)) => (
                    None,
                    Kcv::parse(s).ok_or_else(|| {
                        self.error(
                            "kcv",
                            "must be the 6 hex digits `keys import` printed, such as \"DC95C0\""
                                .into(),
                        )
                    })?,
                ),
                Some(other) => {
                    return Err(self.error(
                        "kcv",
                        format!("must be a string of 6 hex digits, not {}", other.type_str()),
                    ))
                }
                None => return Err(self.error("kcv", "missing".into())),
            },
        };
        let not_after = match table.get("not_after") {
            None => None,
            Some(Value::String(s)) => Some(parse_time(s).map_err(|m| self.error("not_after", m))?),
            Some(Value::Datetime(d)) => {
                Some(parse_time(&d.to_string()).map_err(|m| self.error("not_after", m))?)
            }
            Some(other) => {
                return Err(self.error(
                    "not_after",
                    format!(
                        "must be an RFC 3339 time such as \"2027-01-01T00:00:00Z\", not {}",
                        other.type_str()
                    ),
                ))
            }
        };
        let flag = |field: &'static str| match table.get(field) {
            None => Ok(false),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(other) => Err(self.error(
                field,
                format!("must be true or false, not {}", other.type_str()),
            )),
        };
        let disabled = flag("disabled")?;
        let lease = flag("lease")?;
        if lease && not_after.is_none() {
            return Err(self.error(
                "lease",
                "says not_after is a lease, but there is no not_after: remove it".into(),
            ));
        }
        Ok(KeyEntry {
            state: KeyState {
                instance,
                key_id,
                disabled,
                not_after,
                lease,
                kcv,
            },
            secret,
        })
    }
}

/// A field name as errors show it: quoted when it is a plain word (a typo such as `enabled`),
/// withheld otherwise — a line that is a secret followed by `=` parses as a field name
/// (found by fuzz/fuzz_targets/keystore.rs).
fn shown_name(name: &str) -> String {
    if name.len() <= 32 && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        format!("`{name}`")
    } else {
        "(not shown: not a plain word)".to_owned()
    }
}

/// A TOML parser message with every `quoted` name passed through [`shown_name`]: toml names
/// the table of a duplicate key, and a table header can be a pasted secret (found by
/// fuzz/fuzz_targets/keystore.rs).
pub(super) fn shown_names(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let rest: Vec<&str> = parts.collect();
    for (i, part) in rest.iter().enumerate() {
        if i % 2 == 0 && i + 1 < rest.len() {
            out.push_str(&shown_name(part));
        } else if i % 2 == 0 {
            // An unmatched backtick: the rest is not a name.
            out.push('`');
            out.push_str(part);
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Parses an RFC 3339 time with an explicit offset (`Z` or `±hh:mm`).
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        format!("is not an RFC 3339 time with an offset, such as \"2027-01-01T00:00:00Z\" ({e})")
    })
}
