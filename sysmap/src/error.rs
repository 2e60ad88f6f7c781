//! The one error type of the crate. Its `Display` is the exact text the client
//! gets as a 400 body (ZeroCloud's own messages, spec/zerocloud.md §2, §4.2).
//!
//! Variants marked "ours" have no ZeroCloud equivalent: they reject inputs the
//! original accepted and then broke on (see the README, "Decisions").

use thiserror::Error;

/// Why a job description could not be parsed, compiled or rendered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The body is not JSON at all (the proxy answers 422, not 400).
    #[error("Could not parse system map")]
    Unparsable,
    /// The job is JSON but not the expected shape (e.g. a dict instead of a
    /// list, a group that is not an object, a key of the wrong type).
    #[error("Config parser internal error")]
    Internal,
    /// The job list is empty.
    #[error("Config parser cannot resolve any job nodes")]
    NoNodes,
    #[error("Must specify node name")]
    MissingNodeName,
    #[error("Invalid node name")]
    InvalidNodeName,
    #[error("Must specify exec stanza for {0}")]
    MissingExec(String),
    #[error("Must specify executable path for {0}")]
    MissingExecPath(String),
    #[error("Executable path cannot be a zvm path in {0}")]
    ZvmExecPath(String),
    #[error("Invalid nexe property for {0}")]
    InvalidNexeProperty(String),
    /// The value is rendered as Python's `str()` would (`2.0`, `None`, `False`).
    #[error("Invalid node count: {0}")]
    InvalidNodeCount(String),
    #[error("Must specify device for file in {0}")]
    MissingDevice(String),
    #[error("Bad device name: {device} in {node}")]
    BadDeviceName { device: String, node: String },
    #[error("Readable device must be a swift object")]
    ReadableNotSwift,
    #[error("Invalid path {url} in {node}")]
    InvalidPath { url: String, node: String },
    #[error("Container path must be read-only")]
    ContainerPathNotReadOnly,
    #[error("Immediate response is not available for device {0}")]
    NoImmediateResponse(String),
    #[error("Single path {url} for multiple node definition: {node}, please use wildcard")]
    SinglePathForMany { url: String, node: String },
    /// A `*` in the account part of a wildcard path.
    #[error("Invalid path: {0}")]
    WildcardAccount(String),
    #[error("Error querying object server for account: {0}")]
    AccountListing(String),
    #[error("Error querying object server for container: {0}")]
    ContainerListing(String),
    #[error("No objects found in path {0}")]
    NoObjectsFound(String),
    /// ZeroCloud printed a Python object repr here; we print the URL.
    #[error("Wildcards in input cannot be resolved into output path {0}")]
    UnresolvedOutputWildcards(String),
    /// A `*` left in the device of a `zvm://node:device` path.
    #[error("Cannot resolve wildcard for node {0}")]
    UnresolvedWildcard(String),
    #[error("Non-existing node in connect {0}")]
    NonExistingConnect(String),
    #[error("Cannot bind to itself: {0}")]
    BindToItself(String),
    #[error("Path is required for device: {0}")]
    PathRequired(String),
    #[error("Cannot use container {0} as a remote object reference")]
    RemoteContainer(String),
    /// Object-server side: a channel the session needs has no local data.
    #[error("Could not resolve channel path \"{path}\" for device: {device}")]
    UnresolvedChannel { path: String, device: String },

    /// Ours: two channels of one node would get the same `/dev/...` alias
    /// (ZeroVM refuses such a manifest).
    #[error("Duplicate channel {alias} in {node}")]
    DuplicateChannel { alias: String, node: String },
    /// Ours: two nodes would get the same name (e.g. group `a` with `count: 2`
    /// and a group named `a-1`); ZeroCloud silently merged them.
    #[error("Duplicate node name {0}")]
    DuplicateNodeName(String),
    /// Ours: `mode` must be one of `file`, `char`, `pipe`, `block`.
    #[error("Invalid device mode {mode} in {node}")]
    InvalidMode { mode: String, node: String },
    /// Ours: ZeroCloud mixed the listings of several wildcard inputs.
    #[error("Only one wildcard input device is allowed in {0}")]
    MultipleWildcardInputs(String),
    /// Ours: the job would need more sessions than the configured limit.
    #[error("Too many nodes in job: {count} (limit {limit})")]
    TooManyNodes { count: u64, limit: u64 },
    /// Ours: `replicate` must be a non-negative integer.
    #[error("Invalid replicate value: {0}")]
    InvalidReplicate(String),
    /// Ours: a value that would corrupt a manifest line (`,`, `=`, newline).
    #[error("Invalid manifest value: {0}")]
    BadManifestValue(String),
    /// Ours: zapp.yaml could not be read or converted.
    #[error("Invalid zapp.yaml: {0}")]
    Zapp(String),
}

impl Error {
    /// The HTTP status ZeroCloud answered with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Unparsable => 422,
            _ => 400,
        }
    }
}

/// Python's `str()` of a JSON value, for messages that quote user input.
pub(crate) fn python_str(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                python_float(f)
            } else {
                n.to_string()
            }
        }
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

fn python_float(f: f64) -> String {
    if f.is_finite() && f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

fn python_repr(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::String(s) => format!("'{s}'"),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("'{k}': {}", python_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        other => python_str(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_str_matches_python() {
        for (v, want) in [
            (json!(0), "0"),
            (json!(-3), "-3"),
            (json!(2.0), "2.0"),
            (json!(1.5), "1.5"),
            (json!("2"), "2"),
            (json!(null), "None"),
            (json!(false), "False"),
            (json!([1, "a"]), "[1, 'a']"),
            (json!({"a": 1}), "{'a': 1}"),
        ] {
            assert_eq!(python_str(&v), want);
        }
    }

    #[test]
    fn only_unparsable_is_422() {
        assert_eq!(Error::Unparsable.http_status(), 422);
        assert_eq!(Error::NoNodes.http_status(), 400);
    }
}
