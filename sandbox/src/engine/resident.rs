//! Resident linear memory for pool workers ([`EngineConfig::resident_memory`]).
//!
//! A worker runs the same program again and again, each run in a fresh
//! instance. With wasmtime's default allocator every run mapped the
//! module's memory image anew (copy-on-write), faulted in each page it
//! touched (~600 for a Python run: a fault per page read, a fault and a
//! copy per page written) and unmapped it all at the end. Here the worker
//! keeps the memory mapped and puts back only the pages a run wrote:
//!
//! - **Slots.** The engine uses wasmtime's pooling allocator: a program's
//!   memory lands in the same slot run after run, its image left mapped
//!   between instances (wasmtime keeps it for the next instance of the
//!   same module).
//! - **Which pages a run wrote.** The slot's first `len` bytes (the
//!   memory's size at instantiation) are registered with a userfaultfd in
//!   asynchronous write-protect mode (`UFFD_FEATURE_WP_ASYNC`): the kernel
//!   itself clears a page's write-protect bit at the first write to it (no
//!   copy, no message to us), and the `PAGEMAP_SCAN` ioctl on
//!   `/proc/self/pagemap` lists the pages whose bit is clear
//!   (`PAGE_IS_WRITTEN`), a thousand stretches per call.
//! - **Putting them back.** Each such page is copied back from the
//!   module's memory image, read through our own read-only map of the
//!   artifact file at the offsets the kernel reports for the slot's
//!   mapping (`/proc/self/maps`), or zeroed where the memory has no image
//!   (wasmtime's pristine slot: the image, zeros around it). A second scan
//!   then write-protects what the first reported (`PM_SCAN_WP_MATCHING`).
//! - **Hot pages.** A run writes nearly the same pages as the one before
//!   (a Python run: the same ~450 pages in ~240 stretches, every run).
//!   Once wasmtime's reset has run (below), the stretches just restored
//!   (joined across gaps of up to [`HOT_GAP`] pages) are unprotected
//!   again: the next run writes them without a fault, and the next reset,
//!   which sees them as written, restores them anyway.
//! - **First look at a slot.** The first time a program's memory is seen
//!   in a slot (right after instantiation, before its guest runs), the
//!   slot's mappings must be the artifact file and anonymous memory, with
//!   the first and last page of each file-backed stretch equal to our map
//!   of the file (else the program's memory is never kept, and wasmtime
//!   resets it as usual); then the range is registered and every page of
//!   it except those already written (by a start function, or wasmtime's
//!   data segments where a module has no image) is write-protected,
//!   including pages not mapped yet (they get a marker and come in
//!   protected).
//!
//! **The invariant that makes it sound:** a page of the tracked range
//! carries the write-protect bit only while its contents are its initial
//! contents. Bits are set only (a) at the first look, on pages that are
//! still as wasmtime mapped them (not written since), and (b) by the
//! second scan of a reset, on pages the first scan reported and the reset
//! restored, with no guest running (one session at a time, on one
//! thread; the second scan is checked to have protected nothing the first
//! did not report). Clearing bits (the kernel on a write, the hot pages)
//! never breaks it. A write clears the bit before it lands, whoever
//! writes (guest code, a host call copying into guest memory, the
//! kernel), so every page that may differ from its initial contents is
//! reported, and restored.
//!
//! wasmtime's own reset still runs when the instance is dropped (pooling
//! allocator, `PAGEMAP_SCAN` enabled): it looks for pages that are
//! present, written (no write-protect bit) and neither file nor zero
//! pages. After our reset there is none in the tracked range, so it
//! restores and unmaps nothing there; it handles memory the run grew as it
//! always does. It is also the fallback: whatever our reset leaves
//! unprotected (a scan failed, the range lost its registration because
//! wasmtime mapped the slot anew for another module), it restores or
//! discards.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use wasmtime::{Memory, Store};

use crate::engine::EngineConfig;
use crate::wasi::Ctx;

/// The allocation strategy of an engine with resident memory: wasmtime's
/// pooling allocator, sized for one session at a time (a store holds one
/// instance, one memory and up to 16 tables: `wasi::Limiter`), with slots
/// for the memories of 8 programs kept warm, the `PAGEMAP_SCAN` reset on,
/// and up to 64 MiB of memory a run grew (beyond what is tracked) and a
/// whole table zeroed in place instead of unmapped. Its own limits are
/// far above the limiter's (2^27 table elements, memories of 4 GiB, all a
/// 32-bit memory can have), so the limiter refuses first, as without the
/// pool. The slots are address space reserved up front (about 4 GiB for
/// each of 8 memories and 2 GC heaps, 1 GiB for each of 16 tables), not
/// memory.
/// Compiled code does not depend on it: artifacts are the same as
/// without the pool.
pub(crate) fn pooling(config: &EngineConfig) -> wasmtime::InstanceAllocationStrategy {
    let mut p = wasmtime::PoolingAllocationConfig::new();
    p.total_core_instances(8)
        .total_memories(8)
        .total_tables(16)
        .total_gc_heaps(2)
        .max_memories_per_module(1)
        .max_tables_per_module(16)
        .table_elements(config.table_elements.max(1 << 27))
        .max_core_instance_size(256 << 20)
        .max_memory_size(1 << 32)
        .linear_memory_keep_resident(64 << 20)
        .table_keep_resident(config.table_elements * size_of::<usize>())
        .pagemap_scan(wasmtime::Enabled::Yes);
    wasmtime::InstanceAllocationStrategy::Pooling(p)
}

/// Host page size the scans and the reset work in (the tracker refuses to
/// start with another).
const PAGE: usize = 4096;

/// Restored stretches at most this many pages apart are unprotected as
/// one (an ioctl costs about as much as restoring four pages needlessly).
pub(crate) const HOT_GAP: usize = 4;

/// Stretches one scan call reports at most (it is called again from
/// where it stopped).
const REGIONS: usize = 1024;

// The kernel's ABI (include/uapi/linux/userfaultfd.h and fs.h; the
// asynchronous write-protection and PAGEMAP_SCAN since Linux 6.7). The
// ioctl numbers use the generic `_IOWR` encoding, which x86_64 and
// aarch64 share.
const fn iowr(ty: u8, nr: u8, size: usize) -> u32 {
    (3 << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}

#[repr(C)]
#[derive(Default)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

const UFFD_API: u64 = 0xAA;
const UFFD_USER_MODE_ONLY: u32 = 1;
const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
const PAGE_IS_WRITTEN: u64 = 1 << 1;
const PAGE_IS_FILE: u64 = 1 << 2;
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;
const PAGE_IS_PFNZERO: u64 = 1 << 5;

/// `UFFDIO_API` (made before the worker's filter is on).
pub(crate) const UFFDIO_API: u32 = iowr(0xAA, 0x3F, size_of::<UffdioApi>());
/// `UFFDIO_REGISTER`.
pub(crate) const UFFDIO_REGISTER: u32 = iowr(0xAA, 0x00, size_of::<UffdioRegister>());
/// `UFFDIO_WRITEPROTECT` (used only to take protection away).
pub(crate) const UFFDIO_WRITEPROTECT: u32 = iowr(0xAA, 0x06, size_of::<UffdioWriteprotect>());
/// `PAGEMAP_SCAN` on `/proc/self/pagemap` (ours and wasmtime's).
pub(crate) const PAGEMAP_SCAN: u32 = iowr(b'f', 16, size_of::<PmScanArg>());

/// An ioctl argument type and the one request that takes it.
trait Request {
    const CODE: u32;
}

impl Request for UffdioApi {
    const CODE: u32 = UFFDIO_API;
}

impl Request for UffdioRegister {
    const CODE: u32 = UFFDIO_REGISTER;
}

impl Request for UffdioWriteprotect {
    const CODE: u32 = UFFDIO_WRITEPROTECT;
}

/// `ioctl(fd, T::CODE, arg)` for an argument without pointers.
fn ioctl<T: Request>(fd: BorrowedFd<'_>, arg: &mut T) -> io::Result<()> {
    // SAFETY: `T::CODE` is the request whose argument is `T` (`Request`
    // ties them; the number encodes `size_of::<T>()`), and `arg` is a
    // live, exclusively borrowed `#[repr(C)]` value laid out as the
    // kernel's struct, so the kernel reads and writes only inside it. The
    // argument types holding an address range (register, write-protect)
    // change how writes to that range fault, never what memory is valid;
    // none holds a pointer the kernel writes through. `fd` is borrowed,
    // so open, for the whole call.
    #[allow(unsafe_code)]
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), T::CODE as _, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `PAGEMAP_SCAN` with `arg`, reporting into `out`: the number of
/// stretches written and where the walk ended.
fn pagemap_scan(
    pagemap: BorrowedFd<'_>,
    mut arg: PmScanArg,
    out: &mut [PageRegion],
) -> io::Result<(usize, u64)> {
    arg.size = size_of::<PmScanArg>() as u64;
    arg.vec = out.as_mut_ptr() as u64;
    arg.vec_len = out.len() as u64;
    // SAFETY: the request is PAGEMAP_SCAN, whose argument is `PmScanArg`
    // (the number encodes its size), a live `#[repr(C)]` value the kernel
    // reads and updates (`walk_end`) in place; the one pointer in it,
    // `vec`, is `out`, exclusively borrowed for the call, and `vec_len` is
    // its length, so the kernel writes at most that many `PageRegion`s
    // (laid out as its `page_region`) there. Write-protection it applies
    // (`PM_SCAN_WP_MATCHING`) changes how writes fault, not what memory is
    // valid. `pagemap` is borrowed, so open, for the whole call.
    #[allow(unsafe_code)]
    let n = unsafe { libc::ioctl(pagemap.as_raw_fd(), PAGEMAP_SCAN as _, &mut arg) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = usize::try_from(n).unwrap_or(0).min(out.len());
    Ok((n, arg.walk_end))
}

/// The worker's handles for tracking written pages: a userfaultfd, and
/// `/proc/self/pagemap` and `/proc/self/maps` opened before the worker
/// loses `/proc` (they stay valid: they name this process's memory).
pub(crate) struct Tracker {
    uffd: OwnedFd,
    pagemap: File,
    maps: File,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker").finish_non_exhaustive()
    }
}

impl Tracker {
    /// Opens the handles and checks that the kernel has what the reset
    /// needs (asynchronous write-protection, `PAGEMAP_SCAN`: Linux 6.7).
    pub(crate) fn open() -> io::Result<Tracker> {
        if rustix::param::page_size() != PAGE {
            return Err(io::Error::other("pages are not 4 KiB"));
        }
        use rustix::mm::UserfaultfdFlags as F;
        let flags = F::CLOEXEC | F::NONBLOCK | F::from_bits_retain(UFFD_USER_MODE_ONLY);
        // SAFETY: creating a userfaultfd is safe; rustix marks it unsafe
        // for what one may do with it (serve faults, move pages). This one
        // is only ever used in asynchronous write-protect mode, where the
        // kernel resolves every fault itself (no thread ever waits for one
        // to be served, nothing reads events from it), and it is private
        // to this struct. USER_MODE_ONLY is what an unprivileged process
        // may ask for.
        #[allow(unsafe_code)]
        let uffd = unsafe { rustix::mm::userfaultfd(flags) }?;
        let mut api = UffdioApi {
            api: UFFD_API,
            features: UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED,
            ioctls: 0,
        };
        ioctl(uffd.as_fd(), &mut api)?;
        let tracker = Tracker {
            uffd,
            pagemap: File::open("/proc/self/pagemap")?,
            maps: File::open("/proc/self/maps")?,
        };
        // An empty scan: fails where PAGEMAP_SCAN does not exist.
        tracker.scan(0, 0, false, &mut Vec::new())?;
        Ok(tracker)
    }

    /// The descriptors the worker's seccomp filter lets `ioctl` be used
    /// on: the userfaultfd and our pagemap.
    pub(crate) fn fds(&self) -> (RawFd, RawFd) {
        (self.uffd.as_raw_fd(), self.pagemap.as_raw_fd())
    }

    /// Registers `[start, start + len)` for write-protect tracking (sets
    /// no protection itself).
    fn register(&self, start: usize, len: usize) -> io::Result<()> {
        let mut reg = UffdioRegister {
            range: UffdioRange {
                start: start as u64,
                len: len as u64,
            },
            mode: UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        ioctl(self.uffd.as_fd(), &mut reg)
    }

    /// Clears the write-protect bit of `[start, end)`.
    fn unprotect(&self, start: usize, end: usize) -> io::Result<()> {
        let mut wp = UffdioWriteprotect {
            range: UffdioRange {
                start: start as u64,
                len: (end - start) as u64,
            },
            mode: 0,
        };
        ioctl(self.uffd.as_fd(), &mut wp)
    }

    /// The stretches of `[start, end)` holding pages written since they
    /// were last protected, appended to `out` as (start, end); with
    /// `protect`, write-protects them as it goes, and fails (EPERM) at a
    /// part of the range that is not registered. Returns the pages found.
    fn scan(
        &self,
        start: usize,
        end: usize,
        protect: bool,
        out: &mut Vec<(usize, usize)>,
    ) -> io::Result<usize> {
        let mut regions = [PageRegion::default(); REGIONS];
        let mut pages = 0;
        let mut from = start as u64;
        loop {
            let arg = PmScanArg {
                flags: if protect {
                    PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC
                } else {
                    0
                },
                start: from,
                end: end as u64,
                category_mask: PAGE_IS_WRITTEN,
                return_mask: PAGE_IS_WRITTEN,
                ..PmScanArg::default()
            };
            let (n, walk_end) = pagemap_scan(self.pagemap.as_fd(), arg, &mut regions)?;
            for r in &regions[..n] {
                let (s, e) = (r.start as usize, r.end as usize);
                pages += (e - s) / PAGE;
                match out.last_mut() {
                    Some(last) if last.1 == s => last.1 = e,
                    _ => out.push((s, e)),
                }
            }
            if walk_end >= end as u64 || walk_end <= from {
                return Ok(pages);
            }
            from = walk_end;
        }
    }

    /// Write-protects every page of `[start, end)` that is not a page of
    /// its own (present anonymous or swapped: written since it was
    /// mapped): pages of the file, zero pages, and pages not there yet
    /// (they get a marker and come in protected).
    fn protect_unwritten(&self, start: usize, end: usize) -> io::Result<()> {
        let mut from = start as u64;
        loop {
            let arg = PmScanArg {
                flags: PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
                start: from,
                end: end as u64,
                // Not swapped, and not present or file or zero page.
                category_inverted: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
                category_mask: PAGE_IS_SWAPPED,
                category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_FILE | PAGE_IS_PFNZERO,
                return_mask: PAGE_IS_WRITTEN,
                ..PmScanArg::default()
            };
            let (_, walk_end) = pagemap_scan(self.pagemap.as_fd(), arg, &mut [])?;
            if walk_end >= end as u64 || walk_end <= from {
                return Ok(());
            }
            from = walk_end;
        }
    }

    /// The text of `/proc/self/maps`.
    fn maps(&self) -> io::Result<String> {
        let mut text = Vec::with_capacity(64 << 10);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = self.maps.read_at(&mut buf, text.len() as u64)?;
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(text).map_err(io::Error::other)
    }
}

/// A program's compiled artifact, mapped read-only by us: where the reset
/// reads the memory image from (the same file, so the same bytes, that
/// wasmtime maps copy-on-write into the slot).
pub(crate) struct Artifact {
    map: memmap2::Mmap,
    dev: u64,
    ino: u64,
    /// What was found in each slot the program's memory used.
    slots: Mutex<Vec<Slot>>,
}

impl std::fmt::Debug for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifact")
            .field("len", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl Artifact {
    /// Maps `file`, the artifact wasmtime is given.
    ///
    /// # Safety
    ///
    /// As for any map of a file: nobody may truncate or rewrite `file`
    /// while the map lives (artifacts of our cache are written once under
    /// a temporary name and renamed into place).
    #[allow(unsafe_code)]
    pub(crate) unsafe fn map(file: &File) -> io::Result<Artifact> {
        let stat = rustix::fs::fstat(file.as_fd())?;
        // SAFETY: the caller's contract (above).
        let map = unsafe { memmap2::Mmap::map(file) }?;
        Ok(Artifact {
            map,
            dev: stat.st_dev,
            ino: stat.st_ino,
            slots: Mutex::new(Vec::new()),
        })
    }
}

/// A slot (a memory's base address and size) and what was found there.
struct Slot {
    base: usize,
    len: usize,
    /// The memory's initial contents, piece by piece; `None`: the slot did
    /// not look as expected, so the memory is not kept.
    pieces: Option<Arc<[Piece]>>,
}

/// `len` bytes of memory from `offset`: a copy of the artifact from
/// `source`, or zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    offset: usize,
    len: usize,
    source: Option<usize>,
}

/// A run's tracked memory: what the reset needs after the run.
pub(crate) struct Tracked {
    memory: Memory,
    base: usize,
    len: usize,
    pieces: Arc<[Piece]>,
    artifact: Arc<Artifact>,
}

impl Tracked {
    /// Called right after instantiation, before the guest runs: the
    /// memory exported as `memory` is tracked if its slot is (or, at a
    /// first look now, can be) reset from `artifact`.
    pub(crate) fn begin(
        tracker: &Tracker,
        artifact: &Arc<Artifact>,
        store: &mut Store<Ctx>,
        instance: &wasmtime::Instance,
    ) -> Option<Tracked> {
        let memory = instance.get_memory(&mut *store, "memory")?;
        if memory.ty(&*store).is_shared() {
            return None;
        }
        let base = memory.data_ptr(&*store) as usize;
        let len = memory.data_size(&*store) / PAGE * PAGE;
        if len == 0 || base % PAGE != 0 {
            return None;
        }
        let mut slots = artifact.slots.lock().unwrap_or_else(|p| p.into_inner());
        let known = slots
            .iter()
            .find(|s| s.base == base && s.len == len)
            .map(|s| s.pieces.clone());
        let pieces = match known {
            Some(pieces) => pieces?,
            None => {
                let pieces = first_look(tracker, artifact, store, memory, base, len);
                slots.retain(|s| s.base != base);
                slots.push(Slot {
                    base,
                    len,
                    pieces: pieces.clone(),
                });
                pieces?
            }
        };
        Some(Tracked {
            memory,
            base,
            len,
            pieces,
            artifact: artifact.clone(),
        })
    }

    /// Puts the pages the run wrote back and protects them again (see the
    /// module docs); no guest may run in this store any more. Returns the
    /// stretches to unprotect once wasmtime's reset is done. Whatever it
    /// cannot do is left to wasmtime's reset.
    pub(crate) fn reset(self, tracker: &Tracker, store: &mut Store<Ctx>) -> Hot {
        let (start, end) = (self.base, self.base + self.len);
        let mut written = Vec::new();
        if tracker.scan(start, end, false, &mut written).is_err() {
            return Hot(Vec::new());
        }
        let data = self.memory.data_mut(&mut *store);
        let source = &self.artifact.map[..];
        let mut restored = true;
        for &(s, e) in &written {
            restored &= restore(data, source, &self.pieces, s - start, e - start);
        }
        if !restored {
            // A written page could not be put back (a piece outside the
            // memory or the image): it must not keep this run's bytes.
            self.forget();
            return Hot(Vec::new());
        }
        let mut protected = Vec::with_capacity(written.len());
        let mut result = tracker.scan(start, end, true, &mut protected);
        let lost = matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPERM));
        if lost {
            // (Part of) the range lost its registration: wasmtime mapped the
            // slot anew (for another module, then for this one again). An
            // unregistered page counts as written, so every page there was
            // reported and restored: register the range again and protect
            // what the first scan reported (the pages a failed call
            // protected already were among them too).
            protected.clear();
            result = tracker
                .register(start, self.len)
                .and_then(|()| tracker.scan(start, end, true, &mut protected));
        }
        match result {
            Ok(_) if within(&protected, &written) => {
                // Pages not mapped since the slot was mapped anew get their
                // markers back (the rest is as mapped: protecting it is
                // within the invariant).
                if lost {
                    let _ = tracker.protect_unwritten(start, end);
                }
                Hot(join(&written, HOT_GAP))
            }
            Ok(_) => {
                // Protected a page not restored: impossible with no guest
                // running, but such a page would escape every reset after
                // this one.
                self.forget();
                Hot(Vec::new())
            }
            // Pages protected before the failure were restored ones; the
            // rest are wasmtime's to reset.
            Err(_) => Hot(Vec::new()),
        }
    }
}

impl Tracked {
    /// Gives up on this memory: the whole range goes back to its mappings
    /// (the image and zeros: wasmtime's own way) and the slot is not kept
    /// any more.
    fn forget(&self) {
        discard(self.base, self.len);
        let mut slots = self
            .artifact
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        slots.retain(|s| s.base != self.base);
    }
}

/// The stretches a reset restored, to unprotect once wasmtime's reset is
/// done ([`Hot::release`]).
pub(crate) struct Hot(Vec<(usize, usize)>);

impl Hot {
    /// Clears the write-protect bit of the hot stretches: from now on they
    /// count as written (every scan reports them, every reset restores
    /// them), whether the next run writes them or not. Taking bits away
    /// never breaks the invariant, and a failure leaves pages protected,
    /// which is fine too.
    pub(crate) fn release(self, tracker: &Tracker) {
        for (s, e) in self.0 {
            let _ = tracker.unprotect(s, e);
        }
    }
}

/// `stretches` (sorted), with those at most `gap` pages apart joined.
fn join(stretches: &[(usize, usize)], gap: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(stretches.len());
    for &(s, e) in stretches {
        match out.last_mut() {
            Some(last) if s <= last.1 + gap * PAGE => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Whether every stretch of `inner` lies inside one of `outer` (both
/// sorted, as scans report them).
fn within(inner: &[(usize, usize)], outer: &[(usize, usize)]) -> bool {
    let mut o = outer.iter().peekable();
    inner.iter().all(|&(s, e)| {
        while o.next_if(|&&(_, oe)| oe <= s).is_some() {}
        o.peek().is_some_and(|&&(os, oe)| os <= s && e <= oe)
    })
}

/// Copies `[from, to)` of `data` back from the memory's initial contents;
/// false if some of it could not be (then it is not what it was).
fn restore(data: &mut [u8], source: &[u8], pieces: &[Piece], from: usize, to: usize) -> bool {
    let mut all = true;
    for p in pieces {
        let s = from.max(p.offset);
        let e = to.min(p.offset + p.len);
        if s >= e {
            continue;
        }
        let Some(dst) = data.get_mut(s..e) else {
            all = false;
            continue;
        };
        match p.source {
            Some(src) => {
                let at = src + (s - p.offset);
                match source.get(at..at + (e - s)) {
                    Some(bytes) => dst.copy_from_slice(bytes),
                    None => all = false,
                }
            }
            None => dst.fill(0),
        }
    }
    all
}

/// Gives the pages of `[start, start + len)` back to the kernel: the
/// range reads as its mappings again (the image, zeros), as after
/// wasmtime's own reset.
fn discard(start: usize, len: usize) {
    // SAFETY: the range is the tracked part of a linear memory whose store
    // no guest runs in any more and that no Rust reference points into
    // (the caller's slice of it is gone); dropping its pages is what
    // wasmtime's reset does to a slot (`MADV_DONTNEED`), after which the
    // memory reads as its copy-on-write image and zeros.
    #[allow(unsafe_code)]
    let _ = unsafe {
        rustix::mm::madvise(
            start as *mut std::ffi::c_void,
            len,
            rustix::mm::Advice::LinuxDontNeed,
        )
    };
}

/// The first look at a program's memory in a slot, right after
/// instantiation: its initial contents from the slot's mappings, checked
/// at the first and last page of each file-backed piece; then the range
/// is registered and all of it but the pages written already is
/// protected. `None` if anything is unexpected.
fn first_look(
    tracker: &Tracker,
    artifact: &Artifact,
    store: &Store<Ctx>,
    memory: Memory,
    base: usize,
    len: usize,
) -> Option<Arc<[Piece]>> {
    let maps = tracker.maps().ok()?;
    let pieces = pieces(&maps, artifact, base, len)?;
    let data = memory.data(store).get(..len)?;
    for p in &pieces {
        let Some(src) = p.source else { continue };
        for at in [0, p.len.saturating_sub(PAGE)] {
            let now = data.get(p.offset + at..p.offset + at + PAGE)?;
            if artifact.map.get(src + at..src + at + PAGE)? != now {
                return None;
            }
        }
    }
    tracker.register(base, len).ok()?;
    tracker.protect_unwritten(base, base + len).ok()?;
    Some(pieces.into())
}

/// The pieces of `[base, base + len)` from the mappings in `maps` (the
/// text of `/proc/self/maps`): parts mapped from the artifact's file are
/// copies of it at the mapping's offset, anonymous parts are zeros;
/// anything else (another file, a gap) gives `None`.
fn pieces(maps: &str, artifact: &Artifact, base: usize, len: usize) -> Option<Vec<Piece>> {
    let end = base + len;
    let mut pieces: Vec<Piece> = Vec::new();
    let mut at = base;
    for line in maps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (range, _perms, offset, dev, inode) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let (s, e) = range.split_once('-')?;
        let (s, e) = (
            usize::from_str_radix(s, 16).ok()?,
            usize::from_str_radix(e, 16).ok()?,
        );
        if e <= at || s >= end {
            continue;
        }
        if s > at {
            return None;
        }
        let piece_end = e.min(end);
        let inode: u64 = inode.parse().ok()?;
        let source = if inode == 0 {
            None
        } else {
            let (major, minor) = dev.split_once(':')?;
            let dev = rustix::fs::makedev(
                u32::from_str_radix(major, 16).ok()?,
                u32::from_str_radix(minor, 16).ok()?,
            );
            if dev != artifact.dev || inode != artifact.ino {
                return None;
            }
            let offset = usize::from_str_radix(offset, 16).ok()?;
            Some(offset + (at - s))
        };
        let piece = Piece {
            offset: at - base,
            len: piece_end - at,
            source,
        };
        match pieces.last_mut() {
            Some(last)
                if last.offset + last.len == piece.offset
                    && match (last.source, piece.source) {
                        (None, None) => true,
                        (Some(a), Some(b)) => a + last.len == b,
                        _ => false,
                    } =>
            {
                last.len += piece.len
            }
            _ => pieces.push(piece),
        }
        at = piece_end;
        if at >= end {
            return Some(pieces);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_are_the_kernels() {
        assert_eq!(UFFDIO_API, 0xC018_AA3F);
        assert_eq!(UFFDIO_REGISTER, 0xC020_AA00);
        assert_eq!(UFFDIO_WRITEPROTECT, 0xC018_AA06);
        assert_eq!(PAGEMAP_SCAN, 0xC060_6610);
    }

    #[test]
    fn restore_puts_back_the_image_and_zeros_and_says_when_it_cannot() {
        let source = vec![7u8; 2 * PAGE];
        let pieces = [
            Piece {
                offset: 0,
                len: PAGE,
                source: Some(PAGE),
            },
            Piece {
                offset: PAGE,
                len: PAGE,
                source: None,
            },
        ];
        let mut data = vec![1u8; 2 * PAGE];
        assert!(restore(&mut data, &source, &pieces, 0, 2 * PAGE));
        assert!(data[..PAGE].iter().all(|&b| b == 7));
        assert!(data[PAGE..].iter().all(|&b| b == 0));
        // A piece whose image lies past the artifact's end.
        let short = [Piece {
            offset: 0,
            len: PAGE,
            source: Some(2 * PAGE),
        }];
        assert!(!restore(&mut data, &source, &short, 0, PAGE));
        // A piece past the memory's end.
        let past = [Piece {
            offset: 2 * PAGE,
            len: PAGE,
            source: None,
        }];
        assert!(!restore(&mut data, &source, &past, 2 * PAGE, 3 * PAGE));
    }

    #[test]
    fn stretches_join_across_small_gaps_only() {
        let p = |a: usize, b: usize| (a * PAGE, b * PAGE);
        let s = [p(0, 1), p(3, 4), p(9, 12), p(20, 21)];
        assert_eq!(join(&s, 4), vec![p(0, 4), p(9, 12), p(20, 21)]);
        assert_eq!(join(&s, 0), s.to_vec());
        assert!(within(&[p(0, 1), p(10, 11)], &s));
        assert!(!within(&[p(0, 2)], &s));
        assert!(!within(&[p(13, 14)], &s));
    }

    #[test]
    fn pieces_follow_the_mappings() {
        let artifact = Artifact {
            map: memmap2::MmapOptions::new()
                .len(PAGE)
                .map_anon()
                .unwrap()
                .make_read_only()
                .unwrap(),
            dev: rustix::fs::makedev(0xfd, 1),
            ino: 42,
            slots: Mutex::new(Vec::new()),
        };
        let maps = "\
7f0000000000-7f0000002000 rw-p 00000000 00:00 0 \n\
7f0000002000-7f0000006000 rw-p 00010000 fd:01 42 /cache/a.cwasm\n\
7f0000006000-7f0000008000 rw-p 00000000 00:00 0 \n";
        let base = 0x7f00_0000_1000;
        let got = pieces(maps, &artifact, base, 0x6000).unwrap();
        assert_eq!(
            got,
            vec![
                Piece {
                    offset: 0,
                    len: 0x1000,
                    source: None
                },
                Piece {
                    offset: 0x1000,
                    len: 0x4000,
                    source: Some(0x10000)
                },
                Piece {
                    offset: 0x5000,
                    len: 0x1000,
                    source: None
                },
            ]
        );
        // Another file, or a gap: not ours to reset.
        let other = maps.replace(" 42 ", " 43 ");
        assert!(pieces(&other, &artifact, base, 0x6000).is_none());
        let gap = maps.replace("7f0000006000-7f0000008000", "7f0000007000-7f0000008000");
        assert!(pieces(&gap, &artifact, base, 0x6000).is_none());
    }
}
