//! `zpm bundle`: the project root, zapp.yaml read with line numbers, the
//! `bundling` and `ui` glob rules, and the `.zapp` itself (a gzipped tar
//! with `boot/system.map` first, then `zapp.yaml`, then the files).

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use serde_yaml::Value as Yaml;

use crate::log;

/// Name of the file that marks a project's root.
pub const ZAPP_YAML: &str = "zapp.yaml";
/// Where the job description sits in a zapp.
pub const SYSTEM_MAP: &str = "boot/system.map";

/// The nearest directory at or above `start` holding a zapp.yaml.
pub fn find_root(start: &Path) -> Result<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(ZAPP_YAML).is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("no {ZAPP_YAML} file found in {} or above", start.display()))
}

/// Parses zapp.yaml text; a syntax error names its line:
/// `zapp.yaml: line 7: <what>`.
pub fn parse_zapp_yaml(text: &str, label: &str) -> Result<Yaml> {
    let yaml: Yaml = serde_yaml::from_str(text).map_err(|e| match e.location() {
        Some(at) => anyhow!("{label}: line {}: {e}", at.line()),
        None => anyhow!("{label}: {e}"),
    })?;
    if !yaml.is_mapping() {
        bail!("{label}: the file must be a mapping (execution:, meta:, bundling: ...)");
    }
    Ok(yaml)
}

/// `meta.name`, the zapp's name and the stem of its file name.
pub fn zapp_name(zapp: &Yaml) -> Result<String> {
    let name = zapp
        .get("meta")
        .and_then(|m| m.get("name"))
        .and_then(Yaml::as_str)
        .unwrap_or("");
    if name.is_empty() {
        bail!("{ZAPP_YAML}: meta.name must be set: it names the .zapp file");
    }
    if name.contains('/') || name.contains('\0') || name == "." || name == ".." {
        bail!("{ZAPP_YAML}: meta.name {name:?} cannot be a file name");
    }
    Ok(name.to_string())
}

/// The list of strings in top-level `section` (empty when absent).
pub fn patterns(zapp: &Yaml, section: &str) -> Result<Vec<String>> {
    match zapp.get(section) {
        None | Some(Yaml::Null) => Ok(Vec::new()),
        Some(Yaml::Sequence(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_string).ok_or_else(|| {
                    anyhow!("{ZAPP_YAML}: '{section}' must be a list of file patterns")
                })
            })
            .collect(),
        Some(_) => bail!("{ZAPP_YAML}: '{section}' must be a list of file patterns"),
    }
}

/// Refuses python `dependencies`: the original installed them from PyPI
/// with tox into the zapp; zpm does not.
pub fn check_dependencies(zapp: &Yaml) -> Result<()> {
    match zapp.get("dependencies") {
        None | Some(Yaml::Null) => Ok(()),
        Some(Yaml::Sequence(s)) if s.is_empty() => Ok(()),
        Some(_) => bail!(
            "{ZAPP_YAML}: 'dependencies' is not supported: zpm does not install packages. \
             Copy the pure-Python modules or packages you need into the project and list \
             them under 'bundling' (for example \"mypkg/**/*.py\"); they are then importable \
             next to your program"
        ),
    }
}

/// Whether `pattern` has glob syntax (`*`, `?`, `[`).
pub fn has_glob_chars(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Refuses a pattern that could name something outside the project: an
/// absolute path or one with a `..` component.
pub fn check_pattern(section: &str, pattern: &str) -> Result<()> {
    let p = Path::new(pattern);
    if pattern.is_empty() {
        bail!("{ZAPP_YAML}: '{section}' has an empty pattern");
    }
    if p.is_absolute() || pattern.starts_with('/') {
        bail!("{ZAPP_YAML}: '{section}' pattern '{pattern}' is absolute: patterns are relative to the project root");
    }
    if p.components().any(|c| c == Component::ParentDir) {
        bail!("{ZAPP_YAML}: '{section}' pattern '{pattern}' leaves the project root");
    }
    Ok(())
}

/// `path` (under `root`) as a member name: relative, `/`-separated.
fn member_name(root: &Path, path: &Path) -> Result<String> {
    let rel = path
        .strip_prefix(root)
        .with_context(|| format!("{} is not under {}", path.display(), root.display()))?;
    let parts: Vec<&str> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s
                .to_str()
                .ok_or_else(|| anyhow!("file name {:?} is not UTF-8", rel)),
            _ => Err(anyhow!("unexpected path {}", rel.display())),
        })
        .collect::<Result<_>>()?;
    Ok(parts.join("/"))
}

/// Files under `dir`, recursively, in name order.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    entries.sort();
    for e in entries {
        // A symlinked directory is not descended (a link to `.` would loop).
        let link = fs::symlink_metadata(&e).is_ok_and(|m| m.file_type().is_symlink());
        if e.is_dir() && !link {
            walk(&e, out)?;
        } else if e.is_dir() {
            eprintln!("zpm: skipped {} (a symlink to a directory)", e.display());
        } else {
            out.push(e);
        }
    }
    Ok(())
}

/// The files the `bundling` and `ui` patterns select, as (member name,
/// path), in pattern order, each once. A directory stands for the files
/// under it. Errors: a pattern outside the root, a plain file name that
/// does not exist, a match that resolves (symlink) outside the root, and
/// nothing matched at all; a glob that matches nothing is a warning.
pub fn select_files(root: &Path, zapp: &Yaml, skip: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let canon_root = root
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", root.display()))?;
    let root_text = root
        .to_str()
        .ok_or_else(|| anyhow!("the project path {} is not UTF-8", root.display()))?;
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut seen: HashSet<String> = skip.iter().map(|s| s.to_string()).collect();
    let mut files = Vec::new();
    let mut matched_any = false;
    for section in ["bundling", "ui"] {
        for pattern in patterns(zapp, section)? {
            check_pattern(section, &pattern)?;
            let full = format!("{}/{}", glob::Pattern::escape(root_text), pattern);
            let matches: Vec<PathBuf> = glob::glob_with(&full, options)
                .map_err(|e| anyhow!("{ZAPP_YAML}: '{section}' pattern '{pattern}': {}", e.msg))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("'{section}' pattern '{pattern}'"))?;
            if matches.is_empty() {
                if has_glob_chars(&pattern) {
                    log::warn(format!(
                        "pattern '{pattern}' in section '{section}' matched no files"
                    ));
                    continue;
                }
                bail!("{ZAPP_YAML}: '{section}' names a missing file: '{pattern}'");
            }
            matched_any = true;
            for m in matches {
                let mut under = Vec::new();
                if m.is_dir() {
                    walk(&m, &mut under)?;
                } else {
                    under.push(m);
                }
                for path in under {
                    let real = path
                        .canonicalize()
                        .with_context(|| format!("cannot resolve {}", path.display()))?;
                    if !real.starts_with(&canon_root) {
                        bail!(
                            "'{}' (from '{section}' pattern '{pattern}') leads outside the project root",
                            path.display()
                        );
                    }
                    let name = member_name(root, &path)?;
                    if seen.insert(name.clone()) {
                        files.push((name, path));
                    } else {
                        log::debug(format!("'{name}' is bundled once"));
                    }
                }
            }
        }
    }
    if !matched_any {
        bail!("None of the files specified in the 'bundling' or 'ui' sections of the zapp.yaml matched anything.");
    }
    Ok(files)
}

/// Reads and checks `<root>/zapp.yaml`: its text, the parsed YAML and the
/// job JSON of `boot/system.map`.
pub fn load_project(root: &Path) -> Result<(String, Yaml, Value)> {
    let path = root.join(ZAPP_YAML);
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let zapp = parse_zapp_yaml(&text, ZAPP_YAML)?;
    check_dependencies(&zapp)?;
    let job = sysmap::zapp::job_json_from_zapp_yaml(&text)?;
    sysmap::job::Job::from_value(&job)
        .map_err(|e| anyhow!("{ZAPP_YAML}: the job is invalid: {e}"))?;
    Ok((text, zapp, job))
}

/// The header zpm gives every member: regular file, mode 0644 (0755 when
/// `executable`), owner 0, a fixed time, so a bundle depends only on its
/// contents.
fn header(size: u64, executable: bool) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(if executable { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// The tar of a zapp: `boot/system.map`, `zapp.yaml`, then `files`.
pub fn zapp_tar(
    job: &Value,
    zapp_yaml: &str,
    files: &[(String, PathBuf)],
    out: impl Write,
) -> Result<()> {
    let mut b = tar::Builder::new(out);
    let map = serde_json::to_vec(job)?;
    b.append_data(
        &mut header(map.len() as u64, false),
        SYSTEM_MAP,
        map.as_slice(),
    )?;
    b.append_data(
        &mut header(zapp_yaml.len() as u64, false),
        ZAPP_YAML,
        zapp_yaml.as_bytes(),
    )?;
    for (name, path) in files {
        let data = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        b.append_data(
            &mut header(data.len() as u64, is_executable(path)),
            name,
            data.as_slice(),
        )
        .with_context(|| format!("cannot add {name}"))?;
    }
    b.into_inner()?.flush()?;
    Ok(())
}

/// `zpm bundle` in the project around `start`: writes `<meta.name>.zapp`
/// in its root and returns its path.
pub fn bundle(start: &Path) -> Result<PathBuf> {
    let root = find_root(start)?;
    log::info(format!("project root: {}", root.display()));
    let (text, zapp, job) = load_project(&root)?;
    let file_name = format!("{}.zapp", zapp_name(&zapp)?);
    let files = select_files(&root, &zapp, &[ZAPP_YAML, SYSTEM_MAP, &file_name])?;
    for (name, _) in &files {
        log::info(format!("adding {name}"));
    }
    let target = root.join(&file_name);
    let tmp = root.join(format!(".{file_name}.tmp"));
    let write = || -> Result<()> {
        let file =
            fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        zapp_tar(&job, &text, &files, &mut gz)?;
        gz.finish()?.sync_all()?;
        fs::rename(&tmp, &target).with_context(|| format!("cannot write {}", target.display()))
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn project(yaml: &str, files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ZAPP_YAML), yaml).unwrap();
        for f in files {
            let p = dir.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, format!("content of {f}")).unwrap();
        }
        dir
    }

    const GROUPS: &str = "execution:\n  groups:\n  - name: hello\n    path: file://python2.7:python\n    args: main.py\n    devices:\n    - name: python2.7\n    - name: stdout\nmeta:\n  name: hello\n";

    fn names(files: &[(String, PathBuf)]) -> Vec<&str> {
        files.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn root_is_found_upwards() {
        let dir = project("meta: {}", &["a/b/c/x"]);
        let deep = dir.path().join("a/b/c");
        assert_eq!(find_root(&deep).unwrap(), dir.path());
        assert_eq!(find_root(dir.path()).unwrap(), dir.path());
        let empty = tempfile::tempdir().unwrap();
        let e = find_root(empty.path()).unwrap_err().to_string();
        assert!(e.starts_with("no zapp.yaml file found"), "{e}");
    }

    #[test]
    fn yaml_errors_name_the_line() {
        let text = "meta:\n  name: x\nbundling: [a.py\nui: []\n";
        let e = parse_zapp_yaml(text, "zapp.yaml").unwrap_err().to_string();
        assert!(e.starts_with("zapp.yaml: line "), "{e}");
        let text = "meta:\n  name: x\n\n\n\n  bad: [\n    -: :\n";
        let e = parse_zapp_yaml(text, "zapp.yaml").unwrap_err().to_string();
        assert!(e.starts_with("zapp.yaml: line 7:"), "{e}");
        let e = parse_zapp_yaml("- a\n- b\n", "zapp.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be a mapping"), "{e}");
    }

    #[test]
    fn names_and_dependencies() {
        let y = |t: &str| parse_zapp_yaml(t, "zapp.yaml").unwrap();
        assert_eq!(zapp_name(&y("meta: {name: app}")).unwrap(), "app");
        assert!(zapp_name(&y("meta: {name: ''}")).is_err());
        assert!(zapp_name(&y("meta: {}")).is_err());
        assert!(zapp_name(&y("meta: {name: a/b}")).is_err());
        assert!(zapp_name(&y("meta: {name: ..}")).is_err());
        assert!(check_dependencies(&y("dependencies: []")).is_ok());
        assert!(check_dependencies(&y("meta: {}")).is_ok());
        let e = check_dependencies(&y("dependencies: [requests]"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'dependencies' is not supported") && e.contains("bundling"),
            "{e}"
        );
        assert!(patterns(&y("bundling: a.py"), "bundling").is_err());
        assert!(patterns(&y("bundling: [1]"), "bundling").is_err());
        assert_eq!(patterns(&y("ui: [a, b]"), "ui").unwrap(), ["a", "b"]);
    }

    #[test]
    fn patterns_outside_the_root_are_refused() {
        assert!(check_pattern("bundling", "a/*.py").is_ok());
        assert!(check_pattern("bundling", "a/..b").is_ok());
        for bad in ["../x", "a/../../x", "/etc/passwd", "..", ""] {
            assert!(check_pattern("bundling", bad).is_err(), "{bad}");
        }
        assert!(has_glob_chars("*.py") && has_glob_chars("a?") && has_glob_chars("[ab]"));
        assert!(!has_glob_chars("main.py"));
    }

    #[test]
    fn glob_rules() {
        let yaml = format!(
            "{GROUPS}bundling: [main.py, 'lib/*.py', 'nothing/*.txt', pkg, main.py, '*.zapp', 'deep/**/*.py']\nui: ['*.html', 'style.css']\n"
        );
        let dir = project(
            &yaml,
            &[
                "main.py",
                "lib/a.py",
                "lib/b.py",
                "lib/c.txt",
                "lib/.hidden.py",
                "pkg/x/y.py",
                "pkg/z.py",
                "index.html",
                "style.css",
                "hello.zapp",
                "other.zapp",
                "deep/a.py",
                "deep/b/c/d.py",
                "deep/b/e.txt",
            ],
        );
        let zapp = parse_zapp_yaml(&yaml, "zapp.yaml").unwrap();
        let files = select_files(dir.path(), &zapp, &[ZAPP_YAML, "hello.zapp"]).unwrap();
        assert_eq!(
            names(&files),
            [
                "main.py",
                "lib/a.py",
                "lib/b.py",
                "pkg/x/y.py",
                "pkg/z.py",
                "other.zapp",
                "deep/a.py",
                "deep/b/c/d.py",
                "index.html",
                "style.css"
            ]
        );
    }

    #[test]
    fn a_missing_plain_file_is_an_error_and_nothing_matched_too() {
        let yaml = format!("{GROUPS}bundling: [main.py, gone.py]\n");
        let dir = project(&yaml, &["main.py"]);
        let zapp = parse_zapp_yaml(&yaml, "zapp.yaml").unwrap();
        let e = select_files(dir.path(), &zapp, &[])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "zapp.yaml: 'bundling' names a missing file: 'gone.py'");

        let yaml = format!("{GROUPS}bundling: ['*.nope']\nui: ['x/*']\n");
        let zapp = parse_zapp_yaml(&yaml, "zapp.yaml").unwrap();
        let e = select_files(dir.path(), &zapp, &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("None of the files specified"), "{e}");
        let zapp = parse_zapp_yaml(GROUPS, "zapp.yaml").unwrap();
        assert!(select_files(dir.path(), &zapp, &[]).is_err());
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        let yaml = format!("{GROUPS}bundling: ['*']\n");
        let dir = project(&yaml, &["main.py"]);
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        let zapp = parse_zapp_yaml(&yaml, "zapp.yaml").unwrap();
        let e = select_files(dir.path(), &zapp, &[ZAPP_YAML])
            .unwrap_err()
            .to_string();
        assert!(e.contains("leads outside the project root"), "{e}");
        // A link inside the root is fine.
        fs::remove_file(dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("main.py"), dir.path().join("alias.py"))
            .unwrap();
        let files = select_files(dir.path(), &zapp, &[ZAPP_YAML]).unwrap();
        assert_eq!(names(&files), ["alias.py", "main.py"]);
    }

    #[test]
    fn the_bundle_has_the_system_map_first() {
        let yaml = format!("{GROUPS}bundling: ['*.py']\n");
        let dir = project(&yaml, &["main.py", "sub/dir/deep.txt"]);
        let out = bundle(&dir.path().join("sub/dir")).unwrap();
        assert_eq!(out, dir.path().join("hello.zapp"));
        let gz = fs::read(&out).unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut members = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = String::new();
            e.read_to_string(&mut data).unwrap();
            members.push((name, data));
        }
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["boot/system.map", "zapp.yaml", "main.py"]);
        let map: Value = serde_json::from_str(&members[0].1).unwrap();
        assert_eq!(map[0]["exec"]["args"], "main.py");
        assert_eq!(members[1].1, yaml);
        // Bundling again gives the same bytes (no times, no owners) and
        // never includes the zapp itself.
        let again = bundle(dir.path()).unwrap();
        assert_eq!(fs::read(again).unwrap(), gz);
    }

    #[test]
    fn bundle_refuses_an_invalid_job() {
        let dir = project("execution:\n  groups:\n  - name: ''\n    path: file://python2.7:python\nmeta: {name: x}\nbundling: ['*']\n", &[]);
        let e = bundle(dir.path()).unwrap_err().to_string();
        assert_eq!(e, "zapp.yaml: the job is invalid: Must specify node name");
    }
}
