//! Property tests: the manifest, NVRAM and tar parsers never panic on any
//! input, NVRAM and manifests survive render → parse, and accepted tar images
//! keep their invariants (confined paths, directories above every path).

use proptest::prelude::*;
use sandbox::manifest::{
    ChannelSpec, HostKind, Limits, Manifest, Memory, NetHost, NetworkUri, Protocol, Source,
};
use sandbox::nvram::{Access, EnvVar, FstabEntry, Mapping, MappingMode, Nvram};
use sandbox::tar::{EntryKind, TarImage, BLOCK};
use std::net::Ipv4Addr;

// ---------- manifest ----------

/// Lines that look like manifest lines, valid or nearly so.
fn manifest_line() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("Version"),
        Just("Program"),
        Just("Timeout"),
        Just("Memory"),
        Just("Channel"),
        Just("NameServer"),
        Just("Node"),
        Just("Job"),
        Just("Etag"),
        Just("version"),
        Just("#Timeout"),
    ];
    let token = prop_oneof![
        Just("20130611".to_string()),
        Just("0x10".to_string()),
        Just("010".to_string()),
        Just("-1".to_string()),
        Just("9223372036854775808".to_string()),
        Just("/dev/stdin".to_string()),
        Just("/dev/stdout".to_string()),
        Just("/dev/stderr".to_string()),
        Just("tcp:1:".to_string()),
        Just("udp:10.0.0.1:5".to_string()),
        Just("tcp:1.2.3.4:70000".to_string()),
        Just("/a;/b".to_string()),
        "[ -~]{0,12}",
        (0i64..5).prop_map(|n| n.to_string()),
    ];
    (key, prop::collection::vec(token, 1..10), any::<bool>()).prop_map(|(k, tokens, spaced)| {
        let sep = if spaced { " , " } else { "," };
        format!("{k} = {}", tokens.join(sep))
    })
}

fn probe(path: &str) -> Option<HostKind> {
    match path.len() % 5 {
        0 => None,
        1 => Some(HostKind::Regular { size: 3 }),
        2 => Some(HostKind::CharDevice),
        3 => Some(HostKind::Fifo),
        _ => Some(HostKind::Directory),
    }
}

fn without_line_numbers(mut m: Manifest) -> Manifest {
    for c in &mut m.channels {
        c.line = 0;
    }
    m
}

fn network_uri() -> impl Strategy<Value = NetworkUri> {
    let protocol = prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Ipc),
        Just(Protocol::Inproc),
        Just(Protocol::Pgm),
        Just(Protocol::Epgm),
    ];
    let host = prop_oneof![
        (1u32..).prop_map(|ip| NetHost::Ip(Ipv4Addr::from(ip))),
        any::<u32>().prop_map(NetHost::Node),
    ];
    (protocol, host, any::<u16>()).prop_map(|(protocol, host, port)| NetworkUri {
        protocol,
        host,
        port,
    })
}

fn limit() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..3, 0..=i64::MAX as u64]
}

fn channel_spec() -> impl Strategy<Value = ChannelSpec> {
    let source = prop_oneof![
        "/[a-zA-Z0-9._/ -]{0,12}".prop_map(|p| Source::Local(p.trim_end().to_string())),
        network_uri().prop_map(Source::Network),
    ];
    (
        prop::collection::vec(source, 1..4),
        "([!-+\\--<>-~]([ -+\\--<>-~]{0,8}[!-+\\--<>-~])?)?",
        any::<i64>(),
        any::<bool>(),
        (limit(), limit(), limit(), limit()),
    )
        .prop_map(
            |(sources, alias, type_number, etag, (gets, get_size, puts, put_size))| ChannelSpec {
                line: 0,
                sources,
                alias,
                type_number,
                etag,
                limits: Limits {
                    gets,
                    get_size,
                    puts,
                    put_size,
                },
            },
        )
}

fn typed_manifest() -> impl Strategy<Value = Manifest> {
    (
        "([!-<>-~]([ -<>-~]{0,16}[!-<>-~])?)?",
        any::<i64>(),
        (any::<i64>(), any::<bool>()),
        prop::collection::vec(channel_spec(), 0..6),
        prop::option::of(network_uri()),
        prop::option::of(any::<i64>()),
        prop::option::of("/[a-z0-9/._-]{0,100}"),
        prop::option::of("[a-z0-9]{0,10}"),
    )
        .prop_map(
            |(program, timeout, (size, etag), channels, name_server, node, job, tag)| Manifest {
                version: "20130611".into(),
                program,
                timeout,
                memory: Memory { size, etag },
                channels,
                name_server,
                node,
                job,
                etag: tag,
            },
        )
}

proptest! {
    #[test]
    fn manifest_typed_render_then_parse_is_identity(m in typed_manifest()) {
        let text = m.render();
        let back = Manifest::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(without_line_numbers(back), without_line_numbers(m.clone()));
        let _ = m.check(&probe);
    }

    #[test]
    fn manifest_parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(m) = Manifest::parse(&bytes) {
            let _ = m.check(&probe);
        }
    }

    #[test]
    fn manifest_parse_and_check_never_panic_and_render_round_trips(
        lines in prop::collection::vec(manifest_line(), 0..24),
        crlf in any::<bool>(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let text = lines.join(eol);
        if let Ok(m) = Manifest::parse(text.as_bytes()) {
            let _ = m.check(&probe);
            let again = Manifest::parse(m.render().as_bytes());
            prop_assert_eq!(again.map(without_line_numbers), Ok(without_line_numbers(m)));
        }
    }
}

// ---------- NVRAM ----------

/// Text with every character NVRAM has to escape.
fn value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,=#\\\\\"\\[\\]/\t\r\n\u{0}é€._-]{0,16}"
}

fn non_empty() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,=#\\\\\"\\[\\]/\t\r\n\u{0}é€._-]{1,16}"
}

fn nvram() -> impl Strategy<Value = Nvram> {
    let env = prop::collection::vec(
        (non_empty(), value()).prop_map(|(name, value)| EnvVar { name, value }),
        0..8,
    );
    let fstab = prop::collection::vec(
        (
            non_empty(),
            non_empty(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just("tar".to_string()), non_empty()],
        )
            .prop_map(|(channel, mountpoint, wo, removable, fsname)| FstabEntry {
                channel,
                mountpoint,
                access: if wo {
                    Access::WriteOnly
                } else {
                    Access::ReadOnly
                },
                removable,
                fsname,
            }),
        0..4,
    );
    let mapping = prop::collection::vec(
        (non_empty(), 0..3u8).prop_map(|(channel, m)| Mapping {
            channel,
            mode: [MappingMode::Char, MappingMode::Pipe, MappingMode::File][usize::from(m)],
        }),
        0..4,
    );
    (
        prop::collection::vec(non_empty(), 0..8),
        env,
        fstab,
        mapping,
        prop::option::of(any::<i64>()),
        prop::option::of(any::<i64>()),
        prop::option::of(value()),
    )
        .prop_map(
            |(args, env, fstab, mapping, debug_verbosity, time, precache)| Nvram {
                args,
                env,
                fstab,
                mapping,
                debug_verbosity,
                time,
                precache,
            },
        )
}

proptest! {
    #[test]
    fn nvram_parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..12000)) {
        let (_, diagnostics) = Nvram::parse_lenient(&bytes);
        let strict = Nvram::parse(&bytes);
        prop_assert_eq!(strict.is_ok(), diagnostics.is_empty());
    }

    #[test]
    fn nvram_parse_never_panics_on_nvram_like_text(
        lines in prop::collection::vec(
            prop_oneof![
                Just("[args]".to_string()),
                Just("[env]".to_string()),
                Just("[fstab]".to_string()),
                Just("[mapping]".to_string()),
                Just("[time]".to_string()),
                "\\[[a-z]{0,8}\\]?",
                "[a-z]{1,6}=[ -~]{0,10}(, ?[a-z]{1,6}=[ -~]{0,10}){0,6}",
                "[ -~]{0,20}",
            ],
            0..40,
        )
    ) {
        let _ = Nvram::parse_lenient(lines.join("\n").as_bytes());
    }

    #[test]
    fn nvram_render_then_parse_is_identity(n in nvram()) {
        let text = n.render().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Nvram::parse(text.as_bytes()), Ok(n));
    }
}

// ---------- tar ----------

fn header(name: &[u8], flag: u8, size: usize, link: &[u8]) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let name = &name[..name.len().min(100)];
    h[..name.len()].copy_from_slice(name);
    h[100..107].copy_from_slice(b"0000644");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = flag;
    let link = &link[..link.len().min(100)];
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[derive(Debug, Clone)]
struct Spec {
    name: String,
    flag: u8,
    data: Vec<u8>,
    link: String,
}

fn path_part() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        "[a-c]{1,3}",
    ]
}

fn tar_path() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(path_part(), 1..4))
        .prop_map(|(abs, parts)| format!("{}{}", if abs { "/" } else { "" }, parts.join("/")))
}

fn tar_spec() -> impl Strategy<Value = Spec> {
    (
        tar_path(),
        prop_oneof![Just(b'0'), Just(b'5'), Just(b'2'), Just(b'1'), Just(b'3')],
        prop::collection::vec(any::<u8>(), 0..600),
        tar_path(),
    )
        .prop_map(|(name, flag, data, link)| Spec {
            data: if flag == b'0' { data } else { Vec::new() },
            name,
            flag,
            link,
        })
}

fn build(specs: &[Spec]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in specs {
        out.extend_from_slice(&header(
            s.name.as_bytes(),
            s.flag,
            s.data.len(),
            s.link.as_bytes(),
        ));
        out.extend_from_slice(&s.data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    }
    out.extend_from_slice(&[0u8; 2 * BLOCK]);
    out
}

/// Walks every accepted image: each lookup answers without panicking, and
/// the index keeps its promises.
fn check_invariants(img: &TarImage<Vec<u8>>, len: usize) -> Result<(), TestCaseError> {
    let paths: Vec<(String, sandbox::tar::Entry)> = img
        .entries()
        .map(|(p, e)| (p.to_string(), e.clone()))
        .collect();
    for (path, entry) in &paths {
        prop_assert!(!path.starts_with('/'));
        prop_assert!(path.split('/').all(|c| c != ".." && c != "."));
        if !path.is_empty() {
            prop_assert!(!path.split('/').any(str::is_empty));
            let parent = path.rfind('/').map_or("", |i| &path[..i]);
            prop_assert!(img.get(parent).is_some_and(|p| p.is_dir()), "{path}");
        }
        match &entry.kind {
            EntryKind::File => {
                prop_assert!(entry.offset + entry.size <= len as u64);
                prop_assert_eq!(img.contents(entry).len() as u64, entry.size);
            }
            EntryKind::Symlink(target) => {
                prop_assert!(!target.starts_with('/'));
            }
            EntryKind::Directory => {
                let _ = img.list_dir(path);
            }
        }
        let _ = img.stat(path);
        let mut buf = [0u8; 64];
        let _ = img.read_at(path, 3, &mut buf);
        let _ = img.resolve(&format!("{path}/../x/.."), true);
    }
    Ok(())
}

proptest! {
    #[test]
    fn tar_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let len = bytes.len();
        if let Ok(img) = TarImage::new(bytes) {
            check_invariants(&img, len)?;
        }
    }

    #[test]
    fn tar_generated_archives_keep_invariants(specs in prop::collection::vec(tar_spec(), 0..8)) {
        let bytes = build(&specs);
        let len = bytes.len();
        if let Ok(img) = TarImage::new(bytes) {
            check_invariants(&img, len)?;
        }
    }

    #[test]
    fn tar_mutated_archives_never_panic(
        specs in prop::collection::vec(tar_spec(), 1..6),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut bytes = build(&specs);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if do_cut {
            let keep = cut.index(bytes.len());
            bytes.truncate(keep);
        }
        let len = bytes.len();
        if let Ok(img) = TarImage::new(bytes) {
            check_invariants(&img, len)?;
        }
    }
}
