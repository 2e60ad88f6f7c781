//! ZeroVM semantics on WebAssembly: the manifest, NVRAM, tar images and the report
//! (the pure layer), and the engine that runs a module: channels, VFS, our WASI preview1, wasmtime.
//!
//! Layers, each using only those below it:
//! - **pure**: `manifest`, `nvram`, `tar`, `report`, `errno`;
//! - **run**: `channel`, `vfs`, `wasi`, `engine` (one session of one
//!   module; knows no image, pool or command line);
//! - **processes and images**: `worker`, `pool` (sessions in isolated
//!   worker processes), `image` (the image store), `python` (the Python
//!   image: its program, and how it rewrites a session: `PythonImage::apply`);
//! - **command line**: `cli` (`zerovm`, `zvsh`).
//!
//! A server (the exec agent) needs [`Pool`] (and [`Cancel`] to stop a run
//! whose client went away), [`ImageStore`] and [`Session`], and reads an
//! [`Outcome`]'s [`Report`]; they are re-exported here.
// `unsafe` is denied; each use is allowed where it stands with a SAFETY note:
// loading our own compiled artifacts (engine.rs `deserialize_file`, worker.rs
// `deserialize_open_file`), read-only maps of image files (channel.rs, engine.rs),
// the page size for mapping an image at a file offset (channel.rs `sysconf`),
// the worker's isolation (worker.rs: unshare, closing inherited fds) and its
// watchdog's `ppoll` on its own socket (worker.rs `watch_parent`).
#![deny(unsafe_code)]

pub mod channel;
pub mod cli;
pub mod engine;
pub mod errno;
pub mod image;
pub mod manifest;
pub mod nvram;
pub mod pool;
pub mod python;
pub mod report;
pub mod tar;
pub mod vfs;
pub mod wasi;
pub mod worker;

pub use engine::{Outcome, Session};
pub use image::ImageStore;
pub use pool::{Cancel, Job, Pool, PoolConfig, PoolError, ProgramRef};
pub use report::Report;
