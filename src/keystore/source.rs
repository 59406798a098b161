//! The backend the configuration chose for secrets, opened once per process and used for every
//! (re)load of the key-store file.

use std::path::Path;
use std::sync::Arc;

use super::format::read_text;
use super::{
    parse_entries, FileSecrets, KeyEntry, KeyStore, KeyStoreError, SecretsIn, TokenSecrets,
};
use crate::config::{Backend, KeysConfig};
use crate::hsm::{Hsm, HsmError};
use crate::secret_file::{SecretFile, SecretFileError};
use crate::wrap::WrapOptions;

/// Where the secrets are.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// In the key-store file.
    File,
    /// In a PKCS#11 token; the key-store file names each by its KCV.
    Token(Arc<Hsm>),
}

impl KeySource {
    /// Opens the backend `[keys]` names (for a token: loads the module, logs in, test-wraps).
    pub fn open(config: &KeysConfig, wrap: WrapOptions) -> Result<Self, HsmError> {
        match &config.backend {
            Backend::File => Ok(KeySource::File),
            Backend::Pkcs11(pkcs11) => Ok(KeySource::Token(Arc::new(Hsm::open(pkcs11, wrap)?))),
        }
    }

    /// What the key-store file holds for each key with this backend.
    pub fn secrets_in(&self) -> SecretsIn {
        match self {
            KeySource::File => SecretsIn::File,
            KeySource::Token(_) => SecretsIn::Token,
        }
    }

    /// Reads the key-store file at `path`: all of it or an error naming the file, the entry and
    /// the field. Its permissions are not judged here (see [`check_permissions`]).
    pub fn load(&self, path: &Path) -> Result<KeyStore, KeyStoreError> {
        self.parse(path, &read_text(path)?)
    }

    /// Parses key-store text; `path` only names the file in errors. With a token, every entry's
    /// object is checked in it.
    pub fn parse(&self, path: &Path, text: &str) -> Result<KeyStore, KeyStoreError> {
        self.build(path, parse_entries(path, text, self.secrets_in())?)
    }

    /// As [`load`](Self::load), for a replica of a fleet (`[state] backend = "postgres"`): the
    /// file holds secrets only, so an entry with `disabled` or `not_after` is refused (one
    /// source of truth: the database).
    pub fn load_secrets(&self, path: &Path) -> Result<KeyStore, KeyStoreError> {
        let entries = parse_entries(path, &read_text(path)?, self.secrets_in())?;
        for (i, entry) in entries.iter().enumerate() {
            let state = &entry.state;
            let field = match (state.disabled, state.not_after) {
                (true, _) => "disabled",
                (false, Some(_)) => "not_after",
                (false, None) => continue,
            };
            return Err(KeyStoreError::Entry {
                path: path.to_owned(),
                entry: i + 1,
                label: format!(" (instance {:?}, key_id {})", state.instance.as_str(), state.key_id),
                field,
                message: "with [state] backend = \"postgres\" the key's state lives in the database (one source of truth): remove it here and use `ccs-endpoint keys disable|shutdown --config …`".into(),
            });
        }
        self.build(path, entries)
    }

    /// The store of `entries` read from `path`.
    fn build(&self, path: &Path, entries: Vec<KeyEntry>) -> Result<KeyStore, KeyStoreError> {
        match self {
            KeySource::File => {
                let mut secrets = FileSecrets::default();
                let mut states = Vec::with_capacity(entries.len());
                for entry in entries {
                    // The file mode requires a secret in every entry.
                    if let Some(secret) = entry.secret {
                        secrets.insert((entry.state.instance.clone(), entry.state.key_id), secret);
                        states.push(entry.state);
                    }
                }
                Ok(KeyStore::new(states, Arc::new(secrets)))
            }
            KeySource::Token(hsm) => {
                let states: Vec<_> = entries.into_iter().map(|e| e.state).collect();
                let secrets = TokenSecrets::verify(Arc::clone(hsm), path, &states)?;
                Ok(KeyStore::new(states, Arc::new(secrets)))
            }
        }
    }
}

/// Judges the key-store file's permissions: a warning to log, or why it is refused.
pub fn check_permissions(path: &Path, allow_open: bool) -> Result<Option<String>, KeyStoreError> {
    let file = SecretFile {
        path,
        kind: "key store",
        holds: "the secrets",
    };
    file.judge(allow_open).map_err(|e| match e {
        SecretFileError::Read(source) => KeyStoreError::Read {
            path: path.to_owned(),
            source,
        },
        SecretFileError::Permissions(message) => KeyStoreError::Permissions {
            path: path.to_owned(),
            message,
        },
    })
}
