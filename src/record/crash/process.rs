//! Which process wrote a crash file, and whether it is still alive: a pid alone is not enough
//! (pids are reused), so a process is its pid plus its start time.

use std::path::PathBuf;

/// The start time of process `pid` (clock ticks since boot, `/proc/<pid>/stat` field 22), or
/// `None` if there is no such process, or it has died and only waits to be reaped (a zombie:
/// its memory, and so its recorder, are gone).
#[cfg(target_os = "linux")]
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // Fields 3, 4, … follow: the state, then the start time as field 22.
    if matches!(fields.next()?, "Z" | "X" | "x") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Without `/proc`, a process is only its pid: its start time reads as zero while it lives.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    alive.then_some(0)
}

/// Whether the process that wrote a file (its pid and start time) is still running.
pub(crate) fn is_alive(pid: u32, started: u64) -> bool {
    start_time(pid) == Some(started)
}

/// This process: its pid, start time and executable.
pub(crate) struct ThisProcess {
    pub(crate) pid: u32,
    pub(crate) start_time: u64,
    pub(crate) exe: PathBuf,
}

impl ThisProcess {
    pub(crate) fn get() -> ThisProcess {
        let pid = std::process::id();
        ThisProcess {
            pid,
            start_time: start_time(pid).unwrap_or(0),
            exe: std::env::current_exe().unwrap_or_default(),
        }
    }
}
