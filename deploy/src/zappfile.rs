//! A `.zapp` read back: its tar members (gzipped or not), its
//! `boot/system.map` and `zapp.yaml`, and the same tar with another
//! system map.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::bundle::{SYSTEM_MAP, ZAPP_YAML};

/// One tar member.
pub struct Member {
    /// Its name, without a leading `./`.
    pub name: String,
    pub header: tar::Header,
    pub data: Vec<u8>,
}

/// A zapp in memory.
pub struct ZappFile {
    /// The file name it was read from (`myapp.zapp`).
    pub file_name: String,
    /// The file as read.
    pub raw: Vec<u8>,
    /// Whether `raw` is gzipped.
    pub gzipped: bool,
    /// The un-gzipped tar.
    pub tar: Vec<u8>,
    pub members: Vec<Member>,
}

impl ZappFile {
    pub fn open(path: &Path) -> Result<ZappFile> {
        let raw =
            std::fs::read(path).with_context(|| format!("cannot read '{}'", path.display()))?;
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("'{}' has no usable file name", path.display()))?
            .to_string();
        ZappFile::from_bytes(file_name, raw)
            .with_context(|| format!("'{}' is not a zapp", path.display()))
    }

    pub fn from_bytes(file_name: String, raw: Vec<u8>) -> Result<ZappFile> {
        let gzipped = raw.starts_with(&[0x1f, 0x8b]);
        let tar = if gzipped {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw.as_slice())
                .read_to_end(&mut out)
                .context("bad gzip data")?;
            out
        } else {
            raw.clone()
        };
        let mut members = Vec::new();
        let mut archive = tar::Archive::new(tar.as_slice());
        for entry in archive.entries().context("bad tar data")? {
            let mut entry = entry.context("bad tar data")?;
            let kind = entry.header().entry_type();
            if matches!(
                kind,
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
            ) {
                continue;
            }
            let name = entry.path().context("bad member name")?;
            let name = name
                .to_str()
                .ok_or_else(|| anyhow!("member name {name:?} is not UTF-8"))?;
            let name = name.trim_start_matches("./").to_string();
            // Member names become object names under the deploy target:
            // only plain relative names, so none can climb out of it.
            if std::path::Path::new(&name)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(anyhow!(
                    "member name {name:?} is not a plain relative path ('..', '/' or '.' in it)"
                ));
            }
            let header = entry.header().clone();
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .with_context(|| format!("cannot read member {name}"))?;
            members.push(Member { name, header, data });
        }
        if members.is_empty() {
            return Err(anyhow!("empty tar"));
        }
        Ok(ZappFile {
            file_name,
            raw,
            gzipped,
            tar,
            members,
        })
    }

    /// The regular file member `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.name == name && m.header.entry_type().is_file())
    }

    /// `boot/system.map`, parsed.
    pub fn system_map(&self) -> Result<Value> {
        let m = self.member(SYSTEM_MAP).ok_or_else(|| {
            anyhow!(
                "{}: no {SYSTEM_MAP} in it (make it with zpm bundle)",
                self.file_name
            )
        })?;
        serde_json::from_slice(&m.data)
            .with_context(|| format!("{}: {SYSTEM_MAP} is not JSON", self.file_name))
    }

    /// `zapp.yaml`, parsed.
    pub fn zapp_yaml(&self) -> Result<serde_yaml::Value> {
        let m = self
            .member(ZAPP_YAML)
            .ok_or_else(|| anyhow!("{}: no {ZAPP_YAML} in it", self.file_name))?;
        let text = std::str::from_utf8(&m.data)
            .map_err(|_| anyhow!("{}: {ZAPP_YAML} is not UTF-8", self.file_name))?;
        crate::bundle::parse_zapp_yaml(text, &format!("{}: {ZAPP_YAML}", self.file_name))
    }

    /// The tar (un-gzipped) with `job` as its `boot/system.map`, first.
    pub fn tar_with_system_map(&self, job: &Value) -> Result<Vec<u8>> {
        let map = serde_json::to_vec(job)?;
        let mut b = tar::Builder::new(Vec::new());
        let mut header = match self.member(SYSTEM_MAP) {
            Some(m) => m.header.clone(),
            None => tar::Header::new_gnu(),
        };
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(map.len() as u64);
        if self.member(SYSTEM_MAP).is_none() {
            header.set_mode(0o644);
        }
        b.append_data(&mut header, SYSTEM_MAP, map.as_slice())?;
        for m in self.members.iter().filter(|m| m.name != SYSTEM_MAP) {
            let mut h = m.header.clone();
            b.append_data(&mut h, &m.name, m.data.as_slice())
                .with_context(|| format!("cannot copy member {}", m.name))?;
        }
        Ok(b.into_inner()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn reads_plain_and_gzipped_and_rewrites_the_map() {
        let long = format!("{}/file.py", "d".repeat(120));
        let tar = tar_of(&[
            ("boot/system.map", b"[{\"name\": \"a\"}]"),
            ("./zapp.yaml", b"meta: {name: a}\n"),
            (&long, b"print(1)"),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        for (raw, gzipped) in [(tar.clone(), false), (gz, true)] {
            let z = ZappFile::from_bytes("a.zapp".into(), raw).unwrap();
            assert_eq!(z.gzipped, gzipped);
            assert_eq!(z.tar, tar);
            assert_eq!(z.system_map().unwrap(), json!([{"name": "a"}]));
            assert_eq!(z.zapp_yaml().unwrap()["meta"]["name"].as_str(), Some("a"));
            assert_eq!(
                z.member(&long).map(|m| m.data.as_slice()),
                Some(&b"print(1)"[..])
            );

            let new = z.tar_with_system_map(&json!([{"name": "b"}])).unwrap();
            let again = ZappFile::from_bytes("a.zapp".into(), new).unwrap();
            let names: Vec<&str> = again.members.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(names, ["boot/system.map", "zapp.yaml", long.as_str()]);
            assert_eq!(again.system_map().unwrap(), json!([{"name": "b"}]));
            assert_eq!(again.member(&long).unwrap().data, b"print(1)");
        }
    }

    #[test]
    fn a_member_climbing_out_is_refused() {
        for bad in ["../../other/index.html", "/etc/x.html", "a/../../b.html"] {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_old();
            // Written raw: the tar crate's own setters refuse such names.
            h.as_old_mut().name[..bad.len()].copy_from_slice(bad.as_bytes());
            h.set_size(1);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
            let tar = b.into_inner().unwrap();
            let err = ZappFile::from_bytes("a.zapp".into(), tar).err().expect(bad);
            assert!(
                format!("{err:#}").contains("not a plain relative path"),
                "{bad}: {err:#}"
            );
        }
    }

    #[test]
    fn not_a_zapp() {
        assert!(ZappFile::from_bytes("x".into(), b"\x1f\x8bnot gzip".to_vec()).is_err());
        let z = ZappFile::from_bytes("x.zapp".into(), tar_of(&[("main.py", b"")])).unwrap();
        let e = z.system_map().unwrap_err().to_string();
        assert_eq!(
            e,
            "x.zapp: no boot/system.map in it (make it with zpm bundle)"
        );
        assert!(z.zapp_yaml().is_err());
    }
}
