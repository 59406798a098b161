//! The admin API on a fleet: the key states, the approvals and the nonces in the fleet's
//! database, shared by every replica behind the load balancer; a change is made through the
//! table's trigger (one revision, one audit record with its signers' signed requests) and
//! answered once the live replicas applied it.

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::export::export_record;
use super::outcome::{Exported, Failure, KeyView, Outcome};
use crate::fleet::change::{change_in, wait_applied};
use crate::fleet::db::{Session, Target};
use crate::fleet::{approvals, report, FleetError};
use crate::httpsig::Refusal;
use crate::protocol::{InstanceName, KeyId};
use crate::quorum::{Ballot, Pending, Vote};
use crate::switch::Action;

/// A fleet: its database, connected per request (the API is seldom called), a few at a time.
pub struct FleetBackend {
    pub target: Target,
    /// Database sessions the API holds at once: a burst of signed requests queues here rather
    /// than taking the database's connections.
    pub sessions: tokio::sync::Semaphore,
    pub max_staleness: Duration,
    /// How long a change waits for the live replicas to apply it before answering.
    pub wait: Duration,
}

fn fleet_view(status: report::KeyStatus) -> KeyView {
    KeyView {
        state: status.state,
        last_poll: status.last_poll,
        changed: Some((
            status.revision,
            status.changed_at,
            status.changed_by,
            status.reason,
        )),
    }
}

/// Sets the signed requests of a change (its approvers', see [`Vote::signatures`]) for the
/// audit record the transaction `tx` appends (the schema's `ccs.signatures`).
async fn set_signatures(
    tx: &tokio_postgres::Transaction<'_>,
    evidence: &[String],
) -> Result<(), Failure> {
    let signatures = Vote::signatures(evidence).unwrap_or_default();
    tx.execute(
        "SELECT set_config('ccs.signatures', $1, true)",
        &[&signatures],
    )
    .await
    .map_err(FleetError::from)?;
    Ok(())
}

/// Database sessions the API holds at once.
pub const FLEET_SESSIONS: usize = 4;

impl FleetBackend {
    /// A database session, in turn: at most [`FLEET_SESSIONS`] at once (the permit goes
    /// with it).
    pub(super) async fn session(
        &self,
    ) -> Result<(tokio::sync::SemaphorePermit<'_>, Session), Failure> {
        let turn = self
            .sessions
            .acquire()
            .await
            .map_err(|_| Failure::Unavailable("shutting down".into()))?;
        Ok((turn, self.target.connect().await?))
    }

    pub(super) async fn change(
        &self,
        mut ballot: Ballot,
        action: Action,
        required: u32,
        timeout: Duration,
    ) -> Result<Outcome, Failure> {
        let (_turn, mut session) = self.session().await?;
        let tx = session
            .client
            .transaction()
            .await
            .map_err(FleetError::from)?;
        let instance =
            InstanceName::parse(&ballot.instance).map_err(|e| Failure::NoSuchKey(e.to_string()))?;
        // The key must exist and the action apply before a ballot is counted (checked again,
        // under the row's lock, when the change is made).
        let key = report::key_status(&tx, Some(&instance), Some(ballot.key_id)).await?;
        let Some(key) = key.into_iter().next() else {
            return Err(Failure::NoSuchKey(format!(
                "the fleet database has no key_id {} for instance {instance}",
                ballot.key_id
            )));
        };
        action
            .apply(&key.state, OffsetDateTime::now_utc())
            .map_err(Failure::Refused)?;
        ballot.state = format!("revision {}", key.revision);
        let vote = approvals::vote(&tx, &ballot, required, timeout).await?;
        let (approvers, reasons, evidence) = match vote {
            Vote::Pending(p) => {
                tx.commit().await.map_err(FleetError::from)?;
                return Ok(Outcome::Pending(p));
            }
            Vote::Reached {
                approvers,
                reasons,
                evidence,
            } => (approvers, reasons, evidence),
        };
        let actor = Vote::actor(&approvers);
        let reason = Vote::reason(&approvers, &reasons);
        set_signatures(&tx, &evidence).await?;
        let changed =
            change_in(&tx, &actor, &instance, Some(ballot.key_id), action, &reason).await?;
        tx.commit().await.map_err(FleetError::from)?;
        let Some(changed) = changed.into_iter().next() else {
            return Err(Failure::NoSuchKey("the key vanished".into()));
        };
        let head = report::audit_hash(&session.client, changed.revision)
            .await?
            .map(|hash| format!("{}:{hash}", changed.revision));
        let applied = wait_applied(
            &session.client,
            changed.revision,
            self.max_staleness,
            self.wait,
        )
        .await?;
        Ok(Outcome::Applied {
            revision: changed.revision,
            applied: applied.applied.len(),
            total: applied.applied.len() + applied.laggards.len(),
            approvers,
            key: changed.after,
            head,
        })
    }

    /// Takes a verified signature's nonce for every replica, or refuses a replay.
    pub(super) async fn take_nonce(
        &self,
        signer: &str,
        nonce: &str,
        until: i64,
    ) -> Result<(), Result<Refusal, Failure>> {
        let (_turn, session) = self.session().await.map_err(Err)?;
        match approvals::take_nonce(&session.client, signer, nonce, until).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Ok(Refusal::Replayed(nonce.to_owned()))),
            Err(e) => Err(Err(e.into())),
        }
    }

    /// Every key (`None`), or one key, with its last change and poll.
    pub(super) async fn keys(
        &self,
        key: Option<(&InstanceName, KeyId)>,
    ) -> Result<Vec<KeyView>, Failure> {
        let (_turn, session) = self.session().await?;
        let (instance, key_id) = key.map_or((None, None), |(i, k)| (Some(i), Some(k)));
        let keys = report::key_status(&session.client, instance, key_id).await?;
        Ok(keys.into_iter().map(fleet_view).collect())
    }

    /// The approvals pending now, shared by every replica.
    pub(super) async fn approvals(&self) -> Result<Vec<Pending>, Failure> {
        let (_turn, session) = self.session().await?;
        Ok(approvals::list(&session.client).await?)
    }

    /// An export: counted in the database's book and, at its quorum, wrapped and recorded in
    /// the transaction that consumes the approval (a failed wrap leaves it pending and
    /// records nothing).
    pub(super) async fn export<F, Fut>(
        &self,
        mut ballot: Ballot,
        required: u32,
        timeout: Duration,
        wrap: F,
    ) -> Result<Exported, Failure>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Value, Failure>>,
    {
        let (_turn, mut session) = self.session().await?;
        let tx = session
            .client
            .transaction()
            .await
            .map_err(FleetError::from)?;
        let key_id = i64::try_from(ballot.key_id)
            .map_err(|_| Failure::NoSuchKey("key id out of range".into()))?;
        let revision: Option<i64> = tx
            .query_opt(
                "SELECT revision FROM ccs_key_state WHERE instance = $1 AND key_id = $2",
                &[&ballot.instance, &key_id],
            )
            .await
            .map_err(FleetError::from)?
            .map(|row| row.get(0));
        let Some(revision) = revision else {
            return Err(Failure::NoSuchKey(format!(
                "the fleet database has no key_id {} for instance {}",
                ballot.key_id, ballot.instance
            )));
        };
        ballot.state = format!("revision {revision}");
        let vote = approvals::vote(&tx, &ballot, required, timeout).await?;
        let (approvers, reasons, evidence) = match vote {
            Vote::Pending(p) => {
                tx.commit().await.map_err(FleetError::from)?;
                return Ok(Exported::Pending(p));
            }
            Vote::Reached {
                approvers,
                reasons,
                evidence,
            } => (approvers, reasons, evidence),
        };
        let answer = wrap().await?;
        let (actor, reason) = export_record(&ballot.target, &approvers, &reasons);
        set_signatures(&tx, &evidence).await?;
        tx.execute(
            "SELECT ccs_audit_event($1, 'export', $2, $3, $4)",
            &[&actor, &ballot.instance, &key_id, &reason],
        )
        .await
        .map_err(FleetError::from)?;
        tx.commit().await.map_err(FleetError::from)?;
        Ok(Exported::Done { answer, approvers })
    }
}
