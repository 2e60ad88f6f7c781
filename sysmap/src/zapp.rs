//! zapp.yaml (spec/zerovm.md §12): conversion of its `execution.groups`
//! section into the job JSON that `zpm bundle` stores as `boot/system.map`,
//! and the `image` device `zpm deploy` adds. The result parses with
//! [`Job::from_value`] like any POSTed job.

use serde_json::{Map, Number, Value};

use crate::error::Error;
use crate::job::Job;

fn zapp_err(msg: impl Into<String>) -> Error {
    Error::Zapp(msg.into())
}

/// Converts zapp.yaml text into the job JSON of `boot/system.map`.
///
/// Each group is copied; `path`, `args` and `env` move into
/// `exec: {path, args, name, env}`; `args` is split like a shell command
/// line and each word is escaped for ZRT (`\`, `"`, `,`, space and newline
/// as `\xHH`); `exec.name` is the file name of the executable.
pub fn job_json_from_zapp_yaml(text: &str) -> Result<Value, Error> {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| zapp_err(format!("not YAML: {e}")))?;
    let root = to_json(&yaml)?;
    let groups = root
        .get("execution")
        .and_then(|e| e.get("groups"))
        .and_then(Value::as_array)
        .ok_or_else(|| zapp_err("execution.groups must be a list"))?;
    let job = groups
        .iter()
        .enumerate()
        .map(|(i, g)| convert_group(i, g))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(job))
}

/// [`job_json_from_zapp_yaml`] then [`Job::from_value`].
pub fn job_from_zapp_yaml(text: &str) -> Result<Job, Error> {
    Job::from_value(&job_json_from_zapp_yaml(text)?)
}

/// Appends `{"name": "image", "path": url}` to every group's devices, as
/// `zpm deploy` does for the `boot/system.map` it uploads next to the zapp.
pub fn add_image_device(job: &mut Value, url: &str) {
    let Some(groups) = job.as_array_mut() else {
        return;
    };
    for group in groups.iter_mut().filter_map(Value::as_object_mut) {
        let key = if group.contains_key("file_list") {
            "file_list"
        } else {
            "devices"
        };
        let device = serde_json::json!({"name": "image", "path": url});
        match group.get_mut(key) {
            Some(Value::Array(list)) => list.push(device),
            _ => {
                group.insert(key.to_string(), Value::Array(vec![device]));
            }
        }
    }
}

fn convert_group(i: usize, group: &Value) -> Result<Value, Error> {
    let at = |what: &str| zapp_err(format!("execution.groups[{i}]: {what}"));
    let mut out: Map<String, Value> = group
        .as_object()
        .cloned()
        .ok_or_else(|| at("a group must be a mapping"))?;
    let path = match out.remove("path") {
        Some(Value::String(p)) => p,
        _ => return Err(at("\"path\" must be a string")),
    };
    let args = match out.remove("args") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(at("\"args\" must be a string")),
    };
    let words = shell_split(&args).map_err(|e| at(&format!("args: {e}")))?;
    let mut exec = Map::new();
    exec.insert("path".into(), Value::String(path.clone()));
    exec.insert("args".into(), Value::String(escape_args(&words)));
    if let Some(name) = exec_name(&path) {
        exec.insert("name".into(), Value::String(name));
    }
    if let Some(env) = out.remove("env") {
        exec.insert("env".into(), env);
    }
    out.insert("exec".into(), Value::Object(exec));
    Ok(Value::Object(out))
}

/// `file://image:exe` → `exe`; `file://exe` → `exe`; `swift://a/c/o/p` →
/// `o/p` (zpm took the text after the last `:`, giving `//exe` for a
/// `file://` URL without image).
fn exec_name(path: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix("file://") {
        return Some(rest.rsplit(':').next().unwrap_or(rest).to_string());
    }
    if path.starts_with("swift://") {
        return path.splitn(5, '/').last().map(str::to_string);
    }
    None
}

/// Program arguments as `exec.args` text: each word escaped for the NVRAM
/// `[args]` record (see [`escape_word`]), joined by spaces. What `zpm
/// bundle` does with a group's `args` and `zpm execute` with extra ones.
pub fn escape_args<S: AsRef<str>>(words: &[S]) -> String {
    let escaped: Vec<String> = words.iter().map(|w| escape_word(w.as_ref())).collect();
    escaped.join(" ")
}

/// zpm's escaping of one argument for the NVRAM `[args]` record: `\`,
/// `"`, `,`, space and newline as `\xHH`, so no word splits or breaks the
/// record.
fn escape_word(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        match c {
            '\\' | '"' | ',' | ' ' | '\n' => out.push_str(&format!("\\x{:02x}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

/// Splits a command line like Python's `shlex.split` (POSIX mode, no
/// comments): whitespace separates words, `'…'` is literal, `"…"` honours
/// `\"` and `\\`, a backslash outside quotes escapes the next character.
pub(crate) fn shell_split(line: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                word.push(chars.next().ok_or("No escaped character")?);
                in_word = true;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next().ok_or("No closing quotation")? {
                        '\'' => break,
                        ch => word.push(ch),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next().ok_or("No closing quotation")? {
                        '"' => break,
                        '\\' => match chars.next().ok_or("No closing quotation")? {
                            ch @ ('"' | '\\') => word.push(ch),
                            ch => {
                                word.push('\\');
                                word.push(ch);
                            }
                        },
                        ch => word.push(ch),
                    }
                }
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// YAML to JSON: scalar keys become strings, tags are dropped; values JSON
/// cannot hold (NaN, infinities, mapping keys) are errors.
fn to_json(v: &serde_yaml::Value) -> Result<Value, Error> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(
                    Number::from_f64(f)
                        .ok_or_else(|| zapp_err(format!("number {f} has no JSON form")))?,
                )
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_string(),
                    _ => return Err(zapp_err("mapping keys must be scalars")),
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => to_json(&t.value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SNAKEBIN: &str = r#"
# This section describes the runtime behavior of your zapp.
execution:
  groups:
    - name: "snakebin"
      path: file://python2.7:python
      args: "snakebin.py"
      devices:
      - name: python2.7
      - name: stdin
      - name: stdout
        content_type: message/http
      - name: input
        path: swift://~/snakebin-store
meta:
  Version: ""
  name: "snakebin"
  Author-email: ""
  Summary: ""
help:
  description: ""
  args: []
bundling: ["snakebin.py", "save_file.py", "get_file.py", "index.html"]
"#;

    #[test]
    fn snakebin_zapp_converts_to_its_system_map() {
        let got = job_json_from_zapp_yaml(SNAKEBIN).unwrap();
        assert_eq!(
            got,
            json!([{
                "name": "snakebin",
                "exec": {"path": "file://python2.7:python", "args": "snakebin.py", "name": "python"},
                "devices": [
                    {"name": "python2.7"},
                    {"name": "stdin"},
                    {"name": "stdout", "content_type": "message/http"},
                    {"name": "input", "path": "swift://~/snakebin-store"}
                ]
            }])
        );
        let job = job_from_zapp_yaml(SNAKEBIN).unwrap();
        assert_eq!(job.groups[0].devices.len(), 4);
    }

    #[test]
    fn other_keys_env_and_swift_names_are_carried() {
        let got = job_json_from_zapp_yaml(
            "execution:\n  groups:\n  - name: w\n    path: swift://./c/bin/w.wasm\n    args: 'a \"b c\" d,e'\n    env: {K: v}\n    count: 2\n    connect: [x]\n    replicate: 0\n    devices: [{name: stdout}]\n",
        )
        .unwrap();
        assert_eq!(
            got,
            json!([{
                "name": "w",
                "exec": {"path": "swift://./c/bin/w.wasm", "args": "a b\\x20c d\\x2ce",
                         "name": "bin/w.wasm", "env": {"K": "v"}},
                "count": 2, "connect": ["x"], "replicate": 0,
                "devices": [{"name": "stdout"}]
            }])
        );
    }

    #[test]
    fn shell_split_like_python() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("  a  b ", &["a", "b"]),
            ("'a b' c", &["a b", "c"]),
            ("a\"b c\"d", &["ab cd"]),
            (r#""x\"y\\z\n""#, &["x\"y\\z\\n"]),
            (r"a\ b", &["a b"]),
            ("'' x", &["", "x"]),
            ("'it''s'", &["its"]),
        ];
        for (line, want) in cases {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(shell_split(line).unwrap(), want, "{line}");
        }
        assert_eq!(shell_split("'open"), Err("No closing quotation"));
        assert_eq!(shell_split("\"open"), Err("No closing quotation"));
        assert_eq!(shell_split("end\\"), Err("No escaped character"));
    }

    #[test]
    fn words_are_escaped_for_nvram() {
        assert_eq!(
            escape_word("a\\b\"c,d e\nf"),
            "a\\x5cb\\x22c\\x2cd\\x20e\\x0af"
        );
    }

    #[test]
    fn exec_names() {
        assert_eq!(
            exec_name("file://python2.7:python").as_deref(),
            Some("python")
        );
        assert_eq!(exec_name("file://bin/sh").as_deref(), Some("bin/sh"));
        assert_eq!(exec_name("swift://~/c/obj").as_deref(), Some("obj"));
        assert_eq!(
            exec_name("swift://./c/foo/bar/obj").as_deref(),
            Some("foo/bar/obj")
        );
        assert_eq!(exec_name("swift://a/c").as_deref(), Some("c"));
        assert_eq!(exec_name("zvm://x:y"), None);
    }

    #[test]
    fn zapp_errors() {
        let e = |t: &str| job_json_from_zapp_yaml(t).unwrap_err().to_string();
        assert!(e("execution: [").starts_with("Invalid zapp.yaml: not YAML"));
        assert_eq!(
            e("meta: {}"),
            "Invalid zapp.yaml: execution.groups must be a list"
        );
        assert_eq!(
            e("execution: {groups: [x]}"),
            "Invalid zapp.yaml: execution.groups[0]: a group must be a mapping"
        );
        assert_eq!(
            e("execution: {groups: [{name: a}]}"),
            "Invalid zapp.yaml: execution.groups[0]: \"path\" must be a string"
        );
        assert_eq!(
            e("execution: {groups: [{name: a, path: 'file://x', args: \"'\"}]}"),
            "Invalid zapp.yaml: execution.groups[0]: args: No closing quotation"
        );
        assert_eq!(
            e("execution: {groups: [{name: a, path: 'file://x', args: .nan}]}"),
            "Invalid zapp.yaml: number NaN has no JSON form"
        );
    }

    #[test]
    fn deploy_adds_the_image_device() {
        let mut job = json!([{"name": "a", "devices": [{"name": "stdout"}]}, {"name": "b"},
                             {"name": "c", "file_list": [{"device": "stdout"}]}]);
        add_image_device(&mut job, "swift://AUTH_x/app/app.zapp");
        let image = json!({"name": "image", "path": "swift://AUTH_x/app/app.zapp"});
        assert_eq!(job[0]["devices"][1], image);
        assert_eq!(job[1]["devices"][0], image);
        assert_eq!(job[2]["file_list"][1], image);
    }
}
