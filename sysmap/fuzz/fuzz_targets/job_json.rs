//! Fuzzes the JSON job parser, then compiles and renders what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(job) = sysmap::job::Job::from_json(data) {
        common::exercise(&job);
    }
});
