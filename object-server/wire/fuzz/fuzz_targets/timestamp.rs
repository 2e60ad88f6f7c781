//! Swift timestamps: any string is refused or parsed, and a parsed timestamp
//! prints as text that parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::timestamp::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(t) = Timestamp::parse(s) {
        let printed = t.to_string();
        assert_eq!(Timestamp::parse(&printed), Some(t), "{s:?} -> {printed:?}");
        let _ = t.iso8601();
        let _ = t.http_date();
    }
});
