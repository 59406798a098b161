//! What request handlers share: the swappable snapshot of trust roots and keys, the wrap
//! settings, the client policy, metrics and readiness.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::cache::BoundedCache;
use crate::cert::TrustStore;
use crate::keystore::{KeyState, KeyStore, Wrapped};
use crate::protocol::{InstanceName, KeyId};
use crate::runtime::metrics::Metrics;
use crate::server::peer::PeerPolicy;
use crate::wrap::WrapOptions;

/// Wrapped keys kept per snapshot (a few per instance is the steady state).
pub const WRAP_CACHE_ENTRIES: usize = 1024;

/// The trust roots and keys one request is answered with, replaced whole on reload.
pub struct Snapshot {
    pub trust: Arc<TrustStore>,
    pub keys: Arc<dyn KeyStore>,
    /// Wrapped keys by (SHA-256 of the certificate, key id). OAEP output is random, but any
    /// valid ciphertext for the certificate's key is as good as another, and handing out the
    /// same one again reveals nothing new; it spares an RSA operation (or an HSM call) per poll.
    /// Being part of the snapshot, it is emptied by every reload of the roots, and of the keys
    /// unless the backend is a token (see `AppState::set_keys`).
    pub wrapped: BoundedCache<(String, KeyId), Arc<Wrapped>>,
}

impl Snapshot {
    /// A snapshot with empty caches.
    pub fn new(trust: Arc<TrustStore>, keys: Arc<dyn KeyStore>) -> Self {
        Self {
            trust,
            keys,
            wrapped: BoundedCache::new(WRAP_CACHE_ENTRIES),
        }
    }
}

/// Shared by every request handler.
pub struct AppState {
    pub snapshot: ArcSwap<Snapshot>,
    pub wrap: WrapOptions,
    /// How long an answer stays valid (capped by each key's `not_after`).
    pub validity: time::Duration,
    pub policy: PeerPolicy,
    pub metrics: Arc<Metrics>,
    ready: AtomicBool,
}

impl AppState {
    /// A state that is not ready yet.
    pub fn new(
        trust: Arc<TrustStore>,
        keys: Arc<dyn KeyStore>,
        wrap: WrapOptions,
        validity: time::Duration,
        policy: PeerPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(Snapshot::new(trust, keys)),
            wrap,
            validity,
            policy,
            metrics,
            ready: AtomicBool::new(false),
        }
    }

    /// Replaces the key store, keeping the trust roots.
    ///
    /// With a backend that wraps in a token, wrapped keys whose key is still there, enabled,
    /// with the same KCV, are carried into the new snapshot with their new state: a reload that
    /// flips the hard kill switch then answers a database that has polled before (with its past
    /// `validUntil`) even while the token is down. A disabled key is never carried (404), and the
    /// file backend starts empty as before.
    pub fn set_keys(&self, keys: Arc<dyn KeyStore>) {
        // A withheld store carries nothing: its keys answer from their state or not at all.
        let carried: HashMap<(InstanceName, KeyId), KeyState> =
            if keys.blocking() && keys.withheld().is_none() {
                keys.list()
                    .into_iter()
                    .filter(|k| !k.disabled)
                    .map(|k| ((k.instance.clone(), k.key_id), k))
                    .collect()
            } else {
                HashMap::new()
            };
        self.snapshot.rcu(|old| {
            let next = Snapshot::new(Arc::clone(&old.trust), Arc::clone(&keys));
            for (cert_key, wrapped) in old.wrapped.entries() {
                let id = (wrapped.state.instance.clone(), wrapped.state.key_id);
                if let Some(state) = carried.get(&id).filter(|s| s.kcv == wrapped.state.kcv) {
                    next.wrapped.insert(
                        cert_key,
                        Arc::new(Wrapped {
                            ciphertext: wrapped.ciphertext.clone(),
                            state: state.clone(),
                        }),
                    );
                }
            }
            next
        });
    }

    /// Replaces the trust roots, keeping the keys.
    pub fn set_trust(&self, trust: Arc<TrustStore>) {
        self.snapshot
            .rcu(|old| Snapshot::new(Arc::clone(&trust), Arc::clone(&old.keys)));
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
