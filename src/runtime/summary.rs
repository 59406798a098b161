//! `check`'s summary of what is loaded, also logged at start-up.

use time::OffsetDateTime;

use super::Loaded;
use crate::keystore::{Condition, KeySource, LABEL_PREFIX};

impl Loaded {
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
        for warning in &self.warnings {
            let _ = writeln!(out, "warning     {warning}");
        }
        out
    }
}
