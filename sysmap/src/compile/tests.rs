//! Table-driven tests of §2.4–§2.6, including the verified examples.

use serde_json::{json, Value};

use super::*;
use crate::catalog::{CatalogError, MemoryCatalog, NoCatalog};

fn job(v: Value) -> Job {
    Job::from_value(&v).expect("job parses")
}

fn opts() -> CompileOptions {
    CompileOptions::new("a")
}

fn run(v: Value, cat: &dyn Catalog) -> Result<JobPlan, Error> {
    compile(&job(v), &opts(), cat)
}

fn sort_catalog() -> MemoryCatalog {
    MemoryCatalog::new()
        .with_object("a", "c_in1", "input1")
        .with_object("a", "c_in1", "input2")
        .with_object("a", "c_in1", "other")
        .with_object("a", "c_in2", "input1")
        .with_object("a", "c_in2", "input2")
        .with_object("a", "c_in2", "dir/")
        .with_container("a", "c_out1")
        .with_container("a", "c_out2")
}

fn path_of(node: &NodePlan, device: &str) -> String {
    node.channel(device)
        .and_then(|c| c.path.as_ref())
        .map(Location::url)
        .unwrap_or_default()
}

fn names(plan: &JobPlan) -> Vec<&str> {
    plan.nodes.iter().map(|n| n.name.as_str()).collect()
}

fn sort_job(stdin: &str, stdout: &str) -> Value {
    json!([{
        "name": "sort",
        "exec": {"path": "swift://a/c/sort.wasm"},
        "file_list": [
            {"device": "stdin", "path": stdin},
            {"device": "stdout", "path": stdout}
        ]
    }])
}

#[test]
fn single_wildcard_maps_each_input_to_its_output() {
    let plan = run(
        sort_job("swift://a/c_in1/in*", "swift://a/c_out1/out*"),
        &sort_catalog(),
    )
    .unwrap();
    assert_eq!(names(&plan), ["sort-1", "sort-2"]);
    let io: Vec<(String, String)> = plan
        .nodes
        .iter()
        .map(|n| (path_of(n, "stdin"), path_of(n, "stdout")))
        .collect();
    assert_eq!(
        io,
        [
            (
                "swift://a/c_in1/input1".into(),
                "swift://a/c_out1/output1".into()
            ),
            (
                "swift://a/c_in1/input2".into(),
                "swift://a/c_out1/output2".into()
            ),
        ]
    );
    assert_eq!(plan.nodes[0].wildcards, ["put1"]);
    assert_eq!(plan.nodes[1].id, 2);
}

#[test]
fn container_and_object_wildcards_make_four_sorters() {
    let plan = run(
        sort_job("swift://a/c_in*/in*", "swift://a/c_out*/out*"),
        &sort_catalog(),
    )
    .unwrap();
    assert_eq!(names(&plan), ["sort-1", "sort-2", "sort-3", "sort-4"]);
    let got: Vec<(String, String)> = plan
        .nodes
        .iter()
        .map(|n| (path_of(n, "stdin"), path_of(n, "stdout")))
        .collect();
    let want = [
        ("c_in1/input1", "c_out1/output1"),
        ("c_in1/input2", "c_out1/output2"),
        ("c_in2/input1", "c_out2/output1"),
        ("c_in2/input2", "c_out2/output2"),
    ];
    for ((i, o), (wi, wo)) in got.iter().zip(want) {
        assert_eq!(i, &format!("swift://a/{wi}"));
        assert_eq!(o, &format!("swift://a/{wo}"));
    }
    // Each sorter runs where its input lives.
    for n in &plan.nodes {
        assert_eq!(n.placement.attach, AttachMode::Read);
        assert_eq!(
            n.placement.path_info,
            path_of(n, "stdin").replacen("swift:/", "", 1)
        );
    }
}

#[test]
fn counted_nodes_fill_output_stars_with_their_names() {
    let plan = run(
        json!([{
            "name": "sort", "count": 2,
            "exec": {"path": "swift://a/c/sort.wasm"},
            "devices": [{"name": "stdout", "path": "swift://a/c_out1/wout.*"}]
        }]),
        &NoCatalog,
    )
    .unwrap();
    assert_eq!(names(&plan), ["sort-1", "sort-2"]);
    assert_eq!(
        path_of(&plan.nodes[0], "stdout"),
        "swift://a/c_out1/wout.sort-1"
    );
    assert_eq!(
        path_of(&plan.nodes[1], "stdout"),
        "swift://a/c_out1/wout.sort-2"
    );
}

#[test]
fn single_node_fills_output_star_with_its_name_and_expands_home() {
    let plan = compile(
        &job(json!([{
            "name": "reducer",
            "exec": {"path": "swift://~/c/r.wasm"},
            "devices": [{"name": "stderr", "path": "swift://./single/*.err"}]
        }])),
        &CompileOptions::new("AUTH_me"),
        &NoCatalog,
    )
    .unwrap();
    let n = &plan.nodes[0];
    assert_eq!(n.name, "reducer");
    assert_eq!(n.exe.url(), "swift://AUTH_me/c/r.wasm");
    assert_eq!(path_of(n, "stderr"), "swift://AUTH_me/single/reducer.err");
    assert_eq!(
        n.channel("stderr").unwrap().content_type,
        "application/octet-stream"
    );
}

fn mapreduce() -> Value {
    // The MapReduce tutorial's zapp.yaml groups, as JSON.
    json!([
        {"name": "map", "exec": {"path": "file://python2.7:python", "args": "mapper.py"},
         "devices": [{"name": "python2.7"}, {"name": "stdout"},
                     {"name": "input", "path": "swift://~/mapreduce-data/*.txt"}],
         "connect": ["reduce"]},
        {"name": "reduce", "exec": {"path": "file://python2.7:python", "args": "reducer.py"},
         "devices": [{"name": "python2.7"}, {"name": "stdout"}]}
    ])
}

fn mapreduce_catalog() -> MemoryCatalog {
    MemoryCatalog::new()
        .with_object("a", "mapreduce-data", "mrdata1.txt")
        .with_object("a", "mapreduce-data", "mrdata2.txt")
        .with_object("a", "mapreduce-data", "mrdata3.txt")
        .with_object("a", "mapreduce-data", "notes.md")
}

#[test]
fn mapreduce_tutorial_connects_every_mapper_to_the_reducer() {
    let plan = run(mapreduce(), &mapreduce_catalog()).unwrap();
    assert_eq!(names(&plan), ["map-1", "map-2", "map-3", "reduce"]);
    for (i, m) in plan.nodes[..3].iter().enumerate() {
        assert_eq!(m.id as usize, i + 1);
        assert_eq!(
            path_of(m, "input"),
            format!("swift://a/mapreduce-data/mrdata{}.txt", i + 1)
        );
        assert_eq!(m.connections.len(), 1);
        let c = &m.connections[0];
        assert_eq!(
            (c.direction, c.peer.as_str(), c.peer_id),
            (Direction::Out, "reduce", 4)
        );
        assert_eq!(c.device, "/dev/out/reduce");
        assert_eq!(c.limits.gets, 0);
        assert_eq!(c.limits.puts, crate::plan::DEFAULT_LIMIT);
        assert_eq!(m.pool, Pool::Cluster);
        assert_eq!(m.placement.attach, AttachMode::Read);
        // Channel order: readable, then writable, then other devices.
        let devs: Vec<&str> = m.channels.iter().map(|c| c.device.as_str()).collect();
        assert_eq!(devs, ["input", "stdout", "python2.7"]);
        assert_eq!(
            m.channel("python2.7").unwrap().access,
            Access::RANDOM_READABLE
        );
        assert_eq!(m.channel("stdout").unwrap().content_type, "text/html");
    }
    let r = &plan.nodes[3];
    let ins: Vec<(&str, &str)> = r
        .connections
        .iter()
        .map(|c| {
            assert_eq!(c.direction, Direction::In);
            assert_eq!(c.limits.puts, 0);
            (c.peer.as_str(), c.device.as_str())
        })
        .collect();
    assert_eq!(
        ins,
        [
            ("map-1", "/dev/in/map-1"),
            ("map-2", "/dev/in/map-2"),
            ("map-3", "/dev/in/map-3")
        ]
    );
    assert_eq!(r.placement.attach, AttachMode::None);
    assert_eq!(r.placement.path_info, "/a");
    assert!(plan.nodes.iter().all(|n| n.node_count == 4));
}

#[test]
fn a_counted_group_connected_to_itself_skips_self() {
    let plan = run(
        json!([{"name": "w", "count": 3, "exec": {"path": "swift://a/c/e"},
                "devices": [{"name": "stdout"}], "connect": ["w"]}]),
        &NoCatalog,
    )
    .unwrap();
    for n in &plan.nodes {
        let outs: Vec<&str> = n
            .connections
            .iter()
            .filter(|c| c.direction == Direction::Out)
            .map(|c| c.peer.as_str())
            .collect();
        let ins = n
            .connections
            .iter()
            .filter(|c| c.direction == Direction::In)
            .count();
        assert_eq!(outs.len(), 2);
        assert!(!outs.contains(&n.name.as_str()));
        assert_eq!(ins, 2);
    }
}

#[test]
fn connect_may_name_one_node_of_a_group() {
    let plan = run(
        json!([
            {"name": "w", "count": 2, "exec": {"path": "swift://a/c/e"}},
            {"name": "x", "exec": {"path": "swift://a/c/e"}, "connect": ["w-2"]}
        ]),
        &NoCatalog,
    )
    .unwrap();
    let x = plan.node("x").unwrap();
    assert_eq!(x.connections[0].peer, "w-2");
    assert!(plan.node("w-1").unwrap().connections.is_empty());
    // Groups without devices still make nodes (ZeroCloud dropped them).
    assert_eq!(plan.nodes.len(), 3);
}

#[test]
fn zvm_devices_connect_with_their_own_device_names() {
    let cat = MemoryCatalog::new()
        .with_object("a", "c", "x.txt")
        .with_object("a", "c", "y.txt");
    let plan = run(
        json!([
            {"name": "map", "exec": {"path": "swift://a/c/e"},
             "devices": [{"name": "input", "path": "swift://a/c/*.txt"},
                         {"name": "stdout", "path": "zvm://reduce:/dev/in-*"}]},
            {"name": "reduce", "exec": {"path": "swift://a/c/e"},
             "devices": [{"name": "stdout"}]}
        ]),
        &cat,
    )
    .unwrap();
    let m1 = plan.node("map-1").unwrap();
    assert!(m1.channel("stdout").is_none());
    assert_eq!(m1.connections[0].device, "/dev/stdout");
    let r = plan.node("reduce").unwrap();
    let devs: Vec<&str> = r.connections.iter().map(|c| c.device.as_str()).collect();
    assert_eq!(devs, ["/dev/in-x", "/dev/in-y"]);
}

#[test]
fn zvm_device_to_a_single_node() {
    let plan = run(
        json!([
            {"name": "a", "exec": {"path": "swift://a/c/e"},
             "devices": [{"name": "stdout", "path": "zvm://b:stdin"}]},
            {"name": "b", "exec": {"path": "swift://a/c/e"},
             "devices": [{"name": "stdout"}], "connect": []}
        ]),
        &NoCatalog,
    )
    .unwrap();
    let b = plan.node("b").unwrap();
    assert_eq!(b.connections[0].device, "/dev/stdin");
    assert_eq!(b.connections[0].peer, "a");
    assert_eq!(b.pool, Pool::Cluster);
}

#[test]
fn compile_errors_have_zerocloud_messages() {
    struct Failing;
    impl Catalog for Failing {
        fn list_containers(&self, _: &str, _: &str) -> Result<Vec<String>, CatalogError> {
            Err(CatalogError("down".into()))
        }
        fn list_objects(&self, _: &str, _: &str, _: &str) -> Result<Vec<String>, CatalogError> {
            Err(CatalogError("down".into()))
        }
    }
    let e = |dev_in: &str, dev_out: &str, cat: &dyn Catalog| {
        run(sort_job(dev_in, dev_out), cat).unwrap_err().to_string()
    };
    let cat = sort_catalog();
    assert_eq!(
        e("swift://*/c/o", "swift://a/o/x", &cat),
        "Invalid path: swift://*/c/o"
    );
    assert_eq!(
        e("swift://a/c*/o", "swift://a/o/x", &Failing),
        "Error querying object server for account: a"
    );
    assert_eq!(
        e("swift://a/c_in1/x*", "swift://a/o/x", &Failing),
        "Error querying object server for container: c_in1"
    );
    assert_eq!(
        e(
            "swift://a/c_in*/x*",
            "swift://a/o/x",
            &MemoryCatalog::new().with_container("a", "c_in1")
        ),
        "No objects found in path swift://a/c_in*/x*"
    );
    assert_eq!(
        e("swift://a/nope/x*", "swift://a/o/x", &cat),
        "Error querying object server for container: nope"
    );
    assert_eq!(
        e("swift://a/c_in1/in*", "swift://a/o/*-*", &cat),
        "Wildcards in input cannot be resolved into output path swift://a/o/*-*"
    );
    assert_eq!(
        e("swift://a/c_in1/in*", "swift://a/o/x", &cat),
        "Single path swift://a/o/x for multiple node definition: sort, please use wildcard"
    );
    let msg = |v: Value| run(v, &cat).unwrap_err().to_string();
    let exe = json!({"path": "swift://a/c/e"});
    assert_eq!(
        msg(json!([{"name": "s", "exec": exe, "count": 2,
                    "devices": [{"name": "stdout", "path": "swift://a/o/x"}]}])),
        "Single path swift://a/o/x for multiple node definition: s, please use wildcard"
    );
    assert_eq!(
        msg(json!([{"name": "s", "exec": exe, "connect": ["t"]}])),
        "Non-existing node in connect t"
    );
    assert_eq!(
        msg(json!([{"name": "s", "exec": exe, "connect": ["s"]}])),
        "Cannot bind to itself: s"
    );
    assert_eq!(
        msg(json!([{"name": "s", "exec": exe, "count": 2}, {"name": "s-1", "exec": exe}])),
        "Duplicate node name s-1"
    );
    assert_eq!(
        msg(json!([{"name": "s", "exec": exe},
                   {"name": "s", "exec": exe}])),
        "Duplicate node name s"
    );
    assert_eq!(
        msg(json!([{"name": "s", "exec": exe,
                    "devices": [{"name": "stdout"}, {"name": "stdout"}]}])),
        "Duplicate channel /dev/stdout in s"
    );
    assert_eq!(
        msg(json!([{"name": "s", "exec": exe, "count": 2,
                    "devices": [{"name": "stdout", "path": "zvm://t:stdin"}]},
                   {"name": "t", "exec": exe}])),
        "Duplicate channel /dev/stdin in t"
    );
    assert_eq!(
        msg(json!([{"name": "s", "exec": exe,
                    "devices": [{"name": "stdin", "path": "swift://a/c_in1/input1"},
                                {"name": "input", "path": "swift://a/c_in2"}]}])),
        "Cannot use container /a/c_in2 as a remote object reference"
    );
    assert_eq!(
        msg(json!([{"name": "s", "exec": exe,
                    "devices": [{"name": "stdin", "path": "swift://a/c_in1/*"},
                                {"name": "input", "path": "swift://a/c_in2/*"}]}])),
        "Only one wildcard input device is allowed in s"
    );
    // Without captures, a star of a zvm:// device is the node name.
    let plan = run(
        json!([{"name": "s", "exec": exe, "count": 3,
                "devices": [{"name": "stdout", "path": "zvm://t:/dev/in-*-*"}]},
               {"name": "t", "exec": exe}]),
        &cat,
    )
    .unwrap();
    assert_eq!(
        plan.node("t").unwrap().connections[0].device,
        "/dev/in-s-1-s-1"
    );
    let mut small = opts();
    small.max_sessions = 3;
    assert_eq!(
        compile(
            &job(json!([{"name": "s", "exec": exe, "count": 4}])),
            &small,
            &NoCatalog
        )
        .unwrap_err()
        .to_string(),
        "Too many nodes in job: 4 (limit 3)"
    );
    let huge = compile(
        &job(json!([{"name": "s", "exec": exe, "count": 4_000_000_000u32}])),
        &small,
        &NoCatalog,
    );
    assert!(matches!(huge, Err(Error::TooManyNodes { .. })));
}

#[test]
fn zvm_wildcards_beyond_the_captures_fail() {
    let cat = MemoryCatalog::new().with_object("a", "c", "x.txt");
    let err = run(
        json!([
            {"name": "m", "exec": {"path": "swift://a/c/e"},
             "devices": [{"name": "input", "path": "swift://a/c/*.txt"},
                         {"name": "stdout", "path": "zvm://r:/dev/in-*-*"}]},
            {"name": "r", "exec": {"path": "swift://a/c/e"}}
        ]),
        &cat,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "Cannot resolve wildcard for node m-1");
}

#[test]
fn captured_names_cannot_break_channel_aliases() {
    let cat = MemoryCatalog::new().with_object("a", "c", "x,y.txt");
    let err = run(
        json!([
            {"name": "m", "exec": {"path": "swift://a/c/e"},
             "devices": [{"name": "input", "path": "swift://a/c/*.txt"},
                         {"name": "stdout", "path": "zvm://r:/dev/in-*"}]},
            {"name": "r", "exec": {"path": "swift://a/c/e"}}
        ]),
        &cat,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "Invalid manifest value: /dev/in-x,y");
}

#[test]
fn the_payload_goes_to_a_pathless_stdin() {
    let plan = run(
        json!([{"name": "n", "exec": {"path": "swift://a/c/e"},
                "devices": [{"name": "stdin"}, {"name": "stdout"}]},
               {"name": "m", "exec": {"path": "swift://a/c/e"},
                "devices": [{"name": "stdin", "path": "swift://a/c/o"}]}]),
        &NoCatalog,
    )
    .unwrap();
    assert_eq!(
        plan.nodes[0].payload_channel().map(|c| c.device.as_str()),
        Some("stdin")
    );
    assert!(plan.nodes[1].payload_channel().is_none());
}

#[test]
fn pseudo_directories_are_skipped_and_masks_match_whole_names() {
    let plan = run(
        sort_job("swift://a/c_in2/*", "swift://a/o/*"),
        &sort_catalog(),
    )
    .unwrap();
    let ins: Vec<String> = plan.nodes.iter().map(|n| path_of(n, "stdin")).collect();
    assert_eq!(ins, ["swift://a/c_in2/input1", "swift://a/c_in2/input2"]);
    // `in*` does not match `other`; `c_in*` matches c_in1 and c_in2 only.
    let plan = run(
        sort_job("swift://a/c_in1/in*", "swift://a/o/*"),
        &sort_catalog(),
    )
    .unwrap();
    assert_eq!(plan.nodes.len(), 2);
}

#[test]
fn a_container_wildcard_without_object_yields_containers() {
    let plan = run(
        json!([{"name": "q", "exec": {"path": "swift://a/c/e"},
                "devices": [{"name": "input", "path": "swift://a/c_in*"}, {"name": "stdout"}]}]),
        &sort_catalog(),
    )
    .unwrap();
    let ins: Vec<String> = plan.nodes.iter().map(|n| path_of(n, "input")).collect();
    assert_eq!(ins, ["swift://a/c_in1", "swift://a/c_in2"]);
    assert_eq!(plan.nodes[0].placement.path_info, "/a/c_in1");
    assert_eq!(plan.nodes[0].placement.attach, AttachMode::Read);
    assert!(plan.nodes[0]
        .placement
        .target
        .as_ref()
        .unwrap()
        .is_container());
}

#[test]
fn placement_rules() {
    let exe = json!({"path": "swift://a/c/e"});
    let mut o = opts();
    o.write_replicas = 3;
    let one =
        |v: Value, o: &CompileOptions| compile(&job(v), o, &NoCatalog).unwrap().nodes.remove(0);

    // Write-attached: replicated to the ring's replica count.
    let n = one(
        json!([{"name": "w", "exec": exe,
                        "devices": [{"name": "stdin"}, {"name": "stdout", "path": "swift://a/o/x"}]}]),
        &o,
    );
    assert_eq!(n.placement.attach, AttachMode::Write);
    assert_eq!(n.placement.attach.x_zerovm_access(), "PUT");
    assert_eq!((n.replicate, n.placement.path_info.as_str()), (3, "/a/o/x"));
    assert_eq!(n.remote_writes().count(), 0);

    // replicate: 0 un-attaches it and runs it once.
    let n = one(
        json!([{"name": "w", "exec": exe, "replicate": 0,
                        "devices": [{"name": "stdout", "path": "swift://a/o/x"}]}]),
        &o,
    );
    assert_eq!((n.placement.attach, n.replicate), (AttachMode::None, 1));
    assert_eq!(n.placement.path_info, "/a");
    assert_eq!(n.remote_writes().count(), 1);

    // ignore_replication.
    let mut ig = o.clone();
    ig.ignore_replication = true;
    let n = one(
        json!([{"name": "w", "exec": exe,
                        "devices": [{"name": "stdout", "path": "swift://a/o/x"}]}]),
        &ig,
    );
    assert_eq!((n.placement.attach, n.replicate), (AttachMode::Write, 1));

    // Reads win over writes; the first readable object as listed wins.
    let n = one(
        json!([{"name": "r", "exec": exe, "devices": [
        {"name": "stdout", "path": "swift://a/o/x"},
        {"name": "stdin", "path": "swift://a/i/1"},
        {"name": "input", "path": "swift://a/i/2"}]}]),
        &o,
    );
    assert_eq!(n.placement.attach.x_zerovm_access(), "GET");
    assert_eq!((n.placement.path_info.as_str(), n.replicate), ("/a/i/1", 1));
    let remote: Vec<String> = n.remote_reads().map(|c| c.device.clone()).collect();
    assert_eq!(remote, ["input"]);

    // A path-less stdin before the object does not hide it.
    let n = one(
        json!([{"name": "r", "exec": exe, "devices": [
        {"name": "stdin"}, {"name": "input", "path": "swift://a/i/2"}]}]),
        &o,
    );
    assert_eq!(n.placement.path_info, "/a/i/2");

    // script is not the default target when something else is.
    let n = one(
        json!([{"name": "r", "exec": exe, "devices": [
        {"name": "script", "path": "swift://a/s/1"}, {"name": "image", "path": "swift://a/i/img.tar"}]}]),
        &o,
    );
    assert_eq!(n.placement.path_info, "/a/i/img.tar");
    let n = one(
        json!([{"name": "r", "exec": exe, "devices": [
        {"name": "script", "path": "swift://a/s/1"}, {"name": "stdout"}]}]),
        &o,
    );
    assert_eq!(n.placement.path_info, "/a/s/1");

    // attach names a device.
    let n = one(
        json!([{"name": "r", "exec": exe, "attach": "stdout", "devices": [
        {"name": "stdin", "path": "swift://a/i/1"}, {"name": "stdout", "path": "swift://a/o/x"}]}]),
        &o,
    );
    assert_eq!((n.placement.attach, n.replicate), (AttachMode::Write, 3));
    assert_eq!(n.remote_reads().count(), 1);
    let n = one(
        json!([{"name": "r", "exec": exe, "attach": "nope", "devices": [
        {"name": "stdin", "path": "swift://a/i/1"}]}]),
        &o,
    );
    assert_eq!(
        (n.placement.attach, n.placement.channel),
        (AttachMode::None, None)
    );

    // No swift device at all.
    let n = one(
        json!([{"name": "r", "exec": exe, "devices": [{"name": "stdout"}]}]),
        &o,
    );
    assert_eq!(n.placement.attach, AttachMode::None);
    assert_eq!(n.placement.attach.x_zerovm_access(), "");
    assert_eq!(n.pool, Pool::Default);
    assert_eq!(n.location, None);
}

#[test]
fn user_image_is_added_once_per_node() {
    let mut o = opts();
    o.user_image = true;
    let plan = compile(
        &job(json!([
            {"name": "a", "exec": {"path": "file://bin/prog"}, "devices": [{"name": "stdout"}]},
            {"name": "b", "exec": {"path": "file://bin/prog"}, "devices": [{"name": "image"}, {"name": "stdout"}]}
        ])),
        &o,
        &NoCatalog,
    )
    .unwrap();
    for n in &plan.nodes {
        let images: Vec<&Channel> = n.channels.iter().filter(|c| c.device == "image").collect();
        assert_eq!(images.len(), 1, "{}", n.name);
        assert!(images[0].removable);
        assert_eq!(images[0].access, Access::CDR);
    }
    assert_eq!(plan.nodes[0].channels.last().unwrap().device, "image");
    assert_eq!(
        plan.nodes[0].channels.last().unwrap().content_type,
        "application/octet-stream"
    );
}

#[test]
fn replicas_are_known_to_peers_and_counted() {
    let mut o = opts();
    o.write_replicas = 3;
    let plan = compile(
        &job(json!([
            {"name": "w", "exec": {"path": "swift://a/c/e"},
             "devices": [{"name": "stdout", "path": "swift://a/o/x"}]},
            {"name": "s", "exec": {"path": "swift://a/c/e"}, "connect": ["w"]}
        ])),
        &o,
        &NoCatalog,
    )
    .unwrap();
    assert_eq!(plan.total_sessions(), 4);
    let s = plan.node("s").unwrap();
    assert_eq!(s.connections[0].peer_replicate, 3);
    let w = plan.node("w").unwrap();
    assert_eq!(w.connections[0].peer_replicate, 1);
}

#[test]
fn plans_round_trip_through_json() {
    let plan = run(mapreduce(), &mapreduce_catalog()).unwrap();
    let text = serde_json::to_string(&plan).unwrap();
    let back: JobPlan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, plan);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["nodes"][0]["placement"]["attach"], "read");
    assert_eq!(v["nodes"][0]["channels"][0]["access"], 5);
    assert_eq!(v["nodes"][3]["connections"][0]["direction"], "in");
}
