//! The commands of a fleet (`[state] backend = "postgres"`): `db migrate|import-states`,
//! `fleet status`, the key-state changes and `keys status` when the states live in the
//! database; and `audit verify|show`, of the database's chain or of `audit.jsonl` beside a
//! key-store file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use ccs_endpoint::config::{Config, PostgresConfig};
use ccs_endpoint::fleet::change::{self, Action, Changed};
use ccs_endpoint::fleet::db::Target;
use ccs_endpoint::fleet::{cli_actor, report, schema};
use ccs_endpoint::keystore::{read_entries, Condition, SecretsIn};
use ccs_endpoint::protocol::{format_timestamp, InstanceName, KeyId};
use clap::{Args, Subcommand};

use time::OffsetDateTime;

/// `db`.
#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Create or upgrade the schema (idempotent; safe from every replica at once). Run it with
    /// the role that owns the schema.
    Migrate,
    /// Copy the key states of a key-store file into the database, once: keys it has already
    /// are left as they are there.
    ImportStates {
        /// The key-store file to read states (and KCVs) from.
        #[arg(long, value_name = "KEYS.toml")]
        from: PathBuf,
    },
}

/// `fleet`.
#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// The replicas: revision applied, last seen, live / lost / stopped.
    Status {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// How a fleet change is recorded and confirmed.
#[derive(Args, Debug, Clone, Default)]
pub struct ChangeArgs {
    /// Why (kept in the audit chain: the database's, or audit.jsonl beside a key-store file).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Return when every live replica applied the change (exit 1 naming the laggards).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl ChangeArgs {
    /// Refuses the flag that only a fleet uses.
    pub fn file_backend(&self) -> anyhow::Result<()> {
        if self.wait {
            bail!("--wait confirms that a fleet's replicas applied a change ([state] backend = \"postgres\"); with a key-store file the server reloads it within a second");
        }
        Ok(())
    }
}

/// The `[state]` of the configuration at `path`, which must be PostgreSQL.
pub fn postgres(config: &Config) -> anyhow::Result<&PostgresConfig> {
    config.state.postgres().with_context(|| {
        format!(
            "{}: [state] backend is \"file\": this command works on the fleet's database (backend = \"postgres\")",
            config.path.display()
        )
    })
}

/// Runs `work` with a connection to the database.
pub(super) fn with_db<T>(
    pg: &PostgresConfig,
    work: impl AsyncFnOnce(&mut tokio_postgres::Client) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let target = Target::new(pg, "ccs-endpoint cli")?;
        let mut session = target.connect().await?;
        work(&mut session.client).await
    })
}

pub fn db(command: DbCommand, config: &Config) -> anyhow::Result<()> {
    let pg = postgres(config)?;
    match command {
        DbCommand::Migrate => with_db(pg, async |client| {
            let migrated = schema::migrate(client).await?;
            match migrated.applied.as_slice() {
                [] => println!("schema is current (version {})", migrated.from),
                applied => {
                    for (version, what) in applied {
                        println!("applied schema version {version}: {what}");
                    }
                }
            }
            // The fleet's one quorum is the owner's: this configuration's [api.quorum].
            if let Some(api) = &config.api {
                let q = api.quorum;
                schema::set_quorum(client, &q).await?;
                println!(
                    "fleet quorum: disable {}, shutdown {}, renew {}, enable {}, export {} (each replica counts the larger of this and its own)",
                    q.disable, q.shutdown, q.renew, q.enable, q.export
                );
            }
            Ok(())
        }),
        DbCommand::ImportStates { from } => {
            let states: Vec<_> = read_entries(&from, SecretsIn::File)
                .or_else(|_| read_entries(&from, SecretsIn::Token))?
                .into_iter()
                .map(|e| e.state)
                .collect();
            with_db(pg, async |client| {
                let imported = change::import(client, &cli_actor(), &states).await?;
                for k in &imported.added {
                    println!("added {} key_id {} kcv {}", k.instance, k.key_id, k.kcv);
                }
                for k in &imported.kept {
                    println!(
                        "kept {} key_id {}: the database has it already (its state there is unchanged)",
                        k.instance, k.key_id
                    );
                }
                println!(
                    "{} added, {} already there",
                    imported.added.len(),
                    imported.kept.len()
                );
                Ok(())
            })
        }
    }
}

pub fn fleet(command: FleetCommand, config: &Config) -> anyhow::Result<()> {
    let pg = postgres(config)?;
    let FleetCommand::Status { json } = command;
    with_db(pg, async |client| {
        let (revision, replicas) = report::replicas(&*client, pg.max_staleness).await?;
        if json {
            let out = serde_json::json!({"revision": revision, "replicas": replicas});
            println!("{out}");
            return Ok(());
        }
        println!("current revision {revision}");
        for r in &replicas {
            println!(
                "{:<24} {:<8} revision {:<6} last seen {:.1}s ago  version {}  started {}",
                // A replica writes its own row: what it wrote reaches no terminal raw.
                r.name.escape_debug().to_string(),
                r.status,
                r.applied_revision,
                r.last_seen_seconds,
                r.version.escape_debug(),
                r.started_at
            );
        }
        if replicas.is_empty() {
            println!("no replica has registered yet");
        }
        Ok(())
    })
}

/// `keys disable|enable|shutdown|restore` on the fleet's database.
pub fn change_keys(
    pg: &PostgresConfig,
    instance: &InstanceName,
    key_id: Option<KeyId>,
    action: Action,
    args: &ChangeArgs,
) -> anyhow::Result<()> {
    let reason = args.reason.clone().unwrap_or_default();
    let now = OffsetDateTime::now_utc();
    with_db(pg, async |client| {
        let changed =
            change::change(client, &cli_actor(), instance, key_id, action, &reason).await?;
        for c in &changed {
            println!("{}", describe(c, now));
        }
        let revision = changed.iter().map(|c| c.revision).max().unwrap_or(0);
        // The new head, to keep outside the chain (`audit verify --head`).
        if let Some(hash) = report::audit_hash(&*client, revision).await? {
            println!("audit head {revision}:{hash}");
        }
        if !args.wait {
            println!("revision {revision}: replicas apply it within a second; --wait confirms it");
            return Ok(());
        }
        let applied =
            change::wait_applied(&*client, revision, pg.max_staleness, args.timeout).await?;
        let total = applied.applied.len() + applied.laggards.len();
        if applied.laggards.is_empty() {
            println!(
                "applied on {}/{} replicas in {} ms (revision {revision})",
                applied.applied.len(),
                total,
                applied.elapsed.as_millis()
            );
            if total == 0 {
                println!("no replica was seen within max_staleness: none serves this key until one confirms the new state");
            }
            return Ok(());
        }
        let laggards: Vec<String> = applied
            .laggards
            .iter()
            .map(|(name, at)| format!("{name} (at revision {at})"))
            .collect();
        bail!(
            "applied on {}/{} replicas after {} ms; not yet on: {} (revision {revision}; a replica that cannot confirm the state answers 503 after max_staleness)",
            applied.applied.len(),
            total,
            applied.elapsed.as_millis(),
            laggards.join(", ")
        )
    })
}

fn describe(c: &Changed, now: OffsetDateTime) -> String {
    let k = &c.after;
    let head = format!("instance {} key_id {} kcv {}", k.instance, k.key_id, k.kcv);
    if c.before == c.after {
        return format!("{head}: unchanged (revision {})", c.revision);
    }
    match k.condition(now) {
        Condition::Disabled => format!("{head}: DISABLED. Next poll: 404."),
        Condition::ShutDown(t) => format!(
            "{head}: SHUT DOWN. Next poll: 200 with validUntil {} (past): the database shuts down.",
            format_timestamp(t)
        ),
        Condition::Active { .. } => format!("{head}: active. Next poll: 200."),
    }
}

/// `keys status`: each key's state and its last poll.
pub fn status(
    pg: &PostgresConfig,
    instance: &InstanceName,
    key_id: Option<KeyId>,
    json: bool,
) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    with_db(pg, async |client| {
        let keys = report::key_status(&*client, Some(instance), key_id).await?;
        if keys.is_empty() {
            bail!("the fleet database has no such key for instance {instance}");
        }
        for k in &keys {
            let verdict = k.verdict(now);
            if json {
                let out = serde_json::json!({
                    "instance": k.state.instance.as_str(),
                    "key_id": k.state.key_id,
                    "kcv": k.state.kcv.to_string(),
                    "state": k.state.condition(now).name(),
                    "disabled": k.state.disabled,
                    "not_after": k.state.not_after.map(format_timestamp),
                    "lease": k.state.lease && k.state.not_after.is_some(),
                    "revision": k.revision,
                    "changed_at": k.changed_at,
                    "changed_by": k.changed_by,
                    "reason": k.reason,
                    "last_poll": k.last_poll,
                    "verdict": verdict,
                });
                println!("{out}");
            } else {
                let state = match k.state.condition(now) {
                    Condition::Disabled => "disabled (polls answer 404)".to_owned(),
                    Condition::ShutDown(t) => format!(
                        "shut down at {} (polls answer 200 with that past validUntil)",
                        format_timestamp(t)
                    ),
                    Condition::Active { until: Some(t) } => format!(
                        "active until {} ({})",
                        format_timestamp(t),
                        if k.state.lease {
                            "a lease"
                        } else {
                            "a scheduled shutdown"
                        }
                    ),
                    Condition::Active { until: None } => "active".to_owned(),
                };
                let last_poll = match &k.last_poll {
                    Some(p) => format!(
                        "{} via replica {}: answered {} {}{}",
                        p.at.escape_debug(),
                        p.replica.escape_debug(),
                        p.status,
                        p.reason.escape_debug(),
                        p.valid_until
                            .as_deref()
                            .map(|v| format!(", validUntil {}", v.escape_debug()))
                            .unwrap_or_default()
                    ),
                    None => "never polled".to_owned(),
                };
                println!(
                    "instance {} key_id {} kcv {}: revision {}, changed {} by {}{}\n  state      {state}\n  last poll  {last_poll}\n  {}",
                    k.state.instance,
                    k.state.key_id,
                    k.state.kcv,
                    k.revision,
                    k.changed_at,
                    k.changed_by.escape_debug(),
                    match k.reason.as_str() {
                        "" => String::new(),
                        r => format!(" ({r:?})"),
                    },
                    verdict.escape_debug()
                );
            }
        }
        Ok(())
    })
}
