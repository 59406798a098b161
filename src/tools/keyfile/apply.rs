//! A kill-switch action on the key-store file, decided by the one rule every source follows
//! ([`Action::apply`]: the fleet's database, the signed API and the CLI alike).

use time::OffsetDateTime;

use super::{KeyFile, KeyFileError};
use crate::keystore::{parse_entries, KeyState};
use crate::protocol::{InstanceName, KeyId};
use crate::switch::Action;

impl KeyFile {
    /// Applies `action` at `now` to one key of `instance`, or to all of them (`key_id` none):
    /// each key's switches as [`Action::apply`] decides them. Nothing is changed when the
    /// action does not apply to one of them (the message says which and why). The keys'
    /// states before, in the file's order.
    pub fn apply(
        &mut self,
        instance: &InstanceName,
        key_id: Option<KeyId>,
        action: Action,
        now: OffsetDateTime,
    ) -> Result<Vec<KeyState>, KeyFileError> {
        let text = zeroize::Zeroizing::new(self.doc.to_string());
        let before: Vec<KeyState> = parse_entries(&self.path, &text, self.secrets)?
            .into_iter()
            .map(|e| e.state)
            .filter(|k| &k.instance == instance && key_id.is_none_or(|id| id == k.key_id))
            .collect();
        if before.is_empty() {
            return Err(KeyFileError::Edit {
                path: self.path.clone(),
                message: match key_id {
                    Some(k) => format!("no key for instance {instance:?}, key_id {k}"),
                    None => format!("no key for instance {instance:?}"),
                },
            });
        }
        let mut after = Vec::with_capacity(before.len());
        for key in &before {
            let switches = action.apply(key, now).map_err(|why| KeyFileError::Edit {
                path: self.path.clone(),
                message: format!("instance {instance} key_id {}: {why}", key.key_id),
            })?;
            after.push((key.key_id, switches));
        }
        for (id, switches) in after {
            self.set_disabled(instance, id, switches.disabled)?;
            self.set_not_after(instance, Some(id), switches.not_after)?;
            self.set_lease(instance, id, switches.lease && switches.not_after.is_some())?;
        }
        Ok(before)
    }
}
