//! Swift's constraints on what clients send: name lengths, metadata limits,
//! object-creation rules, expiry headers and metadata removals.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Name, ProxyError};
use crate::mime;
use crate::swift::headers::hstr;

pub const MAX_FILE_SIZE: u64 = 5_368_709_122;
pub const MAX_META_NAME_LENGTH: usize = 128;
pub const MAX_META_VALUE_LENGTH: usize = 256;
pub const MAX_META_COUNT: usize = 90;
pub const MAX_META_OVERALL_SIZE: usize = 4096;
pub const MAX_HEADER_SIZE: usize = 8192;
pub const MAX_OBJECT_NAME_LENGTH: usize = 1024;
pub const MAX_CONTAINER_NAME_LENGTH: usize = 256;
pub const MAX_ACCOUNT_NAME_LENGTH: usize = 256;
pub const CONTAINER_LISTING_LIMIT: usize = 10_000;
pub const ACCOUNT_LISTING_LIMIT: usize = 10_000;

/// Swift's `check_metadata` for `x-<kind>-meta-*` headers.
pub fn check_metadata(h: &HeaderMap, kind: &str) -> Result<(), ProxyError> {
    let prefix = format!("x-{kind}-meta-");
    let (mut count, mut size) = (0usize, 0usize);
    for (k, v) in h {
        let key = k.as_str();
        if v.len() > MAX_HEADER_SIZE {
            let short: String = key.chars().take(MAX_META_NAME_LENGTH).collect();
            return Err(ProxyError::bad_request(format!(
                "Header value too long: {}",
                title_case(&short)
            )));
        }
        let Some(name) = key.strip_prefix(&prefix) else {
            continue;
        };
        if name.is_empty() {
            return Err(ProxyError::bad_request("Metadata name cannot be empty"));
        }
        if kind != "object" && std::str::from_utf8(v.as_bytes()).is_err() {
            return Err(ProxyError::bad_request("Metadata must be valid UTF-8"));
        }
        count += 1;
        size += name.len() + v.len();
        if name.len() > MAX_META_NAME_LENGTH {
            return Err(ProxyError::bad_request(format!(
                "Metadata name too long: {prefix}{}",
                title_case(name)
            )));
        }
        if v.len() > MAX_META_VALUE_LENGTH {
            return Err(ProxyError::bad_request(format!(
                "Metadata value longer than {MAX_META_VALUE_LENGTH}: {prefix}{}",
                title_case(name)
            )));
        }
        if count > MAX_META_COUNT {
            return Err(ProxyError::bad_request(format!(
                "Too many metadata items; max {MAX_META_COUNT}"
            )));
        }
        if size > MAX_META_OVERALL_SIZE {
            return Err(ProxyError::bad_request(format!(
                "Total metadata too large; max {MAX_META_OVERALL_SIZE}"
            )));
        }
    }
    Ok(())
}

/// `x-object-meta-color` → `X-Object-Meta-Color`, as Swift prints header names.
pub fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = true;
    for c in s.chars() {
        if up {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        up = c == '-';
    }
    out
}

/// `X-Remove-<Kind>-Meta-Foo` → `X-<Kind>-Meta-Foo: ""` (and the ACL headers).
pub(crate) fn apply_removals(h: &mut HeaderMap, kind: &str) {
    let prefix = format!("x-remove-{kind}-");
    let removals: Vec<HeaderName> = h
        .keys()
        .filter_map(|k| {
            let rest = k.as_str().strip_prefix(&prefix)?;
            HeaderName::from_bytes(format!("x-{kind}-{rest}").as_bytes()).ok()
        })
        .collect();
    for extra in ["versions-location", "history-location"] {
        if h.contains_key(format!("x-remove-{extra}").as_str()) && kind == "container" {
            if let Ok(n) = HeaderName::from_bytes(format!("x-{extra}").as_bytes()) {
                h.insert(n, HeaderValue::from_static(""));
            }
        }
    }
    for n in removals {
        h.insert(n, HeaderValue::from_static(""));
    }
}

pub(crate) fn apply_removals_object(h: &mut HeaderMap) {
    let names: Vec<String> = h
        .keys()
        .filter_map(|k| {
            k.as_str()
                .strip_prefix("x-remove-object-meta-")
                .map(str::to_string)
        })
        .collect();
    for n in names {
        h.remove(format!("x-remove-object-meta-{n}").as_str());
        h.remove(format!("x-object-meta-{n}").as_str());
    }
}

pub(crate) fn delete_at_headers(h: &mut HeaderMap, now: u64) -> Result<(), ProxyError> {
    if let Some(v) = h.get("x-delete-after") {
        let after: i64 = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ProxyError::bad_request("Non-integer X-Delete-After"))?;
        let at = now as i64 + after;
        if at <= now as i64 {
            return Err(ProxyError::bad_request("X-Delete-After in past"));
        }
        h.remove("x-delete-after");
        h.insert("x-delete-at", HeaderValue::from(at));
    }
    if let Some(v) = h.get("x-delete-at") {
        let at = v
            .to_str()
            .ok()
            .and_then(wire::parse_delete_at)
            .ok_or_else(|| ProxyError::bad_request("Non-integer X-Delete-At"))?;
        if at <= now {
            return Err(ProxyError::bad_request("X-Delete-At in past"));
        }
        h.insert("x-delete-at", HeaderValue::from(at));
    }
    Ok(())
}

/// `check_object_creation`: length, name, content type, expiry, metadata.
pub(crate) fn validate_object_put(h: &mut HeaderMap, o: &str, now: u64) -> Result<(), ProxyError> {
    // swob's is_chunked: exactly one coding, and it must be "chunked".
    let chunked = match h.get("transfer-encoding") {
        None => false,
        Some(te) => {
            let te = te.to_str().unwrap_or("");
            if te.contains(',') {
                return Err(ProxyError::NotImplemented(
                    "Unsupported Transfer-Coding header value specified in Transfer-Encoding header"
                        .into(),
                ));
            }
            if !te.trim().eq_ignore_ascii_case("chunked") {
                return Err(ProxyError::bad_request(
                    "Invalid Transfer-Encoding header value",
                ));
            }
            true
        }
    };
    let len = if chunked {
        None
    } else {
        match hstr(h, "content-length") {
            Some(v) => Some(
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| ProxyError::bad_request("Invalid Content-Length header value"))?,
            ),
            None => None,
        }
    };
    if len.is_some_and(|l| l > MAX_FILE_SIZE) {
        return Err(ProxyError::TooLarge);
    }
    if len.is_none() && !chunked {
        return Err(ProxyError::LengthRequired);
    }
    if o.len() > MAX_OBJECT_NAME_LENGTH {
        return Err(ProxyError::NameTooLong {
            kind: Name::Object,
            len: o.len(),
            max: MAX_OBJECT_NAME_LENGTH,
        });
    }
    if let Some(inm) = hstr(h, "if-none-match") {
        if inm.trim() != "*" {
            return Err(ProxyError::bad_request("If-None-Match only supports *"));
        }
    }
    let detect = hstr(h, "x-detect-content-type").is_some_and(wire::is_true);
    if detect || !h.contains_key("content-type") {
        let guessed = mime::guess(o).unwrap_or("application/octet-stream");
        h.insert("content-type", HeaderValue::from_static(guessed));
    }
    if h.get("content-type")
        .is_some_and(|v| std::str::from_utf8(v.as_bytes()).is_err())
    {
        return Err(ProxyError::bad_request("Invalid Content-Type"));
    }
    delete_at_headers(h, now)?;
    check_metadata(h, "object")?;
    // Never let clients forge the storage's own headers.
    h.remove("x-timestamp");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_limits_and_messages() {
        let mut h = HeaderMap::new();
        h.insert("x-object-meta-a", HeaderValue::from_static("b"));
        assert!(check_metadata(&h, "object").is_ok());
        let long = "x".repeat(129);
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(format!("x-object-meta-{long}").as_bytes()).unwrap(),
            HeaderValue::from_static("v"),
        );
        match check_metadata(&h, "object") {
            Err(ProxyError::BadRequest(m)) => {
                assert!(m.starts_with("Metadata name too long: x-object-meta-Xxx"))
            }
            _ => panic!(),
        }
        let mut h = HeaderMap::new();
        h.insert(
            "x-container-meta-v",
            HeaderValue::from_str(&"v".repeat(257)).unwrap(),
        );
        assert!(
            matches!(check_metadata(&h, "container"), Err(ProxyError::BadRequest(m)) if m == "Metadata value longer than 256: x-container-meta-V")
        );
        let mut h = HeaderMap::new();
        for i in 0..91 {
            h.insert(
                HeaderName::from_bytes(format!("x-account-meta-k{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert!(
            matches!(check_metadata(&h, "account"), Err(ProxyError::BadRequest(m)) if m == "Too many metadata items; max 90")
        );
    }

    #[test]
    fn object_put_validation() {
        let mut h = HeaderMap::new();
        assert!(matches!(
            validate_object_put(&mut h, "o", 100),
            Err(ProxyError::LengthRequired)
        ));
        h.insert("content-length", HeaderValue::from_static("5368709123"));
        assert!(matches!(
            validate_object_put(&mut h, "o", 100),
            Err(ProxyError::TooLarge)
        ));
        h.insert("content-length", HeaderValue::from_static("1"));
        validate_object_put(&mut h, "x.txt", 100).unwrap();
        assert_eq!(h["content-type"], "text/plain");
        h.insert("x-delete-after", HeaderValue::from_static("10"));
        validate_object_put(&mut h, "x", 100).unwrap();
        assert_eq!(h["x-delete-at"], "110");
        h.insert("x-delete-at", HeaderValue::from_static("50"));
        assert!(
            matches!(validate_object_put(&mut h, "x", 100), Err(ProxyError::BadRequest(m)) if m == "X-Delete-At in past")
        );
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("1"));
        assert!(validate_object_put(&mut h, &"o".repeat(1025), 1).is_err());
    }
}
