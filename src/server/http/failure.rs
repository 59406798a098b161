//! Why a request did not get a key, and the one mapping of every such reason to a status code,
//! a `reason` label, a message for the caller and a detail for the log.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::StatusCode;

use super::record::Record;
use crate::cert::CertError;
use crate::keystore::LookupError;
use crate::protocol::{InstanceName, PathError};
use crate::server::head_guard::Refused;

/// Why a request did not get a key. `status` is the one mapping to HTTP.
#[derive(Debug)]
pub(super) enum Failure {
    /// The client address is not on the allow-list.
    Forbidden(IpAddr),
    Path(PathError),
    Method,
    Cert(CertError),
    /// The certificate's root is in doubt: its file failed to reload (the reason).
    TrustInDoubt(String),
    Key(LookupError),
    /// The detail goes to the log only.
    Internal(String),
    /// A request head refused before routing (see `head_guard`).
    Head(Refused),
    /// No answer within `[limits] request_timeout`.
    Timeout(Duration),
}

impl Failure {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Failure::Forbidden(_) => StatusCode::FORBIDDEN,
            Failure::Path(_) => StatusCode::BAD_REQUEST,
            Failure::Method => StatusCode::METHOD_NOT_ALLOWED,
            Failure::Cert(_) => StatusCode::UNAUTHORIZED,
            Failure::TrustInDoubt(_) | Failure::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Head(Refused::TooLarge(_)) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Failure::Head(Refused::Malformed(_)) => StatusCode::BAD_REQUEST,
            Failure::Key(LookupError::NotFound | LookupError::Disabled) => StatusCode::NOT_FOUND,
            Failure::Key(LookupError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Key(
                LookupError::Wrap(_) | LookupError::Backend(_) | LookupError::KcvMismatch(_),
            )
            | Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(super) fn reason(&self) -> &'static str {
        match self {
            Failure::Forbidden(_) => "not_allowed",
            Failure::Path(PathError::Query) => "query_string",
            Failure::Path(_) => "bad_path",
            Failure::Method => "method_not_allowed",
            Failure::Cert(e) => e.reason(),
            Failure::TrustInDoubt(_) => "trust_state_unknown",
            Failure::Head(Refused::TooLarge(_)) => "head_too_large",
            Failure::Head(Refused::Malformed(_)) => "bad_request_head",
            Failure::Timeout(_) => "request_timeout",
            Failure::Key(LookupError::NotFound) => "key_not_found",
            Failure::Key(LookupError::Disabled) => "key_disabled",
            Failure::Key(LookupError::Wrap(_)) => "wrap_failed",
            Failure::Key(LookupError::Backend(_)) => "key_backend_failed",
            Failure::Key(LookupError::Unavailable(_)) => "key_state_unknown",
            Failure::Key(LookupError::KcvMismatch(_)) => "kcv_mismatch",
            Failure::Internal(_) => "internal",
        }
    }

    /// The message for the caller. A missing and a disabled key read the same; the log tells
    /// them apart.
    pub(super) fn message(&self, record: &Record, request_id: &str) -> String {
        match self {
            Failure::Forbidden(ip) => {
                format!("Requests from {ip} are not allowed by this endpoint's allow-list")
            }
            Failure::Path(e) => format!("Bad request: {e}"),
            Failure::Head(Refused::TooLarge(why)) => format!(
                "Request header fields too large: {why}; a real X-DB-Certificate header is about 2 KiB"
            ),
            Failure::Head(Refused::Malformed(why)) => format!("Bad request: {why}"),
            Failure::Timeout(limit) => format!(
                "The request was not answered within {}; try again, quoting error id {request_id} if it persists",
                humantime::format_duration(*limit)
            ),
            Failure::Method => "Only GET is allowed on /kek/<instance>/<key_id>".into(),
            Failure::Cert(e) => e.to_string(),
            Failure::TrustInDoubt(_) => format!(
                "The issuer of this certificate cannot be confirmed (the endpoint's trust roots failed to reload); try again later, quoting error id {request_id} if it persists"
            ),
            Failure::Key(LookupError::NotFound | LookupError::Disabled) => format!(
                "No active key for instance {}, key id {}",
                record
                    .instance
                    .as_ref()
                    .map(InstanceName::as_str)
                    .unwrap_or("?"),
                record.key_id.unwrap_or_default()
            ),
            Failure::Key(
                LookupError::Wrap(_) | LookupError::Backend(_) | LookupError::KcvMismatch(_),
            )
            | Failure::Internal(_) => {
                format!("An internal error occurred; quote error id {request_id} when reporting it")
            }
            Failure::Key(LookupError::Unavailable(_)) => format!(
                "The current state of this key cannot be confirmed (the endpoint's key store failed to load); try again later, quoting error id {request_id} if it persists"
            ),
        }
    }

    pub(super) fn detail(&self) -> Option<String> {
        match self {
            Failure::Key(LookupError::Wrap(e)) => Some(e.to_string()),
            Failure::Key(
                LookupError::Backend(e) | LookupError::Unavailable(e) | LookupError::KcvMismatch(e),
            )
            | Failure::TrustInDoubt(e) => Some(e.clone()),
            Failure::Internal(detail) => Some(detail.clone()),
            _ => None,
        }
    }
}
