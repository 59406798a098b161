//! The running server's parts: loaded from the configuration ([`load`]), kept current
//! ([`reload`]), and shared by every request ([`state`]).

mod audit;
pub mod identity;
pub mod keys;
pub mod load;
pub mod log_filter;
pub mod metrics;
pub mod reload;
mod settle;
pub mod state;
mod summary;
mod watch;

pub(crate) use audit::{record_key_states, record_roots};
pub use load::{LoadError, Loaded};
pub use reload::Reloader;
pub use watch::watch;
