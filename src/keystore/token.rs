//! Secrets in a PKCS#11 token (`[keys] backend = "pkcs11"`): the key store's view of the
//! [`Hsm`] driver. Objects are found by label, `ccs/<instance>/<key_id>` ([`label`]); their
//! `CKA_ID` holds the KCV the key-store entry names, checked when the store loads.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::{KeyState, KeyStoreError, LookupError, Secrets};
use crate::hsm::{Hsm, HsmError};
use crate::protocol::{InstanceName, KeyId};
use crate::wrap::{RecipientKey, WrapOptions};

/// Every label this server uses starts with this.
pub const LABEL_PREFIX: &str = "ccs/";

/// The label of the token object holding `(instance, key_id)`.
pub fn label(instance: &InstanceName, key_id: KeyId) -> String {
    format!("{LABEL_PREFIX}{instance}/{key_id}")
}

/// Secrets held by a token, which wraps them itself: the server never sees them.
pub struct TokenSecrets {
    hsm: Arc<Hsm>,
}

impl fmt::Debug for TokenSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSecrets")
            .field("hsm", &self.hsm)
            .finish()
    }
}

impl TokenSecrets {
    /// Checks the token object of every key in `keys` (see [`Hsm::check_object`]; each label and
    /// KCV once for the life of the process, so a reload that only flips a kill switch never
    /// waits on the token). `path` names the key-store file in errors.
    pub fn verify(hsm: Arc<Hsm>, path: &Path, keys: &[KeyState]) -> Result<Self, KeyStoreError> {
        for (index, state) in keys.iter().enumerate() {
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
        }
        Ok(Self { hsm })
    }
}

impl Secrets for TokenSecrets {
    fn wrap(
        &self,
        key: &KeyState,
        recipient: &RecipientKey,
        options: WrapOptions,
    ) -> Result<Vec<u8>, LookupError> {
        // The plaintext form is the object's own (checked when the store was loaded); the
        // padding is the caller's, proved by the start-up test wrap (`Hsm::open`).
        self.hsm
            .wrap(
                &label(&key.instance, key.key_id),
                key.kcv,
                recipient.rsa_public(),
                options.padding,
            )
            .map_err(|e| LookupError::Backend(e.to_string()))
    }

    fn blocking(&self) -> bool {
        true
    }

    fn health(&self) -> Result<(), String> {
        self.hsm.health().map_err(|e| e.to_string())
    }
}
