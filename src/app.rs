//! Everything the server runs on, loaded and validated from a `Config` in one step: the server's
//! TLS identity, the trust roots and the key store. `serve` and `check` share it, so `check`
//! passes exactly when `serve` would start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::version::{TLS12, TLS13};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::cert::{TrustError, TrustStore};
use crate::config::{Config, ConfigError};
use crate::keystore::{FileKeyStore, KeyStoreError, Permissions};

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
}

/// The server's own certificate chain and key, ready for rustls.
pub struct TlsIdentity {
    pub config: Arc<ServerConfig>,
    /// Subject of the leaf certificate.
    pub subject: String,
    /// Expiry of the leaf certificate.
    pub not_after: OffsetDateTime,
}

/// A fully loaded configuration.
pub struct Loaded {
    pub config: Config,
    pub tls: TlsIdentity,
    pub trust: TrustStore,
    pub keys: FileKeyStore,
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
        let tls = load_tls(&config.tls.cert, &config.tls.key)?;
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
        let keys = FileKeyStore::load(&config.keys.file)?;
        if keys.is_empty() {
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
            warnings,
        })
    }
}

/// Reads the server's PEM chain and private key into a rustls configuration for TLS 1.3 and
/// 1.2, offering HTTP/2 and HTTP/1.1 by ALPN. Fails when the key does not match the certificate.
pub fn load_tls(cert: &Path, key: &Path) -> Result<TlsIdentity, LoadError> {
    let cert_err = |message: String| LoadError::Tls {
        file: cert.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(format!("cannot read the certificate chain: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("cannot read the certificate chain: {e}")))?;
    let leaf = chain
        .first()
        .ok_or_else(|| cert_err("holds no PEM CERTIFICATE block".into()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| cert_err(format!("the first certificate does not parse: {e}")))?;
    let subject = parsed.subject().to_string();
    let not_after = parsed.validity().not_after.to_datetime();
    // rustls' key errors never carry key material.
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| LoadError::Tls {
        file: key.to_owned(),
        message: format!("cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&TLS13, &TLS12])
        .map_err(|e| cert_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| LoadError::Tls {
            file: key.to_owned(),
            message: format!(
                "the private key cannot serve the certificate {} ({e}): is it the matching key?",
                cert.display()
            ),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        subject,
        not_after,
    })
}

impl Loaded {
    /// The request handler state and the TLS configuration, ready for `server::run`.
    pub fn into_parts(self) -> (crate::http::AppState, Arc<ServerConfig>) {
        let state = crate::http::AppState {
            trust: Arc::new(self.trust),
            keys: Arc::new(self.keys),
            wrap: self.config.wrap,
            // Bounded by MAX_VALIDITY when the configuration was parsed.
            validity: time::Duration::try_from(self.config.keys.validity)
                .unwrap_or(time::Duration::days(3650)),
        };
        (state, self.tls.config)
    }

    /// A human summary of what is loaded, for `check` and the start-up log. Shows each key by
    /// its KCV, never its secret.
    pub fn summary(&self) -> String {
        use crate::keystore::KeyStore as _;
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
        let now = OffsetDateTime::now_utc();
        for key in keys {
            let state = match key.not_after {
                _ if key.disabled => "disabled (soft kill switch: answers 404)".to_owned(),
                Some(t) if t <= now => format!(
                    "shut down (hard kill switch: validUntil {} is past)",
                    crate::protocol::format_timestamp(t)
                ),
                Some(t) => format!("active until {}", crate::protocol::format_timestamp(t)),
                None => "active".to_owned(),
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
