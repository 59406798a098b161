//! Hot reload of the key store, the trust roots and the server's TLS identity (when: see
//! `watch`). Each part is loaded whole by the same loader as at start-up (`load`) and swapped
//! atomically. A part that fails to load is logged and counted, and follows contract §7: the
//! TLS identity keeps its last good state; a key store that fails answers 503 for its keys,
//! except for the withdrawals that can be read (see [`KeyStore::withholding`]); roots whose file
//! fails are in doubt (503).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::audit::{audit_key_changes, record_file_changes, record_key_states, record_roots};
use super::identity::CertSwitch;
use super::load;
use super::settle::{settle, stamp, Stamp, SETTLE};
use super::state::AppState;
use crate::chain;
use crate::config::Config;
use crate::keystore::{KeySource, KeyStore, Withdrawals};

/// The trigger of a reload after the server wrote the key store itself (atomically).
pub const OWN_WRITE: &str = "api";

/// A part of the server that reloads on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Keys,
    Trust,
    Tls,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Keys, Part::Trust, Part::Tls];

    /// Its name in logs and metrics (`component`).
    pub fn name(self) -> &'static str {
        match self {
            Part::Keys => "keys",
            Part::Trust => "trust",
            Part::Tls => "tls",
        }
    }

    fn files(self, config: &Config) -> Vec<PathBuf> {
        match self {
            Part::Keys => vec![config.keys.file.clone()],
            Part::Trust => config.trust.roots.clone(),
            Part::Tls => vec![config.tls.cert.clone(), config.tls.key.clone()],
        }
    }
}

/// What one reload did: the parts that failed and why, and the warnings of those that loaded.
#[derive(Debug, Default)]
pub struct Report {
    pub failed: Vec<(Part, String)>,
    pub warnings: Vec<(Part, String)>,
}

/// Reloads the parts of a running server from the files its configuration names.
pub struct Reloader {
    /// The configuration as started, with `[trust]` as last re-read on SIGHUP.
    config: Mutex<Config>,
    /// Why the configuration failed to re-read on the last SIGHUP: every root is in doubt until
    /// it reads again.
    config_doubt: Mutex<Option<String>>,
    source: KeySource,
    state: Arc<AppState>,
    cert: Arc<CertSwitch>,
    stamps: Mutex<HashMap<PathBuf, Stamp>>,
    /// The last key store that loaded (a failed reload withholds on top of it).
    last_good_keys: Mutex<Arc<KeyStore>>,
    /// Held for a whole reload: two at once could finish in the wrong order (a reload that read
    /// the configuration before a SIGHUP swapping in its roots after it).
    one_at_a_time: Mutex<()>,
    /// In a fleet, where this replica's secrets go (the applier pairs them with the shared
    /// state, see `fleet`); `None`: the key store is served as loaded.
    fleet: Option<tokio::sync::watch::Sender<Arc<KeyStore>>>,
}

impl Reloader {
    /// Remembers the files as they are now (they were just loaded).
    pub fn new(
        config: Config,
        source: KeySource,
        state: Arc<AppState>,
        cert: Arc<CertSwitch>,
        fleet: Option<tokio::sync::watch::Sender<Arc<KeyStore>>>,
    ) -> Self {
        let stamps = Part::ALL
            .iter()
            .flat_map(|p| p.files(&config))
            .map(|f| {
                let s = stamp(&f);
                (f, s)
            })
            .collect();
        let last_good_keys = Mutex::new(match &fleet {
            Some(local) => Arc::clone(&local.borrow()),
            None => state.keys.store(),
        });
        Self {
            config: Mutex::new(config),
            config_doubt: Mutex::new(None),
            source,
            state,
            cert,
            stamps: Mutex::new(stamps),
            last_good_keys,
            one_at_a_time: Mutex::new(()),
            fleet,
        }
    }

    /// The configuration in force.
    fn config(&self) -> Config {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The directories whose changes may mean a reload.
    pub fn watched_dirs(&self) -> Vec<PathBuf> {
        let config = self.config();
        let mut dirs: Vec<PathBuf> = Part::ALL
            .iter()
            .flat_map(|p| p.files(&config))
            .filter_map(|f| f.parent().map(Path::to_owned))
            .map(|d| {
                if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d
                }
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Reloads every part whose files changed, or every part when `force`d (SIGHUP).
    pub fn reload(&self, force: bool, trigger: &'static str) -> Report {
        let _alone = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        if trigger == "sighup" {
            self.reread_config();
        }
        let config = self.config();
        let mut report = Report::default();
        for part in Part::ALL {
            let files = part.files(&config);
            let changed = {
                let stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
                files.iter().any(|f| stamps.get(f) != Some(&stamp(f)))
            };
            if !(changed || force) {
                continue;
            }
            if changed {
                // Kill wins at once: what the changed key store says it withdraws is served
                // now; the rest (an un-kill, a new key) only once the file has settled.
                if part == Part::Keys {
                    self.withdraw_now(&config);
                }
                // The server's own atomic write (the admin API's) needs no settling.
                let quiet = match trigger {
                    OWN_WRITE => Duration::ZERO,
                    _ => SETTLE,
                };
                let settled = settle(&files, quiet);
                let mut stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
                stamps.extend(settled);
            }
            let component = part.name();
            let (warnings, result) = self.reload_part(part, &config);
            for warning in warnings {
                tracing::warn!(component, %warning, "reload warning");
                report.warnings.push((part, warning));
            }
            match result {
                Ok(()) => {
                    self.state.metrics.reload(component, true);
                    tracing::info!(target: "ccs_endpoint::audit", event = "reload", component, trigger, result = "ok", "reloaded");
                }
                Err(error) => {
                    self.state.metrics.reload(component, false);
                    tracing::error!(target: "ccs_endpoint::audit", event = "reload", component, trigger, result = "failed", %error, "reload failed: the TLS identity keeps its last good state; keys and roots that cannot be confirmed answer 503 (withdrawals that could be read are applied)");
                    report.failed.push((part, error));
                }
            }
        }
        report
    }

    /// Serves at once what the key-store file now says outright that it withdraws (a
    /// `disabled` flag, an earlier `not_after`), before it settles; a removal waits for the
    /// settled file (a file being rewritten lacks entries too).
    fn withdraw_now(&self, config: &Config) {
        let withdrawals = Withdrawals::from_file(&config.keys.file).stated();
        if let Some(local) = &self.fleet {
            let current = Arc::clone(&local.borrow());
            if let Some(withdrawn) = current.withdrawn(&withdrawals) {
                local.send_replace(Arc::new(withdrawn));
            }
            return;
        }
        let current = self.state.keys.store();
        if let Some(withdrawn) = current.withdrawn(&withdrawals) {
            let new = withdrawn.list();
            audit_key_changes(&current.list(), &new);
            record_key_states(&self.state.metrics, &new);
            self.state.set_keys(Arc::new(withdrawn));
            tracing::info!(target: "ccs_endpoint::audit", event = "withdrawn_at_once", "a kill switch read from the changed key store is served now; the rest of the change loads once the file has settled");
        }
    }

    /// Re-reads the configuration file (SIGHUP): `[trust]` takes effect; a change anywhere else
    /// is named as needing a restart; a file that fails to read puts every root in doubt.
    fn reread_config(&self) {
        let path = self.config().path;
        match Config::load(&path) {
            Ok(new) => {
                let mut config = self.config.lock().unwrap_or_else(|e| e.into_inner());
                let restart = config.changed_sections(&new);
                if !restart.is_empty() {
                    tracing::warn!(config = %path.display(), sections = ?restart, "SIGHUP: these sections changed and take effect only after a restart; [trust] is applied now");
                }
                config.trust = new.trust;
                *self.config_doubt.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            Err(e) => {
                *self.config_doubt.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                    "the configuration failed to re-read on SIGHUP ({e}), so [trust] roots cannot be known"
                ));
            }
        }
    }

    /// Loads `part` with its start-up loader and swaps it in (or, having failed, what §7
    /// allows): its warnings, and whether it loaded.
    fn reload_part(&self, part: Part, config: &Config) -> (Vec<String>, Result<(), String>) {
        let now = OffsetDateTime::now_utc();
        match part {
            Part::Keys => {
                let old = self.state.keys.store().list();
                let last_good = || {
                    self.last_good_keys
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                };
                let (store, warnings, result) = match load::keys(config, &self.source) {
                    Ok(loaded) => {
                        *last_good() = Arc::clone(&loaded.value);
                        (loaded.value, loaded.warnings, Ok(()))
                    }
                    Err(error) => {
                        // What the refused file withdraws is applied; the rest answers 503.
                        let error = error.to_string();
                        let withdrawals = Withdrawals::from_file(&config.keys.file);
                        let last_good = Arc::clone(&last_good());
                        let withheld =
                            KeyStore::withholding(&last_good, withdrawals, error.clone());
                        (Arc::new(withheld), Vec::new(), Err(error))
                    }
                };
                if let Some(local) = &self.fleet {
                    local.send_replace(store);
                    return (warnings, result);
                }
                let new = store.list();
                audit_key_changes(&old, &new);
                record_key_states(&self.state.metrics, &new);
                self.state.set_keys(store);
                if result.is_ok() {
                    let reason = "the key-store file changed";
                    record_file_changes(
                        &self.state.metrics,
                        &config.keys.file,
                        &chain::states(&new),
                        reason,
                    );
                }
                (warnings, result)
            }
            Part::Trust => {
                let doubt = self
                    .config_doubt
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let previous = self.state.trust();
                let (trust, errors) = load::trust_again(config, &previous, doubt.as_deref(), now);
                record_roots(&self.state.metrics, &trust.value);
                self.state.set_trust(Arc::new(trust.value));
                let result = match errors.is_empty() {
                    true => Ok(()),
                    false => Err(errors.join("; ")),
                };
                (trust.warnings, result)
            }
            Part::Tls => match load::tls(config, now) {
                Ok(identity) => {
                    let (warnings, identity) = (identity.warnings, identity.value);
                    self.state.metrics.server_cert(identity.not_after);
                    tracing::info!(target: "ccs_endpoint::audit", subject = %identity.subject, not_after = %identity.not_after, "server certificate for new connections");
                    self.cert.store(&identity);
                    (warnings, Ok(()))
                }
                Err(error) => (Vec::new(), Err(error.to_string())),
            },
        }
    }
}
