//! Reading a configuration file: TOML into the raw shapes of `raw`, then every field checked and
//! resolved (relative paths against the file's directory), with errors naming the field.

use std::path::Path;

use super::raw::{parse_limits, RawBackend, RawConfig, RawPkcs11};
use super::*;

/// The admin listener's address when `[admin] listen` is not set.
const ADMIN_LISTEN: &str = "127.0.0.1:9090";

impl Config {
    /// Reads and validates a configuration file. `[admin] listen`, when the file does not set
    /// it, comes from the environment's [`ADMIN_LISTEN_VAR`] (the container image sets it to
    /// `0.0.0.0:9090` so that probes reach the admin port), else loopback.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let admin_default = std::env::var(ADMIN_LISTEN_VAR).ok();
        Self::parse_with(path, &text, admin_default.as_deref())
    }

    /// Parses configuration text; `path` names the file in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        Self::parse_with(path, text, None)
    }

    /// As `parse`, with `admin_default` as `[admin] listen` when the text does not set it.
    fn parse_with(
        path: &Path,
        text: &str,
        admin_default: Option<&str>,
    ) -> Result<Self, ConfigError> {
        // toml's own Display quotes the offending line, which could be a PIN or a secret pasted
        // into the wrong place: only the line number and the message are shown.
        let raw: RawConfig = crate::secret_file::toml(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
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
                let (name, text) = match (&raw.admin.listen, admin_default) {
                    (Some(text), _) => ("admin.listen", text.as_str()),
                    (None, Some(text)) => (ADMIN_LISTEN_VAR, text),
                    (None, None) => ("admin.listen", ADMIN_LISTEN),
                };
                Some(address(name, text)?)
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
            state: StateConfig::parse(&raw.state, &resolve)
                .map_err(|(name, message)| field(name, message))?,
            api: raw
                .api
                .as_ref()
                .map(|api| ApiConfig::parse(api, &resolve))
                .transpose()
                .map_err(|(name, message)| field(name, message))?,
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
