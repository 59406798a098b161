//! Editing the key-store file as an operator would by hand: comments and order kept, every
//! change validated by the same parser the server uses, written atomically (temporary file in the
//! same directory, fsync, rename, fsync of the directory) with mode 600.
//!
//! The edited document holds secrets in toml_edit's own strings, which are not wiped; the
//! rendered text is. The commands that use this run briefly and exit.

use std::io::Write;
use std::path::{Path, PathBuf};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};
use zeroize::Zeroizing;

use crate::keystore::{parse_entries, KeyState, KeyStoreError, SecretsIn};
use crate::protocol::{InstanceName, KeyId};
use crate::secret::{Kcv, Secret};
use crate::secret_file;

mod apply;

/// Why the key-store file could not be changed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(transparent)]
    Store(#[from] KeyStoreError),
    #[error("key store {path}: {message}")]
    Edit { path: PathBuf, message: String },
    #[error("key store {path}: writing: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A key-store file opened for editing.
pub struct KeyFile {
    path: PathBuf,
    doc: DocumentMut,
    secrets: SecretsIn,
}

impl KeyFile {
    /// Opens `path`; a file that does not exist yet is an empty store. An existing file must be
    /// a valid key store: nothing is edited on top of a broken one.
    pub fn open(path: &Path) -> Result<Self, KeyFileError> {
        Self::open_with(path, SecretsIn::File)
    }

    /// As `open`, for a file whose entries hold what `secrets` says (secrets, or KCVs of
    /// secrets kept in a token).
    pub fn open_with(path: &Path, secrets: SecretsIn) -> Result<Self, KeyFileError> {
        let text = secret_file::read_or(path, HEADER).map_err(|source| KeyStoreError::Read {
            path: path.to_owned(),
            source,
        })?;
        parse_entries(path, &text, secrets)?;
        let doc = text
            .parse::<DocumentMut>()
            .map_err(|e| KeyFileError::Edit {
                path: path.to_owned(),
                message: e.message().to_owned(),
            })?;
        Ok(Self {
            path: path.to_owned(),
            doc,
            secrets,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn entries(&mut self) -> Result<&mut ArrayOfTables, KeyFileError> {
        let path = self.path.clone();
        let item = self
            .doc
            .entry("key")
            .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
        item.as_array_of_tables_mut().ok_or(KeyFileError::Edit {
            path,
            message: "`key` is not an array of tables".into(),
        })
    }

    fn find(
        &mut self,
        instance: &InstanceName,
        key_id: KeyId,
    ) -> Result<Option<&mut Table>, KeyFileError> {
        Ok(self.entries()?.iter_mut().find(|t| {
            t.get("instance").and_then(Item::as_str) == Some(instance.as_str())
                && t.get("key_id")
                    .and_then(Item::as_integer)
                    .and_then(|n| u64::try_from(n).ok())
                    == Some(key_id)
        }))
    }

    fn missing(&self, instance: &InstanceName, key_id: KeyId) -> KeyFileError {
        KeyFileError::Edit {
            path: self.path.clone(),
            message: format!("no key for instance {instance:?}, key_id {key_id}"),
        }
    }

    /// Adds a key. An existing (instance, key_id) is replaced only when `force` is given
    /// (its KCV is returned): replacing a live key makes the database's data unreadable.
    pub fn add(
        &mut self,
        instance: &InstanceName,
        key_id: KeyId,
        secret: &Secret,
        force: bool,
    ) -> Result<Option<Kcv>, KeyFileError> {
        let hex = secret.to_hex();
        let hex = std::str::from_utf8(hex.as_slice()).unwrap_or_default();
        self.add_field(instance, key_id, "secret", hex, force)
    }

    /// Adds the entry of a key whose secret is in a token: its KCV, no secret. An existing
    /// entry is replaced only when `force` is given (its KCV is returned).
    pub fn add_token_key(
        &mut self,
        instance: &InstanceName,
        key_id: KeyId,
        kcv: Kcv,
        force: bool,
    ) -> Result<Option<Kcv>, KeyFileError> {
        self.add_field(instance, key_id, "kcv", &kcv.to_string(), force)
    }

    /// Whether the file has an entry for the key.
    pub fn contains(
        &mut self,
        instance: &InstanceName,
        key_id: KeyId,
    ) -> Result<bool, KeyFileError> {
        Ok(self.find(instance, key_id)?.is_some())
    }

    fn add_field(
        &mut self,
        instance: &InstanceName,
        key_id: KeyId,
        field: &str,
        text: &str,
        force: bool,
    ) -> Result<Option<Kcv>, KeyFileError> {
        let key_id_value = i64::try_from(key_id).map_err(|_| KeyFileError::Edit {
            path: self.path.clone(),
            message: format!("key_id {key_id} is larger than TOML integers allow"),
        })?;
        let path = self.path.clone();
        if let Some(existing) = self.find(instance, key_id)? {
            if !force {
                return Err(KeyFileError::Edit {
                    path,
                    message: format!(
                        "instance {instance:?} already has key_id {key_id}: replacing a live key makes the database's data unreadable; pass --force --confirm-kcv <its KCV> (`keys list`) if that is really meant"
                    ),
                });
            }
            let old = match existing.get("kcv").and_then(Item::as_str) {
                Some(kcv) => Kcv::parse(kcv),
                None => existing
                    .get("secret")
                    .and_then(Item::as_str)
                    .and_then(|s| Secret::from_hex(s).ok())
                    .map(|s| s.kcv()),
            };
            existing.remove("secret");
            existing.remove("kcv");
            existing[field] = value(text);
            existing.remove("disabled");
            existing.remove("not_after");
            existing.remove("lease");
            return Ok(old);
        }
        let mut table = Table::new();
        table["instance"] = value(instance.as_str());
        table["key_id"] = value(key_id_value);
        table[field] = value(text);
        if self.entries()?.is_empty() {
            // A new file's header comments would otherwise trail the first entry.
            let header = self.doc.trailing().as_str().unwrap_or_default().to_owned();
            table.decor_mut().set_prefix(header);
            self.doc.set_trailing("");
        }
        self.entries()?.push(table);
        Ok(None)
    }

    /// Sets or clears `disabled` (the soft kill switch).
    pub fn set_disabled(
        &mut self,
        instance: &InstanceName,
        key_id: KeyId,
        disabled: bool,
    ) -> Result<(), KeyFileError> {
        let missing = self.missing(instance, key_id);
        let entry = self.find(instance, key_id)?.ok_or(missing)?;
        if disabled {
            entry["disabled"] = value(true);
        } else {
            entry.remove("disabled");
        }
        Ok(())
    }

    /// Marks one key's `not_after` as a lease (`renew` may move it) or not.
    pub fn set_lease(
        &mut self,
        instance: &InstanceName,
        key_id: KeyId,
        lease: bool,
    ) -> Result<(), KeyFileError> {
        let missing = self.missing(instance, key_id);
        let entry = self.find(instance, key_id)?.ok_or(missing)?;
        if lease {
            entry["lease"] = value(true);
        } else {
            entry.remove("lease");
        }
        Ok(())
    }

    /// Sets `not_after` to `at`, or removes it (`None`), on one key or on every key of the
    /// instance; returns the key ids changed. [`apply`](Self::apply) writes it for every kill-switch action. A
    /// `not_after` written here is a shutdown, not a lease (see [`set_lease`](Self::set_lease)).
    pub fn set_not_after(
        &mut self,
        instance: &InstanceName,
        key_id: Option<KeyId>,
        at: Option<OffsetDateTime>,
    ) -> Result<Vec<KeyId>, KeyFileError> {
        let stamp = at.map(|at| {
            at.replace_nanosecond(0)
                .unwrap_or(at)
                .format(&Rfc3339)
                .unwrap_or_default()
        });
        let mut changed = Vec::new();
        for entry in self.entries()?.iter_mut() {
            let id = entry
                .get("key_id")
                .and_then(Item::as_integer)
                .and_then(|n| u64::try_from(n).ok());
            let same_instance =
                entry.get("instance").and_then(Item::as_str) == Some(instance.as_str());
            if let (true, Some(id)) = (same_instance, id) {
                if key_id.is_none_or(|k| k == id) {
                    match &stamp {
                        Some(stamp) => entry["not_after"] = value(stamp.as_str()),
                        None => {
                            entry.remove("not_after");
                        }
                    }
                    entry.remove("lease");
                    changed.push(id);
                }
            }
        }
        if changed.is_empty() {
            return Err(KeyFileError::Edit {
                path: self.path.clone(),
                message: match key_id {
                    Some(k) => format!("no key for instance {instance:?}, key_id {k}"),
                    None => format!("no key for instance {instance:?}"),
                },
            });
        }
        Ok(changed)
    }

    /// Validates the edited store and writes it atomically with mode 600; returns the states.
    pub fn save(&self) -> Result<Vec<KeyState>, KeyFileError> {
        let text = Zeroizing::new(self.doc.to_string());
        let entries = parse_entries(&self.path, &text, self.secrets)?;
        write_atomically(&self.path, text.as_bytes()).map_err(|source| KeyFileError::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(entries.into_iter().map(|entry| entry.state).collect())
    }
}

const HEADER: &str = "# ccs-endpoint key store: keep it mode 600 and out of version control.\n\
# Each [[key]] is one key-encryption key; see config/keys.example.toml for the fields.\n";

/// Temporary file beside `path` (mode 600), fsync, rename over `path`, fsync the directory.
///
/// The new file keeps the owner and group of the one it replaces, and its group-read bit unless
/// others could read it too: an edit run as root must leave a store the service can still read,
/// or the kill switch it throws would answer 503 (a refused store) instead of taking effect.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".keys-")
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let replaced = std::fs::metadata(path).ok();
        // A deliberate 640 (a group the service reads through) stays; anything open to others
        // is tightened to 600.
        let group_read = replaced.as_ref().map_or(0, |m| match m.mode() & 0o007 {
            0 => m.mode() & 0o040,
            _ => 0,
        });
        let mode = 0o600 | group_read;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some(old) = replaced {
            let new = tmp.as_file().metadata()?;
            if (new.uid(), new.gid()) != (old.uid(), old.gid()) {
                std::os::unix::fs::fchown(tmp.as_file(), Some(old.uid()), Some(old.gid()))
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!(
                                "cannot give the new file the owner {}:{} of the one it replaces ({e}): run this as that user or as root",
                                old.uid(),
                                old.gid()
                            ),
                        )
                    })?;
            }
        }
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests;
