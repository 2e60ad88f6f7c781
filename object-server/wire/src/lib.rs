//! The internal protocol between the proxy and the storage nodes, owned in one
//! place so both sides speak it the same way: URL shapes, backend headers and
//! which client headers a node persists (here), the body and reply types
//! ([`body`], [`reply`]), Swift timestamps ([`timestamp`]), `Range` parsing
//! ([`range`]), the internal HTTP client ([`client`]) and the accept loop both
//! servers run ([`serve`]). Clients never see the paths below.
//!
//! | path | methods | what |
//! |---|---|---|
//! | `/o/{a}/{c}/{o}` | GET HEAD PUT POST DELETE | object data |
//! | `/c/{a}/{c}` | GET HEAD PUT POST DELETE | container DB (listing, metadata) |
//! | `/cu/{a}/{c}/{o}` | PUT (JSON `ObjectRow`) | object row update, from object nodes |
//! | `/a/{a}` | GET HEAD POST | account DB |
//! | `/au/{a}` | PUT (JSON `ContainerReport`) | container totals, from container nodes |
//! | `/x/{a}[/{c}[/{o}]]` | POST (parts, see [`exec`]) | run one session of a job here (the exec agent) |
//! | `/xr/{a}[/{c}[/{o}]]` | POST (JSON `exec::Reservation`) | reserve a slot and listeners for a connected session |
//! | `/xt/{token}` | DELETE | give a reservation back |
//!
//! Every name is percent-encoded as one segment (so `/` inside object names too).

#![forbid(unsafe_code)]

pub mod body;
pub mod client;
pub mod exec;
pub mod range;
pub mod reply;
pub mod serve;
pub mod timestamp;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Node holding the container DB an object write must update.
pub const CONTAINER_NODE: &str = "x-backend-container-node";
/// Node holding the account DB a container change must update.
pub const ACCOUNT_NODE: &str = "x-backend-account-node";
/// The client request's trans-id, carried on every backend request.
pub const TRANS_ID: &str = "x-trans-id";

/// Headers stored with an object besides its content type; the proxy uses the
/// same rule when it copies an object's metadata.
pub fn is_persisted(name: &str) -> bool {
    name.starts_with("x-object-meta-")
        || name.starts_with("x-object-sysmeta-")
        || matches!(
            name,
            "content-disposition"
                | "content-encoding"
                | "content-language"
                | "cache-control"
                | "expires"
                | "x-object-manifest"
                | "x-static-large-object"
                | "x-robots-tag"
        )
}

/// Swift's `normalize_delete_at_timestamp`: a number clamped to 0..=9999999999.
pub fn parse_delete_at(s: &str) -> Option<u64> {
    let f: f64 = s.trim().parse().ok().filter(|f: &f64| f.is_finite())?;
    Some(f.clamp(0.0, 9_999_999_999.0) as u64)
}

/// Swift's `config_true_value`, as used for boolean headers and query values.
pub fn is_true(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on" | "t" | "y"
    )
}

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
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
    use percent_encoding::percent_decode_str;

    #[test]
    fn names_round_trip_as_one_segment() {
        for s in ["a/b c", "ünï?#%", "..", ""] {
            let e = enc(s);
            assert!(!e.contains('/'));
            // Decoded once, by the node's router: the name as it was.
            assert_eq!(percent_decode_str(&e).decode_utf8().unwrap(), s);
        }
    }

    #[test]
    fn header_rules() {
        assert!(is_persisted("x-object-meta-color"));
        assert!(is_persisted("content-disposition"));
        assert!(!is_persisted("x-container-meta-a"));
        assert!(!is_persisted("content-type"));
        assert_eq!(parse_delete_at(" 12.9 "), Some(12));
        assert_eq!(parse_delete_at("-5"), Some(0));
        assert_eq!(parse_delete_at("1e20"), Some(9_999_999_999));
        assert_eq!(parse_delete_at("nan"), None);
        assert_eq!(parse_delete_at("x"), None);
        assert!(is_true("Yes") && is_true("1") && !is_true("0") && !is_true(""));
    }
}
