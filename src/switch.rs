//! The kill switches as state changes: what each action does to a key's `disabled` and
//! `not_after`, whoever asks (the CLI, the signed API, a fleet's database).

use time::OffsetDateTime;

use crate::keystore::KeyState;
use crate::protocol::format_timestamp;

/// A change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The soft kill switch (404).
    Disable,
    /// Undo of `disable` only (the CLI's `keys enable`).
    Enable,
    /// The hard kill switch: `not_after` = this moment (never later than one already set).
    Shutdown(OffsetDateTime),
    /// Undo of `shutdown`: no `not_after`, or a later one.
    Restore(Option<OffsetDateTime>),
    /// The API's un-kill: undoes `disable` and, when `not_after` has passed, `shutdown` too
    /// (`not_after` becomes the given time, or none).
    Reenable(Option<OffsetDateTime>),
    /// The dead-man lease: `not_after` moves forward to this time. Never revives a key whose
    /// `not_after` has passed (that is an un-kill), never moves it back.
    Renew(OffsetDateTime),
}

/// A key's switches after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switches {
    pub disabled: bool,
    pub not_after: Option<OffsetDateTime>,
    /// `not_after` is a lease `renew` may move (see [`KeyState::lease`]).
    pub lease: bool,
}

impl Action {
    /// Its name in the audit chain.
    pub fn name(self) -> &'static str {
        match self {
            Action::Disable => "disable",
            Action::Enable | Action::Reenable(_) => "enable",
            Action::Shutdown(_) => "shutdown",
            Action::Restore(_) => "restore",
            Action::Renew(_) => "renew",
        }
    }

    /// The switches of `before` after this action at `now`, or why it is refused.
    pub fn apply(self, before: &KeyState, now: OffsetDateTime) -> Result<Switches, String> {
        let (disabled, not_after) = (before.disabled, before.not_after);
        let lease = before.lease && not_after.is_some();
        let lapsed = not_after.is_some_and(|t| t <= now);
        Ok(match self {
            Action::Disable => Switches {
                disabled: true,
                not_after,
                lease,
            },
            Action::Enable => Switches {
                disabled: false,
                not_after,
                lease,
            },
            // A shutdown is never a lease, even when an earlier lease ends first.
            Action::Shutdown(at) => Switches {
                disabled,
                not_after: Some(not_after.map_or(at, |t| t.min(at))),
                lease: false,
            },
            Action::Restore(until) => {
                // A restore to a moment already past would be a shutdown under another name.
                if let Some(t) = until.filter(|t| *t <= now) {
                    return Err(format!(
                        "not_after {} has passed: that is a shutdown, not a restore",
                        format_timestamp(t)
                    ));
                }
                Switches {
                    disabled,
                    not_after: until,
                    lease: until.is_some(),
                }
            }
            Action::Reenable(until) => Switches {
                disabled: false,
                not_after: if lapsed { until } else { not_after },
                lease: if lapsed { until.is_some() } else { lease },
            },
            Action::Renew(until) => {
                if let Some(t) = not_after.filter(|_| lapsed) {
                    return Err(format!(
                        "the key is shut down (not_after {} has passed): a lease that lapsed is not renewed; undoing a shutdown is `enable`",
                        format_timestamp(t)
                    ));
                }
                // One signer alone only makes things safer: renew never lifts, postpones or
                // shortens a shutdown that is scheduled (contract §9).
                if let Some(t) = not_after.filter(|_| !lease) {
                    return Err(format!(
                        "the key has a shutdown scheduled at {} (not a lease): renew only moves a lease; undoing a shutdown is `enable`, with its quorum",
                        format_timestamp(t)
                    ));
                }
                if until <= now {
                    return Err(format!(
                        "until {} has passed: that is a shutdown, not a renewal",
                        format_timestamp(until)
                    ));
                }
                if let Some(t) = not_after.filter(|t| until < *t) {
                    return Err(format!(
                        "until {} is before the key's not_after {}: renew only moves it forward (shutdown with \"at\" brings it closer)",
                        format_timestamp(until),
                        format_timestamp(t)
                    ));
                }
                Switches {
                    disabled,
                    not_after: Some(until),
                    lease: true,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use time::macros::datetime;

    use super::*;
    use crate::protocol::InstanceName;
    use crate::secret::Kcv;

    fn key(disabled: bool, not_after: Option<OffsetDateTime>) -> KeyState {
        KeyState {
            instance: InstanceName::parse("db1").unwrap(),
            key_id: 1,
            disabled,
            not_after,
            lease: not_after.is_some(),
            kcv: Kcv::parse("0a0b0c").unwrap(),
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

    #[test]
    fn reenable_undoes_both_switches_and_keeps_a_lease_ahead() {
        let past = Some(datetime!(2026-11-26 11:00 UTC));
        let ahead = Some(datetime!(2026-12-01 00:00 UTC));
        let both = Action::Reenable(None).apply(&key(true, past), NOW).unwrap();
        assert_eq!((both.disabled, both.not_after), (false, None));
        let leased = Action::Reenable(ahead)
            .apply(&key(false, past), NOW)
            .unwrap();
        assert_eq!(leased.not_after, ahead);
        let kept = Action::Reenable(None)
            .apply(&key(true, ahead), NOW)
            .unwrap();
        assert_eq!((kept.disabled, kept.not_after), (false, ahead));
    }

    #[test]
    fn renew_moves_a_live_lease_forward_only() {
        let lease = Some(datetime!(2026-11-30 00:00 UTC));
        let later = datetime!(2026-12-07 00:00 UTC);
        let renewed = Action::Renew(later).apply(&key(false, lease), NOW).unwrap();
        assert_eq!(renewed.not_after, Some(later));
        assert_eq!(
            Action::Renew(later)
                .apply(&key(false, None), NOW)
                .unwrap()
                .not_after,
            Some(later)
        );
        let lapsed = Some(datetime!(2026-11-26 11:59 UTC));
        let error = Action::Renew(later)
            .apply(&key(false, lapsed), NOW)
            .unwrap_err();
        assert!(error.contains("shut down"), "{error}");
        let back = datetime!(2026-11-28 00:00 UTC);
        assert!(Action::Renew(back).apply(&key(false, lease), NOW).is_err());
        assert!(Action::Renew(NOW).apply(&key(false, None), NOW).is_err());
        // A disabled key stays disabled.
        assert!(
            Action::Renew(later)
                .apply(&key(true, lease), NOW)
                .unwrap()
                .disabled
        );
    }

    #[test]
    fn shutdown_never_moves_not_after_later() {
        let soon = Some(datetime!(2026-11-26 12:30 UTC));
        let at = datetime!(2026-11-27 00:00 UTC);
        assert_eq!(
            Action::Shutdown(at)
                .apply(&key(false, soon), NOW)
                .unwrap()
                .not_after,
            soon
        );
        assert_eq!(
            Action::Shutdown(NOW)
                .apply(&key(false, soon), NOW)
                .unwrap()
                .not_after,
            Some(NOW)
        );
    }

    #[test]
    fn renew_never_moves_a_scheduled_shutdown() {
        let scheduled = Some(datetime!(2026-11-27 00:00 UTC));
        let mut state = key(false, scheduled);
        state.lease = false;
        let later = datetime!(2026-12-07 00:00 UTC);
        let error = Action::Renew(later).apply(&state, NOW).unwrap_err();
        assert!(error.contains("scheduled"), "{error}");
        // A shutdown ends a lease: the shutdown it sets is no lease either.
        let leased = key(false, Some(datetime!(2026-11-30 00:00 UTC)));
        let shut = Action::Shutdown(datetime!(2026-11-28 00:00 UTC))
            .apply(&leased, NOW)
            .unwrap();
        assert!(!shut.lease);
        // A renewal of a key without not_after starts a lease, which renew moves on.
        let started = Action::Renew(later).apply(&key(false, None), NOW).unwrap();
        assert!(started.lease);
    }
}
