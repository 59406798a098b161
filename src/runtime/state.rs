//! What request handlers share: the trust roots and the keys in force (each swapped whole on
//! reload), the wrap settings, metrics and readiness.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;

use super::keys::Keys;
use super::metrics::Metrics;
use crate::cert::TrustStore;
use crate::fleet::polls::{Answer, PollQueue, BATCH};
use crate::keystore::KeyStore;
use crate::protocol::{InstanceName, KeyId};
use crate::wrap::WrapOptions;

/// Shared by every request handler.
pub struct AppState {
    trust: ArcSwap<TrustStore>,
    pub keys: Keys,
    pub wrap: WrapOptions,
    /// How long an answer stays valid (capped by each key's `not_after`).
    pub validity: time::Duration,
    pub metrics: Arc<Metrics>,
    ready: AtomicBool,
    /// Where poll outcomes go, in a fleet (`[state] backend = "postgres"`).
    pub polls: OnceLock<Arc<PollQueue>>,
    /// The last poll outcome of each key, on a single node (the admin API's key status; a
    /// fleet keeps it in the database).
    pub last_polls: LastPolls,
    /// Why the signed API cannot apply a change on this node now (its key store's directory
    /// is not writable: a read-only configuration directory), which `/readyz` says plainly.
    pub api_blocked: Mutex<Option<String>>,
}

/// The latest poll outcome per key, for at most [`BATCH`] keys (only polls whose certificate
/// verified are recorded, so only the SaaS can add keys; beyond the bound they are not kept).
#[derive(Debug, Default)]
pub struct LastPolls(Mutex<(usize, ByKey)>);

type ByKey = HashMap<InstanceName, HashMap<KeyId, Answer>>;

impl LastPolls {
    /// Keeps `answer` as the latest of its key (a key already known allocates nothing).
    pub fn record(&self, instance: &InstanceName, key_id: KeyId, answer: Answer) {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (keys, by_instance) = &mut *last;
        if let Some(slot) = by_instance
            .get_mut(instance)
            .and_then(|k| k.get_mut(&key_id))
        {
            *slot = answer;
        } else if *keys < BATCH {
            *keys += 1;
            by_instance
                .entry(instance.clone())
                .or_default()
                .insert(key_id, answer);
        }
    }

    pub fn get(&self, instance: &InstanceName, key_id: KeyId) -> Option<Answer> {
        let last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        last.1.get(instance).and_then(|k| k.get(&key_id)).copied()
    }
}

impl AppState {
    /// A state that is not ready yet.
    pub fn new(
        trust: Arc<TrustStore>,
        keys: Arc<KeyStore>,
        wrap: WrapOptions,
        validity: time::Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            trust: ArcSwap::new(trust),
            keys: Keys::new(keys, Arc::clone(&metrics)),
            wrap,
            validity,
            metrics,
            ready: AtomicBool::new(false),
            polls: OnceLock::new(),
            last_polls: LastPolls::default(),
            api_blocked: Mutex::new(None),
        }
    }

    /// Why the signed API cannot apply a change now, if it cannot.
    pub fn api_blocked(&self) -> Option<String> {
        self.api_blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Says whether the signed API can apply a change (`None`: it can).
    pub fn set_api_blocked(&self, why: Option<String>) {
        *self.api_blocked.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// The trust roots in force.
    pub fn trust(&self) -> Arc<TrustStore> {
        self.trust.load_full()
    }

    /// Replaces the trust roots (and with them their cache of verified certificates).
    pub fn set_trust(&self, trust: Arc<TrustStore>) {
        self.trust.store(trust);
    }

    /// Replaces the key store (see [`Keys::replace`]).
    pub fn set_keys(&self, keys: Arc<KeyStore>) {
        self.keys.replace(keys);
    }

    /// Whether `/readyz` says 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Ready after start-up; not ready while draining.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        self.metrics.set_ready(ready);
    }
}
