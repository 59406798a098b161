//! HTTP: the one resource, the order of its checks, and the single place where every failure
//! becomes a status code, a JSON message and a log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde::Serialize;
use time::OffsetDateTime;

use crate::cert;
use crate::fleet::polls::Answer;
use crate::protocol::{parse_kek_path, PathError};
use crate::runtime::AppState;
use crate::server::peer::{ConnInfo, PeerPolicy};

/// The response header carrying the request id (also in the log line).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The service: every path reaches one handler, which parses the path itself so that nothing is
/// normalised before the checks see it.
pub fn router(state: Arc<AppState>, policy: PeerPolicy) -> Router {
    Router::new()
        .fallback(kek)
        .with_state(Arc::new(Service { state, policy }))
}

/// What the handler runs on: the shared state, and who may ask (shared: axum clones the state
/// for every request).
struct Service {
    state: Arc<AppState>,
    policy: PeerPolicy,
}

async fn kek(State(service): State<Arc<Service>>, request: Request) -> Response {
    let Service { state, policy } = &*service;
    if request.uri().path() == "/healthz" {
        return healthz(&request);
    }
    let started = Instant::now();
    let request_id = new_request_id();
    let conn = request.extensions().get::<ConnInfo>().copied();
    let mut record = Record::default();
    let client = conn.map(|conn| policy.client(&conn, request.headers()));
    record.client = client;
    let outcome = match client {
        Some(client) if !policy.allows(client) => Err(Failure::Forbidden(client)),
        _ => {
            decide(
                state,
                request.uri(),
                request.method(),
                request.headers(),
                &mut record,
            )
            .await
        }
    };
    let status = outcome
        .as_ref()
        .map_or_else(Failure::status, |_| StatusCode::OK);
    let response = respond(&outcome, status, &record, &request_id);
    let reason = match &outcome {
        Ok(_) if record.kill_switch => "not_after_passed",
        Ok(_) => "ok",
        Err(failure) => failure.reason(),
    };
    let detail = outcome.as_ref().err().and_then(Failure::detail);
    let latency = started.elapsed();
    observe(state, &outcome, &record, status, reason, latency);
    log_request(
        &request_id,
        conn,
        request.method().as_str(),
        request.uri().path(),
        status,
        reason,
        &record,
        detail.as_deref(),
        latency,
    );
    response
}

/// The answer: the body, or the error with its message, and the headers every answer carries.
fn respond(
    outcome: &Result<KekBody, Failure>,
    status: StatusCode,
    record: &Record,
    request_id: &str,
) -> Response {
    let mut response = match outcome {
        Ok(body) => json(StatusCode::OK, body),
        Err(failure) => {
            let message = failure.message(record, request_id);
            let error_id = status.is_server_error().then_some(request_id);
            json(
                status,
                &ErrorBody {
                    error: &message,
                    error_id,
                },
            )
        }
    };
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, id);
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("GET"));
    }
    response
}

/// The request's metrics: its status and latency, a refused certificate, a successful poll.
fn observe(
    state: &AppState,
    outcome: &Result<KekBody, Failure>,
    record: &Record,
    status: StatusCode,
    reason: &'static str,
    latency: Duration,
) {
    let metrics = &state.metrics;
    metrics.request(status.as_u16(), reason, latency.as_secs_f64());
    match outcome {
        Err(Failure::Cert(e)) => metrics.rejection(e.reason()),
        Ok(_) => {
            if let (Some(instance), Some(not_after)) = (&record.instance, record.cert_not_after) {
                metrics.poll(instance.as_str(), OffsetDateTime::now_utc(), not_after);
            }
        }
        Err(_) => {}
    }
    // In a fleet, the outcome of a poll whose certificate passed is queued for the database
    // (`keys status`: "the kill reached the database"); never waited on.
    // On a single node it is kept in memory for the admin API's key status.
    if let (Some(instance), Some(key_id), Some(_)) =
        (&record.instance, record.key_id, &record.verified_by)
    {
        let answer = Answer {
            at: OffsetDateTime::now_utc(),
            status: status.as_u16(),
            reason,
            valid_until: record.valid_until_at,
        };
        match state.polls.get() {
            Some(polls) => polls.record(instance, key_id, answer),
            None => state.last_polls.record(instance, key_id, answer),
        }
    }
}

/// Liveness on the service port, for load balancers: answered before the allow-list, logged
/// at debug only.
fn healthz(request: &Request) -> Response {
    tracing::debug!(method = %request.method(), "healthz");
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only GET is allowed on /healthz",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// The checks after the allow-list (403), in the order the contract fixes: path (400), method
/// (405), certificate (401), key (404), wrap (500). Nothing about keys is looked at before the
/// certificate has passed.
async fn decide(
    state: &AppState,
    uri: &Uri,
    method: &Method,
    headers: &HeaderMap,
    record: &mut Record,
) -> Result<KekBody, Failure> {
    let path = parse_kek_path(uri.path()).map_err(Failure::Path)?;
    if uri.query().is_some() {
        return Err(Failure::Path(PathError::Query));
    }
    record.instance = Some(path.instance.clone());
    record.key_id = Some(path.key_id);
    if method != Method::GET {
        return Err(Failure::Method);
    }

    let values = headers.get_all(cert::HEADER);
    let value =
        cert::single_header(values.iter().map(HeaderValue::as_bytes)).map_err(Failure::Cert)?;
    let now = OffsetDateTime::now_utc();
    let verified = verify(&state.trust(), Presented::Header(value), &path, now, record)?;
    let wrapped = state
        .keys
        .wrap_for(
            verified.identity.sha256,
            &path.instance,
            path.key_id,
            &verified.recipient,
            state.wrap,
        )
        .await
        .map_err(Failure::Key)?;
    finish(&wrapped, state.validity, &path, now, record)
}

/// `{"error": message}` with the headers every answer carries.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    json(
        status,
        &ErrorBody {
            error: message,
            error_id: None,
        },
    )
}

/// A JSON answer with `Content-Type: application/json` and `Cache-Control: no-store`.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    // Serialising these plain structs cannot fail; an empty object is the safe fallback.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    let headers: &mut HeaderMap = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

mod answer;
mod failure;
mod log;
mod outside;
mod record;

pub use answer::offline_answer;
pub use outside::{answer_outside, Outside};

use answer::{finish, verify, ErrorBody, KekBody, Presented};
use failure::Failure;
use log::{log_request, new_request_id};
use record::Record;

#[cfg(test)]
mod tests;
