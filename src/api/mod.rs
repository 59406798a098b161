//! The signed admin API (contract §9): the remote kill switch. Its own HTTPS listener (the
//! server's TLS identity, HTTP/1.1), every request signed with HTTP Message Signatures
//! (RFC 9421, HMAC) by a signer of the signers file, the actions each signer may take, quorum
//! for the changes, and JSON in and out with `Cache-Control: no-store`.
//!
//! A request is judged in this order: the endpoint (404/405/400 — public knowledge), the
//! signature (401, the message names the rule), the signer's right to the action (403), the
//! nonce (401 on a replay; taken only once the signature verified, so only signers fill the
//! cache), the body (400), then the key (404) and whether the action applies to its state (409).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::{ALLOW, HOST};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use time::OffsetDateTime;

use crate::config::ApiConfig;
use crate::httpsig::{Evidence, Message, Refusal};
use crate::runtime::metrics::Metrics;

mod act;
mod answer;
mod auth;
pub mod backend;
mod export;
mod file;
mod file_store;
mod fleet;
mod nonce_file;
mod outcome;
pub mod proof;
mod routes;
mod signers_file;

pub use auth::authenticate;
pub use backend::{Backend, FileBackend, FleetBackend};
pub use export::ExportTargets;
pub use file_store::writable_beside;
pub use routes::{ChangeBody, Route};
pub use signers_file::SignersFile;

use act::Signer;
use answer::{error, failure, refusal};
use routes::NoRoute;

/// The largest request body taken (a change's JSON is a few hundred bytes).
pub const MAX_BODY: usize = 16 * 1024;

/// What the API's requests share.
pub struct Api {
    pub config: ApiConfig,
    pub signers: SignersFile,
    pub backend: Backend,
    pub metrics: Arc<Metrics>,
    /// The keys this server serves (an export wraps from their secrets).
    pub state: Arc<crate::runtime::AppState>,
    /// The certificates of `[api] export_to`.
    pub exports: Arc<ExportTargets>,
    /// The TLS identity presented now: its names are the API's own by default.
    pub identity: Arc<crate::runtime::identity::CertSwitch>,
    /// The port the API listens on (set once bound).
    pub port: std::sync::OnceLock<u16>,
}

/// The API's routes over `api`.
pub fn router(api: Arc<Api>) -> Router {
    Router::new().fallback(handle).with_state(api)
}

async fn handle(State(api): State<Arc<Api>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let route = Route::parse(&parts.method, parts.uri.path());
    let action = route.as_ref().map_or("none", |r| r.permission().name());
    let (response, signer) = match route {
        Err(NoRoute::NotFound) => (
            error(StatusCode::NOT_FOUND, "not_found", "no such endpoint: see GET /v1/keys, GET /v1/keys/{instance}/{key_id}, GET /v1/approvals, POST /v1/keys/{instance}/{key_id}/{disable|enable|shutdown|renew|export}"),
            None,
        ),
        Err(NoRoute::Method(allowed)) => {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("this endpoint takes {allowed} only"),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allowed));
            (response, None)
        }
        Err(NoRoute::BadName(message)) => {
            (error(StatusCode::BAD_REQUEST, "bad_request", &message), None)
        }
        Ok(route) => match axum::body::to_bytes(body, MAX_BODY).await {
            Err(_) => (
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    &format!("the body is larger than {MAX_BODY} bytes, or was cut short"),
                ),
                None,
            ),
            Ok(body) => api.serve(route, &parts, &body).await,
        },
    };
    let status = response.status().as_u16();
    api.metrics.api_request(action, status);
    tracing::info!(
        target: "ccs_endpoint::audit",
        event = "api_request",
        method = %parts.method,
        path = parts.uri.path(),
        action,
        signer = signer.as_deref().unwrap_or("-"),
        status,
        duration_ms = started.elapsed().as_millis() as u64,
        "admin API request"
    );
    response
}

impl Api {
    /// Authenticates, authorises and serves `route`: the answer, and who signed it.
    async fn serve(
        &self,
        route: Route,
        parts: &axum::http::request::Parts,
        body: &[u8],
    ) -> (Response, Option<String>) {
        let mut hosts = parts.headers.get_all(HOST).iter();
        let (Some(host), None) = (hosts.next(), hosts.next()) else {
            return (
                error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "send exactly one Host header",
                ),
                None,
            );
        };
        let Ok(host) = host.to_str() else {
            return (
                error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the Host header is not ASCII",
                ),
                None,
            );
        };
        // A signature is bound to this server (contract §9): its @target-uri is built from
        // the Host header, which must be one of this API's names.
        if let Err(refused) = self.addressed_here(host) {
            return (refusal(&refused), None);
        }
        let headers: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let message = Message {
            method: parts.method.as_str(),
            authority: host,
            path_and_query: path,
            headers: &headers,
            body,
        };
        let signers = match self.signers.current() {
            Ok(signers) => signers,
            Err(e) => {
                let message = format!("the signers file cannot be used, so no request can be authenticated until it is fixed: {e}");
                return (
                    error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &message),
                    None,
                );
            }
        };
        let now = OffsetDateTime::now_utc();
        let skew = i64::try_from(self.config.clock_skew.as_secs()).unwrap_or(60);
        let (signer, params) = match authenticate(&message, &signers, now, skew) {
            Ok(found) => found,
            Err(refused) => return (refusal(&refused), None),
        };
        let key_id = signer.key_id.clone();
        if parts.method == axum::http::Method::POST
            && !params.components.iter().any(|c| c == "content-digest")
        {
            let refused = Refusal::NotCovered("content-digest (required for every POST)");
            return (refusal(&refused), Some(key_id));
        }
        let permission = route.permission();
        if !signer.actions.contains(&permission) {
            let message = format!(
                "key id {key_id:?} may not {}: its actions are {}",
                permission.name(),
                signer
                    .actions
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return (
                error(StatusCode::FORBIDDEN, "forbidden", &message),
                Some(key_id),
            );
        }
        if let Err(e) = self
            .backend
            .take_nonce(
                &key_id,
                &params.nonce,
                params.created,
                now.unix_timestamp(),
                skew,
            )
            .await
        {
            let response = match e {
                Ok(refused) => refusal(&refused),
                Err(f) => failure(f),
            };
            return (response, Some(key_id));
        }
        // The signed request, for the audit record of the change it asks for (contract §10).
        let evidence = Evidence::of(&params, &message).json();
        let signed = Signer {
            key_id: &key_id,
            signers: &signers,
            evidence: &evidence,
        };
        let response = match self.route(route, body, signed, now).await {
            Ok(response) => response,
            Err(f) => failure(f),
        };
        (response, Some(key_id))
    }

    /// Whether `host` (the request's authority) is one of this API's names: `[api] names`, or
    /// by default each name of the TLS certificate presented now with the API's port (and
    /// alone on port 443).
    fn addressed_here(&self, host: &str) -> Result<(), Refusal> {
        let host = host.to_ascii_lowercase();
        let port = self
            .port
            .get()
            .copied()
            .unwrap_or(self.config.listen.port());
        let names = own_names(&self.config.names, &self.identity.names(), port);
        if names.contains(&host) {
            return Ok(());
        }
        Err(Refusal::OtherServer {
            authority: host,
            names: match names.is_empty() {
                true => "it has no names: its certificate names no DNS name or IP address, and [api] names is empty".into(),
                false => names.join(", "),
            },
        })
    }
}

/// The API's own names, as the authority of a request to it reads: `[api] names` when set,
/// else each of its certificate's names with the API's port (and alone on port 443).
pub fn own_names(configured: &[String], certificate: &[String], port: u16) -> Vec<String> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let mut names = Vec::new();
    for name in certificate {
        names.push(format!("{name}:{port}"));
        if port == 443 {
            names.push(name.clone());
        }
    }
    names
}

/// How long a fleet change waits for the live replicas before answering.
pub fn fleet_wait(request_timeout: Duration) -> Duration {
    (request_timeout / 2).min(Duration::from_secs(5))
}
