//! The one-time `nonce` of signed requests: remembered while the request's `created` is within
//! the clock-skew window (after it, the request is refused as stale anyway), bounded in size.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Refusal;

/// Nonces seen, per key id, with the time they may be forgotten.
#[derive(Debug)]
pub struct NonceCache {
    seen: Mutex<HashMap<(String, String), i64>>,
    capacity: usize,
}

impl NonceCache {
    /// Remembers at most `capacity` nonces at once.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Takes `nonce` of `keyid` for a request `created` at that time, or refuses a replay. Call
    /// it only once the signature verified, so that only signers can fill the cache.
    pub fn take(
        &self,
        keyid: &str,
        nonce: &str,
        created: i64,
        now: i64,
        skew: i64,
    ) -> Result<(), Refusal> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let key = (keyid.to_owned(), nonce.to_owned());
        if seen.get(&key).is_some_and(|&until| until >= now) {
            return Err(Refusal::Replayed(nonce.to_owned()));
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= self.capacity {
                return Err(Refusal::ReplayCacheFull);
            }
        }
        // A request created at `created` is accepted until `created + skew`.
        seen.insert(key, created.saturating_add(skew));
        Ok(())
    }
}
