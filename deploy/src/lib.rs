//! zpm, the ZeroVM package manager (spec/zerovm.md §12; user guide in
//! docs/zpm.md): `zpm new` writes a project, `zpm bundle` makes a `.zapp`
//! (a gzipped tar whose `boot/system.map` comes from zapp.yaml through
//! `sysmap::zapp`), `zpm deploy` uploads it with its web UI to a Swift
//! container, `zpm execute` runs it on ZeroCloud.
//!
//! Modules: [`cli`] (the command line), [`auth`] (credentials and
//! logins), [`swift`] (the HTTP calls), [`project`] and [`ui`] (`new`
//! and the Jinja2 templates), [`bundle`], [`zappfile`] (a zapp read
//! back), [`deploy`], [`execute`], [`log`].
#![forbid(unsafe_code)]

pub mod auth;
pub mod bundle;
pub mod cli;
pub mod deploy;
pub mod execute;
pub mod log;
pub mod project;
pub mod swift;
pub mod ui;
pub mod zappfile;
