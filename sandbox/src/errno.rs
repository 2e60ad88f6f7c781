//! The errno numbers ZeroVM used as exit codes and in channel-call results.
//! Fixed to Linux x86-64 values (spec/zerovm.md §0): they are part of the contract, not of the host.

/// Operation not permitted (running as root, unknown trap).
pub const EPERM: i32 = 1;
/// No such file (program or manifest missing).
pub const ENOENT: i32 = 2;
/// Interrupted: timeout, signal, wasm trap.
pub const EINTR: i32 = 4;
/// I/O error on a channel source.
pub const EIO: i32 = 5;
/// Validation failed.
pub const ENOEXEC: i32 = 8;
/// Memory size invalid or too small.
pub const ENOMEM: i32 = 12;
/// Permission denied.
pub const EACCES: i32 = 13;
/// Manifest, channel and configuration errors.
pub const EFAULT: i32 = 14;
/// Invalid argument (bad command line, invalid i/o type).
pub const EINVAL: i32 = 22;
/// Too many channels.
pub const ENFILE: i32 = 23;
/// Broken pipe: network etag mismatch.
pub const EPIPE: i32 = 32;
/// Unsupported channel source type.
pub const EPROTONOSUPPORT: i32 = 93;
/// Channel quota exhausted.
pub const EDQUOT: i32 = 122;
