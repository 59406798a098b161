//! Key stores: which keys exist, what state each is in, and wrapping them.
//!
//! A key has two things, kept apart here: its **state** — enabled or disabled, `not_after`, the
//! KCV of its secret — read from the key-store file (`format`); and its **secret**, held in the
//! file or in a PKCS#11 token ([`Secrets`]), which can only be asked to wrap. A [`KeyStore`]
//! pairs them, and its one lookup decides every answer's state (absent or disabled: 404; in
//! doubt after a failed reload: 503, see `withheld`). [`KeySource`] is the backend the
//! configuration chose.

use time::OffsetDateTime;

use crate::protocol::{InstanceName, KeyId};
use crate::secret::Kcv;
use crate::wrap;

mod format;
mod secrets;
mod source;
mod store;
mod token;
mod withheld;

pub use format::{parse_entries, parse_time, read_entries, KeyEntry, KeyStoreError, SecretsIn};
pub use secrets::{FileSecrets, Secrets};
pub use source::{check_permissions, KeySource};
pub use store::KeyStore;
pub use token::{label, TokenSecrets, LABEL_PREFIX};
pub use withheld::Withdrawals;

/// A key as the SaaS names it: instance and key id.
pub type KeyRef = (InstanceName, KeyId);

/// What a store knows about a key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub instance: InstanceName,
    pub key_id: KeyId,
    /// The soft kill switch: a disabled key answers 404.
    pub disabled: bool,
    /// The hard kill switch: `validUntil` is never later than this, even when it has passed.
    pub not_after: Option<OffsetDateTime>,
    /// Whether `not_after` is a lease (set by `renew`, or by an un-kill `until`), which `renew`
    /// may move forward; otherwise it is a shutdown, scheduled or past, which only `enable`
    /// (with its quorum) undoes (contract §9). Meaningless without `not_after`.
    pub lease: bool,
    pub kcv: Kcv,
}

/// Where a key stands at a given moment: the two kill switches, or active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Answers 200; `until` is its `not_after`, if any.
    Active { until: Option<OffsetDateTime> },
    /// The soft kill switch: answers 404.
    Disabled,
    /// The hard kill switch: `not_after` has passed; answers 200 with that past `validUntil`.
    ShutDown(OffsetDateTime),
}

impl Condition {
    /// Its one public name, in every output: `active`, `disabled`, `shut_down`.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Active { .. } => "active",
            Condition::Disabled => "disabled",
            Condition::ShutDown(_) => "shut_down",
        }
    }
}

impl KeyState {
    /// The key's condition at `now`.
    pub fn condition(&self, now: OffsetDateTime) -> Condition {
        match self.not_after {
            _ if self.disabled => Condition::Disabled,
            Some(t) if t <= now => Condition::ShutDown(t),
            until => Condition::Active { until },
        }
    }

    /// The `validUntil` the server answers at `now`: `now + validity`, never later than
    /// `not_after` (even a past one). `None` only if the sum leaves the calendar.
    pub fn valid_until(
        &self,
        now: OffsetDateTime,
        validity: time::Duration,
    ) -> Option<OffsetDateTime> {
        let horizon = now.checked_add(validity)?;
        Some(self.not_after.map_or(horizon, |t| t.min(horizon)))
    }
}

/// A wrapped key and the state it was wrapped in (read in the same step, so a reload in
/// between cannot pair one key's ciphertext with another's state).
#[derive(Debug)]
pub struct Wrapped {
    pub ciphertext: Vec<u8>,
    pub state: KeyState,
}

/// Why a store could not hand out a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no key is configured for this instance and key id")]
    NotFound,
    #[error("the key is disabled")]
    Disabled,
    #[error(transparent)]
    Wrap(#[from] wrap::WrapError),
    /// The backend (a PKCS#11 token) failed; the detail goes to the log only.
    #[error("key backend: {0}")]
    Backend(String),
    /// The fleet's shared state names a secret with another KCV than this replica holds (the
    /// detail names both; KCVs are not secret). Never answered with another key.
    #[error("the key's secret here is not the one the shared state names: {0}")]
    KcvMismatch(String),
    /// The key's current state cannot be known: the key store failed to load (the reason).
    #[error("key state unknown: {0}")]
    Unavailable(String),
}

/// One warning per secret that seems to serve more than one instance (two entries with one
/// KCV, a 24-bit check value: the same secret, barring a 1-in-16-million coincidence). One
/// database's key would then open another's data.
pub fn shared_secrets(keys: &[KeyState]) -> Vec<String> {
    let mut by_kcv: std::collections::BTreeMap<Kcv, Vec<&KeyState>> = Default::default();
    for key in keys {
        by_kcv.entry(key.kcv).or_default().push(key);
    }
    by_kcv
        .into_iter()
        .filter(|(_, keys)| {
            keys.iter()
                .any(|k| k.instance != keys[0].instance)
        })
        .map(|(kcv, keys)| {
            let named: Vec<String> = keys
                .iter()
                .map(|k| format!("{} key_id {}", k.instance, k.key_id))
                .collect();
            format!(
                "{} hold keys with the same KCV {kcv}: probably one secret under several instances, so one database's key opens another's data; give each instance its own key",
                named.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
