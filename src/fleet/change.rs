//! Changing the shared states (the operator's role), and waiting until every live replica has
//! applied the change: `keys disable|enable|shutdown|restore --wait`, `db import-states`.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, GenericClient, Transaction};

use super::{key_state, schema_missing, sql_time, FleetError};
use crate::keystore::{parse_time, KeyState};
use crate::protocol::{InstanceName, KeyId};

pub use crate::switch::Action;

/// One key changed: its state before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub before: KeyState,
    pub after: KeyState,
    /// The revision that made the change (the current one when nothing changed).
    pub revision: i64,
}

/// Applies `action` to `key_id` of `instance` (every key of the instance when `None`) in one
/// transaction, as `actor` for `reason`. No such key, or an action the key's state refuses:
/// `Refused`.
pub async fn change(
    client: &mut Client,
    actor: &str,
    instance: &InstanceName,
    key_id: Option<KeyId>,
    action: Action,
    reason: &str,
) -> Result<Vec<Changed>, FleetError> {
    let tx = client.transaction().await?;
    let changed = change_in(&tx, actor, instance, key_id, action, reason).await?;
    tx.commit().await?;
    Ok(changed)
}

/// As [`change`], inside the caller's transaction (which commits it).
pub async fn change_in(
    tx: &Transaction<'_>,
    actor: &str,
    instance: &InstanceName,
    key_id: Option<KeyId>,
    action: Action,
    reason: &str,
) -> Result<Vec<Changed>, FleetError> {
    tx.execute(
        "SELECT set_config('ccs.actor', $1, true), set_config('ccs.reason', $2, true),
                set_config('ccs.action', $3, true)",
        &[&actor, &reason, &action.name()],
    )
    .await?;
    let key_id = key_id
        .map(|k| i64::try_from(k).map_err(|_| FleetError::BadInput("key id out of range".into())))
        .transpose()?;
    let rows = tx
        .query(
            "SELECT key_id, kcv, disabled, ccs_time(not_after), ccs_time(now()), lease
             FROM ccs_key_state
             WHERE instance = $1 AND ($2::int8 IS NULL OR key_id = $2)
             ORDER BY key_id FOR UPDATE",
            &[&instance.as_str(), &key_id],
        )
        .await
        .map_err(schema_missing)?;
    if rows.is_empty() {
        let which = key_id.map_or_else(|| "any key".to_owned(), |k| format!("key_id {k}"));
        return Err(FleetError::NoSuchKey(format!(
            "the fleet database has no {which} for instance {instance}: add keys with `ccs-endpoint db import-states`"
        )));
    }
    let mut changed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.get(0);
        let not_after: Option<String> = row.get(3);
        let before = key_state(
            instance.as_str(),
            id,
            row.get(1),
            row.get(2),
            not_after.as_deref(),
            row.get(5),
        )?;
        // The database's clock decides what has passed, as it stamps the change.
        let now = parse_time(&row.get::<_, String>(4)).map_err(FleetError::Corrupt)?;
        let after = action.apply(&before, now).map_err(FleetError::Conflict)?;
        let not_after = after.not_after.map(sql_time);
        // The row's reason is this change's, even when it gives none: the audit record would
        // otherwise take the previous change's reason from the row.
        let row = tx
            .query_one(
                "UPDATE ccs_key_state SET disabled = $3, not_after = $4::text::timestamptz,
                     lease = $5, reason = $6
                 WHERE instance = $1 AND key_id = $2
                 RETURNING kcv, disabled, ccs_time(not_after), revision, lease",
                &[
                    &instance.as_str(),
                    &id,
                    &after.disabled,
                    &not_after,
                    &after.lease,
                    &reason,
                ],
            )
            .await?;
        let not_after: Option<String> = row.get(2);
        changed.push(Changed {
            after: key_state(
                instance.as_str(),
                id,
                row.get(0),
                row.get(1),
                not_after.as_deref(),
                row.get(4),
            )?,
            before,
            revision: row.get(3),
        });
    }
    Ok(changed)
}

/// What `db import-states` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub added: Vec<KeyState>,
    /// Keys the database already had (left as they are there).
    pub kept: Vec<KeyState>,
}

/// Copies `states` (read from a key-store file) into the database: a key it does not have yet
/// is added with its state and KCV; one it has is left as it is (the database is the truth).
pub async fn import(
    client: &mut Client,
    actor: &str,
    states: &[KeyState],
) -> Result<Imported, FleetError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT set_config('ccs.actor', $1, true), set_config('ccs.reason', $2, true),
                set_config('ccs.action', 'import', true)",
        &[&actor, &"imported from a key-store file"],
    )
    .await?;
    let mut imported = Imported::default();
    for state in states {
        let key_id = i64::try_from(state.key_id)
            .map_err(|_| FleetError::BadInput(format!("key id {} out of range", state.key_id)))?;
        let added = tx
            .execute(
                "INSERT INTO ccs_key_state (instance, key_id, kcv, disabled, not_after, lease)
                 VALUES ($1, $2, $3, $4, $5::text::timestamptz, $6)
                 ON CONFLICT (instance, key_id) DO NOTHING",
                &[
                    &state.instance.as_str(),
                    &key_id,
                    &state.kcv.to_string(),
                    &state.disabled,
                    &state.not_after.map(sql_time),
                    &(state.lease && state.not_after.is_some()),
                ],
            )
            .await
            .map_err(schema_missing)?;
        match added {
            0 => imported.kept.push(state.clone()),
            _ => imported.added.push(state.clone()),
        }
    }
    tx.commit().await?;
    Ok(imported)
}

/// How far the fleet got with a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Live replicas that applied it.
    pub applied: Vec<String>,
    /// Live replicas that had not, with the revision each serves.
    pub laggards: Vec<(String, i64)>,
    pub elapsed: Duration,
}

/// Waits until every live replica (not stopped, seen within `max_staleness`) applied
/// `revision`, or `timeout` passes. A replica not seen for `max_staleness` is not waited for:
/// it answers 503 for keys by then (§7).
pub async fn wait_applied(
    client: &impl GenericClient,
    revision: i64,
    max_staleness: Duration,
    timeout: Duration,
) -> Result<Applied, FleetError> {
    let began = Instant::now();
    loop {
        let rows = client
            .query(
                "SELECT name, applied_revision FROM ccs_replica
                 WHERE stopped_at IS NULL AND last_seen > now() - make_interval(secs => $1)
                 ORDER BY name",
                &[&max_staleness.as_secs_f64()],
            )
            .await
            .map_err(schema_missing)?;
        let (done, behind): (Vec<_>, Vec<_>) = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .partition(|(_, applied)| *applied >= revision);
        if behind.is_empty() || began.elapsed() >= timeout {
            return Ok(Applied {
                applied: done.into_iter().map(|(name, _)| name).collect(),
                laggards: behind,
                elapsed: began.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
