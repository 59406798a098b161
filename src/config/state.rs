//! `[state]`: where the keys' states live. The key-store file by default; PostgreSQL for a
//! fleet of replicas (contract §8), each keeping its secrets in its own file or token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::RawState;

/// How long a replica serves keys from a shared state it has not confirmed, by default.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(10);

/// `[state]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StateConfig {
    /// The key-store file holds every key's state (the embedded default).
    #[default]
    File,
    /// Key states live in PostgreSQL; every replica follows them.
    Postgres(PostgresConfig),
}

/// `[state] backend = "postgres"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// Where the libpq connection URL (which may hold a password) is read from.
    pub url: UrlSource,
    /// The CA that signed the database's certificate: TLS is then required and verified.
    pub ca: Option<PathBuf>,
    /// A replica that has not confirmed the shared state for this long answers 503 for keys.
    pub max_staleness: Duration,
    /// This replica's name in the fleet (default: the host name).
    pub replica: String,
}

/// Where the database URL comes from: never the configuration file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    Env(String),
    File(PathBuf),
}

impl StateConfig {
    /// The PostgreSQL settings, when the states live there.
    pub fn postgres(&self) -> Option<&PostgresConfig> {
        match self {
            StateConfig::File => None,
            StateConfig::Postgres(pg) => Some(pg),
        }
    }

    pub(super) fn parse(
        raw: &RawState,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<Self, (&'static str, String)> {
        match raw.backend.as_deref() {
            None | Some("file") => {
                let set = raw.url_env.is_some()
                    || raw.url_file.is_some()
                    || raw.ca.is_some()
                    || raw.max_staleness.is_some()
                    || raw.replica.is_some();
                match set {
                    true => Err((
                        "state.backend",
                        "is \"file\" (the default), so the database settings beside it would be ignored: set backend = \"postgres\" or remove them".into(),
                    )),
                    false => Ok(StateConfig::File),
                }
            }
            Some("postgres") => Ok(StateConfig::Postgres(parse_postgres(raw, resolve)?)),
            Some(other) => Err((
                "state.backend",
                format!("{other:?} is not a state backend: \"file\" or \"postgres\""),
            )),
        }
    }
}

fn parse_postgres(
    raw: &RawState,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<PostgresConfig, (&'static str, String)> {
    let url = match (&raw.url_env, &raw.url_file) {
        (Some(var), None) if !var.is_empty() => UrlSource::Env(var.clone()),
        (Some(_), None) => {
            return Err((
                "state.url_env",
                "is empty: name the environment variable holding the database URL".into(),
            ))
        }
        (None, Some(file)) => UrlSource::File(resolve(file)),
        (Some(_), Some(_)) => {
            return Err((
                "state.url_env",
                "give url_env or url_file, not both".into(),
            ))
        }
        (None, None) => {
            return Err((
                "state.url_env",
                "missing: the database URL comes from url_env or url_file (it may hold a password, so never from the configuration itself)".into(),
            ))
        }
    };
    let max_staleness = match raw.max_staleness.as_deref() {
        None => DEFAULT_MAX_STALENESS,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(3600) => d,
            Ok(_) => {
                return Err((
                    "state.max_staleness",
                    format!("{text:?} must be between 1s and 1h"),
                ))
            }
            Err(e) => {
                return Err((
                    "state.max_staleness",
                    format!("{text:?} is not a duration such as \"10s\": {e}"),
                ))
            }
        },
    };
    let replica = match &raw.replica {
        Some(name) => name.clone(),
        None => host_name().ok_or((
            "state.replica",
            "missing, and the host name cannot be read: name this replica".to_owned(),
        ))?,
    };
    if !valid_replica_name(&replica) {
        return Err((
            "state.replica",
            format!("{replica:?} must be 1 to 128 letters, digits, '.', '_' or '-'"),
        ));
    }
    Ok(PostgresConfig {
        url,
        ca: raw.ca.as_deref().map(resolve),
        max_staleness,
        replica,
    })
}

/// A replica name as the fleet tables and `fleet status` show it.
pub fn valid_replica_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// This host's name (a pod's name under Kubernetes).
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}
