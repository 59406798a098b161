//! The `keys` commands that change a fleet's key states: they run on its database.

use anyhow::Context;
use ccs_endpoint::config::PostgresConfig;
use ccs_endpoint::fleet::change::Action;
use ccs_endpoint::protocol::InstanceName;
use time::OffsetDateTime;

use super::fleet::{change_keys, status};
use super::keys_args::KeysCommand;

/// The state commands of a fleet, run on its database; `None` for the commands that work on
/// the replica's own key-store file (its secrets).
pub(super) fn fleet_keys(command: &KeysCommand, pg: &PostgresConfig) -> anyhow::Result<Option<()>> {
    let now = OffsetDateTime::now_utc();
    let instance = |name: &str| InstanceName::parse(name).context("--instance");
    let (instance, key_id, action, change) = match command {
        KeysCommand::Disable { key, change } => {
            (key.instance()?, Some(key.key_id), Action::Disable, change)
        }
        KeysCommand::Enable { key, change } => {
            (key.instance()?, Some(key.key_id), Action::Enable, change)
        }
        KeysCommand::Shutdown {
            instance: name,
            key_id,
            change,
        } => (instance(name)?, *key_id, Action::Shutdown(now), change),
        KeysCommand::Restore {
            instance: name,
            key_id,
            not_after,
            change,
        } => (
            instance(name)?,
            *key_id,
            Action::Restore(*not_after),
            change,
        ),
        KeysCommand::Status {
            instance: name,
            key_id,
            json,
        } => {
            status(pg, &instance(name)?, *key_id, *json)?;
            return Ok(Some(()));
        }
        _ => return Ok(None),
    };
    change_keys(pg, &instance, key_id, action, change)?;
    Ok(Some(()))
}
