//! `inspect`: what the server would decide for a certificate, and why.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::public_key::PublicKey;

use crate::cert::{self, Fingerprint, TrustStore};
use crate::protocol::{format_timestamp, InstanceName};

/// Why the input could not be read as a certificate.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{0}")]
    Input(String),
}

/// Reads a certificate from a file (PEM, DER, or a header value) or from the argument itself
/// (the `X-DB-Certificate` header value).
pub fn read_input(arg: &str) -> Result<Vec<u8>, InspectError> {
    let path = Path::new(arg);
    if path.is_file() {
        let bytes = std::fs::read(path)
            .map_err(|e| InspectError::Input(format!("{arg}: cannot read: {e}")))?;
        if bytes.starts_with(b"-----BEGIN") {
            let certs = cert::read_pem_certs(path)
                .map_err(|e| InspectError::Input(format!("{arg}: {e}")))?;
            return certs
                .into_iter()
                .next()
                .map(|c| c.to_vec())
                .ok_or_else(|| InspectError::Input(format!("{arg}: no PEM CERTIFICATE block")));
        }
        if bytes.first() == Some(&0x30) {
            return Ok(bytes);
        }
        return cert::decode_header([bytes.trim_ascii()].into_iter())
            .map_err(|e| InspectError::Input(format!("{arg}: neither PEM nor DER, and {e}")));
    }
    cert::decode_header([arg.as_bytes()].into_iter())
        .map_err(|e| InspectError::Input(format!("not a file, and not a header value either: {e}")))
}

/// A report on `der`: its fields, which configured root (if any) verifies it, and the verdict
/// for `instance` (by default the one its CN names), one `label  value` line each.
pub fn report(
    der: &[u8],
    trust: Result<&TrustStore, &str>,
    instance: Option<&InstanceName>,
    now: OffsetDateTime,
) -> Result<String, InspectError> {
    let mut out = String::new();
    for (label, value) in facts(der, trust, instance, now)?.lines {
        let _ = writeln!(out, "{label:<14}{value}");
    }
    Ok(out)
}

/// The report as `inspect --json` prints it: each line's label (spaces as `_`) and value, and
/// `accepted` when a verdict could be given.
pub fn report_json(
    der: &[u8],
    trust: Result<&TrustStore, &str>,
    instance: Option<&InstanceName>,
    now: OffsetDateTime,
) -> Result<serde_json::Value, InspectError> {
    let facts = facts(der, trust, instance, now)?;
    let mut object = serde_json::Map::new();
    for (label, value) in facts.lines {
        object.insert(label.replace(' ', "_"), value.into());
    }
    object.insert("accepted".into(), facts.accepted.into());
    Ok(serde_json::Value::Object(object))
}

/// What the report says.
struct Facts {
    lines: Vec<(&'static str, String)>,
    /// Whether the certificate is accepted for the instance: `None` when it could not be judged.
    accepted: Option<bool>,
}

fn facts(
    der: &[u8],
    trust: Result<&TrustStore, &str>,
    instance: Option<&InstanceName>,
    now: OffsetDateTime,
) -> Result<Facts, InspectError> {
    let (_, c) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| InspectError::Input(format!("not a parsable X.509 certificate: {e}")))?;
    let mut lines = Vec::new();
    let mut accepted = None;
    let mut line = |label: &'static str, value: String| lines.push((label, value));
    line("subject", c.subject().to_string());
    let cn = c
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);
    let named = cn
        .as_deref()
        .and_then(|cn| cn.strip_prefix("tse_"))
        .and_then(|i| InstanceName::parse(i).ok());
    line(
        "common name",
        match (&cn, &named) {
            (Some(cn), Some(i)) => format!("{cn} (instance {i})"),
            (Some(cn), None) => format!("{cn} (not of the form tse_<instance>)"),
            (None, _) => "absent".into(),
        },
    );
    line("issuer", c.issuer().to_string());
    line("serial", c.raw_serial_as_string());
    line("sha256", Fingerprint::of(der).to_string());
    let (from, until) = (
        c.validity().not_before.to_datetime(),
        c.validity().not_after.to_datetime(),
    );
    let state = if now < from {
        "NOT YET VALID"
    } else if now > until {
        "EXPIRED"
    } else {
        "valid now"
    };
    line(
        "validity",
        format!(
            "{} to {} ({state})",
            format_timestamp(from),
            format_timestamp(until)
        ),
    );
    line(
        "public key",
        match c.public_key().parsed() {
            Ok(PublicKey::RSA(rsa)) => format!("RSA {} bits", cert::modulus_bits(rsa.modulus)),
            Ok(PublicKey::EC(_)) => "elliptic curve (refused: RSA is required)".into(),
            _ => format!(
                "algorithm {} (refused: RSA is required)",
                c.public_key().algorithm.algorithm
            ),
        },
    );
    if let Ok(Some(ku)) = c.key_usage() {
        line(
            "key usage",
            format!(
                "{}{}",
                ku.value,
                if ku.critical { " (critical)" } else { "" }
            ),
        );
    }
    if let Ok(Some(eku)) = c.extended_key_usage() {
        let mut uses = Vec::new();
        if eku.value.client_auth {
            uses.push("clientAuth");
        }
        if eku.value.server_auth {
            uses.push("serverAuth");
        }
        if eku.value.any {
            uses.push("any");
        }
        line("ext key usage", uses.join(", "));
    }
    if let Ok(Some(san)) = c.subject_alternative_name() {
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                other => other.to_string(),
            })
            .collect();
        line("alt names", names.join(", "));
    }
    let instance = instance.cloned().or(named);
    match trust {
        Err(why) => line("trust", format!("not checked: {why}")),
        Ok(trust) => {
            let verdict = match &instance {
                None => "no instance to judge for: give --instance".to_owned(),
                Some(i) => match trust.verify(der, i, now) {
                    Ok(v) => {
                        line("verified by", v.verified_by.clone());
                        accepted = Some(true);
                        format!(
                            "instance {i}: ACCEPTED (200 with the key, 404 if the store has no active key for it)"
                        )
                    }
                    Err(r) => {
                        accepted = Some(false);
                        format!("instance {i}: 401 {}", r.error)
                    }
                },
            };
            line("verdict", verdict);
        }
    }
    Ok(Facts { lines, accepted })
}

/// Base64 of DER, as the header carries it.
pub fn header_value(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}
