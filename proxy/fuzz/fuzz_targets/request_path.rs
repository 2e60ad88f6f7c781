//! The proxy's request path parser: any path either fails with a Swift error
//! or yields names whose `/v1` path (as sent to a Swift) parses back to
//! the same names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::context::SwiftPath;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = SwiftPath::parse(raw) else {
        return;
    };
    assert!(!p.account.is_empty());
    assert!(p.object.is_none() || p.container.is_some());
    assert!(!p.account.contains('\0') && !p.c().contains('\0') && !p.o().contains('\0'));
    let routed = p.v1_path();
    // One percent-encoded segment per name.
    let segments = routed.trim_start_matches("/v1/").split('/').count();
    let names = 1 + usize::from(p.container.is_some()) + usize::from(p.object.is_some());
    assert_eq!(segments, names, "{raw:?} -> {routed:?}");
    let again = SwiftPath::parse(&routed).expect("a /v1 path parses");
    assert_eq!(again, p, "{raw:?} -> {routed:?}");
});
