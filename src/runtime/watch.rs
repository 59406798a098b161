//! When to reload: on SIGHUP, on a change in the directories of the files the configuration
//! names (so the symlink swap of a Kubernetes Secret is seen), and by a slow poll as a fallback.
//! A changed file is loaded only once it has stopped changing, so a slow, non-atomic rewrite is
//! never loaded half-written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::reload::Reloader;

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

/// What identifies a version of a file without reading it: device, inode, size, mtime.
pub(super) type Stamp = Option<(u64, u64, u64, i64, i64)>;

pub(super) fn stamp(path: &Path) -> Stamp {
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

/// Waits until none of `files` has changed for [`SETTLE`] (at most [`SETTLE_MAX`]); returns
/// their stamps then.
pub(super) fn settle(files: &[PathBuf]) -> Vec<(PathBuf, Stamp)> {
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
