//! `[api]`: the signed admin API (contract §9) — where it listens, who may sign, how long a
//! signature and a pending approval live, and how many distinct signers each action needs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[api]` as TOML writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    listen: String,
    signers: PathBuf,
    clock_skew: Option<String>,
    approval_timeout: Option<String>,
    #[serde(default)]
    quorum: BTreeMap<String, u32>,
    #[serde(default)]
    export_to: Vec<PathBuf>,
    #[serde(default)]
    names: Vec<String>,
    allow: Option<Vec<String>>,
}

/// `[api]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// HTTPS with the server's own TLS identity.
    pub listen: SocketAddr,
    /// The signers file (judged like the key store).
    pub signers: PathBuf,
    /// How far a signature's `created` may be from the server's clock.
    pub clock_skew: Duration,
    /// How long a change waiting for more signers stays pending.
    pub approval_timeout: Duration,
    pub quorum: Quorum,
    /// The only certificates `export` wraps a key to (escrow, Cloud Encryption's wrapping
    /// certificate): a signer names one by its SHA-256, never sends one.
    pub export_to: Vec<PathBuf>,
    /// The authorities (`host` or `host:port`, as a client's `Host` header writes them) a
    /// signature must be made for; empty: each DNS name (and IP address) of the TLS
    /// certificate with the API's port (and alone when that port is 443).
    pub names: Vec<String>,
    /// When set, only clients in these networks are accepted (closed at accept otherwise).
    pub allow: Option<Vec<ipnet::IpNet>>,
}

/// Distinct signers needed per action: a kill takes one, an un-kill two, an export two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    pub disable: u32,
    pub shutdown: u32,
    pub renew: u32,
    pub enable: u32,
    pub export: u32,
}

impl Default for Quorum {
    fn default() -> Self {
        Self {
            disable: 1,
            shutdown: 1,
            renew: 1,
            enable: 2,
            export: 2,
        }
    }
}

/// The most signers an action may require.
pub const MAX_QUORUM: u32 = 16;

fn duration(
    field: &'static str,
    text: Option<&str>,
    default: Duration,
    range: (Duration, Duration),
) -> Result<Duration, (&'static str, String)> {
    let Some(text) = text else {
        return Ok(default);
    };
    match humantime::parse_duration(text) {
        Ok(d) if d >= range.0 && d <= range.1 => Ok(d),
        Ok(_) => Err((
            field,
            format!(
                "{text:?} must be between {} and {}",
                humantime::format_duration(range.0),
                humantime::format_duration(range.1)
            ),
        )),
        Err(e) => Err((
            field,
            format!("{text:?} is not a duration such as \"60s\": {e}"),
        )),
    }
}

impl ApiConfig {
    pub(super) fn parse(
        raw: &RawApi,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<Self, (&'static str, String)> {
        let listen = raw.listen.parse::<SocketAddr>().map_err(|_| {
            (
                "api.listen",
                format!(
                    "{:?} is not an address:port such as \"127.0.0.1:9443\"",
                    raw.listen
                ),
            )
        })?;
        if raw.signers.as_os_str().is_empty() {
            return Err(("api.signers", "is empty: name the signers file".into()));
        }
        let clock_skew = duration(
            "api.clock_skew",
            raw.clock_skew.as_deref(),
            Duration::from_secs(60),
            (Duration::from_secs(1), Duration::from_secs(600)),
        )?;
        let approval_timeout = duration(
            "api.approval_timeout",
            raw.approval_timeout.as_deref(),
            Duration::from_secs(3600),
            (Duration::from_secs(10), Duration::from_secs(7 * 24 * 3600)),
        )?;
        let mut quorum = Quorum::default();
        for (action, &needed) in &raw.quorum {
            let slot = match action.as_str() {
                "disable" => &mut quorum.disable,
                "shutdown" => &mut quorum.shutdown,
                "renew" => &mut quorum.renew,
                "enable" => &mut quorum.enable,
                "export" => &mut quorum.export,
                other => {
                    return Err((
                        "api.quorum",
                        format!("{other:?} is not an action that needs signers: disable, shutdown, renew, enable or export"),
                    ))
                }
            };
            if !(1..=MAX_QUORUM).contains(&needed) {
                return Err((
                    "api.quorum",
                    format!("{action} = {needed}: must be between 1 and {MAX_QUORUM}"),
                ));
            }
            *slot = needed;
        }
        let mut names = Vec::with_capacity(raw.names.len());
        for name in &raw.names {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
            if !valid {
                return Err((
                    "api.names",
                    format!("{name:?} is not an authority such as \"ccs.example.com\" or \"ccs.example.com:9443\""),
                ));
            }
            names.push(name.to_ascii_lowercase());
        }
        let allow = match &raw.allow {
            None => None,
            Some(items) if items.is_empty() => {
                return Err((
                    "api.allow",
                    "is empty, which would refuse every signer: remove it to allow all, or list networks".into(),
                ))
            }
            Some(items) => Some(
                items
                    .iter()
                    .map(|item| {
                        item.parse::<ipnet::IpNet>()
                            .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                            .map(|net| net.trunc())
                            .map_err(|_| {
                                (
                                    "api.allow",
                                    format!("{item:?} is not a network such as \"10.0.0.0/8\" or an address"),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Self {
            listen,
            names,
            allow,
            signers: resolve(&raw.signers),
            clock_skew,
            approval_timeout,
            quorum,
            export_to: raw.export_to.iter().map(|p| resolve(p)).collect(),
        })
    }
}
