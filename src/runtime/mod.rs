//! The running server's parts: loaded from the configuration ([`load`]), kept current
//! ([`reload`]), and shared by every request ([`state`]).

mod audit;
mod daemon;
pub mod keys;
pub mod load;
pub mod log_filter;
pub mod metrics;
pub mod reload;
pub mod state;
mod summary;
mod watch;

pub use daemon::Daemon;
pub use load::{LoadError, Loaded};
pub use reload::Reloader;
pub use watch::watch;
