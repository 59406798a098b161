//! Everything the server runs on, loaded and validated from a `Config` in one step: the server's
//! TLS identity, the trust roots and the key store. `serve` and `check` share it, so `check`
//! passes exactly when `serve` would start.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use rustls::ServerConfig;
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::cert::{TrustError, TrustStore};
use crate::config::{Backend, Config, ConfigError, PinSource, Pkcs11Config};
use crate::hsm::HsmError;
use crate::keystore::{Condition, KeySource, KeyStore, KeyStoreError, Permissions};
use crate::runtime::metrics::Metrics;
use crate::runtime::reload::{self, Reloader};
use crate::runtime::state::AppState;
use crate::server::peer::PeerPolicy;
use crate::server::tls::{self, CertSwitch, Identity};
use crate::server::{self, ServerOptions};

/// Why the server cannot start. Each variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("TLS {file}: {message}")]
    Tls { file: PathBuf, message: String },
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    #[error(transparent)]
    Hsm(#[from] HsmError),
}

/// A fully loaded configuration.
pub struct Loaded {
    pub config: Config,
    pub tls: Identity,
    pub trust: TrustStore,
    pub keys: Arc<dyn KeyStore>,
    /// The backend the keys were loaded with (reloads use it again).
    pub source: KeySource,
    /// Things an operator should fix that do not stop the server.
    pub warnings: Vec<String>,
}

impl Loaded {
    /// Reads the configuration file and everything it names; nothing is half-loaded.
    pub fn from_file(path: &Path) -> Result<Self, LoadError> {
        Self::from_config(Config::load(path)?)
    }

    /// Loads everything a parsed configuration names.
    pub fn from_config(config: Config) -> Result<Self, LoadError> {
        let mut warnings = Vec::new();
        let tls = tls::load_identity(&config.tls.cert, &config.tls.key)?;
        let now = OffsetDateTime::now_utc();
        if tls.not_after < now {
            warnings.push(format!(
                "the server certificate {} expired on {}",
                config.tls.cert.display(),
                tls.not_after
            ));
        }
        let trust = TrustStore::load(&config.trust.roots, config.trust.min_rsa_bits)?;
        for root in trust.roots() {
            if root.not_after < now {
                warnings.push(format!(
                    "trust root {:?} in {} expired on {}",
                    root.subject,
                    root.file.display(),
                    root.not_after
                ));
            }
        }
        let permissions =
            Permissions::of(&config.keys.file).map_err(|source| KeyStoreError::Read {
                path: config.keys.file.clone(),
                source,
            })?;
        if let Some(warning) =
            permissions.verdict(&config.keys.file, config.keys.allow_insecure_permissions)?
        {
            warnings.push(warning);
        }
        if let Backend::Pkcs11(Pkcs11Config {
            pin: PinSource::File(pin),
            ..
        }) = &config.keys.backend
        {
            warnings.extend(crate::hsm::pin_file_verdict(
                pin,
                config.keys.allow_insecure_permissions,
            )?);
        }
        let source = KeySource::open(&config.keys, config.wrap)?;
        let keys = source.load(&config.keys.file)?;
        if keys.list().is_empty() {
            warnings.push(format!(
                "key store {} holds no key: every request will answer 404",
                config.keys.file.display()
            ));
        }
        Ok(Self {
            config,
            tls,
            trust,
            keys,
            source,
            warnings,
        })
    }
}

impl Loaded {
    /// A human summary of what is loaded, for `check` and the start-up log. Shows each key by
    /// its KCV, never its secret.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(out, "config      {}", c.path.display());
        let _ = writeln!(out, "listen      {}", c.server.listen);
        let _ = writeln!(
            out,
            "tls         {} ({}), expires {}",
            c.tls.cert.display(),
            self.tls.subject,
            crate::protocol::format_timestamp(self.tls.not_after)
        );
        let _ = writeln!(
            out,
            "trust       min_rsa_bits {}",
            self.trust.min_rsa_bits()
        );
        for root in self.trust.roots() {
            let _ = writeln!(
                out,
                "  root      {:?}, expires {}, sha256 {} ({})",
                root.subject,
                crate::protocol::format_timestamp(root.not_after),
                root.sha256,
                root.file.display()
            );
        }
        let _ = writeln!(
            out,
            "wrap        {}; validity {}",
            c.wrap,
            humantime::format_duration(c.keys.validity)
        );
        let keys = self.keys.list();
        let _ = writeln!(
            out,
            "keys        {} in {}",
            keys.len(),
            c.keys.file.display()
        );
        if let KeySource::Token(hsm) = &self.source {
            let _ = writeln!(
                out,
                "  secrets   in PKCS#11 {} ({}), labels ccs/<instance>/<key_id>",
                hsm.token_name(),
                hsm.module().display()
            );
        }
        let now = OffsetDateTime::now_utc();
        for key in keys {
            let state = match key.condition(now) {
                Condition::Disabled => "disabled (soft kill switch: answers 404)".to_owned(),
                Condition::ShutDown(t) => format!(
                    "shut down (hard kill switch: validUntil {} is past)",
                    crate::protocol::format_timestamp(t)
                ),
                Condition::Active { until: Some(t) } => {
                    format!("active until {}", crate::protocol::format_timestamp(t))
                }
                Condition::Active { until: None } => "active".to_owned(),
            };
            let _ = writeln!(
                out,
                "  key       instance {} key_id {} kcv {} {}",
                key.instance, key.key_id, key.kcv, state
            );
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "warning     {warning}");
        }
        out
    }
}

impl Loaded {
    /// Wires the loaded parts into a server: shared state, metrics, a swappable TLS identity and
    /// the reloader that keeps them current.
    pub fn into_daemon(self) -> Result<Daemon, LoadError> {
        let config = self.config;
        let metrics = Arc::new(Metrics::new());
        metrics.server_cert(self.tls.not_after);
        reload::record_roots(&metrics, &self.trust);
        reload::record_key_states(&metrics, &self.keys.list());
        let policy = PeerPolicy::new(
            config.server.allow.clone(),
            config.server.trusted_proxies.clone(),
        )
        .with_proxy_protocol(config.server.proxy_protocol);
        let state = Arc::new(AppState::new(
            Arc::new(self.trust),
            self.keys,
            config.wrap,
            // Bounded by MAX_VALIDITY when the configuration was parsed.
            time::Duration::try_from(config.keys.validity).unwrap_or(time::Duration::days(3650)),
            policy.clone(),
            Arc::clone(&metrics),
        ));
        let switch = Arc::new(CertSwitch::new(&self.tls));
        let tls = tls::server_config(Arc::clone(&switch)).map_err(|e| LoadError::Tls {
            file: config.tls.cert.clone(),
            message: e.to_string(),
        })?;
        let admin_connections = config.admin.max_connections;
        let options = ServerOptions {
            limits: config.limits,
            proxy_protocol: config.server.proxy_protocol,
            policy,
            metrics,
        };
        let reloader = Arc::new(Reloader::new(
            config,
            self.source,
            Arc::clone(&state),
            switch,
        ));
        Ok(Daemon {
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
    pub reloader: Arc<Reloader>,
    tls: Arc<ServerConfig>,
    options: ServerOptions,
    admin_connections: usize,
}

impl Daemon {
    /// The service's routes over this daemon's state.
    pub fn router(&self) -> Router {
        crate::server::http::router(Arc::clone(&self.state))
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
        let watcher = tokio::spawn(reload::watch(Arc::clone(&self.reloader), stopped.clone()));
        let admin = admin.map(|listener| {
            let mut stopped = stopped.clone();
            tokio::spawn(crate::server::admin::serve(
                listener,
                Arc::clone(&self.state),
                self.options.limits.header_timeout,
                self.admin_connections,
                async move {
                    let _ = stopped.changed().await;
                },
            ))
        });
        self.state.set_ready(true);
        let state = Arc::clone(&self.state);
        server::run(service, self.tls, router, self.options, async move {
            shutdown.await;
            state.set_ready(false);
        })
        .await;
        let _ = stop.send(true);
        let _ = watcher.await;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
    }
}
