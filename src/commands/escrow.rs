//! `keys export` and `keys import --from-escrow`: a key wrapped to an offline escrow certificate
//! (or in the upload form of Cloud Encryption, the SaaS's successor product), and restored from
//! it. The library does the wrapping (`tools::escrow`); this prints and writes.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use ccs_endpoint::hsm::Hsm;
use ccs_endpoint::keystore::{read_entries, KeyState, SecretsIn};
use ccs_endpoint::protocol::KeyId;
use ccs_endpoint::secret::Secret;
use ccs_endpoint::tools::escrow::{self, EscrowCertificate, EscrowRecord};
use ccs_endpoint::wrap::Plaintext;

use super::keys_args::{ExportFormat, KeyArgs};

/// `keys export`: `key` wrapped to the certificate `to`, written to `out` (a new file, mode 600)
/// or standard output. With a token, the token wraps (`plaintext` is the form its objects hold).
/// The key's state and what it was wrapped to (`escrow:<sha256>`), for the audit chain.
pub fn export(
    path: &Path,
    key: &KeyArgs,
    to: &Path,
    out: Option<&Path>,
    format: ExportFormat,
    token: Option<(&Hsm, Plaintext)>,
) -> anyhow::Result<(KeyState, String)> {
    let instance = key.instance()?;
    let der = ccs_endpoint::tools::inspect::read_input(&to.to_string_lossy())
        .with_context(|| format!("--to {}", to.display()))?;
    let certificate = EscrowCertificate::from_der(&der)?;
    let secrets = match token {
        Some(_) => SecretsIn::Token,
        None => SecretsIn::File,
    };
    let entry = read_entries(path, secrets)?
        .into_iter()
        .find(|e| e.state.instance == instance && e.state.key_id == key.key_id)
        .with_context(|| {
            format!(
                "key store {}: no key for instance {instance:?}, key_id {}",
                path.display(),
                key.key_id
            )
        })?;
    let (wrapped, plaintext) = match (token, &entry.secret) {
        (Some((hsm, plaintext)), _) => {
            if format == ExportFormat::CloudEncryption && plaintext != Plaintext::Raw {
                bail!(
                    "the token's objects hold the hex form ([wrap] plaintext = \"hex\"), and Cloud Encryption takes the raw 32 bytes: export in the escrow format and restore it into a raw store, or use a token configured with plaintext = \"raw\""
                );
            }
            (
                escrow::wrap_in_token(hsm, &entry.state, &certificate)?,
                plaintext,
            )
        }
        (None, Some(secret)) => (escrow::wrap_secret(secret, &certificate)?, Plaintext::Raw),
        (None, None) => bail!("the key store entry holds no secret"),
    };
    let text = match format {
        ExportFormat::Escrow => {
            let record = escrow::record(&entry.state, &certificate, plaintext, &wrapped);
            serde_json::to_string_pretty(&record)? + "\n"
        }
        ExportFormat::CloudEncryption => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&wrapped) + "\n"
        }
    };
    match out {
        Some(out) => write_new(out, text.as_bytes())?,
        None => print!("{text}"),
    }
    let state = &entry.state;
    eprintln!(
        "exported instance {} key_id {} kcv {} wrapped to the certificate with SHA-256 {}{}: whoever holds its private key holds the key",
        state.instance,
        state.key_id,
        state.kcv,
        certificate.fingerprint(),
        out.map(|o| format!(", to {}", o.display())).unwrap_or_default()
    );
    let form = match format {
        ExportFormat::Escrow => "escrow",
        ExportFormat::CloudEncryption => "cloud-encryption",
    };
    let target = format!(
        "{form}:{}",
        certificate.fingerprint().to_string().to_ascii_lowercase()
    );
    Ok((entry.state, target))
}

/// A new file, mode 600; an existing one is never overwritten.
pub(super) fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("--out {}: cannot create a new file", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// `keys import --from-escrow FILE --escrow-key KEY.pem`: the key the record holds, unwrapped
/// and checked against its KCV; `instance` and `key_id`, when given, must be the record's.
pub fn restore(
    file: &Path,
    escrow_key: &Path,
    instance: Option<String>,
    key_id: Option<KeyId>,
) -> anyhow::Result<(KeyArgs, Secret)> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--from-escrow {}", file.display()))?;
    let record: EscrowRecord = serde_json::from_str(&text)
        .with_context(|| format!("--from-escrow {}: not an escrow record", file.display()))?;
    let restored = escrow::restore(&record, escrow_key)?;
    if let Some(given) = &instance {
        if given != restored.instance.as_str() {
            bail!(
                "--instance {given} is not the record's instance {}",
                restored.instance
            );
        }
    }
    if let Some(given) = key_id {
        if given != restored.key_id {
            bail!(
                "--key-id {given} is not the record's key_id {}",
                restored.key_id
            );
        }
    }
    Ok((
        KeyArgs {
            instance: restored.instance.as_str().to_owned(),
            key_id: restored.key_id,
        },
        restored.secret,
    ))
}
