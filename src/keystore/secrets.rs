//! Where key secrets are held. A secret backend does one thing: wrap the secret of a key whose
//! state the [`KeyStore`](super::KeyStore) has already decided, for a recipient.

use std::collections::BTreeMap;
use std::fmt;

use super::{KeyRef, KeyState, LookupError};
use crate::secret::Secret;
use crate::wrap::{self, RecipientKey, WrapOptions};

/// A backend holding the secrets of keys.
pub trait Secrets: Send + Sync + 'static {
    /// The ciphertext of `key`'s secret for `recipient`. `key` is a state the store holds, so
    /// its secret is there (its KCV was checked when the store was loaded).
    fn wrap(
        &self,
        key: &KeyState,
        recipient: &RecipientKey,
        options: WrapOptions,
    ) -> Result<Vec<u8>, LookupError>;

    /// Whether `wrap` may block (a token call): callers then run it off their async workers.
    fn blocking(&self) -> bool {
        false
    }

    /// Whether the backend can wrap right now, by a real operation where it has one.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Secrets read from the key-store file (`[keys] backend = "file"`), wiped when dropped.
#[derive(Default)]
pub struct FileSecrets {
    secrets: BTreeMap<KeyRef, Secret>,
}

impl FileSecrets {
    /// Holds `secret` for `key`.
    pub fn insert(&mut self, key: KeyRef, secret: Secret) {
        self.secrets.insert(key, secret);
    }
}

impl fmt::Debug for FileSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSecrets")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Secrets for FileSecrets {
    fn wrap(
        &self,
        key: &KeyState,
        recipient: &RecipientKey,
        options: WrapOptions,
    ) -> Result<Vec<u8>, LookupError> {
        let secret = self
            .secrets
            .get(&(key.instance.clone(), key.key_id))
            .ok_or(LookupError::NotFound)?;
        Ok(wrap::wrap(secret, recipient, options)?)
    }
}
