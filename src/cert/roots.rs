//! The configured trust roots: every certificate of every PEM file, judged as a trust anchor.
//!
//! At start-up every file must load. At reload (contract §7) a vanished or emptied file
//! withdraws its roots at once, while a file that is there but fails to load keeps its previous
//! roots *in doubt*: a certificate only they issue answers 503, neither served nor refused,
//! until a good file loads.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use x509_parser::extensions::GeneralName;
use x509_parser::public_key::PublicKey;

use super::{asn1_time, modulus_bits, Fingerprint, TrustError, TrustStore, MIN_RSA_BITS_FLOOR};

/// A configured root or intermediate, as `check`, the logs and the metrics describe it.
#[derive(Debug, Clone)]
pub struct RootInfo {
    pub subject: String,
    pub not_after: time::OffsetDateTime,
    pub sha256: Fingerprint,
    pub file: PathBuf,
    /// Why this root is in doubt (its file failed to reload), if it is.
    pub doubt: Option<String>,
    /// The DNS subtrees of its name constraints: permitted (empty: no DNS constraint), excluded.
    pub(super) dns_permitted: Vec<String>,
    pub(super) dns_excluded: Vec<String>,
}

impl RootInfo {
    /// Whether `name` (a DNS name, compared without case) is inside the root's DNS name
    /// constraints (RFC 5280 §4.2.1.10: a subtree `example.com` holds it and every name made
    /// by adding labels on the left; `.example.com` only the latter).
    pub(super) fn permits_dns(&self, name: &str) -> bool {
        let within = |base: &String| {
            let (name, base) = (name.to_ascii_lowercase(), base.to_ascii_lowercase());
            if base.is_empty() {
                return true;
            }
            if let Some(suffix) = base.strip_prefix('.') {
                return name.ends_with(&format!(".{suffix}"));
            }
            name == base || name.ends_with(&format!(".{base}"))
        };
        (self.dns_permitted.is_empty() || self.dns_permitted.iter().any(within))
            && !self.dns_excluded.iter().any(within)
    }
}

/// A root: the anchor webpki verifies with, and what we know of it.
pub(super) struct Root {
    pub(super) anchor: TrustAnchor<'static>,
    pub(super) info: RootInfo,
}

/// What reading one roots file gave.
enum FileRead {
    Certs(Vec<CertificateDer<'static>>),
    /// Vanished, or emptied: its roots are withdrawn.
    Gone(&'static str),
    /// There, but unusable.
    Failed(String),
}

fn read_file(file: &Path) -> FileRead {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileRead::Gone("vanished"),
        Err(e) => return FileRead::Failed(e.to_string()),
    };
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    match certs {
        Err(e) => FileRead::Failed(e.to_string()),
        Ok(certs) if !certs.is_empty() => FileRead::Certs(certs),
        Ok(_) if bytes.iter().all(u8::is_ascii_whitespace) => FileRead::Gone("is empty"),
        Ok(_) => FileRead::Failed("holds no PEM CERTIFICATE block".into()),
    }
}

/// Judges certificate `index` (0-based) of `file` as a trust anchor: a CA certificate, not an
/// RSA key under 2048 bits, its name constraints read.
pub(super) fn root_from_der(
    file: &Path,
    index: usize,
    der: &CertificateDer<'_>,
) -> Result<Root, TrustError> {
    let err = |message: String| TrustError::File {
        file: file.to_owned(),
        message: format!("certificate {}: {message}", index + 1),
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| err(format!("not a parsable X.509 certificate: {e}")))?;
    let subject = parsed.subject().to_string();
    let is_ca = parsed
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(err(format!(
            "{subject:?} is not a CA certificate (basicConstraints CA:TRUE is missing): only roots and intermediates belong in [trust] roots"
        )));
    }
    if let Ok(PublicKey::RSA(rsa)) = parsed.public_key().parsed() {
        let bits = modulus_bits(rsa.modulus);
        if bits < MIN_RSA_BITS_FLOOR {
            return Err(err(format!(
                "{subject:?} has an RSA key of {bits} bits; a trust root needs at least {MIN_RSA_BITS_FLOOR}"
            )));
        }
    }
    let (mut dns_permitted, mut dns_excluded) = (Vec::new(), Vec::new());
    match parsed.name_constraints() {
        Ok(Some(constraints)) => {
            let dns = |subtrees: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| {
                subtrees
                    .iter()
                    .flatten()
                    .filter_map(|s| match s.base {
                        GeneralName::DNSName(name) => Some(name.to_owned()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            };
            dns_permitted = dns(&constraints.value.permitted_subtrees);
            dns_excluded = dns(&constraints.value.excluded_subtrees);
        }
        Ok(None) => {}
        Err(e) => {
            return Err(err(format!(
                "{subject:?}: unreadable name constraints: {e}"
            )))
        }
    }
    let anchor = webpki::anchor_from_trusted_cert(der)
        .map_err(|e| err(format!("{subject:?} cannot be a trust anchor: {e}")))?;
    Ok(Root {
        info: RootInfo {
            subject,
            not_after: asn1_time(parsed.validity().not_after),
            sha256: Fingerprint::of(der),
            file: file.to_owned(),
            doubt: None,
            dns_permitted,
            dns_excluded,
        },
        anchor: anchor.to_owned(),
    })
}

impl TrustStore {
    /// Reads every certificate of every PEM file. Each must be a CA certificate; each becomes a
    /// trust anchor, so an intermediate in the bundle is trusted to issue directly.
    pub fn load(files: &[PathBuf], min_rsa_bits: usize) -> Result<Self, TrustError> {
        let mut roots = Vec::new();
        for file in files {
            let err = |message: String| TrustError::File {
                file: file.clone(),
                message,
            };
            let certs = match read_file(file) {
                FileRead::Certs(certs) => certs,
                FileRead::Gone("vanished") => return Err(err("cannot read it: not found".into())),
                FileRead::Gone(_) => return Err(err("holds no PEM CERTIFICATE block".into())),
                FileRead::Failed(message) => return Err(err(message)),
            };
            for (index, der) in certs.iter().enumerate() {
                roots.push(root_from_der(file, index, der)?);
            }
        }
        if roots.is_empty() {
            return Err(TrustError::Empty);
        }
        Ok(Self::assemble(roots, min_rsa_bits))
    }

    /// The roots `files` hold now, for a reload after `previous`; never fails (§7). A vanished
    /// or emptied file withdraws its roots; a file that fails to load keeps `previous`'s roots
    /// from it in doubt. Returns the store and an error line per file that did not load.
    pub fn reload(
        files: &[PathBuf],
        min_rsa_bits: usize,
        previous: &TrustStore,
    ) -> (Self, Vec<String>) {
        let (mut fresh, mut doubtful, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for file in files {
            let failed = match read_file(file) {
                FileRead::Certs(certs) => {
                    let roots: Result<Vec<_>, _> = certs
                        .iter()
                        .enumerate()
                        .map(|(index, der)| root_from_der(file, index, der))
                        .collect();
                    match roots {
                        Ok(roots) => {
                            fresh.extend(roots);
                            continue;
                        }
                        Err(e) => e.to_string(),
                    }
                }
                FileRead::Gone(why) => {
                    errors.push(format!(
                        "trust root file {} {why}: its roots are no longer trusted",
                        file.display()
                    ));
                    continue;
                }
                FileRead::Failed(message) => {
                    format!("trust root file {}: {message}", file.display())
                }
            };
            doubtful.extend(previous.in_doubt_where(|root| root.file == *file, &failed));
            errors.push(format!(
                "{failed}: certificates its previous roots issued answer 503 until it loads"
            ));
        }
        fresh.extend(doubtful);
        (Self::assemble(fresh, min_rsa_bits), errors)
    }

    /// Every root of `previous` in doubt for `why` (the configuration itself failed to reload).
    pub fn in_doubt(previous: &TrustStore, why: &str) -> Self {
        Self::assemble(
            previous.in_doubt_where(|_| true, why),
            previous.min_rsa_bits,
        )
    }

    /// The roots that `keep` selects, marked in doubt for `why`.
    fn in_doubt_where(&self, keep: impl Fn(&RootInfo) -> bool, why: &str) -> Vec<Root> {
        self.roots
            .iter()
            .zip(&self.anchors)
            .filter(|(info, _)| keep(info))
            .map(|(info, anchor)| Root {
                anchor: anchor.clone(),
                info: RootInfo {
                    doubt: Some(why.to_owned()),
                    ..info.clone()
                },
            })
            .collect()
    }

    /// Builds a store from DER certificates, each with the file it came from.
    pub fn from_certs(
        certs: Vec<(PathBuf, CertificateDer<'static>)>,
        min_rsa_bits: usize,
    ) -> Result<Self, TrustError> {
        if certs.is_empty() {
            return Err(TrustError::Empty);
        }
        let roots = certs
            .iter()
            .enumerate()
            .map(|(index, (file, der))| root_from_der(file, index, der))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::assemble(roots, min_rsa_bits))
    }
}

#[cfg(test)]
mod tests;
