//! Job templates of the open/1.0 flow (spec/zerocloud.md §1.4 step 5): a
//! registry template (or the built-in one for `application/x-nexe` objects)
//! gets `{.name}` / `{.name=default}` placeholders filled from the query
//! string and `{.object_path}` from the opened object.

/// ZeroCloud's built-in template for running an `application/x-nexe` object
/// (`init:DEFAULT_EXE_SYSTEM_MAP`).
pub const DEFAULT_EXE_TEMPLATE: &str = r#"[{"name":"executable","exec":{"path":"{.object_path}","args":"{.args}"},"file_list":[{"device":"stdout","content_type":"{.content_type=text/plain}"}]}]"#;

/// Fills the placeholders of a job template.
///
/// A `{.k}` or `{.k=default}` whose `k` is a query parameter (other than
/// `object_path`; the last value wins) becomes that value; `{.object_path}`
/// becomes `object_url` (`swift://a/c/o`); any other placeholder becomes its
/// default, or nothing.
///
/// Differences from ZeroCloud, which ran one regex substitution per
/// parameter: values are inserted JSON-escaped (ZeroCloud inserted them raw,
/// so a query parameter could add keys to the job), and inserted text is
/// never scanned again for placeholders.
pub fn fill_template(template: &str, params: &[(String, String)], object_url: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some((name, default, len)) = placeholder(after) else {
            out.push_str("{.");
            rest = after;
            continue;
        };
        let param = params
            .iter()
            .rev()
            .find(|(k, _)| k == name && name != "object_path");
        match (param, name, default) {
            (Some((_, v)), _, _) => out.push_str(&json_escape(v)),
            (None, "object_path", None) => out.push_str(&json_escape(object_url)),
            (None, _, d) => out.push_str(d.unwrap_or_default()),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Parses `name[=default]}` after `{.`: name up to `=` or `}` (non-empty, no `{`),
/// default up to `}`. Returns the name, the default and the length consumed.
fn placeholder(s: &str) -> Option<(&str, Option<&str>, usize)> {
    let end_name = s.find(['=', '}'])?;
    let name = &s[..end_name];
    // A `{` in the name means this `{.` is text and a placeholder follows.
    if name.is_empty() || name.contains('{') {
        return None;
    }
    if s[end_name..].starts_with('}') {
        return Some((name, None, end_name + 1));
    }
    let default_start = end_name + 1;
    let close = s[default_start..].find('}')? + default_start;
    Some((name, Some(&s[default_start..close]), close + 1))
}

/// The text of a JSON string literal without its quotes.
fn json_escape(v: &str) -> String {
    let quoted = serde_json::Value::String(v.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Job;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// (template, query parameters, expected text)
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    #[test]
    fn placeholders_are_filled_like_zerocloud() {
        let url = "swift://a/c/o";
        let cases: &[Case] = &[
            ("{.object_path}", &[], "swift://a/c/o"),
            ("{.object_path=zz}", &[], "zz"),
            ("{.object_path}", &[("object_path", "x")], "swift://a/c/o"),
            ("{.args}", &[], ""),
            ("{.args}", &[("args", "-v")], "-v"),
            ("{.content_type=text/plain}", &[], "text/plain"),
            (
                "{.content_type=text/plain}",
                &[("content_type", "text/html")],
                "text/html",
            ),
            ("a{.x=}b", &[], "ab"),
            ("{.x}{.x}", &[("x", "1"), ("x", "2")], "22"),
            ("{.x}", &[("x", "{.y=z}")], "{.y=z}"),
            ("{.x}", &[("x", "a\"b\\")], "a\\\"b\\\\"),
            ("{. {.x} {.", &[("x", "1")], "{. 1 {."),
            ("{.x", &[], "{.x"),
        ];
        for (t, params, want) in cases {
            assert_eq!(fill_template(t, &p(params), url), *want, "{t}");
        }
    }

    #[test]
    fn the_default_exe_template_becomes_a_job() {
        let text = fill_template(
            DEFAULT_EXE_TEMPLATE,
            &p(&[("content_type", "text/html")]),
            "swift://a/c/my.nexe",
        );
        let job = Job::from_json(text.as_bytes()).unwrap();
        let g = &job.groups[0];
        assert_eq!(g.name, "executable");
        assert_eq!(g.exec.path.url(), "swift://a/c/my.nexe");
        assert_eq!(g.exec.args.as_deref(), Some(""));
        assert_eq!(g.devices[0].content_type.as_deref(), Some("text/html"));
        // A quote in a parameter stays inside its string.
        let text = fill_template(
            DEFAULT_EXE_TEMPLATE,
            &p(&[("args", "x\",\"env\":{\"A\":\"1\"}")]),
            "swift://a/c/my.nexe",
        );
        let job = Job::from_json(text.as_bytes()).unwrap();
        assert!(job.groups[0].exec.env.is_empty());
    }
}
