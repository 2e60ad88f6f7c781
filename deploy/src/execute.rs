//! `zpm execute`: run a zapp, deployed (`--container`) or local, with
//! extra arguments, and the `--summary` table of the `X-Nexe-*` headers.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::bundle::SYSTEM_MAP;
use crate::swift::{JobOutput, Session};
use crate::zappfile::ZappFile;

/// Appends `words` to every group's `exec.args`, escaped as bundling
/// escapes a group's args.
pub fn append_args(job: &mut Value, words: &[String]) -> Result<()> {
    let extra = sysmap::zapp::escape_args(words);
    if extra.is_empty() {
        return Ok(());
    }
    let groups = job
        .as_array_mut()
        .ok_or_else(|| anyhow!("{SYSTEM_MAP} is not a list of groups"))?;
    for (i, group) in groups.iter_mut().enumerate() {
        let exec = group
            .get_mut("exec")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow!("{SYSTEM_MAP}: group {i} has no exec"))?;
        let args = match exec.get("args") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => bail!("{SYSTEM_MAP}: group {i}: exec.args is not a string"),
        };
        let args = if args.is_empty() {
            extra.clone()
        } else {
            format!("{args} {extra}")
        };
        exec.insert("args".into(), Value::String(args));
    }
    Ok(())
}

/// The column names of the summary table.
pub const COLUMNS: [&str; 14] = [
    "Node",
    "Status",
    "Retcode",
    "NodeT",
    "SysT",
    "UserT",
    "DiskReads",
    "DiskBytesR",
    "DiskWrites",
    "DiskBytesW",
    "NetworkReads",
    "NetworkBytesR",
    "NetworkWrites",
    "NetworkBytesW",
];

/// The summary of a job's answer: a table with one row per session
/// (from `X-Nexe-System`, `-Status`, `-Retcode` and the per-session parts
/// of `X-Nexe-Cdr-Line`) and `Total time: <s>` (its first part). `None`
/// without `X-Nexe-System`.
pub fn summary(header: impl Fn(&str) -> Option<String>) -> Option<String> {
    let system = header("x-nexe-system")?;
    let list = |name: &str| -> Vec<String> {
        header(name)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let nodes: Vec<String> = system.split(',').map(|s| s.trim().to_string()).collect();
    let statuses = list("x-nexe-status");
    let retcodes = list("x-nexe-retcode");
    let mut cdr = list("x-nexe-cdr-line").into_iter();
    let total = cdr.next().unwrap_or_default();
    let cdr: Vec<String> = cdr.collect();
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let at = |v: &[String], j: usize| v.get(j).cloned().unwrap_or_default();
            let mut row = vec![
                node.clone(),
                at(&statuses, i),
                at(&retcodes, i),
                at(&cdr, 2 * i),
            ];
            row.extend(at(&cdr, 2 * i + 1).split_whitespace().map(str::to_string));
            row.resize(COLUMNS.len(), String::new());
            row
        })
        .collect();
    Some(format!("{}Total time: {total}\n", table(&COLUMNS, &rows)))
}

/// A plain text table with borders.
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let line = |cells: Vec<&str>| -> String {
        let mut s: String = widths
            .iter()
            .zip(cells)
            .map(|(w, c)| format!("| {c}{} ", " ".repeat(w - c.chars().count())))
            .collect();
        s.push_str("|\n");
        s
    };
    let mut out = rule.clone();
    out.push_str(&line(head.to_vec()));
    out.push_str(&rule);
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out.push_str(&rule);
    out
}

/// Writes the job's output to stdout (bytes as they came) and, with
/// `show_summary`, its summary to stderr.
pub fn report(out: &JobOutput, show_summary: bool) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&out.body)
        .context("cannot write the output")?;
    stdout.flush().context("cannot write the output")?;
    if show_summary {
        let header = |name: &str| {
            out.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        match summary(header) {
            Some(text) => eprint!("{text}"),
            None => eprintln!("zpm: no summary: the answer has no X-Nexe-System header"),
        }
    }
    Ok(())
}

/// Runs the zapp deployed at `container` (a container or `container/path`):
/// its `boot/system.map`, with `args`, POSTed as JSON.
pub fn run_deployed(session: &Session, container: &str, args: &[String]) -> Result<JobOutput> {
    let (container, _) = crate::deploy::split_target(container)?;
    let path = format!("{container}/{SYSTEM_MAP}");
    let map = session.get_object(&path)?;
    let mut job: Value =
        serde_json::from_slice(&map).with_context(|| format!("'{path}' is not JSON"))?;
    append_args(&mut job, args)?;
    session.execute(
        serde_json::to_vec(&job)?,
        "application/json",
        &format!("executing '{path}'"),
    )
}

/// Runs a local zapp: the file itself (`application/x-gzip`), or, with
/// `args`, its tar with the arguments in `boot/system.map`.
pub fn run_local(session: &Session, zapp: &Path, args: &[String]) -> Result<JobOutput> {
    let file = ZappFile::open(zapp)?;
    let doing = format!("executing '{}'", zapp.display());
    if args.is_empty() {
        let kind = if file.gzipped {
            "application/x-gzip"
        } else {
            "application/x-tar"
        };
        return session.execute(file.raw, kind, &doing);
    }
    let mut job = file.system_map()?;
    append_args(&mut job, args)?;
    let tar = file.tar_with_system_map(&job)?;
    session.execute(tar, "application/x-tar", &doing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_are_escaped_like_bundled_ones() {
        assert_eq!(sysmap::zapp::escape_args::<String>(&[]), "");
        assert_eq!(sysmap::zapp::escape_args(&words(&["a", "b"])), "a b");
        assert_eq!(
            sysmap::zapp::escape_args(&words(&[
                "hello world",
                "it's",
                "a,b",
                "q\"x",
                "back\\slash",
                "new\nline",
                ""
            ])),
            r"hello\x20world it's a\x2cb q\x22x back\x5cslash new\x0aline "
        );
        assert_eq!(
            sysmap::zapp::escape_args(&words(&["$HOME", "*", "--flag=1", "é"])),
            "$HOME * --flag=1 é"
        );
    }

    #[test]
    fn arguments_are_appended_to_every_group() {
        let mut job = json!([
            {"name": "a", "exec": {"path": "file://python:python", "args": "main.py"}},
            {"name": "b", "exec": {"path": "file://python:python"}},
            {"name": "c", "exec": {"path": "file://python:python", "args": ""}}
        ]);
        append_args(&mut job, &words(&["x y", "z"])).unwrap();
        assert_eq!(job[0]["exec"]["args"], r"main.py x\x20y z");
        assert_eq!(job[1]["exec"]["args"], r"x\x20y z");
        assert_eq!(job[2]["exec"]["args"], r"x\x20y z");
        let before = job.clone();
        append_args(&mut job, &[]).unwrap();
        assert_eq!(job, before);
        assert!(append_args(&mut json!([{"name": "x"}]), &words(&["a"])).is_err());
        assert!(append_args(&mut json!({}), &words(&["a"])).is_err());
    }

    #[test]
    fn the_summary_table() {
        let headers: HashMap<&str, &str> = [
            ("x-nexe-system", "map-1,map-2"),
            ("x-nexe-status", "ok,ok"),
            ("x-nexe-retcode", "0,1"),
            (
                "x-nexe-cdr-line",
                "0.512, 0.201, 0.01 0.02 3 120 4 64 0 0 0 0, 0.3, 0.00 0.05 1 10 2 20 0 0 0 0",
            ),
        ]
        .into_iter()
        .collect();
        let text = summary(|k| headers.get(k).map(|v| v.to_string())).unwrap();
        let want = "\
+-------+--------+---------+-------+------+-------+-----------+------------+------------+------------+--------------+---------------+---------------+---------------+
| Node  | Status | Retcode | NodeT | SysT | UserT | DiskReads | DiskBytesR | DiskWrites | DiskBytesW | NetworkReads | NetworkBytesR | NetworkWrites | NetworkBytesW |
+-------+--------+---------+-------+------+-------+-----------+------------+------------+------------+--------------+---------------+---------------+---------------+
| map-1 | ok     | 0       | 0.201 | 0.01 | 0.02  | 3         | 120        | 4          | 64         | 0            | 0             | 0             | 0             |
| map-2 | ok     | 1       | 0.3   | 0.00 | 0.05  | 1         | 10         | 2          | 20         | 0            | 0             | 0             | 0             |
+-------+--------+---------+-------+------+-------+-----------+------------+------------+------------+--------------+---------------+---------------+---------------+
Total time: 0.512
";
        assert_eq!(text, want);
        assert_eq!(summary(|_| None), None);
        // Missing parts leave cells empty.
        let text = summary(|k| (k == "x-nexe-system").then(|| "solo".to_string())).unwrap();
        assert!(text.contains("| solo |"), "{text}");
        assert!(text.ends_with("Total time: \n"));
    }
}
