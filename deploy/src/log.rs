//! zpm's messages on stderr, filtered by `--log-level` (`debug`, `info`,
//! `warning`, `error`, `critical`; default `warning`, as the original).

use std::sync::atomic::{AtomicU8, Ordering};

/// A message's level, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
    Critical = 4,
}

impl Level {
    /// The names `--log-level` accepts (`warn` is `warning`).
    pub const NAMES: [&'static str; 6] = ["debug", "info", "warn", "warning", "error", "critical"];

    pub fn parse(name: &str) -> Option<Level> {
        Some(match name.to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warning,
            "error" => Level::Error,
            "critical" => Level::Critical,
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }
}

static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Warning as u8);

/// Messages below `level` are dropped from now on.
pub fn set_level(level: Level) {
    THRESHOLD.store(level as u8, Ordering::Relaxed);
}

/// Whether a message at `level` is printed.
pub fn enabled(level: Level) -> bool {
    level as u8 >= THRESHOLD.load(Ordering::Relaxed)
}

/// Prints `zpm: <level>: <msg>` on stderr when `level` is enabled.
pub fn log(level: Level, msg: impl std::fmt::Display) {
    if enabled(level) {
        eprintln!("zpm: {}: {msg}", level.label());
    }
}

pub fn warn(msg: impl std::fmt::Display) {
    log(Level::Warning, msg);
}

pub fn info(msg: impl std::fmt::Display) {
    log(Level::Info, msg);
}

pub fn debug(msg: impl std::fmt::Display) {
    log(Level::Debug, msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names() {
        for name in Level::NAMES {
            assert!(Level::parse(name).is_some(), "{name}");
        }
        assert_eq!(Level::parse("WARN"), Some(Level::Warning));
        assert_eq!(Level::parse("verbose"), None);
        assert!(Level::Debug < Level::Critical);
    }
}
