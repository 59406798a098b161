//! Escrow through the API (issue 15): a key wrapped to one of the certificates `[api] export_to`
//! lists — a signer names it by its SHA-256 and never sends one, so no quorum of signers can
//! send the key anywhere else — as an escrow record (`keys import --from-escrow` restores it) or
//! as the upload Cloud Encryption takes. Served from this replica's own secrets; recorded in the
//! audit chain as `export`, with the signers.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use std::time::Duration;

use time::OffsetDateTime;

use super::backend::{Backend, Failure};
use crate::fleet::{approvals, FleetError};
use crate::keystore::{KeyStore, LookupError};
use crate::protocol::{InstanceName, KeyId};
use crate::quorum::{Ballot, Pending, Vote};
use crate::tools::escrow::{self, EscrowCertificate};
use crate::wrap::{Padding, Plaintext, WrapOptions};

/// The certificates an export may wrap to, by SHA-256.
pub struct ExportTargets(Vec<(String, EscrowCertificate, PathBuf)>);

impl ExportTargets {
    /// Reads every certificate of `[api] export_to` (PEM or DER, RSA of 2048 bits or more).
    pub fn load(paths: &[PathBuf]) -> Result<Self, String> {
        let mut targets = Vec::new();
        for path in paths {
            let name = path.display();
            let der = crate::tools::inspect::read_input(&path.to_string_lossy())
                .map_err(|e| format!("api.export_to {name}: {e}"))?;
            let cert = EscrowCertificate::from_der(&der)
                .map_err(|e| format!("api.export_to {name}: {e}"))?;
            targets.push((
                cert.fingerprint().to_string().to_ascii_lowercase(),
                cert,
                path.clone(),
            ));
        }
        Ok(Self(targets))
    }

    pub fn find(&self, sha256: &str) -> Option<&EscrowCertificate> {
        self.0
            .iter()
            .find(|(sha, ..)| sha == sha256)
            .map(|(_, cert, _)| cert)
    }
}

/// Wraps the key for the export target `sha256`: the answer's `record` (escrow) or `upload`
/// (Cloud Encryption). `token_plaintext` is the form a token's objects hold (`[wrap]
/// plaintext`); `None` for the file backend, which wraps the raw 32 bytes.
pub async fn wrap(
    targets: &Arc<ExportTargets>,
    store: Arc<KeyStore>,
    instance: &InstanceName,
    key_id: KeyId,
    sha256: &str,
    cloud: bool,
    token_plaintext: Option<Plaintext>,
) -> Result<Value, Failure> {
    let plaintext = token_plaintext.unwrap_or(Plaintext::Raw);
    if cloud && plaintext != Plaintext::Raw {
        return Err(Failure::Refused(
            "Cloud Encryption takes the raw 32 bytes, and this token's objects hold the hex form ([wrap] plaintext = \"hex\")".into(),
        ));
    }
    let options = WrapOptions {
        padding: Padding::OaepSha256,
        plaintext,
    };
    let (targets, instance) = (Arc::clone(targets), instance.clone());
    let sha = sha256.to_owned();
    let work = move || {
        let cert = targets.find(&sha).ok_or_else(|| {
            Failure::Refused(format!(
                "certificate sha256 {sha} is not one of [api] export_to: the key is exported only to a certificate the configuration names"
            ))
        })?;
        let wrapped = store
            .escrow(&instance, key_id, cert.recipient(), options)
            .map_err(|e| match e {
                LookupError::NotFound => Failure::NoSuchKey(format!(
                    "no key for instance {instance}, key_id {key_id} on this replica"
                )),
                other => Failure::Unavailable(format!("the key could not be wrapped: {other}")),
            })?;
        Ok(match cloud {
            true => json!({ "upload": base64_of(&wrapped.ciphertext) }),
            false => json!({
                "record": escrow::record(&wrapped.state, cert, plaintext, &wrapped.ciphertext)
            }),
        })
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Failure::Unavailable(format!("the export did not finish: {e}")))?
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What an export request came to.
#[derive(Debug)]
pub enum Exported {
    /// The answer's fields (`record` or `upload`), and who signed.
    Done {
        answer: Value,
        approvers: Vec<String>,
    },
    Pending(Pending),
}

/// Sets the signed requests of a change (its approvers', see [`Vote::signatures`]) for the
/// audit record the transaction `tx` appends (the schema's `ccs.signatures`).
pub(super) async fn set_signatures(
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

impl Backend {
    /// Counts `ballot` for an export and, at its quorum `required`, runs `wrap` and records
    /// the export in the audit chain (in a fleet, in the transaction that consumes the
    /// approval, so a failed wrap leaves the approval pending and records nothing).
    pub async fn export<F, Fut>(
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
        let actor_reason = |approvers: &[String], reasons: &[String]| {
            let why = Vote::reason(approvers, reasons);
            let to = format!("wrapped to {}", ballot.target);
            let reason = if why.is_empty() {
                to
            } else {
                format!("{why} ({to})")
            };
            (Vote::actor(approvers), reason)
        };
        match self {
            Backend::File(file) => {
                let store = file.state.keys.store();
                let key = store
                    .states()
                    .find(|k| k.instance.as_str() == ballot.instance && k.key_id == ballot.key_id)
                    .ok_or_else(|| Failure::NoSuchKey("no such key".into()))?;
                ballot.state = super::file::key_version(&file.store, key)?;
                let vote = file
                    .book
                    .vote(&ballot, required, timeout, OffsetDateTime::now_utc())
                    .map_err(|e| Failure::Unavailable(e.to_string()))?;
                let (approvers, reasons, evidence) = match vote {
                    Vote::Pending(p) => return Ok(Exported::Pending(p)),
                    Vote::Reached {
                        approvers,
                        reasons,
                        evidence,
                    } => (approvers, reasons, evidence),
                };
                let answer = wrap().await?;
                let (actor, reason) = actor_reason(&approvers, &reasons);
                let signatures = Vote::signatures(&evidence);
                let store = file.store.clone();
                let (instance, key_id) = (ballot.instance.clone(), ballot.key_id);
                let state = file.state.keys.store();
                tokio::task::spawn_blocking(move || {
                    let event = super::file::Event {
                        action: "export",
                        actor: &actor,
                        reason: &reason,
                        signatures,
                    };
                    super::file::record_event(&store, &state, &instance, key_id, event)
                })
                .await
                .map_err(|e| {
                    Failure::Unavailable(format!("the export's record did not finish: {e}"))
                })?;
                Ok(Exported::Done { answer, approvers })
            }
            Backend::Fleet(fleet) => {
                let (_turn, mut session) = fleet.session().await?;
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
                let (actor, reason) = actor_reason(&approvers, &reasons);
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
    }
}
