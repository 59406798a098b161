//! What a reload tells operators besides its result: an audit event for every kill-switch or
//! key change, and the gauges of key states and root expiry.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use super::metrics::Metrics;
use crate::cert::TrustStore;
use crate::chain::{self, AuditFile, ChainError};
use crate::keystore::{Condition, KeyState};

/// Sets `ccs_keys{state}`.
pub fn record_key_states<'a>(metrics: &Metrics, keys: impl IntoIterator<Item = &'a KeyState>) {
    let now = OffsetDateTime::now_utc();
    let (mut active, mut disabled, mut expired) = (0, 0, 0);
    for key in keys {
        match key.condition(now) {
            Condition::Disabled => disabled += 1,
            Condition::ShutDown(_) => expired += 1,
            Condition::Active { .. } => active += 1,
        }
    }
    metrics.key_states(active, disabled, expired);
}

/// Sets the earliest root expiry.
pub fn record_roots(metrics: &Metrics, trust: &TrustStore) {
    metrics.roots(trust.roots().iter().map(|r| r.not_after).min());
}

/// One audit event per kill-switch or key change between two versions of the key store.
pub(super) fn audit_key_changes(old: &[KeyState], new: &[KeyState]) {
    let index = |keys: &[KeyState]| -> BTreeMap<(String, u64), KeyState> {
        keys.iter()
            .map(|k| ((k.instance.as_str().to_owned(), k.key_id), k.clone()))
            .collect()
    };
    let (old, new) = (index(old), index(new));
    let now = OffsetDateTime::now_utc();
    let event = |key: &KeyState, change: &str| {
        tracing::warn!(
            target: "ccs_endpoint::audit",
            event = "key_state_changed",
            instance = %key.instance,
            key_id = key.key_id,
            change,
            kcv = %key.kcv,
            disabled = key.disabled,
            not_after = key.not_after.map(crate::protocol::format_timestamp),
            "key state changed"
        );
    };
    for (id, key) in &new {
        match old.get(id) {
            None => event(key, "added"),
            Some(before) => {
                if before.kcv != key.kcv {
                    event(key, "secret_replaced");
                }
                if before.disabled != key.disabled {
                    event(key, if key.disabled { "disabled" } else { "enabled" });
                }
                if before.not_after != key.not_after {
                    let shut = key.not_after.is_some_and(|t| t <= now);
                    event(
                        key,
                        if shut {
                            "shut_down"
                        } else {
                            "not_after_changed"
                        },
                    );
                }
            }
        }
    }
    for (id, key) in &old {
        if !new.contains_key(id) {
            event(key, "removed");
        }
    }
}

/// Appends to the audit chain beside the key store `key_store` the changes that bring it to
/// `keys` which it does not record yet, as `file` (an edit by hand or by another tool, or one
/// made while the server was down; the CLI records its own). Called after the swap: a
/// withdrawal never waits on the chain. Sets `ccs_audit_chain_ok`; a failure is logged.
pub(crate) fn record_file_changes(
    metrics: &Metrics,
    key_store: &Path,
    keys: &chain::States,
    reason: &str,
) {
    let file = AuditFile::beside(key_store);
    let now = OffsetDateTime::now_utc();
    let appended = file.lock(Duration::from_secs(2)).and_then(|mut locked| {
        let changes = chain::changes(&locked.latest()?, keys, "file", reason, now);
        locked.append(&changes)?;
        locked.read()
    });
    match appended.map(|records| (chain::verify(&records), records)) {
        Ok((Ok(()), records)) => {
            metrics.audit_chain(true);
            metrics.audit_head(records.last());
        }
        Ok((Err(broken), records)) => {
            metrics.audit_chain(false);
            let records = records.len();
            tracing::error!(target: "ccs_endpoint::audit", chain = %file.path().display(), records, %broken, "the audit chain is broken: `ccs-endpoint audit verify` names the first record changed, removed or reordered");
        }
        // A key store on a read-only mount (a Kubernetes Secret) or in a sandbox that may not
        // write beside it: the chain is the CLI's alone there. Said once, not an alarm.
        Err(ChainError::Io { source, .. })
            if matches!(
                source.kind(),
                ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied
            ) =>
        {
            if !READ_ONLY_SAID.swap(true, Ordering::Relaxed) {
                tracing::warn!(chain = %file.path().display(), %source, "the server cannot write the audit chain beside the key store, so changes made to the file by other means than `ccs-endpoint keys` are not recorded there (the CLI records its own; a fleet's database records every change)");
            }
        }
        Err(error) => {
            metrics.audit_chain(false);
            tracing::error!(target: "ccs_endpoint::audit", %error, "a key-store change could not be recorded in the audit chain (it is applied all the same)");
        }
    }
}

/// Whether the read-only warning was logged.
static READ_ONLY_SAID: AtomicBool = AtomicBool::new(false);
