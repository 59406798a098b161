//! The service listener: connection limits, the PROXY header, TLS handshakes, HTTP/1.1 and
//! HTTP/2, timeouts, and graceful shutdown.
//!
//! A connection holds a slot only while it is useful: the allow-list and the per-client cap are
//! applied at accept (after the PROXY header when that is on), the handshake has its timeout,
//! and afterwards, whatever the protocol, a connection that goes `header_timeout` without a
//! complete request head is closed (the HTTP/1-or-2 sniff, an idle HTTP/2 connection and a
//! stream whose head never completes included).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::http::HeaderValue;
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
use crate::runtime::metrics::Metrics;
use crate::server::admission::{Admission, ClientSlot, Refusal};
use crate::server::head_guard::{HeadGuard, Refusals};
use crate::server::http::{answer_outside, Outside};
use crate::server::peer::{ConnInfo, PeerPolicy};
use crate::server::proxy;
use crate::server::shed::{Activity, Shedder};

/// How the listener treats connections.
#[derive(Clone)]
pub struct ServerOptions {
    pub limits: Limits,
    /// Every connection must start with a PROXY header from a trusted proxy.
    pub proxy_protocol: bool,
    pub policy: PeerPolicy,
    pub metrics: Arc<Metrics>,
    /// Whether HTTP/2 is served (by ALPN or prior knowledge); else HTTP/1.1 only.
    pub http2: bool,
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

/// Logs and counts a connection closed at accept for `refusal`. At debug only: a flood of them
/// must not flood the log (`ccs_connections_refused_total` counts them).
fn refused_at_accept(metrics: &Metrics, peer: SocketAddr, client: IpAddr, refusal: Refusal) {
    metrics.connection_refused(refusal.reason());
    tracing::debug!(%peer, %client, reason = refusal.reason(), "connection refused at accept");
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
    let admission = Arc::new(Admission::new(limits.max_connections_per_client));
    let shedder = Arc::new(Shedder::default());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // The head guard refuses heads over max_header_bytes before hyper reads them; hyper's
        // own buffer only has to hold one it was handed.
        .max_buf_size(limits.max_header_bytes + 8192);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_STREAMS)
        // Pings find a vanished peer; the idle limit below closes a silent one.
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout);
    // HTTP/1.1 only: hyper speaks nothing else, and the head guard refuses the HTTP/2 preface.
    let builder = if options.http2 {
        builder
    } else {
        builder.http1_only()
    };
    let options = Arc::new(options);
    tokio::pin!(shutdown);
    let (mut last_warning, mut refused_since_warning) = (None::<Instant>, 0u64);
    while let Some((stream, peer)) = next_connection(&listener, &mut shutdown).await {
        // Without the PROXY protocol the client is the TCP peer, judged before a byte is read.
        let client_slot = if options.proxy_protocol {
            None
        } else {
            match admission.admit(&options.policy, peer.ip()) {
                Ok(slot) => Some(slot),
                Err(refusal) => {
                    refused_at_accept(&options.metrics, peer, peer.ip(), refusal);
                    continue;
                }
            }
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => Some(slot),
            // Full: the connection doing least gives way (its slot comes back as it closes).
            Err(_) if shedder.evict_idlest() => {
                options.metrics.connection_refused("shed_idle");
                let freed = Arc::clone(&slots).acquire_owned();
                tokio::time::timeout(SHED_WAIT, freed)
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(slot) = slot else {
            options.metrics.connection_refused("max_connections");
            // At most one line a second: a flood must not flood the log too.
            refused_since_warning += 1;
            if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(%peer, max_connections = limits.max_connections, refused = refused_since_warning, "connections refused: too many open connections, every one busy with a request");
                last_warning = Some(Instant::now());
                refused_since_warning = 0;
            }
            continue;
        };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let options = Arc::clone(&options);
        let admission = Arc::clone(&admission);
        // Tracked from here, its handshake included: any connection may be asked to give way.
        let activity = Activity::new();
        let tracked = shedder.track(&activity);
        tokio::spawn(async move {
            let _slot = slot;
            let _open = Open::new(&options.metrics);
            let accepted = tokio::select! {
                accepted = accept(&acceptor, stream, peer, &options, &admission, client_slot) => accepted,
                () = tracked.evicted.notified() => None,
            };
            let Some((tls, proxied, _client_slot)) = accepted else {
                return;
            };
            let conn = ConnInfo { peer, proxied };
            let request_timeout = options.limits.request_timeout;
            let busy = Arc::clone(&activity);
            // HTTP/1 heads are judged before hyper sees them (HTTP/2 by ALPN frames its own).
            let refusals = Refusals::new();
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = if h2 {
                HeadGuard::passthrough(tls, Arc::clone(&refusals))
            } else {
                let guard =
                    HeadGuard::new(tls, options.limits.max_header_bytes, Arc::clone(&refusals));
                if options.http2 {
                    guard
                } else {
                    guard.http1_only()
                }
            };
            let metrics = Arc::clone(&options.metrics);
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    let busy = busy.begin();
                    let started = Instant::now();
                    let refused = refusals.take(request.headers());
                    // An HTTP/1 request with a body is answered and the connection closed: no
                    // endpoint takes one, and the guard stops judging heads after it.
                    let with_body = !h2
                        && (request.headers().contains_key(TRANSFER_ENCODING)
                            || request
                                .headers()
                                .get(CONTENT_LENGTH)
                                .is_some_and(|v| v.as_bytes() != b"0"));
                    let (method, uri) = (request.method().clone(), request.uri().clone());
                    request.extensions_mut().insert(conn);
                    let app = app.clone();
                    let metrics = Arc::clone(&metrics);
                    async move {
                        let _busy = busy;
                        if let Some(refused) = refused {
                            let outside = Outside::Refused(refused);
                            return Ok(answer_outside(
                                &metrics,
                                conn,
                                "-",
                                "-",
                                outside,
                                started.elapsed(),
                            ));
                        }
                        let mut response =
                            match tokio::time::timeout(request_timeout, app.oneshot(request)).await
                            {
                                Ok(response) => response?,
                                Err(_) => answer_outside(
                                    &metrics,
                                    conn,
                                    method.as_str(),
                                    uri.path(),
                                    Outside::Timeout(request_timeout),
                                    started.elapsed(),
                                ),
                            };
                        if with_body {
                            response
                                .headers_mut()
                                .insert(CONNECTION, HeaderValue::from_static("close"));
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            let watched = watcher.watch(connection.into_owned());
            tokio::select! {
                result = watched => if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                () = tracked.evicted.notified() => {
                    // Dropping the connection closes it: nothing was in flight when asked.
                    tracing::debug!(%peer, "connection closed to make room: the listener is full and it was doing least");
                }
                () = activity.idle_for(options.limits.header_timeout) => {
                    // Dropping the connection closes it: nothing is in flight.
                    options.metrics.connection_refused("idle_timeout");
                    tracing::debug!(%peer, timeout = ?options.limits.header_timeout, "connection closed: no complete request head within the header timeout");
                }
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

/// How long a new connection waits for the slot of the one that gave way.
const SHED_WAIT: Duration = Duration::from_millis(500);

/// HTTP/2 streams open at once on one connection.
const MAX_STREAMS: u32 = 32;

/// The PROXY header (when configured; then the client it names is admitted), and the TLS
/// handshake, within the handshake timeout.
async fn accept(
    acceptor: &TlsAcceptor,
    mut stream: TcpStream,
    peer: SocketAddr,
    options: &ServerOptions,
    admission: &Admission,
    admitted: Option<ClientSlot>,
) -> Option<(
    tokio_rustls::server::TlsStream<TcpStream>,
    Option<IpAddr>,
    Option<ClientSlot>,
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
        let mut admitted = admitted;
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
            let client = proxied.unwrap_or(peer.ip());
            match admission.admit(&options.policy, client) {
                Ok(slot) => admitted = Some(slot),
                Err(refusal) => {
                    refused_at_accept(&options.metrics, peer, client, refusal);
                    return Err((refusal.reason(), String::new()));
                }
            }
        }
        let tls = acceptor
            .accept(stream)
            .await
            .map_err(|e| ("tls_handshake", e.to_string()))?;
        Ok((tls, proxied, admitted))
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(accepted)) => Some(accepted),
        // Counted and logged where it was decided.
        Ok(Err(("not_allowed" | "max_connections_per_client", _))) => None,
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
