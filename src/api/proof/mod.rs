//! What the audit chain's records of API changes prove (contract §10, `audit verify
//! --signers FILE`). Each such record carries its approvers' signed requests, and each is
//! checked again with the signer's secret and nothing the server remembers:
//!
//! - the signature itself, covering `@method`, `@target-uri` and the body's `content-digest`;
//! - that it was addressed to this API (one of its names, a bare host and port);
//! - that it asked for this record's action on this record's key, and that its body (`at`,
//!   `until`, the export's certificate, the reason) gives exactly the record's change, by the
//!   same rule the server applied (`switch::Action`);
//! - that its signers are the record's actor, each once, and as many as the action's quorum;
//! - that it was made within the approval timeout before the record and after the key's
//!   previous change (which voided every approval cast before it);
//! - that no signed request stands behind two records.
//!
//! A record whose actor names a signer but that carries no signatures claims what nobody
//! signed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::http::Method;

mod change;
#[cfg(test)]
mod tests;

use super::act::required;
use super::routes::{ChangeBody, Route};
use crate::chain::Record;
use crate::config::Quorum;
use crate::httpsig::{Evidence, Params};
use crate::keystore::parse_time;
use crate::protocol::InstanceName;
use crate::signers::{Action as Permission, Signers};
use change::gives_the_change;

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

/// What a signed change must meet: the signers who could make it, when, how many, and where.
#[derive(Debug)]
pub struct Rules<'a> {
    pub signers: &'a Signers,
    pub window: Window,
    pub quorum: Quorum,
    /// The API's own names (`host:port`, as `@target-uri` holds them); `None`: unknown, only
    /// the form of each authority is checked.
    pub names: Option<Vec<String>>,
}

/// The parts of an actor that name a signer of `signers` (compared as a person would read
/// them: trimmed, in any case).
fn named<'a>(actor: &'a str, signers: &Signers) -> Vec<&'a str> {
    actor
        .split('+')
        .filter(|part| {
            let part = part.trim();
            signers.signer_ids().any(|id| id.eq_ignore_ascii_case(part))
        })
        .collect()
}

/// Whether `authority` is a bare host (a name or an address) with an optional port: nothing
/// that could move characters between the authority and the path of `@target-uri`.
fn plain_authority(authority: &str) -> bool {
    !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// Checks every record from seq `from` on: the problems found, each naming its record (empty:
/// all proven).
pub fn check(records: &[Record], rules: &Rules<'_>, from: u64) -> (Proven, Vec<String>) {
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
    // The time of each key's latest change so far: an approval cast before it was void.
    let mut changed: BTreeMap<(String, u64), i64> = BTreeMap::new();
    for record in records {
        let key = (record.instance.clone(), record.key_id);
        let previous = changed.get(&key).copied();
        if record.before != record.after {
            if let Ok(t) = parse_time(&record.time) {
                changed.insert(key, t.unix_timestamp());
            }
        }
        if record.seq < from {
            proven.skipped += 1;
            continue;
        }
        let seq = record.seq;
        let Some(list) = &record.signatures else {
            let named = named(&record.actor, rules.signers);
            if !named.is_empty() {
                problems.push(format!(
                    "record seq {seq}: its actor {:?} names signers ({}) but it carries no signatures: nobody signed it (a change made in SQL claims it, or the record is from before signatures were kept: see --signers-from)",
                    record.actor.escape_debug().to_string(),
                    named.join(", ").escape_debug()
                ));
            }
            continue;
        };
        let before = problems.len();
        let mut problem = |text: String| problems.push(format!("record seq {seq}: {text}"));
        match Evidence::parse_list(list) {
            Ok(evidence) => {
                check_record(record, &evidence, rules, previous, &used, &mut problem);
                if problems.len() == before {
                    proven.records += 1;
                    proven.signatures += evidence.len();
                }
            }
            Err(e) => problem(format!("its signatures: {e}")),
        }
    }
    (proven, problems)
}

/// The checks of one record's signatures; `previous` the time of its key's change before it.
fn check_record(
    record: &Record,
    evidence: &[Evidence],
    rules: &Rules<'_>,
    previous: Option<i64>,
    used: &BTreeMap<(String, String), Vec<u64>>,
    problem: &mut impl FnMut(String),
) {
    let actor = record.actor.escape_debug().to_string();
    let parts: Vec<&str> = record.actor.split('+').collect();
    let signed: Vec<&str> = evidence.iter().map(|e| e.keyid.as_str()).collect();
    let distinct: BTreeSet<&str> = signed.iter().copied().collect();
    if parts.iter().copied().collect::<BTreeSet<_>>() != distinct
        || distinct.len() != parts.len()
        || distinct.len() != signed.len()
    {
        problem(format!(
            "its actor {actor:?} is not the signers of its signatures, each once ({})",
            signed.join(", ").escape_debug()
        ));
    }
    let permission = Permission::ALL
        .into_iter()
        .find(|p| p.name() == record.action && *p != Permission::Status);
    let Some(permission) = permission else {
        problem(format!(
            "its action {:?} is not one the API takes",
            record.action.escape_debug().to_string()
        ));
        return;
    };
    let needed = required(&rules.quorum, permission);
    if (distinct.len() as u32) < needed {
        problem(format!(
            "{} needs {needed} distinct signers ([api.quorum]); it carries the signatures of {}",
            permission.name(),
            distinct.len()
        ));
    }
    let Ok(time) = parse_time(&record.time) else {
        problem(format!(
            "its time {:?} cannot be read",
            record.time.escape_debug().to_string()
        ));
        return;
    };
    let skew = rules.window.clock_skew.as_secs() as i64;
    let earliest = time.unix_timestamp() - (rules.window.approval_timeout.as_secs() as i64 + skew);
    let mut bodies = Vec::new();
    for e in evidence {
        let keyid = e.keyid.escape_debug().to_string();
        let Some(signer) = rules.signers.any(&e.keyid) else {
            problem(format!(
                "key id {keyid:?} is not in the signers file: its signature cannot be checked"
            ));
            continue;
        };
        let params = match e.verify(signer.algorithm, signer.secret()) {
            Ok(params) => params,
            Err(why) => {
                problem(format!("the signature of {keyid:?}: {why}"));
                continue;
            }
        };
        addressed(e, &keyid, rules, problem);
        asked_for(e, &keyid, record, permission, problem);
        let created = params.created;
        if created > time.unix_timestamp() + skew || created < earliest {
            problem(format!(
                "{keyid:?} signed at {created} (Unix time), not within the approval timeout before the record's time {}",
                record.time.escape_debug()
            ));
        }
        if let Some(previous) = previous.filter(|&p| created < p - skew) {
            problem(format!(
                "{keyid:?} signed at {created} (Unix time), before the key's previous change at {previous}: that change voided its approval"
            ));
        }
        once(e, &params, record.seq, used, &keyid, problem);
        match e.body().map(|b| ChangeBody::parse(&b)) {
            Ok(Ok(body)) => bodies.push((e.keyid.clone(), body, created)),
            _ => problem(format!("{keyid:?} signed a body that is not a change")),
        }
    }
    if bodies.len() == evidence.len() {
        if let Err(why) = gives_the_change(record, permission, &bodies, time, skew) {
            problem(why);
        }
    }
}

/// The authority a signature was made for: a bare host and port, one of the API's names.
fn addressed(e: &Evidence, keyid: &str, rules: &Rules<'_>, problem: &mut impl FnMut(String)) {
    let authority = e.authority.to_ascii_lowercase();
    let shown = e.authority.escape_debug();
    if !plain_authority(&authority) {
        problem(format!(
            "{keyid:?} signed for the authority {shown:?}, which is not a host and port"
        ));
    } else if let Some(names) = rules.names.as_ref().filter(|n| !n.contains(&authority)) {
        problem(format!(
            "{keyid:?} signed for {shown:?}, another server: this API's names are {}",
            names.join(", ")
        ));
    }
}

/// The endpoint a signature asked for: this record's action on this record's key.
fn asked_for(
    e: &Evidence,
    keyid: &str,
    record: &Record,
    permission: Permission,
    problem: &mut impl FnMut(String),
) {
    let path = e.path.split('?').next().unwrap_or_default();
    let route = match e.method.as_str() {
        "POST" => Route::parse(&Method::POST, path).ok(),
        _ => None,
    };
    let key = |instance: &InstanceName, key_id: u64| {
        instance.as_str() == record.instance && key_id == record.key_id
    };
    let right = match &route {
        Some(Route::Change(instance, key_id, p)) => key(instance, *key_id) && *p == permission,
        Some(Route::Export(instance, key_id)) => {
            key(instance, *key_id) && permission == Permission::Export
        }
        _ => false,
    };
    if !right {
        problem(format!(
            "{keyid:?} signed {} {}, not {} of instance {} key_id {}",
            e.method.escape_debug(),
            e.path.escape_debug(),
            permission.name(),
            record.instance.escape_debug(),
            record.key_id
        ));
    }
}

/// That the signed request (key id, nonce) stands behind this record alone.
fn once(
    e: &Evidence,
    params: &Params,
    seq: u64,
    used: &BTreeMap<(String, String), Vec<u64>>,
    keyid: &str,
    problem: &mut impl FnMut(String),
) {
    let behind = used
        .get(&(e.keyid.clone(), params.nonce.clone()))
        .map(Vec::as_slice)
        .unwrap_or_default();
    if let Some(other) = behind.iter().find(|&&s| s != seq) {
        problem(format!(
            "the signed request of {keyid:?} (nonce {:?}) stands behind record seq {other} too: a signature proves one change",
            params.nonce.escape_debug().to_string()
        ));
    }
}
