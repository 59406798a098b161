//! The admin listener (plain HTTP, loopback by default): `/healthz`, `/readyz`, `/metrics`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::runtime::state::AppState;
use crate::server::http::json;

/// The admin routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// 200 while serving; 503 before start-up has finished, while draining, and while the key
/// backend fails a real operation (a test wrap in the token; the file backend always passes).
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if !state.is_ready() {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "not ready"}),
        );
    }
    if let Some(why) = state.trust().roots().iter().find_map(|r| r.doubt.as_ref()) {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({
                "status": "not ready",
                "reason": format!("certificates of roots in doubt answer 503: {why}"),
            }),
        );
    }
    if let Some(why) = state.keys.store().withheld() {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({
                "status": "not ready",
                "reason": format!("keys answer 503: the key store failed to load: {why}"),
            }),
        );
    }
    match state.keys.health().await {
        // Ready to serve polls; what the signed API cannot do is said, not hidden.
        Ok(()) => match state.api_blocked() {
            None => json(StatusCode::OK, &serde_json::json!({"status": "ready"})),
            Some(why) => json(
                StatusCode::OK,
                &serde_json::json!({"status": "ready", "warnings": [why]}),
            ),
        },
        Err(error) => {
            tracing::warn!(target: "ccs_endpoint::hsm", %error, "readiness: the key backend failed its check");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "not ready", "reason": "key backend unavailable"}),
            )
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Serves the admin routes over HTTP/1.1 until `stop` completes. Request headers must arrive
/// within `header_timeout` (also the keep-alive idle limit), as on the service port: the admin
/// port is often exposed inside a cluster. At most `max_connections` are open at once; more are
/// closed at accept, so a flood cannot pile up tasks and sockets.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    header_timeout: Duration,
    max_connections: usize,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let metrics = Arc::clone(&state.metrics);
    let app = router(state);
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    tokio::pin!(stop);
    while let Some((stream, peer)) = crate::server::next_connection(&listener, &mut stop).await {
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            metrics.connection_refused("admin_max_connections");
            tracing::debug!(%peer, max_connections, "admin connection refused: too many open");
            continue;
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            app.clone().oneshot(request)
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = watched.await {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
}
