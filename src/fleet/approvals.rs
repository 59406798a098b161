//! The admin API's shared book in a fleet (schema version 2; each approver's signed request since version 4): pending approvals and one-time
//! nonces, so that the replicas behind one load balancer count a signer's request the same
//! whichever of them it reaches. The rule is `quorum`'s; this is its storage.

use std::time::Duration;

use tokio_postgres::{GenericClient, Row, Transaction};

use super::{schema_missing, FleetError};
use crate::quorum::{count, new_id, Ballot, Pending, Vote};

/// The advisory lock every vote takes for its transaction ("ccs_appr").
const LOCK: i64 = 0x6363_735f_6170_7072;

const COLUMNS: &str = "id, instance, key_id, action, target, required, approvers, reasons,
                       ccs_time(created_at), ccs_time(expires_at), state, evidence";

fn pending(row: &Row) -> Pending {
    Pending {
        id: row.get(0),
        instance: row.get(1),
        key_id: u64::try_from(row.get::<_, i64>(2)).unwrap_or_default(),
        action: row.get(3),
        target: row.get(4),
        required: u32::try_from(row.get::<_, i32>(5)).unwrap_or(1),
        approvers: row.get(6),
        reasons: row.get(7),
        created: row.get(8),
        expires: row.get(9),
        state: row.get(10),
        evidence: row.get(11),
    }
}

/// Counts `ballot` in `tx` (which makes the change when it is reached, and commits both).
/// The quorum is the larger of `required` (this replica's) and the fleet's (`ccs_quorum`,
/// which `db migrate` writes): one replica configured for fewer signers cannot lower it.
/// Expiry is by the database's clock, one for the whole fleet.
pub async fn vote(
    tx: &Transaction<'_>,
    ballot: &Ballot,
    required: u32,
    timeout: Duration,
) -> Result<Vote, FleetError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    let key_id = i64::try_from(ballot.key_id)
        .map_err(|_| FleetError::BadInput("key id out of range".into()))?;
    // Expired approvals go, and so does every approval of this key cast on another version
    // of it (contract §9: any change to the key voids them).
    tx.execute(
        "DELETE FROM ccs_approval WHERE expires_at <= now()
            OR (instance = $1 AND key_id = $2 AND state <> $3)",
        &[&ballot.instance, &key_id, &ballot.state],
    )
    .await
    .map_err(schema_missing)?;
    let fleet: Option<i32> = tx
        .query_one(
            "SELECT max(required) FROM ccs_quorum WHERE action = $1",
            &[&ballot.action],
        )
        .await?
        .get(0);
    let required = required.max(fleet.and_then(|r| u32::try_from(r).ok()).unwrap_or(0));
    let required_sql = i32::try_from(required).unwrap_or(i32::MAX);
    let found = tx
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM ccs_approval
                 WHERE instance = $1 AND key_id = $2 AND action = $3 AND target = $4"
            ),
            &[&ballot.instance, &key_id, &ballot.action, &ballot.target],
        )
        .await?;
    if let Some(row) = found {
        let mut approval = pending(&row);
        if count(&mut approval, ballot, required) {
            tx.execute("DELETE FROM ccs_approval WHERE id = $1", &[&approval.id])
                .await?;
            return Ok(Vote::Reached {
                approvers: approval.approvers,
                reasons: approval.reasons,
                evidence: approval.evidence,
            });
        }
        let row = tx
            .query_one(
                &format!(
                    "UPDATE ccs_approval SET approvers = $2, reasons = $3, required = $4,
                         evidence = $5
                     WHERE id = $1 RETURNING {COLUMNS}"
                ),
                &[
                    &approval.id,
                    &approval.approvers,
                    &approval.reasons,
                    &i32::try_from(approval.required).unwrap_or(i32::MAX),
                    &approval.evidence,
                ],
            )
            .await?;
        return Ok(Vote::Pending(pending(&row)));
    }
    if required <= 1 {
        return Ok(Vote::alone(ballot));
    }
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO ccs_approval
                     (id, instance, key_id, action, target, required, approvers, reasons, expires_at,
                      state, evidence)
                 VALUES ($1, $2, $3, $4, $5, $6, ARRAY[$7], ARRAY[$8],
                         now() + make_interval(secs => $9), $10, ARRAY[$11])
                 RETURNING {COLUMNS}"
            ),
            &[
                &new_id(),
                &ballot.instance,
                &key_id,
                &ballot.action,
                &ballot.target,
                &required_sql,
                &ballot.signer,
                &ballot.reason,
                &timeout.as_secs_f64(),
                &ballot.state,
                &ballot.evidence,
            ],
        )
        .await?;
    Ok(Vote::Pending(pending(&row)))
}

/// The approvals pending now.
pub async fn list(client: &impl GenericClient) -> Result<Vec<Pending>, FleetError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM ccs_approval WHERE expires_at > now()
                 ORDER BY created_at, id"
            ),
            &[],
        )
        .await
        .map_err(schema_missing)?;
    Ok(rows.iter().map(pending).collect())
}

/// Takes `nonce` of `signer` until `until` (Unix seconds), for every replica: `false` when it
/// was taken already and is still in its window (a replay). Nonces past their window are
/// purged by the database's clock, one for the whole fleet (a replica whose clock runs ahead
/// cannot purge a nonce another replica still holds in its window).
pub async fn take_nonce(
    client: &impl GenericClient,
    signer: &str,
    nonce: &str,
    until: i64,
) -> Result<bool, FleetError> {
    client
        .execute(
            "DELETE FROM ccs_nonce WHERE until < extract(epoch FROM now())",
            &[],
        )
        .await
        .map_err(schema_missing)?;
    let taken = client
        .execute(
            "INSERT INTO ccs_nonce (signer, nonce, until) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&signer, &nonce, &until],
        )
        .await?;
    Ok(taken == 1)
}
