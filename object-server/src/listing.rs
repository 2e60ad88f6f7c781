//! Listing requests and bodies: query parameters (validated as Swift does), format
//! negotiation (`format=` or `Accept`), and plain/JSON/XML rendering.

use crate::db::{Entry, ListParams};
use crate::error::StorageError;

pub const LISTING_LIMIT: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Json,
    Xml,
    /// XML asked for as `text/xml`: same body, that content type.
    TextXml,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Plain => "text/plain; charset=utf-8",
            Format::Json => "application/json; charset=utf-8",
            Format::Xml => "application/xml; charset=utf-8",
            Format::TextXml => "text/xml; charset=utf-8",
        }
    }
}

/// Parses the query string of a listing request.
pub fn parse_query(query: Option<&str>) -> Result<(ListParams, Option<Format>), StorageError> {
    let mut p = ListParams {
        limit: LISTING_LIMIT,
        ..Default::default()
    };
    let mut format = None;
    let Some(q) = query else {
        return Ok((p, format));
    };
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        // form_urlencoded replaces invalid UTF-8 with U+FFFD; Swift refuses it.
        if v.contains('\u{FFFD}') && !raw_param_is_utf8(q, &k) {
            return Err(StorageError::BadRequest(format!(
                "\"{k}\" parameter not valid UTF-8"
            )));
        }
        let v = v.into_owned();
        match &*k {
            "limit" if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                let n: usize = v.parse().unwrap_or(usize::MAX);
                if n > LISTING_LIMIT {
                    return Err(StorageError::Precondition(format!(
                        "Maximum limit is {LISTING_LIMIT}"
                    )));
                }
                p.limit = n;
            }
            "marker" => p.marker = v,
            "end_marker" => p.end_marker = v,
            "prefix" => p.prefix = Some(v),
            "delimiter" => p.delimiter = Some(v),
            "path" => p.path = Some(v),
            "reverse" => p.reverse = wire::is_true(&v),
            "format" => {
                format = Some(match v.to_ascii_lowercase().as_str() {
                    "json" => Format::Json,
                    "xml" => Format::Xml,
                    _ => Format::Plain,
                })
            }
            _ => {}
        }
    }
    Ok((p, format))
}

fn raw_param_is_utf8(q: &str, key: &str) -> bool {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .all(|(_, v)| {
            percent_encoding::percent_decode(v.replace('+', " ").as_bytes())
                .decode_utf8()
                .is_ok()
        })
}

/// `format=` wins; else the best of `Accept`; else plain text.
pub fn negotiate(format: Option<Format>, accept: Option<&str>) -> Result<Format, StorageError> {
    if let Some(f) = format {
        return Ok(f);
    }
    let Some(accept) = accept else {
        return Ok(Format::Plain);
    };
    let mut best: Option<(f32, usize, Format)> = None;
    for (i, item) in accept.split(',').enumerate() {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for param in parts {
            if let Some(v) = param.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if q <= 0.0 {
            continue;
        }
        let f = match media.as_str() {
            "application/json" => Format::Json,
            "application/xml" => Format::Xml,
            "text/xml" => Format::TextXml,
            "text/plain" | "text/*" | "*/*" => Format::Plain,
            "application/*" => Format::Json,
            _ => continue,
        };
        // Higher q wins; ties go to the earlier entry.
        if best.is_none_or(|(bq, _, _)| q > bq) {
            best = Some((q, i, f));
        }
    }
    match best {
        Some((_, _, f)) => Ok(f),
        None => Err(StorageError::NotAcceptable),
    }
}

fn xml_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Renders a listing. `root` is ("container" | "account", its name) for XML.
pub fn render(entries: &[Entry], f: Format, root: (&str, &str)) -> String {
    match f {
        Format::Plain => {
            let mut s = String::new();
            for e in entries {
                s.push_str(e.name());
                s.push('\n');
            }
            s
        }
        Format::Json => {
            let v: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| match e {
                    Entry::Subdir(n) => serde_json::json!({ "subdir": n }),
                    Entry::Object {
                        name,
                        created_at,
                        size,
                        content_type,
                        etag,
                    } => serde_json::json!({
                        "hash": etag, "last_modified": created_at.iso8601(),
                        "bytes": size, "name": name, "content_type": content_type
                    }),
                    Entry::Container {
                        name,
                        count,
                        bytes,
                        last_modified,
                    } => serde_json::json!({
                        "name": name, "count": count, "bytes": bytes,
                        "last_modified": last_modified.iso8601(), "storage_policy": "Policy-0"
                    }),
                })
                .collect();
            serde_json::Value::Array(v).to_string()
        }
        Format::Xml | Format::TextXml => {
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
            s.push_str(root.0);
            s.push_str(" name=\"");
            xml_escape(root.1, &mut s);
            s.push_str("\">");
            let field = |s: &mut String, tag: &str, v: &str| {
                s.push('<');
                s.push_str(tag);
                s.push('>');
                xml_escape(v, s);
                s.push_str("</");
                s.push_str(tag);
                s.push('>');
            };
            for e in entries {
                match e {
                    Entry::Subdir(n) => {
                        s.push_str("<subdir name=\"");
                        xml_escape(n, &mut s);
                        s.push_str("\">");
                        field(&mut s, "name", n);
                        s.push_str("</subdir>");
                    }
                    Entry::Object {
                        name,
                        created_at,
                        size,
                        content_type,
                        etag,
                    } => {
                        s.push_str("<object>");
                        field(&mut s, "name", name);
                        field(&mut s, "hash", etag);
                        field(&mut s, "bytes", &size.to_string());
                        field(&mut s, "content_type", content_type);
                        field(&mut s, "last_modified", &created_at.iso8601());
                        s.push_str("</object>");
                    }
                    Entry::Container {
                        name,
                        count,
                        bytes,
                        last_modified,
                    } => {
                        s.push_str("<container>");
                        field(&mut s, "name", name);
                        field(&mut s, "count", &count.to_string());
                        field(&mut s, "bytes", &bytes.to_string());
                        field(&mut s, "last_modified", &last_modified.iso8601());
                        field(&mut s, "storage_policy", "Policy-0");
                        s.push_str("</container>");
                    }
                }
            }
            s.push_str("</");
            s.push_str(root.0);
            s.push('>');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_rules() {
        assert_eq!(parse_query(Some("limit=5")).unwrap().0.limit, 5);
        assert_eq!(
            parse_query(Some("limit=abc")).unwrap().0.limit,
            LISTING_LIMIT
        );
        assert!(matches!(
            parse_query(Some("limit=10001")),
            Err(StorageError::Precondition(m)) if m == "Maximum limit is 10000"
        ));
        assert!(matches!(
            parse_query(Some("prefix=%ff")),
            Err(StorageError::BadRequest(_))
        ));
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(None, None).unwrap(), Format::Plain);
        assert_eq!(
            negotiate(None, Some("application/json")).unwrap(),
            Format::Json
        );
        assert_eq!(
            negotiate(None, Some("text/plain;q=0.5, application/xml")).unwrap(),
            Format::Xml
        );
        assert_eq!(
            negotiate(Some(Format::Json), Some("text/xml")).unwrap(),
            Format::Json
        );
        assert!(negotiate(None, Some("image/png")).is_err());
    }
}
