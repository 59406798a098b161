//! Unit tables for the roots: what may be a root, and what a root's constraints and expiry
//! mean for the certificates it issued.

use std::path::PathBuf;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::super::tests::{name, store};
use crate::cert::{CertError, TrustError, TrustStore};

#[test]
fn roots_must_be_ca_certificates() {
    let root = crate::tools::pki::ca("r", crate::tools::pki::KeyKind::EcP256)
        .unwrap_or_else(|e| panic!("{e}"));
    let leaf = crate::tools::pki::database(&root, "x");
    // A database certificate needs an RSA key; the issuer may be EC.
    let leaf = leaf.unwrap_or_else(|e| panic!("{e}"));
    let err = TrustStore::from_certs(
        vec![(
            PathBuf::from("bundle.pem"),
            CertificateDer::from(leaf.cert_der().to_vec()),
        )],
        2048,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains("bundle.pem") && err.contains("not a CA certificate"),
        "{err}"
    );
    assert!(matches!(
        TrustStore::from_certs(Vec::new(), 2048),
        Err(TrustError::Empty)
    ));
}

#[test]
fn a_roots_dns_name_constraints_bind_the_common_name() {
    use crate::tools::pki::{self, KeyKind};
    use rcgen::{GeneralSubtree, NameConstraints};
    let ok = |r: Result<pki::Issued, pki::Error>| r.unwrap_or_else(|e| panic!("{e}"));
    let constrained = |permitted: &[&str], excluded: &[&str]| {
        let mut params = pki::ca_params("constrained root");
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: permitted
                .iter()
                .map(|d| GeneralSubtree::DnsName((*d).into()))
                .collect(),
            excluded_subtrees: excluded
                .iter()
                .map(|d| GeneralSubtree::DnsName((*d).into()))
                .collect(),
        });
        let key = KeyKind::Rsa2048
            .generate()
            .unwrap_or_else(|e| panic!("{e}"));
        let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        pki::Issued { cert, key }
    };
    // The CN alone (no SAN), as the attack in the hardening issue did.
    let cn_only = |root: &pki::Issued| {
        let mut params = pki::database_params("tse_ccsdemo").unwrap_or_else(|e| panic!("{e}"));
        params.subject_alt_names.clear();
        ok(root.issue(
            params,
            KeyKind::Rsa2048
                .generate()
                .unwrap_or_else(|e| panic!("{e}")),
        ))
    };
    let now = OffsetDateTime::now_utc();
    let verdict = |root: &pki::Issued, leaf: &pki::Issued| {
        store(&[root])
            .verify(leaf.cert_der(), &name("ccsdemo"), now)
            .err()
            .map(|r| r.error)
    };
    let elsewhere = constrained(&["example.com"], &[]);
    let refused = verdict(&elsewhere, &cn_only(&elsewhere));
    assert_eq!(
        refused.as_ref().map(CertError::reason),
        Some("cert_name_constraints")
    );
    let message = refused.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("\"tse_ccsdemo\"") && message.contains("constrained root"),
        "{message}"
    );
    let excluding = constrained(&[], &["tse_ccsdemo"]);
    assert_eq!(
        verdict(&excluding, &cn_only(&excluding)).map(|e| e.reason()),
        Some("cert_name_constraints")
    );
    let permitting = constrained(&["tse_ccsdemo"], &[]);
    assert_eq!(verdict(&permitting, &cn_only(&permitting)), None);
    let with_san = ok(pki::database(&permitting, "ccsdemo"));
    assert_eq!(verdict(&permitting, &with_san), None);
}

#[test]
fn a_leaf_of_an_expired_root_is_refused_naming_the_root() {
    use crate::tools::pki::{self, KeyKind};
    let now = OffsetDateTime::now_utc();
    let mut params = pki::ca_params("old root");
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let key = KeyKind::Rsa2048
        .generate()
        .unwrap_or_else(|e| panic!("{e}"));
    let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
    let root = pki::Issued { cert, key };
    let leaf = pki::database(&root, "ccsdemo").unwrap_or_else(|e| panic!("{e}"));
    let error = store(&[&root])
        .verify(leaf.cert_der(), &name("ccsdemo"), now)
        .err()
        .map(|r| r.error);
    assert_eq!(
        error.as_ref().map(|e| e.reason()),
        Some("cert_root_expired")
    );
    let message = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("old root") && message.contains("expired on"),
        "{message}"
    );
}
