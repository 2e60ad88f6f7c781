//! Locations: the URL schemes a job uses for executables and devices
//! (spec/zerocloud.md §2.3) — `swift://`, `file://`, `zvm://`, `tcp://`,
//! `udp://`, `cache://` — their parsing, canonical text and `~` expansion.
//!
//! A location serializes as its URL string, as ZeroCloud's node encoder did.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Account names that mean "the account of the request".
const HOME_ACCOUNTS: [&str; 2] = ["~", "."];

/// A parsed location URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// `swift://<account>/<container>[/<object>]`: an object or a container.
    Swift(SwiftPath),
    /// `file://<image>:<path>` or `file://<path>`: a file inside a tar image.
    Image(ImagePath),
    /// `zvm://<node>:<device>`: a device of another node (a network channel).
    Zvm(ZvmPath),
    /// `tcp://host:port` or `udp://host:port` (for the `debug` device).
    Net(NetPath),
    /// `cache://<etag>/<account>/<container>/<object>`: parsed, never used.
    Cache(CachePath),
}

/// `swift://account/container/object`. The object part may contain `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwiftPath {
    pub account: String,
    pub container: Option<String>,
    pub object: Option<String>,
}

/// `file://image:path`; `image` is `"image"` (the user image) when absent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImagePath {
    pub image: String,
    pub path: String,
    /// Whether the URL named the image (`file://img:path`) or not (`file://path`).
    pub explicit_image: bool,
}

/// `zvm://node:device`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZvmPath {
    pub node: String,
    /// The device as written (`stdin`, `/dev/stdin`, `/dev/in-*`, ...).
    pub device: String,
}

/// Transport of a [`NetPath`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetProto {
    Tcp,
    Udp,
}

/// `tcp://host:port` / `udp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetPath {
    pub proto: NetProto,
    pub address: String,
}

/// `cache://etag/account/container/object`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CachePath {
    pub etag: String,
    pub rest: String,
}

impl SwiftPath {
    /// Builds a path from its parts (no validation).
    pub fn new(account: &str, container: Option<&str>, object: Option<&str>) -> Self {
        SwiftPath {
            account: account.to_string(),
            container: container.map(str::to_string),
            object: object.map(str::to_string),
        }
    }

    /// Parses the part after `swift://`: `account[/container[/object...]]`.
    /// Empty trailing parts are dropped (`a/c/` is the container `a/c`);
    /// an empty account, or an object after an empty container, is invalid.
    fn parse_rest(rest: &str) -> Option<SwiftPath> {
        let mut parts = rest.splitn(3, '/');
        let account = parts.next().unwrap_or_default();
        if account.is_empty() {
            return None;
        }
        let container = parts.next().filter(|c| !c.is_empty());
        let object = parts.next().filter(|o| !o.is_empty());
        if container.is_none() && object.is_some() {
            return None;
        }
        Some(SwiftPath::new(account, container, object))
    }

    /// `swift://a/c/o` (canonical: no trailing slash).
    pub fn url(&self) -> String {
        format!("swift:/{}", self.path())
    }

    /// The Swift path `/a/c/o`, `/a/c` or `/a` (ZeroCloud's `path_info`).
    pub fn path(&self) -> String {
        let mut p = format!("/{}", self.account);
        if let Some(c) = &self.container {
            p.push('/');
            p.push_str(c);
            if let Some(o) = &self.object {
                p.push('/');
                p.push_str(o);
            }
        }
        p
    }

    /// A container path (`swift://a/c`): its listing, not an object.
    pub fn is_container(&self) -> bool {
        self.container.is_some() && self.object.is_none()
    }

    /// Whether any part contains the wildcard `*`.
    pub fn has_wildcard(&self) -> bool {
        self.url().contains('*')
    }

    /// Replaces `~` or `.` as the account by `account`.
    pub fn expand_account(&mut self, account: &str) {
        if HOME_ACCOUNTS.contains(&self.account.as_str()) {
            self.account = account.to_string();
        }
    }
}

impl ZvmPath {
    /// The device as a channel alias: `/dev/` is prefixed unless present.
    pub fn alias(&self) -> String {
        if self.device.starts_with("/dev/") {
            self.device.clone()
        } else {
            format!("/dev/{}", self.device)
        }
    }
}

impl NetPath {
    /// The path in a manifest channel line: `tcp:host:port`.
    pub fn channel_path(&self) -> String {
        format!("{}:{}", self.proto.scheme(), self.address)
    }
}

impl NetProto {
    fn scheme(self) -> &'static str {
        match self {
            NetProto::Tcp => "tcp",
            NetProto::Udp => "udp",
        }
    }
}

impl Location {
    /// Parses a location URL. `None` for an empty string, an unknown scheme
    /// or a malformed URL of a known scheme.
    pub fn parse(url: &str) -> Option<Location> {
        if let Some(rest) = url.strip_prefix("swift://") {
            return SwiftPath::parse_rest(rest).map(Location::Swift);
        }
        if let Some(rest) = url.strip_prefix("file://") {
            let (image, path, explicit_image) = match rest.split_once(':') {
                Some((image, path)) => (image, path, true),
                None => ("image", rest, false),
            };
            if image.is_empty() || path.is_empty() {
                return None;
            }
            return Some(Location::Image(ImagePath {
                image: image.to_string(),
                path: path.to_string(),
                explicit_image,
            }));
        }
        if let Some(rest) = url.strip_prefix("zvm://") {
            let (node, device) = rest.split_once(':')?;
            if node.is_empty() || device.is_empty() || device == "/dev/" {
                return None;
            }
            return Some(Location::Zvm(ZvmPath {
                node: node.to_string(),
                device: device.to_string(),
            }));
        }
        for (scheme, proto) in [("tcp://", NetProto::Tcp), ("udp://", NetProto::Udp)] {
            if let Some(rest) = url.strip_prefix(scheme) {
                if rest.is_empty() {
                    return None;
                }
                return Some(Location::Net(NetPath {
                    proto,
                    address: rest.to_string(),
                }));
            }
        }
        if let Some(rest) = url.strip_prefix("cache://") {
            let (etag, rest) = rest.split_once('/')?;
            if etag.is_empty() || rest.is_empty() {
                return None;
            }
            return Some(Location::Cache(CachePath {
                etag: etag.to_string(),
                rest: rest.to_string(),
            }));
        }
        None
    }

    /// The URL text (canonical form for `swift://`).
    pub fn url(&self) -> String {
        match self {
            Location::Swift(p) => p.url(),
            Location::Image(p) if p.explicit_image => format!("file://{}:{}", p.image, p.path),
            Location::Image(p) => format!("file://{}", p.path),
            Location::Zvm(p) => format!("zvm://{}:{}", p.node, p.device),
            Location::Net(p) => format!("{}://{}", p.proto.scheme(), p.address),
            Location::Cache(p) => format!("cache://{}/{}", p.etag, p.rest),
        }
    }

    /// The Swift path, if this is a `swift://` location.
    pub fn as_swift(&self) -> Option<&SwiftPath> {
        match self {
            Location::Swift(p) => Some(p),
            _ => None,
        }
    }

    /// Replaces a `~`/`.` account by `account` (Swift locations only).
    pub fn expand_account(&mut self, account: &str) {
        if let Location::Swift(p) = self {
            p.expand_account(account);
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

impl fmt::Display for SwiftPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

/// The error of [`Location::from_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotALocation(pub String);

impl fmt::Display for NotALocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a location: {}", self.0)
    }
}

impl std::error::Error for NotALocation {}

impl FromStr for Location {
    type Err = NotALocation;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Location::parse(s).ok_or_else(|| NotALocation(s.to_string()))
    }
}

impl Serialize for Location {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.url())
    }
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for SwiftPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.url())
    }
}

impl<'de> Deserialize<'de> for SwiftPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match Location::parse(&s) {
            Some(Location::Swift(p)) => Ok(p),
            _ => Err(serde::de::Error::custom(NotALocation(s))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swift(a: &str, c: Option<&str>, o: Option<&str>) -> Option<Location> {
        Some(Location::Swift(SwiftPath::new(a, c, o)))
    }

    #[test]
    fn parses_every_scheme() {
        let cases: Vec<(&str, Option<Location>)> = vec![
            ("swift://a/c/o", swift("a", Some("c"), Some("o"))),
            ("swift://a/c/d/e/o", swift("a", Some("c"), Some("d/e/o"))),
            ("swift://a/c", swift("a", Some("c"), None)),
            ("swift://a/c/", swift("a", Some("c"), None)),
            ("swift://a", swift("a", None, None)),
            ("swift://~/c/o", swift("~", Some("c"), Some("o"))),
            ("swift://./c/*.txt", swift(".", Some("c"), Some("*.txt"))),
            ("swift://", None),
            ("swift:///c/o", None),
            ("swift://a//o", None),
            (
                "file://python2.7:python",
                Some(Location::Image(ImagePath {
                    image: "python2.7".into(),
                    path: "python".into(),
                    explicit_image: true,
                })),
            ),
            (
                "file://bin/sh",
                Some(Location::Image(ImagePath {
                    image: "image".into(),
                    path: "bin/sh".into(),
                    explicit_image: false,
                })),
            ),
            ("file://", None),
            ("file://img:", None),
            (
                "zvm://reduce:stdin",
                Some(Location::Zvm(ZvmPath {
                    node: "reduce".into(),
                    device: "stdin".into(),
                })),
            ),
            ("zvm://reduce", None),
            (
                "tcp://127.0.0.1:5000",
                Some(Location::Net(NetPath {
                    proto: NetProto::Tcp,
                    address: "127.0.0.1:5000".into(),
                })),
            ),
            (
                "udp://h:1",
                Some(Location::Net(NetPath {
                    proto: NetProto::Udp,
                    address: "h:1".into(),
                })),
            ),
            (
                "cache://e/a/c/o",
                Some(Location::Cache(CachePath {
                    etag: "e".into(),
                    rest: "a/c/o".into(),
                })),
            ),
            ("/abs/path", None),
            ("aaa/bbb", None),
            ("http://x/y", None),
            ("", None),
        ];
        for (url, want) in cases {
            assert_eq!(Location::parse(url), want, "{url}");
        }
    }

    #[test]
    fn urls_round_trip() {
        for url in [
            "swift://a/c/o",
            "swift://a/c",
            "file://python2.7:python",
            "file://bin/sh",
            "zvm://sort-1:/dev/in",
            "tcp://h:1",
            "udp://h:1",
            "cache://e/a/c/o",
        ] {
            let loc = Location::parse(url).unwrap();
            assert_eq!(loc.url(), url);
            let json = serde_json::to_string(&loc).unwrap();
            let back: Location = serde_json::from_str(&json).unwrap();
            assert_eq!(back, loc);
        }
        assert_eq!(
            Location::parse("swift://a/c/").unwrap().url(),
            "swift://a/c"
        );
    }

    #[test]
    fn home_account_is_expanded() {
        for home in ["~", "."] {
            let mut loc = Location::parse(&format!("swift://{home}/c/o")).unwrap();
            loc.expand_account("AUTH_x");
            assert_eq!(loc.url(), "swift://AUTH_x/c/o");
        }
        let mut other = Location::parse("swift://b/c/o").unwrap();
        other.expand_account("AUTH_x");
        assert_eq!(other.url(), "swift://b/c/o");
    }

    #[test]
    fn paths_and_aliases() {
        let p = SwiftPath::new("a", Some("c"), Some("o"));
        assert_eq!(p.path(), "/a/c/o");
        assert!(!p.is_container());
        assert!(SwiftPath::new("a", Some("c"), None).is_container());
        let z = ZvmPath {
            node: "n".into(),
            device: "stdin".into(),
        };
        assert_eq!(z.alias(), "/dev/stdin");
        let z2 = ZvmPath {
            node: "n".into(),
            device: "/dev/sort".into(),
        };
        assert_eq!(z2.alias(), "/dev/sort");
        let n = NetPath {
            proto: NetProto::Tcp,
            address: "h:1".into(),
        };
        assert_eq!(n.channel_path(), "tcp:h:1");
    }
}
