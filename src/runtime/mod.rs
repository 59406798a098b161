//! The running server's parts: loaded from the configuration ([`load`]), kept current
//! ([`reload`]), and shared by every request ([`state`]).

pub mod load;
pub mod log_filter;
pub mod metrics;
pub mod reload;
pub mod state;

pub use load::{Daemon, LoadError, Loaded};
pub use reload::Reloader;
