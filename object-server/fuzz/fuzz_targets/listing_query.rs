//! Listing query strings (`?format=json&limit=..&marker=..&prefix=..&delimiter=..`):
//! any query string is refused with a Swift error or parsed within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use object_server::listing::{parse_query, LISTING_LIMIT};

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((params, _format)) = parse_query(Some(q)) {
        assert!(params.limit <= LISTING_LIMIT, "limit {} from {q:?}", params.limit);
    }
});
