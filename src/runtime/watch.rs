//! When to reload: on SIGHUP, on a change in the directories of the files the configuration
//! names (so the symlink swap of a Kubernetes Secret is seen), and by a slow poll as a fallback.
//! A changed file is loaded only once it has stopped changing, so a slow, non-atomic rewrite is
//! never loaded half-written.

use std::sync::Arc;
use std::time::Duration;

use super::reload::Reloader;

/// Changes in a watched directory are gathered for this long before a reload.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Files are also checked this often, for file systems that send no events.
const POLL: Duration = Duration::from_secs(30);
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
