//! What the `keys` commands show: each key's state and the `validUntil` the server would answer
//! now, by the server's own rules, and with a token what it holds under each label.

use std::fmt::Write as _;
use std::path::Path;

use time::OffsetDateTime;

use crate::hsm::TokenObject;
use crate::keystore::{label, Condition, KeyState};
use crate::protocol::format_timestamp;

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
