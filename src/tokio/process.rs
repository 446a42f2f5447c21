//! The process's own counters for the sampler: resident memory, CPU time, threads, read from
//! `/proc/self/stat` (Linux; elsewhere the sampler records none).

/// One reading.
pub(crate) struct ProcessReading {
    pub(crate) rss_bytes: u64,
    pub(crate) cpu_user_ms: u64,
    pub(crate) cpu_system_ms: u64,
    pub(crate) threads: u64,
}

/// Reads `/proc/self/stat`, with the kernel's tick and page sizes.
pub(crate) struct ProcessStat {
    #[cfg(target_os = "linux")]
    ticks_per_second: u64,
    #[cfg(target_os = "linux")]
    page_bytes: u64,
    /// Kept open and read again from the start each time: no `open` per sample.
    #[cfg(target_os = "linux")]
    file: std::fs::File,
    /// Reused for each read: no allocation in steady state.
    #[cfg(target_os = "linux")]
    bytes: Vec<u8>,
}

impl ProcessStat {
    /// `None` where the process's counters cannot be read.
    #[cfg(target_os = "linux")]
    pub(crate) fn new() -> Option<Self> {
        let mut stat = ProcessStat {
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
            page_bytes: rustix::param::page_size() as u64,
            file: std::fs::File::open("/proc/self/stat").ok()?,
            bytes: vec![0; 1024],
        };
        stat.read()?;
        Some(stat)
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn new() -> Option<Self> {
        None
    }

    /// The counters now; `None` if the file could not be read or parsed.
    #[cfg(target_os = "linux")]
    pub(crate) fn read(&mut self) -> Option<ProcessReading> {
        use std::os::unix::fs::FileExt;
        // procfs regenerates the line for a read at offset 0; it is well under 1 KiB.
        let len = self.file.read_at(&mut self.bytes, 0).ok()?;
        let text = std::str::from_utf8(self.bytes.get(..len)?).ok()?;
        let fields = parse_stat(text)?;
        let millis = |ticks: u64| ticks.saturating_mul(1000) / self.ticks_per_second;
        Some(ProcessReading {
            rss_bytes: fields.rss_pages.saturating_mul(self.page_bytes),
            cpu_user_ms: millis(fields.utime),
            cpu_system_ms: millis(fields.stime),
            threads: fields.threads,
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn read(&mut self) -> Option<ProcessReading> {
        None
    }
}

/// The fields of `/proc/<pid>/stat` the sampler uses.
#[derive(Debug, PartialEq, Eq)]
struct StatFields {
    utime: u64,
    stime: u64,
    threads: u64,
    rss_pages: u64,
}

/// Parses `/proc/<pid>/stat` (proc(5)): fields after the command name, which is in
/// parentheses and may itself hold spaces and parentheses, so the last `)` ends it.
fn parse_stat(text: &str) -> Option<StatFields> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; proc(5) numbers from 1.
    let field = |n: usize| {
        rest.split_ascii_whitespace()
            .nth(n - 3)?
            .parse::<u64>()
            .ok()
    };
    Some(StatFields {
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
        rss_pages: field(24)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parentheses() {
        let line = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 37 0 0 20 0 \
                    7 0 12345 1000000 2500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 \
                    0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(StatFields {
                utime: 150,
                stime: 37,
                threads: 7,
                rss_pages: 2500,
            })
        );
        assert_eq!(parse_stat("4242 (cut"), None);
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let mut stat = ProcessStat::new().expect("/proc/self/stat");
        let reading = stat.read().unwrap();
        assert!(reading.rss_bytes > 0);
        assert!(reading.threads >= 1);
    }
}
