//! The label sets of the metrics, and the values some labels take from the start.

use prometheus_client::encoding::EncodeLabelSet;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub(super) status: u16,
    pub(super) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabel {
    pub(super) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ApiLabels {
    pub(super) action: &'static str,
    pub(super) status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ComponentLabel {
    pub(super) component: &'static str,
}

/// Every `reason` of `ccs_connections_refused_total`: each series exists from 0 at start.
pub const REFUSAL_REASONS: [&str; 9] = [
    "not_allowed",
    "max_connections_per_client",
    "max_connections",
    "handshake_timeout",
    "tls_handshake",
    "proxy_header",
    "untrusted_proxy",
    "admin_max_connections",
    "idle_timeout",
];

/// The reloadable parts, as `ccs_reloads_total` and `ccs_last_reload_successful` name them.
pub const COMPONENTS: [&str; 3] = ["keys", "trust", "tls"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReloadLabels {
    pub(super) component: &'static str,
    pub(super) result: &'static str,
}

/// Labelled only by instances whose certificate verified, so a caller cannot grow it at will.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct InstanceLabel {
    pub(super) instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StateLabel {
    pub(super) state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct HashLabel {
    pub(super) hash: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BuildLabels {
    pub(super) version: &'static str,
    pub(super) commit: &'static str,
}
