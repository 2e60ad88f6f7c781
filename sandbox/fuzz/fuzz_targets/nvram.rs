//! NVRAM reader: never panics; strict and lenient agree; what parses strictly
//! renders back to itself (unless escaping pushes it past the size limit).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::nvram::{Nvram, NvramErrorKind, RenderError};

fuzz_target!(|data: &[u8]| {
    let (lenient, diagnostics) = Nvram::parse_lenient(data);
    let strict = Nvram::parse(data);
    assert_eq!(strict.is_ok(), diagnostics.is_empty());
    let Ok(nvram) = strict else {
        return;
    };
    assert_eq!(nvram, lenient);
    match nvram.render() {
        Ok(text) => assert_eq!(Nvram::parse(text.as_bytes()).as_ref(), Ok(&nvram)),
        Err(RenderError::Unreadable(e)) if e.kind == NvramErrorKind::TooLarge => {}
        Err(other) => panic!("a parsed NVRAM must render: {other}"),
    }
});
