//! `Range` headers: any value is ignored or parsed, and the satisfiable ranges
//! over any length lie inside it, each non-empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::range::{parse_range, ranges_for_length};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let Ok(v) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    let Some(rs) = parse_range(v) else {
        return;
    };
    for (s, e) in ranges_for_length(&rs, len) {
        assert!(s < e && e <= len, "{v:?} over {len}: {s}..{e}");
    }
});
