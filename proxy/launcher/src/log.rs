//! Where the servers' log lines go: stderr, in batches.
//!
//! The proxy logs a line per request (its access log). A write(2) per line
//! was one of the 17 to 19 system calls a 4 KiB GET costs, end to end
//! (docs/benchmarks.md). Lines gather in memory instead and go out
//! together:
//! - [`FLUSH_EVERY`] after the first line of a batch, by a thread of
//!   their own (which sleeps while no line waits);
//! - when [`BATCH`] bytes have gathered;
//! - at once for a warning or an error, with what came before it, so the
//!   order holds;
//! - at exit ([`flush`], also called from the panic hook), and with
//!   `zerocloud`'s own messages ([`say`]).
//!
//! So an info or debug line may reach the log up to [`FLUSH_EVERY`] late.
//! A process that dies without exiting (killed by a signal it does not
//! handle, such as SIGKILL, or crashing) loses at most that much of its
//! log. What other parts of the process print straight to stderr (the
//! image install's progress, a worker's last words) may come out ahead
//! of info lines logged just before it.

use std::io::Write;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The longest an info line waits before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Bytes gathered that are written at once, without waiting.
pub const BATCH: usize = 32 * 1024;

/// Lines waiting for `out`.
struct Batcher<W> {
    state: Mutex<(Vec<u8>, W)>,
    /// Told when a line starts a new batch: the flushing thread sleeps
    /// while nothing waits.
    waiting: Condvar,
}

impl<W: Write> Batcher<W> {
    fn new(out: W) -> Batcher<W> {
        Batcher {
            state: Mutex::new((Vec::with_capacity(BATCH * 2), out)),
            waiting: Condvar::new(),
        }
    }

    /// Adds `line`; writes out what has gathered if `urgent` or the batch
    /// is full.
    fn push(&self, line: &[u8], urgent: bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (pending, out) = &mut *s;
        let first = pending.is_empty();
        pending.extend_from_slice(line);
        if urgent || pending.len() >= BATCH {
            write_out(pending, out);
        } else if first {
            self.waiting.notify_one();
        }
    }

    /// Waits until a line waits to be written.
    fn wait_for_a_line(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.0.is_empty() {
            s = self.waiting.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn flush(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (pending, out) = &mut *s;
        write_out(pending, out);
    }

    /// [`flush`](Self::flush) unless another thread is writing (it will
    /// write what waits): for the panic hook, which must not wait.
    fn try_flush(&self) {
        let mut s = match self.state.try_lock() {
            Ok(s) => s,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        let (pending, out) = &mut *s;
        write_out(pending, out);
    }
}

/// Writes `pending` out in whole lines, at most [`PIPE_BUF`] bytes a write
/// where lines allow: the sandbox's workers share this stderr, and a pipe
/// keeps a write that small in one piece, so a worker's line never lands
/// inside one of ours.
fn write_out(pending: &mut Vec<u8>, out: &mut impl Write) {
    let mut rest = &pending[..];
    while !rest.is_empty() {
        let window = &rest[..rest.len().min(PIPE_BUF)];
        let end = match window.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            // A line longer than PIPE_BUF goes out whole.
            None => rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1),
        };
        // A log that cannot be written has nowhere to say so.
        let _ = out.write_all(&rest[..end]);
        rest = &rest[end..];
    }
    let _ = out.flush();
    pending.clear();
}

/// What Linux writes to a pipe in one piece.
const PIPE_BUF: usize = 4096;

fn stderr() -> &'static Batcher<std::io::Stderr> {
    static STDERR: OnceLock<Batcher<std::io::Stderr>> = OnceLock::new();
    STDERR.get_or_init(|| Batcher::new(std::io::stderr()))
}

/// Writes out the lines that wait.
pub fn flush() {
    stderr().flush();
}

/// Prints one of zerocloud's own messages (`zerocloud: <msg>`) on stderr
/// at once, after the log lines that wait, as a warning would be.
pub fn say(msg: &str) {
    stderr().push(format!("zerocloud: {msg}\n").as_bytes(), true);
}

/// The [`MakeWriter`] for `tracing_subscriber::fmt`: stderr.
#[derive(Clone, Copy)]
pub struct Batched {
    /// Whether info and debug lines wait for the batch (else every line
    /// is written at once).
    batch: bool,
}

impl Batched {
    /// Every line written at once: for commands that serve nothing, whose
    /// log interleaves with what they print.
    pub fn direct() -> Batched {
        Batched { batch: false }
    }

    /// Lines in batches. The first call starts the thread that writes out
    /// a batch [`FLUSH_EVERY`] after its first line (and sleeps while no
    /// line waits), and hooks [`flush`] into panics.
    pub fn start() -> Batched {
        static STARTED: OnceLock<()> = OnceLock::new();
        STARTED.get_or_init(|| {
            let _ = std::thread::Builder::new()
                .name("log-flush".into())
                .spawn(|| loop {
                    stderr().wait_for_a_line();
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                });
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                stderr().try_flush();
                hook(info);
            }));
        });
        Batched { batch: true }
    }
}

/// One log line being written (`tracing_subscriber` writes each whole).
pub struct Line {
    urgent: bool,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        stderr().push(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Batched {
    /// Whether a line of `level` waits for the batch: info and below.
    fn waits(&self, level: &Level) -> bool {
        self.batch && *level > Level::WARN
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { urgent: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line {
            urgent: !self.waits(meta.level()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(b: &Batcher<Vec<u8>>) -> String {
        String::from_utf8(b.state.lock().unwrap().1.clone()).unwrap()
    }

    #[test]
    fn info_lines_wait_and_a_warning_takes_them_along_in_order() {
        let b = Batcher::new(Vec::new());
        b.push(b"info 1\n", false);
        b.push(b"info 2\n", false);
        assert_eq!(written(&b), "");
        b.push(b"warn\n", true);
        assert_eq!(written(&b), "info 1\ninfo 2\nwarn\n");
        b.push(b"info 3\n", false);
        b.flush();
        assert_eq!(written(&b), "info 1\ninfo 2\nwarn\ninfo 3\n");
    }

    #[test]
    fn the_flusher_is_woken_by_the_first_line_of_a_batch() {
        let b = std::sync::Arc::new(Batcher::new(Vec::new()));
        let (woken, rx) = std::sync::mpsc::channel();
        {
            let b = b.clone();
            std::thread::spawn(move || {
                b.wait_for_a_line();
                let _ = woken.send(());
            });
        }
        // Asleep on the empty batch (nothing to write, nothing to wake it).
        let nap = Duration::from_millis(50);
        assert!(rx.recv_timeout(nap).is_err(), "woke with nothing to write");
        b.push(b"info\n", false);
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "the first line of a batch did not wake the flusher"
        );
        // A warning takes the batch out at once: nothing waits after it.
        b.push(b"warn\n", true);
        assert!(b.state.lock().unwrap().0.is_empty());
    }

    #[test]
    fn a_full_batch_goes_out_without_waiting() {
        let b = Batcher::new(Vec::new());
        let line = [b'x'; 1000];
        for _ in 0..BATCH / 1000 {
            b.push(&line, false);
        }
        assert_eq!(written(&b), "");
        b.push(&line, false);
        assert_eq!(written(&b).len(), (BATCH / 1000 + 1) * 1000);
    }

    #[test]
    fn writes_are_whole_lines_of_at_most_pipe_buf_bytes() {
        struct Writes(Vec<Vec<u8>>);
        impl Write for Writes {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.push(b.to_vec());
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut pending = Vec::new();
        for i in 0..100 {
            pending.extend_from_slice(format!("line {i:03} {}\n", "x".repeat(90)).as_bytes());
        }
        let long = format!("{}\n", "y".repeat(PIPE_BUF * 2));
        pending.extend_from_slice(long.as_bytes());
        pending.extend_from_slice(b"last\n");
        let all = pending.clone();
        let mut out = Writes(vec![]);
        write_out(&mut pending, &mut out);
        assert!(pending.is_empty());
        assert_eq!(out.0.concat(), all);
        for w in &out.0 {
            assert!(w.ends_with(b"\n"));
            assert!(w.len() <= PIPE_BUF || w == long.as_bytes(), "{}", w.len());
        }
        assert!(out.0.len() > 2);
    }

    #[test]
    fn levels_decide_what_waits() {
        let batched = Batched { batch: true };
        assert!(batched.waits(&Level::INFO) && batched.waits(&Level::DEBUG));
        assert!(!batched.waits(&Level::WARN) && !batched.waits(&Level::ERROR));
        assert!(!Batched::direct().waits(&Level::INFO));
    }
}
