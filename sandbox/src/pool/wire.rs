//! The pool's wire format (both directions) and the checks a worker's
//! reply passes before the pool believes it.
//!
//! A message is one or more SEQPACKET records; each record is one flag
//! byte (`+` more records follow, `.` the last), up to [`PACKET`] bytes of
//! the message and up to [`FDS_PER_PACKET`] attached descriptors
//! ([`Assembler`] puts the bytes back together); the message bytes are
//! JSON. Parent → worker: a `Request` (`sha256`, the session minus buffers
//! and files, with `file_offsets` of file channels only, since a buffer
//! arrives as a memfd; `artifact`: the artifact's index among the
//! descriptors, `channels`: `[alias, index]` pairs, `system_images`:
//! `[mount point, index]` pairs). Worker → parent: a [`Reply`]: `{"ready":{"pid":…}}` once
//! at start-up, then per request `{"outcome":{"report":…,"ending":…,
//! "detail":…}}` or `{"refused":{"error":…}}`, never with descriptors.
//!
//! A worker runs untrusted code: were it subverted, its reply is the one
//! thing it could still send. [`decode_reply`] (pure, fuzzed as
//! `sandbox/fuzz` `pool_reply`) accepts only a reply the worker's own code
//! could have written: a report whose exit state is its ending's, no
//! line break inside a report line (a forged line would change what
//! `zerovm` prints), hex digests, a failure's errno a real one (never 0,
//! which would read as success), no daemon flag, a pid above 0.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

use crate::engine::Session;
use crate::report::{Ending, Report};

/// Most message bytes in one SEQPACKET record (well under the default
/// socket buffer, so a record never fails with EMSGSIZE).
pub const PACKET: usize = 32 * 1024;
/// Most descriptors attached to one record (the kernel allows 253).
pub const FDS_PER_PACKET: usize = 128;
/// Flag byte: more records of this message follow.
const MORE: u8 = b'+';
/// Flag byte: the last record of this message.
const LAST: u8 = b'.';
/// Largest reply the parent accepts from a worker.
pub(crate) const MAX_REPLY: usize = 16 << 20;

/// Largest request a worker accepts; the parent refuses a bigger job
/// before sending it.
pub(crate) const MAX_REQUEST: usize = 256 << 20;

/// Parent → worker: one job.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    /// sha256 of the module.
    pub sha256: [u8; 32],
    /// The session; its buffers, files and system images arrive as the
    /// descriptors named below.
    pub session: Session,
    /// Index of the artifact among the received descriptors.
    pub artifact: usize,
    /// `(alias, descriptor index)` of every channel.
    pub channels: Vec<(String, usize)>,
    /// `(mount point, descriptor index)` of every system image.
    pub system_images: Vec<(String, usize)>,
}

/// Worker → parent. Decoded with [`decode_reply`], which checks it too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Start-up done (isolated, engine up): send jobs.
    Ready {
        /// The worker's pid.
        pid: u32,
    },
    /// The worker cannot start, or cannot take this job.
    Refused {
        /// Why.
        error: String,
    },
    /// A job's end, as [`Outcome`].
    Outcome {
        /// The report (boxed: the other replies are small).
        report: Box<Report>,
        /// How the session ended.
        ending: Ending,
        /// More detail.
        detail: Option<String>,
    },
}

/// Sends one message (`bytes` and `fds`) as SEQPACKET records.
pub(crate) fn send_message(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    let records = bytes
        .len()
        .div_ceil(PACKET)
        .max(fds.len().div_ceil(FDS_PER_PACKET))
        .max(1);
    for k in 0..records {
        let data = bytes
            .get(k * PACKET..)
            .map(|rest| &rest[..rest.len().min(PACKET)])
            .unwrap_or(&[]);
        let group = fds
            .get(k * FDS_PER_PACKET..)
            .map(|rest| &rest[..rest.len().min(FDS_PER_PACKET)])
            .unwrap_or(&[]);
        let flag = [if k + 1 == records { LAST } else { MORE }];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_PACKET))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !group.is_empty() && !control.push(SendAncillaryMessage::ScmRights(group)) {
            return Err(std::io::Error::other("descriptors do not fit a record"));
        }
        let iov = [IoSlice::new(&flag), IoSlice::new(data)];
        loop {
            match sendmsg(socket, &iov, &mut control, SendFlags::NOSIGNAL) {
                Ok(_) => break,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Receives one message; `Ok(None)` when the peer has closed its end
/// before a message began. With a `deadline`, `ErrorKind::TimedOut` when
/// it passes first. More than `limit` bytes or `max_fds` descriptors is
/// `InvalidData` (the descriptors received so far are closed).
pub(crate) fn recv_message(
    socket: BorrowedFd<'_>,
    deadline: Option<Instant>,
    limit: usize,
    max_fds: usize,
) -> std::io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    use std::io::{Error, ErrorKind};
    let mut message = Assembler::new(limit);
    let mut fds = Vec::new();
    let mut buf = vec![0u8; PACKET + 1];
    loop {
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ErrorKind::TimedOut.into());
            }
            // Zero would mean "no timeout".
            let left = left.max(Duration::from_millis(1));
            rustix::net::sockopt::set_socket_timeout(
                socket,
                rustix::net::sockopt::Timeout::Recv,
                Some(left),
            )?;
        }
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_PACKET))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            recvmsg(socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
        };
        let msg = match received {
            Ok(msg) => msg,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) if deadline.is_some() => return Err(ErrorKind::TimedOut.into()),
            Err(e) => return Err(e.into()),
        };
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = m {
                fds.extend(received);
            }
        }
        if fds.len() > max_fds {
            return Err(Error::new(ErrorKind::InvalidData, "unexpected descriptors"));
        }
        if msg.bytes == 0 {
            return if message.is_empty() && fds.is_empty() {
                Ok(None)
            } else {
                Err(ErrorKind::UnexpectedEof.into())
            };
        }
        if msg
            .flags
            .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
        {
            return Err(Error::new(ErrorKind::InvalidData, "truncated record"));
        }
        let record = buf.get(..msg.bytes).unwrap_or_default();
        match message.push(record) {
            Ok(Some(whole)) => return Ok(Some((whole, fds))),
            Ok(None) => {}
            Err(e) => return Err(Error::new(ErrorKind::InvalidData, e.to_string())),
        }
    }
}

/// Why a record or a reply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A record without its flag byte.
    #[error("empty record")]
    EmptyRecord,
    /// A flag byte other than `+` and `.`.
    #[error("bad record flag")]
    BadFlag,
    /// More message bytes than the receiver accepts.
    #[error("message too large")]
    TooLarge,
    /// Not the JSON of a [`Reply`].
    #[error("not a reply: {0}")]
    Json(String),
    /// A reply the worker's own code could not have written.
    #[error("implausible reply: {0}")]
    Implausible(String),
}

/// Puts a message back together from its records (each: the flag byte,
/// then its share of the message), at most `limit` bytes.
#[derive(Debug)]
pub struct Assembler {
    message: Vec<u8>,
    limit: usize,
}

impl Assembler {
    /// An empty message of at most `limit` bytes.
    pub fn new(limit: usize) -> Assembler {
        Assembler {
            message: Vec::new(),
            limit,
        }
    }

    /// Whether no record has been taken since the last whole message.
    pub fn is_empty(&self) -> bool {
        self.message.is_empty()
    }

    /// Takes one record; the whole message once its last record is in
    /// (the assembler is then empty again).
    pub fn push(&mut self, record: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
        let (&flag, data) = record.split_first().ok_or(WireError::EmptyRecord)?;
        if self.message.len().saturating_add(data.len()) > self.limit {
            return Err(WireError::TooLarge);
        }
        self.message.extend_from_slice(data);
        match flag {
            LAST => Ok(Some(std::mem::take(&mut self.message))),
            MORE => Ok(None),
            _ => Err(WireError::BadFlag),
        }
    }
}

/// A worker's reply from its message bytes: parsed, then checked to be
/// one the worker's own code could have written (see the module docs).
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, WireError> {
    let reply: Reply = serde_json::from_slice(bytes).map_err(|e| WireError::Json(e.to_string()))?;
    let implausible = |why: &str| Err(WireError::Implausible(why.to_string()));
    match &reply {
        Reply::Ready { pid: 0 } => return implausible("pid 0"),
        Reply::Ready { .. } | Reply::Refused { .. } => {}
        Reply::Outcome { report, ending, .. } => {
            if report.exit_state.as_deref() != Some(ending.exit_state().as_str()) {
                return implausible("the report's exit state is not its ending's");
            }
            if let Ending::Failed { errno, .. } = ending {
                if !(1..=4095).contains(errno) {
                    return implausible("a failure's errno out of range");
                }
            }
            if report.daemon {
                return implausible("a daemon report");
            }
            // A line break would start a report line of its own.
            let line_safe = |s: &str| !s.contains(['\n', '\r']);
            let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
            if !line_safe(&ending.exit_state()) {
                return implausible("a line break in the exit state");
            }
            if !report
                .etags
                .iter()
                .all(|e| line_safe(&e.alias) && hex(&e.digest))
            {
                return implausible("a malformed channel etag");
            }
            if !report.memory_etag.as_deref().is_none_or(hex) {
                return implausible("a malformed memory etag");
            }
        }
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_reply_carrying_descriptors_is_refused() {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let extra = rustix::fs::memfd_create("x", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        send_message(a.as_fd(), b"{}", &[extra.as_fd()]).unwrap();
        let e = recv_message(b.as_fd(), None, MAX_REPLY, 0).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        send_message(a.as_fd(), b"{}", &[]).unwrap();
        let (bytes, fds) = recv_message(b.as_fd(), None, MAX_REPLY, 0)
            .unwrap()
            .unwrap();
        assert_eq!((bytes.as_slice(), fds.len()), (&b"{}"[..], 0));
        // And a message over the byte limit.
        send_message(a.as_fd(), &[b'x'; 100], &[]).unwrap();
        let e = recv_message(b.as_fd(), None, 99, 0).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_message_past_one_record_arrives_whole_with_every_descriptor() {
        // More bytes than PACKET and more descriptors than FDS_PER_PACKET:
        // several records, put back together in order.
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let bytes: Vec<u8> = (0..3 * PACKET + 123).map(|i| (i % 251) as u8).collect();
        let files: Vec<File> = (0..2 * FDS_PER_PACKET as u32 + 7)
            .map(|i| {
                let fd = rustix::fs::memfd_create("m", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
                let file = File::from(fd);
                file.write_all_at(&i.to_le_bytes(), 0).unwrap();
                file
            })
            .collect();
        let (bytes_in, fds_in) = std::thread::scope(|scope| {
            let sender = scope.spawn(|| {
                let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
                send_message(a.as_fd(), &bytes, &fds)
            });
            let got = recv_message(b.as_fd(), None, bytes.len(), files.len())
                .unwrap()
                .unwrap();
            sender.join().unwrap().unwrap();
            got
        });
        assert_eq!(bytes_in, bytes);
        assert_eq!(fds_in.len(), files.len());
        for (i, fd) in fds_in.into_iter().enumerate() {
            let mut n = [0u8; 4];
            File::from(fd).read_exact_at(&mut n, 0).unwrap();
            assert_eq!(u32::from_le_bytes(n) as usize, i, "descriptor order");
        }
    }

    fn outcome(ending: Ending) -> Reply {
        Reply::Outcome {
            report: Box::new(Report {
                validation: crate::report::Validation::Validated,
                daemon: false,
                user_code: 0,
                etags: vec![crate::report::ChannelEtag {
                    alias: "/dev/stdout".into(),
                    digest: "d41d8cd98f00b204e9800998ecf8427e".into(),
                }],
                memory_etag: None,
                accounting: Default::default(),
                exit_state: Some(ending.exit_state()),
            }),
            ending,
            detail: Some("a detail\nmay span lines".into()),
        }
    }

    #[test]
    fn replies_a_worker_writes_decode_to_themselves() {
        for reply in [
            Reply::Ready { pid: 7 },
            Reply::Refused {
                error: "cannot load".into(),
            },
            outcome(Ending::Exited),
            outcome(Ending::Timeout),
            outcome(Ending::Trap("unreachable".into())),
            outcome(Ending::Failed {
                errno: 5,
                message: "/dev/stdout;0 failed to write".into(),
            }),
        ] {
            let bytes = serde_json::to_vec(&reply).unwrap();
            assert_eq!(decode_reply(&bytes), Ok(reply));
        }
    }

    #[test]
    fn implausible_replies_are_refused() {
        let refused = |reply: &Reply| {
            let bytes = serde_json::to_vec(reply).unwrap();
            matches!(decode_reply(&bytes), Err(WireError::Implausible(_)))
        };
        assert!(refused(&Reply::Ready { pid: 0 }));
        // A report line forged through a trap kind or a failure message.
        assert!(refused(&outcome(Ending::Trap("x\n1\n0".into()))));
        assert!(refused(&outcome(Ending::Failed {
            errno: 0,
            message: "looks fine".into()
        })));
        let mut r = outcome(Ending::Exited);
        if let Reply::Outcome { report, .. } = &mut r {
            report.exit_state = Some("session timeout".into());
        }
        assert!(refused(&r), "exit state not the ending's");
        for tweak in [
            |r: &mut Report| r.daemon = true,
            |r: &mut Report| r.etags[0].digest = "not hex".into(),
            |r: &mut Report| r.etags[0].alias = "/dev/a\n1".into(),
            |r: &mut Report| r.memory_etag = Some(String::new()),
        ] {
            let mut r = outcome(Ending::Exited);
            if let Reply::Outcome { report, .. } = &mut r {
                tweak(report);
            }
            assert!(refused(&r), "{r:?}");
        }
        assert!(matches!(decode_reply(b"{}"), Err(WireError::Json(_))));
        assert!(matches!(decode_reply(b"\xff"), Err(WireError::Json(_))));
    }

    #[test]
    fn the_fuzz_seeds_are_replies_a_worker_writes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/pool_reply");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            decode_reply(&bytes).unwrap();
            seen += 1;
        }
        assert!(seen >= 4);
    }

    #[test]
    fn records_assemble_within_the_limit() {
        let mut a = Assembler::new(5);
        assert_eq!(a.push(b"+ab"), Ok(None));
        assert!(!a.is_empty());
        assert_eq!(a.push(b".cd"), Ok(Some(b"abcd".to_vec())));
        assert!(a.is_empty());
        assert_eq!(a.push(b""), Err(WireError::EmptyRecord));
        assert_eq!(a.push(b"?x"), Err(WireError::BadFlag));
        let mut a = Assembler::new(3);
        assert_eq!(a.push(b"+ab"), Ok(None));
        assert_eq!(a.push(b".cd"), Err(WireError::TooLarge));
    }
}
