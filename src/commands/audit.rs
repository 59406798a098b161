//! The audit chain of the CLI's changes to a key-store file (PRODUCT.md §10): the chain beside
//! the store is locked before the change and the change appended after it, so that a server
//! reloading the store in between finds it recorded (and does not record it again as `file`).
//! A chain that cannot be written never stops a change: a kill switch goes ahead, with a
//! warning that it is not recorded.

use std::path::Path;
use std::time::Duration;

use ccs_endpoint::chain::{self, AuditFile, Locked};
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
        if let Err(e) = locked.append(&changes) {
            eprintln!(
                "warning: {e}: the change is made but not recorded in the audit chain {}",
                self.chain.path().display()
            );
        }
    }
}
