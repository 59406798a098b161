//! What the audit chain's records of API changes prove (contract §10, `audit verify
//! --signers FILE`): each such record carries its approvers' signed requests, and each is
//! checked again with the signer's secret — the signature itself, that it asked for this
//! record's action on this record's key, that its signers are the record's actor, that it was
//! made shortly before the record, and that no signed request stands behind two records. A
//! record whose actor names a signer but carries no signatures claims what nobody signed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::chain::Record;
use crate::httpsig::Evidence;
use crate::keystore::parse_time;
use crate::signers::{valid_key_id, Signers};

/// What the signatures of a chain came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Proven {
    /// Records whose signatures all verified.
    pub records: usize,
    /// Signatures verified.
    pub signatures: usize,
    /// Records the check skipped: before `from`.
    pub skipped: usize,
}

/// How far a signature may be made before its record (an approval waits at most the approval
/// timeout) or after it (clocks differ by at most the clock skew).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub approval_timeout: Duration,
    pub clock_skew: Duration,
}

/// Actors that are not signers: the CLI, SQL, a file reload, a migration.
fn claims_signers(actor: &str) -> bool {
    !(actor.starts_with("cli:") || actor.starts_with("db:") || actor == "file")
        && actor.split('+').all(valid_key_id)
}

/// Checks every record from seq `from` on: the problems found, each naming its record (empty:
/// all proven).
pub fn check(
    records: &[Record],
    signers: &Signers,
    from: u64,
    window: Window,
) -> (Proven, Vec<String>) {
    let mut proven = Proven::default();
    let mut problems = Vec::new();
    // Each signed request (key id, nonce) stands behind one record only, in the whole chain
    // (also the records not checked: a request borrowed from one of them is found).
    let mut used: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for record in records {
        let list = record.signatures.as_deref().map(Evidence::parse_list);
        for e in list.into_iter().flatten().flatten() {
            if let Ok(params) = e.params() {
                used.entry((e.keyid, params.nonce))
                    .or_default()
                    .push(record.seq);
            }
        }
    }
    for record in records {
        if record.seq < from {
            proven.skipped += 1;
            continue;
        }
        let seq = record.seq;
        let Some(list) = &record.signatures else {
            let named: Vec<&str> = record
                .actor
                .split('+')
                .filter(|id| signers.any(id).is_some())
                .collect();
            if claims_signers(&record.actor) && !named.is_empty() {
                problems.push(format!(
                    "record seq {seq}: its actor {:?} names signers ({}) but it carries no signatures: nobody signed it (a change made in SQL claims it, or the record is from before signatures were kept: see --signers-from)",
                    record.actor.escape_debug().to_string(),
                    named.join(", ")
                ));
            }
            continue;
        };
        let evidence = match Evidence::parse_list(list) {
            Ok(evidence) => evidence,
            Err(e) => {
                problems.push(format!("record seq {seq}: its signatures: {e}"));
                continue;
            }
        };
        let before = problems.len();
        let claimed: BTreeSet<&str> = record.actor.split('+').collect();
        let signed: BTreeSet<&str> = evidence.iter().map(|e| e.keyid.as_str()).collect();
        if claimed != signed || signed.len() != evidence.len() {
            problems.push(format!(
                "record seq {seq}: its actor {:?} is not the signers of its signatures ({})",
                record.actor.escape_debug().to_string(),
                evidence
                    .iter()
                    .map(|e| e.keyid.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let expected_path = format!(
            "/v1/keys/{}/{}/{}",
            record.instance, record.key_id, record.action
        );
        let at = parse_time(&record.time).ok().map(|t| t.unix_timestamp());
        for e in &evidence {
            let keyid = e.keyid.escape_debug().to_string();
            let Some(signer) = signers.any(&e.keyid) else {
                problems.push(format!(
                    "record seq {seq}: key id {keyid:?} is not in the signers file: its signature cannot be checked"
                ));
                continue;
            };
            let params = match e.verify(signer.algorithm, signer.secret()) {
                Ok(params) => params,
                Err(why) => {
                    problems.push(format!(
                        "record seq {seq}: the signature of {keyid:?}: {why}"
                    ));
                    continue;
                }
            };
            let path = e.path.split('?').next().unwrap_or_default();
            if e.method != "POST" || path != expected_path {
                problems.push(format!(
                    "record seq {seq}: {keyid:?} signed {} {}, not POST {expected_path}",
                    e.method.escape_debug(),
                    e.path.escape_debug()
                ));
            }
            let (late, early) = (
                window.clock_skew.as_secs() as i64,
                (window.approval_timeout + window.clock_skew).as_secs() as i64,
            );
            match at {
                Some(at) if params.created <= at + late && params.created >= at - early => {}
                _ => problems.push(format!(
                    "record seq {seq}: {keyid:?} signed at {} (Unix time), not within the approval timeout before the record's time {}",
                    params.created, record.time
                )),
            }
            let behind = used
                .get(&(e.keyid.clone(), params.nonce.clone()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Some(other) = behind.iter().find(|&&s| s != seq) {
                problems.push(format!(
                    "record seq {seq}: the signed request of {keyid:?} (nonce {:?}) stands behind record seq {other} too: a signature proves one change",
                    params.nonce.escape_debug().to_string()
                ));
            }
        }
        if problems.len() == before {
            proven.records += 1;
            proven.signatures += evidence.len();
        }
    }
    (proven, problems)
}
