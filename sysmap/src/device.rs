//! The device table (spec/zerocloud.md §2.2): which device names exist, how
//! they may be accessed, their manifest channel type, and the `mode` values.

use serde::{Deserialize, Serialize};

/// What a device name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Stdin,
    Stdout,
    Stderr,
    Input,
    Output,
    Script,
    Image,
    Debug,
    Db,
    /// Any other name: a system image (e.g. `python2.7`) when the object
    /// server knows it, an unresolvable device otherwise.
    Other,
}

impl DeviceKind {
    /// The kind of a device name.
    pub fn of(name: &str) -> DeviceKind {
        match name {
            "stdin" => DeviceKind::Stdin,
            "stdout" => DeviceKind::Stdout,
            "stderr" => DeviceKind::Stderr,
            "input" => DeviceKind::Input,
            "output" => DeviceKind::Output,
            "script" => DeviceKind::Script,
            "image" => DeviceKind::Image,
            "debug" => DeviceKind::Debug,
            "db" => DeviceKind::Db,
            _ => DeviceKind::Other,
        }
    }

    /// The access flags of the device as declared (ZeroCloud's `DEVICE_MAP`).
    /// `Other` is 0 here; a path-less `Other` becomes random-readable.
    pub fn access(self) -> Access {
        match self {
            DeviceKind::Stdin => Access::READABLE,
            DeviceKind::Stdout | DeviceKind::Stderr => Access::WRITABLE,
            DeviceKind::Input | DeviceKind::Script => Access::RANDOM_READABLE,
            DeviceKind::Output => Access(Access::RANDOM.0 | Access::WRITABLE.0),
            DeviceKind::Image => Access::CDR,
            DeviceKind::Debug => Access::NETWORK,
            DeviceKind::Db => Access::CHECKPOINT,
            DeviceKind::Other => Access(0),
        }
    }

    /// The ZeroVM channel type in the manifest: 0 sequential, 3 random.
    /// `None` for devices that get no manifest line (`db`); `Other` devices
    /// are type 3 when they are system images.
    pub fn channel_type(self) -> Option<u8> {
        match self {
            DeviceKind::Stdin | DeviceKind::Stdout | DeviceKind::Stderr | DeviceKind::Debug => {
                Some(0)
            }
            DeviceKind::Input
            | DeviceKind::Output
            | DeviceKind::Script
            | DeviceKind::Image
            | DeviceKind::Other => Some(3),
            DeviceKind::Db => None,
        }
    }
}

/// Access flags of a channel; serialized as ZeroCloud's integer bit mask
/// (1 readable, 2 writable, 4 random, 8 network, 16 CDR, 32 checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Access(pub u8);

impl Access {
    pub const READABLE: Access = Access(1);
    pub const WRITABLE: Access = Access(2);
    pub const RANDOM: Access = Access(4);
    pub const NETWORK: Access = Access(8);
    pub const CDR: Access = Access(16);
    pub const CHECKPOINT: Access = Access(32);
    pub const RANDOM_READABLE: Access = Access(5);

    pub fn readable(self) -> bool {
        self.0 & Self::READABLE.0 != 0
    }
    pub fn writable(self) -> bool {
        self.0 & Self::WRITABLE.0 != 0
    }
    pub fn random(self) -> bool {
        self.0 & Self::RANDOM.0 != 0
    }
    pub fn network(self) -> bool {
        self.0 & Self::NETWORK.0 != 0
    }
    pub fn cdr(self) -> bool {
        self.0 & Self::CDR.0 != 0
    }
    pub fn checkpoint(self) -> bool {
        self.0 & Self::CHECKPOINT.0 != 0
    }
}

/// How the program sees a channel under `/dev` (NVRAM `[mapping]`).
/// ZeroCloud's default is `file` for every device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    File,
    Char,
    Pipe,
    Block,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "file" => Some(Mode::File),
            "char" => Some(Mode::Char),
            "pipe" => Some(Mode::Pipe),
            "block" => Some(Mode::Block),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::File => "file",
            Mode::Char => "char",
            Mode::Pipe => "pipe",
            Mode::Block => "block",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_table_matches_the_spec() {
        // (name, access bits, manifest type)
        let table = [
            ("stdin", 1, Some(0)),
            ("stdout", 2, Some(0)),
            ("stderr", 2, Some(0)),
            ("input", 5, Some(3)),
            ("output", 6, Some(3)),
            ("script", 5, Some(3)),
            ("image", 16, Some(3)),
            ("debug", 8, Some(0)),
            ("db", 32, None),
            ("python2.7", 0, Some(3)),
        ];
        for (name, bits, ty) in table {
            let kind = DeviceKind::of(name);
            assert_eq!(kind.access().0, bits, "{name}");
            assert_eq!(kind.channel_type(), ty, "{name}");
        }
    }

    #[test]
    fn modes() {
        for m in ["file", "char", "pipe", "block"] {
            assert_eq!(Mode::parse(m).unwrap().as_str(), m);
        }
        assert_eq!(Mode::parse("rw"), None);
        assert_eq!(Mode::default(), Mode::File);
    }
}
