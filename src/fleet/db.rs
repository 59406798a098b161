//! Connecting to the fleet's database: the URL from the environment or a file (never the
//! configuration, never a log line), TLS with rustls verifying the database's certificate, and
//! the connection driven by a task that passes on notifications.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client};
use zeroize::Zeroizing;

use super::FleetError;
use crate::config::{PostgresConfig, UrlSource};

/// The channel a committed change is announced on (the trigger's `pg_notify`).
pub const CHANNEL: &str = "ccs_state";

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An open connection.
pub struct Session {
    pub client: Client,
    /// Woken by every notification on [`CHANNEL`] (coalesced: one wake-up may stand for many).
    pub changed: Arc<Notify>,
    /// Ends when the connection does, with its error.
    pub closed: JoinHandle<Result<(), tokio_postgres::Error>>,
}

/// How to reach the database: its parsed URL and the TLS connector.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tokio-postgres redacts the password in its own Debug; the hosts are enough here.
        f.debug_struct("Target")
            .field("hosts", &self.config.get_hosts())
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Reads the URL `pg` names, and the CA file when there is one.
    pub fn new(pg: &PostgresConfig, application: &str) -> Result<Self, FleetError> {
        let (url, from) = read_url(&pg.url)?;
        let mut config = tokio_postgres::Config::from_str(url.trim_end_matches(['\r', '\n']))
            .map_err(|e| {
                FleetError::Config(format!(
                    "the database URL in {from} is not a libpq URL: {e}"
                ))
            })?;
        config
            .application_name(application)
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives_idle(Duration::from_secs(5))
            .tcp_user_timeout(pg.max_staleness.min(Duration::from_secs(10)));
        let mut roots = rustls::RootCertStore::empty();
        match &pg.ca {
            Some(ca) => {
                // A CA named means TLS is required and its certificate verified against it.
                config.ssl_mode(SslMode::Require);
                for cert in read_ca(ca)? {
                    roots.add(cert).map_err(|e| {
                        FleetError::Config(format!("state.ca {}: {e}", ca.display()))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FleetError::Config(format!("TLS to the database: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config,
            tls: tokio_postgres_rustls::MakeRustlsConnect::new(tls),
        })
    }

    /// Connects, within the connect timeout.
    pub async fn connect(&self) -> Result<Session, FleetError> {
        let connecting = self.config.connect(self.tls.clone());
        let (client, mut connection) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| FleetError::Timeout("connecting to the database"))?
            .map_err(|e| match e.to_string().contains("TLS handshake") {
                true => {
                    let cause = std::error::Error::source(&e)
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default();
                    FleetError::Config(format!(
                        "database: TLS handshake failed{cause}: the database's certificate must verify against [state] ca (the CA that signed it), or against the public web PKI without it"
                    ))
                }
                false => FleetError::Database(e),
            })?;
        let changed = Arc::new(Notify::new());
        let wake = Arc::clone(&changed);
        let closed = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                        wake.notify_one();
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                }
            }
        });
        Ok(Session {
            client,
            changed,
            closed,
        })
    }
}

/// The URL and where it was read from (for messages); wiped when dropped.
fn read_url(source: &UrlSource) -> Result<(Zeroizing<String>, String), FleetError> {
    match source {
        UrlSource::Env(var) => match std::env::var(var) {
            Ok(url) if !url.is_empty() => Ok((Zeroizing::new(url), format!("${var}"))),
            _ => Err(FleetError::Config(format!(
                "state.url_env names ${var}, which is not set: export the database URL (postgresql://user@host/db) in it"
            ))),
        },
        UrlSource::File(path) => match crate::secret_file::read(path) {
            Ok(url) if !url.trim().is_empty() => Ok((url, path.display().to_string())),
            Ok(_) => Err(FleetError::Config(format!(
                "state.url_file {} is empty",
                path.display()
            ))),
            Err(e) => Err(FleetError::Config(format!(
                "state.url_file {}: cannot read: {e}",
                path.display()
            ))),
        },
    }
}

fn read_ca(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, FleetError> {
    use rustls_pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> =
        rustls_pki_types::CertificateDer::pem_file_iter(path).and_then(|certs| certs.collect());
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(FleetError::Config(format!(
            "state.ca {}: holds no PEM certificate",
            path.display()
        ))),
        Err(e) => Err(FleetError::Config(format!(
            "state.ca {}: {e}",
            path.display()
        ))),
    }
}
