//! What the operator commands use: key-store editing, the probe, certificate inspection,
//! `init`, and the development PKI.

pub mod dev;
pub mod escrow;
pub mod init;
pub mod inspect;
pub mod keyfile;
pub mod keys;
pub mod pki;
pub mod probe;

use std::path::Path;

/// This program as the shell found it (the path `cargo run` used, or the bare name found on
/// `PATH`), shell-quoted: the commands the binary prints then run as pasted.
pub fn invoked_as() -> String {
    match std::env::args_os().next() {
        Some(arg) if !arg.is_empty() => shell_quote(Path::new(&arg)),
        _ => "ccs-endpoint".to_owned(),
    }
}

/// `path` as a shell word: as it is when plain, single-quoted otherwise.
pub fn shell_quote(path: &Path) -> String {
    let s = path.display().to_string();
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
