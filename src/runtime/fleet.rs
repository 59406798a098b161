//! A replica of a fleet (`[state] backend = "postgres"`, contract §8): the follower reads the
//! shared states, and the applier here decides what is served from them and this replica's own
//! secrets — and, by the clock alone, when a state not confirmed for `max_staleness` stops being
//! served (§7: 503 for keys, `/readyz` 503, recovery without a restart). Polls never wait on the
//! database: they read the applied store, and their outcomes are queued for the follower.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::audit::{audit_key_changes, record_key_states};
use super::state::AppState;
use crate::config::PostgresConfig;
use crate::fleet::db::Target;
use crate::fleet::follow::{Confirmed, Follower, Links};
use crate::fleet::polls::{self, PollQueue};
use crate::fleet::FleetError;
use crate::keystore::{KeyStore, Withdrawals};

/// Why a key whose row was changed outside the audit chain answers 503.
const UNAUDITED: &str = "the key's row in the fleet database is not the state of its last audited change (changed outside the audit chain): it is served again once a change through the trigger records its state";

/// Why keys are withheld before the first snapshot.
const NOT_YET: &str = "the fleet's shared key state has not been read from the database yet";

/// The fleet side of a replica, before it runs.
pub struct Fleet {
    follower: Follower,
    /// The connection the audit chain is verified on (apart from the follower's).
    chain: Target,
    max_staleness: Duration,
    local: watch::Sender<Arc<KeyStore>>,
    pub polls: Arc<PollQueue>,
}

impl Fleet {
    /// Prepares to follow the database `pg` names, serving `local`'s secrets. Fails when the
    /// database URL or CA cannot be read (a start-up error), not when the database is down.
    pub fn new(pg: &PostgresConfig, local: Arc<KeyStore>) -> Result<Self, FleetError> {
        let target = Target::new(pg, &format!("ccs-endpoint {}", pg.replica))?;
        let (queue, batch) = polls::queue();
        Ok(Self {
            chain: target.clone(),
            follower: Follower {
                target,
                replica: pg.replica.clone(),
                max_staleness: pg.max_staleness,
                started: OffsetDateTime::now_utc(),
                polls: Arc::new(batch),
            },
            max_staleness: pg.max_staleness,
            local: watch::Sender::new(local),
            polls: Arc::new(queue),
        })
    }

    /// What a replica serves before its first snapshot: 503 for every key.
    pub fn initial(local: &KeyStore) -> Arc<KeyStore> {
        let none = KeyStore::shared(&[], local);
        Arc::new(KeyStore::withholding(
            &none,
            Withdrawals::default(),
            NOT_YET.into(),
        ))
    }

    /// Where key-store reloads send this replica's secrets.
    pub fn local(&self) -> watch::Sender<Arc<KeyStore>> {
        self.local.clone()
    }

    /// Follows and applies until `stop`; the handle ends once the replica is marked stopped.
    pub fn start(self, state: Arc<AppState>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let gauges = Arc::clone(&state.metrics.fleet);
        gauges.enable(Arc::clone(&self.polls));
        let (confirmed, confirmed_rx) = watch::channel(None);
        let (applied, applied_rx) = watch::channel(-1);
        tokio::spawn(super::fleet_chain::watch_chain(
            self.chain,
            Arc::clone(&state.metrics),
            stop.clone(),
        ));
        let links = Links {
            confirmed,
            applied: applied_rx,
            connected: Box::new(move |up| gauges.set_up(up)),
            stop,
        };
        tokio::spawn(apply(
            state,
            self.local.subscribe(),
            confirmed_rx,
            applied,
            self.max_staleness,
        ));
        tokio::spawn(self.follower.run(links))
    }
}

/// What is being served: a new one is swapped in only when this changes (a swap empties the
/// wrap cache).
#[derive(PartialEq, Eq, Clone, Copy)]
struct Served {
    revision: Option<i64>,
    /// The snapshot's address: rows changed without a new revision are a new snapshot.
    snapshot: usize,
    stale: bool,
    /// The local store's address: a reload of the key-store file sends a new one.
    local: usize,
}

/// Serves the latest snapshot with the latest local secrets, or withholds them once the
/// snapshot is older than `max_staleness`; reports each revision applied.
async fn apply(
    state: Arc<AppState>,
    mut local: watch::Receiver<Arc<KeyStore>>,
    mut confirmed: watch::Receiver<Option<Confirmed>>,
    applied: watch::Sender<i64>,
    max_staleness: Duration,
) {
    let mut served: Option<Served> = None;
    loop {
        let secrets = Arc::clone(&local.borrow_and_update());
        let latest = confirmed.borrow_and_update().clone();
        let now = Instant::now();
        let deadline = latest.as_ref().map(|c| c.at + max_staleness);
        let stale = deadline.is_none_or(|d| now >= d);
        let next = Served {
            revision: latest.as_ref().map(|c| c.snapshot.revision),
            snapshot: latest
                .as_ref()
                .map_or(0, |c| Arc::as_ptr(&c.snapshot) as usize),
            stale,
            local: Arc::as_ptr(&secrets) as usize,
        };
        let gauges = &state.metrics.fleet;
        gauges.served(
            next.revision.unwrap_or(-1),
            latest.as_ref().map(|c| c.at),
            stale,
        );
        if served != Some(next) {
            let shared = latest
                .as_ref()
                .map_or(&[][..], |c| c.snapshot.keys.as_slice());
            let store = KeyStore::shared(shared, &secrets);
            let unaudited = latest
                .as_ref()
                .map_or(&[][..], |c| c.snapshot.unaudited.as_slice());
            let store = if unaudited.is_empty() {
                store
            } else {
                let keys: Vec<String> = unaudited.iter().map(|(i, k)| format!("{i}/{k}")).collect();
                tracing::error!(target: "ccs_endpoint::audit", event = "state_unaudited", keys = %keys.join(" "), "fleet state: key rows differ from their last audited change (changed outside the audit chain): those keys answer 503 unless their row withdraws them; run `audit verify` and look for changes made around the trigger");
                store.doubting(unaudited, UNAUDITED)
            };
            let store = match (&latest, stale) {
                (None, _) => Arc::new(KeyStore::withholding(
                    &store,
                    Withdrawals::default(),
                    NOT_YET.into(),
                )),
                (Some(c), true) => {
                    let reason = format!(
                        "the fleet's shared key state was last confirmed {:.1}s ago, longer than max_staleness ({}s): the database cannot be reached",
                        c.at.elapsed().as_secs_f64(),
                        max_staleness.as_secs_f64()
                    );
                    tracing::error!(target: "ccs_endpoint::audit", event = "state_stale", revision = c.snapshot.revision, %reason, "fleet state: keys answer 503 until the state is confirmed again");
                    Arc::new(KeyStore::withholding(
                        &store,
                        Withdrawals::default(),
                        reason,
                    ))
                }
                (Some(c), false) => {
                    if served.is_some_and(|s| s.stale) {
                        tracing::info!(target: "ccs_endpoint::audit", event = "state_confirmed", revision = c.snapshot.revision, "fleet state: confirmed again, keys are served");
                    }
                    Arc::new(store)
                }
            };
            // The first snapshot is where the replica starts, not a change.
            if served.is_some_and(|s| s.revision.is_some()) {
                audit_key_changes(&state.keys.store().list(), &store.list());
            }
            record_key_states(&state.metrics, store.states());
            if let Some((seq, hash)) = latest.as_ref().and_then(|c| c.snapshot.head.as_ref()) {
                state.metrics.audit_head_seen(*seq, hash);
            }
            state.set_keys(store);
            served = Some(next);
            if let (Some(revision), false) = (next.revision, stale) {
                applied.send_replace(revision);
            }
        }
        tokio::select! {
            changed = local.changed() => if changed.is_err() { return },
            changed = confirmed.changed() => if changed.is_err() { return },
            _ = sleep_until(deadline.filter(|_| !stale)) => {}
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
