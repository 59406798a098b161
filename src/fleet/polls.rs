//! The last poll outcome per key, recorded off the request path: a request hands its outcome
//! to a bounded queue without waiting (a full queue drops it and counts the drop), and the
//! follower writes the latest outcome per key in one statement about once a second, so a slow
//! or vanished database can neither slow nor fail a poll.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::{sql_time, FleetError};
use crate::protocol::{InstanceName, KeyId};

/// Outcomes waiting to be written, at most (a burst beyond it is dropped and counted).
const QUEUE: usize = 4096;
/// Keys written in one statement, at most (later ones wait for the next flush).
pub const BATCH: usize = 10_000;

/// What one poll was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollOutcome {
    pub instance: InstanceName,
    pub key_id: KeyId,
    pub at: OffsetDateTime,
    pub status: u16,
    pub reason: &'static str,
    pub valid_until: Option<OffsetDateTime>,
}

/// The request side: hands outcomes over without waiting.
#[derive(Debug)]
pub struct PollQueue {
    sender: mpsc::Sender<PollOutcome>,
    dropped: AtomicU64,
}

/// The writer side, held by the follower.
#[derive(Debug)]
pub struct PollBatch {
    receiver: Mutex<mpsc::Receiver<PollOutcome>>,
}

/// A queue and its writer side.
pub fn queue() -> (PollQueue, PollBatch) {
    let (sender, receiver) = mpsc::channel(QUEUE);
    (
        PollQueue {
            sender,
            dropped: AtomicU64::new(0),
        },
        PollBatch {
            receiver: Mutex::new(receiver),
        },
    )
}

impl PollQueue {
    /// Queues `outcome`, or drops it when the queue is full.
    pub fn record(&self, outcome: PollOutcome) {
        if self.sender.try_send(outcome).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Outcomes dropped so far (the queue was full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl PollBatch {
    /// The latest outcome per key among those queued (at most [`BATCH`] keys).
    pub fn take(&self) -> Vec<PollOutcome> {
        let mut latest: HashMap<(InstanceName, KeyId), PollOutcome> = HashMap::new();
        let mut receiver = self.receiver.lock().unwrap_or_else(|e| e.into_inner());
        while latest.len() < BATCH {
            let Ok(outcome) = receiver.try_recv() else {
                break;
            };
            latest.insert((outcome.instance.clone(), outcome.key_id), outcome);
        }
        latest.into_values().collect()
    }
}

/// Writes `outcomes` as polled through `replica`: one statement, newer outcomes win.
pub async fn write(
    client: &Client,
    replica: &str,
    outcomes: &[PollOutcome],
) -> Result<(), FleetError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let instances: Vec<&str> = outcomes.iter().map(|o| o.instance.as_str()).collect();
    let key_ids: Vec<i64> = outcomes
        .iter()
        .map(|o| i64::try_from(o.key_id).unwrap_or(i64::MAX))
        .collect();
    let at: Vec<String> = outcomes.iter().map(|o| sql_time(o.at)).collect();
    let status: Vec<i32> = outcomes.iter().map(|o| i32::from(o.status)).collect();
    let reason: Vec<&str> = outcomes.iter().map(|o| o.reason).collect();
    let valid_until: Vec<Option<String>> = outcomes
        .iter()
        .map(|o| o.valid_until.map(sql_time))
        .collect();
    client
        .execute(
            "INSERT INTO ccs_poll (instance, key_id, replica, at, status, reason, valid_until)
             SELECT i, k, $3, a::timestamptz, s, r, v::timestamptz
             FROM unnest($1::text[], $2::int8[], $4::text[], $5::int4[], $6::text[], $7::text[])
                  AS u(i, k, a, s, r, v)
             ON CONFLICT (instance, key_id) DO UPDATE SET
                 replica = EXCLUDED.replica, at = EXCLUDED.at, status = EXCLUDED.status,
                 reason = EXCLUDED.reason, valid_until = EXCLUDED.valid_until
             WHERE ccs_poll.at <= EXCLUDED.at",
            &[
                &instances,
                &key_ids,
                &replica,
                &at,
                &status,
                &reason,
                &valid_until,
            ],
        )
        .await?;
    Ok(())
}
