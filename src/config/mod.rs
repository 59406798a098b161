//! The TOML configuration file → a typed `Config` that cannot hold a bad value.
//!
//! Relative paths inside the file resolve against the directory of the configuration file, so
//! the server behaves the same whatever its working directory (systemd starts it in `/`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

mod api;
mod parse;
mod raw;
mod state;

pub use api::{ApiConfig, Quorum, MAX_QUORUM};
pub use state::{PostgresConfig, StateConfig, UrlSource, DEFAULT_MAX_STALENESS};

use crate::cert::{MAX_RSA_BITS, MIN_RSA_BITS_FLOOR};
use crate::wrap::WrapOptions;

/// Where `serve` and `check` look when no `--config` is given.
pub const DEFAULT_PATH: &str = "config/ccs-endpoint.toml";
/// The environment variable that overrides [`DEFAULT_PATH`].
pub const ENV_VAR: &str = "CCS_ENDPOINT_CONFIG";
/// `[admin] listen` when the configuration file does not set it (see `Config::load`).
pub const ADMIN_LISTEN_VAR: &str = "CCS_ENDPOINT_ADMIN_LISTEN";
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
    /// `[state]`: where the keys' states live (the key-store file, or PostgreSQL).
    pub state: StateConfig,
    /// `[api]`: the signed admin API, when configured.
    pub api: Option<ApiConfig>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
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
        check("[state]", self.state != other.state);
        check("[api]", self.api != other.api);
        changed
    }
}

#[cfg(test)]
mod tests;
