//! The audit chain of the CLI's changes to a key-store file (contract §10): the chain beside
//! the store is locked before the change and the change appended after it, so that a server
//! reloading the store in between finds it recorded (and does not record it again as `file`).
//! A chain that cannot be written never stops a change: a kill switch goes ahead, with a
//! warning that it is not recorded.

use std::path::Path;
use std::time::Duration;

use ccs_endpoint::chain::{self, AuditFile, Locked};
use ccs_endpoint::config::Config;
use ccs_endpoint::fleet::cli_actor;
use ccs_endpoint::keystore::{read_entries, KeyState, SecretsIn};
use time::OffsetDateTime;

use super::keys_args::KeysCommand;

/// A change to a key store, between locking its chain and recording what changed.
pub struct Audited {
    chain: AuditFile,
    locked: Option<Locked>,
    before: Vec<KeyState>,
    reason: String,
}

/// The keys' states in `path` now (none when it cannot be read).
fn states(path: &Path, secrets: SecretsIn) -> Vec<KeyState> {
    read_entries(path, secrets)
        .map(|entries| entries.into_iter().map(|e| e.state).collect())
        .unwrap_or_default()
}

impl Audited {
    /// Locks the chain beside `path` when `command` changes keys (`None` for one that reads).
    pub fn begin(command: &KeysCommand, path: &Path, secrets: SecretsIn) -> Option<Self> {
        let reason = match command {
            KeysCommand::Disable { change, .. }
            | KeysCommand::Enable { change, .. }
            | KeysCommand::Shutdown { change, .. }
            | KeysCommand::Restore { change, .. } => change.reason.clone().unwrap_or_default(),
            KeysCommand::Generate { .. } | KeysCommand::Import { .. } => String::new(),
            _ => return None,
        };
        let chain = AuditFile::beside(path);
        let locked = match chain.lock(Duration::from_secs(10)) {
            Ok(locked) => Some(locked),
            Err(e) => {
                eprintln!(
                    "warning: {e}: the change goes ahead but is not recorded in the audit chain"
                );
                None
            }
        };
        Some(Self {
            chain,
            locked,
            before: states(path, secrets),
            reason,
        })
    }

    /// Records what changed in `path` since `begin`.
    pub fn finish(self, path: &Path, secrets: SecretsIn) {
        let Some(mut locked) = self.locked else {
            return;
        };
        let after = states(path, secrets);
        let now = OffsetDateTime::now_utc();
        let (before, after) = (chain::states(&self.before), chain::states(&after));
        let changes = chain::changes(&before, &after, &cli_actor(), &self.reason, now);
        match locked.append(&changes) {
            // The new head, to keep outside the chain (`audit verify --head`).
            Ok(records) => {
                if let Some(head) = records.last() {
                    println!("audit head {}:{}", head.seq, head.hash);
                }
            }
            Err(e) => eprintln!(
                "warning: {e}: the change is made but not recorded in the audit chain {}",
                self.chain.path().display()
            ),
        }
    }
}

/// Records `keys export` of `state` (wrapped to `target`, `escrow:<sha256>`) in the audit chain:
/// a fleet's database when the configuration names one, else the chain beside the key store.
/// The export is done; a chain that cannot take it is a warning.
pub fn exported(config: Option<&Config>, path: &Path, state: &KeyState, target: &str) {
    let reason = format!("wrapped to {target}");
    let actor = cli_actor();
    let result = match config.and_then(|c| c.state.postgres()) {
        Some(pg) => super::fleet::with_db(pg, async |client| {
            let key_id = i64::try_from(state.key_id)?;
            client
                .execute(
                    "SELECT ccs_audit_event($1, 'export', $2, $3, $4)",
                    &[&actor, &state.instance.as_str(), &key_id, &reason],
                )
                .await?;
            Ok(())
        }),
        None => {
            let record = chain::StateRecord::of(state);
            let change = chain::Change {
                actor,
                action: "export".into(),
                instance: state.instance.as_str().to_owned(),
                key_id: state.key_id,
                before: Some(record.clone()),
                after: Some(record),
                reason,
                signatures: None,
            };
            AuditFile::beside(path)
                .lock(Duration::from_secs(10))
                .and_then(|mut locked| locked.append(&[change]))
                .map(|_| ())
                .map_err(Into::into)
        }
    };
    if let Err(e) = result {
        eprintln!("warning: {e:#}: the export is done but not recorded in the audit chain");
    }
}
