//! What the operator commands use: key-store editing, the probe, certificate inspection,
//! `init`, and the development PKI.

pub mod dev;
pub mod init;
pub mod inspect;
pub mod keyfile;
pub mod keys;
pub mod pki;
pub mod probe;
