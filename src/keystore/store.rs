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
    /// Keys the shared (fleet) state names whose secret here has another KCV, or none: refused
    /// with `KcvMismatch`, never wrapped (the detail names both KCVs).
    mismatched: BTreeMap<KeyRef, String>,
    /// Keys whose shared state is in doubt (a fleet row changed outside the audit chain), with
    /// why: served only as far as they are withdrawn (404, or a past `validUntil`), else 503.
    doubted: BTreeMap<KeyRef, String>,
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
            mismatched: BTreeMap::new(),
            doubted: BTreeMap::new(),
        }
    }

    /// The keys as the fleet's shared state has them (contract §8), served with `local`'s
    /// secrets: a shared key is wrapped only when `local` holds a secret with the KCV the
    /// shared state expects; a key `local` holds that the shared state does not name is absent
    /// (404). While `local` is withheld (its file refused), so is the result, for that reason.
    pub fn shared(shared: &[KeyState], local: &KeyStore) -> Self {
        let mine: BTreeMap<&KeyRef, &KeyState> = local.states.iter().collect();
        let mut store = Self::new(shared.iter().cloned(), Arc::clone(&local.secrets));
        for key in shared {
            let id = (key.instance.clone(), key.key_id);
            let detail = match mine.get(&id) {
                Some(own) if own.kcv == key.kcv => continue,
                Some(own) => format!(
                    "the shared state expects KCV {}, this replica's secret has KCV {}",
                    key.kcv, own.kcv
                ),
                None => format!(
                    "the shared state expects KCV {}, this replica holds no secret for the key",
                    key.kcv
                ),
            };
            store.mismatched.insert(id, detail);
        }
        match local.withheld() {
            Some(reason) => Self::withholding(&store, Withdrawals::default(), reason.to_owned()),
            None => store,
        }
    }

    /// This store with `keys` in doubt for `reason` (contract §7): each is answered only as
    /// far as its state withdraws it (404, or a `validUntil` that has passed), else 503.
    pub fn doubting<'k>(
        mut self,
        keys: impl IntoIterator<Item = &'k KeyRef>,
        reason: &str,
    ) -> Self {
        for id in keys {
            self.doubted.insert(id.clone(), reason.to_owned());
        }
        self
    }

    /// This store with `withdrawals` applied and nothing else changed, or `None` when they
    /// withdraw nothing from it: a kill read from a file that has not settled yet.
    pub fn withdrawn(&self, withdrawals: &Withdrawals) -> Option<Self> {
        let states: BTreeMap<KeyRef, KeyState> = self
            .states
            .iter()
            .filter_map(|(id, state)| Some((id.clone(), withdrawals.apply(state)?)))
            .collect();
        if states == self.states {
            return None;
        }
        Some(Self {
            states,
            secrets: Arc::clone(&self.secrets),
            withheld: self.withheld.as_ref().map(|w| Withheld {
                withdrawals: w.withdrawals.clone(),
                reason: w.reason.clone(),
            }),
            mismatched: self.mismatched.clone(),
            doubted: self.doubted.clone(),
        })
    }

    /// The keys as served while the key-store file fails to load (contract §7: doubt answers
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
            mismatched: last_good.mismatched.clone(),
            doubted: last_good.doubted.clone(),
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
            if state.disabled {
                return Err(LookupError::Disabled);
            }
            return match self.doubted.get(&id) {
                Some(reason) if state.not_after.is_none_or(|t| t > now) => {
                    Err(LookupError::Unavailable(reason.clone()))
                }
                _ => self.matching(&id, state),
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
            Some(t) if t <= now => self.matching(&id, state),
            _ => Err(unavailable()),
        }
    }

    /// `state`, unless its secret here is not the one the shared state names.
    fn matching<'a>(&self, id: &KeyRef, state: &'a KeyState) -> Result<&'a KeyState, LookupError> {
        match self.mismatched.get(id) {
            Some(detail) => Err(LookupError::KcvMismatch(detail.clone())),
            None => Ok(state),
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

    /// `(instance, key_id)`'s secret wrapped with `options` for an escrow recipient, whatever
    /// its switches (a disabled or shut-down key is escrowed too), unless its secret here is not
    /// the one the shared state names. May block like [`wrap_for`](Self::wrap_for).
    pub fn escrow(
        &self,
        instance: &InstanceName,
        key_id: KeyId,
        recipient: &RecipientKey,
        options: WrapOptions,
    ) -> Result<Wrapped, LookupError> {
        let id = (instance.clone(), key_id);
        let state = self.states.get(&id).ok_or(LookupError::NotFound)?;
        let state = self.matching(&id, state)?;
        Ok(Wrapped {
            ciphertext: self.secrets.wrap(state, recipient, options)?,
            state: state.clone(),
        })
    }

    /// Every key's state, ordered by instance and key id.
    pub fn list(&self) -> Vec<KeyState> {
        self.states.values().cloned().collect()
    }

    /// Every key's state, ordered by instance and key id, without copying.
    pub fn states(&self) -> impl Iterator<Item = &KeyState> {
        self.states.values()
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
