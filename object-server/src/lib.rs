//! One zerocloud storage node: objects on local disk, account and container
//! listings in SQLite, the expirer, the internal HTTP API the proxy calls, and
//! the exec agent that runs sessions of jobs next to the data (`exec`).
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod db;
pub mod error;
pub mod exec;
pub mod listing;
pub mod object_api;
pub mod objects;
pub mod peer;

pub use api::{start, Node, ObjectServer};
pub use config::ObjectServerConfig;
