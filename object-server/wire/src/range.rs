//! The `Range` header as Swift's swob reads it: object servers serve ranges of
//! one object, the proxy ranges over a DLO's concatenated segments.

/// One `first-last` pair of a `Range` header; `(None, Some(n))` is the last `n` bytes.
pub type ByteRange = (Option<u64>, Option<u64>);

/// A parsed `Range` header; `None` means "ignore it" (swob ignores a malformed one).
pub fn parse_range(v: &str) -> Option<Vec<ByteRange>> {
    let v = v.replace(' ', "");
    v.get(..6).filter(|p| p.eq_ignore_ascii_case("bytes="))?;
    let mut out = vec![];
    for r in v[6..].split(',') {
        let (s, e) = r.split_once('-')?;
        let s = if s.is_empty() {
            None
        } else {
            Some(s.parse::<u64>().ok()?)
        };
        let e = if e.is_empty() {
            s?;
            None
        } else {
            if !e.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let e = e.parse::<u64>().ok()?;
            if s.is_some_and(|s| e < s) {
                return None;
            }
            Some(e)
        };
        out.push((s, e));
    }
    Some(out)
}

/// swob's `ranges_for_length`: satisfiable (start, end-exclusive) ranges over
/// `len` bytes; empty means 416.
pub fn ranges_for_length(rs: &[ByteRange], len: u64) -> Vec<(u64, u64)> {
    let mut all = vec![];
    for &(b, e) in rs {
        match (b, e) {
            (None, Some(0)) => {}
            (None, Some(e)) => all.push((len.saturating_sub(e), len)),
            (Some(b), None) if b < len => all.push((b, len)),
            // `e` may be u64::MAX: the end is capped at `len` without overflowing.
            (Some(b), Some(e)) if b < len => all.push((b, e.saturating_add(1).min(len))),
            _ => {}
        }
    }
    if all.len() > 50 {
        return vec![];
    }
    let mut overlaps = 0;
    for i in 0..all.len() {
        for j in i + 1..all.len() {
            let ((s1, e1), (s2, e2)) = (all[i], all[j]);
            if (s1 < s2 && s2 < e1)
                || (s1 < e2 && e2 < e1)
                || (s2 < s1 && s1 < e2)
                || (s2 < e1 && e1 < e2)
            {
                overlaps += 1;
                if overlaps > 2 {
                    return vec![];
                }
            }
        }
    }
    let ascending = all.windows(2).all(|w| w[0] <= w[1]);
    if !ascending && all.len() >= 8 {
        return vec![];
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_parsing_follows_swob() {
        assert_eq!(parse_range("bytes=0-4"), Some(vec![(Some(0), Some(4))]));
        assert_eq!(parse_range("bytes=-5"), Some(vec![(None, Some(5))]));
        assert_eq!(parse_range("bytes=5-"), Some(vec![(Some(5), None)]));
        assert_eq!(parse_range("bytes=5-3"), None);
        assert_eq!(parse_range("bytes=-"), None);
        assert_eq!(parse_range("bytes=45"), None);
        assert_eq!(parse_range("bits=0-1"), None);
        assert_eq!(ranges_for_length(&[(Some(0), Some(4))], 10), vec![(0, 5)]);
        assert_eq!(ranges_for_length(&[(None, Some(20))], 10), vec![(0, 10)]);
        assert!(ranges_for_length(&[(Some(10), None)], 10).is_empty());
        assert!(ranges_for_length(&[(None, Some(0))], 10).is_empty());
        // The last byte position may be as large as a u64 holds.
        let all = parse_range("bytes=0-18446744073709551615").unwrap();
        assert_eq!(ranges_for_length(&all, 10), vec![(0, 10)]);
    }
}
