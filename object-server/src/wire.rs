//! The internal protocol between the proxy and storage nodes: URL shapes and the
//! backend headers. Clients never see these.
//!
//! | path | methods | what |
//! |---|---|---|
//! | `/o/{a}/{c}/{o}` | GET HEAD PUT POST DELETE | object data |
//! | `/c/{a}/{c}` | GET HEAD PUT POST DELETE | container DB (listing, metadata) |
//! | `/cu/{a}/{c}/{o}` | PUT (JSON `ObjectRow`) | object row update, from object nodes |
//! | `/a/{a}` | GET HEAD POST | account DB |
//! | `/au/{a}` | PUT (JSON `ContainerReport`) | container totals, from container nodes |
//!
//! Every name is percent-encoded as one segment (so `/` inside object names too).

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Node holding the container DB an object write must update.
pub const CONTAINER_NODE: &str = "x-backend-container-node";
/// Node holding the account DB a container change must update.
pub const ACCOUNT_NODE: &str = "x-backend-account-node";

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

pub fn dec(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

pub fn object_path(a: &str, c: &str, o: &str) -> String {
    format!("/o/{}/{}/{}", enc(a), enc(c), enc(o))
}

pub fn container_path(a: &str, c: &str) -> String {
    format!("/c/{}/{}", enc(a), enc(c))
}

pub fn account_path(a: &str) -> String {
    format!("/a/{}", enc(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_as_one_segment() {
        for s in ["a/b c", "ünï?#%", "..", ""] {
            let e = enc(s);
            assert!(!e.contains('/'));
            assert_eq!(dec(&e).unwrap(), s);
        }
        assert!(dec("%ff").is_none());
    }
}
