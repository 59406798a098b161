//! `audit verify|show` (contract §10): the chain of a fleet's database, or `audit.jsonl`
//! beside a key-store file. `verify` recomputes it, checks it still holds a head kept elsewhere
//! (`--head`), and checks again who signed each API change (`--signers`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use ccs_endpoint::api::own_names;
use ccs_endpoint::api::proof::{self, Rules, Window};
use ccs_endpoint::chain::{self, AuditFile};
use ccs_endpoint::config::Config;
use ccs_endpoint::fleet::report;
use ccs_endpoint::protocol::InstanceName;
use ccs_endpoint::runtime::certificate_names;
use ccs_endpoint::signers::Signers;
use clap::Subcommand;

use super::fleet::with_db;

/// `audit`.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the chain; exit 1 naming the first record changed, removed or reordered.
    Verify {
        /// A head kept elsewhere (printed by every change, exported as ccs_audit_head): exit 1
        /// unless the chain still holds this record (truncated or rewritten otherwise).
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<String>,
        /// A signers file (the API's, or a copy kept by whoever audits it): check again the
        /// signatures every API change carries, and that no record names a signer it carries
        /// no signature of; exit 1 naming each record that fails.
        #[arg(long, value_name = "FILE")]
        signers: Option<PathBuf>,
        /// With --signers: check only records from this seq on (records written before this
        /// version kept no signatures).
        #[arg(long, value_name = "SEQ", requires = "signers", default_value_t = 1)]
        signers_from: u64,
    },
    /// List the chain (one JSON record per line with --json).
    Show {
        /// Only this instance's records.
        #[arg(long, value_name = "NAME")]
        instance: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn audit(command: AuditCommand, config: &Config) -> anyhow::Result<()> {
    let instance = match &command {
        AuditCommand::Show {
            instance: Some(i), ..
        } => Some(InstanceName::parse(i).context("--instance")?),
        _ => None,
    };
    // The fleet's chain is in its database; a single node's beside its key store.
    let (records, source) = match config.state.postgres() {
        Some(pg) => (
            with_db(pg, async |client| {
                Ok(report::audit(&*client, instance.as_ref()).await?)
            })?,
            "the fleet database".to_owned(),
        ),
        None => {
            let file = AuditFile::beside(&config.keys.file);
            let records = file
                .read()?
                .into_iter()
                .filter(|r| instance.as_ref().is_none_or(|i| r.instance == i.as_str()));
            (records.collect(), file.path().display().to_string())
        }
    };
    match command {
        AuditCommand::Verify {
            head,
            signers,
            signers_from,
        } => {
            chain::verify(&records)
                .with_context(|| format!("the audit chain in {source} is broken"))?;
            if let Some(head) = head {
                if let Err(lost) = chain::holds(&records, &head) {
                    bail!("the audit chain in {source} no longer holds the head {head}: {lost}");
                }
            }
            println!("audit chain intact: {} records ({source})", records.len());
            if let Some(last) = records.last() {
                println!("head {}:{}", last.seq, last.hash);
            }
            if let Some(path) = signers {
                signed(&records, &path, signers_from, config, &source)?;
            }
        }
        AuditCommand::Show { json, .. } => {
            for r in records {
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    // What a client chose (actor, action, reason) never reaches the terminal
                    // raw: control characters and line breaks are escaped, a reason quoted.
                    // In a fleet the login the database saw ends the line; an API change
                    // says how many signed requests it carries.
                    let signed = r
                        .signatures
                        .as_deref()
                        .map(|s| match ccs_endpoint::httpsig::Evidence::parse_list(s) {
                            Ok(list) => format!("  signed {}", list.len()),
                            Err(_) => "  signed (unreadable)".to_owned(),
                        })
                        .unwrap_or_default();
                    println!(
                        "{:>6} {} {:<16} {:<8} {} key_id {}: {} → {}{}{}{signed}",
                        r.seq,
                        r.time.escape_debug(),
                        r.actor.escape_debug(),
                        r.action.escape_debug(),
                        r.instance.escape_debug(),
                        r.key_id,
                        state_text(r.before.as_ref()),
                        state_text(r.after.as_ref()),
                        match r.reason.as_str() {
                            "" => String::new(),
                            reason => format!("  reason {reason:?}"),
                        },
                        match &r.role {
                            Some(role) => format!("  login {role:?}"),
                            None => String::new(),
                        }
                    );
                }
            }
        }
    }
    Ok(())
}

/// `--signers`: every API change's signatures checked again with the secrets of `path`.
fn signed(
    records: &[chain::Record],
    path: &std::path::Path,
    from: u64,
    config: &Config,
    source: &str,
) -> anyhow::Result<()> {
    let (signers, warning) = Signers::load(path, true)?;
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    // The approval timeout and clock skew of the configuration, or the widest allowed.
    let window = match &config.api {
        Some(api) => Window {
            approval_timeout: api.approval_timeout,
            clock_skew: api.clock_skew,
        },
        None => Window {
            approval_timeout: Duration::from_secs(7 * 24 * 3600),
            clock_skew: Duration::from_secs(600),
        },
    };
    // The API's names, which each signature must have been addressed to: `[api] names`, or
    // those of the TLS certificate (read without its key).
    let names = match &config.api {
        Some(api) => {
            let certificate = match api.names.is_empty() {
                true => certificate_names(&config.tls.cert).with_context(|| {
                    "the API's names (set [api] names, or make [tls] cert readable)"
                })?,
                false => Vec::new(),
            };
            Some(own_names(&api.names, &certificate, api.listen.port()))
        }
        None => None,
    };
    let rules = Rules {
        signers: &signers,
        window,
        quorum: config.api.as_ref().map(|a| a.quorum).unwrap_or_default(),
        names,
    };
    let (proven, problems) = proof::check(records, &rules, from);
    for problem in &problems {
        eprintln!("{problem}");
    }
    if !problems.is_empty() {
        bail!(
            "{} problem(s) with the signatures of the audit chain in {source} (checked against {})",
            problems.len(),
            path.display()
        );
    }
    println!(
        "signatures verified: {} API changes, {} signatures ({}){}",
        proven.records,
        proven.signatures,
        path.display(),
        match proven.skipped {
            0 => String::new(),
            n => format!("; {n} records before seq {from} not checked"),
        }
    );
    Ok(())
}

fn state_text(state: Option<&chain::StateRecord>) -> String {
    match state {
        None => "none".into(),
        Some(s) => format!(
            "{}{} kcv {}",
            if s.disabled { "disabled" } else { "enabled" },
            s.not_after
                .as_deref()
                .map(|t| format!(
                    " not_after {}{}",
                    t.escape_debug(),
                    if s.lease { " (lease)" } else { "" }
                ))
                .unwrap_or_default(),
            s.kcv.escape_debug()
        ),
    }
}
