//! Shared oracle: compile an accepted job against a small catalog and render
//! every node; rendered text must keep the manifest's line structure.

use sysmap::catalog::MemoryCatalog;
use sysmap::compile::{compile, CompileOptions};
use sysmap::job::Job;
use sysmap::render::{manifest, nvram, LocalObject, RenderOptions, SessionFiles};

pub fn exercise(job: &Job) {
    let catalog = MemoryCatalog::new()
        .with_object("a", "c", "x1")
        .with_object("a", "c", "x2")
        .with_object("a", "c", "x,=3 y")
        .with_object("a", "d", "y1")
        .with_container("a", "e");
    let mut opts = CompileOptions::new("a");
    opts.max_sessions = 64;
    opts.write_replicas = 3;
    let Ok(plan) = compile(job, &opts, &catalog) else {
        return;
    };
    let render = RenderOptions {
        sysimages: ["python2.7".to_string()].into(),
        ..RenderOptions::default()
    };
    for node in &plan.nodes {
        let files = SessionFiles {
            program: "/p/prog.wasm".into(),
            nvram: "/p/nvram".into(),
            channels: node
                .channels
                .iter()
                .map(|c| (c.device.clone(), "/p/data".to_string()))
                .collect(),
            dev_self: true,
            ..SessionFiles::default()
        };
        if let Ok(m) = manifest(node, &render, &files) {
            for line in m.lines() {
                assert_eq!(line.matches('=').count(), 1, "manifest line {line:?}");
                if let Some(ch) = line.strip_prefix("Channel=") {
                    assert_eq!(ch.split(',').count(), 8, "channel line {line:?}");
                }
            }
        }
        if let Ok(n) = nvram(node, &render, Some(&LocalObject::default())) {
            for line in n.lines().filter(|l| l.starts_with("name=")) {
                assert_eq!(line.matches(", value=").count(), 1, "env record {line:?}");
            }
        }
    }
}
