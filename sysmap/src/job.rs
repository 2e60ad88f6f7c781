//! The job description (system map) as the client wrote it: parsing of the
//! JSON list of groups and every check that needs neither the request
//! account nor a listing (spec/zerocloud.md §2.1–§2.3), with ZeroCloud's
//! messages. [`crate::compile`] turns a [`Job`] into node plans.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::device::{DeviceKind, Mode};
use crate::error::{python_str, Error};
use crate::location::Location;

/// A parsed, validated job: a non-empty list of groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub groups: Vec<Group>,
}

/// One group of a job; expands into one or more nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub exec: Exec,
    /// Devices in the order written (`devices`, or the deprecated `file_list`).
    pub devices: Vec<DeviceSpec>,
    /// `count` (default 1); ignored when a readable device has a wildcard.
    pub count: u32,
    /// Names of groups (or nodes) this group's nodes send to.
    pub connect: Vec<String>,
    /// `replicate` (default 1); 0 turns off auto-replication and attach of
    /// write-attached nodes.
    pub replicate: u32,
    /// `attach` (default `"default"`): the device whose object decides placement.
    pub attach: String,
    /// `location`: co-location hint.
    pub location: Option<String>,
}

/// The `exec` stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// `swift://` object or `file://[image:]path` (never `zvm://`).
    pub path: Location,
    pub args: Option<String>,
    pub env: BTreeMap<String, String>,
    /// `argv[0]` and `SCRIPT_NAME`; the node name when absent.
    pub name: Option<String>,
}

/// One entry of `devices` / `file_list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub name: String,
    pub path: Option<Location>,
    pub content_type: Option<String>,
    pub meta: BTreeMap<String, String>,
    pub mode: Option<Mode>,
    pub min_size: u64,
}

impl DeviceSpec {
    pub fn kind(&self) -> DeviceKind {
        DeviceKind::of(&self.name)
    }
}

/// ZeroCloud's `has_control_chars`: C0 controls, DEL and the non-characters
/// U+FFFE/U+FFFF.
pub(crate) fn has_control_chars(s: &str) -> bool {
    s.chars()
        .any(|c| (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{fffe}' || c == '\u{ffff}')
}

/// Characters that would corrupt a manifest line or a channel alias.
/// ZeroCloud did not reject them (decision in the README).
fn has_separator(s: &str, extra: &[char]) -> bool {
    s.chars()
        .any(|c| matches!(c, ',' | ';' | '=' | '/' | ' ') || extra.contains(&c))
}

impl Job {
    /// Parses a job from the bytes of a JSON body: 422 `Could not parse
    /// system map` when it is not JSON, 400 messages otherwise.
    pub fn from_json(bytes: &[u8]) -> Result<Job, Error> {
        let value: Value = serde_json::from_slice(bytes).map_err(|_| Error::Unparsable)?;
        Job::from_value(&value)
    }

    /// Parses a job from a JSON value (e.g. converted from zapp.yaml).
    pub fn from_value(value: &Value) -> Result<Job, Error> {
        let list = value.as_array().ok_or(Error::Internal)?;
        if list.is_empty() {
            return Err(Error::NoNodes);
        }
        let groups = list.iter().map(parse_group).collect::<Result<_, _>>()?;
        Ok(Job { groups })
    }
}

fn parse_group(value: &Value) -> Result<Group, Error> {
    let obj = value.as_object().ok_or(Error::Internal)?;
    let name = match obj.get("name") {
        None | Some(Value::Null) => return Err(Error::MissingNodeName),
        Some(Value::String(s)) if s.is_empty() => return Err(Error::MissingNodeName),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Error::Internal),
    };
    if has_control_chars(&name) || has_separator(&name, &[':']) {
        return Err(Error::InvalidNodeName);
    }
    let exec = parse_exec(obj, &name)?;
    let replicate = match obj.get("replicate") {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|_| !v.is_boolean())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| Error::InvalidReplicate(python_str(v)))?,
    };
    let attach = match obj.get("attach") {
        None | Some(Value::Null) => "default".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Error::Internal),
    };
    let location = match obj.get("location") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Error::Internal),
    };
    let count = match obj.get("count") {
        None => 1,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::InvalidNodeCount(python_str(v)))?,
    };
    // ZeroCloud takes the first of the two keys that is present, even if null.
    let list = if obj.contains_key("file_list") {
        obj.get("file_list")
    } else {
        obj.get("devices")
    };
    let devices = match list {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|d| parse_device(d, &name))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Error::Internal),
    };
    let connect = match obj.get("connect") {
        None | Some(Value::Null) => Vec::new(),
        // A single name is taken as a one-element list (ZeroCloud iterated
        // the string's characters).
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or(Error::Internal))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Error::Internal),
    };
    Ok(Group {
        name,
        exec,
        devices,
        count,
        connect,
        replicate,
        attach,
        location,
    })
}

/// Python truthiness of a JSON value (`exec` must be a non-empty object).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A scalar written as text: strings as they are, numbers and booleans as
/// JSON spells them. `None` for null, lists and objects.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_exec(group: &Map<String, Value>, name: &str) -> Result<Exec, Error> {
    let exec = match group.get("exec") {
        Some(v) if truthy(v) => v.as_object().ok_or(Error::Internal)?,
        _ => return Err(Error::MissingExec(name.to_string())),
    };
    let missing_path = || Error::MissingExecPath(name.to_string());
    let url = exec
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(missing_path)?;
    let path = Location::parse(url).ok_or_else(missing_path)?;
    match &path {
        Location::Zvm(_) => return Err(Error::ZvmExecPath(name.to_string())),
        // An executable is an object or a file in an image.
        Location::Swift(p) if p.object.is_none() => return Err(missing_path()),
        Location::Swift(_) | Location::Image(_) => {}
        Location::Net(_) | Location::Cache(_) => return Err(missing_path()),
    }
    let bad = || Error::InvalidNexeProperty(name.to_string());
    let args = match exec.get("args") {
        None | Some(Value::Null) => None,
        Some(v) => Some(scalar_text(v).ok_or_else(bad)?),
    };
    let mut env = BTreeMap::new();
    match exec.get("env") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                if v.is_null() {
                    continue;
                }
                env.insert(k.clone(), scalar_text(v).ok_or_else(bad)?);
            }
        }
        Some(_) => return Err(bad()),
    }
    let exe_name = match exec.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad()),
    };
    // ZeroCloud checked the URL, the args and the *repr* of env (in which
    // control characters are escaped); we check every value that reaches
    // the NVRAM.
    let texts = std::iter::once(url)
        .chain(args.as_deref())
        .chain(exe_name.as_deref())
        .chain(env.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]));
    if texts.into_iter().any(has_control_chars) {
        return Err(bad());
    }
    Ok(Exec {
        path,
        args,
        env,
        name: exe_name,
    })
}

fn parse_device(value: &Value, node: &str) -> Result<DeviceSpec, Error> {
    let obj = value.as_object().ok_or(Error::Internal)?;
    // `device` (deprecated) wins over `name` when both are present.
    let name = if obj.contains_key("device") {
        obj.get("device")
    } else {
        obj.get("name")
    };
    let name = match name {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(Error::Internal),
    };
    if let Some(n) = name {
        if has_control_chars(n) || has_separator(n, &[]) {
            return Err(Error::BadDeviceName {
                device: n.to_string(),
                node: node.to_string(),
            });
        }
    }
    let path_text = match obj.get("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(Error::Internal),
    };
    let name = match name {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => return Err(Error::MissingDevice(node.to_string())),
    };
    let invalid_path = |url: &str| Error::InvalidPath {
        url: url.to_string(),
        node: node.to_string(),
    };
    // ZeroCloud treated an unparsable path as no path at all (so a mistyped
    // stdout path became an immediate response); we reject it.
    let path = match path_text {
        None => None,
        Some(url) => Some(Location::parse(url).ok_or_else(|| invalid_path(url))?),
    };
    let content_type = match obj.get("content_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Error::Internal),
    };
    let mut meta = BTreeMap::new();
    match obj.get("meta") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                meta.insert(k.clone(), scalar_text(v).ok_or(Error::Internal)?);
            }
        }
        Some(_) => return Err(Error::Internal),
    }
    let mode = match obj.get("mode") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Mode::parse(s).ok_or_else(|| Error::InvalidMode {
            mode: s.clone(),
            node: node.to_string(),
        })?),
        Some(_) => return Err(Error::Internal),
    };
    let min_size = match obj.get("min_size") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().ok_or(Error::Internal)?,
    };
    let spec = DeviceSpec {
        name,
        path,
        content_type,
        meta,
        mode,
        min_size,
    };
    check_device_path(&spec, node)?;
    Ok(spec)
}

/// The path rules of §2.2 for one device.
fn check_device_path(spec: &DeviceSpec, node: &str) -> Result<(), Error> {
    let kind = spec.kind();
    let access = kind.access();
    let invalid = |loc: &Location| Error::InvalidPath {
        url: loc.url(),
        node: node.to_string(),
    };
    let Some(path) = &spec.path else {
        if access.writable() && !matches!(kind, DeviceKind::Stdout | DeviceKind::Stderr) {
            return Err(Error::NoImmediateResponse(spec.name.clone()));
        }
        if kind == DeviceKind::Debug {
            return Err(Error::PathRequired(spec.name.clone()));
        }
        return Ok(());
    };
    if access.readable() {
        let Location::Swift(p) = path else {
            return Err(Error::ReadableNotSwift);
        };
        if p.container.is_none() {
            return Err(invalid(path));
        }
        return Ok(());
    }
    match path {
        // A zvm:// device becomes a connection, whatever the device; its
        // target device becomes a channel alias.
        Location::Zvm(z) => {
            if has_control_chars(&z.device) || z.device.contains([',', ';', '=', ' ']) {
                return Err(invalid(path));
            }
            Ok(())
        }
        Location::Swift(p) => {
            if p.object.is_none() {
                return Err(Error::ContainerPathNotReadOnly);
            }
            if kind == DeviceKind::Debug {
                return Err(invalid(path));
            }
            Ok(())
        }
        Location::Net(_) if kind == DeviceKind::Debug => Ok(()),
        // Writable devices, images and debug take only the schemes above;
        // other devices keep their path (the object server cannot resolve
        // it unless it is a system image).
        _ if access.writable() || access.cdr() || kind == DeviceKind::Debug => Err(invalid(path)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        match Job::from_value(&v) {
            Ok(job) => panic!("accepted: {job:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn group(extra: Value) -> Value {
        let mut g = json!({
            "name": "sort",
            "exec": {"path": "swift://a/c/exe"},
            "devices": [{"name": "stdout"}]
        });
        if let (Some(g), Some(extra)) = (g.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                g.insert(k.clone(), v.clone());
            }
        }
        g
    }

    fn devices(devs: Value) -> Value {
        json!([group(json!({ "devices": devs }))])
    }

    #[test]
    fn unparsable_body_is_422() {
        assert_eq!(Job::from_json(b"[{"), Err(Error::Unparsable));
        assert_eq!(Job::from_json(b"not json"), Err(Error::Unparsable));
    }

    #[test]
    fn job_level_messages() {
        let table: Vec<(Value, &str)> = vec![
            (json!({"name": "x"}), "Config parser internal error"),
            (json!("x"), "Config parser internal error"),
            (json!([]), "Config parser cannot resolve any job nodes"),
            (json!(["x"]), "Config parser internal error"),
            (json!([{}]), "Must specify node name"),
            (json!([{"name": ""}]), "Must specify node name"),
            (json!([{"name": 5}]), "Config parser internal error"),
            (json!([{"name": "a\u{1}b"}]), "Invalid node name"),
            (json!([{"name": "a\u{7f}"}]), "Invalid node name"),
            (json!([{"name": "a,b"}]), "Invalid node name"),
            (json!([{"name": "a:b"}]), "Invalid node name"),
            (
                json!([{"name": "sort"}]),
                "Must specify exec stanza for sort",
            ),
            (
                json!([{"name": "sort", "exec": {}}]),
                "Must specify exec stanza for sort",
            ),
            (
                json!([{"name": "sort", "exec": "x"}]),
                "Config parser internal error",
            ),
            (
                json!([{"name": "sort", "exec": {"args": "x"}}]),
                "Must specify executable path for sort",
            ),
            (
                json!([{"name": "sort", "exec": {"path": "/abs/path"}}]),
                "Must specify executable path for sort",
            ),
            (
                json!([{"name": "sort", "exec": {"path": "swift://a/c"}}]),
                "Must specify executable path for sort",
            ),
            (
                json!([{"name": "sort", "exec": {"path": "zvm://x:y"}}]),
                "Executable path cannot be a zvm path in sort",
            ),
            (
                json!([{"name": "sort", "exec": {"path": "swift://a/c/e", "args": "a\nb"}}]),
                "Invalid nexe property for sort",
            ),
            (
                json!([{"name": "sort", "exec": {"path": "swift://a/c/e\u{1}"}}]),
                "Invalid nexe property for sort",
            ),
            (
                json!([{"name": "sort", "exec": {"path": "swift://a/c/e", "env": {"A": "x\ny"}}}]),
                "Invalid nexe property for sort",
            ),
            (
                json!([{"name": "sort", "exec": {"path": "swift://a/c/e", "env": ["A"]}}]),
                "Invalid nexe property for sort",
            ),
            (json!([group(json!({"count": 0}))]), "Invalid node count: 0"),
            (
                json!([group(json!({"count": -1}))]),
                "Invalid node count: -1",
            ),
            (
                json!([group(json!({"count": "2"}))]),
                "Invalid node count: 2",
            ),
            (
                json!([group(json!({"count": 2.0}))]),
                "Invalid node count: 2.0",
            ),
            (
                json!([group(json!({"count": null}))]),
                "Invalid node count: None",
            ),
            (
                json!([group(json!({"count": true}))]),
                "Invalid node count: True",
            ),
            (
                json!([group(json!({"replicate": -1}))]),
                "Invalid replicate value: -1",
            ),
            (
                json!([group(json!({"devices": "stdout"}))]),
                "Config parser internal error",
            ),
            (
                json!([group(json!({"connect": 5}))]),
                "Config parser internal error",
            ),
        ];
        for (job, want) in table {
            assert_eq!(err(job.clone()), want, "{job}");
        }
    }

    #[test]
    fn device_messages() {
        let table: Vec<(Value, &str)> = vec![
            (json!([{}]), "Must specify device for file in sort"),
            (
                json!([{"path": "swift://a/c/o"}]),
                "Must specify device for file in sort",
            ),
            (
                json!([{"name": ""}]),
                "Must specify device for file in sort",
            ),
            (
                json!([{"device": null, "name": "stdout"}]),
                "Must specify device for file in sort",
            ),
            (
                json!([{"name": "std\u{2}out"}]),
                "Bad device name: std\u{2}out in sort",
            ),
            (json!([{"name": "a,b"}]), "Bad device name: a,b in sort"),
            (
                json!([{"name": "stdin", "path": "file://img:x"}]),
                "Readable device must be a swift object",
            ),
            (
                json!([{"name": "input", "path": "zvm://x:stdin"}]),
                "Readable device must be a swift object",
            ),
            (
                json!([{"name": "input", "path": "swift://a"}]),
                "Invalid path swift://a in sort",
            ),
            (
                json!([{"name": "stdin", "path": "/abs"}]),
                "Invalid path /abs in sort",
            ),
            (
                json!([{"name": "stdout", "path": "swift://a/c"}]),
                "Container path must be read-only",
            ),
            (
                json!([{"name": "image", "path": "swift://a/c"}]),
                "Container path must be read-only",
            ),
            (
                json!([{"name": "output"}]),
                "Immediate response is not available for device output",
            ),
            (
                json!([{"name": "stdout", "path": "file://x:y"}]),
                "Invalid path file://x:y in sort",
            ),
            (
                json!([{"name": "debug"}]),
                "Path is required for device: debug",
            ),
            (
                json!([{"name": "debug", "path": "swift://a/c/o"}]),
                "Invalid path swift://a/c/o in sort",
            ),
            (
                json!([{"name": "stdout", "mode": "rw"}]),
                "Invalid device mode rw in sort",
            ),
            (
                json!([{"name": "stdout", "path": "zvm://n:/dev/a,b"}]),
                "Invalid path zvm://n:/dev/a,b in sort",
            ),
            (
                json!([{"name": "stdout", "meta": "x"}]),
                "Config parser internal error",
            ),
            (
                json!([{"name": "stdout", "min_size": -1}]),
                "Config parser internal error",
            ),
            (json!(["stdout"]), "Config parser internal error"),
        ];
        for (devs, want) in table {
            assert_eq!(err(devices(devs.clone())), want, "{devs}");
        }
    }

    #[test]
    fn accepts_the_documented_forms() {
        let job = Job::from_value(&json!([{
            "name": "example",
            "exec": {"path": "file://python2.7:python", "args": "main.py",
                     "env": {"A": "1", "N": 2, "Z": null}, "name": "python"},
            "devices": [
                {"name": "python2.7"},
                {"name": "stdout", "content_type": "message/http", "mode": "char"},
                {"device": "input", "path": "swift://~/example/data1.csv"},
                {"name": "image", "path": "swift://~/example/example.tar"},
                {"name": "stderr", "path": "zvm://other:stdin"},
                {"name": "debug", "path": "tcp://127.0.0.1:5000"},
                {"name": "db"},
                {"name": "output", "path": "swift://a/c/o", "meta": {"k": "v"}, "min_size": 10}
            ],
            "count": 1, "replicate": 0, "attach": "input", "location": "here",
            "connect": ["other"], "ignored": true
        }]))
        .unwrap();
        let g = &job.groups[0];
        assert_eq!(g.name, "example");
        assert_eq!(g.exec.args.as_deref(), Some("main.py"));
        assert_eq!(g.exec.env.get("N").map(String::as_str), Some("2"));
        assert!(!g.exec.env.contains_key("Z"));
        assert_eq!(g.devices.len(), 8);
        assert_eq!(g.devices[1].mode, Some(Mode::Char));
        assert_eq!(g.devices[7].min_size, 10);
        assert_eq!((g.replicate, g.attach.as_str()), (0, "input"));
        assert_eq!(g.location.as_deref(), Some("here"));
        assert_eq!(g.connect, vec!["other".to_string()]);
    }

    #[test]
    fn file_list_wins_over_devices_and_device_over_name() {
        let job = Job::from_value(&json!([{
            "name": "a", "exec": {"path": "swift://a/c/e"},
            "file_list": [{"device": "stderr", "name": "stdout"}],
            "devices": [{"name": "stdin"}]
        }]))
        .unwrap();
        assert_eq!(job.groups[0].devices.len(), 1);
        assert_eq!(job.groups[0].devices[0].name, "stderr");
    }

    #[test]
    fn groups_without_devices_are_kept() {
        let job = Job::from_value(&json!([{"name": "r", "exec": {"path": "swift://a/c/e"}}]));
        assert_eq!(job.unwrap().groups[0].devices.len(), 0);
    }
}
