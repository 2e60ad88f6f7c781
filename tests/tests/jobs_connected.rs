//! Connected jobs (`connect`): sessions on different storage nodes stream to
//! each other. The seed's MapReduce wordcount (mapper and reducer ported to
//! Python 3) on three object servers, each input file on its own server.
//! Needs `$ZEROCLOUD_IMAGES` with the Python image (scripts/test.sh).

mod common;

use common::{
    mk_container, post_zapp, store_wordcount_inputs, tar_of, wordcount_zapp, WORDCOUNT_MAP,
};
use tests::{Cluster, Server, Session};

/// The ring's node index of `path` for `suffix` (the proxy's placement:
/// md5(path + suffix), the top `part_power` bits, modulo the nodes).
fn ring_node(path: &str, suffix: &str, nodes: usize) -> usize {
    use md5::{Digest, Md5};
    let d = Md5::new()
        .chain_update(path.as_bytes())
        .chain_update(suffix.as_bytes())
        .finalize();
    let part = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) >> (32 - 10);
    part as usize % nodes
}

/// A hash suffix that puts each of `paths` on a node of its own.
fn spreading_suffix(paths: &[String], nodes: usize) -> String {
    (0..10_000)
        .map(|i| format!("zc-test-{i}"))
        .find(|s| {
            let mut seen: Vec<usize> = paths.iter().map(|p| ring_node(p, s, nodes)).collect();
            seen.sort();
            seen.dedup();
            seen.len() == paths.len()
        })
        .expect("a suffix that spreads the inputs")
}

#[tokio::test]
async fn the_seed_mapreduce_wordcount_runs_across_three_servers() {
    let files = ["mrdata1.txt", "mrdata2.txt", "mrdata3.txt"];
    let paths: Vec<String> = files
        .iter()
        .map(|f| format!("/AUTH_test/mapreduce-data/{f}"))
        .collect();
    let suffix = spreading_suffix(&paths, 3);
    let cluster = Cluster::start_with(3, "", &format!("[ring]\nhash_suffix = \"{suffix}\"\n"));
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    store_wordcount_inputs(&s).await;
    // Each input on a server of its own.
    let holders: Vec<String> = files
        .iter()
        .map(|f| {
            cluster
                .holder_of("AUTH_test", "mapreduce-data", f)
                .expect("stored")
                .addr
                .clone()
        })
        .collect();
    // (Our ring's suffix spreads them; Swift's ring places them itself.)
    let mut distinct = holders.clone();
    distinct.sort();
    distinct.dedup();
    if !tests::on_swift() {
        assert_eq!(distinct.len(), 3, "{holders:?}");
    }

    let zapp = wordcount_zapp(WORDCOUNT_MAP);
    let r = post_zapp(&s, zapp).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    let lines: Vec<String> = r.text().lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(
        lines,
        [
            "104 mapreduce-data/mrdata1.txt",
            "101 mapreduce-data/mrdata2.txt",
            "69 mapreduce-data/mrdata3.txt",
            "274 total"
        ]
    );
    assert_eq!(r.header("x-nexe-system"), "map-1,map-2,map-3,reduce");
    // Each map node ran on the server holding its input.
    let servers: Vec<&str> = r.header("x-nexe-server").split(',').collect();
    assert_eq!(
        servers[..3],
        holders.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
}

#[tokio::test]
async fn mappers_with_replicate_2_feed_the_reducer_through_multichannels() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    store_wordcount_inputs(&s).await;
    let map = WORDCOUNT_MAP.replacen(
        r#""connect": ["reduce"]"#,
        r#""connect": ["reduce"], "replicate": 2"#,
        1,
    );
    assert_ne!(map, WORDCOUNT_MAP);
    let zapp = wordcount_zapp(&map);
    let r = post_zapp(&s, zapp).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    let lines: Vec<String> = r.text().lines().map(|l| l.trim().to_string()).collect();
    // Each mapper ran twice; the reducer read each pair as one stream.
    assert_eq!(
        lines,
        [
            "104 mapreduce-data/mrdata1.txt",
            "101 mapreduce-data/mrdata2.txt",
            "69 mapreduce-data/mrdata3.txt",
            "274 total"
        ]
    );
    let statuses: Vec<&str> = r.header("x-nexe-status").split(',').collect();
    assert_eq!(statuses.len(), 7, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == "ok"), "{statuses:?}");
}

/// A zapp of groups `a` → `b` → `c`, one node each, running `a.py`,
/// `b.py` and `c.py`; `c` prints.
fn pipeline_zapp(a: &str, b: &str, c: &str) -> Vec<u8> {
    let map = serde_json::json!([
        {"name": "a", "exec": {"path": "file://python:python", "args": "a.py"},
         "devices": [{"name": "python"}], "connect": ["b"]},
        {"name": "b", "exec": {"path": "file://python:python", "args": "b.py"},
         "devices": [{"name": "python"}], "connect": ["c"]},
        {"name": "c", "exec": {"path": "file://python:python", "args": "c.py"},
         "devices": [{"name": "python"}, {"name": "stdout"}]},
    ])
    .to_string();
    tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("a.py", a.as_bytes()),
        ("b.py", b.as_bytes()),
        ("c.py", c.as_bytes()),
    ])
}

const A: &str = "out = open('/dev/out/b', 'w')\nfor i in range(1, 10001):\n    out.write(f'{i}\\n')\nout.close()\n";
const B: &str = "out = open('/dev/out/c', 'w')\nfor line in open('/dev/in/a'):\n    out.write(f'{int(line) * 2}\\n')\nout.close()\n";
const C: &str =
    "lines = open('/dev/in/b').read().split()\nprint(len(lines), sum(int(x) for x in lines))\n";

#[tokio::test]
async fn a_pipeline_of_three_groups_streams_through_each() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let r = post_zapp(&s, pipeline_zapp(A, B, C)).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    // 10,000 numbers doubled: 2 * 50,005,000.
    assert_eq!(r.text().trim(), "10000 100010000");
    assert_eq!(r.header("x-nexe-system"), "a,b,c");
    assert_eq!(r.header("x-nexe-status"), "ok,ok,ok");
    // Three sessions on three servers (unattached nodes take turns).
    let mut servers: Vec<&str> = r.header("x-nexe-server").split(',').collect();
    servers.sort();
    servers.dedup();
    assert_eq!(servers.len(), 3, "{}", r.header("x-nexe-server"));
}

#[tokio::test]
async fn a_peer_that_dies_mid_stream_ends_its_readers_stream_and_is_named() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    // `a` sends 500 lines, then dies without closing anything.
    let dying = "import os\nout = open('/dev/out/b', 'w')\nfor i in range(1, 501):\n    out.write(f'{i}\\n')\nout.flush()\nos._exit(7)\n";
    let r = post_zapp(&s, pipeline_zapp(dying, B, C)).await;
    // b and c see the end of a's data where it stopped; the job's status
    // names the node that failed.
    assert_eq!(r.header("x-nexe-system"), "a,b,c");
    let statuses: Vec<&str> = r.header("x-nexe-status").split(',').collect();
    let retcodes: Vec<&str> = r.header("x-nexe-retcode").split(',').collect();
    assert_eq!(retcodes[0], "7", "{:?}", r.headers);
    assert_eq!(statuses[1..], ["ok", "ok"], "{:?}", r.headers);
    assert!(r.text().contains("500 250500"), "{}", r.text());
    assert_ne!(r.status, 200);
}

#[tokio::test]
async fn connected_jobs_larger_than_the_cluster_slots_are_refused_whole_and_never_hang() {
    // 2 slots for connected sessions on each of 3 servers: 6 in all.
    let cluster = Cluster::start_with(3, "[exec]\ncluster_workers = 2\n", "");
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let big = serde_json::json!([
        {"name": "map", "count": 20, "exec": {"path": "file://python:python", "args": "m.py"},
         "devices": [{"name": "python"}], "connect": ["reduce"]},
        {"name": "reduce", "exec": {"path": "file://python:python", "args": "r.py"},
         "devices": [{"name": "python"}, {"name": "stdout"}]},
    ]);
    let m =
        "import os\nopen('/dev/out/reduce', 'w').write(os.environ.get('HOSTNAME', 'x') + '\\n')\n";
    let r_py = "import os\nprint(len(os.listdir('/dev/in')))\n";
    let zapp = tar_of(&[
        ("boot/system.map", big.to_string().as_bytes()),
        ("m.py", m.as_bytes()),
        ("r.py", r_py.as_bytes()),
    ]);
    // A hang would fail the request (the test client gives up after 60 s).
    let r = post_zapp(&s, zapp).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("Slot not available"), "{}", r.text());
    // Nothing stays held: a connected job that fits runs right after.
    let r = post_zapp(&s, pipeline_zapp(A, B, C)).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text().trim(), "10000 100010000");
}

/// On `zerocloud up`'s defaults every node of a connected job runs on the
/// one storage node: 24 mappers and a reducer fit (`cluster_workers` 32),
/// most of their workers started on demand (`cluster_prestart` 4).
#[tokio::test]
async fn on_the_defaults_a_25_node_mapreduce_runs_on_one_server() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    let job = serde_json::json!([
        {"name": "map", "count": 24, "exec": {"path": "file://python:python", "args": "m.py"},
         "devices": [{"name": "python"}], "connect": ["reduce"]},
        {"name": "reduce", "exec": {"path": "file://python:python", "args": "r.py"},
         "devices": [{"name": "python"}, {"name": "stdout"}]},
    ]);
    let m = "open('/dev/out/reduce', 'w').write('1\\n')\n";
    let r_py = "import os\nprint(len(os.listdir('/dev/in')), sum(int(open('/dev/in/' + f).read()) for f in os.listdir('/dev/in')))\n";
    let zapp = tar_of(&[
        ("boot/system.map", job.to_string().as_bytes()),
        ("m.py", m.as_bytes()),
        ("r.py", r_py.as_bytes()),
    ]);
    let r = post_zapp(&s, zapp).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text().trim(), "24 24");
}

#[tokio::test]
async fn a_reducer_that_times_out_after_its_mappers_finish_stores_nothing() {
    let cluster = Cluster::start_with(3, "", "[zerocloud]\ntimeout = 2\n");
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    mk_container(&s, "results").await;
    let job = serde_json::json!([
        {"name": "map", "count": 2, "exec": {"path": "file://python:python", "args": "m.py"},
         "devices": [{"name": "python"}], "connect": ["reduce"]},
        {"name": "reduce", "exec": {"path": "file://python:python", "args": "r.py"},
         "devices": [{"name": "python"},
                     {"name": "stdout", "path": "swift://~/results/total.txt"}]},
    ]);
    let m = "open('/dev/out/reduce', 'w').write('x' * 1000)\n";
    // Writes part of its output, then runs past the timeout.
    let r_py = "import os\nfor f in os.listdir('/dev/in'):\n    open('/dev/in/' + f).read()\nprint('partial', flush=True)\nwhile True:\n    pass\n";
    let zapp = tar_of(&[
        ("boot/system.map", job.to_string().as_bytes()),
        ("m.py", m.as_bytes()),
        ("r.py", r_py.as_bytes()),
    ]);
    let r = post_zapp(&s, zapp).await;
    let statuses: Vec<&str> = r.header("x-nexe-status").split(',').collect();
    assert_eq!(statuses.len(), 3, "{:?}", r.headers);
    assert_eq!(statuses[..2], ["ok", "ok"], "{:?}", r.headers);
    assert!(statuses[2].contains("timeout"), "{:?}", r.headers);
    assert_ne!(r.status, 200);
    let got = s.req("GET", "/results/total.txt", &[], Vec::new()).await;
    assert_eq!(
        got.status,
        404,
        "a partial output was stored: {}",
        got.text()
    );
    let listing = s.req("GET", "/results", &[], Vec::new()).await;
    assert!(listing.text().is_empty(), "{}", listing.text());
}
