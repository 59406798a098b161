//! The network side: the service listener (`listener`) with its admission control, PROXY
//! header, TLS and request-head guard; the HTTP handlers ([`http`]); the admin listener.

mod admin;
mod admission;
mod daemon;
pub mod head_guard;
pub mod http;
mod listener;
mod notify;
pub(crate) mod peer;
mod proxy;
mod shed;
mod tls;

pub use daemon::Daemon;
pub(crate) use listener::next_connection;
pub use listener::shutdown_signal;
pub(crate) use listener::ServerOptions;
