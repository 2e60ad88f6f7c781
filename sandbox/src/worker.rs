//! A pool worker: the process behind `zerovm --worker` ([`crate::pool`]).
//!
//! Start-up, before any request is read (the process is single-threaded
//! until the watchdog starts, which closing inherited descriptors and
//! `unshare(CLONE_NEWUSER)` require):
//! 0. **The engine** is configured, without its epoch ticker (it starts
//!    no thread): with resident memory (the default; `--no-resident`
//!    turns it off) it opens `/proc/self/pagemap`, `/proc/self/maps` and a
//!    userfaultfd, and wasmtime's pooling allocator its own pagemap, all
//!    of which need `/proc` (see [`crate::engine::resident`]).
//! 1. **Namespaces** (unless `--no-isolate`): a new user namespace (our
//!    uid/gid mapped to themselves, `setgroups` denied), a new mount
//!    namespace and a new network namespace (only a loopback that is down:
//!    no route anywhere).
//! 2. **An empty root.** The worker creates a private directory in its
//!    scratch directory (the pool's 0700 cache dir), enters it, removes it
//!    and `chroot`s into it: its root is a deleted, empty directory in
//!    which nothing can be created (ENOENT) and from which `..` leads
//!    nowhere. (A tmpfs + `pivot_root` would also detach the host mounts
//!    from the private mount namespace, but needs rustix's `mount` feature;
//!    here the host mounts stay in the private namespace, unreachable by
//!    path, and an escape would need `chroot`/`fchdir`/a directory
//!    descriptor: the filter denies the calls, and every descriptor above
//!    stderr inherited through exec is closed first thing.) Then every
//!    capability is dropped.
//! 3. **The watchdog** thread ([`watch_parent`]): it ends the process as
//!    soon as the pool's end of the socket is gone (see below).
//! 4. **The engine's epoch ticker** starts, then the one long-lived guest
//!    thread (stack [`Engine::run_thread_stack`]).
//! 5. **seccomp**: an allowlist ([`ALLOWED`]) installed on every thread
//!    (TSYNC: the watchdog, the ticker and the guest thread, all created
//!    before it, included); anything else fails with EPERM. No thread is
//!    created after this point, so `clone`/`clone3` are not in it. With
//!    resident memory, `ioctl` is allowed for three requests on their own
//!    descriptors only ([`IoctlFds`]).
//! 6. `ready`, then one job at a time: the artifact arrives as a
//!    descriptor and is mapped with `Module::deserialize_open_file` unless
//!    its sha256 is in the engine's cache already; channels arrive as
//!    descriptors (`Session::files`, each at its `Session::file_offsets`
//!    entry, which the engine applies; the parent already cut write-only
//!    files there, as the filter allows no `ftruncate`); the outcome goes
//!    back as JSON. Then the run's leftovers go (the memory reset, the
//!    instance and the session's descriptors: [`Leftovers`]), and only
//!    then is the next job read. A cancelled run ends with a SIGKILL from
//!    the parent.
//!
//! The socket is the worker's standard input. CPU figures in a worker's
//! report are the whole worker process's (ZeroVM's own definition), read
//! from a `/proc/self/stat` opened before the root went away.
//!
//! **When the parent goes away** (the pool dropped, or its process killed
//! or crashed: the kernel closes its end of the socket either way), the
//! worker exits within moments, whatever it is doing. The job loop only
//! reads the socket between sessions, so a guest spinning under a long
//! session timeout would otherwise run on as an orphan; instead the
//! watchdog thread blocks in `ppoll` on its own duplicate of the socket
//! with no requested events (it never reads, so it takes no message from
//! the job loop) and, once the kernel reports `POLLHUP` or `POLLERR`,
//! calls `std::process::exit(0)`, which ends every thread. `poll` reports
//! the state of the socket, not an edge, so a parent that died while the
//! worker was still starting is noticed as soon as the watchdog runs,
//! before the engine starts; what comes before it (closing inherited
//! descriptors, steps 1 and 2) waits for nothing. (Without the watchdog,
//! the `ready` message would still fail with EPIPE and end such a worker.)
//! Not `PR_SET_PDEATHSIG`: it fires when the *thread* that spawned the
//! worker exits, and the pool starts workers from any thread (tokio's
//! blocking pool retires idle ones), which would kill healthy workers.
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use wasmtime::Module;

use crate::engine::resident::{self, Artifact};
use crate::engine::{Engine, EngineConfig, Leftovers, Outcome, Program};
use crate::errno;
use crate::pool::{recv_message, send_message, Reply, Request, MAX_REQUEST};
use crate::report::{Ending, Validation};

/// Command-line options of `zerovm --worker`.
#[derive(Debug)]
struct Options {
    isolate: bool,
    seccomp: bool,
    engine: EngineConfig,
    scratch: PathBuf,
    self_test: bool,
    connect: Option<u16>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            isolate: true,
            seccomp: true,
            engine: EngineConfig {
                resident_memory: true,
                ..EngineConfig::default()
            },
            scratch: std::env::temp_dir(),
            self_test: false,
            connect: None,
        };
        for arg in args {
            let (key, value) = match arg.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (arg.as_str(), None),
            };
            let number = |v: Option<&str>| -> Result<u64, String> {
                v.and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{key} needs a number"))
            };
            match key {
                "--no-isolate" => o.isolate = false,
                "--no-seccomp" => o.seccomp = false,
                "--no-resident" => o.engine.resident_memory = false,
                "--self-test" => o.self_test = true,
                "--max-wasm-stack" => {
                    o.engine.max_wasm_stack = usize::try_from(number(value)?)
                        .map_err(|_| "--max-wasm-stack too large".to_string())?
                }
                "--table-elements" => {
                    o.engine.table_elements = usize::try_from(number(value)?)
                        .map_err(|_| "--table-elements too large".to_string())?
                }
                "--tick-ns" => o.engine.tick = Duration::from_nanos(number(value)?.max(1)),
                "--scratch" => {
                    o.scratch = value
                        .map(PathBuf::from)
                        .ok_or_else(|| "--scratch needs a directory".to_string())?
                }
                "--connect" => {
                    o.connect =
                        Some(u16::try_from(number(value)?).map_err(|_| "--connect: bad port")?)
                }
                _ => return Err(format!("unknown worker option {arg}")),
            }
        }
        Ok(o)
    }
}

/// `zerovm --worker [options]` (`args` after `--worker`).
pub fn main(args: &[String]) -> ExitCode {
    let options = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("zerovm --worker: {e}");
            return ExitCode::from(errno::EINVAL as u8);
        }
    };
    let strays = close_strays();
    if options.self_test {
        println!("host stray descriptors: closed {strays:?}");
        return self_test(&options);
    }
    // Descriptors a shell or test harness leaks to its children are normal:
    // closed without a word (the worker's stderr is the user's, for zvsh).
    serve(&options)
}

/// Closes every descriptor above stderr the process inherited (one left
/// without `FD_CLOEXEC` by some library of the parent could be a way out:
/// a directory, a socket); returns their numbers.
fn close_strays() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let listing = format!("/proc/{}/fd", std::process::id());
    let strays: Vec<i32> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            // Not the listing's own descriptor (closed when `dir` is done).
            let target = std::fs::read_link(e.path()).ok()?;
            (fd > 2 && target != Path::new(&listing)).then_some(fd)
        })
        .collect();
    for &fd in &strays {
        // SAFETY: this runs first thing in the worker, single-threaded,
        // before any `File`/`OwnedFd` of ours exists (the only descriptor
        // opened so far, the listing's, is excluded above and closed): a
        // descriptor above 2 here was inherited through exec and is owned
        // by no Rust object, so closing it cannot invalidate anyone's
        // descriptor (I/O safety), and nothing can reuse its number before
        // the loop ends.
        #[allow(unsafe_code)]
        unsafe {
            rustix::io::close(fd)
        };
    }
    strays
}

fn serve(options: &Options) -> ExitCode {
    let stdin = std::io::stdin();
    let socket = match stdin.as_fd().try_clone_to_owned() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zerovm --worker: no socket on standard input: {e}");
            return ExitCode::FAILURE;
        }
    };
    let refuse = |error: String| {
        eprintln!("zerovm --worker: {error}");
        let reply = serde_json::to_vec(&Reply::Refused { error }).unwrap_or_default();
        let _ = send_message(socket.as_fd(), &reply, &[]);
        ExitCode::FAILURE
    };
    let cpu = File::open("/proc/self/stat").ok();
    // The engine comes first, while `/proc` is still there (resident
    // memory opens this process's pagemap and maps, and so does wasmtime's
    // pooling allocator) and before any thread (it starts none: its epoch
    // ticker starts below, once the capabilities are gone).
    let mut engine = match Engine::without_ticker(options.engine.clone()) {
        Ok(e) => e,
        Err(e) => return refuse(format!("engine: {e:#}")),
    };
    let ioctls = engine.tracker_fds().map(|(uffd, ours)| IoctlFds {
        uffd,
        pagemaps: pagemap_fds(ours),
    });
    if let Some(stat) = cpu {
        engine.measure_cpu_from(stat);
    }
    if options.isolate {
        if let Err(e) = enter_namespaces(&options.scratch) {
            return refuse(e);
        }
    }
    if let Err(e) = watch_parent(socket.as_fd()) {
        return refuse(format!("watchdog thread: {e}"));
    }
    if let Err(e) = engine.start_ticker() {
        return refuse(format!("engine: {e:#}"));
    }
    let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
    let (started, wait_for_start) = std::sync::mpsc::channel::<()>();
    let (engine, sock) = (&engine, socket.as_fd());
    std::thread::scope(|scope| {
        let runner = std::thread::Builder::new()
            .name("guest".into())
            .stack_size(engine.run_thread_stack())
            .spawn_scoped(scope, move || {
                // The thread's own start-up (rseq, robust list, name, signal
                // stack) is done by now: the filter need not allow it.
                let _ = started.send(());
                if wait_for_go.recv().is_ok() {
                    serve_jobs(engine, sock);
                }
            });
        let runner = match runner {
            Ok(r) => r,
            Err(e) => return refuse(format!("guest thread: {e}")),
        };
        let _ = wait_for_start.recv();
        if options.isolate && options.seccomp {
            if let Err(e) = install_seccomp(ioctls.as_ref()) {
                drop(go);
                let _ = runner.join();
                return refuse(e);
            }
        }
        let _ = go.send(());
        match runner.join() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        }
    })
}

/// Stack of the watchdog thread: it makes two calls, `ppoll` and `exit`.
const WATCHDOG_STACK: usize = 64 * 1024;

/// Step 3: starts the watchdog thread, which ends the process as soon as
/// the pool's end of `socket` is gone (the module docs say why), and
/// returns once the thread runs.
///
/// Why this keeps the sandbox whole:
/// - It starts after steps 1 and 2, which need a single thread, and
///   before the filter, like the engine's threads: `install_seccomp` puts
///   the filter on every thread of the process (TSYNC) and fails, so the
///   worker refuses to start, if it cannot; the watchdog is filtered like
///   the guest thread, and no `clone` is needed after the filter.
/// - Its start-up syscalls (robust list, rseq, signal stack, name) are
///   done before the filter: the filter is installed only after it
///   reported in here.
/// - Once filtered it makes `ppoll`, the one syscall added to [`ALLOWED`]
///   for it (it only waits on descriptors the process holds already,
///   reading and changing nothing), and then the exit path, which ends in
///   `exit_group` (allowed); anything the exit handlers might call on the
///   way and the filter denies fails with EPERM, which cannot keep the
///   process from ending. It needs no file, path or namespace: it holds
///   the socket's duplicate, made before the filter.
/// - It consumes nothing from the socket, so the job loop's protocol is
///   untouched, and it only ever ends the process, as a SIGKILL from the
///   parent would.
fn watch_parent(socket: BorrowedFd<'_>) -> std::io::Result<()> {
    let socket = socket.try_clone_to_owned()?;
    let (started, wait_for_start) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("watchdog".into())
        .stack_size(WATCHDOG_STACK)
        .spawn(move || {
            let _ = started.send(());
            match wait_for_hangup(socket.as_fd()) {
                // The parent closed its end or died: nobody is left to
                // send jobs or read outcomes.
                Ok(revents) if revents & libc::POLLNVAL == 0 => std::process::exit(0),
                Ok(_) => eprintln!("zerovm --worker: watchdog: the socket is not open"),
                Err(e) => eprintln!("zerovm --worker: watchdog: {e}"),
            }
            // A watchdog that cannot watch would leave orphans running
            // unseen: fail loudly instead (the pool sees the worker die).
            std::process::exit(1)
        })?;
    // Err only if the thread ended without reporting in, which it cannot
    // do without ending the process.
    let _ = wait_for_start.recv();
    Ok(())
}

/// Blocks until `poll` reports something on `socket` without any event
/// asked for: `POLLHUP` or `POLLERR` (the peer is gone), or `POLLNVAL`;
/// returns those `revents`.
fn wait_for_hangup(socket: BorrowedFd<'_>) -> std::io::Result<libc::c_short> {
    use std::os::fd::AsRawFd;
    let mut fds = [libc::pollfd {
        fd: socket.as_raw_fd(),
        events: 0,
        revents: 0,
    }];
    loop {
        // SAFETY: `fds` is a live, writable array of exactly the one
        // `pollfd` the count says, borrowed for the whole call; the null
        // timeout (wait without end) and null signal mask (keep the
        // thread's) are the documented ways of passing neither. `socket`
        // is borrowed for the whole call, so its number stays this
        // process's open socket (a stale number would only yield
        // POLLNVAL: the kernel reads nothing through it). glibc and musl
        // make this the `ppoll` syscall (`SYS_ppoll`) on the architectures
        // the filter exists for.
        #[allow(unsafe_code)]
        let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 1, std::ptr::null(), std::ptr::null()) };
        if n > 0 && fds[0].revents != 0 {
            return Ok(fds[0].revents);
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        // Zero (impossible without a timeout) or EINTR: wait again.
    }
}

/// The job loop, on the guest thread, until the parent closes the socket.
fn serve_jobs(engine: &Engine, socket: BorrowedFd<'_>) {
    let ready = Reply::Ready {
        pid: std::process::id(),
    };
    if send_reply(socket, &ready).is_err() {
        return;
    }
    loop {
        let (bytes, fds) = match recv_message(socket, None, MAX_REQUEST, usize::MAX) {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(e) => {
                eprintln!("zerovm --worker: {e}");
                return;
            }
        };
        let (reply, leftovers) = match serve_job(engine, &bytes, fds) {
            Ok((outcome, leftovers)) => {
                let reply = Reply::Outcome {
                    report: Box::new(outcome.report),
                    ending: outcome.ending,
                    detail: outcome.detail,
                };
                (reply, leftovers)
            }
            Err(error) => (Reply::Refused { error }, None),
        };
        if send_reply(socket, &reply).is_err() {
            return;
        }
        // The run's memory reset and teardown, after the reply: the next
        // job is read once they are done.
        drop(leftovers);
    }
}

fn send_reply(socket: BorrowedFd<'_>, reply: &Reply) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    send_message(socket, &bytes, &[])
}

/// One job: its outcome, and what is left of its run (see
/// [`crate::engine::Leftovers`]).
fn serve_job<'e>(
    engine: &'e Engine,
    bytes: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<(Outcome, Option<Leftovers<'e>>), String> {
    let request: Request =
        serde_json::from_slice(bytes).map_err(|e| format!("bad request: {e}"))?;
    let mut fds: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
    let mut take = |i: usize| -> Result<File, String> {
        fds.get_mut(i)
            .and_then(Option::take)
            .map(File::from)
            .ok_or_else(|| format!("descriptor {i} missing"))
    };
    let artifact = take(request.artifact)?;
    // Several descriptors for one alias: the sources of a multichannel.
    let mut files: HashMap<String, Vec<Arc<File>>> = HashMap::new();
    for (alias, i) in &request.channels {
        files
            .entry(alias.clone())
            .or_default()
            .push(Arc::new(take(*i)?));
    }
    let mut images = Vec::with_capacity(request.system_images.len());
    for (point, i) in &request.system_images {
        images.push((point.clone(), Arc::new(take(*i)?)));
    }
    let sha256 = request.sha256;
    let mut session = request.session;
    session.files = files;
    session.system_images = images;
    let program = match load(engine, sha256, artifact) {
        Ok(p) => p,
        Err(LoadError::Artifact(e)) => return Err(e),
        Err(LoadError::Invalid(e)) => {
            let outcome = Outcome::failed(
                Validation::Failed,
                Ending::ValidationFailed,
                Some(e.to_string()),
            );
            return Ok((outcome, None));
        }
    };
    let (outcome, leftovers) = engine.run_keeping(&program, &session, None);
    Ok((outcome, Some(leftovers)))
}

/// Why a received program cannot run: the artifact does not load (the
/// job is refused) or the import check refuses the module (a report).
enum LoadError {
    Artifact(String),
    Invalid(crate::engine::ValidationError),
}

impl From<crate::engine::ValidationError> for LoadError {
    fn from(e: crate::engine::ValidationError) -> Self {
        LoadError::Invalid(e)
    }
}

/// The program for `sha256`: from the engine's cache, else mapped from the
/// received artifact.
fn load(engine: &Engine, sha256: [u8; 32], artifact: File) -> Result<Arc<Program>, LoadError> {
    engine.program_with_artifact(sha256, || {
        // Resident memory is reset from the artifact: our own map of the
        // file wasmtime maps the memory image from.
        let mapped = if engine.resident_memory() {
            // SAFETY: the file is an artifact of the pool's cache, which is
            // written once under a temporary name and renamed into place,
            // never truncated or rewritten (see the next SAFETY note for
            // why it is one).
            #[allow(unsafe_code)]
            let map = unsafe { Artifact::map(&artifact) };
            map.ok()
        } else {
            None
        };
        // SAFETY: `deserialize_open_file` trusts the file to be a wasmtime
        // artifact compiled by an engine with this configuration. The only
        // sender is the pool's parent process, which sends only the file
        // its own engine wrote for this sha256 into its cache directory,
        // which `Pool::start` checked is writable by nobody else (a job
        // names a sha256, never a path: `Pool::run` opens
        // `artifact_path(sha256)` itself), and starts this worker with the same
        // engine settings; wasmtime still checks the artifact's header and
        // compatibility hash.
        #[allow(unsafe_code)]
        let module = unsafe { Module::deserialize_open_file(&engine.engine, artifact) };
        let module =
            module.map_err(|e| LoadError::Artifact(format!("cannot load the artifact: {e:#}")))?;
        Ok((module, mapped))
    })
}

/// Name prefix of a worker's root directory in its scratch directory
/// (followed by the worker's pid).
pub(crate) const ROOT_PREFIX: &str = ".worker-root-";

/// Steps 1 and 2 of the start-up: namespaces, empty root, no capabilities.
/// The process must still be single-threaded.
fn enter_namespaces(scratch: &Path) -> Result<(), String> {
    use rustix::thread::{CapabilitySet, CapabilitySets, UnshareFlags};
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    // Absolute: after the `chdir` below, a relative path would name
    // another directory (the pool passes an absolute one already).
    let scratch =
        std::path::absolute(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let root = scratch.join(format!("{ROOT_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir(&root);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&root)
        .map_err(|e| format!("mkdir {}: {e}", root.display()))?;
    rustix::process::chdir(&root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
    std::fs::remove_dir(&root).map_err(|e| format!("rmdir {}: {e}", root.display()))?;
    // SAFETY: `unshare_unsafe` is unsafe only because of CLONE_FILES (other
    // threads could then observe descriptors of an unshared table); these
    // flags do not include it, and the process has a single thread here.
    #[allow(unsafe_code)]
    unsafe {
        rustix::thread::unshare_unsafe(
            UnshareFlags::NEWUSER | UnshareFlags::NEWNS | UnshareFlags::NEWNET,
        )
    }
    .map_err(|e| format!("unshare(user, mount, network): {e}"))?;
    let write =
        |path: &str, text: String| std::fs::write(path, text).map_err(|e| format!("{path}: {e}"));
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))?;
    rustix::process::chroot(".").map_err(|e| format!("chroot: {e}"))?;
    rustix::process::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    let none = CapabilitySet::empty();
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: none,
            permitted: none,
            inheritable: none,
        },
    )
    .map_err(|e| format!("dropping capabilities: {e}"))?;
    Ok(())
}

/// The descriptors resident memory makes `ioctl` calls on (see
/// [`crate::engine::resident`]): its userfaultfd (`UFFDIO_REGISTER` and
/// `UFFDIO_WRITEPROTECT` only: registering a range of our own memory,
/// taking write-protection away) and every descriptor of this process's
/// `/proc/<pid>/pagemap`, ours and the one wasmtime's pooling allocator
/// keeps (`PAGEMAP_SCAN` only: listing, and write-protecting, pages of our
/// own memory). None of these reaches beyond the process's own memory,
/// and no other request (a terminal's `TIOCSTI`, say) passes on any
/// descriptor.
#[derive(Debug)]
struct IoctlFds {
    uffd: i32,
    pagemaps: Vec<i32>,
}

/// The descriptors open on this process's pagemap (`ours` among them),
/// found while `/proc` can still be listed.
fn pagemap_fds(ours: i32) -> Vec<i32> {
    let target = PathBuf::from(format!("/proc/{}/pagemap", std::process::id()));
    let mut fds = vec![ours];
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            let fd = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok());
            if let Some(fd) = fd {
                if fd != ours && std::fs::read_link(e.path()).is_ok_and(|t| t == target) {
                    fds.push(fd);
                }
            }
        }
    }
    fds
}

/// Step 5 elsewhere: no allowlist was made for this architecture, so the
/// worker refuses to start isolated rather than run unfiltered.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn install_seccomp(_ioctls: Option<&IoctlFds>) -> Result<(), String> {
    Err(format!(
        "seccomp: no syscall allowlist for {}",
        std::env::consts::ARCH
    ))
}

/// Step 5: the seccomp allowlist, on every thread of the process.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn install_seccomp(ioctls: Option<&IoctlFds>) -> Result<(), String> {
    let err = |e: seccompiler::BackendError| format!("seccomp: {e}");
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("seccomp: {e}"))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &call in ALLOWED {
        rules.insert(call, Vec::new());
    }
    // A rule per allowed value of argument `arg` (the rules are OR'ed).
    let one_of = |arg: u8, values: &[u64]| -> Result<Vec<SeccompRule>, String> {
        values
            .iter()
            .map(|&v| {
                SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v)
                    .and_then(|c| SeccompRule::new(vec![c]))
                    .map_err(err)
            })
            .collect()
    };
    let [tgkill, prctl, fcntl, setsockopt] = CHECKED;
    // Signals only to this process (abort() raises SIGABRT with tgkill).
    rules.insert(tgkill, one_of(0, &[u64::from(std::process::id())])?);
    rules.insert(prctl, one_of(0, &[PR_SET_NAME])?);
    rules.insert(fcntl, one_of(1, &[F_DUPFD_CLOEXEC, F_GETFD, F_GETFL])?);
    // Only SOL_SOCKET's send and receive timeouts (old and 64-bit-time).
    let timeouts = [
        SO_RCVTIMEO_OLD,
        SO_SNDTIMEO_OLD,
        SO_RCVTIMEO_NEW,
        SO_SNDTIMEO_NEW,
    ]
    .iter()
    .map(|&name| {
        let level = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, 1);
        let name = SeccompCondition::new(2, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, name);
        level
            .and_then(|level| name.and_then(|name| SeccompRule::new(vec![level, name])))
            .map_err(err)
    })
    .collect::<Result<Vec<_>, _>>()?;
    rules.insert(setsockopt, timeouts);
    // Resident memory: three requests, each on its own descriptors.
    if let Some(fds) = ioctls {
        let request = |fd: i32, request: u32| {
            let fd = u64::try_from(fd).map_err(|_| format!("seccomp: bad descriptor {fd}"))?;
            let fd = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, fd);
            let req = SeccompCondition::new(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                u64::from(request),
            );
            fd.and_then(|fd| req.and_then(|req| SeccompRule::new(vec![fd, req])))
                .map_err(err)
        };
        let mut allowed = vec![
            request(fds.uffd, resident::UFFDIO_REGISTER)?,
            request(fds.uffd, resident::UFFDIO_WRITEPROTECT)?,
        ];
        for &fd in &fds.pagemaps {
            allowed.push(request(fd, resident::PAGEMAP_SCAN)?);
        }
        rules.insert(libc::SYS_ioctl, allowed);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(errno::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(err)?;
    let program: BpfProgram = filter.try_into().map_err(err)?;
    seccompiler::apply_filter_all_threads(&program).map_err(|e| format!("seccomp: {e}"))
}

const PR_SET_NAME: u64 = 15;
const F_GETFD: u64 = 1;
const F_GETFL: u64 = 3;
const F_DUPFD_CLOEXEC: u64 = 1030;
const SO_RCVTIMEO_OLD: u64 = 20;
const SO_SNDTIMEO_OLD: u64 = 21;
const SO_RCVTIMEO_NEW: u64 = 66;
const SO_SNDTIMEO_NEW: u64 = 67;

/// `zerovm --worker --self-test [--connect=PORT] [--no-isolate]`: goes
/// through the worker's start-up and prints, after each stage, whether
/// host-ish things still work: `<stage> <check>: allowed|denied (<detail>)`.
fn self_test(options: &Options) -> ExitCode {
    let check = |stage: &str| {
        let verdict = |what: &str, r: Result<String, String>| match r {
            Ok(detail) => println!("{stage} {what}: allowed ({detail})"),
            Err(detail) => println!("{stage} {what}: denied ({detail})"),
        };
        verdict(
            "open /etc/passwd",
            File::open("/etc/passwd")
                .map(|_| "opened".into())
                .map_err(|e| e.to_string()),
        );
        verdict(
            "list /",
            std::fs::read_dir("/")
                .map_err(|e| e.to_string())
                .and_then(|d| match d.count() {
                    0 => Err("empty".into()),
                    n => Ok(format!("{n} entries")),
                }),
        );
        // Never on the host: it would create the file.
        if stage != "host" {
            verdict(
                "create /x",
                File::create("/x")
                    .map(|_| "created".into())
                    .map_err(|e| e.to_string()),
            );
        }
        verdict(
            "tcp socket",
            rustix::net::socket(
                rustix::net::AddressFamily::INET,
                rustix::net::SocketType::STREAM,
                None,
            )
            .map(|_| "created".into())
            .map_err(|e| std::io::Error::from(e).to_string()),
        );
        if let Some(port) = options.connect {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            verdict(
                &format!("tcp connect {addr}"),
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    .map(|_| "connected".into())
                    .map_err(|e| e.to_string()),
            );
        }
    };
    let stage = |name: &str, r: Result<(), String>| -> bool {
        match r {
            Ok(()) => true,
            Err(e) => {
                println!("{name} failed: {e}");
                false
            }
        }
    };
    check("host");
    if options.isolate {
        if !stage("namespaces", enter_namespaces(&options.scratch)) {
            return ExitCode::FAILURE;
        }
        check("namespaces");
    }
    let engine = match Engine::new(options.engine.clone()) {
        Ok(e) => e,
        Err(e) => {
            println!("engine failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if options.isolate && options.seccomp {
        if !stage("seccomp", install_seccomp(None)) {
            return ExitCode::FAILURE;
        }
        check("seccomp");
    }
    drop(engine);
    println!("done");
    ExitCode::SUCCESS
}

/// Syscalls a worker may make once the filter is on (numbers from the libc
/// crate, so right on every architecture it and seccompiler support).
/// Found by running the pool tests with the
/// workers under `strace -f` (isolated, filter off) and keeping what the
/// threads did after `ready`; the reason for each is beside it. Anything
/// else fails with EPERM: `open`/`openat`, `socket`, `connect`, `clone`,
/// `execve`, `ptrace`, `mount`, `chroot`, `unshare`, `setns`, `kill`, ….
/// Plus four with argument checks ([`install_seccomp`]): `tgkill` (own
/// pid only: `abort`), `prctl` (`PR_SET_NAME` only: thread names), `fcntl`
/// (`F_DUPFD_CLOEXEC`, `F_GETFD`, `F_GETFL`: `File::try_clone` of
/// channels) and `setsockopt` (`SOL_SOCKET` send/receive timeouts only);
/// and, with resident memory, `ioctl` ([`IoctlFds`]).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const ALLOWED: &[libc::c_long] = &[
    // The socket: jobs in, outcomes out, received descriptors closed.
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_close,
    // Channel I/O: positioned for files and memfds, plain for streams;
    // `write` also for stderr; `lseek` for streams' `Seek` probes.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    // `File::metadata` of channels and the artifact (statx; the older two
    // are std's and glibc's fallbacks).
    libc::SYS_statx,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    // tcp channels: the parent binds or connects, the worker accepts on
    // the listening socket it was given, reads, writes, bounds waits with
    // socket timeouts (`setsockopt`, checked below), and shuts the
    // writing side down at close. No `socket`, `bind`, `connect`.
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_getsockopt,
    libc::SYS_shutdown,
    // Memory: the artifact mapped and made executable, guest linear
    // memories and tables (reserved, grown, copy-on-write images), malloc.
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    // Traps: wasmtime's per-thread signal stack, signal masks around
    // guest calls, returns from handlers.
    libc::SYS_sigaltstack,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    // Threads: locks, channels and joins, the epoch ticker's sleep, WASI
    // `sched_yield`, clocks (the vDSO's fallback), WASI `random_get`.
    libc::SYS_futex,
    libc::SYS_clock_nanosleep,
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime,
    libc::SYS_getrandom,
    // The epoch ticker thread may still be starting when the filter goes
    // on (it cannot be waited for): glibc's and std's thread start-up.
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_getaffinity,
    // The watchdog ([`watch_parent`]) waiting for the parent's end of the
    // socket to close (`libc::ppoll` is this syscall with glibc and musl).
    libc::SYS_ppoll,
    // Identity (abort, logging) and the end.
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// `(tgkill, prctl, fcntl, setsockopt)`, allowed with argument checks.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const CHECKED: [libc::c_long; 4] = [
    libc::SYS_tgkill,
    libc::SYS_prctl,
    libc::SYS_fcntl,
    libc::SYS_setsockopt,
];
