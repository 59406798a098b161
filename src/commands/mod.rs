//! The operator commands of the binary: `keys`, `probe`, `wrap`, `inspect`, `init`. Each parses
//! its arguments, calls the library and prints; errors reach `main` and exit 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use ccs_endpoint::cert::TrustStore;
use ccs_endpoint::config::Config;
use ccs_endpoint::keystore::KeySource;
use ccs_endpoint::protocol::{parse_kek_path, InstanceName};
use ccs_endpoint::tools::probe::{self, ProbeOptions};
use ccs_endpoint::wrap::{Padding, Plaintext, WrapOptions};
use clap::Args;
use time::OffsetDateTime;

pub mod api;
mod audit;
pub mod audit_chain;
mod escrow;
pub mod fleet;
mod fleet_keys;
mod keys;
mod keys_args;
pub use keys::keys;
pub use keys_args::{KeyArgs, KeysCommand, StoreArgs};

/// `probe` arguments.
#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// https://host:port/kek/<instance>/<key_id>
    url: String,
    /// The database certificate (PEM) whose base64 DER is sent in X-DB-Certificate.
    #[arg(long, value_name = "CERT.pem")]
    cert: PathBuf,
    /// Its private key (PKCS#8 PEM), to unwrap the answer.
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// Trust this CA for the endpoint's certificate [default: the public web PKI roots].
    #[arg(long, value_name = "CA.pem", conflicts_with = "insecure")]
    cacert: Option<PathBuf>,
    /// Do not verify the endpoint's certificate.
    #[arg(long)]
    insecure: bool,
    /// Fail unless the unwrapped key has this KCV.
    #[arg(long, value_name = "KCV")]
    expect_kcv: Option<String>,
    /// The padding the database expects.
    #[arg(long, value_name = "PADDING", value_enum, default_value_t = Padding::OaepSha1)]
    padding: Padding,
    /// The plaintext form the database expects.
    #[arg(long, value_name = "FORM", value_enum, default_value_t = Plaintext::Hex)]
    plaintext: Plaintext,
    /// Give up after this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print one JSON object (outcome, status, keyId, validUntil, secondsLeft, kcv or error).
    #[arg(long)]
    json: bool,
}

/// `probe`: prints the report (or why it failed) and exits with the outcome's code.
pub fn probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let options = ProbeOptions {
        url: args.url,
        cert: args.cert,
        key: args.key,
        cacert: args.cacert,
        insecure: args.insecure,
        expect_kcv: args.expect_kcv,
        expect: WrapOptions {
            padding: args.padding,
            plaintext: args.plaintext,
        },
        timeout: args.timeout,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(probe::probe(&options));
    let outcome = match &result {
        Ok(report) => report.outcome(),
        Err(e) => e.outcome(),
    };
    match (&result, json) {
        (Ok(report), false) => println!("{report}"),
        (Err(e), false) => eprintln!("ccs-endpoint: error: probe failed: {e}"),
        (Ok(report), true) => println!("{}", report.to_json()),
        (Err(e), true) => println!("{}", e.to_json()),
    }
    Ok(ExitCode::from(outcome.exit_code()))
}

/// `wrap` arguments.
#[derive(Args, Debug)]
pub struct WrapArgs {
    /// The database certificate (PEM, DER or header value file).
    #[arg(long, value_name = "CERT")]
    cert: String,
    #[command(flatten)]
    key: KeyArgs,
    /// The configuration (roots, key store, wrap options) [default: $CCS_ENDPOINT_CONFIG, else config/ccs-endpoint.toml].
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn wrap(args: WrapArgs) -> anyhow::Result<()> {
    let config = Config::load(&crate::config_path(args.config))?;
    let der = ccs_endpoint::tools::inspect::read_input(&args.cert)?;
    let trust = TrustStore::load(&config.trust.roots, config.trust.min_rsa_bits)?;
    let keys = KeySource::open(&config.keys, config.wrap)?.load(&config.keys.file)?;
    let path = parse_kek_path(&format!("/kek/{}/{}", args.key.instance, args.key.key_id))?;
    let (status, body) = ccs_endpoint::server::http::offline_answer(
        &trust,
        &keys,
        config.wrap,
        config.keys.validity,
        &der,
        &path,
        OffsetDateTime::now_utc(),
    );
    println!("{body}");
    if status != 200 {
        bail!("the server would answer {status}");
    }
    Ok(())
}

/// `inspect` arguments.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A certificate file (PEM, DER, or a file holding the header value) or the header value.
    input: String,
    /// Judge it for this instance [default: the one its CN names].
    #[arg(long, value_name = "NAME")]
    instance: Option<String>,
    /// The configuration whose roots judge it [default: $CCS_ENDPOINT_CONFIG, else config/ccs-endpoint.toml].
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print one JSON object: each field, and `accepted` (null when it could not be judged).
    #[arg(long)]
    json: bool,
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let der = ccs_endpoint::tools::inspect::read_input(&args.input)?;
    let instance = args
        .instance
        .as_deref()
        .map(InstanceName::parse)
        .transpose()
        .context("--instance")?;
    let path = crate::config_path(args.config);
    let trust = Config::load(&path)
        .map_err(|e| e.to_string())
        .and_then(|c| {
            TrustStore::load(&c.trust.roots, c.trust.min_rsa_bits).map_err(|e| e.to_string())
        });
    let (trust, now) = (
        trust.as_ref().map_err(String::as_str),
        OffsetDateTime::now_utc(),
    );
    if args.json {
        let report =
            ccs_endpoint::tools::inspect::report_json(&der, trust, instance.as_ref(), now)?;
        println!("{report}");
    } else {
        let report = ccs_endpoint::tools::inspect::report(&der, trust, instance.as_ref(), now)?;
        print!("{report}");
    }
    Ok(())
}

pub fn init(dir: &Path) -> anyhow::Result<()> {
    for file in ccs_endpoint::tools::init::init(dir)? {
        println!("wrote {}", file.display());
    }
    print!("{}", ccs_endpoint::tools::init::next_steps(dir));
    Ok(())
}
