//! The network side: the service listener ([`listener`]) with its admission control, PROXY
//! header, TLS and request-head guard; the HTTP handlers ([`http`]); the admin listener.

pub mod admin;
mod admission;
mod daemon;
pub mod head_guard;
pub mod http;
mod listener;
pub mod peer;
mod proxy;
pub mod tls;

pub use daemon::Daemon;
pub(crate) use listener::next_connection;
pub use listener::{run, shutdown_signal, ServerOptions};
