//! The service listener: connection limits, the PROXY header, TLS handshakes, HTTP/1.1 and
//! HTTP/2, timeouts, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

pub use crate::config::Limits;
use crate::http::json_error;
use crate::metrics::Metrics;
use crate::peer::{ConnInfo, PeerPolicy};
use crate::proxy;

/// How the listener treats connections.
#[derive(Clone)]
pub struct ServerOptions {
    pub limits: Limits,
    /// Every connection must start with a PROXY header from a trusted proxy.
    pub proxy_protocol: bool,
    pub policy: PeerPolicy,
    pub metrics: Arc<Metrics>,
}

/// Counts a connection in `ccs_open_connections` for as long as it lives.
struct Open(Arc<Metrics>);

impl Open {
    fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.connections(1);
        Self(Arc::clone(metrics))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections(-1);
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then stops accepting and
/// lets open connections finish for up to `limits.drain_timeout`.
pub async fn run(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let limits = options.limits;
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let options = Arc::new(options);
    tokio::pin!(shutdown);
    while let Some((stream, peer)) = next_connection(&listener, &mut shutdown).await {
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            options.metrics.connection_refused("max_connections");
            tracing::warn!(%peer, max_connections = limits.max_connections, "connection refused: too many open connections");
            continue;
        };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let options = Arc::clone(&options);
        tokio::spawn(async move {
            let _slot = slot;
            let _open = Open::new(&options.metrics);
            let Some((tls, proxied)) = accept(&acceptor, stream, peer, &options).await else {
                return;
            };
            let conn = ConnInfo { peer, proxied };
            let request_timeout = options.limits.request_timeout;
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(conn);
                    let call = app.clone().oneshot(request);
                    async move {
                        match tokio::time::timeout(request_timeout, call).await {
                            Ok(response) => response,
                            Err(_) => {
                                tracing::warn!(peer = %conn.peer, timeout = ?request_timeout, "request timed out");
                                Ok(json_error(
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    "The request took too long to answer; try again",
                                ))
                            }
                        }
                    }
                },
            );
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; draining open ones");
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?limits.drain_timeout, "connections still open after the drain timeout");
    }
}

/// The next accepted connection, or `None` once `stop` completes. Accept errors (out of file
/// descriptors and the like) are logged and retried after a pause instead of spinning.
pub(crate) async fn next_connection<F: Future<Output = ()>>(
    listener: &TcpListener,
    stop: &mut std::pin::Pin<&mut F>,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(e) => {
                    tracing::warn!(error = %e, local = ?listener.local_addr().ok(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stop.as_mut() => return None,
        }
    }
}

/// The PROXY header (when configured) and the TLS handshake, within the handshake timeout.
async fn accept(
    acceptor: &TlsAcceptor,
    mut stream: TcpStream,
    peer: SocketAddr,
    options: &ServerOptions,
) -> Option<(
    tokio_rustls::server::TlsStream<TcpStream>,
    Option<std::net::IpAddr>,
)> {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "TCP_NODELAY not set");
    }
    let timeout = options.limits.handshake_timeout;
    let refuse = |reason: &'static str, error: String| {
        options.metrics.connection_refused(reason);
        tracing::info!(%peer, reason, error, "connection refused");
        None
    };
    let handshake = async {
        let mut proxied = None;
        if options.proxy_protocol {
            if !options.policy.is_trusted_proxy(peer.ip()) {
                return Err((
                    "untrusted_proxy",
                    "a PROXY header is accepted only from server.trusted_proxies".to_owned(),
                ));
            }
            proxied = proxy::read_header(&mut stream)
                .await
                .map_err(|e| ("proxy_header", e.to_string()))?;
        }
        let tls = acceptor
            .accept(stream)
            .await
            .map_err(|e| ("tls_handshake", e.to_string()))?;
        Ok((tls, proxied))
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(accepted)) => Some(accepted),
        Ok(Err((reason, error))) => refuse(reason, error),
        Err(_) => refuse(
            "handshake_timeout",
            format!("no TLS handshake within {timeout:?}"),
        ),
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
