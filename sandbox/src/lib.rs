//! ZeroVM semantics on WebAssembly: the manifest, NVRAM, tar images and the report
//! (the pure layer), and the engine that runs a module: channels, VFS, our WASI preview1, wasmtime.
// One `unsafe` call in the whole crate: loading our own compiled artifacts
// (engine.rs, `Module::deserialize_file`), allowed there with its SAFETY note.
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
