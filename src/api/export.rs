//! Escrow through the API (issue 15): a key wrapped to one of the certificates `[api] export_to`
//! lists — a signer names it by its SHA-256 and never sends one, so no quorum of signers can
//! send the key anywhere else — as an escrow record (`keys import --from-escrow` restores it) or
//! as the upload Cloud Encryption takes. Served from this replica's own secrets; recorded in the
//! audit chain as `export`, with the signers.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::outcome::Failure;
use crate::keystore::{KeyStore, LookupError};
use crate::protocol::{InstanceName, KeyId};
use crate::quorum::Vote;
use crate::tools::escrow::{self, EscrowCertificate};
use crate::wrap::{Padding, Plaintext, WrapOptions};

/// The certificates an export may wrap to, by SHA-256.
pub struct ExportTargets(Vec<(String, EscrowCertificate, PathBuf)>);

impl ExportTargets {
    /// Reads every certificate of `[api] export_to` (PEM or DER, RSA of 2048 bits or more).
    pub fn load(paths: &[PathBuf]) -> Result<Self, String> {
        let mut targets = Vec::new();
        for path in paths {
            let name = path.display();
            let der = crate::tools::inspect::read_input(&path.to_string_lossy())
                .map_err(|e| format!("api.export_to {name}: {e}"))?;
            let cert = EscrowCertificate::from_der(&der)
                .map_err(|e| format!("api.export_to {name}: {e}"))?;
            targets.push((
                cert.fingerprint().to_string().to_ascii_lowercase(),
                cert,
                path.clone(),
            ));
        }
        Ok(Self(targets))
    }

    pub fn find(&self, sha256: &str) -> Option<&EscrowCertificate> {
        self.0
            .iter()
            .find(|(sha, ..)| sha == sha256)
            .map(|(_, cert, _)| cert)
    }
}

/// Wraps the key for the export target `sha256`: the answer's `record` (escrow) or `upload`
/// (Cloud Encryption). `token_plaintext` is the form a token's objects hold (`[wrap]
/// plaintext`); `None` for the file backend, which wraps the raw 32 bytes.
pub async fn wrap(
    targets: &Arc<ExportTargets>,
    store: Arc<KeyStore>,
    instance: &InstanceName,
    key_id: KeyId,
    sha256: &str,
    cloud: bool,
    token_plaintext: Option<Plaintext>,
) -> Result<Value, Failure> {
    let plaintext = token_plaintext.unwrap_or(Plaintext::Raw);
    if cloud && plaintext != Plaintext::Raw {
        return Err(Failure::Refused(
            "Cloud Encryption takes the raw 32 bytes, and this token's objects hold the hex form ([wrap] plaintext = \"hex\")".into(),
        ));
    }
    let options = WrapOptions {
        padding: Padding::OaepSha256,
        plaintext,
    };
    let (targets, instance) = (Arc::clone(targets), instance.clone());
    let sha = sha256.to_owned();
    let work = move || {
        let cert = targets.find(&sha).ok_or_else(|| {
            Failure::Refused(format!(
                "certificate sha256 {sha} is not one of [api] export_to: the key is exported only to a certificate the configuration names"
            ))
        })?;
        let wrapped = store
            .escrow(&instance, key_id, cert.recipient(), options)
            .map_err(|e| match e {
                LookupError::NotFound => Failure::NoSuchKey(format!(
                    "no key for instance {instance}, key_id {key_id} on this replica"
                )),
                other => Failure::Unavailable(format!("the key could not be wrapped: {other}")),
            })?;
        Ok(match cloud {
            true => json!({ "upload": base64_of(&wrapped.ciphertext) }),
            false => json!({
                "record": escrow::record(&wrapped.state, cert, plaintext, &wrapped.ciphertext)
            }),
        })
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Failure::Unavailable(format!("the export did not finish: {e}")))?
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The audit record's actor and reason of an export the approvers reached.
pub(super) fn export_record(
    target: &str,
    approvers: &[String],
    reasons: &[String],
) -> (String, String) {
    let why = Vote::reason(approvers, reasons);
    let to = format!("wrapped to {target}");
    let reason = if why.is_empty() {
        to
    } else {
        format!("{why} ({to})")
    };
    (Vote::actor(approvers), reason)
}
