//! A key store: the state of every key, and the backend holding their secrets. Its one lookup
//! decides what each request gets, whatever the backend.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use super::withheld::Withdrawals;
use super::{KeyRef, KeyState, LookupError, Secrets, Wrapped};
use crate::protocol::{InstanceName, KeyId};
use crate::wrap::{RecipientKey, WrapOptions};

/// The keys one version of the key-store file describes, with their secrets' backend.
pub struct KeyStore {
    states: BTreeMap<KeyRef, KeyState>,
    secrets: Arc<dyn Secrets>,
    /// Set when the key-store file failed to load: the states are the last good ones with the
    /// refused file's readable withdrawals applied, and every key not withdrawn is in doubt.
    withheld: Option<Withheld>,
}

/// Why, and what else is withdrawn, while keys are withheld.
struct Withheld {
    withdrawals: Withdrawals,
    /// Why the file was refused (names the file, entry and field; never a secret).
    reason: String,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.states.len())
            .field("withheld", &self.withheld().is_some())
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// The keys `states`, whose secrets `secrets` holds.
    pub fn new(states: impl IntoIterator<Item = KeyState>, secrets: Arc<dyn Secrets>) -> Self {
        Self {
            states: states
                .into_iter()
                .map(|k| ((k.instance.clone(), k.key_id), k))
                .collect(),
            secrets,
            withheld: None,
        }
    }

    /// The keys as served while the key-store file fails to load (PRODUCT.md §7: doubt answers
    /// 503, never 404, never a stale 200). What can be read of the refused file's
    /// `withdrawals` — a `disabled` flag however it was typed, a `not_after`, an entry removed —
    /// applies at once; `last_good`'s own withdrawals stay; every other key answers 503
    /// (`reason`) until a good file loads.
    pub fn withholding(last_good: &KeyStore, withdrawals: Withdrawals, reason: String) -> Self {
        let states = last_good
            .states
            .iter()
            .filter_map(|(id, state)| Some((id.clone(), withdrawals.apply(state)?)))
            .collect();
        Self {
            states,
            secrets: Arc::clone(&last_good.secrets),
            withheld: Some(Withheld {
                withdrawals,
                reason,
            }),
        }
    }

    /// The state a request for `(instance, key_id)` is answered from: absent or disabled is
    /// `NotFound`/`Disabled` (404); while withheld, only a withdrawal is answered (404, or 200
    /// with a past `validUntil`) and anything else is `Unavailable` (503).
    pub fn lookup(
        &self,
        instance: &InstanceName,
        key_id: KeyId,
        now: OffsetDateTime,
    ) -> Result<&KeyState, LookupError> {
        let id = (instance.clone(), key_id);
        let Some(withheld) = &self.withheld else {
            let state = self.states.get(&id).ok_or(LookupError::NotFound)?;
            return match state.disabled {
                true => Err(LookupError::Disabled),
                false => Ok(state),
            };
        };
        let unavailable = || LookupError::Unavailable(withheld.reason.clone());
        if withheld.withdrawals.disables(&id) {
            return Err(LookupError::Disabled);
        }
        if withheld.withdrawals.removed(&id) {
            return Err(LookupError::NotFound);
        }
        // A key the last good store did not have: whether the refused file adds it is unknown.
        let state = self.states.get(&id).ok_or_else(unavailable)?;
        if state.disabled {
            return Err(LookupError::Disabled);
        }
        // Only the hard kill switch is answered: a `validUntil` that has passed.
        match state.not_after {
            Some(t) if t <= now => Ok(state),
            _ => Err(unavailable()),
        }
    }

    /// Wraps `(instance, key_id)` for `recipient`, as [`lookup`](Self::lookup) allows, with the
    /// state it was wrapped in. May block when the backend does (see [`KeyStore::blocking`]).
    pub fn wrap_for(
        &self,
        instance: &InstanceName,
        key_id: KeyId,
        recipient: &RecipientKey,
        options: WrapOptions,
    ) -> Result<Wrapped, LookupError> {
        let state = self.lookup(instance, key_id, OffsetDateTime::now_utc())?;
        Ok(Wrapped {
            ciphertext: self.secrets.wrap(state, recipient, options)?,
            state: state.clone(),
        })
    }

    /// Every key's state, ordered by instance and key id.
    pub fn list(&self) -> Vec<KeyState> {
        self.states.values().cloned().collect()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Why keys are withheld (answer 503), when the key-store file failed to load.
    pub fn withheld(&self) -> Option<&str> {
        self.withheld.as_ref().map(|w| w.reason.as_str())
    }

    /// Whether wrapping may block (a token call).
    pub fn blocking(&self) -> bool {
        self.secrets.blocking()
    }

    /// Whether the secrets' backend can wrap right now (a real operation for a token).
    pub fn health(&self) -> Result<(), String> {
        self.secrets.health()
    }
}
