//! What a refused key-store file still withdraws (contract §7: doubt answers 503, never 404,
//! never a stale 200): read leniently, so that a `disabled` flag however it was typed, a
//! `not_after` or an entry removed applies at once although the file as a whole is refused
//! ([`KeyStore::withholding`](super::KeyStore::withholding)).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use time::OffsetDateTime;
use toml::Value;

use super::{parse_time, KeyRef as Id, KeyState};
use crate::protocol::{InstanceName, KeyId};

/// The withdrawals that can be read from a key-store file that was refused.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Withdrawals {
    disabled: BTreeSet<Id>,
    not_after: BTreeMap<Id, OffsetDateTime>,
    /// Every key the file names, when every entry could be identified; otherwise removals
    /// cannot be told apart from entries that did not read, and none is inferred.
    present: Option<BTreeSet<Id>>,
}

impl Withdrawals {
    /// Reads leniently what `text` withdraws. Text that is not TOML withdraws nothing (and
    /// infers no removal).
    pub fn read(text: &str) -> Self {
        let Ok(mut table) = text.parse::<toml::Table>() else {
            return Self::default();
        };
        let entries = match table.remove("key") {
            Some(Value::Array(entries)) => entries,
            None => Vec::new(),
            Some(_) => return Self::default(),
        };
        let mut read = Self {
            present: Some(BTreeSet::new()),
            ..Self::default()
        };
        for entry in entries {
            let Value::Table(entry) = entry else {
                read.present = None;
                continue;
            };
            let Some(id) = identity(&entry) else {
                read.present = None;
                continue;
            };
            if entry.iter().any(|(name, value)| disables(name, value)) {
                read.disabled.insert(id.clone());
            }
            let not_after = entry
                .iter()
                .filter(|(name, _)| normalised(name) == "notafter")
                .find_map(|(_, value)| match value {
                    Value::String(s) => parse_time(s).ok(),
                    Value::Datetime(d) => parse_time(&d.to_string()).ok(),
                    _ => None,
                });
            if let Some(t) = not_after {
                read.not_after.insert(id.clone(), t);
            }
            if let Some(present) = &mut read.present {
                present.insert(id);
            }
        }
        read
    }

    /// Reads leniently what the file at `path` withdraws; a file that cannot be read withdraws
    /// nothing. The text is wiped once read.
    pub fn from_file(path: &Path) -> Self {
        super::format::read_text(path)
            .map(|text| Self::read(&text))
            .unwrap_or_default()
    }

    /// Only what the file says outright (a `disabled` flag, a `not_after`): no removal is
    /// inferred from an entry's absence, which a file being rewritten shows too. What a change
    /// withdraws at once, before the file has settled (contract §7).
    pub fn stated(mut self) -> Self {
        self.present = None;
        self
    }

    /// Whether the file no longer names `id` (known only when every entry could be read).
    pub(super) fn removed(&self, id: &Id) -> bool {
        self.present.as_ref().is_some_and(|p| !p.contains(id))
    }

    /// Whether the file disables `id`.
    pub(super) fn disables(&self, id: &Id) -> bool {
        self.disabled.contains(id)
    }

    /// `last` as the file leaves it: `None` when removed; disabled if the file says so; its
    /// `not_after` the earlier of the two.
    pub(super) fn apply(&self, last: &KeyState) -> Option<KeyState> {
        let id = (last.instance.clone(), last.key_id);
        if self.removed(&id) {
            return None;
        }
        let mut state = last.clone();
        state.disabled |= self.disables(&id);
        if let Some(t) = self.not_after.get(&id) {
            state.not_after = Some(state.not_after.map_or(*t, |old| old.min(*t)));
        }
        Some(state)
    }
}

/// `(instance, key_id)` of an entry, read leniently (a key id may be quoted).
fn identity(entry: &toml::Table) -> Option<Id> {
    let instance = match entry.get("instance")? {
        Value::String(s) => InstanceName::parse(s).ok()?,
        _ => return None,
    };
    let key_id = match entry.get("key_id")? {
        Value::Integer(n) => KeyId::try_from(*n).ok()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Some((instance, key_id))
}

/// A field name without case, `_` or `-`.
fn normalised(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a field reads as "this key is disabled": `disabled`/`disable` (any case) set to
/// something true, or `enabled` set to something false.
fn disables(name: &str, value: &Value) -> bool {
    let truthy = match value {
        Value::Boolean(b) => Some(*b),
        Value::Integer(n) => Some(*n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Some(true),
            "false" | "no" | "0" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    };
    match normalised(name).as_str() {
        "disabled" | "disable" => truthy == Some(true),
        "enabled" | "enable" => truthy == Some(false),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(instance: &str, key_id: KeyId) -> Id {
        (
            InstanceName::parse(instance).unwrap_or_else(|e| panic!("{e}")),
            key_id,
        )
    }

    #[test]
    fn withdrawals_are_read_however_they_were_typed() {
        let text = r#"
            [[key]]
            instance = "a"
            key_id = 1
            disable = true
            [[key]]
            instance = "b"
            key_id = "2"
            Disabled = "yes"
            [[key]]
            instance = "c"
            key_id = 3
            enabled = false
            not-after = "2020-01-01T00:00:00Z"
            [[key]]
            instance = "d"
            key_id = 4
            disabled = false
            secret = "not checked here"
        "#;
        let w = Withdrawals::read(text);
        assert!(w.disabled.contains(&id("a", 1)));
        assert!(w.disabled.contains(&id("b", 2)));
        assert!(w.disabled.contains(&id("c", 3)));
        assert!(!w.disabled.contains(&id("d", 4)));
        assert!(w.not_after.contains_key(&id("c", 3)));
        assert!(w.removed(&id("e", 1)), "a key the file no longer names");
        assert!(!w.removed(&id("d", 4)));
    }

    #[test]
    fn no_removal_is_inferred_when_an_entry_cannot_be_identified() {
        let w = Withdrawals::read("[[key]]\ninstance = \"a\"\nkey_id = 1\n[[key]]\nkey_id = 2\n");
        assert!(!w.removed(&id("z", 9)));
        assert_eq!(
            Withdrawals::read("[[key]\nnot toml"),
            Withdrawals::default()
        );
    }
}
