//! The zerocloud proxy: Swift v1 API with TempAuth, ring placement over object
//! servers, and the all-in-one launcher. Start at `server.rs` (the router).
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod cors;
pub mod dlo;
pub mod error;
pub mod launcher;
pub mod metrics;
pub mod mime;
pub mod ring;
pub mod server;
pub mod storage;
pub mod swift;
