//! How a probe ended, for people and for scripts: one outcome per thing an operator does next,
//! each with its own exit code, and the same facts as one JSON object (`probe --json`).

use serde_json::{json, Value};

use super::{ProbeError, ProbeReport};

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The key unwrapped as the database would, and `validUntil` is ahead: exit 0.
    Ok,
    /// The probe could not run: the URL, a file, a certificate and key that do not match: exit 1.
    Error,
    /// 200 with a `validUntil` that has passed (hard kill switch): the database shuts down: exit 3.
    Killed,
    /// 404: no active key (soft kill switch, or none configured): exit 4.
    Withdrawn,
    /// Another 4xx: the certificate, the allow-list, the request was refused: exit 5.
    Refused,
    /// 5xx: the endpoint could not answer (503: a state it cannot confirm): exit 6.
    Unavailable,
    /// A 200 the database could not use: shape, padding, plaintext, unwrap, KCV: exit 7.
    WrongAnswer,
    /// No answer: connection, TLS, HTTP exchange, timeout: exit 8.
    Unreachable,
}

impl Outcome {
    /// Its exit code (2 stays clap's, for a command line that does not parse).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Error => 1,
            Outcome::Killed => 3,
            Outcome::Withdrawn => 4,
            Outcome::Refused => 5,
            Outcome::Unavailable => 6,
            Outcome::WrongAnswer => 7,
            Outcome::Unreachable => 8,
        }
    }

    /// Its name in `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Killed => "killed",
            Outcome::Withdrawn => "withdrawn",
            Outcome::Refused => "refused",
            Outcome::Unavailable => "unavailable",
            Outcome::WrongAnswer => "wrong_answer",
            Outcome::Unreachable => "unreachable",
        }
    }
}

impl ProbeReport {
    /// `Ok`, or `Killed` when `validUntil` is not ahead.
    pub fn outcome(&self) -> Outcome {
        if self.seconds_left > 0 {
            Outcome::Ok
        } else {
            Outcome::Killed
        }
    }

    /// The report as `probe --json` prints it.
    pub fn to_json(&self) -> Value {
        json!({
            "outcome": self.outcome().name(),
            "status": 200,
            "keyId": self.key_id,
            "validUntil": self.valid_until,
            "secondsLeft": self.seconds_left,
            "kcv": self.kcv.to_string(),
            "padding": self.padding.name(),
            "plaintext": self.plaintext.name(),
        })
    }
}

impl ProbeError {
    /// What the failure means for the database.
    pub fn outcome(&self) -> Outcome {
        match self {
            ProbeError::Usage(_) | ProbeError::File { .. } => Outcome::Error,
            ProbeError::Connect { .. } | ProbeError::Tls { .. } | ProbeError::Http(_) => {
                Outcome::Unreachable
            }
            ProbeError::Status { status: 404, .. } => Outcome::Withdrawn,
            ProbeError::Status { status, .. } if *status >= 500 => Outcome::Unavailable,
            ProbeError::Status { .. } => Outcome::Refused,
            ProbeError::Shape(_)
            | ProbeError::Padding { .. }
            | ProbeError::Plaintext { .. }
            | ProbeError::Unwrap { .. }
            | ProbeError::Kcv { .. } => Outcome::WrongAnswer,
        }
    }

    /// The failure as `probe --json` prints it.
    pub fn to_json(&self) -> Value {
        let status = match self {
            ProbeError::Status { status, .. } => Some(*status),
            _ => None,
        };
        json!({
            "outcome": self.outcome().name(),
            "status": status,
            "error": self.to_string(),
        })
    }
}
