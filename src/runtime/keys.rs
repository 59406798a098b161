//! The key store in force, as async request handlers use it. One facade owns the policy of
//! using a backend: a token's blocking calls run off the async workers, the backend-health
//! metric follows every call that reached the backend, and wrapped keys are cached per
//! certificate and carried over a reload that leaves them valid.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::metrics::Metrics;
use crate::cache::BoundedCache;
use crate::cert::Fingerprint;
use crate::keystore::{KeyRef, KeyState, KeyStore, LookupError, Wrapped};
use crate::protocol::{InstanceName, KeyId};
use crate::wrap::{RecipientKey, WrapOptions};

/// Wrapped keys kept per key store (a few per instance is the steady state).
pub const WRAP_CACHE_ENTRIES: usize = 1024;

/// The current key store and its cache of wrapped keys.
pub struct Keys {
    current: ArcSwap<Version>,
    metrics: Arc<Metrics>,
}

/// One key store, with the keys wrapped from it.
struct Version {
    store: Arc<KeyStore>,
    /// Wrapped keys by (fingerprint of the certificate's DER, key id). OAEP output is random,
    /// but any valid ciphertext for the certificate's key is as good as another, and handing
    /// out the same one again reveals nothing new; it spares an RSA operation (or a token call)
    /// per poll. The certificate itself is verified at every request before this is consulted.
    wrapped: BoundedCache<(Fingerprint, KeyId), Arc<Wrapped>>,
}

impl Version {
    fn new(store: Arc<KeyStore>) -> Self {
        Self {
            store,
            wrapped: BoundedCache::new(WRAP_CACHE_ENTRIES),
        }
    }
}

impl Keys {
    /// Serves `store`; `metrics` gets the backend's health.
    pub fn new(store: Arc<KeyStore>, metrics: Arc<Metrics>) -> Self {
        Self {
            current: ArcSwap::from_pointee(Version::new(store)),
            metrics,
        }
    }

    /// The key store in force.
    pub fn store(&self) -> Arc<KeyStore> {
        Arc::clone(&self.current.load().store)
    }

    /// Serves `store` from the next request on.
    ///
    /// With a backend that wraps in a token, wrapped keys whose key is still there, enabled,
    /// with the same KCV, are carried into the new version with their new state: a reload that
    /// flips the hard kill switch then answers a database that has polled before (with its past
    /// `validUntil`) even while the token is down. A disabled key is never carried (404), a
    /// withheld store carries nothing (its keys answer from their state or not at all), and the
    /// file backend starts empty.
    pub fn replace(&self, store: Arc<KeyStore>) {
        let carried: HashMap<KeyRef, KeyState> = if store.blocking() && store.withheld().is_none() {
            store
                .list()
                .into_iter()
                .filter(|k| !k.disabled)
                .map(|k| ((k.instance.clone(), k.key_id), k))
                .collect()
        } else {
            HashMap::new()
        };
        self.current.rcu(|old| {
            let next = Version::new(Arc::clone(&store));
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

    /// `(instance, key_id)` wrapped for the certificate `cert` (whose public key is
    /// `recipient`), from the cache or the backend.
    pub async fn wrap_for(
        &self,
        cert: Fingerprint,
        instance: &InstanceName,
        key_id: KeyId,
        recipient: &Arc<RecipientKey>,
        options: WrapOptions,
    ) -> Result<Arc<Wrapped>, LookupError> {
        let version = self.current.load_full();
        let cached = (cert, key_id);
        if let Some(wrapped) = version.wrapped.get(&cached) {
            return Ok(wrapped);
        }
        let store = Arc::clone(&version.store);
        let wrapped = if store.blocking() {
            let (instance, recipient) = (instance.clone(), Arc::clone(recipient));
            let wrapped = tokio::task::spawn_blocking(move || {
                store.wrap_for(&instance, key_id, &recipient, options)
            })
            .await
            .unwrap_or_else(|e| Err(LookupError::Backend(format!("the wrap task failed: {e}"))));
            match &wrapped {
                Ok(_) => self.metrics.set_backend_up(true),
                Err(LookupError::Backend(_)) => self.metrics.set_backend_up(false),
                Err(_) => {}
            }
            wrapped
        } else {
            store.wrap_for(instance, key_id, recipient, options)
        };
        let wrapped = Arc::new(wrapped?);
        version.wrapped.insert(cached, Arc::clone(&wrapped));
        Ok(wrapped)
    }

    /// Whether the backend can wrap right now (a real operation for a token), recorded in the
    /// backend-health metric.
    pub async fn health(&self) -> Result<(), String> {
        let store = self.store();
        let health = if store.blocking() {
            tokio::task::spawn_blocking(move || store.health())
                .await
                .unwrap_or_else(|e| Err(format!("the health check failed: {e}")))
        } else {
            store.health()
        };
        self.metrics.set_backend_up(health.is_ok());
        health
    }
}
