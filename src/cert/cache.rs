//! A bounded cache of verified certificates, keyed by the SHA-256 of the header bytes. Only
//! certificates that chained to a configured root enter it and the oldest leaves first: endless
//! distinct certificates cannot grow it, and only certificates a configured root issued can
//! push entries out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::Checked;

type Key = [u8; 32];

/// Insertion-ordered, bounded map from header hash to checked certificate.
pub(super) struct CertCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Arc<Checked>>,
    order: VecDeque<Key>,
}

impl CertCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<Arc<Checked>> {
        let key: Key = key.try_into().ok()?;
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.map.get(&key).cloned()
    }

    pub(super) fn insert(&self, key: &[u8], checked: Arc<Checked>) {
        let Ok(key) = Key::try_from(key) else {
            return;
        };
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.map.insert(key, checked).is_none() {
            inner.order.push_back(key);
        }
        while inner.map.len() > self.capacity {
            match inner.order.pop_front() {
                Some(oldest) => {
                    inner.map.remove(&oldest);
                }
                None => break,
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }
}
