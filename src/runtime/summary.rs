//! `check`'s summary of what is loaded, also logged at start-up.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::Loaded;
use crate::keystore::{Condition, KeySource, KeyState, LABEL_PREFIX};
use crate::protocol::format_timestamp;

/// A key's condition as the JSON outputs name it: `active`, `disabled` or `expired`, with the
/// time that applies.
pub fn key_json(key: &KeyState, now: OffsetDateTime) -> Value {
    let (state, until) = match key.condition(now) {
        Condition::Active { until } => ("active", until),
        Condition::Disabled => ("disabled", key.not_after),
        Condition::ShutDown(t) => ("expired", Some(t)),
    };
    json!({
        "instance": key.instance.as_str(),
        "key_id": key.key_id,
        "kcv": key.kcv.to_string(),
        "state": state,
        "not_after": until.map(format_timestamp),
    })
}

impl Loaded {
    /// What `check --json` prints: the summary's facts as one object (keys by KCV only).
    pub fn summary_json(&self) -> Value {
        let c = &self.config;
        let now = OffsetDateTime::now_utc();
        let roots: Vec<Value> = self
            .trust
            .roots()
            .iter()
            .map(|root| {
                json!({
                    "subject": root.subject,
                    "sha256": root.sha256.to_string(),
                    "not_after": format_timestamp(root.not_after),
                    "file": root.file.display().to_string(),
                })
            })
            .collect();
        let keys: Vec<Value> = self.keys.list().iter().map(|k| key_json(k, now)).collect();
        let secrets = match &self.source {
            KeySource::File => json!({"backend": "file"}),
            KeySource::Token(hsm) => json!({
                "backend": "pkcs11",
                "token": hsm.token_name(),
                "module": hsm.module().display().to_string(),
            }),
        };
        json!({
            "ok": true,
            "config": c.path.display().to_string(),
            "listen": c.server.listen.to_string(),
            "admin": c.admin.listen.map(|a| a.to_string()),
            "tls": {
                "cert": c.tls.cert.display().to_string(),
                "subject": self.tls.subject,
                "not_after": format_timestamp(self.tls.not_after),
            },
            "trust": {"min_rsa_bits": self.trust.min_rsa_bits(), "roots": roots},
            "wrap": {"padding": c.wrap.padding.name(), "plaintext": c.wrap.plaintext.name()},
            "validity_seconds": c.keys.validity.whole_seconds(),
            "key_store": c.keys.file.display().to_string(),
            "secrets": secrets,
            "state": match c.state.postgres() {
                None => json!({"backend": "file"}),
                Some(pg) => json!({
                    "backend": "postgres",
                    "replica": pg.replica,
                    "max_staleness_seconds": pg.max_staleness.as_secs_f64(),
                }),
            },
            "keys": keys,
            "api": c.api.as_ref().map(|api| json!({
                "listen": api.listen.to_string(),
                "signers_file": api.signers.display().to_string(),
                "signers": self.signers,
                "quorum": {
                    "disable": api.quorum.disable,
                    "shutdown": api.quorum.shutdown,
                    "renew": api.quorum.renew,
                    "enable": api.quorum.enable,
                    "export": api.quorum.export,
                },
                "export_to": api.export_to.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            })),
            "warnings": self.warnings,
        })
    }

    /// A human summary of what is loaded, for `check` and the start-up log. Shows each key by
    /// its KCV, never its secret.
    pub fn summary(&self) -> String {
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
            humantime::format_duration(c.keys.validity.unsigned_abs())
        );
        let keys = self.keys.list();
        let _ = writeln!(
            out,
            "keys        {} in {}",
            keys.len(),
            c.keys.file.display()
        );
        if let KeySource::Token(hsm) = &self.source {
            let _ = writeln!(
                out,
                "  secrets   in PKCS#11 {} ({}), labels {LABEL_PREFIX}<instance>/<key_id>",
                hsm.token_name(),
                hsm.module().display()
            );
        }
        if let Some(pg) = c.state.postgres() {
            let _ = writeln!(
                out,
                "  states    in PostgreSQL (replica {}, max_staleness {}): the file holds secrets only; each key below is served as the database's row says",
                pg.replica,
                humantime::format_duration(pg.max_staleness)
            );
            for key in keys {
                let _ = writeln!(
                    out,
                    "  secret    instance {} key_id {} kcv {}",
                    key.instance, key.key_id, key.kcv
                );
            }
        } else {
            Self::key_lines(&mut out, keys);
        }
        if let Some(api) = &c.api {
            let q = api.quorum;
            let _ = writeln!(
                out,
                "api         {} (signed requests); {} signers in {} ({}); quorum disable {} shutdown {} renew {} enable {} export {}; exports to {} certificates",
                api.listen,
                self.signers.len(),
                api.signers.display(),
                self.signers.join(", "),
                q.disable,
                q.shutdown,
                q.renew,
                q.enable,
                q.export,
                api.export_to.len()
            );
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "warning     {warning}");
        }
        out
    }

    fn key_lines(out: &mut String, keys: Vec<KeyState>) {
        use std::fmt::Write as _;
        let now = OffsetDateTime::now_utc();
        for key in keys {
            let state = match key.condition(now) {
                Condition::Disabled => "disabled (soft kill switch: answers 404)".to_owned(),
                Condition::ShutDown(t) => format!(
                    "shut down (hard kill switch: validUntil {} is past)",
                    crate::protocol::format_timestamp(t)
                ),
                Condition::Active { until: Some(t) } => {
                    format!("active until {}", crate::protocol::format_timestamp(t))
                }
                Condition::Active { until: None } => "active".to_owned(),
            };
            let _ = writeln!(
                out,
                "  key       instance {} key_id {} kcv {} {}",
                key.instance, key.key_id, key.kcv, state
            );
        }
    }
}
