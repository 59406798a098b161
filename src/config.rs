//! The TOML configuration file → a typed `Config` that cannot hold a bad value.
//!
//! Relative paths inside the file resolve against the directory of the configuration file, so
//! the server behaves the same whatever its working directory (systemd starts it in `/`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cert::{MAX_RSA_BITS, MIN_RSA_BITS_FLOOR};
use crate::wrap::WrapOptions;

/// Where `serve` and `check` look when no `--config` is given.
pub const DEFAULT_PATH: &str = "config/ccs-endpoint.toml";
/// The environment variable that overrides [`DEFAULT_PATH`].
pub const ENV_VAR: &str = "CCS_ENDPOINT_CONFIG";
/// How long a wrapped key stays valid unless `[keys] validity` says otherwise.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest validity accepted: ten years.
pub const MAX_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);

/// The whole configuration, with every path made absolute.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub trust: TrustConfig,
    pub keys: KeysConfig,
    pub wrap: WrapOptions,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
}

/// `[tls]`: the server's own certificate chain and private key, PEM.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[trust]`: who may ask.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    pub roots: Vec<PathBuf>,
    pub min_rsa_bits: usize,
}

/// `[keys]`.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    pub file: PathBuf,
    pub validity: Duration,
    pub allow_insecure_permissions: bool,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    tls: RawTls,
    trust: RawTrust,
    keys: RawKeys,
    #[serde(default)]
    wrap: WrapOptions,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen")]
    listen: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> String {
    "0.0.0.0:8443".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    roots: Vec<PathBuf>,
    #[serde(default = "default_min_rsa_bits")]
    min_rsa_bits: usize,
}

fn default_min_rsa_bits() -> usize {
    MIN_RSA_BITS_FLOOR
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    file: PathBuf,
    validity: Option<String>,
    #[serde(default)]
    allow_insecure_permissions: bool,
}

impl Config {
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        let field = |field: &'static str, message: String| ConfigError::Field {
            path: path.to_owned(),
            field,
            message,
        };
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        let resolve = |p: &Path| base.join(p);

        let listen = raw.server.listen.parse().map_err(|_| {
            field(
                "server.listen",
                format!(
                    "{:?} is not an address:port such as \"0.0.0.0:8443\" or \"[::]:8443\"",
                    raw.server.listen
                ),
            )
        })?;
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
            Some(text) => humantime::parse_duration(text).map_err(|e| {
                field(
                    "keys.validity",
                    format!("{text:?} is not a duration such as \"7d\" or \"36h\": {e}"),
                )
            })?,
        };
        if validity.is_zero() || validity > MAX_VALIDITY {
            return Err(field(
                "keys.validity",
                format!(
                    "must be more than 0 and at most 3650d (found {})",
                    humantime::format_duration(validity)
                ),
            ));
        }
        Ok(Self {
            path: path.to_owned(),
            server: ServerConfig { listen },
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
            },
            wrap: raw.wrap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wrap::{Padding, Plaintext};

    const MINIMAL: &str = r#"
        [tls]
        cert = "certs/server.crt"
        key = "/abs/server.key"
        [trust]
        roots = ["a.pem", "b.pem"]
        [keys]
        file = "keys.toml"
    "#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/ccs/ccs-endpoint.toml"), text)
    }

    #[test]
    fn defaults_and_path_resolution() {
        let c = parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.server.listen,
            "0.0.0.0:8443".parse().unwrap_or_else(|e| panic!("{e}"))
        );
        assert_eq!(c.tls.cert, Path::new("/etc/ccs/certs/server.crt"));
        assert_eq!(c.tls.key, Path::new("/abs/server.key"));
        assert_eq!(c.trust.roots[1], Path::new("/etc/ccs/b.pem"));
        assert_eq!(c.trust.min_rsa_bits, 2048);
        assert_eq!(c.keys.file, Path::new("/etc/ccs/keys.toml"));
        assert_eq!(c.keys.validity, DEFAULT_VALIDITY);
        assert!(!c.keys.allow_insecure_permissions);
        assert_eq!(c.wrap.padding, Padding::OaepSha1);
        assert_eq!(c.wrap.plaintext, Plaintext::Hex);
    }

    #[test]
    fn every_option() {
        let c = parse(&format!(
            "{MINIMAL}\nvalidity = \"36h\"\nallow_insecure_permissions = true\n[server]\nlisten = \"[::1]:9443\"\n[wrap]\npadding = \"oaep-sha256\"\nplaintext = \"raw\"\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.keys.validity, Duration::from_secs(36 * 3600));
        assert!(c.keys.allow_insecure_permissions);
        assert_eq!(c.server.listen.port(), 9443);
        assert_eq!(c.wrap.padding, Padding::OaepSha256);
        assert_eq!(c.wrap.plaintext, Plaintext::Raw);
    }

    #[test]
    fn errors_name_the_field() {
        let rows = [
            (format!("{MINIMAL}\n[extra]\n"), "unknown field `extra`"),
            (
                format!("{MINIMAL}\nvalidty = \"1d\""),
                "unknown field `validty`",
            ),
            (
                format!("{MINIMAL}\nvalidity = \"soon\""),
                "field `keys.validity`: \"soon\" is not a duration",
            ),
            (
                format!("{MINIMAL}\nvalidity = \"0s\""),
                "field `keys.validity`: must be more than 0",
            ),
            (
                format!("{MINIMAL}\nvalidity = \"3651d\""),
                "field `keys.validity`",
            ),
            (
                format!("{MINIMAL}\n[server]\nlisten = \"8443\""),
                "field `server.listen`",
            ),
            (
                format!("{MINIMAL}\n[wrap]\npadding = \"pkcs1\""),
                "unknown variant `pkcs1`",
            ),
            (
                format!("{MINIMAL}\n[wrap]\nplaintext = \"base64\""),
                "unknown variant `base64`",
            ),
            (
                MINIMAL.replace("roots = [\"a.pem\", \"b.pem\"]", "roots = []"),
                "field `trust.roots`",
            ),
            (
                MINIMAL.replace(
                    "roots = [\"a.pem\", \"b.pem\"]",
                    "roots = [\"a.pem\"]\nmin_rsa_bits = 1024",
                ),
                "field `trust.min_rsa_bits`: must be between 2048 and 8192 (found 1024)",
            ),
            (
                MINIMAL.replace("[keys]\n        file = \"keys.toml\"", ""),
                "missing field `keys`",
            ),
            ("not toml [".into(), "config /etc/ccs/ccs-endpoint.toml: "),
        ];
        for (text, want) in rows {
            let err = parse(&text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.starts_with("config /etc/ccs/ccs-endpoint.toml: "),
                "{err}"
            );
            assert!(err.contains(want), "want {want:?} in {err:?}");
        }
    }
}
