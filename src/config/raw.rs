//! The configuration file as TOML writes it, before validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Limits, LogFormat};
use crate::cert::MIN_RSA_BITS_FLOOR;
use crate::wrap::WrapOptions;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    pub(super) tls: RawTls,
    pub(super) trust: RawTrust,
    pub(super) keys: RawKeys,
    #[serde(default)]
    pub(super) wrap: WrapOptions,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) state: RawState,
    pub(super) api: Option<super::api::RawApi>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) backend: Option<String>,
    pub(super) url_env: Option<String>,
    pub(super) url_file: Option<PathBuf>,
    pub(super) ca: Option<PathBuf>,
    pub(super) max_staleness: Option<String>,
    pub(super) replica: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) allow: Option<Vec<String>>,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<String>,
    #[serde(default)]
    pub(super) proxy_protocol: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) handshake_timeout: Option<String>,
    pub(super) header_timeout: Option<String>,
    pub(super) request_timeout: Option<String>,
    pub(super) max_header_bytes: Option<usize>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_client: Option<usize>,
    pub(super) drain_timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    /// Unset: the environment's `CCS_ENDPOINT_ADMIN_LISTEN` when loaded from a file, else
    /// loopback (see `Config::load`).
    #[serde(default)]
    pub(super) listen: Option<String>,
    #[serde(default = "default_true")]
    pub(super) enabled: bool,
    #[serde(default = "default_admin_connections")]
    pub(super) max_connections: usize,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: None,
            enabled: true,
            max_connections: default_admin_connections(),
        }
    }
}

fn default_admin_connections() -> usize {
    64
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    #[serde(default)]
    pub(super) format: LogFormat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrust {
    pub(super) roots: Vec<PathBuf>,
    #[serde(default = "default_min_rsa_bits")]
    pub(super) min_rsa_bits: usize,
}

fn default_min_rsa_bits() -> usize {
    MIN_RSA_BITS_FLOOR
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeys {
    pub(super) file: PathBuf,
    pub(super) validity: Option<String>,
    #[serde(default)]
    pub(super) allow_insecure_permissions: bool,
    #[serde(default)]
    pub(super) backend: RawBackend,
    pub(super) pkcs11: Option<RawPkcs11>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawBackend {
    #[default]
    File,
    Pkcs11,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPkcs11 {
    pub(super) module: PathBuf,
    pub(super) token_label: Option<String>,
    pub(super) slot: Option<u64>,
    pub(super) pin_file: Option<PathBuf>,
    pub(super) pin_env: Option<String>,
    pub(super) sessions: Option<usize>,
    pub(super) reinitialize_after: Option<String>,
}

pub(super) fn parse_limits(raw: &RawLimits) -> Result<Limits, (&'static str, String)> {
    let defaults = Limits::default();
    let duration = |name: &'static str, text: &Option<String>, default: Duration| match text {
        None => Ok(default),
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() && d <= Duration::from_secs(3600) => Ok(d),
            Ok(_) => Err((name, format!("{text:?} must be more than 0 and at most 1h"))),
            Err(e) => Err((
                name,
                format!("{text:?} is not a duration such as \"10s\": {e}"),
            )),
        },
    };
    let max_header_bytes = raw.max_header_bytes.unwrap_or(defaults.max_header_bytes);
    if !(8 * 1024..=1024 * 1024).contains(&max_header_bytes) {
        return Err((
            "limits.max_header_bytes",
            format!("must be between 8192 and 1048576 (found {max_header_bytes})"),
        ));
    }
    let max_connections = raw.max_connections.unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        return Err(("limits.max_connections", "must be at least 1".into()));
    }
    let per_client = raw
        .max_connections_per_client
        .unwrap_or(defaults.max_connections_per_client);
    if per_client == 0 {
        return Err((
            "limits.max_connections_per_client",
            "must be at least 1".into(),
        ));
    }
    Ok(Limits {
        handshake_timeout: duration(
            "limits.handshake_timeout",
            &raw.handshake_timeout,
            defaults.handshake_timeout,
        )?,
        header_timeout: duration(
            "limits.header_timeout",
            &raw.header_timeout,
            defaults.header_timeout,
        )?,
        request_timeout: duration(
            "limits.request_timeout",
            &raw.request_timeout,
            defaults.request_timeout,
        )?,
        max_header_bytes,
        max_connections,
        max_connections_per_client: per_client,
        drain_timeout: duration(
            "limits.drain_timeout",
            &raw.drain_timeout,
            defaults.drain_timeout,
        )?,
    })
}
