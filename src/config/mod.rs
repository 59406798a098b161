//! The TOML configuration file → a typed `Config` that cannot hold a bad value.
//!
//! Relative paths inside the file resolve against the directory of the configuration file, so
//! the server behaves the same whatever its working directory (systemd starts it in `/`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

mod raw;
use raw::{parse_limits, RawBackend, RawConfig, RawPkcs11};

use crate::cert::{MAX_RSA_BITS, MIN_RSA_BITS_FLOOR};
use crate::wrap::WrapOptions;

/// Where `serve` and `check` look when no `--config` is given.
pub const DEFAULT_PATH: &str = "config/ccs-endpoint.toml";
/// The environment variable that overrides [`DEFAULT_PATH`].
pub const ENV_VAR: &str = "CCS_ENDPOINT_CONFIG";
/// How long a wrapped key stays valid unless `[keys] validity` says otherwise.
pub const DEFAULT_VALIDITY: time::Duration = time::Duration::days(7);
/// The longest validity accepted: ten years.
pub const MAX_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);

/// The whole configuration, with every path made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub trust: TrustConfig,
    pub keys: KeysConfig,
    pub wrap: WrapOptions,
    pub limits: Limits,
    pub admin: AdminConfig,
    pub log: LogConfig,
}

/// The source ranges the SaaS publishes for its CCS pollers: `allow = ["saas"]` stands for them.
pub const SAAS_RANGES: [&str; 5] = [
    "37.98.232.0/21",
    "103.23.64.0/22",
    "149.96.0.0/16",
    "199.91.136.0/21",
    "148.139.0.0/16",
];

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// When set, only clients in these networks get past 403.
    pub allow: Option<Vec<IpNet>>,
    /// Peers whose `X-Forwarded-For` (or PROXY protocol header) names the real client.
    pub trusted_proxies: Vec<IpNet>,
    /// Every connection starts with a PROXY protocol (v1 or v2) header from a trusted proxy.
    pub proxy_protocol: bool,
}

/// `[limits]`: what a connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A TLS handshake (and a PROXY header) must finish within this.
    pub handshake_timeout: Duration,
    /// Request headers must arrive within this (slow-loris); also the keep-alive idle limit.
    pub header_timeout: Duration,
    /// A request must be answered within this, or gets 503.
    pub request_timeout: Duration,
    /// Largest request head accepted (431 above it).
    pub max_header_bytes: usize,
    /// Connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Connections one client address (an IPv6 /64) may hold at once; trusted proxies are
    /// exempt. More are closed at accept, so one host cannot take every slot.
    pub max_connections_per_client: usize,
    /// After SIGTERM, in-flight requests get this long to finish.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_connections: 1024,
            max_connections_per_client: 64,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// `[admin]`: the plain-HTTP listener for health and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// `None` when `enabled = false`.
    pub listen: Option<SocketAddr>,
    /// Connections open at once on the admin listener; more are closed at accept.
    pub max_connections: usize,
}

/// `[log]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `key=value` text, for people.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines and audit.
    Json,
}

/// `[tls]`: the server's own certificate chain and private key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[trust]`: who may ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustConfig {
    pub roots: Vec<PathBuf>,
    pub min_rsa_bits: usize,
}

/// `[keys]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysConfig {
    /// The key-store file: every key's state, and its secret unless the backend is PKCS#11.
    pub file: PathBuf,
    /// How long an answer stays valid (`validUntil` = now + this, capped by a key's
    /// `not_after`): more than 0, at most [`MAX_VALIDITY`].
    pub validity: time::Duration,
    pub allow_insecure_permissions: bool,
    /// Where the secrets are.
    pub backend: Backend,
}

/// Where the secrets are: in the key-store file, or in a PKCS#11 token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    File,
    Pkcs11(Pkcs11Config),
}

/// `[keys.pkcs11]`: the module, the token and where its user PIN comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// The PKCS#11 shared library, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    pub token: TokenSelector,
    pub pin: PinSource,
    /// Sessions kept open for wrapping (also the most used at once).
    pub sessions: usize,
    /// After the token has failed this long, a reconnect also finalises and initialises the
    /// library again (at most this often).
    pub reinitialize_after: Duration,
}

/// How the token is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    Label(String),
    Slot(u64),
}

/// Where the user PIN is read from: never the command line, never the configuration itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// A file holding the PIN (one trailing newline is ignored).
    File(PathBuf),
    /// An environment variable holding the PIN.
    Env(String),
}

/// The most PKCS#11 sessions `[keys.pkcs11] sessions` may ask for.
pub const MAX_SESSIONS: usize = 64;

/// A configuration that cannot be used; names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: field `{field}`: {message}")]
    Field {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
}

impl Config {
    /// The sections of `other` that differ from this one, by name, trust aside (`[trust]` is
    /// reloaded on SIGHUP; the rest is read at start only).
    pub fn changed_sections(&self, other: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut check = |name, differs: bool| {
            if differs {
                changed.push(name);
            }
        };
        check("[server]", self.server != other.server);
        check("[tls]", self.tls != other.tls);
        check("[keys]", self.keys != other.keys);
        check("[wrap]", self.wrap != other.wrap);
        check("[limits]", self.limits != other.limits);
        check("[admin]", self.admin != other.admin);
        check("[log]", self.log != other.log);
        changed
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses configuration text; `path` names the file in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        // toml's own Display quotes the offending line, which could be a PIN or a secret pasted
        // into the wrong place: only the line number and the message are shown.
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |span| {
                let before = &text.as_bytes()[..span.start.min(text.len())];
                1 + before.iter().filter(|&&b| b == b'\n').count()
            });
            ConfigError::Parse {
                path: path.to_owned(),
                message: format!("line {line}: {}", e.message().trim_end()),
            }
        })?;
        let field = |field: &'static str, message: String| ConfigError::Field {
            path: path.to_owned(),
            field,
            message,
        };
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        let resolve = |p: &Path| base.join(p);

        let address = |name: &'static str, text: &str| {
            text.parse::<SocketAddr>().map_err(|_| {
                field(
                    name,
                    format!(
                        "{text:?} is not an address:port such as \"0.0.0.0:8443\" or \"[::]:8443\""
                    ),
                )
            })
        };
        let listen = address(
            "server.listen",
            raw.server.listen.as_deref().unwrap_or("0.0.0.0:8443"),
        )?;
        let networks = |name: &'static str, items: &[String]| -> Result<Vec<IpNet>, ConfigError> {
            let mut nets = Vec::new();
            for item in items {
                if item == "saas" {
                    nets.extend(SAAS_RANGES.iter().filter_map(|r| r.parse::<IpNet>().ok()));
                    continue;
                }
                let net = item
                    .parse::<IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        field(
                            name,
                            format!("{item:?} is not a network such as \"10.0.0.0/8\", an address, or \"saas\""),
                        )
                    })?;
                nets.push(net.trunc());
            }
            Ok(nets)
        };
        let allow = match &raw.server.allow {
            None => None,
            Some(items) if items.is_empty() => return Err(field(
                "server.allow",
                "is empty, which would refuse everyone: remove it to allow all, or list networks"
                    .into(),
            )),
            Some(items) => Some(networks("server.allow", items)?),
        };
        let trusted_proxies = networks("server.trusted_proxies", &raw.server.trusted_proxies)?;
        if raw.server.proxy_protocol && trusted_proxies.is_empty() {
            return Err(field(
                "server.proxy_protocol",
                "needs server.trusted_proxies: the addresses of the load balancers that send the PROXY header".into(),
            ));
        }
        let limits = parse_limits(&raw.limits).map_err(|(name, message)| field(name, message))?;
        let admin = AdminConfig {
            listen: if raw.admin.enabled {
                Some(address("admin.listen", &raw.admin.listen)?)
            } else {
                None
            },
            max_connections: raw.admin.max_connections,
        };
        if admin.max_connections == 0 {
            return Err(field("admin.max_connections", "must be at least 1".into()));
        }
        if raw.trust.roots.is_empty() {
            return Err(field(
                "trust.roots",
                "must name at least one PEM file of trusted roots".into(),
            ));
        }
        let min_rsa_bits = raw.trust.min_rsa_bits;
        if !(MIN_RSA_BITS_FLOOR..=MAX_RSA_BITS).contains(&min_rsa_bits) {
            return Err(field(
                "trust.min_rsa_bits",
                format!("must be between {MIN_RSA_BITS_FLOOR} and {MAX_RSA_BITS} (found {min_rsa_bits})"),
            ));
        }
        let validity = match raw.keys.validity.as_deref() {
            None => DEFAULT_VALIDITY,
            Some(text) => {
                let validity = humantime::parse_duration(text).map_err(|e| {
                    field(
                        "keys.validity",
                        format!("{text:?} is not a duration such as \"7d\" or \"36h\": {e}"),
                    )
                })?;
                let bounded = (!validity.is_zero() && validity <= MAX_VALIDITY)
                    .then(|| time::Duration::try_from(validity).ok())
                    .flatten();
                bounded.ok_or_else(|| {
                    field(
                        "keys.validity",
                        format!(
                            "must be more than 0 and at most 3650d (found {})",
                            humantime::format_duration(validity)
                        ),
                    )
                })?
            }
        };
        let backend = match (raw.keys.backend, &raw.keys.pkcs11) {
            (RawBackend::File, None) => Backend::File,
            (RawBackend::File, Some(_)) => {
                return Err(field(
                    "keys.backend",
                    "is \"file\" but a [keys.pkcs11] table is present: set backend = \"pkcs11\" to use the token, or remove the table".into(),
                ))
            }
            (RawBackend::Pkcs11, None) => {
                return Err(field(
                    "keys.pkcs11",
                    "missing: backend = \"pkcs11\" needs a [keys.pkcs11] table with module, token_label (or slot) and pin_file (or pin_env)".into(),
                ))
            }
            (RawBackend::Pkcs11, Some(p)) => Backend::Pkcs11(parse_pkcs11(p, &resolve).map_err(
                |(name, message)| field(name, message),
            )?),
        };
        Ok(Self {
            path: path.to_owned(),
            server: ServerConfig {
                listen,
                allow,
                trusted_proxies,
                proxy_protocol: raw.server.proxy_protocol,
            },
            tls: TlsConfig {
                cert: resolve(&raw.tls.cert),
                key: resolve(&raw.tls.key),
            },
            trust: TrustConfig {
                roots: raw.trust.roots.iter().map(|p| resolve(p)).collect(),
                min_rsa_bits,
            },
            keys: KeysConfig {
                file: resolve(&raw.keys.file),
                validity,
                allow_insecure_permissions: raw.keys.allow_insecure_permissions,
                backend,
            },
            wrap: raw.wrap,
            limits,
            admin,
            log: LogConfig {
                format: raw.log.format,
            },
        })
    }
}

fn parse_pkcs11(
    raw: &RawPkcs11,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Pkcs11Config, (&'static str, String)> {
    if raw.module.as_os_str().is_empty() {
        return Err((
            "keys.pkcs11.module",
            "is empty: name the PKCS#11 library, e.g. \"/usr/lib/softhsm/libsofthsm2.so\"".into(),
        ));
    }
    let token = match (&raw.token_label, raw.slot) {
        (Some(label), None) if !label.is_empty() && label.len() <= 32 => {
            TokenSelector::Label(label.clone())
        }
        (Some(_), None) => {
            return Err((
                "keys.pkcs11.token_label",
                "must be 1 to 32 bytes long (a PKCS#11 token label)".into(),
            ))
        }
        (None, Some(slot)) => TokenSelector::Slot(slot),
        (Some(_), Some(_)) => {
            return Err((
                "keys.pkcs11.slot",
                "give token_label or slot, not both (token_label survives slot renumbering)".into(),
            ))
        }
        (None, None) => {
            return Err((
                "keys.pkcs11.token_label",
                "missing: name the token by token_label (or by slot)".into(),
            ))
        }
    };
    let pin = match (&raw.pin_file, &raw.pin_env) {
        (Some(file), None) => PinSource::File(resolve(file)),
        (None, Some(var)) if !var.is_empty() => PinSource::Env(var.clone()),
        (None, Some(_)) => {
            return Err((
                "keys.pkcs11.pin_env",
                "is empty: name the environment variable that holds the PIN".into(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err((
                "keys.pkcs11.pin_env",
                "give pin_file or pin_env, not both".into(),
            ))
        }
        (None, None) => {
            return Err((
                "keys.pkcs11.pin_file",
                "missing: the user PIN comes from pin_file or pin_env (never from the configuration or the command line)".into(),
            ))
        }
    };
    let sessions = raw.sessions.unwrap_or(4);
    if !(1..=MAX_SESSIONS).contains(&sessions) {
        return Err((
            "keys.pkcs11.sessions",
            format!("must be between 1 and {MAX_SESSIONS} (found {sessions})"),
        ));
    }
    let reinitialize_after = match raw.reinitialize_after.as_deref() {
        None => Duration::from_secs(30),
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(3600) => d,
            Ok(_) => {
                return Err((
                    "keys.pkcs11.reinitialize_after",
                    format!("{text:?} must be between 1s and 1h"),
                ))
            }
            Err(e) => {
                return Err((
                    "keys.pkcs11.reinitialize_after",
                    format!("{text:?} is not a duration such as \"30s\": {e}"),
                ))
            }
        },
    };
    Ok(Pkcs11Config {
        module: resolve(&raw.module),
        token,
        pin,
        sessions,
        reinitialize_after,
    })
}

#[cfg(test)]
mod tests;
