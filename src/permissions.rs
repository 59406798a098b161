//! Who else can read, write or replace a file holding secrets (the key store, the PIN file): its mode, its
//! owner, and the directory it sits in.

use std::path::Path;

/// How the key-store file's permissions were judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permissions {
    /// Only the owner can read or write it.
    Private,
    /// Readable by the group (the usual shape of a Kubernetes Secret mounted with `fsGroup`):
    /// served, with a warning.
    GroupReadable(u32),
    /// Others can read it, or others or the group can write it: refused unless allowed.
    Open(u32),
    /// Someone other than the service user or root owns it, or its directory lets others
    /// replace it (writable by others without the sticky bit, or by a group the service is not
    /// in): refused unless allowed. Says who.
    Exposed(String),
}

impl Permissions {
    /// Reads the mode of the file (following symbolic links, as mounted Secrets use).
    #[cfg(unix)]
    pub fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let metadata = std::fs::metadata(path)?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o027 != 0 {
            return Ok(Permissions::Open(mode));
        }
        if let Some(why) = exposure(path, metadata.uid()) {
            return Ok(Permissions::Exposed(why));
        }
        Ok(if mode & 0o070 != 0 {
            Permissions::GroupReadable(mode)
        } else {
            Permissions::Private
        })
    }

    /// Permissions are not judged on systems without Unix modes.
    #[cfg(not(unix))]
    pub fn of(_path: &Path) -> std::io::Result<Self> {
        Ok(Permissions::Private)
    }

    /// The verdict for a file of kind `what` (e.g. "PIN file") that holds `holds`: a warning to
    /// log, or the reason to refuse it when it is open and `allow_open` is not set.
    pub fn judge(
        &self,
        what: &str,
        holds: &str,
        path: &Path,
        allow_open: bool,
    ) -> Result<Option<String>, String> {
        match *self {
            Permissions::Private => Ok(None),
            Permissions::GroupReadable(mode) => Ok(Some(format!(
                "{what} {} is readable by its group (mode {mode:03o}); every member of the group can read {holds}: prefer chmod 600",
                path.display()
            ))),
            Permissions::Open(mode) if allow_open => Ok(Some(format!(
                "{what} {} is accessible to others or writable by its group (mode {mode:03o}), used only because allow_insecure_permissions = true: chmod 600 it",
                path.display()
            ))),
            Permissions::Open(mode) => Err(format!(
                "refusing a {what} that others can access or its group can write (mode {mode:03o}): run `chmod 600 {}`, or set [keys] allow_insecure_permissions = true to use it anyway",
                path.display()
            )),
            Permissions::Exposed(ref why) if allow_open => Ok(Some(format!(
                "{what} {}: {why}, used only because allow_insecure_permissions = true",
                path.display()
            ))),
            Permissions::Exposed(ref why) => Err(format!(
                "refusing a {what}: {why}; fix it, or set [keys] allow_insecure_permissions = true to use it anyway"
            )),
        }
    }
}

/// Who the service runs as: the owner of `/proc/self` (Linux), if it can be told.
#[cfg(unix)]
fn service_ids() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .ok()
        .map(|m| (m.uid(), m.gid()))
}

/// Why someone other than the service (or root) could change or replace the file at `path`,
/// owned by `owner`: a foreign owner, or a directory (the one named, and the real one behind a
/// symbolic link) writable by others without the sticky bit or by a foreign group.
#[cfg(unix)]
fn exposure(path: &Path, owner: u32) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (uid, gid) = service_ids()?;
    if owner != uid && owner != 0 {
        return Some(format!(
            "{} is owned by uid {owner}, not by the service user (uid {uid}) or root: `chown` it",
            path.display()
        ));
    }
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for file in [Some(path.to_owned()), std::fs::canonicalize(path).ok()]
        .into_iter()
        .flatten()
    {
        let dir = match file.parent() {
            Some(d) if d.as_os_str().is_empty() => Path::new(".").to_owned(),
            Some(d) => d.to_owned(),
            None => continue,
        };
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        let mode = meta.permissions().mode();
        let sticky = mode & 0o1000 != 0;
        if mode & 0o002 != 0 && !sticky {
            return Some(format!(
                "its directory {} is writable by others (mode {:03o}, no sticky bit): anyone could replace the file; `chmod o-w` it",
                dir.display(),
                mode & 0o7777
            ));
        }
        if mode & 0o020 != 0 && !sticky && meta.gid() != gid && meta.gid() != 0 {
            return Some(format!(
                "its directory {} is writable by group {} that the service (gid {gid}) is not: its members could replace the file; `chmod g-w` it",
                dir.display(),
                meta.gid()
            ));
        }
    }
    None
}
