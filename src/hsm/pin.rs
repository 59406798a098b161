//! The user PIN: read from its file or environment variable, the file judged like the key
//! store.

use std::path::Path;

use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::HsmError;
use crate::config::PinSource;
use crate::secret_file::{self, SecretFile};

/// Reads the user PIN from its file or environment variable.
pub(super) fn read_pin(source: &PinSource) -> Result<AuthPin, String> {
    let text = match source {
        PinSource::File(path) => read_pin_file(path)?,
        PinSource::Env(var) => Zeroizing::new(std::env::var(var).map_err(|_| {
            format!("the PIN environment variable {var} (keys.pkcs11.pin_env) is not set")
        })?),
    };
    let pin = text.strip_suffix('\n').unwrap_or(&text);
    let pin = pin.strip_suffix('\r').unwrap_or(pin);
    if pin.is_empty() {
        return Err("the user PIN is empty".into());
    }
    Ok(AuthPin::from(pin.to_owned()))
}

/// Judges the PIN file's permissions as the key store's are judged: others may not read it and
/// the group may not write it (unless `allow_open`, with a warning); group-readable warns.
pub fn pin_file_verdict(path: &Path, allow_open: bool) -> Result<Option<String>, HsmError> {
    let refused = |message: String| {
        HsmError::PinFile(format!(
            "PIN file {} (keys.pkcs11.pin_file): {message}",
            path.display()
        ))
    };
    let file = SecretFile {
        path,
        kind: "PIN file",
        holds: "the PIN",
    };
    file.judge(allow_open).map_err(|e| refused(e.to_string()))
}

fn read_pin_file(path: &Path) -> Result<Zeroizing<String>, String> {
    secret_file::read(path)
        .map_err(|e| format!("PIN file {} (keys.pkcs11.pin_file): {e}", path.display()))
}
