//! ZeroCloud job descriptions: a system map (the JSON list of groups a client
//! POSTs, or `boot/system.map` of a zapp) or a zapp.yaml becomes the exact
//! set of nodes, channels and connections to run ([`plan::JobPlan`]), and
//! each session's ZeroVM manifest and NVRAM text.
//!
//! Pure: no I/O, no HTTP. Listings for wildcards come through the
//! [`catalog::Catalog`] trait; host paths for rendering come from the caller.
//! Every error's `Display` is the body ZeroCloud sent (spec/zerocloud.md §2).
//!
//! ```
//! use sysmap::{catalog::MemoryCatalog, compile::{compile, CompileOptions}, job::Job};
//!
//! let job = Job::from_json(br#"[
//!   {"name": "map", "exec": {"path": "file://python2.7:python", "args": "mapper.py"},
//!    "devices": [{"name": "python2.7"}, {"name": "stdout"},
//!                {"name": "input", "path": "swift://~/data/*.txt"}],
//!    "connect": ["reduce"]},
//!   {"name": "reduce", "exec": {"path": "file://python2.7:python", "args": "reducer.py"},
//!    "devices": [{"name": "python2.7"}, {"name": "stdout"}]}
//! ]"#)?;
//! let catalog = MemoryCatalog::new()
//!     .with_object("AUTH_me", "data", "a.txt")
//!     .with_object("AUTH_me", "data", "b.txt");
//! let plan = compile(&job, &CompileOptions::new("AUTH_me"), &catalog)?;
//! let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
//! assert_eq!(names, ["map-1", "map-2", "reduce"]);
//! assert_eq!(plan.nodes[0].connections[0].device, "/dev/out/reduce");
//! # Ok::<(), sysmap::Error>(())
//! ```
//!
//! Flow in the servers: the proxy parses ([`job::Job::from_json`] or
//! [`zapp::job_from_zapp_yaml`]), compiles ([`compile::compile`]), sets the
//! CGI environment ([`cgi::apply_cgi_env`]), places each node by its
//! [`plan::Placement`] and sends each object server its [`plan::NodePlan`] as
//! JSON; the object server resolves channels to local files and renders
//! [`render::manifest`] and [`render::nvram`]. The plan format is described
//! in the crate README.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod cgi;
pub mod compile;
pub mod device;
pub mod error;
pub mod job;
pub mod location;
pub mod plan;
pub mod render;
pub mod template;
pub mod zapp;

pub use error::Error;
