//! The README's "Try it" example, exactly as written: its `hello.wat` and
//! `hello.manifest` blocks saved into an empty directory, its `sh run`
//! command run there with this build's `zerovm`.

use std::collections::HashMap;
use std::process::{Command, Stdio};

/// The fenced blocks of `text` whose info string has a second word (a
/// file name, or `run`), by that word.
fn named_blocks(text: &str) -> HashMap<String, String> {
    let mut blocks = HashMap::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                let name = info.split_whitespace().nth(1).unwrap_or_default();
                open = Some((name.to_string(), String::new()));
            }
            (Some(_), Some(_)) => {
                if let Some((name, body)) = open.take() {
                    if !name.is_empty() {
                        blocks.insert(name, body);
                    }
                }
            }
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

#[test]
fn the_readme_example_manifest_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let blocks = named_blocks(&readme);
    let dir = tempfile::tempdir().expect("tempdir");
    for file in ["hello.wat", "hello.manifest"] {
        let body = blocks
            .get(file)
            .unwrap_or_else(|| panic!("no {file} block"));
        std::fs::write(dir.path().join(file), body).expect("write");
    }
    let command = blocks.get("run").expect("no `sh run` block");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"zerovm"), "{command}");
    let out = Command::new(env!("CARGO_BIN_EXE_zerovm"))
        .args(&words[1..])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("zerovm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the README says it prints: the line, then the report.
    let report = stdout
        .strip_prefix("hello from the sandbox\n")
        .unwrap_or_else(|| panic!("{stdout}"));
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(&lines[..4], ["0", "0", "0", "disable"], "{report}");
    assert!(lines[4].ends_with(" 0 0 1 23 0 0 0 0"), "{report}");
    assert_eq!(lines[5], "ok", "{report}");
}
