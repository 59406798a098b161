//! Whether the bodies a record's approvers signed give exactly its change.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use crate::api::export::export_record;
use crate::api::routes::ChangeBody;
use crate::chain::{Record, StateRecord};
use crate::keystore::{parse_time, KeyState};
use crate::protocol::{format_timestamp, InstanceName};
use crate::quorum::Vote;
use crate::secret::Kcv;
use crate::signers::Action as Permission;
use crate::switch::Action;

/// Whether the signed bodies give exactly the record's change: one target agreed on, the
/// reason as the server writes it, and the state after as the rule makes it of the state
/// before.
pub(super) fn gives_the_change(
    record: &Record,
    permission: Permission,
    bodies: &[(String, ChangeBody, i64)],
    time: OffsetDateTime,
    skew: i64,
) -> Result<(), String> {
    let approvers: Vec<String> = bodies.iter().map(|(id, ..)| id.clone()).collect();
    let reasons: Vec<String> = bodies.iter().map(|(_, b, _)| b.reason.clone()).collect();
    let mut targets = BTreeSet::new();
    let reason = if permission == Permission::Export {
        let mut target = String::new();
        for (_, body, _) in bodies {
            let (_, _, t) = body.export()?;
            targets.insert(t.clone());
            target = t;
        }
        if record.before != record.after {
            return Err("an export changed the key's state".into());
        }
        export_record(&target, &approvers, &reasons).1
    } else {
        let mut action = None;
        for (_, body, created) in bodies {
            let (mut a, t) = body.action(permission, time)?;
            // A shutdown without `at` is "now" at the request that completed it: between the
            // earliest signature and the record.
            if let (Action::Shutdown(_), None) = (a, &body.at) {
                let at = record.after.as_ref().and_then(|s| s.not_after.as_deref());
                if let Some(at) = at.and_then(|t| parse_time(t).ok()) {
                    let at_unix = at.unix_timestamp();
                    if at_unix >= created.saturating_sub(skew)
                        && at_unix <= time.unix_timestamp() + skew
                    {
                        a = Action::Shutdown(at);
                    }
                }
            }
            targets.insert(t);
            action = Some(a);
        }
        let Some(action) = action else {
            return Err("it carries no signature".into());
        };
        let Some(before) = record.before.as_ref() else {
            return Err("it has no state before the change".into());
        };
        let state = key_state(record, before)?;
        let after = action.apply(&state, time).map_err(|why| {
            format!("the signed change does not apply to the state before: {why}")
        })?;
        // Compared as states, not as text (the fleet's records write times their own way).
        let recorded = record
            .after
            .as_ref()
            .filter(|a| a.kcv == before.kcv)
            .and_then(|a| key_state(record, a).ok());
        let same = recorded.is_some_and(|r| {
            (r.disabled, r.not_after, r.lease && r.not_after.is_some())
                == (after.disabled, after.not_after, after.lease)
        });
        if !same {
            return Err(format!(
                "its state after is not what the signed {} gives (disabled {}, not_after {})",
                permission.name(),
                after.disabled,
                after.not_after.map_or("none".into(), format_timestamp)
            ));
        }
        Vote::reason(&approvers, &reasons)
    };
    if targets.len() > 1 {
        return Err("its signatures ask for different changes".into());
    }
    if record.reason != reason {
        return Err(format!(
            "its reason {:?} is not the signed one {:?}",
            record.reason.escape_debug().to_string(),
            reason.escape_debug().to_string()
        ));
    }
    Ok(())
}

/// The key's state as a record shows it, for the rule to apply to.
fn key_state(record: &Record, state: &StateRecord) -> Result<KeyState, String> {
    Ok(KeyState {
        instance: InstanceName::parse(&record.instance).map_err(|e| e.to_string())?,
        key_id: record.key_id,
        disabled: state.disabled,
        not_after: state.not_after.as_deref().map(parse_time).transpose()?,
        lease: state.lease,
        kcv: Kcv::parse(&state.kcv).ok_or("its kcv cannot be read")?,
    })
}
