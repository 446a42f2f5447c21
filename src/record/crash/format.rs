//! The crash file's layout: where the header, chunk descriptors, callsite log and chunk arena
//! sit, and the byte offsets of every field. Shared by the writer (`store`) and the reader
//! (`read`), so the two cannot disagree.
//!
//! All integers are little-endian. Fields a live process updates are naturally aligned, so the
//! writer updates them as atomics.

/// First bytes of every crash file.
pub(crate) const MAGIC: &[u8; 8] = b"BBXCRASH";

/// Version of this layout; a reader refuses any other.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Page size the arena is managed in (and the unit of hole punching).
pub(crate) const PAGE_BYTES: usize = 4096;

/// The header: one page.
pub(crate) const HEADER_BYTES: usize = PAGE_BYTES;

/// Header fields: byte offsets.
pub(crate) mod header {
    pub(crate) const MAGIC: usize = 0;
    pub(crate) const FORMAT: usize = 8;
    pub(crate) const PID: usize = 16;
    /// When the process started (Linux: `/proc/<pid>/stat` field 22), to tell a reused pid.
    pub(crate) const START_TIME: usize = 24;
    pub(crate) const ANCHOR_RAW: usize = 32;
    /// Wall-clock time of `ANCHOR_RAW`, nanoseconds since the Unix epoch.
    pub(crate) const ANCHOR_WALL_NANOS: usize = 40;
    /// Nanoseconds per raw clock tick (`f64` bits).
    pub(crate) const NANOS_PER_TICK: usize = 48;
    pub(crate) const MAX_BYTES: usize = 56;
    pub(crate) const MIN_AGE_NANOS: usize = 64;
    pub(crate) const DESCRIPTORS_OFFSET: usize = 72;
    pub(crate) const DESCRIPTOR_COUNT: usize = 80;
    pub(crate) const CALLSITES_OFFSET: usize = 88;
    pub(crate) const CALLSITES_BYTES: usize = 96;
    pub(crate) const ARENA_OFFSET: usize = 104;
    pub(crate) const ARENA_BYTES: usize = 112;
    /// Bytes of the callsite log that are complete (published after the entry's bytes).
    pub(crate) const CALLSITES_COMMITTED: usize = 120;
    /// Records evicted so far (a mirror of the storage's counter).
    pub(crate) const OVERWRITTEN: usize = 128;
    /// Records dropped so far (a mirror of the recording's counter).
    pub(crate) const DROPPED: usize = 136;
    /// Chunks that could not be placed in the file (kept in ordinary memory instead).
    pub(crate) const UNMAPPED_CHUNKS: usize = 144;
    /// Callsites that did not fit the callsite log.
    pub(crate) const CALLSITES_LOST: usize = 152;
    /// Total file size, in bytes.
    pub(crate) const FILE_BYTES: usize = 160;
    /// The crate version that wrote the file: a length byte and up to 31 bytes.
    pub(crate) const CRATE_VERSION: usize = 192;
    pub(crate) const CRATE_VERSION_MAX: usize = 31;
    /// The executable's path: a `u16` length and up to 1022 bytes.
    pub(crate) const EXE: usize = 256;
    pub(crate) const EXE_MAX: usize = 1022;
}

/// One chunk descriptor: where a chunk lives in the arena, whose it is, and how many of its
/// bytes are complete records.
pub(crate) const DESCRIPTOR_BYTES: usize = 64;

/// Descriptor fields: byte offsets within a descriptor.
pub(crate) mod descriptor {
    /// Bytes of complete records (`u32`); zero when the descriptor holds nothing. Published
    /// with a release store after the bytes it covers.
    pub(crate) const COMMITTED: usize = 0;
    pub(crate) const CAPACITY: usize = 4;
    /// Offset of the chunk's memory from the arena's start.
    pub(crate) const OFFSET: usize = 8;
    pub(crate) const TID: usize = 16;
    /// Order of the chunk among its thread's chunks (a process-wide sequence).
    pub(crate) const SEQ: usize = 24;
    /// The thread's name: a length byte and up to 31 bytes.
    pub(crate) const NAME: usize = 32;
    pub(crate) const NAME_MAX: usize = 31;
}

/// How big each region is for a budget, and where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Regions {
    pub(crate) descriptors_offset: usize,
    pub(crate) descriptor_count: usize,
    pub(crate) callsites_offset: usize,
    pub(crate) callsites_bytes: usize,
    pub(crate) arena_offset: usize,
    pub(crate) arena_bytes: usize,
}

impl Regions {
    /// Most descriptors a file has, whatever the budget (64 B each: 64 MiB).
    const MAX_DESCRIPTORS: usize = 1 << 20;

    /// One descriptor per this many bytes of arena: a chunk is at least 16 KiB, except an
    /// exited thread's, shrunk to as little as a page; half the arena is for held chunks.
    const ARENA_BYTES_PER_DESCRIPTOR: usize = 8 << 10;

    /// The regions for `max_bytes` of records. The arena is twice the budget: chunks a
    /// snapshot still reads after their eviction stay where they are, and the buddy allocator
    /// rounds blocks up to powers of two. Memory is used only for chunks that hold records
    /// (freed blocks are given back to the file system), so the second half costs address
    /// space, not memory.
    pub(crate) fn for_budget(max_bytes: usize) -> Regions {
        let arena_bytes = round_up(max_bytes.max(PAGE_BYTES) * 2, PAGE_BYTES);
        let descriptor_count =
            (arena_bytes / Self::ARENA_BYTES_PER_DESCRIPTOR).clamp(64, Self::MAX_DESCRIPTORS);
        let callsites_bytes = round_up((max_bytes / 16).clamp(256 << 10, 4 << 20), PAGE_BYTES);
        let descriptors_offset = HEADER_BYTES;
        let callsites_offset =
            descriptors_offset + round_up(descriptor_count * DESCRIPTOR_BYTES, PAGE_BYTES);
        let arena_offset = callsites_offset + callsites_bytes;
        Regions {
            descriptors_offset,
            descriptor_count,
            callsites_offset,
            callsites_bytes,
            arena_offset,
            arena_bytes,
        }
    }

    pub(crate) fn file_bytes(&self) -> usize {
        self.arena_offset + self.arena_bytes
    }
}

pub(crate) fn round_up(bytes: usize, to: usize) -> usize {
    bytes.div_ceil(to) * to
}

/// The callsite log: entries back to back, each
/// `[entry bytes u32][address u64][is span u8][level u8][line u32][name][target][file]`
/// `[module][field count u16][field names…]`, every string a `u16` length and its bytes.
pub(crate) mod callsite {
    /// Level bytes, most verbose first.
    pub(crate) const LEVELS: [tracing_core::Level; 5] = [
        tracing_core::Level::TRACE,
        tracing_core::Level::DEBUG,
        tracing_core::Level::INFO,
        tracing_core::Level::WARN,
        tracing_core::Level::ERROR,
    ];
}

/// The file name of a process's crash file: `blackbox-<exe>-<pid>-<start time>.shm`.
pub(crate) fn file_name(exe: &str, pid: u32, start_time: u64) -> String {
    format!("blackbox-{exe}-{pid}-{start_time}.shm")
}

/// The prefix of every crash file an executable leaves.
pub(crate) fn file_prefix(exe: &str) -> String {
    format!("blackbox-{exe}-")
}

/// The executable's name as it appears in file names: `[A-Za-z0-9._-]`, at most 64 characters.
pub(crate) fn exe_label(exe: &std::path::Path) -> String {
    let name = exe
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if clean.is_empty() {
        "process".to_owned()
    } else {
        clean
    }
}
