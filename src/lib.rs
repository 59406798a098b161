//! `ccs-endpoint`: the customer endpoint of a Customer Controlled Switch.
//!
//! A SaaS database polls `GET /kek/<instance>/<key_id>` with its certificate in a header; the
//! endpoint verifies the certificate and answers the key-encryption key, RSA-OAEP-wrapped to it.
//!
//! The tree follows the layers:
//! - the domain, which knows nothing of HTTP or of files changing: [`protocol`], [`cert`],
//!   [`wrap`], [`secret`], [`keystore`], [`hsm`], [`config`], [`chain`] (the audit chain), [`httpsig`] (signed admin requests);
//! - [`fleet`]: the keys' states shared by a fleet of replicas in PostgreSQL, and its audit
//!   chain;
//! - [`runtime`]: loading the parts a server runs on, reloading them, the state requests share;
//! - [`server`]: the listeners, TLS, the PROXY protocol, client policy, the HTTP handlers;
//! - [`tools`]: what the operator commands use (key-store editing, probe, inspect, init, a
//!   development PKI).

#![forbid(unsafe_code)]

pub mod cert;
pub mod chain;
pub mod config;
pub mod hsm;
pub mod httpsig;
pub mod keystore;
pub mod permissions;
pub mod protocol;
pub mod quorum;
pub mod secret;
pub mod secret_file;
pub mod signers;
pub mod switch;
pub mod wrap;

/// A bounded cache, shared by the certificate and wrap caches.
mod cache;

pub mod api;
pub mod fleet;
pub mod runtime;
pub mod server;
pub mod tools;
