//! The fleet state's metrics, exported only when `[state] backend = "postgres"`: whether the
//! database is reachable, the revision applied, the age of the confirmed state (computed at
//! scrape, so it grows even while nothing else runs), whether keys are withheld for it, and
//! the poll outcomes that could not be queued.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::fleet::polls::PollQueue;

/// What the follower and the applier report; read at scrape.
#[derive(Debug, Default)]
pub struct FleetGauges {
    enabled: AtomicBool,
    up: AtomicBool,
    stale: AtomicBool,
    revision: AtomicI64,
    /// Milliseconds from `epoch` to the last confirmation; negative: never confirmed.
    confirmed_ms: AtomicI64,
    epoch: OnceLock<Instant>,
    polls: OnceLock<Arc<PollQueue>>,
}

impl FleetGauges {
    /// Exports the fleet metrics from now on; `polls` counts its drops.
    pub fn enable(&self, polls: Arc<PollQueue>) {
        let _ = self.epoch.set(Instant::now());
        let _ = self.polls.set(polls);
        self.confirmed_ms.store(-1, Ordering::SeqCst);
        self.enabled.store(true, Ordering::SeqCst);
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// The state served: its revision, when it was last confirmed, whether it is withheld.
    pub fn served(&self, revision: i64, confirmed: Option<Instant>, stale: bool) {
        self.revision.store(revision, Ordering::SeqCst);
        self.stale.store(stale, Ordering::SeqCst);
        if let (Some(at), Some(epoch)) = (confirmed, self.epoch.get()) {
            let ms = at.saturating_duration_since(*epoch).as_millis();
            self.confirmed_ms
                .store(i64::try_from(ms).unwrap_or(i64::MAX), Ordering::SeqCst);
        }
    }

    /// Seconds since the state was last confirmed (`None`: never).
    fn age_seconds(&self) -> Option<f64> {
        let epoch = self.epoch.get()?;
        let ms = u64::try_from(self.confirmed_ms.load(Ordering::SeqCst)).ok()?;
        let confirmed = *epoch + std::time::Duration::from_millis(ms);
        Some(confirmed.elapsed().as_secs_f64())
    }
}

/// Encodes [`FleetGauges`] at scrape.
#[derive(Debug)]
pub struct FleetCollector(pub Arc<FleetGauges>);

impl Collector for FleetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let g = &self.0;
        if !g.enabled.load(Ordering::SeqCst) {
            return Ok(());
        }
        let flag = |b: &AtomicBool| if b.load(Ordering::SeqCst) { 1.0 } else { 0.0 };
        let gauges = [
            (
                "ccs_state_database_up",
                "1 while the replica's connection to the fleet database works",
                Some(flag(&g.up)),
            ),
            (
                "ccs_state_applied_revision",
                "The revision of the shared key state this replica serves",
                Some(g.revision.load(Ordering::SeqCst) as f64),
            ),
            (
                "ccs_state_age_seconds",
                "Seconds since the shared key state was last confirmed (absent until the first confirmation)",
                g.age_seconds(),
            ),
            (
                "ccs_state_stale",
                "1 while keys answer 503 because the shared state is not confirmed (max_staleness)",
                Some(flag(&g.stale)),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let gauge = ConstGauge::new(v);
                let m = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(m)?;
            }
        }
        if let Some(polls) = g.polls.get() {
            let counter = ConstCounter::new(polls.dropped());
            let m = encoder.encode_descriptor(
                "ccs_state_poll_records_dropped",
                "Poll outcomes not recorded in the database because more keys than the batch holds waited",
                None,
                counter.metric_type(),
            )?;
            counter.encode(m)?;
        }
        Ok(())
    }
}
