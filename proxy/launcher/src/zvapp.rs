//! `zvapp`: runs a system map or a zapp on this machine, with local files
//! standing in for `swift://` objects.
//!
//! It does not reimplement the cluster: it starts a private `zerocloud up`
//! (proxy, storage node, exec agent and sandbox pool, in this process, on
//! 127.0.0.1 and a temporary data dir), loads the local files the job names
//! into it, POSTs the job, prints the answer, and copies the objects the job
//! wrote back to local files. So a job behaves here exactly as on the server:
//! wildcards, `connect`, `replicate`, CGI environment and quotas included.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use md5::{Digest, Md5};
use proxy::config::ProxyConfig;
use serde_json::Value;
use sysmap::device::DeviceKind;

use crate::up;

/// How `swift://` paths map to local files; `zvapp --help` prints it.
pub const MAPPING: &str = "\
How swift:// paths map to local files:
  swift://<account>/<container>/<object>  ->  ROOT/<container>/<object>
  Every account (~ or a name) is ROOT (--root, default: the current
  directory); an object name's '/' are subdirectories. Wildcards in a
  path match the files under ROOT/<container>, as they match objects.

What happens:
  1. A private zerocloud (proxy, storage node, sandbox workers) starts in
     this process, on 127.0.0.1, with its data in a temporary directory.
  2. Every file under ROOT/<container>, for each container the job names,
     is uploaded to it. A zapp is uploaded too and becomes the job's image
     (as `zpm deploy` does); a job's system map comes from the zapp's
     boot/system.map (or its zapp.yaml).
  3. The job runs (the nodes in the sandbox, connect channels wired) and
     its answer is written to stdout, as the server would send it.
  4. Objects in the containers of the job's writable devices (output,
     stdout/stderr with a path, ...) that are new or changed are copied
     back to ROOT/<container>/<object>. The temporary store is removed.

Programs run in the system images of $ZEROCLOUD_IMAGES, else of the
nearest zerocloud-data/images in this directory or a parent (where
`zerocloud up` installed them when started there, as the README does at the
top of the repo); install Python with `zerocloud image install python`.";

/// The private store's container for the zapp being run.
const ZAPP_CONTAINER: &str = "zvapp-image";

#[derive(clap::Parser, Debug)]
#[command(
    name = "zvapp",
    version,
    about = "Run a system map or a zapp locally: every node in the sandbox on this machine.",
    after_help = MAPPING
)]
pub struct Args {
    /// A system map (the JSON job) or a zapp (`zpm bundle`'s .zapp: tar or tar.gz).
    pub job: PathBuf,
    /// The directory that stands for the Swift account(s).
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// System images [default: $ZEROCLOUD_IMAGES, else the nearest
    /// zerocloud-data/images here or in a parent directory].
    #[arg(long)]
    pub images_dir: Option<PathBuf>,
    /// Session timeout in seconds for each node.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Say on stderr what is uploaded and copied back.
    #[arg(short, long)]
    pub verbose: bool,
}

/// A job ready to POST: the system map, the zapp's tar (if any), and the
/// containers it reads and writes.
#[derive(Debug)]
pub struct LocalJob {
    pub system_map: Value,
    pub zapp: Option<(String, Vec<u8>)>,
    pub containers: Vec<String>,
    pub written: Vec<String>,
    /// A group's program is a `file://` path: it runs in a system image.
    pub needs_system_image: bool,
}

/// Reads the job file: JSON, or a zapp (tar, gzipped or not) with
/// `boot/system.map` or `zapp.yaml`.
pub fn load_job(path: &Path) -> anyhow::Result<LocalJob> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
            .with_context(|| format!("{}: not a valid gzip file", path.display()))?;
        out
    } else {
        bytes
    };
    let trimmed = bytes.trim_ascii_start();
    let (mut system_map, zapp) = if trimmed.starts_with(b"[") || trimmed.starts_with(b"{") {
        let v: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a JSON system map", path.display()))?;
        (v, None)
    } else {
        let map = system_map_of_zapp(&bytes)
            .with_context(|| format!("{}: not a system map or a zapp", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "app.zapp".into());
        (map, Some((name, bytes)))
    };
    // Validate as the server would, for an early, local message.
    sysmap::job::Job::from_value(&system_map).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (containers, written) = rewrite_accounts(&mut system_map)?;
    if let Some((name, _)) = &zapp {
        sysmap::zapp::add_image_device(
            &mut system_map,
            &format!("swift://~/{ZAPP_CONTAINER}/{name}"),
        );
    }
    let needs_system_image = system_map
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.pointer("/exec/path").and_then(Value::as_str))
        .any(|p| p.starts_with("file://"));
    Ok(LocalJob {
        system_map,
        zapp,
        containers,
        written,
        needs_system_image,
    })
}

/// `boot/system.map` of a zapp's tar, else its `zapp.yaml` converted.
fn system_map_of_zapp(tar_bytes: &[u8]) -> anyhow::Result<Value> {
    let mut yaml = None;
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().context("not a tar archive")? {
        let mut entry = entry.context("a broken tar member")?;
        let name = entry.path().context("a bad member name")?.into_owned();
        let name = name.to_string_lossy().trim_start_matches("./").to_string();
        let mut text = String::new();
        if name == "boot/system.map" || name == "zapp.yaml" {
            std::io::Read::read_to_string(&mut entry, &mut text)
                .with_context(|| format!("{name} is not UTF-8 text"))?;
        }
        if name == "boot/system.map" {
            return serde_json::from_str(&text).context("boot/system.map is not JSON");
        }
        if name == "zapp.yaml" {
            yaml = Some(text);
        }
    }
    match yaml {
        Some(text) => {
            sysmap::zapp::job_json_from_zapp_yaml(&text).map_err(|e| anyhow::anyhow!("{e}"))
        }
        None => bail!("no boot/system.map or zapp.yaml in it"),
    }
}

/// Points every `swift://` path at the caller's account (`~`): locally,
/// every account is the root directory. Returns the containers named, and
/// those named by writable devices.
fn rewrite_accounts(job: &mut Value) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut containers = Vec::new();
    let mut written = Vec::new();
    let groups = job
        .as_array_mut()
        .context("a system map is a JSON list of groups")?;
    for group in groups.iter_mut().filter_map(Value::as_object_mut) {
        if let Some(path) = group.get_mut("exec").and_then(|e| e.get_mut("path")) {
            if let Some(c) = rewrite_one(path)? {
                containers.push(c);
            }
        }
        for key in ["devices", "file_list"] {
            let Some(devices) = group.get_mut(key).and_then(Value::as_array_mut) else {
                continue;
            };
            for device in devices.iter_mut().filter_map(Value::as_object_mut) {
                let name = device
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let Some(path) = device.get_mut("path") else {
                    continue;
                };
                if let Some(c) = rewrite_one(path)? {
                    if DeviceKind::of(&name).access().writable() {
                        written.push(c.clone());
                    }
                    containers.push(c);
                }
            }
        }
    }
    containers.sort();
    containers.dedup();
    written.sort();
    written.dedup();
    Ok((containers, written))
}

/// `swift://acct/c/o` → `swift://~/c/o`; returns `c`.
fn rewrite_one(path: &mut Value) -> anyhow::Result<Option<String>> {
    let Some(url) = path.as_str() else {
        return Ok(None);
    };
    let Some(rest) = url.strip_prefix("swift://") else {
        return Ok(None);
    };
    let mut parts = rest.splitn(3, '/');
    let _account = parts.next();
    let Some(container) = parts.next().filter(|c| !c.is_empty()) else {
        bail!("{url}: zvapp needs a container in every swift:// path");
    };
    let container = container.to_string();
    check_component(&container, url)?;
    let new = match parts.next() {
        Some(object) => format!("swift://~/{container}/{object}"),
        None => format!("swift://~/{container}"),
    };
    *path = Value::String(new);
    Ok(Some(container))
}

fn check_component(name: &str, url: &str) -> anyhow::Result<()> {
    if name == "." || name == ".." || name.contains('\\') {
        bail!("{url}: {name:?} cannot name a local directory");
    }
    Ok(())
}

/// Files under `dir`, as object names relative to it (`/`-separated),
/// sorted; symlinks and other non-regular files are skipped.
pub fn local_objects(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        let entries = match std::fs::read_dir(&here) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && rel.as_os_str().is_empty() => {
                return Ok(out)
            }
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", here.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", here.display()))?;
            let kind = entry.file_type()?;
            let name = rel.join(entry.file_name());
            if kind.is_dir() {
                stack.push(name);
            } else if kind.is_file() {
                let Some(s) = name.to_str() else {
                    eprintln!(
                        "zvapp: skipped {} (not UTF-8)",
                        here.join(entry.file_name()).display()
                    );
                    continue;
                };
                out.push(s.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Where an object written by the job goes locally; `None` for a name that
/// would leave the container's directory.
pub fn local_path(root: &Path, container: &str, object: &str) -> Option<PathBuf> {
    let rel = Path::new(object);
    if object.is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(root.join(container).join(rel))
}

/// Where system images are: `$ZEROCLOUD_IMAGES`, else `zerocloud up`'s
/// default place (`zerocloud-data/images`) in the current directory or the
/// nearest parent where images are installed: a user runs `zerocloud up` at
/// the top of the repo and `zvapp` inside an example. `Err` names where it
/// looked when there are none.
fn default_images_dir() -> Result<PathBuf, String> {
    let defaults = ProxyConfig::default();
    if sandbox::image::images_dir_from_env().is_some() {
        return Ok(crate::images::dir(&defaults));
    }
    let here = std::env::current_dir().map_err(|e| format!("the current directory: {e}"))?;
    let rel = defaults.configured_images_dir();
    let rel = rel.strip_prefix(".").unwrap_or(&rel);
    nearest(&here, rel, has_images).ok_or_else(|| {
        format!(
            "no system images in {} or in a parent directory's zerocloud-data/images: \
             install Python with `zerocloud image install python` (at the top of the repo), \
             or set $ZEROCLOUD_IMAGES or --images-dir",
            here.join(rel).display()
        )
    })
}

/// Whether any known system image is installed in `dir`.
fn has_images(dir: &Path) -> bool {
    let store = sandbox::ImageStore::at(dir.to_path_buf());
    sandbox::image::known_images()
        .iter()
        .any(|spec| store.resolve(&spec.name).is_ok())
}

/// The first `dir/rel` that `found` accepts, from `dir` up to the root.
fn nearest(dir: &Path, rel: &Path, found: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    dir.ancestors().map(|d| d.join(rel)).find(|p| found(p))
}

/// Runs the job of `args`: an error when it could not run or the server
/// refused it.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let job = load_job(&args.job)?;
    let root = crate::absolute(&args.root)?;
    if !root.is_dir() {
        bail!("{} is not a directory (--root)", root.display());
    }
    let tmp = tempfile::Builder::new()
        .prefix("zvapp-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    let mut cfg = ProxyConfig {
        bind: "127.0.0.1:0".into(),
        data_dir: tmp.path().join("data"),
        fsync: false,
        install_images: false,
        ..ProxyConfig::default()
    };
    cfg.zerocloud.timeout = args.timeout;
    // One user with a random key: the store listens on loopback while the
    // job runs, and the default users' keys are well known.
    cfg.users = vec![proxy::config::UserConfig {
        user: "zvapp:zvapp".into(),
        key: format!("{:032x}", rand::random::<u128>()),
        groups: vec![".admin".into()],
    }];
    // Without images, a job of a system image (`file://`) cannot run:
    // said here, before a server starts and leaves directories behind.
    let images_dir = match (&args.images_dir, default_images_dir()) {
        (Some(d), _) => crate::absolute(d)?,
        (None, Ok(d)) => d,
        (None, Err(why)) if job.needs_system_image => bail!(why),
        (None, Err(_)) => tmp.path().join("images"),
    };
    let user = cfg.users[0].clone();
    let running = up::start(cfg, Some(images_dir.clone())).await?;
    let base = format!("http://{}", running.addr());
    let result = drive(&args, &job, &root, &base, &user, &images_dir).await;
    running.stop().await;
    result
}

struct Client {
    http: reqwest::Client,
    token: String,
    storage: String,
}

impl Client {
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let resp = req
            .header("X-Auth-Token", &self.token)
            .send()
            .await
            .with_context(|| format!("{what}: the private store did not answer"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            bail!("{what}: {status}: {}", body.trim());
        }
        Ok(resp)
    }
}

async fn drive(
    args: &Args,
    job: &LocalJob,
    root: &Path,
    base: &str,
    user: &proxy::config::UserConfig,
    images_dir: &Path,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let auth = http
        .get(format!("{base}/auth/v1.0"))
        .header("X-Auth-User", &user.user)
        .header("X-Auth-Key", &user.key)
        .send()
        .await
        .context("cannot log in to the private store")?;
    let header = |name: &str| {
        auth.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (Some(token), Some(storage)) = (header("x-auth-token"), header("x-storage-url")) else {
        bail!("the private store gave no token ({})", auth.status());
    };
    let client = Client {
        http,
        token,
        storage,
    };

    let mut containers = job.containers.clone();
    if job.zapp.is_some() {
        containers.push(ZAPP_CONTAINER.into());
    }
    for c in &containers {
        let url = format!("{}/{}", client.storage, wire::enc(c));
        client
            .send(client.http.put(&url), &format!("creating container {c}"))
            .await?;
        if c == ZAPP_CONTAINER {
            continue;
        }
        for object in local_objects(&root.join(c))? {
            let file = root.join(c).join(&object);
            let body =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            if args.verbose {
                eprintln!("zvapp: {} -> swift://~/{c}/{object}", file.display());
            }
            client
                .send(
                    client
                        .http
                        .put(format!("{url}/{}", wire::enc(&object)))
                        .body(body),
                    &format!("uploading {}", file.display()),
                )
                .await?;
        }
    }
    if let Some((name, tar)) = &job.zapp {
        client
            .send(
                client
                    .http
                    .put(format!(
                        "{}/{ZAPP_CONTAINER}/{}",
                        client.storage,
                        wire::enc(name)
                    ))
                    .header("Content-Type", "application/x-tar")
                    .body(tar.clone()),
                &format!("uploading the zapp {name}"),
            )
            .await?;
    }

    let resp = client
        .http
        .post(&client.storage)
        .header("X-Auth-Token", &client.token)
        .header("X-Zerovm-Execute", "1.0")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&job.system_map)?)
        .send()
        .await
        .context("the private store did not answer the job")?;
    let status = resp.status();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (nexe_status, retcodes) = (header("x-nexe-status"), header("x-nexe-retcode"));
    let body = resp.bytes().await.context("reading the job's answer")?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let mut msg = format!("the job failed: {status}: {}", text.trim());
        if !retcodes.is_empty() {
            msg.push_str(&format!(
                "\n(X-Nexe-Retcode: {retcodes}; X-Nexe-Status: {nexe_status})"
            ));
        }
        if status.as_u16() == 503 && !text.contains("zerocloud image install") {
            msg.push_str(&format!(
                "\n(system images are read from {}; install Python with `zerocloud image install python`{})",
                images_dir.display(),
                if args.images_dir.is_none() && sandbox::image::images_dir_from_env().is_none() {
                    ", or set $ZEROCLOUD_IMAGES"
                } else {
                    ""
                }
            ));
        }
        bail!(msg);
    }
    {
        let mut out = std::io::stdout().lock();
        out.write_all(&body).context("writing to stdout")?;
        out.flush().ok();
    }
    if args.verbose && !nexe_status.is_empty() {
        eprintln!("zvapp: X-Nexe-Status: {nexe_status}");
    }

    for c in &job.written {
        copy_back(&client, root, c, args.verbose).await?;
    }
    if let Some(code) = failed_retcode(&retcodes) {
        bail!("a program exited with code {code} (X-Nexe-Status: {nexe_status})");
    }
    Ok(())
}

/// Copies the objects of `container` that differ from the local files
/// (or have none) to `ROOT/<container>/<object>`.
async fn copy_back(
    client: &Client,
    root: &Path,
    container: &str,
    verbose: bool,
) -> anyhow::Result<()> {
    let url = format!("{}/{}", client.storage, wire::enc(container));
    let mut marker = String::new();
    loop {
        let list: Vec<Value> = client
            .send(
                client
                    .http
                    .get(&url)
                    .query(&[("format", "json"), ("marker", marker.as_str())]),
                &format!("listing {container}"),
            )
            .await?
            .json()
            .await
            .with_context(|| format!("listing {container}: not JSON"))?;
        let Some(last) = list.last() else {
            return Ok(());
        };
        marker = last["name"]
            .as_str()
            .with_context(|| format!("listing {container}: an entry without a name"))?
            .to_string();
        for item in &list {
            let (Some(name), Some(etag)) = (item["name"].as_str(), item["hash"].as_str()) else {
                continue;
            };
            let Some(local) = local_path(root, container, name) else {
                eprintln!("zvapp: not copied back: {container}/{name} (not a plain relative name)");
                continue;
            };
            if file_md5(&local).as_deref() == Some(etag) {
                continue;
            }
            let bytes = client
                .send(
                    client.http.get(format!("{url}/{}", wire::enc(name))),
                    &format!("fetching {container}/{name}"),
                )
                .await?
                .bytes()
                .await?;
            write_below(root, &local, &bytes)?;
            if verbose {
                eprintln!("zvapp: swift://~/{container}/{name} -> {}", local.display());
            }
        }
    }
}

/// The first non-zero exit code of `X-Nexe-Retcode` (one per node,
/// comma-separated).
fn failed_retcode(retcodes: &str) -> Option<&str> {
    retcodes
        .split(',')
        .map(str::trim)
        .find(|c| !c.is_empty() && *c != "0")
}

/// Writes `bytes` to `path` (below `root`) without following a symlink
/// anywhere below `root`: directories are made as needed, a symlink on
/// the way is an error, and the file is replaced by a rename, so a link
/// in its place is replaced, never written through.
fn write_below(root: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let rel = path.strip_prefix(root).context("a path outside the root")?;
    let mut dir = root.to_path_buf();
    if let Some(parent) = rel.parent() {
        for part in parent.components() {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(_) => bail!("not copied back: {} is not a directory", dir.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?,
                Err(e) => return Err(e).with_context(|| format!("cannot use {}", dir.display())),
            }
        }
    }
    let name = rel.file_name().context("an object without a file name")?;
    let tmp = dir.join(format!(".{}.zvapp-tmp", name.to_string_lossy()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// MD5 of a regular file (not through a symlink), if there is one.
fn file_md5(path: &Path) -> Option<String> {
    if !std::fs::symlink_metadata(path).ok()?.file_type().is_file() {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    Some(hex::encode(Md5::digest(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_become_the_callers_and_containers_are_collected() {
        let mut job = serde_json::json!([
            {"name": "map", "exec": {"path": "swift://AUTH_x/apps/map.wasm"},
             "devices": [{"name": "input", "path": "swift://~/data/*.txt"},
                         {"name": "output", "path": "swift://AUTH_y/out/result"},
                         {"name": "stdout"}]}
        ]);
        let (containers, written) = rewrite_accounts(&mut job).unwrap();
        assert_eq!(containers, ["apps", "data", "out"]);
        assert_eq!(written, ["out"]);
        assert_eq!(job[0]["exec"]["path"], "swift://~/apps/map.wasm");
        assert_eq!(job[0]["devices"][1]["path"], "swift://~/out/result");
    }

    #[test]
    fn a_path_without_container_or_with_dots_is_refused() {
        let mut job = serde_json::json!([{"name": "a", "exec": {"path": "file://python:python"},
            "devices": [{"name": "input", "path": "swift://~"}]}]);
        assert!(rewrite_accounts(&mut job).is_err());
        let mut job = serde_json::json!([{"name": "a", "exec": {"path": "file://python:python"},
            "devices": [{"name": "input", "path": "swift://~/../x"}]}]);
        assert!(rewrite_accounts(&mut job).is_err());
    }

    #[test]
    fn the_nearest_images_dir_is_found_up_the_tree() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("examples/wordcount");
        std::fs::create_dir_all(&deep).unwrap();
        let rel = Path::new("zerocloud-data/images");
        let found = |p: &Path| p.join("python").is_dir();
        assert_eq!(nearest(&deep, rel, found), None);
        std::fs::create_dir_all(root.path().join(rel).join("python")).unwrap();
        assert_eq!(nearest(&deep, rel, found), Some(root.path().join(rel)));
        // An images dir with nothing installed is passed over.
        std::fs::create_dir_all(deep.join(rel).join("cache")).unwrap();
        assert_eq!(nearest(&deep, rel, found), Some(root.path().join(rel)));
        std::fs::create_dir_all(deep.join(rel).join("python")).unwrap();
        assert_eq!(
            nearest(&deep, rel, found),
            Some(deep.join(rel)),
            "the nearest wins"
        );
    }

    #[test]
    fn a_non_zero_exit_code_is_found() {
        assert_eq!(failed_retcode("0,0,0"), None);
        assert_eq!(failed_retcode(""), None);
        assert_eq!(failed_retcode("0, 3,0"), Some("3"));
    }

    #[test]
    fn written_objects_stay_inside_their_container_dir() {
        let root = Path::new("/r");
        assert_eq!(
            local_path(root, "c", "a/b.txt"),
            Some(PathBuf::from("/r/c/a/b.txt"))
        );
        assert_eq!(local_path(root, "c", "../x"), None);
        assert_eq!(local_path(root, "c", "/etc/passwd"), None);
        assert_eq!(
            local_path(root, "c", "a/./b"),
            Some(PathBuf::from("/r/c/a/b"))
        );
        assert_eq!(local_path(root, "c", ""), None);
    }

    #[test]
    fn copy_back_never_writes_through_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("precious");
        std::fs::write(&target, "keep").unwrap();
        let root = root.path();
        std::fs::create_dir(root.join("out")).unwrap();
        // A file that is a link: replaced by the object, the target kept.
        std::os::unix::fs::symlink(&target, root.join("out/result")).unwrap();
        write_below(root, &root.join("out/result"), b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(
            std::fs::read_to_string(root.join("out/result")).unwrap(),
            "new"
        );
        assert!(!std::fs::symlink_metadata(root.join("out/result"))
            .unwrap()
            .file_type()
            .is_symlink());
        // A directory on the way that is a link: refused.
        std::os::unix::fs::symlink(outside.path(), root.join("out/sub")).unwrap();
        assert!(write_below(root, &root.join("out/sub/x"), b"new").is_err());
        assert!(!outside.path().join("x").exists());
        // New directories are made.
        write_below(root, &root.join("out/a/b/c.txt"), b"c").unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("out/a/b/c.txt")).unwrap(),
            "c"
        );
    }

    #[test]
    fn local_objects_are_relative_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("c/sub")).unwrap();
        std::fs::write(dir.path().join("c/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("c/sub/b.txt"), "b").unwrap();
        assert_eq!(
            local_objects(&dir.path().join("c")).unwrap(),
            ["a.txt", "sub/b.txt"]
        );
        assert!(local_objects(&dir.path().join("missing"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_zapp_gives_its_system_map_and_becomes_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let map = br#"[{"name": "a", "exec": {"path": "file://python2.7:python", "args": "a.py"},
                        "devices": [{"name": "python2.7"}, {"name": "stdout"}]}]"#;
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [("boot/system.map", &map[..]), ("a.py", b"print(1)\n")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder.append_data(&mut h, name, data).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        let path = dir.path().join("app.zapp");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let job = load_job(&path).unwrap();
        let (name, bytes) = job.zapp.as_ref().unwrap();
        assert_eq!(name, "app.zapp");
        assert_eq!(bytes, &tar, "uploaded un-gzipped");
        assert_eq!(
            job.system_map[0]["devices"][2]["path"],
            "swift://~/zvapp-image/app.zapp"
        );
        assert!(job.containers.is_empty());
    }

    #[test]
    fn a_bad_job_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        std::fs::write(&path, b"[{\"name\": \"a\"}]").unwrap();
        let err = format!("{:#}", load_job(&path).unwrap_err());
        assert!(err.contains("exec"), "{err}");
        std::fs::write(&path, b"not a job").unwrap();
        let err = format!("{:#}", load_job(&path).unwrap_err());
        assert!(err.contains("not a system map or a zapp"), "{err}");
    }
}
