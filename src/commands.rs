//! The operator commands of the binary: `keys`, `probe`, `wrap`, `inspect`, `init`. Each parses
//! its arguments, calls the library and prints; errors reach `main` and exit 1.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use ccs_endpoint::cert::TrustStore;
use ccs_endpoint::config::{self, Backend, Config};
use ccs_endpoint::hsm::Hsm;
use ccs_endpoint::keystore::{
    check_permissions, label, read_entries, KeySource, KeyState, SecretsIn, LABEL_PREFIX,
};
use ccs_endpoint::protocol::{parse_kek_path, InstanceName, KeyId};
use ccs_endpoint::secret::Secret;
use ccs_endpoint::tools::keyfile::KeyFile;
use ccs_endpoint::tools::keys::{listing, valid_until};
use ccs_endpoint::tools::probe::{self, ProbeOptions};
use ccs_endpoint::wrap::{Padding, Plaintext, WrapOptions};
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Where the key store is: `--file`, else the `[keys] file` of the configuration.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The key-store file [default: the [keys] file of --config].
    #[arg(long, value_name = "FILE", global = true)]
    file: Option<PathBuf>,
    /// The configuration naming the key store [default: $CCS_ENDPOINT_CONFIG, else config/ccs-endpoint.toml].
    #[arg(long, short, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

impl StoreArgs {
    fn resolve(&self) -> anyhow::Result<(PathBuf, Option<Config>)> {
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
    instance: String,
    /// The key id the SaaS asks for (today always 1).
    #[arg(long, value_name = "N")]
    key_id: KeyId,
}

impl KeyArgs {
    fn instance(&self) -> anyhow::Result<InstanceName> {
        InstanceName::parse(&self.instance).context("--instance")
    }
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate a key from the OS CSPRNG into the key store; prints its KCV, never the secret.
    Generate {
        #[command(flatten)]
        key: KeyArgs,
        /// Replace an existing key (this makes data encrypted under the old one unreadable).
        #[arg(long)]
        force: bool,
    },
    /// Import a key: 64 hex characters on standard input (never on the command line).
    Import {
        #[command(flatten)]
        key: KeyArgs,
        /// Replace an existing key (this makes data encrypted under the old one unreadable).
        #[arg(long)]
        force: bool,
    },
    /// List the keys: instance, key id, KCV, state, and the validUntil the server gives now.
    List,
    /// Soft kill switch: the key answers 404 from the next reload.
    Disable {
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Undo `disable`.
    Enable {
        #[command(flatten)]
        key: KeyArgs,
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
    },
}

const RELOAD_NOTE: &str = "A running server reloads the key store within a second of the file changing (or at once on SIGHUP): no restart is needed.";

pub fn keys(command: KeysCommand, store: StoreArgs) -> anyhow::Result<()> {
    let (path, config) = store.resolve()?;
    let validity = config
        .as_ref()
        .map_or(config::DEFAULT_VALIDITY, |c| c.keys.validity);
    let token = config.as_ref().and_then(|c| match &c.keys.backend {
        Backend::Pkcs11(pkcs11) => Some((pkcs11, c.wrap)),
        Backend::File => None,
    });
    let secrets = if token.is_some() {
        SecretsIn::Token
    } else {
        SecretsIn::File
    };
    let open_token = || -> anyhow::Result<Option<Hsm>> {
        token
            .map(|(pkcs11, wrap)| Hsm::open(pkcs11, wrap))
            .transpose()
            .map_err(Into::into)
    };
    let now = OffsetDateTime::now_utc();
    match command {
        KeysCommand::Generate { key, force } => match open_token()? {
            Some(hsm) => {
                let secret = hsm.random_secret()?;
                add_to_token(&hsm, &path, &key, &secret, force)
            }
            None => {
                let secret = Secret::generate().context("the CSPRNG failed")?;
                add(&path, &key, &secret, force)
            }
        },
        KeysCommand::Import { key, force } => {
            let mut input = Zeroizing::new(String::new());
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading the key from standard input")?;
            let secret = Secret::from_hex(input.trim())
                .map_err(|e| anyhow::anyhow!("standard input: the key {e}"))?;
            match open_token()? {
                Some(hsm) => add_to_token(&hsm, &path, &key, &secret, force),
                None => add(&path, &key, &secret, force),
            }
        }
        KeysCommand::List => list(&path, secrets, open_token, now, validity),
        KeysCommand::Disable { key } => switch(&path, secrets, &key, true, now, validity),
        KeysCommand::Enable { key } => switch(&path, secrets, &key, false, now, validity),
        KeysCommand::Shutdown { instance, key_id } => {
            let instance = InstanceName::parse(&instance).context("--instance")?;
            let mut file = KeyFile::open_with(&path, secrets)?;
            let changed = file.shut_down(&instance, key_id, now)?;
            let states = file.save()?;
            for id in changed {
                let state = find(&states, &instance, id)?;
                println!(
                    "instance {instance} key_id {id} kcv {}: SHUT DOWN. Next poll: 200 with validUntil {} (past): the database shuts down.",
                    state.kcv,
                    valid_until(&state, now, validity)
                );
            }
            println!("{RELOAD_NOTE}");
            Ok(())
        }
    }
}

/// `keys list`: the states from the file and, with a token, what the token holds under
/// each label (and `ccs/` objects no entry names).
fn list(
    path: &Path,
    secrets: SecretsIn,
    open_token: impl Fn() -> anyhow::Result<Option<Hsm>>,
    now: OffsetDateTime,
    validity: time::Duration,
) -> anyhow::Result<()> {
    if let Some(warning) = check_permissions(path, true)? {
        eprintln!("warning: {warning}");
    }
    let keys: Vec<KeyState> = read_entries(path, secrets)?
        .into_iter()
        .map(|entry| entry.state)
        .collect();
    // With a token: every `ccs/` object, or why the token could not be read.
    let token = match secrets {
        SecretsIn::File => None,
        SecretsIn::Token => Some(
            open_token()
                .and_then(|hsm| {
                    Ok(hsm
                        .context("no token is configured")?
                        .objects(LABEL_PREFIX)?)
                })
                .map_err(|e| e.to_string()),
        ),
    };
    print!("{}", listing(path, &keys, &token, now, validity));
    if let Some(Err(e)) = &token {
        bail!("the token could not be read: {e}");
    }
    Ok(())
}

/// `keys generate|import` with a token: the object first (refusing to replace a live key
/// without --force), then the entry that names its KCV.
fn add_to_token(
    hsm: &Hsm,
    path: &Path,
    key: &KeyArgs,
    secret: &Secret,
    force: bool,
) -> anyhow::Result<()> {
    let instance = key.instance()?;
    let mut file = KeyFile::open_with(path, SecretsIn::Token)?;
    if file.contains(&instance, key.key_id)? && !force {
        bail!(
            "key store {}: instance {instance:?} already has key_id {}: replacing a live key makes the database's data unreadable; pass --force if that is really meant",
            path.display(),
            key.key_id
        );
    }
    let label = label(&instance, key.key_id);
    let replaced = hsm.create(&label, secret, force)?;
    file.add_token_key(&instance, key.key_id, secret.kcv(), force)?;
    file.save()?;
    if let Some(old) = replaced {
        println!(
            "replaced token object {label} (old kcv {})",
            old.kcv.as_deref().unwrap_or("(none)")
        );
    }
    println!(
        "instance {instance} key_id {} kcv {} created in {} as {label} (sensitive: the token wraps it, nobody can read it); entry written to {}",
        key.key_id,
        secret.kcv(),
        hsm.token_name(),
        path.display()
    );
    println!("{RELOAD_NOTE}");
    Ok(())
}

fn add(path: &Path, key: &KeyArgs, secret: &Secret, force: bool) -> anyhow::Result<()> {
    let instance = key.instance()?;
    let mut file = KeyFile::open(path)?;
    let replaced = file.add(&instance, key.key_id, secret, force)?;
    file.save()?;
    if let Some(old) = replaced {
        println!(
            "replaced instance {instance} key_id {} (old kcv {old})",
            key.key_id
        );
    }
    println!(
        "instance {instance} key_id {} kcv {} written to {} (mode 600)",
        key.key_id,
        secret.kcv(),
        path.display()
    );
    println!("{RELOAD_NOTE}");
    Ok(())
}

fn switch(
    path: &Path,
    secrets: SecretsIn,
    key: &KeyArgs,
    disabled: bool,
    now: OffsetDateTime,
    validity: time::Duration,
) -> anyhow::Result<()> {
    let instance = key.instance()?;
    let mut file = KeyFile::open_with(path, secrets)?;
    file.set_disabled(&instance, key.key_id, disabled)?;
    let states = file.save()?;
    let state = find(&states, &instance, key.key_id)?;
    if disabled {
        println!(
            "instance {instance} key_id {} kcv {}: DISABLED. Next poll: 404; the database stops when its cached key's validUntil passes.",
            key.key_id, state.kcv
        );
    } else {
        println!(
            "instance {instance} key_id {} kcv {}: enabled. Next poll: 200 with validUntil {}.",
            key.key_id,
            state.kcv,
            valid_until(&state, now, validity)
        );
    }
    println!("{RELOAD_NOTE}");
    Ok(())
}

fn find(states: &[KeyState], instance: &InstanceName, key_id: KeyId) -> anyhow::Result<KeyState> {
    states
        .iter()
        .find(|k| &k.instance == instance && k.key_id == key_id)
        .cloned()
        .context("the key vanished from the store it was just written to")
}

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
}

pub fn probe(args: ProbeArgs) -> anyhow::Result<()> {
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
    let report = runtime
        .block_on(probe::probe(&options))
        .map_err(|e| anyhow::anyhow!("probe failed: {e}"))?;
    println!("{report}");
    Ok(())
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
    let report = ccs_endpoint::tools::inspect::report(
        &der,
        trust.as_ref().map_err(String::as_str),
        instance.as_ref(),
        OffsetDateTime::now_utc(),
    )?;
    print!("{report}");
    Ok(())
}

pub fn init(dir: &Path) -> anyhow::Result<()> {
    for file in ccs_endpoint::tools::init::init(dir)? {
        println!("wrote {}", file.display());
    }
    print!("{}", ccs_endpoint::tools::init::next_steps(dir));
    Ok(())
}
