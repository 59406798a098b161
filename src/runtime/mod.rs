//! The running server's parts: loaded from the configuration (`load`), kept current
//! ([`reload`], `watch`), and shared by every request (`state`, with the keys facade `keys`).

mod audit;
pub mod fleet;
mod fleet_chain;
pub(crate) mod fleet_metrics;
pub(crate) mod identity;
mod keys;
mod load;
pub mod log_filter;
pub(crate) mod metrics;
mod process;
pub mod reload;
pub(crate) mod settle;
pub(crate) mod state;
mod summary;
mod watch;

pub(crate) use audit::{record_file_changes, record_key_states, record_roots};
pub use identity::certificate_names;
pub use keys::Keys;
pub use load::{LoadError, Loaded, WithWarnings};
pub use reload::Reloader;
pub use state::AppState;
pub use summary::key_json;
pub(crate) use watch::watch;
