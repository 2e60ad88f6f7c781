//! Fuzzes the zapp.yaml conversion, then compiles and renders what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(job) = sysmap::zapp::job_from_zapp_yaml(text) {
        common::exercise(&job);
    }
});
