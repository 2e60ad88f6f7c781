//! Rules of the manifest and NVRAM text, one by one. Whole files are
//! checked by the golden tests in `tests/golden.rs`.

use serde_json::{json, Value};

use super::*;
use crate::catalog::NoCatalog;
use crate::compile::{compile, CompileOptions};
use crate::job::Job;
use crate::plan::JobPlan;

fn plan_with(v: Value, opts: &CompileOptions) -> JobPlan {
    compile(&Job::from_value(&v).unwrap(), opts, &NoCatalog).unwrap()
}

fn plan(v: Value) -> JobPlan {
    plan_with(v, &CompileOptions::new("a"))
}

fn small_opts() -> RenderOptions {
    RenderOptions {
        limits: Limits {
            reads: 1,
            rbytes: 2,
            writes: 3,
            wbytes: 4,
        },
        sysimages: ["python2.7".to_string()].into(),
        ..RenderOptions::default()
    }
}

fn files(channels: &[(&str, &str)]) -> SessionFiles {
    SessionFiles {
        program: "/tmp/s/prog.wasm".into(),
        nvram: "/tmp/s/nvram".into(),
        channels: channels
            .iter()
            .map(|(d, p)| (d.to_string(), p.to_string()))
            .collect(),
        ..SessionFiles::default()
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn a_bare_node_gets_null_standard_channels() {
    let p = plan(json!([{"name": "n", "exec": {"path": "swift://a/c/e"}}]));
    let m = manifest(&p.nodes[0], &small_opts(), &files(&[])).unwrap();
    assert_eq!(
        lines(&m),
        [
            "Version=20130611",
            "Program=/tmp/s/prog.wasm",
            "Timeout=10",
            "Memory=4294967296,0",
            "Channel=/dev/null,/dev/stdin,0,0,1,2,0,0",
            "Channel=/dev/null,/dev/stdout,0,0,0,0,3,4",
            "Channel=/dev/null,/dev/stderr,0,0,0,0,3,4",
            "Channel=/tmp/s/nvram,/dev/nvram,3,0,1,2,0,0",
            "Node=1",
        ]
    );
    let n = nvram(&p.nodes[0], &small_opts(), None).unwrap();
    assert_eq!(n, "[args]\nargs = n\n");
}

#[test]
fn channel_lines_by_kind() {
    let p = plan(
        json!([{"name": "n", "exec": {"path": "swift://a/c/e", "args": "-x 1", "name": "prog"},
        "devices": [
            {"name": "stdin"},
            {"name": "input", "path": "swift://a/c/in"},
            {"name": "image", "path": "swift://a/c/img.tar"},
            {"name": "stdout", "mode": "char"},
            {"name": "output", "path": "swift://a/c/out"},
            {"name": "debug", "path": "tcp://10.0.0.1:9"},
            {"name": "db"},
            {"name": "python2.7"}
        ]}]),
    );
    let node = &p.nodes[0];
    let f = files(&[
        ("input", "/srv/obj/in"),
        ("image", "/tmp/s/image"),
        ("stdout", "/tmp/s/stdout"),
        ("output", "/tmp/s/output"),
        ("python2.7", "/usr/share/images/python.tar"),
    ]);
    let mut f = SessionFiles {
        dev_self: true,
        job: Some("/tmp/d.sock".into()),
        name_server: Some("udp:127.0.0.1:5555".into()),
        replica: 1,
        ..f
    };
    let m = manifest(node, &small_opts(), &f).unwrap();
    assert_eq!(
        lines(&m),
        [
            "Version=20130611",
            "Program=/tmp/s/prog.wasm",
            "Timeout=10",
            "Memory=4294967296,0",
            "Job=/tmp/d.sock",
            "Channel=/dev/null,/dev/stdin,0,0,1,2,0,0",
            "Channel=/srv/obj/in,/dev/input,3,0,1,2,0,0",
            "Channel=/tmp/s/image,/dev/image,3,0,1,2,3,4",
            "Channel=/tmp/s/stdout,/dev/stdout,0,1,0,0,3,4",
            "Channel=/tmp/s/output,/dev/output,3,0,0,0,3,4",
            "Channel=tcp:10.0.0.1:9,/dev/debug,0,0,0,0,3,4",
            "Channel=/usr/share/images/python.tar,/dev/python2.7,3,0,1,2,0,0",
            "Channel=/dev/null,/dev/stderr,0,0,0,0,3,4",
            "Channel=/tmp/s/prog.wasm,/dev/self,3,0,1,2,0,0",
            "Channel=/tmp/s/nvram,/dev/nvram,3,0,1,2,0,0",
            "Node=2",
            "NameServer=udp:127.0.0.1:5555",
        ]
    );
    let n = nvram(node, &small_opts(), None).unwrap();
    assert_eq!(
        n,
        "[fstab]\n\
         channel=/dev/image, mountpoint=/, access=ro, removable=no\n\
         channel=/dev/python2.7, mountpoint=/, access=ro, removable=no\n\
         [args]\n\
         args = prog -x 1\n\
         [mapping]\n\
         channel=/dev/stdin, mode=file\n\
         channel=/dev/input, mode=file\n\
         channel=/dev/image, mode=file\n\
         channel=/dev/stdout, mode=char\n\
         channel=/dev/output, mode=file\n\
         channel=/dev/debug, mode=file\n\
         channel=/dev/python2.7, mode=file\n"
    );
    // A comma in a host path would split the channel line.
    f.channels.insert("input".into(), "/srv/a,b".into());
    assert_eq!(
        manifest(node, &small_opts(), &f).unwrap_err(),
        Error::BadManifestValue("/srv/a,b".into())
    );
}

#[test]
fn unresolvable_channels_are_object_server_errors() {
    let p = plan(json!([{"name": "n", "exec": {"path": "swift://a/c/e"},
        "devices": [{"name": "stdout"}, {"name": "custom"}]}]));
    let e = manifest(&p.nodes[0], &small_opts(), &files(&[("stdout", "/o")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Could not resolve channel path \"\" for device: custom"
    );
    assert_eq!(nvram(&p.nodes[0], &small_opts(), None).unwrap_err(), e);

    let p = plan(json!([{"name": "n", "exec": {"path": "swift://a/c/e"},
        "devices": [{"name": "stdin", "path": "swift://a/c/o"}]}]));
    let e = manifest(&p.nodes[0], &small_opts(), &files(&[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Could not resolve channel path \"swift://a/c/o\" for device: stdin"
    );
    assert_eq!(e.http_status(), 400);
}

#[test]
fn the_local_output_and_immediate_outputs_carry_etags() {
    let p = plan(json!([{"name": "n", "exec": {"path": "swift://a/c/e"},
        "devices": [{"name": "stdout", "path": "swift://a/c/o"},
                    {"name": "stderr", "path": "swift://a/c/e2"},
                    {"name": "output", "path": "swift://a/c/o2"}], "attach": "stderr"}]));
    let f = files(&[("stdout", "/1"), ("stderr", "/2"), ("output", "/3")]);
    let m = manifest(&p.nodes[0], &small_opts(), &f).unwrap();
    assert!(m.contains("Channel=/1,/dev/stdout,0,0,0,0,3,4\n"));
    assert!(m.contains("Channel=/2,/dev/stderr,0,1,0,0,3,4\n"));
    assert!(m.contains("Channel=/3,/dev/output,3,0,0,0,3,4\n"));
}

#[test]
fn network_channels_list_every_replica_of_the_peer() {
    let mut o = CompileOptions::new("a");
    o.write_replicas = 3;
    o.network_limits = Limits {
        reads: 5,
        rbytes: 6,
        writes: 7,
        wbytes: 8,
    };
    let p = plan_with(
        json!([
            {"name": "w", "exec": {"path": "swift://a/c/e"},
             "devices": [{"name": "stdout", "path": "swift://a/o/x"}]},
            {"name": "s", "exec": {"path": "swift://a/c/e"}, "count": 2, "connect": ["w"],
             "devices": [{"name": "stderr", "path": "zvm://w:/dev/in-*"}]}
        ]),
        &o,
    );
    let s1 = p.node("s-1").unwrap();
    let m = manifest(s1, &small_opts(), &files(&[])).unwrap();
    // N = 3 nodes; w is node 1 with 3 replicas → ids 1, 4, 7.
    assert!(
        m.contains("Channel=tcp:1:;tcp:4:;tcp:7:,/dev/stderr,0,0,0,0,7,8\n"),
        "{m}"
    );
    assert!(m.contains("Channel=/dev/null,/dev/stdout,"));
    assert!(!m.contains("/dev/null,/dev/stderr"));
    let w = p.node("w").unwrap();
    let f = files(&[("stdout", "/o")]);
    let m = manifest(w, &small_opts(), &f).unwrap();
    let net: Vec<&str> = m.lines().filter(|l| l.starts_with("Channel=tcp")).collect();
    assert_eq!(
        net,
        [
            "Channel=tcp:2:0,/dev/in-s-1,0,0,5,6,0,0",
            "Channel=tcp:3:0,/dev/in-s-2,0,0,5,6,0,0"
        ]
    );
    // The exec agent may give its own URI for a network channel.
    let mut f = files(&[("stdout", "/o")]);
    f.network
        .insert("/dev/in-s-1".into(), "/run/peer-pipe".into());
    assert!(manifest(w, &small_opts(), &f)
        .unwrap()
        .contains("Channel=/run/peer-pipe,/dev/in-s-1,0,0,5,6,0,0\n"));
}

#[test]
fn env_records_are_escaped_and_sorted() {
    let mut p = plan(json!([{"name": "n", "exec": {"path": "swift://a/c/e",
        "env": {"B": "x,y", "A": "1", "EMPTY": ""}}}]));
    p.nodes[0].env.insert("K,1".into(), "v".into());
    let n = nvram(&p.nodes[0], &small_opts(), None).unwrap();
    assert_eq!(
        n,
        "[args]\nargs = n\n[env]\nname=A, value=1\nname=B, value=x\\x2cy\nname=K\\x2c1, value=v\n"
    );
}

#[test]
fn local_variables_of_a_read_attached_session() {
    let p = plan(json!([{"name": "n", "exec": {"path": "swift://a/c/e"},
        "devices": [{"name": "input", "path": "swift://a/c/data.csv"}]}]));
    let local = LocalObject {
        content_length: 42,
        metadata: vec![
            ("Content-Type".into(), "text/csv".into()),
            ("ETag".into(), "abc".into()),
            ("X-Timestamp".into(), "1400000000.00000".into()),
            ("X-Object-Meta-Owner-Name".into(), "me, myself".into()),
            ("X-Other".into(), "hidden".into()),
        ],
    };
    let env = local_env(&p.nodes[0], &local);
    let want: BTreeMap<String, String> = [
        ("LOCAL_CONTENT_LENGTH", "42"),
        ("LOCAL_CONTENT_TYPE", "text/csv"),
        ("LOCAL_DOCUMENT_ROOT", "/dev/input"),
        ("LOCAL_HTTP_ETAG", "abc"),
        ("LOCAL_HTTP_X_OBJECT_META_OWNER_NAME", "me, myself"),
        ("LOCAL_HTTP_X_TIMESTAMP", "1400000000.00000"),
        ("LOCAL_OBJECT", "on"),
        ("LOCAL_PATH_INFO", "/a/c/data.csv"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env, want);
    let n = nvram(&p.nodes[0], &small_opts(), Some(&local)).unwrap();
    assert!(n.contains("name=LOCAL_HTTP_X_OBJECT_META_OWNER_NAME, value=me\\x2c myself\n"));
    let bare = local_env(&p.nodes[0], &LocalObject::default());
    assert_eq!(bare["LOCAL_CONTENT_TYPE"], "application/octet-stream");
}

#[test]
fn local_variables_of_a_write_attached_session() {
    let p = plan(json!([{"name": "n", "exec": {"path": "swift://a/c/e"},
        "devices": [{"name": "stdout", "path": "swift://a/c/out", "content_type": "text/plain",
                     "meta": {"Color": "blue"}}]}]));
    let env = local_env(&p.nodes[0], &LocalObject::default());
    assert_eq!(env["LOCAL_CONTENT_TYPE"], "text/plain");
    assert_eq!(env["LOCAL_HTTP_X_OBJECT_META_COLOR"], "blue");
    assert_eq!(env["LOCAL_DOCUMENT_ROOT"], "/dev/stdout");
    assert_eq!(env["LOCAL_PATH_INFO"], "/a/c/out");
    assert!(!env.contains_key("LOCAL_CONTENT_LENGTH"));
    // An unattached node has no LOCAL_* variables.
    let q = plan(json!([{"name": "n", "exec": {"path": "swift://a/c/e"}}]));
    assert!(local_env(&q.nodes[0], &LocalObject::default()).is_empty());
}

#[test]
fn a_comma_in_args_is_escaped_so_the_record_keeps_it() {
    let job = crate::job::Job::from_json(
        br#"[{"name":"n","exec":{"path":"file://python:python","args":"-c print(1,2)"},
             "devices":[{"name":"stdout"}]}]"#,
    )
    .unwrap();
    let plan = crate::compile::compile(
        &job,
        &crate::compile::CompileOptions::new("a"),
        &crate::catalog::NoCatalog,
    )
    .unwrap();
    let text = nvram(&plan.nodes[0], &RenderOptions::default(), None).unwrap();
    assert!(text.contains("args = n -c print(1\\x2c2)\n"), "{text}");
}
