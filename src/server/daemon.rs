//! A loaded configuration wired into a running server: shared state, metrics, the swappable TLS
//! identity, the listeners and the reloader that keeps the parts current.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use rustls::ServerConfig;
use tokio::net::TcpListener;

use super::notify::notify;
use super::peer::PeerPolicy;
use super::{admin, http, listener, tls, ServerOptions};
use crate::api::{self, Api, Backend, ExportTargets, FileBackend, FleetBackend, SignersFile};
use crate::chain;
use crate::config::Backend as KeyBackend;
use crate::fleet::db::Target;
use crate::keystore::SecretsIn;
use crate::runtime::fleet::Fleet;
use crate::runtime::identity::{CertSwitch, TlsError};
use crate::runtime::metrics::Metrics;
use crate::runtime::state::AppState;
use crate::runtime::{
    record_file_changes, record_key_states, record_roots, watch, LoadError, Loaded, Reloader,
};

impl Loaded {
    /// Wires the loaded parts into a server: shared state, metrics, a swappable TLS identity and
    /// the reloader that keeps them current.
    pub fn into_daemon(self) -> Result<Daemon, LoadError> {
        let config = self.config;
        let metrics = Arc::new(Metrics::new());
        metrics.server_cert(self.tls.not_after);
        record_roots(&metrics, &self.trust);
        // A replica of a fleet serves nothing until it has read the shared state (§7, §8).
        let (keys, fleet) = match config.state.postgres() {
            None => {
                // What changed in the file while the server was down (or since the chain began).
                let states = chain::states(self.keys.states());
                let reason = "found in the key-store file at start-up";
                record_file_changes(&metrics, &config.keys.file, &states, reason);
                (self.keys, None)
            }
            Some(pg) => {
                let fleet = Fleet::new(pg, Arc::clone(&self.keys))
                    .map_err(|e| LoadError::Fleet(e.to_string()))?;
                (Fleet::initial(&self.keys), Some(fleet))
            }
        };
        record_key_states(&metrics, keys.states());
        let policy = PeerPolicy::new(
            config.server.allow.clone(),
            config.server.trusted_proxies.clone(),
        )
        .with_proxy_protocol(config.server.proxy_protocol);
        let state = Arc::new(AppState::new(
            Arc::new(self.trust),
            keys,
            config.wrap,
            config.keys.validity,
            Arc::clone(&metrics),
        ));
        let switch = Arc::new(CertSwitch::new(&self.tls));
        let tls = tls::server_config(Arc::clone(&switch)).map_err(|e| TlsError {
            file: config.tls.cert.clone(),
            message: e.to_string(),
        })?;
        let admin_connections = config.admin.max_connections;
        let options = ServerOptions {
            limits: config.limits,
            proxy_protocol: config.server.proxy_protocol,
            policy,
            metrics,
            http2: true,
        };
        if let Some(fleet) = &fleet {
            let _ = state.polls.set(Arc::clone(&fleet.polls));
        }
        let api_parts = config.api.clone().map(|api| {
            let secrets = match config.keys.backend {
                KeyBackend::Pkcs11(_) => SecretsIn::Token,
                KeyBackend::File => SecretsIn::File,
            };
            let store = config.keys.file.clone();
            let allow_open = config.keys.allow_insecure_permissions;
            (
                api,
                store,
                secrets,
                allow_open,
                config.state.postgres().cloned(),
            )
        });
        let api_tls = tls::api_config(Arc::clone(&switch)).map_err(|e| TlsError {
            file: config.tls.cert.clone(),
            message: e.to_string(),
        })?;
        let request_timeout = config.limits.request_timeout;
        let reloader = Arc::new(Reloader::new(
            config,
            self.source,
            Arc::clone(&state),
            Arc::clone(&switch),
            fleet.as_ref().map(Fleet::local),
        ));
        let api = match api_parts {
            None => None,
            Some((config, store, secrets, allow_open, pg)) => {
                let signers = SignersFile::open(
                    config.signers.clone(),
                    allow_open,
                    Arc::clone(&state.metrics),
                )
                .map_err(LoadError::Api)?;
                if pg.is_none() {
                    state.set_api_blocked(api::writable_beside(&store).err());
                }
                let backend = match pg {
                    None => Backend::File(FileBackend::new(
                        store,
                        secrets,
                        Arc::clone(&state),
                        Arc::clone(&reloader),
                    )),
                    Some(pg) => Backend::Fleet(Box::new(FleetBackend {
                        target: Target::new(&pg, "ccs-endpoint api")
                            .map_err(|e| LoadError::Fleet(e.to_string()))?,
                        sessions: tokio::sync::Semaphore::new(api::backend::FLEET_SESSIONS),
                        max_staleness: pg.max_staleness,
                        wait: api::fleet_wait(request_timeout),
                    })),
                };
                let exports = ExportTargets::load(&config.export_to).map_err(LoadError::Api)?;
                let api = Api {
                    config,
                    signers,
                    backend,
                    metrics: Arc::clone(&state.metrics),
                    state: Arc::clone(&state),
                    exports: Arc::new(exports),
                    identity: switch,
                    port: std::sync::OnceLock::new(),
                };
                Some((Arc::new(api), api_tls))
            }
        };
        Ok(Daemon {
            api,
            api_listener: None,
            fleet,
            state,
            reloader,
            tls,
            options,
            admin_connections,
        })
    }
}

/// A server ready to run: the state requests share, and what keeps it current.
pub struct Daemon {
    pub state: Arc<AppState>,
    /// The signed admin API and its TLS settings, with `[api]`.
    api: Option<(Arc<Api>, Arc<ServerConfig>)>,
    /// Where it listens (see `listen_api`).
    api_listener: Option<TcpListener>,
    /// The fleet side, with `[state] backend = "postgres"` (started by `run`).
    fleet: Option<Fleet>,
    pub reloader: Arc<Reloader>,
    tls: Arc<ServerConfig>,
    options: ServerOptions,
    admin_connections: usize,
}

impl Daemon {
    /// Where `[api]` asks the admin API to listen, if it is configured.
    pub fn api_address(&self) -> Option<std::net::SocketAddr> {
        self.api.as_ref().map(|(api, _)| api.config.listen)
    }

    /// Serves the admin API on `listener` (bound by the caller at `api_address`).
    pub fn listen_api(&mut self, listener: TcpListener) {
        if let (Some((api, _)), Ok(local)) = (&self.api, listener.local_addr()) {
            let _ = api.port.set(local.port());
        }
        self.api_listener = Some(listener);
    }

    /// The service's routes over this daemon's state.
    pub fn router(&self) -> Router {
        http::router(Arc::clone(&self.state), self.options.policy.clone())
    }

    /// Serves on `service` (TLS) and `admin` (plain HTTP) and reloads on changes, until
    /// `shutdown` completes; then reports not ready, drains, and returns.
    pub async fn run(
        self,
        service: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) {
        let router = self.router();
        self.run_with(router, service, admin, shutdown).await;
    }

    /// As `run`, serving `router` (the daemon's own, perhaps with layers added) on `service`.
    pub async fn run_with(
        self,
        router: Router,
        service: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let follower = self
            .fleet
            .map(|fleet| fleet.start(Arc::clone(&self.state), stopped.clone()));
        let watcher = tokio::spawn(watch(Arc::clone(&self.reloader), stopped.clone()));
        let admin = admin.map(|listener| {
            let mut stopped = stopped.clone();
            tokio::spawn(admin::serve(
                listener,
                Arc::clone(&self.state),
                self.options.limits.header_timeout,
                self.admin_connections,
                async move {
                    let _ = stopped.changed().await;
                },
            ))
        });
        let api = match (self.api, self.api_listener) {
            (Some((api, tls)), Some(listener)) => {
                let mut stopped = stopped.clone();
                // The service's limits; every client in `[api] allow` may ask (the signature
                // decides).
                let options = ServerOptions {
                    limits: self.options.limits,
                    proxy_protocol: false,
                    policy: PeerPolicy::new(api.config.allow.clone(), Vec::new()),
                    metrics: Arc::clone(&self.options.metrics),
                    http2: false,
                };
                Some(tokio::spawn(listener::run(
                    listener,
                    tls,
                    api::router(api),
                    options,
                    async move {
                        let _ = stopped.changed().await;
                    },
                )))
            }
            _ => None,
        };
        self.state.set_ready(true);
        notify("READY=1");
        let state = Arc::clone(&self.state);
        listener::run(service, self.tls, router, self.options, async move {
            shutdown.await;
            notify("STOPPING=1");
            state.set_ready(false);
        })
        .await;
        let _ = stop.send(true);
        let _ = watcher.await;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        if let Some(api) = api {
            let _ = api.await;
        }
        if let Some(follower) = follower {
            // Marks this replica stopped, so `--wait` does not wait for it (bounded).
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), follower).await;
        }
    }
}
