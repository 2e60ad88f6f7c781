//! The crate's layers point one way (lib.rs): the pure and run layers
//! (manifest, NVRAM, tar, report, channel, VFS, WASI, engine) use nothing
//! of the pool, the worker, the images, Python or the command line.

use std::path::{Path, PathBuf};

/// The modules above the run layer.
const UPPER: [&str; 6] = ["pool", "worker", "image", "python", "cli", "zvsh"];

/// The lower layers' source files (a module may be one file or a folder).
fn lower_sources() -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for module in [
        "channel", "engine", "errno", "manifest", "nvram", "report", "tar", "vfs", "wasi",
    ] {
        let file = src.join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        let dir = src.join(module);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            files.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "rs")),
            );
        }
    }
    files
}

#[test]
fn lower_layers_use_nothing_above_them() {
    let files = lower_sources();
    assert!(files.len() >= 9, "sources not found: {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for upper in UPPER {
                if code.contains(&format!("crate::{upper}")) {
                    found.push(format!("{}:{}: {line}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "lower layers reach up:\n{}",
        found.join("\n")
    );
}
