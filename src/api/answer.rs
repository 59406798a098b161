//! The admin API's answers: JSON, never cached; errors as `{"error", "message"}`; a key, a
//! change's outcome.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::outcome::{Failure, KeyView, Outcome};
use crate::httpsig::Refusal;
use crate::protocol::format_timestamp;

/// An answer: JSON, never cached.
pub(super) fn answer(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    answer(status, &json!({ "error": code, "message": message }))
}

pub(super) fn refusal(refusal: &Refusal) -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        &refusal.to_string(),
    )
}

pub(super) fn failure(failure: Failure) -> Response {
    match failure {
        Failure::NoSuchKey(m) => error(StatusCode::NOT_FOUND, "no_such_key", &m),
        Failure::Refused(m) => error(StatusCode::CONFLICT, "refused", &m),
        Failure::Unavailable(m) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &m),
        Failure::BadRequest(m) => error(StatusCode::BAD_REQUEST, "bad_request", &m),
        Failure::Internal(m) => {
            let id = error_id();
            tracing::error!(error_id = %id, error = %m, "admin API: the key state holds something invalid");
            let message = format!(
                "the key state holds something this server cannot read; the server's log has it under error id {id}"
            );
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &message)
        }
    }
}

/// A name for one internal error, to find its log line by: random, so that it says nothing of
/// the state.
fn error_id() -> String {
    let mut bytes = [0u8; 8];
    // A CSPRNG failure leaves zeros: the id is a name, not a secret.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    format!("err_{}", hex::encode(bytes))
}

/// A key as JSON.
pub(super) fn key_json(view: &KeyView, now: OffsetDateTime) -> Value {
    let key = &view.state;
    let state = key.condition(now).name();
    let mut value = json!({
        "instance": key.instance.as_str(),
        "key_id": key.key_id,
        "kcv": key.kcv.to_string(),
        "state": state,
        "disabled": key.disabled,
        "not_after": key.not_after.map(format_timestamp),
        "last_poll": view.last_poll.as_ref().map(|p| json!({
            "at": p.at,
            "replica": (!p.replica.is_empty()).then_some(&p.replica),
            "status": p.status,
            "reason": p.reason,
            "validUntil": p.valid_until,
        })),
    });
    if let (Some((revision, at, by, reason)), Some(object)) = (&view.changed, value.as_object_mut())
    {
        object.insert(
            "last_change".into(),
            json!({ "revision": revision, "at": at, "actor": by, "reason": reason }),
        );
    }
    value
}

pub(super) fn outcome_response(outcome: Outcome, now: OffsetDateTime) -> Response {
    match outcome {
        Outcome::Applied {
            revision,
            applied,
            total,
            approvers,
            key,
            head,
        } => {
            let view = KeyView {
                state: key,
                last_poll: None,
                changed: None,
            };
            let mut key = key_json(&view, now);
            if let Some(object) = key.as_object_mut() {
                object.remove("last_poll");
            }
            answer(
                StatusCode::OK,
                &json!({
                    "status": "applied",
                    "revision": revision,
                    "audit_head": head,
                    "replicas": { "applied": applied, "total": total },
                    "approvers": approvers,
                    "key": key,
                }),
            )
        }
        Outcome::Pending(pending) => answer(
            StatusCode::ACCEPTED,
            &json!({
                "status": "pending",
                "approval": pending.id,
                "approvals": pending.approvers.len(),
                "required": pending.required,
                "approvers": pending.approvers,
                "expires": pending.expires,
            }),
        ),
    }
}
