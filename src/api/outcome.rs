//! What the admin API's backends answer, whichever holds the state: a key as the API shows
//! it, what a change or an export came to, and why a request could not be served (by the
//! status it answers).

use serde_json::Value;

use crate::fleet::{report, FleetError};
use crate::keystore::KeyState;
use crate::quorum::Pending;

/// A key as the API shows it.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub state: KeyState,
    /// The last poll: replica (a fleet's), time, status, reason, validUntil.
    pub last_poll: Option<report::Poll>,
    /// In a fleet: the revision, time, actor and reason of its last change.
    pub changed: Option<(i64, String, String, String)>,
}

/// What a change request came to.
#[derive(Debug)]
pub enum Outcome {
    Applied {
        revision: i64,
        applied: usize,
        total: usize,
        approvers: Vec<String>,
        key: KeyState,
        /// The audit chain's new head, `SEQ:HASH` (contract §10), when it was recorded.
        head: Option<String>,
    },
    Pending(Pending),
}

/// Why a request could not be served, by the status it answers.
#[derive(Debug)]
pub enum Failure {
    /// 404.
    NoSuchKey(String),
    /// 409: the action does not apply to the key's state.
    Refused(String),
    /// 503: the state cannot be read or changed now (the caller may retry).
    Unavailable(String),
    /// 400: what was asked names nothing the state can hold.
    BadRequest(String),
    /// 500: the state holds something invalid; logged in full under an error id, which the
    /// answer gives.
    Internal(String),
}

impl From<FleetError> for Failure {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::NoSuchKey(m) => Failure::NoSuchKey(m),
            FleetError::Conflict(m) => Failure::Refused(m),
            FleetError::BadInput(m) => Failure::BadRequest(m),
            FleetError::Corrupt(m) => Failure::Internal(m),
            other => Failure::Unavailable(other.to_string()),
        }
    }
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
