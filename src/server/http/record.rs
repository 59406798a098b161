//! What the log line of a request says, filled in as the checks go: the answer and the
//! failure both write it, the log line reads it.

use std::net::IpAddr;

use time::OffsetDateTime;

use crate::cert::CertIdentity;
use crate::protocol::{InstanceName, KeyId};
use crate::secret::Kcv;

/// What the log line of a request says, filled in as the checks go.
#[derive(Default)]
pub(in crate::server::http) struct Record {
    pub(in crate::server::http) instance: Option<InstanceName>,
    pub(in crate::server::http) key_id: Option<KeyId>,
    pub(in crate::server::http) cert: Option<CertIdentity>,
    pub(in crate::server::http) verified_by: Option<String>,
    pub(in crate::server::http) cert_not_after: Option<OffsetDateTime>,
    pub(in crate::server::http) client: Option<IpAddr>,
    pub(in crate::server::http) kcv: Option<Kcv>,
    pub(in crate::server::http) valid_until: Option<String>,
    pub(in crate::server::http) valid_until_at: Option<OffsetDateTime>,
    pub(in crate::server::http) kill_switch: bool,
}
