//! The last poll outcome per key, recorded off the request path: a request puts its outcome in
//! a map of the latest outcome per key (a short lock, no waiting on anything else), and the
//! follower takes the map about once a second and writes it in one statement. So a slow or
//! vanished database can neither slow nor fail a poll, any poll rate costs one write a second,
//! and memory is bounded by the keys polled (at most [`BATCH`]; outcomes of keys beyond it are
//! dropped and counted until the next write).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio_postgres::Client;

use super::{sql_time, FleetError};
use crate::protocol::{InstanceName, KeyId};

/// Keys with an outcome waiting, at most; also the most written in one statement.
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

/// What a poll was answered, recorded under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub at: OffsetDateTime,
    pub status: u16,
    pub reason: &'static str,
    pub valid_until: Option<OffsetDateTime>,
}

type Latest = HashMap<InstanceName, HashMap<KeyId, Answer>>;

/// The latest outcome per key since the last write.
#[derive(Debug, Default)]
struct Pending {
    latest: Latest,
    keys: usize,
}

/// The request side: records outcomes without waiting.
#[derive(Debug, Default)]
pub struct PollQueue {
    pending: Arc<Mutex<Pending>>,
    dropped: AtomicU64,
}

/// The writer side, held by the follower.
#[derive(Debug)]
pub struct PollBatch {
    pending: Arc<Mutex<Pending>>,
}

/// A queue and its writer side.
pub fn queue() -> (PollQueue, PollBatch) {
    let queue = PollQueue::default();
    let batch = PollBatch {
        pending: Arc::clone(&queue.pending),
    };
    (queue, batch)
}

impl PollQueue {
    /// Keeps `answer` as the latest of `(instance, key_id)`, or drops it when [`BATCH`] other keys wait. Takes
    /// the key by reference: a poll of a key already waiting allocates nothing.
    pub fn record(&self, instance: &InstanceName, key_id: KeyId, answer: Answer) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = pending
            .latest
            .get_mut(instance)
            .and_then(|keys| keys.get_mut(&key_id))
        {
            *slot = answer;
            return;
        }
        if pending.keys >= BATCH {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.keys += 1;
        pending
            .latest
            .entry(instance.clone())
            .or_default()
            .insert(key_id, answer);
    }

    /// Outcomes dropped so far (too many keys waiting).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl PollBatch {
    /// The latest outcome of every key recorded since the last call.
    pub fn take(&self) -> Vec<PollOutcome> {
        let latest = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.keys = 0;
            std::mem::take(&mut pending.latest)
        };
        latest
            .into_iter()
            .flat_map(|(instance, keys)| {
                keys.into_iter().map(move |(key_id, o)| PollOutcome {
                    instance: instance.clone(),
                    key_id,
                    at: o.at,
                    status: o.status,
                    reason: o.reason,
                    valid_until: o.valid_until,
                })
            })
            .collect()
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
             ON CONFLICT (instance, key_id, replica) DO UPDATE SET
                 at = EXCLUDED.at, status = EXCLUDED.status, reason = EXCLUDED.reason,
                 valid_until = EXCLUDED.valid_until, login = session_user
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn record(queue: &PollQueue, instance: &str, key_id: KeyId, status: u16) {
        let answer = Answer {
            at: OffsetDateTime::now_utc(),
            status,
            reason: "ok",
            valid_until: None,
        };
        queue.record(&InstanceName::parse(instance).unwrap(), key_id, answer);
    }

    #[test]
    fn keeps_the_latest_outcome_per_key_and_bounds_the_keys() {
        let (queue, batch) = queue();
        for status in [200, 404, 200, 404] {
            record(&queue, "a", 1, status);
        }
        record(&queue, "b", 1, 200);
        let mut taken = batch.take();
        taken.sort_by_key(|o| o.instance.as_str().to_owned());
        assert_eq!(taken.len(), 2);
        assert_eq!((taken[0].instance.as_str(), taken[0].status), ("a", 404));
        assert!(batch.take().is_empty(), "taken outcomes are gone");

        for i in 0..BATCH as u64 + 5 {
            record(&queue, "many", i, 200);
        }
        // A key already waiting is updated even when full.
        record(&queue, "many", 0, 503);
        assert_eq!(queue.dropped(), 5);
        let taken = batch.take();
        assert_eq!(taken.len(), BATCH);
        assert!(taken.iter().any(|o| o.key_id == 0 && o.status == 503));
    }
}
