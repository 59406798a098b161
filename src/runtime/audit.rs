//! What a reload tells operators besides its result: an audit event for every kill-switch or
//! key change, and the gauges of key states and root expiry.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::metrics::Metrics;
use crate::cert::TrustStore;
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
