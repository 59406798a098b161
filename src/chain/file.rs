//! The audit chain of a single node: `audit.jsonl` beside the key store, one record per line,
//! appended under an exclusive lock (the CLI and the server both write it) and synced before
//! the lock is released.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::{Change, Record, States, GENESIS};

/// The chain's file name, in the key store's directory.
pub const FILE_NAME: &str = "audit.jsonl";

/// Why the chain could not be read or appended to.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("audit chain {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit chain {path}: line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("audit chain {path}: another process holds it (tried for {waited:?})")]
    Busy { path: PathBuf, waited: Duration },
    #[error("audit chain {path}: {what}, not a regular file: the chain is written only in place (replace it with the real file, or move it away to start a new chain)")]
    NotAFile { path: PathBuf, what: &'static str },
}

/// `audit.jsonl` of a key store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFile {
    path: PathBuf,
}

/// The chain held under its lock (released when dropped).
pub struct Locked {
    file: File,
    path: PathBuf,
}

impl AuditFile {
    /// The chain beside `key_store`.
    pub fn beside(key_store: &Path) -> Self {
        let dir = key_store.parent().unwrap_or(Path::new("."));
        Self {
            path: dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses a chain that is not a regular file: a symbolic link (whoever can point it
    /// elsewhere could make a verified chain mean another file), a directory, a device.
    fn regular(&self) -> Result<(), ChainError> {
        let what = match std::fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io(e)),
            Ok(m) if m.file_type().is_symlink() => "a symbolic link",
            Ok(m) if m.is_dir() => "a directory",
            Ok(m) if !m.is_file() => "a special file",
            Ok(_) => return Ok(()),
        };
        Err(ChainError::NotAFile {
            path: self.path.clone(),
            what,
        })
    }

    /// Every record, in the file's order (none when there is no file yet).
    pub fn read(&self) -> Result<Vec<Record>, ChainError> {
        self.regular()?;
        match std::fs::read_to_string(&self.path) {
            Ok(text) => parse(&self.path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(self.io(source)),
        }
    }

    /// Opens (creating it, mode 640) and locks the chain, trying for up to `wait`.
    pub fn lock(&self, wait: Duration) -> Result<Locked, ChainError> {
        use std::os::unix::fs::OpenOptionsExt;
        self.regular()?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        let began = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(Locked {
                        file,
                        path: self.path.clone(),
                    })
                }
                Err(TryLockError::WouldBlock) if began.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(ChainError::Busy {
                        path: self.path.clone(),
                        waited: wait,
                    })
                }
                Err(TryLockError::Error(e)) => return Err(self.io(e)),
            }
        }
    }

    fn io(&self, source: std::io::Error) -> ChainError {
        ChainError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl Locked {
    /// Every record, as the file holds them now.
    pub fn read(&mut self) -> Result<Vec<Record>, ChainError> {
        let mut text = String::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_string(&mut text))
            .map_err(|source| ChainError::Io {
                path: self.path.clone(),
                source,
            })?;
        parse(&self.path, &text)
    }

    /// The last recorded state of each key the chain says exists.
    pub fn latest(&mut self) -> Result<States, ChainError> {
        let mut latest = States::new();
        for r in self.read()? {
            match r.after {
                Some(state) => latest.insert((r.instance, r.key_id), state),
                None => latest.remove(&(r.instance, r.key_id)),
            };
        }
        Ok(latest)
    }

    /// Appends `changes` after the last record, in one write, synced; returns the records.
    pub fn append(&mut self, changes: &[Change]) -> Result<Vec<Record>, ChainError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let last = self.read()?.pop();
        let (mut seq, mut prev) = last.map_or((0, GENESIS.to_owned()), |r| (r.seq, r.hash));
        let now = OffsetDateTime::now_utc();
        let mut lines = String::new();
        let mut records = Vec::with_capacity(changes.len());
        for change in changes {
            seq += 1;
            let record = Record::chain(change, seq, now, &prev);
            prev.clone_from(&record.hash);
            // Serialising strings, numbers and booleans cannot fail.
            lines.push_str(&serde_json::to_string(&record).unwrap_or_default());
            lines.push('\n');
            records.push(record);
        }
        self.file
            .write_all(lines.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|source| ChainError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(records)
    }
}

/// The records of `text`; a line that is not one (a torn write, an edit) is named.
fn parse(path: &Path, text: &str) -> Result<Vec<Record>, ChainError> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(ChainError::Line {
            path: path.to_owned(),
            line: text.lines().count(),
            message: "the last record is incomplete (no end of line): a write was cut short".into(),
        });
    }
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| ChainError::Line {
                path: path.to_owned(),
                line: i + 1,
                message: format!("not an audit record: {e}"),
            })
        })
        .collect()
}
