//! Manifest parser and checks: never panic; what parses renders back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::manifest::{HostKind, Manifest, SIZE_LIMIT};

/// A host whose answers depend on the path only, so runs are reproducible.
fn probe(path: &str) -> Option<HostKind> {
    match path.bytes().map(usize::from).sum::<usize>() % 7 {
        0 => None,
        1 | 2 => Some(HostKind::Regular {
            size: path.len() as u64,
        }),
        3 => Some(HostKind::CharDevice),
        4 => Some(HostKind::Fifo),
        5 => Some(HostKind::Directory),
        _ => Some(HostKind::Socket),
    }
}

fn without_lines(mut m: Manifest) -> Manifest {
    for c in &mut m.channels {
        c.line = 0;
    }
    m
}

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::parse(data) else {
        return;
    };
    if let Ok(channels) = manifest.check(&probe) {
        assert_eq!(channels.len(), manifest.channels.len());
    }
    // Rendering normalises spacing and numbers, which may grow the text past
    // the size limit; only compare when it still fits.
    let text = manifest.render();
    if text.len() <= SIZE_LIMIT {
        let again = Manifest::parse(text.as_bytes()).expect("rendered manifest must parse");
        assert_eq!(without_lines(again), without_lines(manifest));
    }
});
