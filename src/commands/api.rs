//! `ccs-endpoint api …`: the signed admin API from a shell or a runbook, and `signers add`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ccs_endpoint::httpsig::Algorithm;
use ccs_endpoint::keystore::parse_time;
use ccs_endpoint::protocol::{InstanceName, KeyId};
use ccs_endpoint::signers::Action;
use ccs_endpoint::tools::api_client::{self, ApiRequest};
use ccs_endpoint::tools::signers_edit::{self, NewSigner};
use clap::{Args, Subcommand, ValueEnum};
use zeroize::Zeroizing;

/// The HMAC algorithm, as `alg` names it.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AlgorithmArg {
    #[value(name = "hmac-sha256")]
    HmacSha256,
    #[value(name = "hmac-sha384")]
    HmacSha384,
    #[value(name = "hmac-sha512")]
    HmacSha512,
}

impl From<AlgorithmArg> for Algorithm {
    fn from(a: AlgorithmArg) -> Self {
        match a {
            AlgorithmArg::HmacSha256 => Algorithm::HmacSha256,
            AlgorithmArg::HmacSha384 => Algorithm::HmacSha384,
            AlgorithmArg::HmacSha512 => Algorithm::HmacSha512,
        }
    }
}

/// Where the API is and who signs.
#[derive(Args, Debug)]
pub struct Signing {
    /// The `[api]` listener, e.g. https://ccs.example.com:9443
    #[arg(long, value_name = "URL", env = "CCS_API_URL")]
    url: String,
    /// The signer's key id (`[[signer]] key_id`).
    #[arg(long, value_name = "ID", env = "CCS_API_KEY_ID")]
    key_id: String,
    /// A file holding the signer's secret (base64, as `signers add` printed it).
    #[arg(long, value_name = "FILE", env = "CCS_API_SECRET_FILE")]
    secret_file: PathBuf,
    /// The signer's algorithm.
    #[arg(long, value_enum, default_value = "hmac-sha256")]
    algorithm: AlgorithmArg,
    /// The CA that signed the API's TLS certificate (default: the public web PKI).
    #[arg(long, value_name = "FILE", env = "CCS_API_CACERT")]
    cacert: Option<PathBuf>,
    /// Give up after this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// One key.
#[derive(Args, Debug)]
pub struct Key {
    #[arg(long, value_name = "NAME")]
    instance: String,
    /// The key's key_id (`--key-id` names the signer).
    #[arg(long, value_name = "N")]
    key: KeyId,
}

/// Why, for a change.
#[derive(Args, Debug)]
pub struct Reason {
    /// Why: recorded in the audit chain with the signer's key id.
    #[arg(long, value_name = "TEXT", default_value = "")]
    reason: String,
}

/// `api` subcommands.
#[derive(Subcommand, Debug)]
pub enum ApiCommand {
    /// Every key: state and last poll (action `status`).
    List(#[command(flatten)] Signing),
    /// One key: state, last change and last poll (action `status`).
    Status {
        #[command(flatten)]
        key: Key,
        #[command(flatten)]
        signing: Signing,
    },
    /// The changes waiting for more signers (action `status`).
    Approvals(#[command(flatten)] Signing),
    /// The soft kill switch: the next poll answers 404.
    Disable {
        #[command(flatten)]
        key: Key,
        #[command(flatten)]
        reason: Reason,
        #[command(flatten)]
        signing: Signing,
    },
    /// The hard kill switch: not_after = --at (default now); the next poll answers a past
    /// validUntil and the database shuts down.
    Shutdown {
        #[command(flatten)]
        key: Key,
        /// When (RFC 3339); default now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[command(flatten)]
        reason: Reason,
        #[command(flatten)]
        signing: Signing,
    },
    /// Undo both kill switches (needs the quorum, 2 signers by default): the second signer
    /// running the same command completes it.
    Enable {
        #[command(flatten)]
        key: Key,
        /// For a key that was shut down: its new not_after (RFC 3339); default none.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        #[command(flatten)]
        reason: Reason,
        #[command(flatten)]
        signing: Signing,
    },
    /// Escrow: the key wrapped to a certificate of [api] export_to, named by its SHA-256 (needs
    /// the quorum, 2 signers by default: the second signer's identical request completes it).
    Export {
        #[command(flatten)]
        key: Key,
        /// The SHA-256 (hex) of the certificate (`ccs-endpoint inspect CERT` shows it).
        #[arg(long, value_name = "HEX")]
        certificate_sha256: String,
        /// `escrow` (a record for `keys import --from-escrow`) or `cloud-encryption` (the upload
        /// Cloud Encryption takes).
        #[arg(long, value_name = "FORMAT", default_value = "escrow")]
        format: String,
        /// Write the record (or the upload line) to this new file, mode 600.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        reason: Reason,
        #[command(flatten)]
        signing: Signing,
    },
    /// The dead-man lease: move not_after forward to --until.
    Renew {
        #[command(flatten)]
        key: Key,
        #[arg(long, value_name = "TIME")]
        until: String,
        #[command(flatten)]
        reason: Reason,
        #[command(flatten)]
        signing: Signing,
    },
}

/// `signers` subcommands.
#[derive(Subcommand, Debug)]
pub enum SignersCommand {
    /// Add a signer with a new random secret; the secret is printed once, on standard output.
    Add {
        /// The signers file (created mode 600 if absent).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[arg(long, value_name = "ID")]
        key_id: String,
        /// What it may do: status, disable, enable, shutdown, renew, export (comma-separated).
        #[arg(long, value_name = "LIST", value_delimiter = ',', required = true)]
        actions: Vec<String>,
        #[arg(long, value_enum, default_value = "hmac-sha256")]
        algorithm: AlgorithmArg,
        /// When it stops being accepted (RFC 3339).
        #[arg(long, value_name = "TIME")]
        expires: Option<String>,
    },
}

fn path(key: &Key, action: &str) -> anyhow::Result<String> {
    let instance = InstanceName::parse(&key.instance).context("--instance")?;
    Ok(match action {
        "" => format!("/v1/keys/{instance}/{}", key.key),
        action => format!("/v1/keys/{instance}/{}/{action}", key.key),
    })
}

fn body(reason: &Reason, field: Option<(&str, &Option<String>)>) -> anyhow::Result<String> {
    let mut body = serde_json::json!({ "reason": reason.reason });
    if let Some((name, Some(time))) = field {
        parse_time(time).map_err(|e| anyhow::anyhow!("--{name}: {e}"))?;
        body[name] = serde_json::Value::String(time.clone());
    }
    Ok(body.to_string())
}

/// Runs an `api` command: exit 0 applied or read, 2 pending approval, 1 refused or failed.
pub fn api(command: ApiCommand) -> anyhow::Result<ExitCode> {
    let (signing, method, path, body) = match &command {
        ApiCommand::List(s) => (s, "GET", "/v1/keys".to_owned(), String::new()),
        ApiCommand::Approvals(s) => (s, "GET", "/v1/approvals".to_owned(), String::new()),
        ApiCommand::Status { key, signing } => (signing, "GET", path(key, "")?, String::new()),
        ApiCommand::Disable {
            key,
            reason,
            signing,
        } => (signing, "POST", path(key, "disable")?, body(reason, None)?),
        ApiCommand::Shutdown {
            key,
            at,
            reason,
            signing,
        } => (
            signing,
            "POST",
            path(key, "shutdown")?,
            body(reason, Some(("at", at)))?,
        ),
        ApiCommand::Enable {
            key,
            until,
            reason,
            signing,
        } => (
            signing,
            "POST",
            path(key, "enable")?,
            body(reason, Some(("until", until)))?,
        ),
        ApiCommand::Export {
            key,
            certificate_sha256,
            format,
            reason,
            signing,
            ..
        } => {
            let body = serde_json::json!({
                "reason": reason.reason,
                "certificate_sha256": certificate_sha256,
                "format": format,
            });
            (signing, "POST", path(key, "export")?, body.to_string())
        }
        ApiCommand::Renew {
            key,
            until,
            reason,
            signing,
        } => (
            signing,
            "POST",
            path(key, "renew")?,
            body(reason, Some(("until", &Some(until.clone()))))?,
        ),
    };
    let text = ccs_endpoint::secret_file::read(&signing.secret_file)
        .with_context(|| format!("--secret-file {}", signing.secret_file.display()))?;
    let secret = Zeroizing::new(BASE64.decode(text.trim()).map_err(|_| {
        anyhow::anyhow!(
            "--secret-file {}: not base64 (the secret as `signers add` printed it)",
            signing.secret_file.display()
        )
    })?);
    let request = ApiRequest {
        url: signing.url.clone(),
        method,
        path,
        body,
        key_id: signing.key_id.clone(),
        algorithm: signing.algorithm.into(),
        secret,
        cacert: signing.cacert.clone(),
        timeout: signing.timeout,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime.block_on(api_client::send(&request))?;
    let json: Option<serde_json::Value> = serde_json::from_str(&answer.body).ok();
    let out = match &command {
        ApiCommand::Export { out, .. } => out.as_deref(),
        _ => None,
    };
    match (&json, out) {
        (Some(json), Some(out)) if answer.status == 200 => {
            let written = match (&json["record"], &json["upload"]) {
                (record, _) if record.is_object() => serde_json::to_string_pretty(record)? + "\n",
                (_, serde_json::Value::String(upload)) => format!("{upload}\n"),
                _ => bail!("the answer holds neither a record nor an upload"),
            };
            super::escrow::write_new(out, written.as_bytes())?;
            println!(
                "exported to {} (approvers {})",
                out.display(),
                json["approvers"]
            );
        }
        (Some(json), _) => println!("{}", serde_json::to_string_pretty(json)?),
        (None, _) => println!("{}", answer.body),
    }
    match answer.status {
        200 => Ok(ExitCode::SUCCESS),
        202 => {
            eprintln!(
                "pending: more signers must ask for the same change (GET /v1/approvals lists it)"
            );
            Ok(ExitCode::from(2))
        }
        status => {
            let message = json
                .as_ref()
                .and_then(|j| j["message"].as_str())
                .unwrap_or("(no message)");
            bail!("the API answered {status}: {message}")
        }
    }
}

/// Runs a `signers` command.
pub fn signers(command: SignersCommand) -> anyhow::Result<()> {
    let SignersCommand::Add {
        file,
        key_id,
        actions,
        algorithm,
        expires,
    } = command;
    let actions = actions
        .iter()
        .map(|name| {
            Action::ALL
                .into_iter()
                .find(|a| a.name() == name.trim())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--actions: {name:?} is not status, disable, enable, shutdown or renew"
                    )
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let expires = expires
        .as_deref()
        .map(parse_time)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
    let secret = signers_edit::add(
        &file,
        &NewSigner {
            key_id: &key_id,
            algorithm: algorithm.into(),
            actions: &actions,
            expires,
        },
    )
    .map_err(anyhow::Error::msg)?;
    eprintln!(
        "added signer {key_id:?} to {}; its secret follows, shown this once: give it to the signer (e.g. as the file for --secret-file), then the server picks the signer up at its next API request",
        file.display()
    );
    println!("{}", secret.as_str());
    Ok(())
}
