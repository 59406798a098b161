//! Where the admin API reads and changes key states: the key-store file of a single node
//! (`file`: its audit chain and its nonces beside it, its approvals in memory), or a fleet's
//! database (`fleet`: all three shared by every replica). Both follow the same steps: the key
//! must exist and the action must apply to its state (404, 409) before a signer's ballot is
//! counted; a change that reaches its quorum is made, recorded with its signers, and served
//! before the answer. This is the one interface the routes see.

use std::time::Duration;

use serde_json::Value;

pub use super::file::FileBackend;
pub use super::fleet::{FleetBackend, FLEET_SESSIONS};
use super::outcome::{Exported, Failure, KeyView, Outcome};
use crate::httpsig::Refusal;
use crate::protocol::{InstanceName, KeyId};
use crate::quorum::{Ballot, Pending};
use crate::switch::Action;

/// The state the API works on.
pub enum Backend {
    File(FileBackend),
    Fleet(Box<FleetBackend>),
}

impl Backend {
    /// Takes a verified signature's nonce, or refuses a replay.
    pub async fn take_nonce(
        &self,
        signer: &str,
        nonce: &str,
        created: i64,
        now: i64,
        skew: i64,
    ) -> Result<(), Result<Refusal, Failure>> {
        match self {
            Backend::File(file) => file.take_nonce(signer, nonce, created, now, skew),
            Backend::Fleet(fleet) => {
                let until = created.saturating_add(skew);
                fleet.take_nonce(signer, nonce, until).await
            }
        }
    }

    /// Every key (`None`), or one key.
    pub async fn keys(&self, key: Option<(&InstanceName, KeyId)>) -> Result<Vec<KeyView>, Failure> {
        match self {
            Backend::File(file) => Ok(file.keys(key)),
            Backend::Fleet(fleet) => fleet.keys(key).await,
        }
    }

    /// The approvals pending now.
    pub async fn approvals(&self) -> Result<Vec<Pending>, Failure> {
        match self {
            Backend::File(file) => Ok(file.approvals()),
            Backend::Fleet(fleet) => fleet.approvals().await,
        }
    }

    /// Counts `ballot` for `action` and, at its quorum `required`, makes the change.
    pub async fn change(
        &self,
        ballot: Ballot,
        action: Action,
        required: u32,
        timeout: Duration,
    ) -> Result<Outcome, Failure> {
        match self {
            Backend::File(file) => file.change(ballot, action, required, timeout).await,
            Backend::Fleet(fleet) => fleet.change(ballot, action, required, timeout).await,
        }
    }

    /// Counts `ballot` for an export and, at its quorum `required`, runs `wrap` and records
    /// the export in the audit chain (in a fleet, in the transaction that consumes the
    /// approval, so a failed wrap leaves the approval pending and records nothing).
    pub async fn export<F, Fut>(
        &self,
        ballot: Ballot,
        required: u32,
        timeout: Duration,
        wrap: F,
    ) -> Result<Exported, Failure>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Value, Failure>>,
    {
        match self {
            Backend::File(file) => file.export(ballot, required, timeout, wrap).await,
            Backend::Fleet(fleet) => fleet.export(ballot, required, timeout, wrap).await,
        }
    }
}
