//! `keys`: generate, import, list, disable, enable, shutdown. Each parses its arguments, calls
//! the library and prints what the next poll will get.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use ccs_endpoint::config::{self, Backend};
use ccs_endpoint::hsm::Hsm;
use ccs_endpoint::keystore::{
    check_permissions, label, read_entries, shared_secrets, KeyState, SecretsIn, LABEL_PREFIX,
};
use ccs_endpoint::protocol::{InstanceName, KeyId};
use ccs_endpoint::secret::Secret;
use ccs_endpoint::switch::Action;
use ccs_endpoint::tools::keyfile::KeyFile;
use ccs_endpoint::tools::keys::{self, listing, listing_json, valid_until};

use super::audit::Audited;
use super::keys_args::{KeyArgs, KeysCommand, StoreArgs, WriteArgs};
use time::OffsetDateTime;
use zeroize::Zeroizing;

const RELOAD_NOTE: &str = "A running server reloads the key store within a second of the file changing (or at once on SIGHUP): no restart is needed.";

pub fn keys(command: KeysCommand, store: StoreArgs) -> anyhow::Result<()> {
    let (path, config) = store.resolve()?;
    // In a fleet, key states live in the database; the file holds secrets only.
    if let Some(pg) = config.as_ref().and_then(|c| c.state.postgres()) {
        if let Some(done) = super::fleet_keys::fleet_keys(&command, pg)? {
            return Ok(done);
        }
    }
    // A mistyped --file must not quietly start a store that no server reads.
    if let KeysCommand::Generate { write, .. } | KeysCommand::Import { write, .. } = &command {
        if !write.create && store.file.is_some() && !path.exists() {
            bail!(
                "key store {} does not exist: check --file, or pass --create to start a new store there",
                path.display()
            );
        }
    }
    let validity = config
        .as_ref()
        .map_or(config::DEFAULT_VALIDITY, |c| c.keys.validity);
    let token = config.as_ref().and_then(|c| match &c.keys.backend {
        Backend::Pkcs11(pkcs11) => Some((pkcs11, c.wrap)),
        Backend::File => None,
    });
    let secrets = if token.is_some() {
        SecretsIn::Token
    } else {
        SecretsIn::File
    };
    let open_token = || -> anyhow::Result<Option<Hsm>> {
        token
            .map(|(pkcs11, wrap)| Hsm::open(pkcs11, wrap))
            .transpose()
            .map_err(Into::into)
    };
    let now = OffsetDateTime::now_utc();
    let audited = Audited::begin(&command, &path, secrets);
    let result = (|| {
        match command {
        KeysCommand::Generate { key, write } => {
            confirm_replacement(&path, secrets, &key, &write)?;
            match open_token()? {
                Some(hsm) => {
                    let secret = hsm.random_secret()?;
                    add_to_token(&hsm, &path, &key, &secret, write.force)
                }
                None => {
                    let secret = Secret::generate().context("the CSPRNG failed")?;
                    add(&path, &key, &secret, write.force)
                }
            }
        }
        KeysCommand::Import {
            instance,
            key_id,
            write,
            from_escrow,
            escrow_key,
        } => {
            let (key, secret) = match (from_escrow, escrow_key, instance, key_id) {
                (Some(file), Some(escrow_key), instance, key_id) => {
                    super::escrow::restore(&file, &escrow_key, instance, key_id)?
                }
                (None, None, Some(instance), Some(key_id)) => {
                    let mut input = Zeroizing::new(String::new());
                    std::io::stdin()
                        .read_to_string(&mut input)
                        .context("reading the key from standard input")?;
                    let secret = Secret::from_hex(input.trim())
                        .map_err(|e| anyhow::anyhow!("standard input: the key {e}"))?;
                    (KeyArgs { instance, key_id }, secret)
                }
                _ => bail!("give --instance and --key-id, or --from-escrow with --escrow-key"),
            };
            confirm_replacement(&path, secrets, &key, &write)?;
            match open_token()? {
                Some(hsm) => add_to_token(&hsm, &path, &key, &secret, write.force),
                None => add(&path, &key, &secret, write.force),
            }
        }
        KeysCommand::Export {
            key,
            to,
            out,
            format,
        } => {
            let hsm = open_token()?;
            let plaintext = config
                .as_ref()
                .map(|c| c.wrap.plaintext)
                .unwrap_or_default();
            let token = hsm.as_ref().map(|hsm| (hsm, plaintext));
            let (state, target) =
                super::escrow::export(&path, &key, &to, out.as_deref(), format, token)?;
            super::audit::exported(config.as_ref(), &path, &state, &target);
            Ok(())
        }
        KeysCommand::List { json } => list(&path, secrets, open_token, now, validity, json),
        KeysCommand::Disable { key, change } => {
            change.file_backend()?;
            switch(&path, secrets, &key, true, now, validity)
        }
        KeysCommand::Enable { key, change } => {
            change.file_backend()?;
            switch(&path, secrets, &key, false, now, validity)
        }
        KeysCommand::Status { .. } => bail!(
            "keys status shows a fleet's key states and last polls ([state] backend = \"postgres\"); with a key-store file, `keys list` shows the states"
        ),
        KeysCommand::Shutdown {
            instance,
            key_id,
            change,
        } => {
            change.file_backend()?;
            let instance = InstanceName::parse(&instance).context("--instance")?;
            let mut file = KeyFile::open_with(&path, secrets)?;
            let changed = file.apply(&instance, key_id, Action::Shutdown(now), now)?;
            let states = file.save()?;
            for id in changed.iter().map(|k| k.key_id) {
                let state = find(&states, &instance, id)?;
                println!(
                    "instance {instance} key_id {id} kcv {}: SHUT DOWN. Next poll: 200 with validUntil {} (past): the database shuts down.",
                    state.kcv,
                    valid_until(&state, now, validity)
                );
            }
            println!("{RELOAD_NOTE}");
            Ok(())
        }
        KeysCommand::Restore {
            instance,
            key_id,
            not_after,
            change,
        } => {
            change.file_backend()?;
            let instance = InstanceName::parse(&instance).context("--instance")?;
            let mut file = KeyFile::open_with(&path, secrets)?;
            let changed = file.apply(&instance, key_id, Action::Restore(not_after), now)?;
            let states = file.save()?;
            for id in changed.iter().map(|k| k.key_id) {
                let state = find(&states, &instance, id)?;
                if state.disabled {
                    println!(
                        "instance {instance} key_id {id} kcv {}: restored, but DISABLED: next poll 404 until `keys enable`.",
                        state.kcv
                    );
                } else {
                    println!(
                        "instance {instance} key_id {id} kcv {}: RESTORED. Next poll: 200 with validUntil {}; a database that shut down resumes at its next poll.",
                        state.kcv,
                        valid_until(&state, now, validity)
                    );
                }
            }
            println!("{RELOAD_NOTE}");
            Ok(())
        }
    }
    })();
    if let (Some(audited), Ok(())) = (audited, &result) {
        audited.finish(&path, secrets);
    }
    result
}

/// `keys list`: the states from the file and, with a token, what the token holds under
/// each label (and `ccs/` objects no entry names).
fn list(
    path: &Path,
    secrets: SecretsIn,
    open_token: impl Fn() -> anyhow::Result<Option<Hsm>>,
    now: OffsetDateTime,
    validity: time::Duration,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(warning) = check_permissions(path, true)? {
        eprintln!("warning: {warning}");
    }
    let keys: Vec<KeyState> = read_entries(path, secrets)?
        .into_iter()
        .map(|entry| entry.state)
        .collect();
    // With a token: every `ccs/` object, or why the token could not be read.
    let token = match secrets {
        SecretsIn::File => None,
        SecretsIn::Token => Some(
            open_token()
                .and_then(|hsm| {
                    Ok(hsm
                        .context("no token is configured")?
                        .objects(LABEL_PREFIX)?)
                })
                .map_err(|e| e.to_string()),
        ),
    };
    match json {
        true => println!("{}", listing_json(&keys, &token, now, validity)),
        false => print!("{}", listing(path, &keys, &token, now, validity)),
    }
    if let Some(Err(e)) = &token {
        bail!("the token could not be read: {e}");
    }
    Ok(())
}

/// Replacing a live key gives up the data encrypted under it (the SaaS asks for key id 1 and
/// does not rotate): `--force` must name the KCV of the key it replaces.
fn confirm_replacement(
    path: &Path,
    secrets: SecretsIn,
    key: &KeyArgs,
    write: &WriteArgs,
) -> anyhow::Result<()> {
    let Some(typed) = write.confirm_kcv.as_deref() else {
        return Ok(());
    };
    let instance = key.instance()?;
    let current = match read_entries(path, secrets) {
        Ok(entries) => entries
            .into_iter()
            .find(|e| e.state.instance == instance && e.state.key_id == key.key_id)
            .map(|e| e.state.kcv),
        Err(_) if !path.exists() => None,
        Err(e) => return Err(e.into()),
    };
    match current {
        Some(kcv) if !typed.trim().eq_ignore_ascii_case(&kcv.to_string()) => bail!(
            "--confirm-kcv {typed} is not the KCV of instance {instance:?} key_id {}'s current key: `keys list` shows it; replacing it makes the data encrypted under it unreadable",
            key.key_id
        ),
        _ => Ok(()),
    }
}

/// `keys generate|import` with a token.
fn add_to_token(
    hsm: &Hsm,
    path: &Path,
    key: &KeyArgs,
    secret: &Secret,
    force: bool,
) -> anyhow::Result<()> {
    let instance = key.instance()?;
    let added = keys::add_to_token(hsm, path, &instance, key.key_id, secret, force)?;
    for warning in shared_secrets(&added.states) {
        eprintln!("warning: {warning}");
    }
    let label = label(&instance, key.key_id);
    if let Some(old) = added.replaced {
        println!(
            "replaced token object {label} (old kcv {})",
            old.kcv.as_deref().unwrap_or("(none)")
        );
    }
    println!(
        "instance {instance} key_id {} kcv {} created in {} as {label} (sensitive: the token wraps it, nobody can read it); entry written to {}",
        key.key_id,
        secret.kcv(),
        hsm.token_name(),
        path.display()
    );
    println!("{RELOAD_NOTE}");
    Ok(())
}

fn add(path: &Path, key: &KeyArgs, secret: &Secret, force: bool) -> anyhow::Result<()> {
    let instance = key.instance()?;
    let mut file = KeyFile::open(path)?;
    let replaced = file.add(&instance, key.key_id, secret, force)?;
    let states = file.save()?;
    for warning in shared_secrets(&states) {
        eprintln!("warning: {warning}");
    }
    if let Some(old) = replaced {
        println!(
            "replaced instance {instance} key_id {} (old kcv {old})",
            key.key_id
        );
    }
    println!(
        "instance {instance} key_id {} kcv {} written to {} (mode 600)",
        key.key_id,
        secret.kcv(),
        path.display()
    );
    println!("{RELOAD_NOTE}");
    Ok(())
}

fn switch(
    path: &Path,
    secrets: SecretsIn,
    key: &KeyArgs,
    disabled: bool,
    now: OffsetDateTime,
    validity: time::Duration,
) -> anyhow::Result<()> {
    let instance = key.instance()?;
    let mut file = KeyFile::open_with(path, secrets)?;
    let action = if disabled {
        Action::Disable
    } else {
        Action::Enable
    };
    file.apply(&instance, Some(key.key_id), action, now)?;
    let states = file.save()?;
    let state = find(&states, &instance, key.key_id)?;
    if disabled {
        println!(
            "instance {instance} key_id {} kcv {}: DISABLED. Next poll: 404; the database stops when its cached key's validUntil passes.",
            key.key_id, state.kcv
        );
    } else if state.not_after.is_some_and(|t| t <= now) {
        println!(
            "instance {instance} key_id {} kcv {}: enabled, but SHUT DOWN: its not_after has passed, so the next poll still answers the past validUntil {} and the database stays down; `keys restore` undoes that.",
            key.key_id,
            state.kcv,
            valid_until(&state, now, validity)
        );
    } else {
        println!(
            "instance {instance} key_id {} kcv {}: enabled. Next poll: 200 with validUntil {}.",
            key.key_id,
            state.kcv,
            valid_until(&state, now, validity)
        );
    }
    println!("{RELOAD_NOTE}");
    Ok(())
}

fn find(states: &[KeyState], instance: &InstanceName, key_id: KeyId) -> anyhow::Result<KeyState> {
    states
        .iter()
        .find(|k| &k.instance == instance && k.key_id == key_id)
        .cloned()
        .context("the key vanished from the store it was just written to")
}
