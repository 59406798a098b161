//! What the `keys` commands do beyond editing the file: a key created in a token with its entry,
//! and what they show — each key's state and the `validUntil` the server would answer now, by
//! the server's own rules, and with a token what it holds under each label.

use std::fmt::Write as _;
use std::path::Path;

use time::OffsetDateTime;

use crate::hsm::{Hsm, HsmError, TokenObject};
use crate::keystore::{label, Condition, KeyState, SecretsIn};
use crate::protocol::{format_timestamp, InstanceName, KeyId};
use crate::secret::Secret;
use crate::tools::keyfile::{KeyFile, KeyFileError};

/// What the token holds under the keys' labels: every `ccs/` object, or why it could not be
/// read. `None` when the secrets are in the file.
pub type TokenView = Option<Result<Vec<TokenObject>, String>>;

/// A key's state as `keys list` shows it.
pub fn state(key: &KeyState, now: OffsetDateTime) -> String {
    match key.condition(now) {
        Condition::Disabled => "disabled (404)".into(),
        Condition::ShutDown(t) => format!("expired at {} (shut down)", format_timestamp(t)),
        Condition::Active { until: Some(t) } => format!("active until {}", format_timestamp(t)),
        Condition::Active { until: None } => "active".into(),
    }
}

/// The `validUntil` the server would answer now for `key` (a disabled key answers 404).
pub fn valid_until(key: &KeyState, now: OffsetDateTime, validity: time::Duration) -> String {
    if key.disabled {
        return "- (404)".into();
    }
    key.valid_until(now, validity)
        .map_or_else(|| "-".into(), format_timestamp)
}

/// What the token holds under `key`'s label, as a column of `keys list`.
fn token_column(key: &KeyState, token: &TokenView) -> String {
    let Some(objects) = token else {
        return String::new();
    };
    let Ok(objects) = objects else {
        return "  token: unreadable".into();
    };
    let label = label(&key.instance, key.key_id);
    match objects.iter().find(|o| o.label == label) {
        None => format!("  token: MISSING {label}"),
        Some(o) if !o.sensitive => format!("  token: {label} NOT SENSITIVE"),
        Some(o) if o.kcv.as_deref() != Some(key.kcv.to_string().as_str()) => format!(
            "  token: {label} holds kcv {}",
            o.kcv.as_deref().unwrap_or("(none)")
        ),
        Some(_) => format!("  token: {label} (sensitive)"),
    }
}

/// What `keys list --json` prints: per key its state (as `check --json` shows it), the
/// `validUntil` the server would answer now (`null` for a disabled key, which answers 404), and
/// with a token what the token holds under its label.
pub fn listing_json(
    keys: &[KeyState],
    token: &TokenView,
    now: OffsetDateTime,
    validity: time::Duration,
) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = keys
        .iter()
        .map(|key| {
            let mut row = crate::runtime::key_json(key, now);
            row["valid_until"] = match key.disabled {
                true => serde_json::Value::Null,
                false => key.valid_until(now, validity).map(format_timestamp).into(),
            };
            if let Some(view) = token {
                let label = label(&key.instance, key.key_id);
                row["token"] = match view {
                    Err(why) => serde_json::json!({"label": label, "error": why}),
                    Ok(objects) => match objects.iter().find(|o| o.label == label) {
                        None => serde_json::json!({"label": label, "present": false}),
                        Some(o) => serde_json::json!({
                            "label": label,
                            "present": true,
                            "sensitive": o.sensitive,
                            "kcv": o.kcv,
                        }),
                    },
                };
            }
            row
        })
        .collect();
    serde_json::Value::Array(rows)
}

/// The table `keys list` prints for the keys of the file at `path`, then the token objects no
/// entry names.
pub fn listing(
    path: &Path,
    keys: &[KeyState],
    token: &TokenView,
    now: OffsetDateTime,
    validity: time::Duration,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>6}  {:<6}  {:<44}  valid until (answered now)",
        "instance", "key_id", "kcv", "state"
    );
    for key in keys {
        let _ = writeln!(
            out,
            "{:<20} {:>6}  {}  {:<44}  {}{}",
            key.instance.as_str(),
            key.key_id,
            key.kcv,
            state(key, now),
            valid_until(key, now, validity),
            token_column(key, token)
        );
    }
    let _ = writeln!(out, "{} key(s) in {}", keys.len(), path.display());
    if let Some(Ok(objects)) = token {
        for object in objects {
            if !keys
                .iter()
                .any(|k| label(&k.instance, k.key_id) == object.label)
            {
                let _ = writeln!(
                    out,
                    "in the token but in no entry (not served): {} kcv {}",
                    object.label,
                    object.kcv.as_deref().unwrap_or("(none)")
                );
            }
        }
    }
    out
}

/// Why a key could not be added to a token and its key-store file.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error(transparent)]
    File(#[from] KeyFileError),
    #[error(transparent)]
    Token(#[from] HsmError),
}

/// What `add_to_token` did: the object it replaced, and the key store's states after it.
pub struct Added {
    pub replaced: Option<TokenObject>,
    pub states: Vec<KeyState>,
}

/// `keys generate|import` with a token: the object first (an existing entry or object is
/// replaced only with `force`: replacing a live key makes the database's data unreadable), then
/// the entry that names its KCV.
pub fn add_to_token(
    hsm: &Hsm,
    path: &Path,
    instance: &InstanceName,
    key_id: KeyId,
    secret: &Secret,
    force: bool,
) -> Result<Added, AddError> {
    let mut file = KeyFile::open_with(path, SecretsIn::Token)?;
    if file.contains(instance, key_id)? && !force {
        return Err(KeyFileError::Edit {
            path: path.to_owned(),
            message: format!(
                "instance {instance:?} already has key_id {key_id}: replacing a live key makes the database's data unreadable; pass --force --confirm-kcv <its KCV> (`keys list`) if that is really meant"
            ),
        }
        .into());
    }
    let replaced = hsm.create(&label(instance, key_id), secret, force)?;
    file.add_token_key(instance, key_id, secret.kcv(), force)?;
    let states = file.save()?;
    Ok(Added { replaced, states })
}
