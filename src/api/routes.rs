//! The admin API's routes (contract §9): which endpoint a method and path name, the action a
//! signer needs for it, and the JSON body a change takes.

use axum::http::Method;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::keystore::parse_time;
use crate::protocol::{format_timestamp, InstanceName, KeyId};
use crate::signers::Action as Permission;
use crate::switch::Action;

/// An endpoint, with what its path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/keys`
    Keys,
    /// `GET /v1/keys/{instance}/{key_id}`
    Key(InstanceName, KeyId),
    /// `GET /v1/approvals`
    Approvals,
    /// `POST /v1/keys/{instance}/{key_id}/{action}`
    Change(InstanceName, KeyId, Permission),
    /// `POST /v1/keys/{instance}/{key_id}/export`: escrow (issue 15).
    Export(InstanceName, KeyId),
}

/// A path or method no endpoint answers, by its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// 404: no such endpoint.
    NotFound,
    /// 405: the endpoint takes only this method.
    Method(&'static str),
    /// 400: a name in the path is not one (the message says which).
    BadName(String),
}

impl Route {
    /// The endpoint `method` and `path` name.
    pub fn parse(method: &Method, path: &str) -> Result<Self, NoRoute> {
        let segments: Vec<&str> = path
            .strip_prefix("/v1/")
            .ok_or(NoRoute::NotFound)?
            .split('/')
            .collect();
        let key = |instance: &str, key_id: &str| {
            let instance = InstanceName::parse(instance)
                .map_err(|e| NoRoute::BadName(format!("instance {instance:?}: {e}")))?;
            let key_id = key_id
                .parse::<KeyId>()
                .ok()
                .filter(|_| key_id.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| NoRoute::BadName(format!("key_id {key_id:?} is not a number")))?;
            Ok((instance, key_id))
        };
        let (route, allowed) = match segments.as_slice() {
            ["keys"] => (Route::Keys, Method::GET),
            ["approvals"] => (Route::Approvals, Method::GET),
            ["keys", instance, key_id] => {
                let (instance, key_id) = key(instance, key_id)?;
                (Route::Key(instance, key_id), Method::GET)
            }
            ["keys", instance, key_id, "export"] => {
                let (instance, key_id) = key(instance, key_id)?;
                (Route::Export(instance, key_id), Method::POST)
            }
            ["keys", instance, key_id, action] => {
                let permission = match *action {
                    "disable" => Permission::Disable,
                    "enable" => Permission::Enable,
                    "shutdown" => Permission::Shutdown,
                    "renew" => Permission::Renew,
                    _ => return Err(NoRoute::NotFound),
                };
                let (instance, key_id) = key(instance, key_id)?;
                (Route::Change(instance, key_id, permission), Method::POST)
            }
            _ => return Err(NoRoute::NotFound),
        };
        match *method == allowed {
            true => Ok(route),
            false if allowed == Method::GET => Err(NoRoute::Method("GET")),
            false => Err(NoRoute::Method("POST")),
        }
    }

    /// The action a signer must be allowed.
    pub fn permission(&self) -> Permission {
        match self {
            Route::Keys | Route::Key(..) | Route::Approvals => Permission::Status,
            Route::Change(_, _, action) => *action,
            Route::Export(..) => Permission::Export,
        }
    }
}

/// The body of a change: why, and what it sets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    #[serde(default)]
    pub reason: String,
    /// `shutdown`: `not_after` = this (default now).
    pub at: Option<String>,
    /// `renew`: the new `not_after`; `enable`: the `not_after` of a key that was shut down.
    pub until: Option<String>,
    /// `export`: the SHA-256 (hex) of a certificate of `[api] export_to`.
    pub certificate_sha256: Option<String>,
    /// `export`: `escrow` (a record for `keys import --from-escrow`, the default) or
    /// `cloud-encryption` (the upload Cloud Encryption takes).
    pub format: Option<String>,
}

/// The longest `reason` taken (it goes into the audit chain and logs).
pub const MAX_REASON: usize = 1000;

impl ChangeBody {
    /// What an export asks for: the certificate's SHA-256 (lower-case hex) and whether the
    /// Cloud Encryption form is wanted; the target signers agree on.
    pub fn export(&self) -> Result<(String, bool, String), String> {
        if self.at.is_some() || self.until.is_some() {
            return Err("at and until do not apply to export".into());
        }
        let sha = self
            .certificate_sha256
            .as_deref()
            .ok_or("export needs \"certificate_sha256\": the SHA-256 of a certificate of [api] export_to")?
            .to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("certificate_sha256 must be 64 hex digits".into());
        }
        let cloud = match self.format.as_deref() {
            None | Some("escrow") => false,
            Some("cloud-encryption") => true,
            Some(other) => {
                return Err(format!(
                    "format {other:?} is not \"escrow\" or \"cloud-encryption\""
                ))
            }
        };
        let target = format!(
            "{}:{sha}",
            if cloud { "cloud-encryption" } else { "escrow" }
        );
        Ok((sha, cloud, target))
    }

    /// Reads a change's body (empty: no reason, no time).
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let body: Self = serde_json::from_slice(body).map_err(|e| {
            format!("the body is not a change ({{\"reason\", \"at\", \"until\"}}): {e}")
        })?;
        if body.reason.chars().count() > MAX_REASON {
            return Err(format!("reason is longer than {MAX_REASON} characters"));
        }
        Ok(body)
    }

    /// The state change `permission` asks for, at `now`, and the target signers agree on.
    pub fn action(
        &self,
        permission: Permission,
        now: OffsetDateTime,
    ) -> Result<(Action, String), String> {
        let time = |field: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| parse_time(t).map_err(|e| format!("{field}: {e}")))
                .transpose()
        };
        let only = |allowed: &[&str]| {
            for (field, set) in [
                ("at", self.at.is_some()),
                ("until", self.until.is_some()),
                ("certificate_sha256", self.certificate_sha256.is_some()),
                ("format", self.format.is_some()),
            ] {
                if set && !allowed.contains(&field) {
                    return Err(format!("{field} does not apply to {}", permission.name()));
                }
            }
            Ok(())
        };
        let target = |t: Option<OffsetDateTime>| t.map(format_timestamp).unwrap_or_default();
        match permission {
            Permission::Disable => {
                only(&[])?;
                Ok((Action::Disable, String::new()))
            }
            Permission::Shutdown => {
                only(&["at"])?;
                let at = time("at", &self.at)?;
                Ok((Action::Shutdown(at.unwrap_or(now)), target(at)))
            }
            Permission::Enable => {
                only(&["until"])?;
                let until = time("until", &self.until)?;
                if let Some(t) = until.filter(|t| *t <= now) {
                    return Err(format!("until {} has passed", format_timestamp(t)));
                }
                Ok((Action::Reenable(until), target(until)))
            }
            Permission::Renew => {
                only(&["until"])?;
                let until = time("until", &self.until)?
                    .ok_or("renew needs \"until\": the new not_after (RFC 3339)")?;
                Ok((Action::Renew(until), target(Some(until))))
            }
            Permission::Status | Permission::Export => {
                Err(format!("{} changes no state", permission.name()))
            }
        }
    }
}
