//! The checks of a certificate that depend on the clock and the instance (its validity window,
//! its root's, the Common Name), run at every request on what the cached checks left.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{printable, CertError, CertIdentity, Rejected, VerifiedCert};
use crate::protocol::InstanceName;
use crate::wrap::RecipientKey;

/// A certificate that passed the checks that depend on neither the clock nor the instance.
#[derive(Debug)]
pub(super) struct Checked {
    pub(super) identity: CertIdentity,
    pub(super) recipient: Arc<RecipientKey>,
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
    /// The one Common Name, or why there is none to compare.
    pub(super) common_name: Result<String, String>,
    pub(super) verified_by: String,
    pub(super) root_not_after: OffsetDateTime,
    pub(super) trust_doubt: Option<String>,
}

impl Checked {
    /// The checks that depend on the clock and the instance: the validity window, the CN.
    pub(super) fn finish(
        &self,
        instance: &InstanceName,
        now: OffsetDateTime,
    ) -> Result<VerifiedCert, Rejected> {
        let reject = |error: CertError| Rejected {
            identity: Some(Box::new(self.identity.clone())),
            error,
        };
        if now < self.not_before {
            return Err(reject(CertError::NotYetValid(self.not_before)));
        }
        if now > self.not_after {
            return Err(reject(CertError::Expired(self.not_after)));
        }
        if now > self.root_not_after {
            return Err(reject(CertError::RootExpired {
                root: self.verified_by.clone(),
                not_after: self.root_not_after,
            }));
        }
        let expected = instance.expected_common_name();
        let found = match &self.common_name {
            Ok(cn) if *cn == expected => {
                return Ok(VerifiedCert {
                    identity: self.identity.clone(),
                    recipient: Arc::clone(&self.recipient),
                    not_after: self.not_after,
                    verified_by: self.verified_by.clone(),
                    trust_doubt: self.trust_doubt.clone(),
                })
            }
            Ok(cn) => format!("{:?}", printable(cn)),
            Err(why) => why.clone(),
        };
        Err(reject(CertError::CommonName {
            found,
            expected,
            instance: instance.as_str().to_owned(),
        }))
    }
}
