//! Listings for wildcard expansion: the [`Catalog`] trait the caller (the
//! proxy) implements over its storage, an in-memory [`MemoryCatalog`] for
//! tests, and [`NoCatalog`] for callers that have no listings.
//!
//! Matching of names against the wildcard happens in this crate; a catalog
//! only lists (ZeroCloud listed without authorization, spec §9 item 22).

use std::collections::BTreeMap;

/// A listing failed; the job fails with ZeroCloud's `Error querying object
/// server ...` message. The text is for the caller's logs only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError(pub String);

/// Account and container listings, in Swift listing order.
pub trait Catalog {
    /// Container names of `account`. Every name starting with `prefix` must
    /// be included; others may be (they are filtered out).
    fn list_containers(&self, account: &str, prefix: &str) -> Result<Vec<String>, CatalogError>;

    /// Object names of `account/container`, same contract for `prefix`.
    fn list_objects(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
    ) -> Result<Vec<String>, CatalogError>;
}

/// A catalog that fails every listing: for jobs known to have no wildcards.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCatalog;

impl Catalog for NoCatalog {
    fn list_containers(&self, account: &str, _: &str) -> Result<Vec<String>, CatalogError> {
        Err(CatalogError(format!("no listing for account {account}")))
    }
    fn list_objects(&self, _: &str, container: &str, _: &str) -> Result<Vec<String>, CatalogError> {
        Err(CatalogError(format!(
            "no listing for container {container}"
        )))
    }
}

/// Accounts, containers and object names in memory, listed in byte order
/// like Swift. Listing an unknown account or container fails.
#[derive(Debug, Clone, Default)]
pub struct MemoryCatalog {
    accounts: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl MemoryCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an (empty) container, creating the account.
    pub fn with_container(mut self, account: &str, container: &str) -> Self {
        self.accounts
            .entry(account.to_string())
            .or_default()
            .entry(container.to_string())
            .or_default();
        self
    }

    /// Adds an object, creating its container and account.
    pub fn with_object(mut self, account: &str, container: &str, object: &str) -> Self {
        let objects = self
            .accounts
            .entry(account.to_string())
            .or_default()
            .entry(container.to_string())
            .or_default();
        if let Err(at) = objects.binary_search_by(|o| o.as_str().cmp(object)) {
            objects.insert(at, object.to_string());
        }
        self
    }
}

impl Catalog for MemoryCatalog {
    fn list_containers(&self, account: &str, prefix: &str) -> Result<Vec<String>, CatalogError> {
        let containers = self
            .accounts
            .get(account)
            .ok_or_else(|| CatalogError(format!("no account {account}")))?;
        Ok(containers
            .keys()
            .filter(|c| c.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn list_objects(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
    ) -> Result<Vec<String>, CatalogError> {
        let objects = self
            .accounts
            .get(account)
            .and_then(|a| a.get(container))
            .ok_or_else(|| CatalogError(format!("no container {account}/{container}")))?;
        Ok(objects
            .iter()
            .filter(|o| o.starts_with(prefix))
            .cloned()
            .collect())
    }
}

/// Wildcard patterns: `*` matches any run of characters, everything else is
/// literal, and a pattern must match the whole name. Captures follow
/// Python's greedy `(.*)` semantics (earlier stars take as much as they can).
pub mod glob {
    use std::collections::HashSet;

    /// The literal text before the first `*` (a listing prefix hint).
    pub fn prefix(pattern: &str) -> &str {
        pattern.split('*').next().unwrap_or_default()
    }

    /// Whether `text` matches `pattern` as a whole.
    pub fn matches(pattern: &str, text: &str) -> bool {
        captures(pattern, text).is_some()
    }

    /// The texts matched by each `*` of `pattern`, or `None` if no match.
    pub fn captures(pattern: &str, text: &str) -> Option<Vec<String>> {
        let literals: Vec<&str> = pattern.split('*').collect();
        let first = literals[0];
        let rest = text.strip_prefix(first)?;
        if literals.len() == 1 {
            return rest.is_empty().then(Vec::new);
        }
        let mut ends = Vec::with_capacity(literals.len() - 1);
        let mut failed = HashSet::new();
        let base = first.len();
        if search(&literals[1..], text, base, &mut ends, &mut failed) {
            let mut out = Vec::with_capacity(ends.len());
            let mut start = base;
            for (i, &end) in ends.iter().enumerate() {
                out.push(text[start..end].to_string());
                start = end + literals[i + 1].len();
            }
            Some(out)
        } else {
            None
        }
    }

    /// Chooses where the star before `lits[0]` ends, longest first. `pos` is
    /// where that star starts. Failed `(lits.len(), pos)` states are memoized,
    /// which keeps the search polynomial.
    fn search(
        lits: &[&str],
        text: &str,
        pos: usize,
        ends: &mut Vec<usize>,
        failed: &mut HashSet<(usize, usize)>,
    ) -> bool {
        if failed.contains(&(lits.len(), pos)) {
            return false;
        }
        let lit = lits[0];
        if lits.len() == 1 {
            // The last literal must end the text.
            if text.len() >= pos + lit.len() && text.ends_with(lit) {
                let end = text.len() - lit.len();
                if text.is_char_boundary(end) {
                    ends.push(end);
                    return true;
                }
            }
            failed.insert((lits.len(), pos));
            return false;
        }
        let mut end = text.len();
        loop {
            if end >= pos && text.is_char_boundary(end) && text[end..].starts_with(lit) {
                ends.push(end);
                if search(&lits[1..], text, end + lit.len(), ends, failed) {
                    return true;
                }
                ends.pop();
            }
            if end == pos {
                break;
            }
            end -= 1;
        }
        failed.insert((lits.len(), pos));
        false
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn captures_are_greedy_like_python() {
            let cases: &[(&str, &str, Option<&[&str]>)] = &[
                ("/a/c_in*/in*", "/a/c_in1/input1", Some(&["1", "put1"])),
                ("/a/c/*.txt", "/a/c/x.txt", Some(&["x"])),
                ("/a/c/*.txt", "/a/c/x.txt.bak", None),
                ("*_*", "a_b_c", Some(&["a_b", "c"])),
                ("*", "", Some(&[""])),
                ("abc", "abc", Some(&[])),
                ("abc", "abcd", None),
                ("a*b*c", "abc", Some(&["", ""])),
                ("a*b*c", "aXbYbZc", Some(&["XbY", "Z"])),
                ("é*ü", "éxyü", Some(&["xy"])),
            ];
            for (pat, text, want) in cases {
                let got = captures(pat, text);
                let want: Option<Vec<String>> =
                    want.map(|w| w.iter().map(|s| s.to_string()).collect());
                assert_eq!(got, want, "{pat} ~ {text}");
            }
        }

        #[test]
        fn many_stars_stay_fast() {
            let pat = "*a".repeat(30);
            let text = "a".repeat(29) + "b";
            assert!(!matches(&pat, &text));
        }

        #[test]
        fn prefix_is_the_literal_head() {
            assert_eq!(prefix("in*"), "in");
            assert_eq!(prefix("*x"), "");
            assert_eq!(prefix("plain"), "plain");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_catalog_lists_in_order_and_fails_on_unknown() {
        let cat = MemoryCatalog::new()
            .with_object("a", "c2", "b")
            .with_object("a", "c1", "z")
            .with_object("a", "c1", "a")
            .with_container("a", "empty");
        assert_eq!(cat.list_containers("a", "c").unwrap(), vec!["c1", "c2"]);
        assert_eq!(cat.list_objects("a", "c1", "").unwrap(), vec!["a", "z"]);
        assert!(cat.list_objects("a", "empty", "").unwrap().is_empty());
        assert!(cat.list_objects("a", "nope", "").is_err());
        assert!(cat.list_containers("b", "").is_err());
        assert!(NoCatalog.list_containers("a", "").is_err());
    }
}
