//! Answers given outside the router, through the same mapping, metrics and log line as every
//! other: a request head the guard refused, and a request over the request timeout.

use std::time::Duration;

use axum::http::header::CONNECTION;
use axum::http::HeaderValue;
use axum::response::Response;

use super::{log_request, new_request_id, respond, Failure, Record};
use crate::runtime::metrics::Metrics;
use crate::server::head_guard::Refused;
use crate::server::peer::ConnInfo;

/// What was answered outside the router.
#[derive(Debug)]
pub enum Outside {
    /// The head was refused before hyper saw it (431 or 400); the connection closes after.
    Refused(Refused),
    /// The handler did not answer within the request timeout (503).
    Timeout(Duration),
}

/// The answer for `outside`, logged and counted as any other. `method` and `path` are what the
/// request said, when it got that far.
pub fn answer_outside(
    metrics: &Metrics,
    conn: ConnInfo,
    method: &str,
    path: &str,
    outside: Outside,
    latency: Duration,
) -> Response {
    let request_id = new_request_id();
    let refused = matches!(outside, Outside::Refused(_));
    let failure = match outside {
        Outside::Refused(refused) => Failure::Head(refused),
        Outside::Timeout(limit) => Failure::Timeout(limit),
    };
    let status = failure.status();
    let reason = failure.reason();
    let record = Record {
        client: Some(conn.proxied.unwrap_or(conn.peer.ip())),
        ..Record::default()
    };
    let detail = failure.detail();
    let outcome = Err(failure);
    let mut response = respond(&outcome, status, &record, &request_id);
    if refused {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    metrics.request(status.as_u16(), reason, latency.as_secs_f64());
    log_request(
        &request_id,
        Some(conn),
        method,
        path,
        status,
        reason,
        &record,
        detail.as_deref(),
        latency,
    );
    response
}
