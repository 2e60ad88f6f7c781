//! The pool's reading of a worker's reply (what a subverted worker could
//! send): never panics, whether the input is one message or is cut into
//! records (a length byte, then that many bytes of record: flag byte and
//! data); a reply it accepts encodes back to itself, and an accepted
//! outcome's report renders as exactly the seven lines zerovm prints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::pool::wire::{decode_reply, Assembler, Reply};

const LIMIT: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut assembler = Assembler::new(LIMIT);
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (record, next) = tail.split_at(usize::from(len).min(tail.len()));
        rest = next;
        match assembler.push(record) {
            Ok(Some(message)) => {
                assert!(message.len() <= LIMIT);
                assert!(assembler.is_empty());
                check(&message);
            }
            Ok(None) => {}
            Err(_) => assembler = Assembler::new(LIMIT),
        }
    }
});

fn check(bytes: &[u8]) {
    let Ok(reply) = decode_reply(bytes) else {
        return;
    };
    let again = serde_json::to_vec(&reply).expect("a decoded reply encodes");
    assert_eq!(decode_reply(&again).as_ref(), Ok(&reply));
    if let Reply::Outcome { report, .. } = &reply {
        let text = report.render();
        assert_eq!(text.matches('\n').count(), 7, "{text:?}");
        assert!(text.ends_with("\n\n"));
    }
}
