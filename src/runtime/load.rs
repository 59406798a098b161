//! Loading the parts a server runs on — its TLS identity, the trust roots, the keys — from a
//! [`Config`]. Start-up ([`Loaded`]) and every reload (`reload::Reloader`) call the same loader
//! per part, so a file is judged the same way whenever it is read: the same permission checks,
//! the same warnings, the same refusals. `serve` and `check` share `Loaded`, so `check` passes
//! exactly when `serve` would start.

use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

use super::identity::{self, Identity, TlsError};
use crate::cert::{TrustError, TrustStore};
use crate::config::{Backend, Config, ConfigError, PinSource, Pkcs11Config};
use crate::hsm::HsmError;
use crate::keystore::{check_permissions, shared_secrets, KeySource, KeyStore, KeyStoreError};

/// Why the server cannot start. Each variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// `[state] backend = "postgres"` whose URL or CA cannot be read.
    #[error("[state]: {0}")]
    Fleet(String),
    /// `[api]` whose signers file cannot be used.
    #[error("[api]: {0}")]
    Api(String),
}

/// A loaded part, with what an operator should fix that does not stop it from serving.
#[derive(Debug)]
pub struct WithWarnings<T> {
    pub value: T,
    pub warnings: Vec<String>,
}

/// The server's certificate chain and key (`[tls]`); warns when the certificate has expired.
pub fn tls(config: &Config, now: OffsetDateTime) -> Result<WithWarnings<Identity>, TlsError> {
    let identity = identity::load_identity(&config.tls.cert, &config.tls.key)?;
    let mut warnings = Vec::new();
    if identity.not_after < now {
        warnings.push(format!(
            "the server certificate {} expired on {}",
            config.tls.cert.display(),
            identity.not_after
        ));
    }
    Ok(WithWarnings {
        value: identity,
        warnings,
    })
}

/// The trust roots (`[trust]`) at start-up: every file must load. Warns of expired roots.
pub fn trust(config: &Config, now: OffsetDateTime) -> Result<WithWarnings<TrustStore>, TrustError> {
    let trust = TrustStore::load(&config.trust.roots, config.trust.min_rsa_bits)?;
    Ok(WithWarnings {
        warnings: expired_roots(&trust, now),
        value: trust,
    })
}

/// The trust roots on reload, which always gives a store (contract §7): a vanished or emptied
/// file withdraws its roots, a file that fails to load keeps its previous roots in doubt, and
/// with `doubt` (the configuration failed to re-read) every root is in doubt. The second value
/// lists what failed.
pub fn trust_again(
    config: &Config,
    previous: &TrustStore,
    doubt: Option<&str>,
    now: OffsetDateTime,
) -> (WithWarnings<TrustStore>, Vec<String>) {
    let (trust, errors) = match doubt {
        Some(why) => (TrustStore::in_doubt(previous, why), vec![why.to_owned()]),
        None => TrustStore::reload(&config.trust.roots, config.trust.min_rsa_bits, previous),
    };
    let part = WithWarnings {
        warnings: expired_roots(&trust, now),
        value: trust,
    };
    (part, errors)
}

/// One warning per configured root whose validity has ended.
fn expired_roots(trust: &TrustStore, now: OffsetDateTime) -> Vec<String> {
    trust
        .roots()
        .iter()
        .filter(|root| root.not_after < now)
        .map(|root| {
            format!(
                "trust root {:?} in {} expired on {}: the certificates it issued are refused",
                root.subject,
                root.file.display(),
                root.not_after
            )
        })
        .collect()
}

/// The secrets' backend `[keys]` names, opened once per process: for a token, its PIN file is
/// judged, the module loaded, the token logged in and test-wrapped.
pub fn key_source(config: &Config) -> Result<WithWarnings<KeySource>, LoadError> {
    let mut warnings = Vec::new();
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
    Ok(WithWarnings {
        value: KeySource::open(&config.keys, config.wrap)?,
        warnings,
    })
}

/// The key-store file (`[keys] file`) with `source`: its permissions judged, then every entry
/// read. Warns of group-readable (or allowed open) permissions, of one secret under several
/// instances, and of a store with no key.
pub fn keys(
    config: &Config,
    source: &KeySource,
) -> Result<WithWarnings<Arc<KeyStore>>, KeyStoreError> {
    let path: &Path = &config.keys.file;
    let mut warnings = Vec::new();
    warnings.extend(check_permissions(
        path,
        config.keys.allow_insecure_permissions,
    )?);
    let keys = match config.state.postgres() {
        None => source.load(path)?,
        Some(_) => source.load_secrets(path)?,
    };
    warnings.extend(shared_secrets(&keys.list()));
    if keys.is_empty() && config.state.postgres().is_none() {
        warnings.push(format!(
            "key store {} holds no key: every request will answer 404",
            path.display()
        ));
    }
    Ok(WithWarnings {
        value: Arc::new(keys),
        warnings,
    })
}

/// Everything a configuration names, loaded; nothing is half-loaded.
pub struct Loaded {
    pub config: Config,
    pub tls: Identity,
    pub trust: TrustStore,
    pub keys: Arc<KeyStore>,
    /// The backend the keys were loaded with (reloads use it again).
    pub source: KeySource,
    /// Things an operator should fix that do not stop the server.
    pub warnings: Vec<String>,
    /// With `[api]`: the key ids of the signers file, which must load.
    pub signers: Vec<String>,
}

impl Loaded {
    /// Reads the configuration file and everything it names.
    pub fn from_file(path: &Path) -> Result<Self, LoadError> {
        Self::from_config(Config::load(path)?)
    }

    /// Loads everything a parsed configuration names.
    pub fn from_config(config: Config) -> Result<Self, LoadError> {
        let now = OffsetDateTime::now_utc();
        let tls = tls(&config, now)?;
        let trust = trust(&config, now)?;
        let source = key_source(&config)?;
        let keys = keys(&config, &source.value)?;
        let mut warnings = [tls.warnings, trust.warnings, source.warnings, keys.warnings].concat();
        let mut signers = Vec::new();
        if let Some(api) = &config.api {
            let allow_open = config.keys.allow_insecure_permissions;
            let (loaded, warning) = crate::signers::Signers::load(&api.signers, allow_open)
                .map_err(|e| LoadError::Api(e.to_string()))?;
            warnings.extend(warning);
            signers = loaded.signer_ids().map(str::to_owned).collect();
            // A single node's API writes beside its key store: say so plainly if it cannot.
            if config.state.postgres().is_none() {
                warnings.extend(crate::api::writable_beside(&config.keys.file).err());
            }
        }
        Ok(Self {
            signers,
            config,
            tls: tls.value,
            trust: trust.value,
            keys: keys.value,
            source: source.value,
            warnings,
        })
    }
}
