//! Builds the C guests of `sandbox/guests/*.c` into wasm with clang and
//! wasi-libc (Debian: `clang lld wasi-libc libclang-rt-14-dev-wasm32`, which
//! `scripts/test.sh` installs). A missing toolchain is a failure, never a skip.
//!
//! Overrides: `WASM_CC` (default `clang`), `WASI_SYSROOT` (default: clang's
//! own, i.e. Debian's `/usr/include/wasm32-wasi` + `/usr/lib/wasm32-wasi`;
//! set it for a wasi-sdk style `/usr/share/wasi-sysroot`), `WASM_TARGET`
//! (default `wasm32-wasi`; newer toolchains call it `wasm32-wasip1`).
//! `sandbox/build-guests.sh` uses the same flags for the benchmark.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guests, by file stem.
pub const GUESTS: [&str; 8] = [
    "hello", "cat", "wc", "pread", "quota", "lsdir", "tarread", "args",
];

/// What to do when the toolchain is missing.
pub const HINT: &str = "the C guests need clang, lld, wasi-libc and libclang-rt-14-dev-wasm32: \
     run scripts/test.sh (it installs them), or apt-get install -y clang lld wasi-libc \
     libclang-rt-14-dev-wasm32";

/// `sandbox/guests`.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests")
}

/// Compiles every guest into `out` (`<stem>.wasm`) and returns their bytes.
pub fn build_guests(out: &Path) -> Result<HashMap<&'static str, Vec<u8>>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let cc = std::env::var("WASM_CC").unwrap_or_else(|_| "clang".into());
    let target = std::env::var("WASM_TARGET").unwrap_or_else(|_| "wasm32-wasi".into());
    let mut built = HashMap::new();
    for stem in GUESTS {
        let src = source_dir().join(format!("{stem}.c"));
        let dest = out.join(format!("{stem}.wasm"));
        // A private temporary name: concurrent test processes never see half a module.
        let tmp = out.join(format!("{stem}.wasm.{}", std::process::id()));
        let mut cmd = Command::new(&cc);
        cmd.arg(format!("--target={target}"));
        if let Some(sysroot) = std::env::var_os("WASI_SYSROOT") {
            cmd.arg("--sysroot").arg(sysroot);
        }
        cmd.args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&tmp)
            .arg(&src);
        let output = cmd
            .output()
            .map_err(|e| format!("cannot start {cc} ({e}): {HINT}"))?;
        if !output.status.success() {
            return Err(format!(
                "{cc} failed on {} ({}):\n{}\n{HINT}",
                src.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        let bytes = std::fs::read(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        if !bytes.starts_with(b"\0asm") {
            return Err(format!("{} is not a wasm module", dest.display()));
        }
        built.insert(stem, bytes);
    }
    Ok(built)
}
