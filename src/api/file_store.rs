//! A single node's key store as the admin API changes it: whether this process may write
//! beside it, a key's state and version, a reached change written by the one rule of
//! `switch::Action` (the chain locked first, so the server's own reload does not record it as
//! `file`) and recorded with its signers' signed requests, and an event that changes no state.

use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;

use super::outcome::Failure;
use crate::chain::{self, AuditFile};
use crate::keystore::{read_entries, KeyState, SecretsIn};
use crate::protocol::{InstanceName, KeyId};
use crate::quorum::Vote;
use crate::runtime::reload::{Part, Reloader};
use crate::switch::Action;
use crate::tools::keyfile::KeyFile;

/// Whether this process can write beside `store`, as an API change must (the key store is
/// replaced by a rename, and `audit.jsonl` and `api-nonces.tsv` live beside it): a file is
/// created there and removed. Under a read-only directory (the systemd unit's
/// `ReadOnlyPaths=`, a Kubernetes Secret) it says so, and why.
pub fn writable_beside(store: &Path) -> Result<(), String> {
    let dir = store
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".ccs-endpoint-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "the signed API cannot apply a change on this node: the key store's directory {} is not writable by this process ({e}), and the API writes the key store, audit.jsonl and api-nonces.tsv there; every signed request answers 503 until it is (under the shipped systemd unit, ReadWritePaths={}), and `ccs-endpoint keys disable` on this host still applies a kill",
            dir.display(),
            dir.display()
        )),
    }
}

/// The key's state in the file now.
pub(super) fn find(
    store: &Path,
    secrets: SecretsIn,
    instance: &InstanceName,
    key_id: KeyId,
) -> Result<KeyState, Failure> {
    let entries = read_entries(store, secrets)
        .map_err(|e| Failure::Unavailable(format!("the key store cannot be read: {e}")))?;
    entries
        .into_iter()
        .map(|e| e.state)
        .find(|k| &k.instance == instance && k.key_id == key_id)
        .ok_or_else(|| {
            Failure::NoSuchKey(format!("no key for instance {instance}, key_id {key_id}"))
        })
}

/// The version of `state` an approval is cast on (contract §9): the key's last record in
/// the audit chain beside `store`, and its state now (a hand edit the server has not recorded
/// yet changes it too). A chain that cannot be read leaves the version unknown: 503.
pub(super) fn key_version(store: &Path, state: &KeyState) -> Result<String, Failure> {
    let records = AuditFile::beside(store).read().map_err(|e| {
        Failure::Unavailable(format!(
            "the audit chain cannot be read, so an approval cannot be tied to the key's state: {e}"
        ))
    })?;
    let last = records
        .iter()
        .rev()
        .find(|r| r.instance == state.instance.as_str() && r.key_id == state.key_id)
        .map_or(0, |r| r.seq);
    let now = chain::StateRecord::of(state);
    Ok(format!(
        "seq {last} {} {} {}",
        now.kcv,
        now.disabled,
        now.not_after.unwrap_or_default()
    ))
}

/// Who asked for a reached change: its approvers, their reasons and signed requests, in order.
#[derive(Debug, Clone, Copy)]
pub(super) struct Signed<'a> {
    pub approvers: &'a [String],
    pub reasons: &'a [String],
    pub evidence: &'a [String],
}

/// Writes a reached change to the key-store file (its chain locked first, so the server's own
/// reload does not record it as `file`), records it with its signers and their signed
/// requests, and reloads the server.
pub(super) fn write_change(
    store: &Path,
    secrets: SecretsIn,
    reloader: &Reloader,
    instance: &InstanceName,
    key_id: KeyId,
    action: Action,
    signed: Signed<'_>,
) -> Result<(i64, KeyState, Option<String>), Failure> {
    let chain = AuditFile::beside(store);
    let mut locked = chain
        .lock(Duration::from_secs(5))
        .map_err(|e| {
            tracing::warn!(%e, "the API's change goes ahead but is not recorded in the audit chain");
        })
        .ok();
    let now = OffsetDateTime::now_utc();
    let before = find(store, secrets, instance, key_id)?;
    // Refused (409) before the file is touched; then applied by the same rule.
    action.apply(&before, now).map_err(Failure::Refused)?;
    let unavailable = |e: crate::tools::keyfile::KeyFileError| Failure::Unavailable(e.to_string());
    let mut file = KeyFile::open_with(store, secrets).map_err(unavailable)?;
    file.apply(instance, Some(key_id), action, now)
        .map_err(unavailable)?;
    let states = file.save().map_err(unavailable)?;
    let key = states
        .iter()
        .find(|k| &k.instance == instance && k.key_id == key_id)
        .cloned()
        .ok_or_else(|| Failure::Unavailable("the key vanished from the store".into()))?;
    let mut revision = 0;
    let mut head = None;
    if let Some(locked) = &mut locked {
        let actor = Vote::actor(signed.approvers);
        let reason = Vote::reason(signed.approvers, signed.reasons);
        let old = chain::states([&before]);
        let new = chain::states([&key]);
        let mut changes = chain::changes(&old, &new, &actor, &reason, now);
        // Named by what was asked, as a fleet's database names it (an enable that also
        // lifts a shutdown is an enable).
        for change in &mut changes {
            change.action = action.name().to_owned();
            change.signatures = Vote::signatures(signed.evidence);
        }
        match locked.append(&changes).and_then(|_| locked.read()) {
            Ok(records) => {
                revision = records.last().map_or(0, |r| r.seq as i64);
                head = records.last().map(|r| format!("{}:{}", r.seq, r.hash));
            }
            Err(e) => {
                tracing::error!(target: "ccs_endpoint::audit", %e, "the API's change is made but not recorded in the audit chain")
            }
        }
    }
    drop(locked);
    let report = reloader.reload(false, crate::runtime::reload::OWN_WRITE);
    if let Some((_, error)) = report.failed.iter().find(|(part, _)| *part == Part::Keys) {
        return Err(Failure::Unavailable(format!(
            "the key store was written but the server could not load it ({error}); keys it cannot confirm answer 503"
        )));
    }
    Ok((revision, key, head))
}

/// An event that changes no state (e.g. an export), as the chain records it.
#[derive(Debug)]
pub(super) struct Event<'a> {
    pub action: &'a str,
    pub actor: &'a str,
    pub reason: &'a str,
    pub signatures: Option<String>,
}

/// Records `event` of a key in the chain beside `store`, with the key's state as `keys` serves
/// it; a failure is logged, not fatal.
pub(super) fn record_event(
    store: &Path,
    keys: &crate::keystore::KeyStore,
    instance: &str,
    key_id: KeyId,
    event: Event<'_>,
) {
    let Event {
        action,
        actor,
        reason,
        signatures,
    } = event;
    let Some(state) = keys
        .states()
        .find(|k| k.instance.as_str() == instance && k.key_id == key_id)
    else {
        return;
    };
    let record = chain::StateRecord::of(state);
    let change = chain::Change {
        actor: actor.to_owned(),
        action: action.to_owned(),
        instance: instance.to_owned(),
        key_id,
        before: Some(record.clone()),
        after: Some(record),
        reason: reason.to_owned(),
        signatures,
    };
    let appended = AuditFile::beside(store)
        .lock(Duration::from_secs(5))
        .and_then(|mut locked| locked.append(&[change]));
    if let Err(e) = appended {
        tracing::error!(target: "ccs_endpoint::audit", %e, action, "the event is not recorded in the audit chain");
    }
}
