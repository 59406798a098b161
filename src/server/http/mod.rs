//! HTTP: the one resource, the order of its checks, and the single place where every failure
//! becomes a status code, a JSON message and a log line.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Serialize;
use time::OffsetDateTime;

use crate::cert::{self, CertError, CertIdentity, TrustStore, VerifiedCert};
use crate::keystore::{KeyStore, LookupError, Wrapped};
use crate::protocol::{format_timestamp, parse_kek_path, InstanceName, KekPath, KeyId, PathError};
pub use crate::runtime::state::AppState;
use crate::secret::Kcv;
use crate::server::head_guard::Refused;
use crate::server::peer::{ConnInfo, PeerPolicy};
use crate::wrap::WrapOptions;

/// The response header carrying the request id (also in the log line).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The service: every path reaches one handler, which parses the path itself so that nothing is
/// normalised before the checks see it.
pub fn router(state: Arc<AppState>, policy: PeerPolicy) -> Router {
    Router::new()
        .fallback(kek)
        .with_state(Service { state, policy })
}

/// What the handler runs on: the shared state, and who may ask.
#[derive(Clone)]
struct Service {
    state: Arc<AppState>,
    policy: PeerPolicy,
}

/// Why a request did not get a key. `status` is the one mapping to HTTP.
#[derive(Debug)]
enum Failure {
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
    fn status(&self) -> StatusCode {
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
            Failure::Key(LookupError::Wrap(_) | LookupError::Backend(_)) | Failure::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn reason(&self) -> &'static str {
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
            Failure::Internal(_) => "internal",
        }
    }

    /// The message for the caller. A missing and a disabled key read the same; the log tells
    /// them apart.
    fn message(&self, record: &Record, request_id: &str) -> String {
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
            Failure::Key(LookupError::Wrap(_) | LookupError::Backend(_)) | Failure::Internal(_) => {
                format!("An internal error occurred; quote error id {request_id} when reporting it")
            }
            Failure::Key(LookupError::Unavailable(_)) => format!(
                "The current state of this key cannot be confirmed (the endpoint's key store failed to load); try again later, quoting error id {request_id} if it persists"
            ),
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Failure::Key(LookupError::Wrap(e)) => Some(e.to_string()),
            Failure::Key(LookupError::Backend(e) | LookupError::Unavailable(e))
            | Failure::TrustInDoubt(e) => Some(e.clone()),
            Failure::Internal(detail) => Some(detail.clone()),
            _ => None,
        }
    }
}

/// What the log line of a request says, filled in as the checks go.
#[derive(Default)]
struct Record {
    instance: Option<InstanceName>,
    key_id: Option<KeyId>,
    cert: Option<CertIdentity>,
    verified_by: Option<String>,
    cert_not_after: Option<OffsetDateTime>,
    client: Option<IpAddr>,
    kcv: Option<Kcv>,
    valid_until: Option<String>,
    kill_switch: bool,
}

#[derive(Serialize)]
struct KekBody {
    #[serde(rename = "keyId")]
    key_id: KeyId,
    #[serde(rename = "validUntil")]
    valid_until: String,
    #[serde(rename = "wrappedKey")]
    wrapped_key: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(rename = "errorId", skip_serializing_if = "Option::is_none")]
    error_id: Option<&'a str>,
}

async fn kek(State(Service { state, policy }): State<Service>, request: Request) -> Response {
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
                &state,
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
    observe(&state, &outcome, &record, status, reason, latency);
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

/// A certificate as the header carried it (verified through the cache) or as DER.
enum Presented<'a> {
    Header(&'a [u8]),
    Der(&'a [u8]),
}

/// The certificate step (401) for a parsed request.
fn verify(
    trust: &TrustStore,
    presented: Presented<'_>,
    path: &KekPath,
    now: OffsetDateTime,
    record: &mut Record,
) -> Result<VerifiedCert, Failure> {
    let verified = match presented {
        Presented::Header(value) => trust.verify_header(value, &path.instance, now),
        Presented::Der(der) => trust.verify(der, &path.instance, now),
    };
    let verified = verified.map_err(|rejected| {
        record.cert = rejected.identity.map(|identity| *identity);
        Failure::Cert(rejected.error)
    })?;
    record.cert = Some(verified.identity.clone());
    record.verified_by = Some(verified.verified_by.clone());
    record.cert_not_after = Some(verified.not_after);
    if let Some(doubt) = &verified.trust_doubt {
        return Err(Failure::TrustInDoubt(doubt.clone()));
    }
    Ok(verified)
}

/// The answer for a wrapped key: `validUntil` from its state (the hard kill switch) and the body.
fn finish(
    wrapped: &Wrapped,
    validity: time::Duration,
    path: &KekPath,
    now: OffsetDateTime,
    record: &mut Record,
) -> Result<KekBody, Failure> {
    record.kcv = Some(wrapped.state.kcv);
    let valid_until = wrapped
        .state
        .valid_until(now, validity)
        .ok_or_else(|| Failure::Internal("validity overflows the calendar".into()))?;
    record.kill_switch = valid_until <= now;
    let valid_until = format_timestamp(valid_until);
    record.valid_until = Some(valid_until.clone());
    Ok(KekBody {
        key_id: path.key_id,
        valid_until,
        wrapped_key: BASE64.encode(&wrapped.ciphertext),
    })
}

/// What the server would answer for `der` on `path` at `now` with these roots and keys: the
/// status and the JSON body, by the handler's own steps. For `ccs-endpoint wrap`, which computes
/// it offline (a token's wrap blocks here).
pub fn offline_answer(
    trust: &TrustStore,
    keys: &KeyStore,
    wrap: WrapOptions,
    validity: time::Duration,
    der: &[u8],
    path: &KekPath,
    now: OffsetDateTime,
) -> (StatusCode, String) {
    let mut record = Record {
        instance: Some(path.instance.clone()),
        key_id: Some(path.key_id),
        ..Record::default()
    };
    let answer = verify(trust, Presented::Der(der), path, now, &mut record).and_then(|cert| {
        let wrapped = keys
            .wrap_for(&path.instance, path.key_id, &cert.recipient, wrap)
            .map_err(Failure::Key)?;
        finish(&wrapped, validity, path, now, &mut record)
    });
    let body = match answer {
        Ok(body) => {
            return (
                StatusCode::OK,
                serde_json::to_string(&body).unwrap_or_default(),
            )
        }
        Err(failure) => failure,
    };
    let message = body.message(&record, "offline");
    let error = ErrorBody {
        error: &message,
        error_id: None,
    };
    (
        body.status(),
        serde_json::to_string(&error).unwrap_or_default(),
    )
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

/// 64 random bits as 16 hex digits.
fn new_request_id() -> String {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = (nanos as u64).to_be_bytes();
    }
    hex::encode(bytes)
}

/// The one audit line of a request. Caller-supplied text (a path that did not parse) is quoted
/// and cut short.
#[allow(clippy::too_many_arguments)]
fn log_request(
    request_id: &str,
    conn: Option<ConnInfo>,
    method: &str,
    raw_path: &str,
    status: StatusCode,
    reason: &str,
    record: &Record,
    detail: Option<&str>,
    latency: Duration,
) {
    let peer: Option<SocketAddr> = conn.map(|c| c.peer);
    // The client, when it is not the TCP peer (a trusted proxy named it).
    let client = record.client.filter(|ip| Some(*ip) != peer.map(|p| p.ip()));
    // A path that parsed is exactly /kek/<instance>/<key_id>, which the line already says.
    let path = record
        .instance
        .is_none()
        .then(|| match raw_path.char_indices().nth(200) {
            Some((end, _)) => &raw_path[..end],
            None => raw_path,
        });
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                target: "ccs_endpoint::request",
                $level,
                request_id,
                peer = peer.map(tracing::field::display),
                client = client.map(tracing::field::display),
                method,
                path = path.map(tracing::field::debug),
                instance = record.instance.as_ref().map(InstanceName::as_str),
                key_id = record.key_id,
                status = status.as_u16(),
                reason,
                cert_sha256 = record.cert.as_ref().map(|c| tracing::field::display(c.sha256)),
                cert_serial = record.cert.as_ref().map(|c| c.serial.as_str()),
                root = record.verified_by.as_deref(),
                kcv = record.kcv.map(tracing::field::display),
                valid_until = record.valid_until.as_deref(),
                error_id = status.is_server_error().then_some(request_id),
                detail,
                latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
                "request"
            )
        };
    }
    if status.is_server_error() {
        event!(tracing::Level::ERROR);
    } else if record.kill_switch {
        event!(tracing::Level::WARN);
    } else {
        event!(tracing::Level::INFO);
    }
}

mod outside;
pub use outside::{answer_outside, Outside};

#[cfg(test)]
mod tests;
