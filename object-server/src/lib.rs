//! One zerocloud storage node: objects on local disk, account and container
//! listings in SQLite, the expirer, and the internal HTTP API the proxy calls.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod db;
pub mod error;
pub mod listing;
pub mod object_api;
pub mod objects;
pub mod peer;

pub use api::{start, Node, ObjectServer};
pub use config::ObjectServerConfig;
