//! What request handlers share: the trust roots and the keys in force (each swapped whole on
//! reload), the wrap settings, metrics and readiness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

use super::keys::Keys;
use super::metrics::Metrics;
use crate::cert::TrustStore;
use crate::fleet::polls::PollQueue;
use crate::keystore::KeyStore;
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
        }
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
