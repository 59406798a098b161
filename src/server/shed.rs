//! What a connection is doing, and who gives way when the listener is full. Every connection
//! is tracked from accept (its TLS handshake included) to its end; when no slot is free, the
//! one doing least — no request in flight, never a request before all others, then idle
//! longest — is closed to make room, so that sockets opened to sit idle (spread over many
//! addresses to pass the per-client cap) cannot keep a poller out for longer than it takes to
//! close one of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Whether a connection is doing anything: requests in flight, how many it has sent, and
/// since when it has had none in flight.
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    requests: AtomicU64,
    idle_since: Mutex<Instant>,
}

/// A request in flight, from its complete head to its answer.
pub(crate) struct Busy(Arc<Activity>);

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: Mutex::new(Instant::now()),
        })
    }

    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(self))
    }

    fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes once the connection has gone `limit` with no request in flight.
    pub(crate) async fn idle_for(&self, limit: Duration) {
        loop {
            let deadline = if self.in_flight.load(Ordering::SeqCst) > 0 {
                Instant::now() + limit
            } else {
                self.idle_since() + limit
            };
            tokio::time::sleep_until(deadline.into()).await;
            if self.in_flight.load(Ordering::SeqCst) == 0 && self.idle_since().elapsed() >= limit {
                return;
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A tracked connection: what it does, and how it is told to close.
type Open = (Arc<Activity>, Arc<Notify>);

/// The connections of one listener, any of which may be asked to give way.
#[derive(Default)]
pub(crate) struct Shedder {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Open>>,
}

/// A connection's place in the shedder, given up when it ends.
pub(crate) struct Tracked {
    id: u64,
    shedder: Arc<Shedder>,
    /// Notified when the connection must close to make room.
    pub(crate) evicted: Arc<Notify>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut open = self.shedder.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&self.id);
    }
}

impl Shedder {
    /// Tracks a connection doing `activity` until the returned place is dropped.
    pub(crate) fn track(self: &Arc<Self>, activity: &Arc<Activity>) -> Tracked {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(Notify::new());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.insert(id, (Arc::clone(activity), Arc::clone(&evicted)));
        Tracked {
            id,
            shedder: Arc::clone(self),
            evicted,
        }
    }

    /// Asks the connection doing least to close: none with a request in flight; one that
    /// never sent a request before one that did; then the one idle longest. Whether there was
    /// one.
    pub(crate) fn evict_idlest(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let idlest = open
            .iter()
            .filter(|(_, (a, _))| a.in_flight.load(Ordering::SeqCst) == 0)
            .min_by_key(|(_, (a, _))| (a.requests.load(Ordering::SeqCst) > 0, a.idle_since()))
            .map(|(id, (_, evicted))| (*id, Arc::clone(evicted)));
        let Some((id, evicted)) = idlest else {
            return false;
        };
        // Not asked twice: it is on its way out.
        open.remove(&id);
        evicted.notify_one();
        true
    }
}
