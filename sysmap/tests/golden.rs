//! Golden files: whole manifests, NVRAMs and a plan, compared byte for byte
//! with `tests/golden/*`. Regenerate with `UPDATE_GOLDEN=1 cargo test -p
//! sysmap --test golden`, then review the diff against spec/zerocloud.md §3.2.

use std::path::PathBuf;

use serde_json::{json, Value};
use sysmap::catalog::{MemoryCatalog, NoCatalog};
use sysmap::cgi::{apply_cgi_env, CgiRequest};
use sysmap::compile::{compile, CompileOptions};
use sysmap::job::Job;
use sysmap::plan::{JobPlan, NodePlan};
use sysmap::render::{manifest, nvram, LocalObject, RenderOptions, SessionFiles};

fn check(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(got, want, "{name} differs from its golden file");
}

/// What the proxy saw: `POST /v1/AUTH_test` from curl.
fn request() -> CgiRequest {
    CgiRequest {
        method: "POST".into(),
        script_name: "/v1".into(),
        path_info: "/AUTH_test".into(),
        query_string: String::new(),
        headers: vec![
            ("Host".into(), "127.0.0.1:8080".into()),
            ("User-Agent".into(), "curl/7.88.1".into()),
            ("Accept".into(), "*/*".into()),
            ("X-Auth-Token".into(), "AUTH_tk0123".into()),
            ("Content-Type".into(), "application/json".into()),
            ("Content-Length".into(), "321".into()),
            ("X-Zerovm-Execute".into(), "1.0".into()),
            ("X-Zerocloud-Id".into(), "018f2a3b4c5d6001".into()),
            ("X-Zerovm-Timeout".into(), "10".into()),
            ("X-Trans-Id".into(), "tx0123456789abcdef".into()),
        ],
        remote_user: Some("test:tester,test,AUTH_test".into()),
        server_protocol: Some("HTTP/1.1".into()),
        server_name: None,
        server_port: None,
    }
}

fn render_opts() -> RenderOptions {
    RenderOptions {
        timeout: 10,
        sysimages: ["python2.7".to_string()].into(),
        ..RenderOptions::default()
    }
}

fn session(node: &NodePlan, channels: &[(&str, &str)]) -> SessionFiles {
    let dir = format!("/srv/node/d1/tmp/tx0123456789abcdef-{}", node.id);
    SessionFiles {
        program: format!("{dir}/program.wasm"),
        nvram: format!("{dir}/nvram"),
        channels: channels
            .iter()
            .map(|(d, p)| (d.to_string(), p.replace("$dir", &dir)))
            .collect(),
        dev_self: true,
        ..SessionFiles::default()
    }
}

fn compiled(job: Value, opts: &CompileOptions, cat: &dyn sysmap::catalog::Catalog) -> JobPlan {
    let job = Job::from_value(&job).expect("job parses");
    let mut plan = compile(&job, opts, cat).expect("job compiles");
    apply_cgi_env(&mut plan, &request());
    plan
}

#[test]
fn script_job() {
    // The job ZeroCloud generates for a POSTed `#!file://python2.7:python` script.
    let mut opts = CompileOptions::new("AUTH_test");
    opts.user_image = true;
    let plan = compiled(
        json!([{
            "name": "script",
            "exec": {"path": "file://python2.7:python", "args": "script"},
            "devices": [{"device": "stdout", "content_type": "text/plain"},
                        {"device": "python2.7"}]
        }]),
        &opts,
        &NoCatalog,
    );
    let node = &plan.nodes[0];
    let files = session(
        node,
        &[
            ("stdout", "$dir/stdout"),
            ("python2.7", "/usr/share/zerocloud/images/python.tar"),
            ("image", "$dir/image"),
        ],
    );
    check(
        "script.manifest",
        &manifest(node, &render_opts(), &files).unwrap(),
    );
    check("script.nvram", &nvram(node, &render_opts(), None).unwrap());
}

#[test]
fn image_and_input_object_job() {
    // job.json of the "POST a job description to a ZeroVM application" tutorial.
    let plan = compiled(
        json!([{
            "name": "example",
            "exec": {"path": "file://python2.7:python", "args": "main.py"},
            "devices": [
                {"name": "python2.7"},
                {"name": "stdout"},
                {"name": "input", "path": "swift://~/example/data1.csv"},
                {"name": "image", "path": "swift://~/example/example.tar"}
            ]
        }]),
        &CompileOptions::new("AUTH_test"),
        &NoCatalog,
    );
    let node = &plan.nodes[0];
    assert_eq!(node.placement.path_info, "/AUTH_test/example/data1.csv");
    let files = session(
        node,
        &[
            (
                "input",
                "/srv/node/d1/objects/512/0ab/80123/1400000000.00000.data",
            ),
            ("image", "$dir/image"),
            ("stdout", "$dir/stdout"),
            ("python2.7", "/usr/share/zerocloud/images/python.tar"),
        ],
    );
    let local = LocalObject {
        content_length: 92,
        metadata: vec![
            ("Content-Type".into(), "text/csv".into()),
            ("ETag".into(), "6b1c1d9e0f4b4e4c2c1f0e6d5a4b3c2d".into()),
            ("X-Timestamp".into(), "1400000000.00000".into()),
            ("X-Object-Meta-Source".into(), "bank, export".into()),
        ],
    };
    check(
        "image-input.manifest",
        &manifest(node, &render_opts(), &files).unwrap(),
    );
    check(
        "image-input.nvram",
        &nvram(node, &render_opts(), Some(&local)).unwrap(),
    );
}

#[test]
fn mapreduce_job() {
    // The MapReduce tutorial: word count over mapreduce-data/*.txt.
    let cat = MemoryCatalog::new()
        .with_object("AUTH_test", "mapreduce-data", "mrdata1.txt")
        .with_object("AUTH_test", "mapreduce-data", "mrdata2.txt")
        .with_object("AUTH_test", "mapreduce-data", "mrdata3.txt");
    // `zpm deploy mapreduce-app mapreduce.zapp` then
    // `zpm execute mapreduce.zapp --container mapreduce-app`.
    let mut job = sysmap::zapp::job_json_from_zapp_yaml(include_str!("golden/mapreduce.zapp.yaml"))
        .expect("zapp.yaml converts");
    sysmap::zapp::add_image_device(&mut job, "swift://AUTH_test/mapreduce-app/mapreduce.zapp");
    let plan = compiled(job, &CompileOptions::new("AUTH_test"), &cat);
    check(
        "mapreduce.plan.json",
        &(serde_json::to_string_pretty(&plan).unwrap() + "\n"),
    );
    let map1 = plan.node("map-1").unwrap();
    let files = session(
        map1,
        &[
            (
                "input",
                "/srv/node/d1/objects/77/c1e/4d1c/1400000001.00000.data",
            ),
            ("stdout", "$dir/stdout"),
            ("python2.7", "/usr/share/zerocloud/images/python.tar"),
            ("image", "$dir/image"),
        ],
    );
    let local = LocalObject {
        content_length: 731,
        metadata: vec![
            ("Content-Type".into(), "text/plain".into()),
            ("ETag".into(), "0cc175b9c0f1b6a831c399e269772661".into()),
            ("X-Timestamp".into(), "1400000001.00000".into()),
        ],
    };
    check(
        "mapreduce-map-1.manifest",
        &manifest(map1, &render_opts(), &files).unwrap(),
    );
    check(
        "mapreduce-map-1.nvram",
        &nvram(map1, &render_opts(), Some(&local)).unwrap(),
    );
    let reduce = plan.node("reduce").unwrap();
    let files = session(
        reduce,
        &[
            ("stdout", "$dir/stdout"),
            ("python2.7", "/usr/share/zerocloud/images/python.tar"),
            ("image", "$dir/image"),
        ],
    );
    // The reducer's first channel is the zapp image: it runs where the zapp is.
    let zapp = LocalObject {
        content_length: 10240,
        metadata: vec![
            ("Content-Type".into(), "application/x-tar".into()),
            ("ETag".into(), "92eb5ffee6ae2fec3ad71c777531578f".into()),
            ("X-Timestamp".into(), "1399999999.00000".into()),
        ],
    };
    check(
        "mapreduce-reduce.manifest",
        &manifest(reduce, &render_opts(), &files).unwrap(),
    );
    check(
        "mapreduce-reduce.nvram",
        &nvram(reduce, &render_opts(), Some(&zapp)).unwrap(),
    );
}
