//! The forms a job arrives in (spec/zerocloud.md §1.2, §1.3): a JSON
//! system map, a zapp tarball (plain or gzip) with `boot/system.map` or a
//! `zapp.yaml`, or a script with a `#!` line; from the request body or,
//! with `X-Zerovm-Source`, from a stored object (the request body then
//! being the payload of path-less `stdin` devices). Each becomes a parsed
//! [`Job`], the user image to mount (the tarball, or the script as a
//! one-member tar) and the payload, both still streaming.

use std::io::Read;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use md5::{Digest, Md5};
use serde_json::json;
use sysmap::job::Job;
use sysmap::location::Location;
use wire::body::Body;

use crate::config::JobConfig;
use crate::error::ProxyError;

/// Media types read as a zapp tarball (`init:TAR_MIMES`).
pub const TAR_TYPES: [&str; 4] = [
    "application/x-tar",
    "application/x-gtar",
    "application/x-ustar",
    "application/x-gzip",
];

/// Least of a tarball searched for its system map (`STREAM_CACHE_SIZE`).
const TAR_HEAD: usize = 128 * 1024;
/// Longest first line of a script.
const SHEBANG_MAX: usize = 64 * 1024;

/// A body being read: the bytes taken already, then the rest.
pub struct Source {
    pub head: Bytes,
    /// The remaining body; `None` once everything is in `head`.
    pub rest: Option<Body>,
    /// Total length, when known.
    pub len: Option<u64>,
    /// Gzip-compressed (the agent inflates it).
    pub gzip: bool,
}

impl Source {
    /// The whole data again, as one body.
    pub fn into_body(self) -> Body {
        let head = futures_util::stream::once(async move { Ok::<_, axum_core::Error>(self.head) });
        match self.rest {
            None => Body::from_stream(head),
            Some(rest) => Body::from_stream(head.chain(rest.into_data_stream())),
        }
    }
}

/// How the job description is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Json,
    Tar { gzip: bool },
    Script,
}

impl Form {
    /// From a media type (parameters already stripped), as ZeroCloud:
    /// the tar types, then anything that is a substring of
    /// `application/json` (so also `json`, or nothing), then a script.
    pub fn of(media_type: &str) -> Form {
        if TAR_TYPES.contains(&media_type) {
            Form::Tar {
                gzip: media_type == "application/x-gzip",
            }
        } else if "application/json".contains(media_type) {
            Form::Json
        } else {
            Form::Script
        }
    }
}

/// What a job request brought.
pub struct Intake {
    pub job: Job,
    /// The user image every node mounts (`image`): the zapp, or the script.
    pub image: Option<Source>,
}

/// Limits and deadlines of reading one upload.
pub struct Reading<'a> {
    pub cfg: &'a JobConfig,
    pub started: Instant,
}

impl Reading<'_> {
    /// The next piece of `body`, bounded by the per-piece and whole-upload
    /// timeouts (408).
    async fn next(&self, body: &mut Body) -> Result<Option<Bytes>, ProxyError> {
        let whole =
            Duration::from_secs(self.cfg.max_upload_time).saturating_sub(self.started.elapsed());
        let wait = whole.min(Duration::from_secs(self.cfg.client_timeout));
        loop {
            let frame = match tokio::time::timeout(wait, body.frame()).await {
                Err(_) => return Err(ProxyError::Timeout("The job upload timed out".into())),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(ProxyError::ClientDisconnect(e.to_string())),
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
    }

    /// Reads at least `want` bytes of `body` (fewer if it ends first).
    async fn head(&self, mut body: Body, want: usize) -> Result<(Bytes, Option<Body>), ProxyError> {
        let mut head = BytesMut::new();
        while head.len() < want {
            match self.next(&mut body).await? {
                Some(b) => head.extend_from_slice(&b),
                None => return Ok((head.freeze(), None)),
            }
        }
        Ok((head.freeze(), Some(body)))
    }

    /// Reads a script's first line: the head up to and including a `\n`.
    async fn first_line(&self, mut body: Body) -> Result<(Bytes, Option<Body>), ProxyError> {
        let mut head = BytesMut::new();
        while !head.contains(&b'\n') && head.len() < SHEBANG_MAX {
            match self.next(&mut body).await? {
                Some(b) => head.extend_from_slice(&b),
                None => return Ok((head.freeze(), None)),
            }
        }
        Ok((head.freeze(), Some(body)))
    }
}

/// A JSON job from `body`: at most `maxconfig` bytes (413), all that
/// `Content-Length` announced (499), the `ETag` if one was sent (422).
pub async fn read_json(
    r: &Reading<'_>,
    mut body: Body,
    content_length: Option<u64>,
    etag: Option<&str>,
) -> Result<Job, ProxyError> {
    let mut data = BytesMut::new();
    while let Some(b) = r.next(&mut body).await? {
        data.extend_from_slice(&b);
        if data.len() > r.cfg.maxconfig {
            return Err(ProxyError::TooLarge);
        }
    }
    if content_length.is_some_and(|l| l != data.len() as u64) {
        return Err(ProxyError::ClientDisconnect(
            "application/json POST unfinished".into(),
        ));
    }
    if let Some(etag) = etag {
        if etag.trim_matches('"') != hex::encode(Md5::digest(&data)) {
            return Err(ProxyError::Unprocessable(None));
        }
    }
    Ok(Job::from_json(&data)?)
}

/// How much of a tarball's start is searched for its job.
pub fn zapp_head_len(maxconfig: usize) -> usize {
    TAR_HEAD.max(2 * maxconfig)
}

/// A zapp: its job from `boot/cluster.map`, `boot/system.map` (the first
/// complete one in the tarball's head, in that order) or `zapp.yaml`; the
/// whole tarball is the user image.
pub async fn read_tar(
    r: &Reading<'_>,
    body: Body,
    len: Option<u64>,
    gzip: bool,
    media_type: &str,
) -> Result<Intake, ProxyError> {
    let len = len.ok_or_else(|| ProxyError::bad_request("Must specify Content-Length"))?;
    let want = zapp_head_len(r.cfg.maxconfig);
    let (head, rest) = r.head(body, want).await?;
    let complete = rest.is_none();
    if complete && head.len() as u64 != len {
        return Err(ProxyError::ClientDisconnect(format!(
            "{media_type} POST unfinished"
        )));
    }
    let job = job_from_tar_head(&head, gzip, complete, r.cfg.maxconfig).map_err(|e| match e {
        HeadError::Corrupt => {
            ProxyError::Unprocessable(Some(format!("Error reading {media_type} stream")))
        }
        HeadError::NotFound => ProxyError::bad_request("System boot map was not found in request"),
        HeadError::Job(e) => ProxyError::Job(e),
    })?;
    Ok(Intake {
        job,
        image: Some(Source {
            head,
            rest,
            len: Some(len),
            gzip,
        }),
    })
}

/// Whether a tarball's head holds a job (a system map or `zapp.yaml`,
/// parsable or not): what makes an object a zapp (§1.4). `None`: the head
/// is not a tarball (or not gzip, with `gzip`).
pub fn has_job(head: &[u8], gzip: bool, complete: bool, maxconfig: usize) -> Option<bool> {
    match job_from_tar_head(head, gzip, complete, maxconfig) {
        Ok(_) | Err(HeadError::Job(_)) => Some(true),
        Err(HeadError::NotFound) => Some(false),
        Err(HeadError::Corrupt) => None,
    }
}

enum HeadError {
    Corrupt,
    NotFound,
    Job(sysmap::Error),
}

/// Finds the job in the first bytes of a tarball.
fn job_from_tar_head(
    head: &[u8],
    gzip: bool,
    complete: bool,
    maxconfig: usize,
) -> Result<Job, HeadError> {
    let plain;
    let tar_bytes: &[u8] = if gzip {
        let mut out = Vec::new();
        let mut d = flate2::read::GzDecoder::new(head);
        // A cut head ends mid-stream: keep what inflated.
        if let Err(e) = d.read_to_end(&mut out) {
            if complete || out.is_empty() || e.kind() != std::io::ErrorKind::UnexpectedEof {
                return Err(HeadError::Corrupt);
            }
        }
        plain = out;
        &plain
    } else {
        head
    };
    let mut found: [Option<Vec<u8>>; 3] = [None, None, None];
    const NAMES: [&str; 3] = ["boot/cluster.map", "boot/system.map", "zapp.yaml"];
    let mut archive = tar::Archive::new(tar_bytes);
    let entries = archive.entries().map_err(|_| HeadError::Corrupt)?;
    let mut seen = 0;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            // The cut at the end of the head, or a broken archive.
            Err(_) if seen > 0 && !complete => break,
            Err(_) => return Err(HeadError::Corrupt),
        };
        seen += 1;
        let name = match entry.path() {
            Ok(p) => p.to_string_lossy().trim_start_matches("./").to_string(),
            Err(_) => continue,
        };
        let Some(i) = NAMES.iter().position(|n| *n == name) else {
            continue;
        };
        let size = entry.size();
        if size > maxconfig as u64 {
            continue;
        }
        let mut data = Vec::new();
        if entry.read_to_end(&mut data).is_err() || data.len() as u64 != size {
            // Not complete within the head.
            break;
        }
        found[i].get_or_insert(data);
    }
    if seen == 0 && !tar_bytes.is_empty() {
        return Err(HeadError::Corrupt);
    }
    let [cluster, system, zapp] = found;
    if let Some(map) = cluster.or(system) {
        return Job::from_json(&map).map_err(HeadError::Job);
    }
    if let Some(yaml) = zapp {
        let text = String::from_utf8_lossy(&yaml);
        return sysmap::zapp::job_from_zapp_yaml(&text).map_err(HeadError::Job);
    }
    Err(HeadError::NotFound)
}

/// A script: its `#!` line names the interpreter; the job runs it as
/// `/script` from a one-member tar image. `object` is the URL's object
/// when the script was POSTed to one: it becomes the script's stdin (and
/// so where it runs).
pub async fn read_script(
    r: &Reading<'_>,
    body: Body,
    len: Option<u64>,
    object: Option<String>,
) -> Result<Intake, ProxyError> {
    let len = len.ok_or_else(|| ProxyError::bad_request("Must specify Content-Length"))?;
    let (head, rest) = r.first_line(body).await?;
    if !head.starts_with(b"#!") {
        return Err(ProxyError::bad_request("Unsupported Content-Type"));
    }
    let line_end = head
        .iter()
        .position(|&b| b == b'\n')
        .filter(|&i| i > 0)
        .ok_or_else(|| ProxyError::bad_request("Cannot find shebang (#!) in script"))?;
    let line = String::from_utf8_lossy(&head[2..line_end]);
    let line = line.trim_start().trim_end_matches('\r');
    let (exe, args) = match line.split_once(char::is_whitespace) {
        Some((exe, args)) => (exe, args.trim()),
        None => (line, ""),
    };
    let location = Location::parse(exe)
        .ok_or_else(|| ProxyError::bad_request(format!("Bad interpreter {exe}")))?;
    let mut devices = vec![json!({"device": "stdout", "content_type": "text/plain"})];
    if let Location::Image(img) = &location {
        if !img.explicit_image {
            return Err(ProxyError::bad_request(format!(
                "Must supply image name in shebang url {exe}"
            )));
        }
        devices.push(json!({"device": img.image}));
    }
    if let Some(url) = object {
        devices.push(json!({"device": "stdin", "path": url}));
    }
    let args = if args.is_empty() {
        "script".to_string()
    } else {
        format!("{args} script")
    };
    let job = json!([{
        "name": "script",
        "exec": {"path": exe, "args": args},
        "devices": devices,
    }]);
    let job = Job::from_value(&job)?;
    Ok(Intake {
        job,
        image: Some(script_image(head, rest, len)),
    })
}

/// The script as a tar of one member, `script`, streamed: a header, the
/// script's bytes, padding and the end-of-archive blocks. The script's
/// bytes are checked against its `Content-Length` as they stream: a short
/// or long body must not make a tar of another size.
fn script_image(head: Bytes, rest: Option<Body>, len: u64) -> Source {
    let mut header = tar::Header::new_ustar();
    // "script" always fits a ustar name.
    let _ = header.set_path("script");
    header.set_size(len);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let pad = (512 - (len % 512) as usize) % 512;
    let left = len.saturating_sub(head.len() as u64);
    let mut first = BytesMut::from(&header.as_bytes()[..]);
    first.extend_from_slice(&head);
    let tail = Bytes::from(vec![0u8; pad + 1024]);
    Source {
        head: first.freeze(),
        rest: Some(Body::from_stream(exactly(rest, left, tail))),
        len: Some(512 + len + pad as u64 + 1024),
        gzip: false,
    }
}

/// The rest of a body, which must hold exactly `expect` more bytes, then
/// `tail`; an error in the stream otherwise.
fn exactly(
    rest: Option<Body>,
    expect: u64,
    tail: Bytes,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let body = rest.map(|b| b.into_data_stream());
    let wrong =
        |what: &str| std::io::Error::other(format!("the script is {what} than its Content-Length"));
    futures_util::stream::unfold(
        (body, expect, Some(tail)),
        move |(mut body, left, tail)| async move {
            if let Some(b) = body.as_mut() {
                match b.next().await {
                    Some(Ok(data)) if data.len() as u64 > left => {
                        return Some((Err(wrong("longer")), (None, 0, None)))
                    }
                    Some(Ok(data)) => {
                        let left = left - data.len() as u64;
                        return Some((Ok(data), (body, left, tail)));
                    }
                    Some(Err(e)) => {
                        return Some((Err(std::io::Error::other(e.to_string())), (None, 0, None)))
                    }
                    None => {}
                }
            }
            if left > 0 {
                return Some((Err(wrong("shorter")), (None, 0, None)));
            }
            tail.map(|t| (Ok(t), (None, 0, None)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    const MAP: &[u8] =
        br#"[{"name":"x","exec":{"path":"file://python:python"},"devices":[{"name":"stdout"}]}]"#;

    #[test]
    fn forms_by_media_type() {
        assert_eq!(Form::of("application/json"), Form::Json);
        assert_eq!(Form::of("json"), Form::Json);
        assert_eq!(Form::of(""), Form::Json);
        assert_eq!(Form::of("application/x-gzip"), Form::Tar { gzip: true });
        assert_eq!(Form::of("application/x-tar"), Form::Tar { gzip: false });
        assert_eq!(Form::of("application/python"), Form::Script);
        assert_eq!(Form::of("text/plain"), Form::Script);
    }

    #[test]
    fn the_system_map_is_found_in_the_head() {
        let t = tar_of(&[("main.py", b"print(1)"), ("boot/system.map", MAP)]);
        let job = job_from_tar_head(&t, false, true, 65536).ok().unwrap();
        assert_eq!(job.groups[0].name, "x");
        // cluster.map wins over system.map.
        let other = String::from_utf8(MAP.to_vec())
            .unwrap()
            .replace("\"x\"", "\"y\"");
        let t = tar_of(&[
            ("boot/system.map", MAP),
            ("boot/cluster.map", other.as_bytes()),
        ]);
        let job = job_from_tar_head(&t, false, true, 65536).ok().unwrap();
        assert_eq!(job.groups[0].name, "y");
        // Cut in the middle of a later member: still found.
        let big = vec![b'a'; 300_000];
        let t = tar_of(&[("boot/system.map", MAP), ("big", &big)]);
        assert!(job_from_tar_head(&t[..140_000], false, false, 65536).is_ok());
        // Gzip, cut too.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &t).unwrap();
        let gz = gz.finish().unwrap();
        assert!(job_from_tar_head(&gz[..gz.len() / 2], true, false, 65536).is_ok());
    }

    #[test]
    fn missing_and_corrupt_maps() {
        let t = tar_of(&[("main.py", b"print(1)")]);
        assert!(matches!(
            job_from_tar_head(&t, false, true, 65536),
            Err(HeadError::NotFound)
        ));
        assert!(matches!(
            job_from_tar_head(
                b"this is not a tar archive, not at all, not even close",
                false,
                true,
                65536
            ),
            Err(HeadError::Corrupt)
        ));
        assert!(matches!(
            job_from_tar_head(b"bad gzip", true, true, 65536),
            Err(HeadError::Corrupt)
        ));
        let t = tar_of(&[("boot/system.map", b"{not json")]);
        assert!(matches!(
            job_from_tar_head(&t, false, true, 65536),
            Err(HeadError::Job(_))
        ));
    }

    #[test]
    fn zapp_yaml_when_there_is_no_map() {
        let yaml = b"execution:\n  groups:\n    - name: hello\n      path: file://python2.7:python\n      args: hello.py\n      devices:\n        - name: python2.7\n        - name: stdout\n";
        let t = tar_of(&[("zapp.yaml", yaml), ("hello.py", b"print(1)")]);
        let job = job_from_tar_head(&t, false, true, 65536).ok().unwrap();
        assert_eq!(job.groups[0].name, "hello");
    }

    #[tokio::test]
    async fn a_script_becomes_a_one_member_tar() {
        let script = b"#!file://python2.7:python\nprint('hi')\n";
        let cfg = JobConfig::default();
        let r = Reading {
            cfg: &cfg,
            started: Instant::now(),
        };
        let body = Body::from(Bytes::from_static(script));
        let intake = read_script(&r, body, Some(script.len() as u64), None)
            .await
            .ok()
            .unwrap();
        assert_eq!(intake.job.groups[0].exec.args.as_deref(), Some("script"));
        let image = intake.image.unwrap();
        let len = image.len.unwrap();
        let bytes = image.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len() as u64, len);
        let mut a = tar::Archive::new(&bytes[..]);
        let mut entries = a.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("script"));
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        assert_eq!(data, script);
    }

    #[tokio::test]
    async fn shebang_errors() {
        let cfg = JobConfig::default();
        let r = Reading {
            cfg: &cfg,
            started: Instant::now(),
        };
        for (script, msg) in [
            (&b"print(1)\n"[..], "Unsupported Content-Type"),
            (
                b"#!file://python2.7:python",
                "Cannot find shebang (#!) in script",
            ),
            (b"#! aaa/bbb\nx", "Bad interpreter aaa/bbb"),
            (
                b"#!file://bin/sh\nx",
                "Must supply image name in shebang url file://bin/sh",
            ),
        ] {
            let body = Body::from(Bytes::copy_from_slice(script));
            let e = read_script(&r, body, Some(script.len() as u64), None)
                .await
                .err()
                .unwrap();
            match e {
                ProxyError::BadRequest(m) => assert_eq!(m, msg),
                other => panic!("{other:?}"),
            }
        }
    }
}
