//! The `ccs-endpoint` binary: parses the command line, sets up logging, calls the library.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ccs_endpoint::config::{self, Config, LogFormat};
use ccs_endpoint::protocol::InstanceName;
use ccs_endpoint::runtime::Loaded;
use ccs_endpoint::server;
use ccs_endpoint::tools::dev;
use clap::{Parser, Subcommand};

mod commands;

/// The customer endpoint of a Customer Controlled Switch: hands a SaaS database its
/// key-encryption key, RSA-OAEP-wrapped to the database's verified certificate.
#[derive(Parser)]
#[command(name = "ccs-endpoint", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve GET /kek/<instance>/<key_id> over TLS.
    ///
    /// Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when the configuration, TLS
    /// material, roots or key store cannot be loaded or the address cannot be bound.
    Serve {
        /// The configuration file [default: $CCS_ENDPOINT_CONFIG, else config/ccs-endpoint.toml].
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Generate (if absent) a development CA, certificates and key in --dev-dir and serve on
        /// loopback with them. Development only.
        #[arg(long, conflicts_with = "config")]
        dev: bool,
        /// Where --dev keeps its generated files.
        #[arg(long, value_name = "DIR", default_value = "dev", requires = "dev")]
        dev_dir: PathBuf,
        /// The loopback address --dev listens on.
        #[arg(
            long,
            value_name = "ADDR",
            default_value = "127.0.0.1:8443",
            requires = "dev"
        )]
        dev_listen: SocketAddr,
        /// The loopback address of --dev's admin listener (/healthz /readyz /metrics).
        #[arg(
            long,
            value_name = "ADDR",
            default_value = "127.0.0.1:9090",
            requires = "dev"
        )]
        dev_admin_listen: SocketAddr,
        /// The instance --dev issues its database certificate and key for.
        #[arg(long, value_name = "NAME", default_value = "ccsdemo", requires = "dev")]
        dev_instance: String,
        /// How log lines are written, over the configuration's [log] format (containers set
        /// it in the environment). Start-up errors follow it too.
        #[arg(
            long,
            value_name = "FORMAT",
            value_enum,
            env = "CCS_ENDPOINT_LOG_FORMAT"
        )]
        log_format: Option<LogFormat>,
    },
    /// Validate the configuration, TLS material, roots and key store without serving; print a
    /// summary (keys by KCV only).
    ///
    /// Exit codes: 0 when `serve` would start, 1 with the reason otherwise.
    Check {
        /// The configuration file [default: $CCS_ENDPOINT_CONFIG, else config/ccs-endpoint.toml].
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print one JSON object: what is loaded, or {"ok": false, "error": …}.
        #[arg(long)]
        json: bool,
    },
    /// Manage the key store: generate, import, list, disable, enable, shutdown, restore.
    ///
    /// Every change is validated and written atomically (mode 600), comments kept; keys are
    /// shown by KCV only. Exit codes: 0 done, 1 refused or failed (the message says why).
    Keys {
        #[command(subcommand)]
        command: commands::KeysCommand,
        #[command(flatten)]
        store: commands::StoreArgs,
    },
    /// Poll an endpoint as the SaaS does (TLS 1.2), unwrap the answer with the certificate's
    /// private key and print keyId, validUntil, time left and the key's KCV.
    ///
    /// Exit codes, one per outcome (`--json` names it): 0 the key unwrapped as the database
    /// would and validUntil is ahead; 1 the probe could not run (URL, files); 3 killed: 200 with
    /// a past validUntil; 4 withdrawn: 404; 5 refused: another 4xx; 6 unavailable: 5xx; 7 a 200
    /// the database could not use (shape, padding, plaintext, unwrap, KCV); 8 unreachable
    /// (connection, TLS, timeout). The message says precisely what is wrong.
    Probe(commands::ProbeArgs),
    /// Print the JSON the server would return for a certificate, computed offline.
    ///
    /// Exit codes: 0 for a 200; 1 otherwise (the body printed is the error the server would give).
    Wrap(commands::WrapArgs),
    /// What the server would decide for a certificate, and why: fields, root, verdict.
    ///
    /// Exit codes: 0 when it could be read (whatever the verdict); 1 when it is not a certificate.
    Inspect(commands::InspectArgs),
    /// A fleet's database ([state] backend = "postgres"): create or upgrade the schema, import
    /// the states of a key-store file.
    ///
    /// Exit codes: 0 done; 1 with the reason.
    Db {
        #[command(subcommand)]
        command: commands::fleet::DbCommand,
        /// The configuration file [default: $CCS_ENDPOINT_CONFIG, else config/ccs-endpoint.toml].
        #[arg(long, short, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
    },
    /// A fleet's replicas: the revision each applied, when each was last seen.
    ///
    /// Exit codes: 0 listed; 1 when the database cannot be read.
    Fleet {
        #[command(subcommand)]
        command: commands::fleet::FleetCommand,
        /// The configuration file [default: $CCS_ENDPOINT_CONFIG, else config/ccs-endpoint.toml].
        #[arg(long, short, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
    },
    /// The audit chain of key-state changes (a fleet's database, or audit.jsonl beside the key
    /// store): verify it, or show it.
    ///
    /// Exit codes: 0 intact (verify) or listed (show); 1 naming the first record changed,
    /// removed or reordered, or when it cannot be read.
    Audit {
        #[command(subcommand)]
        command: commands::audit_chain::AuditCommand,
        /// The configuration file [default: $CCS_ENDPOINT_CONFIG, else config/ccs-endpoint.toml].
        #[arg(long, short, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
    },
    /// The signed admin API, as an operator or a runbook calls it: list, status, approvals,
    /// disable, shutdown, enable, renew; every request signed (RFC 9421, HMAC) with the
    /// signer's secret.
    ///
    /// Exit codes: 0 applied (or read); 2 pending: more signers must ask for the same change;
    /// 1 refused or failed (the server's message is printed).
    Api {
        #[command(subcommand)]
        command: commands::api::ApiCommand,
    },
    /// The admin API's signers file: add a signer with a new secret (printed once).
    ///
    /// Exit codes: 0 added; 1 refused (the message names the file and field).
    Signers {
        #[command(subcommand)]
        command: commands::api::SignersCommand,
    },
    /// Write a production-shaped skeleton (config, empty key store mode 600, certs/README.md).
    ///
    /// Exit codes: 0 written; 1 when a file exists already (nothing is overwritten).
    Init {
        /// Where to write config/ and certs/.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
}

pub(crate) fn config_path(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os(config::ENV_VAR).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config, json } => check(config_path(config), json),
        Command::Keys { command, store } => commands::keys(command, store),
        Command::Probe(args) => match commands::probe(args) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Wrap(args) => commands::wrap(args),
        Command::Inspect(args) => commands::inspect(args),
        Command::Init { dir } => commands::init(&dir),
        Command::Api { command } => match commands::api::api(command) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Signers { command } => commands::api::signers(command),
        Command::Db { command, config } => Config::load(&config_path(config))
            .map_err(Into::into)
            .and_then(|c| commands::fleet::db(command, &c)),
        Command::Fleet { command, config } => Config::load(&config_path(config))
            .map_err(Into::into)
            .and_then(|c| commands::fleet::fleet(command, &c)),
        Command::Audit { command, config } => Config::load(&config_path(config))
            .map_err(Into::into)
            .and_then(|c| commands::audit_chain::audit(command, &c)),
        Command::Serve {
            config,
            dev,
            dev_dir,
            dev_listen,
            dev_admin_listen,
            dev_instance,
            log_format,
        } => {
            let path = if dev {
                prepare_dev(&dev_dir, dev_listen, dev_admin_listen, &dev_instance)
            } else {
                Ok(config_path(config))
            };
            path.and_then(|path| serve(path, log_format))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccs-endpoint: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go straight to stdout, one write per line. A writer thread (tracing-appender, lossless)
/// was measured against this and lost: more wake-ups, lower throughput, a p99 five times worse
/// (BENCHMARKS.md); and once its buffer fills it blocks the same way.
fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    let filter =
        ccs_endpoint::runtime::log_filter::parse(std::env::var("RUST_LOG").ok().as_deref())
            .map_err(anyhow::Error::msg)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Text if !std::io::stdout().is_terminal() => {
            builder.with_ansi(false).fmt_fields(plain_fields()).init()
        }
        LogFormat::Text => builder.with_ansi(true).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}

/// `name=value` fields, values Debug-quoted (so caller text cannot forge a line), without the
/// styling calls the default field formatter makes even with colours off (3 % of a request's
/// CPU under load, BENCHMARKS.md).
fn plain_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        if field.name() == "message" {
            write!(writer, "{value:?}")
        } else {
            write!(writer, "{field}={value:?}")
        }
    })
    .delimited(" ")
}

fn check(path: PathBuf, json: bool) -> anyhow::Result<()> {
    // The admin API's export certificates are read by `serve` when it wires the API.
    let loaded = Loaded::from_file(&path).and_then(|loaded| {
        if let Some(api) = &loaded.config.api {
            ccs_endpoint::api::ExportTargets::load(&api.export_to)
                .map_err(ccs_endpoint::runtime::LoadError::Api)?;
        }
        Ok(loaded)
    });
    match (loaded, json) {
        (Ok(loaded), false) => {
            print!("{}", loaded.summary());
            println!("ok: `serve` would start with this configuration");
        }
        (Ok(loaded), true) => println!("{}", loaded.summary_json()),
        (Err(e), true) => {
            println!(
                "{}",
                serde_json::json!({"ok": false, "error": e.to_string()})
            );
            return Err(e.into());
        }
        (Err(e), false) => return Err(e.into()),
    }
    Ok(())
}

fn prepare_dev(
    dir: &std::path::Path,
    listen: SocketAddr,
    admin: SocketAddr,
    instance: &str,
) -> anyhow::Result<PathBuf> {
    let instance = InstanceName::parse(instance).context("--dev-instance")?;
    let setup = dev::prepare(dir, listen, admin, &instance)?;
    println!("{}", setup.banner());
    Ok(setup.config)
}

/// Serves until SIGTERM. Logging starts first, in `log_format` or the configuration's format, so
/// that a start-up failure is logged in that format too (and printed by `main` as well).
fn serve(path: PathBuf, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let config = Config::load(&path);
    let format = log_format
        .or_else(|| config.as_ref().ok().map(|c| c.log.format))
        .unwrap_or_default();
    init_logging(format)?;
    let result = config.map_err(anyhow::Error::from).and_then(run_server);
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "ccs-endpoint cannot serve");
    }
    result
}

fn run_server(config: Config) -> anyhow::Result<()> {
    let loaded = Loaded::from_config(config)?;
    for warning in &loaded.warnings {
        tracing::warn!(warning = %warning, "configuration warning");
    }
    let listen = loaded.config.server.listen;
    let admin = loaded.config.admin.listen;
    let summary = loaded.summary();
    let mut daemon = loaded.into_daemon()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let service = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} ([server] listen)"))?;
        let admin = match admin {
            Some(address) => Some(
                tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} ([admin] listen)"))?,
            ),
            None => None,
        };
        for line in summary.lines() {
            tracing::info!("{line}");
        }
        if let Some(admin) = &admin {
            tracing::info!(address = %admin.local_addr()?, "admin listener: /healthz /readyz /metrics");
        }
        if let Some(address) = daemon.api_address() {
            let api = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} ([api] listen)"))?;
            tracing::info!(address = %api.local_addr()?, "admin API listener (signed requests): /v1/keys /v1/approvals");
            daemon.listen_api(api);
        }
        tracing::info!(address = %service.local_addr()?, "listening");
        daemon.run(service, admin, server::shutdown_signal()).await;
        tracing::info!("stopped");
        Ok(())
    })
}
