//! Prometheus metrics: one registry per server (no globals), rendered by the admin listener.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

use super::fleet_metrics::{FleetCollector, FleetGauges};

mod labels;

use labels::{
    ApiLabels, BuildLabels, ComponentLabel, HashLabel, InstanceLabel, ReasonLabel, ReloadLabels,
    RequestLabels, StateLabel,
};
pub use labels::{COMPONENTS, REFUSAL_REASONS};

type TimeGauge = Gauge<f64, AtomicU64>;

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    rejections: Family<ReasonLabel, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    reload_ok: Family<ComponentLabel, Gauge<i64, AtomicI64>>,
    last_poll: Family<InstanceLabel, TimeGauge>,
    polls: Family<InstanceLabel, Counter>,
    db_cert_not_after: Family<InstanceLabel, TimeGauge>,
    server_cert_not_after: TimeGauge,
    roots_not_after: TimeGauge,
    keys: Family<StateLabel, Gauge<i64, AtomicI64>>,
    connections_refused: Family<ReasonLabel, Counter>,
    open_connections: Gauge<i64, AtomicI64>,
    ready: Gauge<i64, AtomicI64>,
    backend_up: Gauge<i64, AtomicI64>,
    audit_chain_ok: Gauge<i64, AtomicI64>,
    audit_head: Family<HashLabel, Gauge<i64, AtomicI64>>,
    api_requests: Family<ApiLabels, Counter>,
    api_signers_ok: Gauge<i64, AtomicI64>,
    /// The fleet state's figures (exported with `[state] backend = "postgres"` only).
    pub fleet: Arc<FleetGauges>,
    /// Serialises rendering (the registry encoder takes `&Registry`; the lock keeps scrapes whole).
    render_lock: Mutex<()>,
}

fn unix(t: OffsetDateTime) -> f64 {
    t.unix_timestamp() as f64 + f64::from(t.millisecond()) / 1000.0
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "ccs_requests",
            "Key requests by HTTP status and reason",
            requests.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "ccs_request_duration_seconds",
            "Time to answer a key request",
            latency.clone(),
        );
        let rejections = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "ccs_certificate_rejections",
            "Database certificates refused (401), by reason",
            rejections.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "ccs_reloads",
            "Reloads of the key store, trust roots and server certificate, by result",
            reloads.clone(),
        );
        let reload_ok = Family::<ComponentLabel, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "ccs_last_reload_successful",
            "1 when the last load of the component succeeded, 0 while it is failing (alert on this)",
            reload_ok.clone(),
        );
        // Every series exists from the start, so increase() sees the first failure.
        for component in COMPONENTS {
            for result in ["ok", "failed"] {
                let _ = reloads.get_or_create(&ReloadLabels { component, result });
            }
            reload_ok
                .get_or_create(&ComponentLabel { component })
                .set(1);
        }
        let last_poll = Family::<InstanceLabel, TimeGauge>::default();
        registry.register(
            "ccs_last_successful_poll_timestamp_seconds",
            "When each instance last got its key (alert when the SaaS stops polling)",
            last_poll.clone(),
        );
        let polls = Family::<InstanceLabel, Counter>::default();
        registry.register(
            "ccs_polls",
            "Successful polls (200, the hard kill switch's included) of each instance",
            polls.clone(),
        );
        let db_cert_not_after = Family::<InstanceLabel, TimeGauge>::default();
        registry.register(
            "ccs_database_certificate_not_after_timestamp_seconds",
            "Expiry of the last verified database certificate of each instance",
            db_cert_not_after.clone(),
        );
        let server_cert_not_after = TimeGauge::default();
        registry.register(
            "ccs_server_certificate_not_after_timestamp_seconds",
            "Expiry of the server's own TLS certificate",
            server_cert_not_after.clone(),
        );
        let roots_not_after = TimeGauge::default();
        registry.register(
            "ccs_trust_roots_earliest_not_after_timestamp_seconds",
            "The earliest expiry among the configured trust roots",
            roots_not_after.clone(),
        );
        let keys = Family::<StateLabel, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "ccs_keys",
            "Keys in the store by state (active, disabled, expired: kill switches)",
            keys.clone(),
        );
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "ccs_connections_refused",
            "Connections closed before HTTP, by reason",
            connections_refused.clone(),
        );
        for reason in REFUSAL_REASONS {
            let _ = connections_refused.get_or_create(&ReasonLabel { reason });
        }
        let open_connections = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "ccs_open_connections",
            "TLS connections open now",
            open_connections.clone(),
        );
        let ready = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "ccs_ready",
            "1 while serving, 0 while starting or draining",
            ready.clone(),
        );
        let build = Family::<BuildLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "ccs_build_info",
            "The version and commit of this binary (always 1)",
            build.clone(),
        );
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: super::process::COMMIT,
            })
            .set(1);
        registry.register_collector(Box::new(super::process::ProcessCollector));
        let audit_chain_ok = Gauge::<i64, AtomicI64>::default();
        audit_chain_ok.set(1);
        registry.register(
            "ccs_audit_chain_ok",
            "1 while the audit chain beside the key store verifies and takes every change; 0 once a change could not be recorded or the chain is broken (alert on this)",
            audit_chain_ok.clone(),
        );
        let audit_head = Family::<HashLabel, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "ccs_audit_head",
            "The audit chain's last record: its seq, labelled with its hash (keep it outside; `audit verify --head SEQ:HASH` checks the chain still holds it)",
            audit_head.clone(),
        );
        let fleet = Arc::new(FleetGauges::default());
        registry.register_collector(Box::new(FleetCollector(Arc::clone(&fleet))));
        let backend_up = Gauge::<i64, AtomicI64>::default();
        backend_up.set(1);
        registry.register(
            "ccs_key_backend_up",
            "1 when the key backend's last token call (a poll's wrap or the readiness test wrap) succeeded; always 1 for the file backend",
            backend_up.clone(),
        );
        let api_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "ccs_api_requests",
            "Signed admin API requests by action and HTTP status (401: refused signatures)",
            api_requests.clone(),
        );
        let api_signers_ok = Gauge::<i64, AtomicI64>::default();
        api_signers_ok.set(1);
        registry.register(
            "ccs_api_signers_ok",
            "1 while the admin API's signers file loads; 0 while it cannot be used (every API request answers 503; alert on this)",
            api_signers_ok.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            rejections,
            reloads,
            reload_ok,
            last_poll,
            polls,
            db_cert_not_after,
            server_cert_not_after,
            roots_not_after,
            keys,
            connections_refused,
            open_connections,
            ready,
            backend_up,
            audit_chain_ok,
            audit_head,
            api_requests,
            api_signers_ok,
            fleet,
            render_lock: Mutex::new(()),
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let _guard = self.render_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// One answered key request.
    pub fn request(&self, status: u16, reason: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { status, reason })
            .inc();
        self.latency.observe(seconds);
    }

    /// A refused certificate.
    pub fn rejection(&self, reason: &'static str) {
        self.rejections.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// A successful poll: the instance's key went out, to a certificate valid until `not_after`.
    pub fn poll(&self, instance: &str, at: OffsetDateTime, cert_not_after: OffsetDateTime) {
        let label = InstanceLabel {
            instance: instance.to_owned(),
        };
        self.last_poll.get_or_create(&label).set(unix(at));
        self.polls.get_or_create(&label).inc();
        self.db_cert_not_after
            .get_or_create(&label)
            .set(unix(cert_not_after));
    }

    /// A reload of `component` ("keys", "trust", "tls"): `ok` or `failed`.
    pub fn reload(&self, component: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads
            .get_or_create(&ReloadLabels { component, result })
            .inc();
        self.reload_ok
            .get_or_create(&ComponentLabel { component })
            .set(i64::from(ok));
    }

    /// The server certificate now presented.
    pub fn server_cert(&self, not_after: OffsetDateTime) {
        self.server_cert_not_after.set(unix(not_after));
    }

    /// The trust roots now configured.
    pub fn roots(&self, earliest_not_after: Option<OffsetDateTime>) {
        self.roots_not_after
            .set(earliest_not_after.map_or(0.0, unix));
    }

    /// Key counts by state.
    pub fn key_states(&self, active: i64, disabled: i64, expired: i64) {
        for (state, n) in [
            ("active", active),
            ("disabled", disabled),
            ("expired", expired),
        ] {
            self.keys.get_or_create(&StateLabel { state }).set(n);
        }
    }

    /// A connection closed before HTTP.
    pub fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connections(&self, delta: i64) {
        self.open_connections.inc_by(delta);
    }

    /// Readiness, as `/readyz` reports it.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Whether the key backend's last token call succeeded.
    pub fn audit_chain(&self, ok: bool) {
        self.audit_chain_ok.set(i64::from(ok));
    }

    /// The audit chain's head: one series, the last record's seq labelled with its hash.
    pub fn audit_head(&self, head: Option<&crate::chain::Record>) {
        self.audit_head_at(head.map(|r| (r.seq, r.hash.as_str())));
    }

    /// The head a fleet's snapshot read, `(seq, hash)`: exported at once, unless the chain's
    /// last verification failed (then no head is exported until it holds again).
    pub fn audit_head_seen(&self, seq: u64, hash: &str) {
        if self.audit_chain_ok.get() != 0 {
            self.audit_head_at(Some((seq, hash)));
        }
    }

    fn audit_head_at(&self, head: Option<(u64, &str)>) {
        self.audit_head.clear();
        if let Some((seq, hash)) = head {
            let seq = i64::try_from(seq).unwrap_or(i64::MAX);
            self.audit_head
                .get_or_create(&HashLabel {
                    hash: hash.to_owned(),
                })
                .set(seq);
        }
    }

    /// One admin API request answered.
    pub fn api_request(&self, action: &'static str, status: u16) {
        self.api_requests
            .get_or_create(&ApiLabels { action, status })
            .inc();
    }

    /// Whether the admin API's signers file is usable.
    pub fn api_signers(&self, ok: bool) {
        self.api_signers_ok.set(i64::from(ok));
    }

    pub fn set_backend_up(&self, up: bool) {
        self.backend_up.set(i64::from(up));
    }
}
