//! The arguments of `keys`: where the key store is, which key, and each subcommand.

use std::path::PathBuf;

use anyhow::Context;
use ccs_endpoint::config::Config;
use ccs_endpoint::protocol::{InstanceName, KeyId};
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::fleet::ChangeArgs;

/// Where the key store is: `--file`, else the `[keys] file` of the configuration.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The key-store file [default: the [keys] file of --config].
    #[arg(long, value_name = "FILE", global = true)]
    pub(super) file: Option<PathBuf>,
    /// The configuration naming the key store [default: $CCS_ENDPOINT_CONFIG, else config/ccs-endpoint.toml].
    #[arg(long, short, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

impl StoreArgs {
    pub(super) fn resolve(&self) -> anyhow::Result<(PathBuf, Option<Config>)> {
        if let Some(file) = &self.file {
            let config = match &self.config {
                Some(path) => Some(Config::load(path)?),
                None => None,
            };
            return Ok((file.clone(), config));
        }
        let config = Config::load(&crate::config_path(self.config.clone()))
            .context("no --file given, so the key store is the [keys] file of the configuration")?;
        Ok((config.keys.file.clone(), Some(config)))
    }
}

/// One key.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// The instance (the first label of the SaaS host).
    #[arg(long, value_name = "NAME")]
    pub(super) instance: String,
    /// The key id the SaaS asks for (today always 1).
    #[arg(long, value_name = "N")]
    pub(super) key_id: KeyId,
}

impl KeyArgs {
    pub(super) fn instance(&self) -> anyhow::Result<InstanceName> {
        InstanceName::parse(&self.instance).context("--instance")
    }
}

/// How `generate` and `import` may write: over a live key, or into a store not made yet.
#[derive(Args, Debug, Clone)]
pub struct WriteArgs {
    /// Replace an existing key (this makes data encrypted under the old one unreadable).
    #[arg(long, requires = "confirm_kcv")]
    pub(super) force: bool,
    /// With --force: the KCV of the key being replaced (`keys list` shows it), typed to
    /// confirm which key's data is given up.
    #[arg(long, value_name = "KCV", requires = "force")]
    pub(super) confirm_kcv: Option<String>,
    /// Start a new key store when --file names one that does not exist.
    #[arg(long)]
    pub(super) create: bool,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate a key from the OS CSPRNG into the key store; prints its KCV, never the secret.
    Generate {
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Import a key: 64 hex characters on standard input (never on the command line), or a key
    /// restored from an escrow record (--from-escrow).
    Import {
        /// The instance (the first label of the SaaS host) [with --from-escrow: the record's].
        #[arg(long, value_name = "NAME", required_unless_present = "from_escrow")]
        instance: Option<String>,
        /// The key id the SaaS asks for [with --from-escrow: the record's].
        #[arg(long, value_name = "N", required_unless_present = "from_escrow")]
        key_id: Option<KeyId>,
        #[command(flatten)]
        write: WriteArgs,
        /// Restore from a record written by `keys export` instead of standard input.
        #[arg(long, value_name = "FILE", requires = "escrow_key")]
        from_escrow: Option<PathBuf>,
        /// The private key (PKCS#8 PEM) of the escrow certificate the record is wrapped to.
        #[arg(long, value_name = "KEY.pem", requires = "from_escrow")]
        escrow_key: Option<PathBuf>,
    },
    /// Escrow: write a key wrapped (RSA-OAEP-SHA-256) to an offline certificate whose private
    /// key its owner keeps, or in Cloud Encryption's upload form. With a token, the token wraps.
    Export {
        #[command(flatten)]
        key: KeyArgs,
        /// The escrow certificate (PEM or DER), or Cloud Encryption's wrapping certificate.
        #[arg(long, value_name = "CERT")]
        to: PathBuf,
        /// Write to this new file (mode 600) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The record's form.
        #[arg(long, value_enum, default_value_t = ExportFormat::Escrow)]
        format: ExportFormat,
    },
    /// List the keys: instance, key id, KCV, state, and the validUntil the server gives now.
    List {
        /// Print one JSON array instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Soft kill switch: the key answers 404 from the next reload (in a fleet: on every
    /// replica within a second; --wait confirms it).
    Disable {
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Undo `disable`.
    Enable {
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Hard kill switch: not_after = now, so the next poll's validUntil is past and the
    /// database shuts down. Every key of the instance unless --key-id is given.
    Shutdown {
        /// The instance.
        #[arg(long, value_name = "NAME")]
        instance: String,
        /// Only this key.
        #[arg(long, value_name = "N")]
        key_id: Option<KeyId>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Undo `shutdown`: removes not_after (or sets a later one), so the next poll's validUntil
    /// is ahead again. Every key of the instance unless --key-id is given.
    Restore {
        /// The instance.
        #[arg(long, value_name = "NAME")]
        instance: String,
        /// Only this key.
        #[arg(long, value_name = "N")]
        key_id: Option<KeyId>,
        /// A new not_after (RFC 3339, such as 2027-01-01T00:00:00Z) instead of none; it must be
        /// ahead.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        not_after: Option<OffsetDateTime>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// A fleet's key: its state, who changed it and why, and the last poll — whether the kill
    /// reached the database, through which replica ([state] backend = "postgres").
    Status {
        /// The instance.
        #[arg(long, value_name = "NAME")]
        instance: String,
        /// Only this key.
        #[arg(long, value_name = "N")]
        key_id: Option<KeyId>,
        /// One JSON object per key.
        #[arg(long)]
        json: bool,
    },
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    ccs_endpoint::keystore::parse_time(text)
}

/// What `keys export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// A JSON record for `keys import --from-escrow`: instance, key_id, kcv, the certificate's
    /// and its public key's SHA-256, and wrappedKey.
    Escrow,
    /// One line of base64: the raw 32 bytes wrapped to Cloud Encryption's wrapping certificate,
    /// the upload that product takes for a customer-managed key.
    CloudEncryption,
}
