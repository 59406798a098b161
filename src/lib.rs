//! `ccs-endpoint`: the customer endpoint of a Customer Controlled Switch.
//!
//! A SaaS database polls `GET /kek/<instance>/<key_id>` with its certificate in a header; the
//! endpoint verifies the certificate and answers the key-encryption key, RSA-OAEP-wrapped to it.

#![forbid(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod app;
pub mod cache;
pub mod cert;
pub mod config;
pub mod dev;
pub mod head_guard;
pub mod hsm;
pub mod http;
pub mod init;
pub mod inspect;
pub mod keyfile;
pub mod keystore;
pub mod log_filter;
pub mod metrics;
pub mod peer;
pub mod pki;
pub mod probe;
pub mod protocol;
pub mod proxy;
pub mod reload;
pub mod secret;
pub mod server;
pub mod state;
pub mod tls;
pub mod wrap;
