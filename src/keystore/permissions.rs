//! Who else can read or write the key-store file.

use std::path::Path;

use super::KeyStoreError;

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
}

impl Permissions {
    /// Reads the mode of the file (following symbolic links, as mounted Secrets use).
    #[cfg(unix)]
    pub fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        Ok(if mode & 0o027 != 0 {
            Permissions::Open(mode)
        } else if mode & 0o070 != 0 {
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

    /// A warning to log, or an error when the file is open and that is not allowed.
    pub fn verdict(&self, path: &Path, allow_open: bool) -> Result<Option<String>, KeyStoreError> {
        match *self {
            Permissions::Private => Ok(None),
            Permissions::GroupReadable(mode) => Ok(Some(format!(
                "key store {} is readable by its group (mode {mode:03o}); every member of the group can read the secrets: prefer chmod 600",
                path.display()
            ))),
            Permissions::Open(mode) if allow_open => Ok(Some(format!(
                "key store {} is accessible to others or writable by its group (mode {mode:03o}), served only because allow_insecure_permissions = true: chmod 600 it",
                path.display()
            ))),
            Permissions::Open(mode) => Err(KeyStoreError::Permissions {
                path: path.to_owned(),
                message: format!(
                    "refusing a key store that others can access or its group can write (mode {mode:03o}): run `chmod 600 {}`, or set [keys] allow_insecure_permissions = true to serve anyway",
                    path.display()
                ),
            }),
        }
    }
}
