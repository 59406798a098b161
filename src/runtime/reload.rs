//! Hot reload of the key store, the trust roots and the server's TLS identity, on SIGHUP, on a
//! change in their directories (so the symlink swap of a Kubernetes Secret is seen), and by a
//! slow poll as a fallback. Each part is loaded whole and swapped atomically, once its files
//! have stopped changing (a slow, non-atomic rewrite is never loaded half-written). A part that
//! fails to load is logged and counted, and follows PRODUCT.md §7: the TLS identity keeps its
//! last good state; a key store that fails answers 503 for its keys, except for the withdrawals
//! that can be read (see `keystore::Withheld`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::cert::TrustStore;
use crate::config::Config;
use crate::keystore::{
    Condition, KeySource, KeyState, KeyStore, Permissions, Withdrawals, Withheld,
};
use crate::runtime::metrics::Metrics;
use crate::runtime::state::AppState;
use crate::server::tls::{self, CertSwitch};

/// Changes in a watched directory are gathered for this long before a reload.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Files are also checked this often, for file systems that send no events.
const POLL: Duration = Duration::from_secs(30);
/// A changed file is loaded once it has not changed for this long...
const SETTLE: Duration = Duration::from_millis(500);
/// ...checked this often...
const SETTLE_STEP: Duration = Duration::from_millis(100);
/// ...but a file that keeps changing is loaded after this anyway (and judged as it is).
const SETTLE_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Keys,
    Trust,
    Tls,
}

impl Part {
    const ALL: [Part; 3] = [Part::Keys, Part::Trust, Part::Tls];

    fn name(self) -> &'static str {
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

/// What identifies a version of a file without reading it: device, inode, size, mtime.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .unwrap_or_default();
            (
                0,
                0,
                m.len(),
                modified.as_secs() as i64,
                i64::from(modified.subsec_nanos()),
            )
        })
    }
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
    last_good_keys: Mutex<Arc<dyn KeyStore>>,
    /// Held for a whole reload: two at once could finish in the wrong order (a reload that read
    /// the configuration before a SIGHUP swapping in its roots after it).
    one_at_a_time: Mutex<()>,
}

impl Reloader {
    /// Remembers the files as they are now (they were just loaded).
    pub fn new(
        config: Config,
        source: KeySource,
        state: Arc<AppState>,
        cert: Arc<CertSwitch>,
    ) -> Self {
        let stamps = Part::ALL
            .iter()
            .flat_map(|p| p.files(&config))
            .map(|f| {
                let s = stamp(&f);
                (f, s)
            })
            .collect();
        let last_good_keys = Mutex::new(Arc::clone(&state.snapshot.load().keys));
        Self {
            config: Mutex::new(config),
            config_doubt: Mutex::new(None),
            source,
            state,
            cert,
            stamps: Mutex::new(stamps),
            last_good_keys,
            one_at_a_time: Mutex::new(()),
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
    /// Returns how many parts failed.
    pub fn reload(&self, force: bool, trigger: &'static str) -> usize {
        let _alone = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        if trigger == "sighup" {
            self.reread_config();
        }
        let config = self.config();
        let mut failed = 0;
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
                let settled = settle(&files);
                let mut stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
                stamps.extend(settled);
            }
            let component = part.name();
            match self.reload_part(part, &config) {
                Ok(()) => {
                    self.state.metrics.reload(component, true);
                    tracing::info!(target: "ccs_endpoint::audit", event = "reload", component, trigger, result = "ok", "reloaded");
                }
                Err(error) => {
                    failed += 1;
                    self.state.metrics.reload(component, false);
                    tracing::error!(target: "ccs_endpoint::audit", event = "reload", component, trigger, result = "failed", %error, "reload failed: the TLS identity keeps its last good state; keys and roots that cannot be confirmed answer 503 (withdrawals that could be read are applied)");
                }
            }
        }
        failed
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

    fn reload_part(&self, part: Part, config: &Config) -> Result<(), String> {
        match part {
            Part::Keys => {
                let path = &config.keys.file;
                let loaded = self.load_keys(path, config.keys.allow_insecure_permissions);
                let old = self.state.snapshot.load().keys.list();
                let (store, result): (Arc<dyn KeyStore>, _) = match loaded {
                    Ok(store) => {
                        *self
                            .last_good_keys
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = Arc::clone(&store);
                        (store, Ok(()))
                    }
                    Err(error) => {
                        // What the refused file withdraws is applied; the rest answers 503.
                        let withdrawals = std::fs::read_to_string(path)
                            .map(Zeroizing::new)
                            .map(|text| Withdrawals::read(&text))
                            .unwrap_or_default();
                        let last_good = Arc::clone(
                            &self
                                .last_good_keys
                                .lock()
                                .unwrap_or_else(|e| e.into_inner()),
                        );
                        let withheld = Withheld::new(last_good, withdrawals, error.clone());
                        (Arc::new(withheld), Err(error))
                    }
                };
                let new = store.list();
                audit_key_changes(&old, &new);
                record_key_states(&self.state.metrics, &new);
                self.state.set_keys(store);
                return result;
            }
            Part::Trust => {
                let previous = Arc::clone(&self.state.snapshot.load().trust);
                let doubt = self
                    .config_doubt
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let (trust, errors) = match doubt {
                    Some(why) => (TrustStore::in_doubt(&previous, &why), vec![why]),
                    None => TrustStore::reload(
                        &config.trust.roots,
                        config.trust.min_rsa_bits,
                        &previous,
                    ),
                };
                record_roots(&self.state.metrics, &trust);
                warn_expired_roots(&trust);
                self.state.set_trust(Arc::new(trust));
                if !errors.is_empty() {
                    return Err(errors.join("; "));
                }
            }
            Part::Tls => {
                let identity = tls::load_identity(&config.tls.cert, &config.tls.key)
                    .map_err(|e| e.to_string())?;
                self.state.metrics.server_cert(identity.not_after);
                tracing::info!(target: "ccs_endpoint::audit", subject = %identity.subject, not_after = %identity.not_after, "server certificate for new connections");
                self.cert.store(&identity);
            }
        }
        Ok(())
    }
}

impl Reloader {
    /// The key-store file, judged and loaded with the configured backend.
    fn load_keys(&self, path: &Path, allow_open: bool) -> Result<Arc<dyn KeyStore>, String> {
        let permissions =
            Permissions::of(path).map_err(|e| format!("key store {}: {e}", path.display()))?;
        if let Some(warning) = permissions
            .verdict(path, allow_open)
            .map_err(|e| e.to_string())?
        {
            tracing::warn!(%warning, "key store permissions");
        }
        self.source.load(path).map_err(|e| e.to_string())
    }
}

/// Waits until none of `files` has changed for [`SETTLE`] (at most [`SETTLE_MAX`]); returns
/// their stamps then.
fn settle(files: &[PathBuf]) -> Vec<(PathBuf, Stamp)> {
    let read =
        || -> Vec<(PathBuf, Stamp)> { files.iter().map(|f| (f.clone(), stamp(f))).collect() };
    let started = std::time::Instant::now();
    let mut last = read();
    let mut quiet_since = std::time::Instant::now();
    while quiet_since.elapsed() < SETTLE {
        if started.elapsed() >= SETTLE_MAX {
            tracing::warn!(files = ?files, "files still changing after {SETTLE_MAX:?}; loading them as they are");
            break;
        }
        std::thread::sleep(SETTLE_STEP);
        let now = read();
        if now != last {
            last = now;
            quiet_since = std::time::Instant::now();
        }
    }
    last
}

/// Sets `ccs_keys{state}`.
pub fn record_key_states(metrics: &Metrics, keys: &[KeyState]) {
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

/// Logs every configured root whose validity has ended (the certificates it issued are refused).
pub fn warn_expired_roots(trust: &TrustStore) {
    let now = OffsetDateTime::now_utc();
    for root in trust.roots().iter().filter(|r| r.not_after < now) {
        tracing::warn!(root = %root.subject, file = %root.file.display(), not_after = %root.not_after, "trust root has expired: the certificates it issued are refused");
    }
}

/// Sets the earliest root expiry.
pub fn record_roots(metrics: &Metrics, trust: &TrustStore) {
    metrics.roots(trust.roots().iter().map(|r| r.not_after).min());
}

/// One audit event per kill-switch or key change between two versions of the key store.
fn audit_key_changes(old: &[KeyState], new: &[KeyState]) {
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

/// Reloads on SIGHUP, on changes in the watched directories and every 30 s, until `stop`.
pub async fn watch(reloader: Arc<Reloader>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.send(());
        }
    });
    let _watcher = match watcher {
        Ok(mut watcher) => {
            use notify::Watcher as _;
            for dir in reloader.watched_dirs() {
                if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch; changes are seen by SIGHUP and the 30 s poll");
                }
            }
            Some(watcher)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no file watcher; changes are seen by SIGHUP and the 30 s poll");
            None
        }
    };
    // What changed between the first load and the watches being set.
    {
        let reloader = Arc::clone(&reloader);
        let _ = tokio::task::spawn_blocking(move || reloader.reload(false, "startup")).await;
    }
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut poll = tokio::time::interval(POLL);
    poll.tick().await;
    loop {
        #[cfg(unix)]
        let sighup = async {
            match hangup.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let sighup = std::future::pending::<()>();
        let (force, trigger) = tokio::select! {
            Some(()) = events.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while events.try_recv().is_ok() {}
                (false, "file_change")
            }
            () = sighup => (true, "sighup"),
            _ = poll.tick() => (false, "poll"),
            _ = stop.changed() => break,
        };
        let reloader = Arc::clone(&reloader);
        let _ = tokio::task::spawn_blocking(move || reloader.reload(force, trigger)).await;
    }
}
