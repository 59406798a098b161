//! The PKCS#11 key store: state from the key-store file, secrets in the token.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{label, Hsm, HsmError};
use crate::keystore::{
    parse_entries, KeyState, KeyStore, KeyStoreError, LookupError, SecretsIn, Wrapped,
};
use crate::protocol::{InstanceName, KeyId};
use crate::wrap::{RecipientKey, WrapOptions};

/// Keys whose state is in the key-store file and whose secrets are in the token.
pub struct TokenKeyStore {
    path: PathBuf,
    hsm: Arc<Hsm>,
    keys: BTreeMap<(InstanceName, KeyId), KeyState>,
}

impl fmt::Debug for TokenKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeyStore")
            .field("path", &self.path)
            .field("hsm", &self.hsm)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl TokenKeyStore {
    /// Reads the key-store file and checks each entry's token object (see [`Hsm::check_object`]).
    /// An object is checked once per label and KCV for the life of the process, so a reload that
    /// only flips a kill switch never waits on the token.
    pub fn load(path: &Path, hsm: Arc<Hsm>) -> Result<Self, KeyStoreError> {
        let text = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|source| KeyStoreError::Read {
                path: path.to_owned(),
                source,
            })?;
        let entries = parse_entries(path, &text, SecretsIn::Token)?;
        let mut keys = BTreeMap::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let state = entry.state;
            let label = label(&state.instance, state.key_id);
            hsm.verify_object(&label, state.kcv).map_err(|e| {
                let hint = match e {
                    HsmError::NoObject(_) => format!(
                        "; import it with `ccs-endpoint keys import --instance {} --key-id {}`",
                        state.instance, state.key_id
                    ),
                    _ => String::new(),
                };
                let token = match e {
                    HsmError::NoObject(_) | HsmError::Object { .. } => {
                        format!("{}: ", hsm.token_name())
                    }
                    _ => String::new(),
                };
                KeyStoreError::Token {
                    path: path.to_owned(),
                    message: format!(
                        "entry {} (instance {:?}, key_id {}): {token}{e}{hint}",
                        index + 1,
                        state.instance.as_str(),
                        state.key_id,
                    ),
                }
            })?;
            keys.insert((state.instance.clone(), state.key_id), state);
        }
        Ok(Self {
            path: path.to_owned(),
            hsm,
            keys,
        })
    }
}

impl KeyStore for TokenKeyStore {
    fn wrap_for(
        &self,
        instance: &InstanceName,
        key_id: KeyId,
        recipient: &RecipientKey,
        options: WrapOptions,
    ) -> Result<Wrapped, LookupError> {
        let state = self
            .keys
            .get(&(instance.clone(), key_id))
            .ok_or(LookupError::NotFound)?;
        if state.disabled {
            return Err(LookupError::Disabled);
        }
        // The plaintext form is the object's own (checked when the store was loaded); the
        // padding is the caller's, proved by the start-up test wrap (`Hsm::open`).
        let ciphertext = self
            .hsm
            .wrap(
                &label(instance, key_id),
                state.kcv,
                recipient.rsa_public(),
                options.padding,
            )
            .map_err(|e| LookupError::Backend(e.to_string()))?;
        Ok(Wrapped {
            ciphertext,
            state: state.clone(),
        })
    }

    fn list(&self) -> Vec<KeyState> {
        self.keys.values().cloned().collect()
    }

    fn blocking(&self) -> bool {
        true
    }

    fn health(&self) -> Result<(), String> {
        self.hsm.health().map_err(|e| e.to_string())
    }
}
