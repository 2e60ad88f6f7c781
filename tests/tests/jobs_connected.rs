//! Connected jobs (`connect`): sessions on different storage nodes stream to
//! each other. The seed's MapReduce wordcount (mapper and reducer ported to
//! Python 3) on three object servers, each input file on its own server.
//! Needs `$ZEROCLOUD_IMAGES` with the Python image (scripts/test.sh).

mod common;

use common::mk_container;
use tests::{Cluster, Session};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mapreduce");

fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).expect("tar member");
    }
    b.into_inner().expect("tar")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/{name}")).expect("test data")
}

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

async fn post_zapp(s: &Session, zapp: Vec<u8>) -> tests::Resp {
    s.req(
        "POST",
        "",
        &[
            ("x-zerovm-execute", "1.0"),
            ("content-type", "application/x-tar"),
        ],
        zapp,
    )
    .await
}

const MAPREDUCE: &str = r#"[
  {"name": "map", "exec": {"path": "file://python2.7:python", "args": "mapper.py"},
   "devices": [{"name": "python2.7"}, {"name": "stdout"},
               {"name": "input", "path": "swift://~/mapreduce-data/*.txt"}],
   "connect": ["reduce"]},
  {"name": "reduce", "exec": {"path": "file://python2.7:python", "args": "reducer.py"},
   "devices": [{"name": "python2.7"}, {"name": "stdout"}]}
]"#;

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
    mk_container(&s, "mapreduce-data").await;
    for f in files {
        let r = s
            .req("PUT", &format!("/mapreduce-data/{f}"), &[], read(f))
            .await;
        assert_eq!(r.status, 201);
    }
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
    let mut distinct = holders.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{holders:?}");

    let zapp = tar_of(&[
        ("boot/system.map", MAPREDUCE.as_bytes()),
        ("mapper.py", &read("mapper.py")),
        ("reducer.py", &read("reducer.py")),
    ]);
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
