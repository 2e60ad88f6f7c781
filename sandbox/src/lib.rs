//! ZeroVM semantics on WebAssembly: the manifest, NVRAM, tar images and the report.
//! This is the pure, host-independent layer the engine (wasmtime, WASI, VFS) builds on.
#![forbid(unsafe_code)]

pub mod errno;
pub mod manifest;
pub mod nvram;
pub mod report;
pub mod tar;
