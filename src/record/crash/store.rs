//! The writer of a crash file: a shared mapping the chunks live in, so the records outlive the
//! process. Allocates chunk memory from the file's arena, keeps the chunk descriptors and the
//! callsite log, and removes the file on a clean exit.
//!
//! Memory ordering, for a reader that opens the file after the process died at any
//! instruction: every store the process executed is in the file (the mapping is shared, and
//! the kernel keeps the pages), so what matters is their order in the program. A chunk's
//! bytes are written before its descriptor's committed length, which is a release store; a
//! reused chunk's committed length is set to zero before its descriptor names another thread.
//! So the reader sees, for every descriptor, a prefix of complete records of the thread it
//! names. (The same holds for the callsite log and its committed length.)

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex};

use buddy_system_allocator::FrameAllocator;
use memmap2::MmapRaw;
#[cfg(target_os = "linux")]
use memmap2::UncheckedAdvice;
use tracing_core::Metadata;

use super::format::{
    self, DESCRIPTOR_BYTES, FORMAT_VERSION, MAGIC, PAGE_BYTES, Regions, descriptor, header,
};
use super::process::ThisProcess;
use super::registry;
use crate::record::Timebase;
use crate::sync::lock;

/// What the crash file is for: where it goes and how big its chunk storage is.
#[derive(Debug, Clone)]
pub(crate) struct CrashFileConfig {
    pub(crate) dir: PathBuf,
    pub(crate) max_bytes: usize,
    pub(crate) min_age_nanos: u64,
}

/// The crash file of this process, mapped.
pub(crate) struct CrashStore {
    path: PathBuf,
    file: File,
    map: MmapRaw,
    regions: Regions,
    inner: Mutex<StoreInner>,
}

struct StoreInner {
    /// Free pages of the arena.
    pages: FrameAllocator,
    free_descriptors: Vec<u32>,
    /// Callsites already in the log, by address.
    interned: HashSet<usize>,
    callsites_len: usize,
}

impl std::fmt::Debug for CrashStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrashStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl CrashStore {
    /// Creates this process's crash file in `config.dir` (0600, replacing a file of the same
    /// name, which only a process with the same pid and start time could have left), maps it
    /// and writes its header.
    pub(crate) fn create(config: &CrashFileConfig, timebase: &Timebase) -> io::Result<Arc<Self>> {
        let process = ThisProcess::get();
        let regions = Regions::for_budget(config.max_bytes);
        std::fs::create_dir_all(&config.dir)?;
        let name = format::file_name(
            &format::exe_label(&process.exe),
            process.pid,
            process.start_time,
        );
        let path = config.dir.join(name);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path)?;
        let created = (|| {
            // Sparse: pages take memory only once written (and give it back when punched).
            file.set_len(regions.file_bytes() as u64)?;
            reserve(&file, 0, regions.arena_offset)?;
            MmapRaw::map_raw(&file)
        })();
        let map = match created {
            Ok(map) => map,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let mut pages = FrameAllocator::new();
        pages.add_frame(0, regions.arena_bytes / PAGE_BYTES);
        let store = CrashStore {
            path,
            file,
            map,
            regions,
            inner: Mutex::new(StoreInner {
                pages,
                free_descriptors: (0..regions.descriptor_count as u32).rev().collect(),
                interned: HashSet::new(),
                callsites_len: 0,
            }),
        };
        store.write_header(config, timebase, &process);
        registry::remove_at_exit(&store.path);
        Ok(Arc::new(store))
    }

    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn write_header(&self, config: &CrashFileConfig, timebase: &Timebase, process: &ThisProcess) {
        let regions = &self.regions;
        let put = |at: usize, value: u64| self.store_u64(at, value);
        self.write_bytes(header::MAGIC, MAGIC);
        self.atomic_u32(header::FORMAT)
            .store(FORMAT_VERSION, Ordering::Relaxed);
        self.atomic_u32(header::PID)
            .store(process.pid, Ordering::Relaxed);
        put(header::START_TIME, process.start_time);
        put(header::ANCHOR_RAW, timebase.anchor_raw);
        let wall = timebase.anchor_wall.timestamp_nanos_opt().unwrap_or(0);
        put(header::ANCHOR_WALL_NANOS, wall as u64);
        put(header::NANOS_PER_TICK, timebase.nanos_per_tick().to_bits());
        put(header::MAX_BYTES, config.max_bytes as u64);
        put(header::MIN_AGE_NANOS, config.min_age_nanos);
        put(
            header::DESCRIPTORS_OFFSET,
            regions.descriptors_offset as u64,
        );
        put(header::DESCRIPTOR_COUNT, regions.descriptor_count as u64);
        put(header::CALLSITES_OFFSET, regions.callsites_offset as u64);
        put(header::CALLSITES_BYTES, regions.callsites_bytes as u64);
        put(header::ARENA_OFFSET, regions.arena_offset as u64);
        put(header::ARENA_BYTES, regions.arena_bytes as u64);
        put(header::FILE_BYTES, regions.file_bytes() as u64);
        let version = env!("CARGO_PKG_VERSION").as_bytes();
        let version = &version[..version.len().min(header::CRATE_VERSION_MAX)];
        self.write_bytes(header::CRATE_VERSION, &[version.len() as u8]);
        self.write_bytes(header::CRATE_VERSION + 1, version);
        let exe = process.exe.to_string_lossy();
        let exe = truncated(exe.as_bytes(), header::EXE_MAX);
        self.write_bytes(header::EXE, &(exe.len() as u16).to_le_bytes());
        self.write_bytes(header::EXE + 2, exe);
    }

    fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// The atomic `u32` at byte `at` of the file.
    fn atomic_u32(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at.is_multiple_of(4) && at + 4 <= self.regions.file_bytes());
        // SAFETY: `at` is in the mapping and 4-aligned (the mapping is page-aligned and every
        // offset in `format` is aligned), the mapping lives as long as `self`, and the crate
        // only ever accesses these bytes atomically.
        unsafe { AtomicU32::from_ptr(self.base().add(at).cast()) }
    }

    /// The atomic `u64` at byte `at` of the file.
    fn atomic_u64(&self, at: usize) -> &AtomicU64 {
        debug_assert!(at.is_multiple_of(8) && at + 8 <= self.regions.file_bytes());
        // SAFETY: as in `atomic_u32`, 8-aligned.
        unsafe { AtomicU64::from_ptr(self.base().add(at).cast()) }
    }

    fn store_u64(&self, at: usize, value: u64) {
        self.atomic_u64(at).store(value, Ordering::Relaxed);
    }

    /// Copies `bytes` to byte `at` of the file: only into header and descriptor fields that no
    /// one reads in this process, and into the callsite log past its committed length.
    fn write_bytes(&self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= self.regions.file_bytes());
        // SAFETY: in bounds (checked above); nothing in this process holds a reference to
        // these bytes (see above), so the copy aliases nothing.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base().add(at), bytes.len());
        }
    }

    fn descriptor_at(&self, index: u32) -> usize {
        self.regions.descriptors_offset + index as usize * DESCRIPTOR_BYTES
    }

    /// A block of at least `bytes` in the arena (rounded up to a power of two of pages), with
    /// a descriptor of its own; `None` if the arena or the descriptors are exhausted, or the
    /// file system has no room for it.
    pub(crate) fn allocate(self: &Arc<Self>, bytes: usize) -> Option<MappedBlock> {
        let pages = Self::block_bytes(bytes) / PAGE_BYTES;
        let mut inner = lock(&self.inner);
        let descriptor = inner.free_descriptors.pop()?;
        let Some(first_page) = inner.pages.alloc(pages) else {
            inner.free_descriptors.push(descriptor);
            return None;
        };
        let offset = first_page * PAGE_BYTES;
        let capacity = pages * PAGE_BYTES;
        // Ask the file system for the pages now, so a full tmpfs is an error here instead of
        // a SIGBUS when a record is written.
        if reserve(&self.file, self.regions.arena_offset + offset, capacity).is_err() {
            inner.pages.dealloc(first_page, pages);
            inner.free_descriptors.push(descriptor);
            return None;
        }
        drop(inner);
        let at = self.descriptor_at(descriptor);
        self.atomic_u32(at + descriptor::COMMITTED)
            .store(0, Ordering::Release);
        self.atomic_u32(at + descriptor::CAPACITY)
            .store(capacity as u32, Ordering::Relaxed);
        self.store_u64(at + descriptor::OFFSET, offset as u64);
        // SAFETY: the block is inside the arena, which is inside the mapping.
        let ptr = unsafe { self.base().add(self.regions.arena_offset + offset) };
        let committed = NonNull::from(self.atomic_u32(at + descriptor::COMMITTED));
        Some(MappedBlock {
            store: Arc::clone(self),
            ptr: NonNull::new(ptr)?,
            committed,
            capacity,
            first_page,
            pages,
            descriptor,
            seq: 0,
        })
    }

    /// The size of the block that holds `bytes`: a power of two of pages.
    pub(crate) fn block_bytes(bytes: usize) -> usize {
        bytes.max(1).div_ceil(PAGE_BYTES).next_power_of_two() * PAGE_BYTES
    }

    fn free(&self, block: &MappedBlock) {
        let at = self.descriptor_at(block.descriptor);
        self.atomic_u32(at + descriptor::COMMITTED)
            .store(0, Ordering::Release);
        // Give the pages back to the file system: the file then uses memory only for chunks
        // that hold records. A failure only leaves them in use.
        #[cfg(target_os = "linux")]
        // SAFETY: nothing reads or writes the block any more (its `MappedBlock` is being
        // dropped), and MADV_REMOVE on a shared file mapping only zeroes those pages.
        let _ = unsafe {
            self.map.unchecked_advise_range(
                UncheckedAdvice::Remove,
                self.regions.arena_offset + block.first_page * PAGE_BYTES,
                block.capacity,
            )
        };
        let mut inner = lock(&self.inner);
        inner.pages.dealloc(block.first_page, block.pages);
        inner.free_descriptors.push(block.descriptor);
    }

    /// Writes `metadata` into the callsite log, once per callsite, so a reader can name the
    /// records that point at it. A log that is full counts the callsite as lost.
    pub(crate) fn intern(&self, metadata: &'static Metadata<'static>) {
        let address = metadata as *const Metadata<'static> as usize;
        let mut inner = lock(&self.inner);
        if inner.interned.contains(&address) {
            return;
        }
        let entry = super::callsites::encode(address as u64, metadata);
        if inner.callsites_len + entry.len() > self.regions.callsites_bytes {
            self.atomic_u64(header::CALLSITES_LOST)
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        inner.interned.insert(address);
        self.write_bytes(self.regions.callsites_offset + inner.callsites_len, &entry);
        inner.callsites_len += entry.len();
        self.atomic_u64(header::CALLSITES_COMMITTED)
            .store(inner.callsites_len as u64, Ordering::Release);
    }

    /// Mirrors the storage's count of evicted records.
    pub(crate) fn note_overwritten(&self, overwritten: u64) {
        self.store_u64(header::OVERWRITTEN, overwritten);
    }

    /// Mirrors the recording's count of dropped records.
    pub(crate) fn note_dropped(&self) {
        self.atomic_u64(header::DROPPED)
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a chunk that had to live in ordinary memory (not in the file).
    pub(crate) fn note_unmapped(&self) {
        self.atomic_u64(header::UNMAPPED_CHUNKS)
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for CrashStore {
    /// The recorder went away cleanly: its records are not a crash's.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        registry::forget(&self.path);
    }
}

/// Makes the file system back `len` bytes at `offset` now (tmpfs: reserve the pages).
#[cfg(target_os = "linux")]
fn reserve(file: &File, offset: usize, len: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: a plain system call on a file descriptor we own.
    match unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) } {
        0 => Ok(()),
        _ => {
            let error = io::Error::last_os_error();
            // File systems without fallocate: the pages come when first written.
            if error.raw_os_error() == Some(libc::EOPNOTSUPP) {
                Ok(())
            } else {
                Err(error)
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn reserve(_file: &File, _offset: usize, _len: usize) -> io::Result<()> {
    Ok(())
}

fn truncated(bytes: &[u8], max: usize) -> &[u8] {
    let mut end = bytes.len().min(max);
    while end > 0 && end < bytes.len() && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &bytes[..end]
}

/// A chunk's memory in the crash file, and its descriptor. Owned by exactly one chunk.
pub(crate) struct MappedBlock {
    store: Arc<CrashStore>,
    ptr: NonNull<u8>,
    /// The descriptor's committed length (in the mapping, which `store` keeps alive).
    committed: NonNull<AtomicU32>,
    capacity: usize,
    first_page: usize,
    pages: usize,
    descriptor: u32,
    seq: u64,
}

// SAFETY: the block's bytes belong to this value alone (the allocator hands each block out
// once); who writes them when is the owning chunk's protocol (`storage::chunk`).
unsafe impl Send for MappedBlock {}
// SAFETY: see `Send`.
unsafe impl Sync for MappedBlock {}

impl MappedBlock {
    /// The block's first byte. Its bytes are reached only through this pointer (see
    /// `storage::chunk`): the writer past the published length, readers below it.
    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn field(&self, offset: usize) -> usize {
        self.store.descriptor_at(self.descriptor) + offset
    }

    /// Publishes `len` bytes of complete records (after they were written).
    #[inline]
    pub(crate) fn commit(&self, len: usize) {
        // SAFETY: points into the mapping, which `store` keeps alive; only ever accessed
        // atomically.
        unsafe { self.committed.as_ref() }.store(len as u32, Ordering::Release);
    }

    /// Gives the block to a thread's chunk number `seq`: nothing is committed until its first
    /// record, and the zero is in place before the descriptor names the new owner.
    pub(crate) fn claim(&mut self, tid: u64, name: Option<&str>, seq: u64) {
        self.seq = seq;
        self.commit(0);
        fence(Ordering::SeqCst);
        self.store.store_u64(self.field(descriptor::TID), tid);
        self.store.store_u64(self.field(descriptor::SEQ), seq);
        let name = truncated(name.unwrap_or("").as_bytes(), descriptor::NAME_MAX);
        let mut field = [0u8; descriptor::NAME_MAX + 1];
        field[0] = name.len() as u8;
        field[1..=name.len()].copy_from_slice(name);
        self.store.write_bytes(self.field(descriptor::NAME), &field);
    }

    /// The chunk number this block was last claimed for.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
}

impl Drop for MappedBlock {
    fn drop(&mut self) {
        let store = Arc::clone(&self.store);
        store.free(self);
    }
}
