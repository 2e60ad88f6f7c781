//! `zpm deploy TARGET ZAPP`: the zapp (un-gzipped), its system map with
//! the `image` device, and its UI files (templates rendered) uploaded
//! under `TARGET` (spec/zerovm.md §12.3).

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::bundle::SYSTEM_MAP;
use crate::log;
use crate::swift::{account_of, Session};
use crate::ui;
use crate::zappfile::ZappFile;

/// One object to upload: path under the account, body, content type.
#[derive(Debug, PartialEq, Eq)]
pub struct Upload {
    pub path: String,
    pub data: Vec<u8>,
    pub content_type: String,
}

/// `TARGET` without surrounding slashes; its first component is the
/// container.
pub fn split_target(target: &str) -> Result<(String, String)> {
    let target = target.trim_matches('/');
    if target.is_empty() {
        bail!("the target must name a container (\"container\" or \"container/path\")");
    }
    if target
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        bail!("the target '{target}' has an empty, '.' or '..' component");
    }
    let container = target.split('/').next().unwrap_or(target).to_string();
    Ok((target.to_string(), container))
}

/// The content type of a UI file, by its extension.
pub fn content_type_of(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "application/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// The members of the zapp that its `ui` patterns match (fnmatch rules:
/// `*` also matches `/`), in name order.
pub fn ui_members(zapp: &ZappFile, yaml: &serde_yaml::Value) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for pattern in crate::bundle::patterns(yaml, "ui")? {
        let p = glob::Pattern::new(&pattern)
            .map_err(|e| anyhow!("zapp.yaml: 'ui' pattern '{pattern}': {}", e.msg))?;
        names.extend(
            zapp.members
                .iter()
                .filter(|m| m.header.entry_type().is_file() && p.matches(&m.name))
                .map(|m| m.name.clone()),
        );
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// What a deploy of `zapp` to `target` uploads, in order: the zapp, its
/// system map with the image device, the UI files.
pub fn uploads(
    zapp: &ZappFile,
    target: &str,
    storage_url: &str,
    auth_opts: &Value,
) -> Result<Vec<Upload>> {
    let yaml = zapp.zapp_yaml()?;
    let mut job = zapp.system_map()?;
    let remote_zapp = format!("{target}/{}", zapp.file_name);
    let image = format!("swift://{}/{remote_zapp}", account_of(storage_url));
    sysmap::zapp::add_image_device(&mut job, &image);
    let mut out = vec![
        Upload {
            path: remote_zapp,
            data: zapp.tar.clone(),
            content_type: "application/x-tar".into(),
        },
        Upload {
            path: format!("{target}/{SYSTEM_MAP}"),
            data: serde_json::to_vec(&job)?,
            content_type: "application/json".into(),
        },
    ];
    for name in ui_members(zapp, &yaml)? {
        let Some(member) = zapp.member(&name) else {
            continue;
        };
        let (path, data) = match name.strip_suffix(".tmpl") {
            Some(stem) => {
                let source = std::str::from_utf8(&member.data)
                    .map_err(|_| anyhow!("{name}: a template must be UTF-8"))?;
                let text = ui::render_ui(&name, source, auth_opts, &yaml)?;
                if source.contains("auth_opts") && auth_opts.get("password").is_some() {
                    // As the original did; said, so nobody publishes a key unawares.
                    eprintln!(
                        "zpm: warning: {stem} holds your password (auth_opts): anyone who can read \
                         it can log in as you; deploy with --no-ui-auth to leave it out"
                    );
                }
                (stem.to_string(), text.into_bytes())
            }
            None => (name.clone(), member.data.clone()),
        };
        out.push(Upload {
            content_type: content_type_of(&path).into(),
            path: format!("{target}/{path}"),
            data,
        });
    }
    Ok(out)
}

/// The original's refusal to deploy into a container with objects.
pub fn not_empty_message(container: &str) -> String {
    format!(
        "Target container ('{container}') is not empty.\nDeploying to a non-empty container can \
         cause consistency problems with overwritten objects.\nSpecify the flag `--force/-f` to \
         overwrite anyway."
    )
}

/// Deploys; returns what to open: `TARGET/index.html` when there is one,
/// else `TARGET/`.
pub fn deploy(
    session: &Session,
    target: &str,
    zapp: &ZappFile,
    auth_opts: &Value,
    force: bool,
) -> Result<String> {
    let (target, container) = split_target(target)?;
    // Build everything first: a bad template fails before any upload.
    let uploads = uploads(zapp, &target, &session.url, auth_opts)?;
    match session.container_is_empty(&container)? {
        Some(false) if !force => bail!(not_empty_message(&container)),
        Some(_) => {}
        None => {
            log::info(format!("container '{container}' not found, creating it"));
            session.put_container(&container)?;
        }
    }
    let mut index = format!("{target}/");
    for up in uploads {
        log::info(format!("uploading {} ({} bytes)", up.path, up.data.len()));
        if up.path.ends_with("/index.html") {
            index = up.path.clone();
        }
        session.put_object(&up.path, up.data, &up.content_type)?;
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn zapp(members: &[(&str, &[u8])]) -> ZappFile {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        ZappFile::from_bytes("app.zapp".into(), b.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn targets() {
        assert_eq!(split_target("app").unwrap(), ("app".into(), "app".into()));
        assert_eq!(
            split_target("/app/v2/").unwrap(),
            ("app/v2".into(), "app".into())
        );
        assert!(split_target("/").is_err());
        assert!(split_target("a//b").is_err());
        assert!(split_target("a/../b").is_err());
    }

    #[test]
    fn what_is_uploaded() {
        let yaml = b"meta: {name: app}\nhelp: {description: Hi, args: []}\nui: ['*.tmpl', 'static/*', 'missing.js']\n";
        let z = zapp(&[
            ("boot/system.map", br#"[{"name": "a", "exec": {"path": "file://python:python"}, "devices": [{"name": "stdout"}]}]"#),
            ("zapp.yaml", yaml),
            ("index.html.tmpl", b"<h1>{{ zapp.meta.name }}</h1><script>var o = {{ auth_opts }};</script>"),
            ("static/css/a.css", b"body{}"),
            ("main.py", b"print(1)"),
        ]);
        let opts = json!({"version": "0.0", "swiftUrl": "http://h/v1/AUTH_t"});
        let ups = uploads(&z, "app/v1", "http://h/v1/AUTH_t", &opts).unwrap();
        let paths: Vec<(&str, &str)> = ups
            .iter()
            .map(|u| (u.path.as_str(), u.content_type.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("app/v1/app.zapp", "application/x-tar"),
                ("app/v1/boot/system.map", "application/json"),
                ("app/v1/index.html", "text/html; charset=utf-8"),
                ("app/v1/static/css/a.css", "text/css; charset=utf-8"),
            ]
        );
        assert_eq!(ups[0].data, z.tar);
        let map: Value = serde_json::from_slice(&ups[1].data).unwrap();
        assert_eq!(
            map[0]["devices"],
            json!([{"name": "stdout"}, {"name": "image", "path": "swift://AUTH_t/app/v1/app.zapp"}])
        );
        let page = String::from_utf8(ups[2].data.clone()).unwrap();
        let rendered = page
            .strip_prefix("<h1>app</h1><script>var o = ")
            .and_then(|p| p.strip_suffix(";</script>"))
            .unwrap();
        assert_eq!(serde_json::from_str::<Value>(rendered).unwrap(), opts);
    }

    #[test]
    fn content_types_and_message() {
        assert_eq!(
            content_type_of("a/b.JS"),
            "application/javascript; charset=utf-8"
        );
        assert_eq!(content_type_of("noext"), "application/octet-stream");
        assert!(not_empty_message("c").starts_with("Target container ('c') is not empty."));
    }
}
