//! What the fleet's database says: the replicas (`fleet status`), each key's state with its
//! last poll outcome (`keys status`), and the audit chain (`audit verify|show`).

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;

use super::{current_revision, key_state, schema_missing, FleetError};
use crate::chain::{Record, StateRecord};
use crate::keystore::{parse_time, Condition, KeyState};
use crate::protocol::{InstanceName, KeyId};

/// A replica as `fleet status` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replica {
    pub name: String,
    pub version: String,
    pub started_at: String,
    pub last_seen: String,
    /// Seconds since it was last seen.
    pub last_seen_seconds: f64,
    pub applied_revision: i64,
    /// `live` (seen within max_staleness), `lost` (not seen since: it answers 503 for keys), or
    /// `stopped`.
    pub status: &'static str,
}

/// The replicas and the current revision.
pub async fn replicas(
    client: &impl GenericClient,
    max_staleness: Duration,
) -> Result<(i64, Vec<Replica>), FleetError> {
    let revision = current_revision(client).await?;
    let rows = client
        .query(
            "SELECT name, version, ccs_time(started_at), ccs_time(last_seen),
                    extract(epoch FROM now() - last_seen)::float8, applied_revision,
                    stopped_at IS NOT NULL
             FROM ccs_replica ORDER BY name",
            &[],
        )
        .await
        .map_err(schema_missing)?;
    let replicas = rows
        .iter()
        .map(|r| {
            let age: f64 = r.get(4);
            Replica {
                name: r.get(0),
                version: r.get(1),
                started_at: r.get(2),
                last_seen: r.get(3),
                last_seen_seconds: age,
                applied_revision: r.get(5),
                status: match (r.get::<_, bool>(6), age <= max_staleness.as_secs_f64()) {
                    (true, _) => "stopped",
                    (false, true) => "live",
                    (false, false) => "lost",
                },
            }
        })
        .collect();
    Ok((revision, replicas))
}

/// The last poll of a key, as a replica recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Poll {
    pub replica: String,
    pub at: String,
    pub status: u16,
    pub reason: String,
    pub valid_until: Option<String>,
}

/// A key as `keys status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub state: KeyState,
    pub revision: i64,
    pub changed_at: String,
    pub changed_by: String,
    pub reason: String,
    pub last_poll: Option<Poll>,
}

impl KeyStatus {
    /// Whether the database got the kill switch: the last poll since the change was answered
    /// 404 (disabled) or with a past `validUntil`.
    pub fn verdict(&self, now: OffsetDateTime) -> String {
        let condition = self.state.condition(now);
        let changed = parse_time(&self.changed_at).ok();
        let since = self.last_poll.as_ref().filter(|p| {
            let at = parse_time(&p.at).ok();
            at.is_some() && changed.is_some() && at >= changed
        });
        let killed = |p: &Poll| match condition {
            Condition::Disabled => p.status == 404,
            Condition::ShutDown(_) => {
                p.status == 200
                    && p.valid_until.as_deref().and_then(|v| parse_time(v).ok())
                        <= parse_time(&p.at).ok()
            }
            Condition::Active { .. } => false,
        };
        match (condition, since) {
            (Condition::Active { .. }, Some(p)) => format!(
                "active; last polled at {} via replica {} ({} {})",
                p.at, p.replica, p.status, p.reason
            ),
            (Condition::Active { .. }, None) => {
                "active; not polled since the last change".to_owned()
            }
            (_, Some(p)) if killed(p) => format!(
                "the kill reached the database at {}, via replica {}",
                p.at, p.replica
            ),
            (_, Some(p)) => format!(
                "killed, but the last poll since ({} via replica {}) was answered {} {}",
                p.at, p.replica, p.status, p.reason
            ),
            (_, None) => format!(
                "killed at {}; the database has not polled since",
                self.changed_at
            ),
        }
    }
}

/// The keys of `instance` (one key with `key_id`; every key of every instance with `None`),
/// with their last poll.
pub async fn key_status(
    client: &impl GenericClient,
    instance: Option<&InstanceName>,
    key_id: Option<KeyId>,
) -> Result<Vec<KeyStatus>, FleetError> {
    let key_id = key_id.and_then(|k| i64::try_from(k).ok());
    let instance = instance.map(InstanceName::as_str);
    let rows = client
        .query(
            "SELECT k.key_id, k.kcv, k.disabled, ccs_time(k.not_after), k.revision,
                    ccs_time(k.changed_at), k.changed_by, k.reason,
                    p.replica, ccs_time(p.at), p.status, p.reason, ccs_time(p.valid_until),
                    k.instance, k.lease
             FROM ccs_key_state k
             LEFT JOIN LATERAL (
                 SELECT * FROM ccs_poll q WHERE q.instance = k.instance AND q.key_id = k.key_id
                 ORDER BY q.at DESC LIMIT 1
             ) p ON true
             WHERE ($1::text IS NULL OR k.instance = $1)
               AND ($2::int8 IS NULL OR k.key_id = $2)
             ORDER BY k.instance, k.key_id",
            &[&instance, &key_id],
        )
        .await
        .map_err(schema_missing)?;
    rows.iter()
        .map(|r| {
            let not_after: Option<String> = r.get(3);
            let state = key_state(
                r.get(13),
                r.get(0),
                r.get(1),
                r.get(2),
                not_after.as_deref(),
                r.get(14),
            )?;
            let last_poll = r.get::<_, Option<String>>(8).map(|replica| Poll {
                replica,
                at: r.get(9),
                status: u16::try_from(r.get::<_, i32>(10)).unwrap_or(0),
                reason: r.get(11),
                valid_until: r.get(12),
            });
            Ok(KeyStatus {
                state,
                revision: r.get(4),
                changed_at: r.get(5),
                changed_by: r.get(6),
                reason: r.get(7),
                last_poll,
            })
        })
        .collect()
}

/// The hash of audit record `seq`, if the chain has it.
pub async fn audit_hash(
    client: &impl GenericClient,
    seq: i64,
) -> Result<Option<String>, FleetError> {
    let row = client
        .query_opt("SELECT hash FROM ccs_audit WHERE seq = $1", &[&seq])
        .await
        .map_err(schema_missing)?;
    Ok(row.map(|r| r.get(0)))
}

/// The audit chain in `seq` order (of `instance` only, when given: such a list cannot be
/// verified, since the chain runs through every key).
pub async fn audit(
    client: &impl GenericClient,
    instance: Option<&InstanceName>,
) -> Result<Vec<Record>, FleetError> {
    let rows = client
        .query(
            "SELECT seq, time, actor, action, instance, key_id, before, after, reason, prev, hash,
                    role, signatures
             FROM ccs_audit WHERE $1::text IS NULL OR instance = $1 ORDER BY seq",
            &[&instance.map(InstanceName::as_str)],
        )
        .await
        .map_err(schema_missing)?;
    rows.iter()
        .map(|r| {
            let seq: i64 = r.get(0);
            let state = |column: usize| -> Result<Option<StateRecord>, FleetError> {
                serde_json::from_str(r.get(column)).map_err(|e| {
                    FleetError::Corrupt(format!("ccs_audit seq {seq}: column {column}: {e}"))
                })
            };
            Ok(Record {
                seq: u64::try_from(seq).unwrap_or(0),
                time: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                instance: r.get(4),
                key_id: u64::try_from(r.get::<_, i64>(5)).unwrap_or(0),
                before: state(6)?,
                after: state(7)?,
                reason: r.get(8),
                role: r.get(11),
                signatures: r.get(12),
                prev: r.get(9),
                hash: r.get(10),
            })
        })
        .collect()
}
