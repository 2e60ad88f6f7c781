//! Property tests: accepted jobs compile to the nodes, channels and
//! connections their groups define; nothing panics on any input.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{json, Value};
use sysmap::catalog::MemoryCatalog;
use sysmap::compile::{compile, CompileOptions};
use sysmap::job::Job;
use sysmap::location::Location;
use sysmap::plan::{Direction, JobPlan};
use sysmap::render::{manifest, nvram, LocalObject, RenderOptions, SessionFiles};

const GROUPS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
/// Objects in `acct/data`: what `swift://acct/data/x*` expands to.
const DATA: [&str; 3] = ["x1", "x2", "x3"];

fn catalog() -> MemoryCatalog {
    DATA.iter().fold(MemoryCatalog::new(), |c, o| {
        c.with_object("acct", "data", o)
    })
}

/// One generated group: its JSON and what it should compile to.
#[derive(Debug, Clone)]
struct GenGroup {
    json: Value,
    /// Nodes the group expands to.
    nodes: usize,
    /// Channels per node (devices without zvm:// paths).
    channels: usize,
    /// Groups this group's nodes send to (connect ∪ zvm targets).
    targets: BTreeSet<usize>,
}

fn group_strategy(index: usize, groups: usize) -> impl Strategy<Value = GenGroup> {
    (
        1u32..4,                                      // count
        0usize..3,                                    // stdin: none | wildcard | object
        0usize..4,                                    // stdout: none | wildcard out | zvm | absent
        any::<bool>(),                                // input object
        any::<bool>(),                                // system image
        any::<bool>(),                                // stderr immediate
        prop::collection::btree_set(0..groups, 0..3), // connect
        0usize..groups,                               // zvm target
        0u32..3,                                      // replicate
    )
        .prop_map(
            move |(count, stdin, stdout, input, sysimage, stderr, connect, zvm_to, replicate)| {
                let name = GROUPS[index];
                let mut devices = Vec::new();
                let wildcard = stdin == 1;
                match stdin {
                    1 => devices.push(json!({"name": "stdin", "path": "swift://acct/data/x*"})),
                    2 => devices.push(json!({"name": "stdin", "path": "swift://~/data/x1"})),
                    _ => devices.push(json!({"name": "stdin"})),
                }
                let mut targets: BTreeSet<usize> = connect.iter().copied().collect();
                let mut zvm = false;
                match stdout {
                    0 => devices.push(json!({"name": "stdout"})),
                    1 => devices.push(json!({"name": "stdout", "path": "swift://acct/out/*.res"})),
                    2 => {
                        zvm = true;
                        targets.insert(zvm_to);
                        devices.push(json!({"name": "stdout",
                            "path": format!("zvm://{}:/dev/from-*", GROUPS[zvm_to])}));
                    }
                    _ => {}
                }
                if input {
                    devices.push(json!({"name": "input", "path": "swift://acct/data/x2"}));
                }
                if sysimage {
                    devices.push(json!({"name": "python2.7"}));
                }
                if stderr {
                    devices.push(json!({"name": "stderr", "content_type": "text/plain"}));
                }
                let channels = devices.len() - usize::from(zvm);
                let connect: Vec<&str> = connect.iter().map(|&i| GROUPS[i]).collect();
                GenGroup {
                    json: json!({
                        "name": name,
                        "exec": {"path": "swift://~/bin/prog.wasm", "args": "--flag"},
                        "devices": devices,
                        "count": count,
                        "connect": connect,
                        "replicate": replicate,
                    }),
                    nodes: if wildcard { DATA.len() } else { count as usize },
                    channels,
                    targets,
                }
            },
        )
}

fn job_strategy() -> impl Strategy<Value = (Vec<GenGroup>, bool)> {
    (1usize..=GROUPS.len()).prop_flat_map(|n| {
        let groups: Vec<_> = (0..n).map(|i| group_strategy(i, n)).collect();
        (groups, any::<bool>())
    })
}

/// Node names of each group in the plan.
fn nodes_by_group(plan: &JobPlan) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in &plan.nodes {
        out.entry(n.group.clone()).or_default().push(n.name.clone());
    }
    out
}

fn render_all(plan: &JobPlan) {
    let opts = RenderOptions {
        sysimages: ["python2.7".to_string()].into(),
        ..RenderOptions::default()
    };
    for node in &plan.nodes {
        let files = SessionFiles {
            program: "/p/prog.wasm".into(),
            nvram: "/p/nvram".into(),
            channels: node
                .channels
                .iter()
                .map(|c| (c.device.clone(), format!("/p/{}", c.device)))
                .collect(),
            dev_self: true,
            ..SessionFiles::default()
        };
        let m = manifest(node, &opts, &files).expect("every channel is resolved");
        for line in m.lines() {
            assert_eq!(line.matches('=').count(), 1, "{line}");
            if let Some(ch) = line.strip_prefix("Channel=") {
                assert_eq!(ch.split(',').count(), 8, "{line}");
            }
        }
        let channel_lines = m.lines().filter(|l| l.starts_with("Channel=")).count();
        // channels + connections + missing std devices + self + nvram
        assert!(channel_lines >= node.channels.len() + node.connections.len() + 2);
        let n = nvram(node, &opts, Some(&LocalObject::default())).expect("nvram renders");
        assert!(n.contains("[args]\nargs = "));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(800))]

    #[test]
    fn accepted_jobs_match_their_groups((groups, user_image) in job_strategy()) {
        let json = Value::Array(groups.iter().map(|g| g.json.clone()).collect());
        let job = Job::from_value(&json).expect("generated jobs parse");
        let mut opts = CompileOptions::new("acct");
        opts.user_image = user_image;
        opts.write_replicas = 3;
        let Ok(plan) = compile(&job, &opts, &catalog()) else {
            // Rejections (duplicate aliases, single paths...) are tested elsewhere.
            return Ok(());
        };
        let by_group = nodes_by_group(&plan);
        let total: usize = groups.iter().map(|g| g.nodes).sum();
        prop_assert_eq!(plan.nodes.len(), total);
        for (i, node) in plan.nodes.iter().enumerate() {
            prop_assert_eq!(node.id as usize, i + 1);
            prop_assert_eq!(node.node_count as usize, total);
            prop_assert!(node.replicate >= 1);
        }
        for (gi, g) in groups.iter().enumerate() {
            let names = by_group.get(GROUPS[gi]).cloned().unwrap_or_default();
            prop_assert_eq!(names.len(), g.nodes);
            for name in &names {
                let node = plan.node(name).unwrap();
                prop_assert_eq!(node.channels.len(), g.channels + usize::from(user_image));
                // Expected receivers of this node.
                let mut want: BTreeSet<String> = BTreeSet::new();
                for &t in &g.targets {
                    for peer in by_group.get(GROUPS[t]).into_iter().flatten() {
                        if peer != name {
                            want.insert(peer.clone());
                        }
                    }
                }
                let got: BTreeSet<String> = node.connections.iter()
                    .filter(|c| c.direction == Direction::Out)
                    .map(|c| c.peer.clone())
                    .collect();
                prop_assert_eq!(&got, &want, "outputs of {}", name);
                // Every Out has its In on the peer, with the peer's ids.
                for c in node.connections.iter().filter(|c| c.direction == Direction::Out) {
                    let peer = plan.node(&c.peer).unwrap();
                    prop_assert_eq!(c.peer_id, peer.id);
                    prop_assert_eq!(c.peer_replicate, peer.replicate);
                    prop_assert!(peer.connections.iter().any(|i| i.direction == Direction::In && &i.peer == name));
                }
            }
        }
        let outs = plan.nodes.iter().flat_map(|n| &n.connections).filter(|c| c.direction == Direction::Out).count();
        let ins = plan.nodes.iter().flat_map(|n| &n.connections).filter(|c| c.direction == Direction::In).count();
        prop_assert_eq!(outs, ins);
        let back: JobPlan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        prop_assert_eq!(&back, &plan);
        render_all(&plan);
    }
}

/// Any JSON value, biased towards the keys a job uses.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("name".to_string()),
        Just("exec".to_string()),
        Just("path".to_string()),
        Just("devices".to_string()),
        Just("file_list".to_string()),
        Just("device".to_string()),
        Just("count".to_string()),
        Just("connect".to_string()),
        Just("args".to_string()),
        Just("env".to_string()),
        Just("replicate".to_string()),
        Just("attach".to_string()),
        Just("mode".to_string()),
        Just("meta".to_string()),
        "[a-z]{1,3}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u64..5).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("stdin".to_string()),
            Just("stdout".to_string()),
            Just("input".to_string()),
            Just("image".to_string()),
            Just("python2.7".to_string()),
            Just("swift://a/c/o".to_string()),
            Just("swift://~/c/*".to_string()),
            Just("zvm://n:stdin".to_string()),
            Just("file://img:x".to_string()),
            Just("tcp://h:1".to_string()),
            Just("n".to_string()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsing_compiling_and_rendering_never_panic(v in any_json()) {
        let Ok(job) = Job::from_value(&v) else { return Ok(()) };
        let Ok(plan) = compile(&job, &CompileOptions::new("a"), &catalog()) else { return Ok(()) };
        for node in &plan.nodes {
            let _ = manifest(node, &RenderOptions::default(), &SessionFiles::default());
            let _ = nvram(node, &RenderOptions::default(), Some(&LocalObject::default()));
        }
    }

    #[test]
    fn parsing_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Job::from_json(&bytes);
    }

    #[test]
    fn locations_round_trip(url in "(swift|file|zvm|tcp|udp|cache)://[a-z~.*:/]{0,16}") {
        if let Some(loc) = Location::parse(&url) {
            prop_assert_eq!(Location::parse(&loc.url()), Some(loc));
        }
    }

    #[test]
    fn zapp_yaml_never_panics(text in "(execution|groups|name|path|args|devices|-|:|\\[|\\]|\\{|\\}| |\n|'|\"|a|file://x:y){0,40}") {
        let _ = sysmap::zapp::job_from_zapp_yaml(&text);
    }
}
