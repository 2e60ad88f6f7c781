//! ZeroVM semantics on WebAssembly: the manifest, NVRAM, tar images and the report
//! (the pure layer), and the engine that runs a module: channels, VFS, our WASI preview1, wasmtime.
// `unsafe` is denied; each use is allowed where it stands with a SAFETY note:
// loading our own compiled artifacts (engine.rs `deserialize_file`, worker.rs
// `deserialize_open_file`), read-only maps of image files (channel.rs, engine.rs),
// and the worker's isolation (worker.rs: unshare, closing inherited fds).
#![deny(unsafe_code)]

pub mod channel;
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
pub mod zvsh;
