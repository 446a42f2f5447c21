//! tokio's tasks in the output: a task's span (`runtime.spawn`) named after the task, each poll
//! with its scheduled delay, and a flow arrow from a wake made inside a slice to the poll it
//! caused. Built from tokio's own records in the same time-ordered pass as everything else.

use std::collections::HashMap;

use tracing_core::Metadata;

use crate::dump::reader::{Fields, ValueRef};

/// Flow ids of wake arrows: apart from span ids (below 2⁶²) and orphan ids (bit 63).
const WAKE_FLOW_BIT: u64 = 1 << 62;

/// Whether `metadata` is tokio's span around a task's polls (`tokio::task`, or
/// `tokio::task::blocking` for `spawn_blocking`).
pub(super) fn is_task_span(metadata: &Metadata<'_>) -> bool {
    metadata.name() == "runtime.spawn" && metadata.target().starts_with("tokio::task")
}

/// Whether `metadata` is one of tokio's waker events.
pub(super) fn is_waker_event(metadata: &Metadata<'_>) -> bool {
    metadata.target() == "tokio::task::waker"
}

/// A waker event's task (registry id), if the event is a wake (not a clone or a drop).
pub(super) fn woken_task(fields: &Fields<'_>) -> Option<u64> {
    let mut wakes = false;
    let mut task = None;
    for (name, value) in fields.iter() {
        match (name, value) {
            ("op", ValueRef::Str { text, .. }) => {
                wakes = text == b"waker.wake" || text == b"waker.wake_by_ref";
            }
            ("task.id", ValueRef::U64(id)) => task = Some(id),
            _ => {}
        }
    }
    task.filter(|_| wakes)
}

/// The name a task's polls and lifetime are shown under: its name, else where it was spawned.
fn task_name(fields: &Fields<'_>, blocking: bool) -> String {
    let (mut name, mut file, mut line) = (None, None, None);
    for (field, value) in fields.iter() {
        match (field, value) {
            ("task.name", value) => {
                name = value
                    .text()
                    .filter(|t| !t.is_empty())
                    .map(|t| t.into_owned());
            }
            ("loc.file", value) => file = value.text().map(|t| t.into_owned()),
            ("loc.line", ValueRef::U64(n)) => line = Some(n),
            _ => {}
        }
    }
    let what = if blocking { "blocking" } else { "task" };
    let file = file.map(|file| short_path(&file).to_owned());
    match (name, file, line) {
        (Some(name), ..) => name,
        (None, Some(file), Some(line)) => format!("{what} {file}:{line}"),
        (None, Some(file), None) => format!("{what} {file}"),
        (None, None, _) => "runtime.spawn".to_owned(),
    }
}

/// A dependency's source path from its crate's directory on (`tokio-1.54.1/src/…` rather
/// than `/home/me/.cargo/registry/src/index.crates.io-…/tokio-1.54.1/src/…`).
fn short_path(file: &str) -> &str {
    match file.find("/registry/src/") {
        Some(at) => {
            let rest = &file[at + "/registry/src/".len()..];
            rest.split_once('/')
                .map_or(rest, |(_, crate_path)| crate_path)
        }
        None => file,
    }
}

/// What the pass knows of one task.
struct Task {
    name: String,
    /// Since when it has been ready to be polled (woken, or spawned), ns since the anchor,
    /// and on which capture thread it became ready.
    ready_since: Option<u64>,
    ready_thread: u32,
    polling: bool,
    woken_while_polled: bool,
    /// The wake that made it ready, when made inside a slice: where its arrow starts.
    wake: Option<(u64, u32)>,
}

/// A wake arrow: from a wake (ts, capture thread) to the poll it caused.
pub(super) struct WakeFlow {
    pub(super) id: u64,
    pub(super) from: (u64, u32),
}

/// Every task the window mentions, and the scheduled delay of each poll.
#[derive(Default)]
pub(super) struct TaskTable {
    tasks: HashMap<u64, Task>,
    /// Scheduled delays (ns the task had been ready before a poll), by poll note − 1.
    delays: Vec<u64>,
    flows: u64,
}

impl TaskTable {
    /// A task spawned at `ts` (its `runtime.spawn` span created).
    pub(super) fn spawned(
        &mut self,
        span: u64,
        metadata: &Metadata<'_>,
        fields: &Fields<'_>,
        (ts, thread): (u64, u32),
    ) {
        let blocking = metadata.target() != "tokio::task";
        self.tasks.insert(
            span,
            Task {
                name: task_name(fields, blocking),
                ready_since: Some(ts),
                ready_thread: thread,
                polling: false,
                woken_while_polled: false,
                wake: None,
            },
        );
    }

    pub(super) fn is_task(&self, span: u64) -> bool {
        self.tasks.contains_key(&span)
    }

    /// The task's display name, if `span` is a task.
    pub(super) fn name(&self, span: u64) -> Option<&str> {
        self.tasks.get(&span).map(|t| t.name.as_str())
    }

    /// The task was woken at `at`; `in_slice`: the waking thread was inside a slice then.
    pub(super) fn woken(&mut self, span: u64, at: (u64, u32), in_slice: bool) {
        let Some(task) = self.tasks.get_mut(&span) else {
            return;
        };
        if task.polling {
            task.woken_while_polled = true;
        } else if task.ready_since.is_none() {
            task.ready_since = Some(at.0);
            task.ready_thread = at.1;
            task.wake = in_slice.then_some(at);
        }
    }

    /// A poll of the task (if `span` is one) starts at `ts`: returns the slice's note (its
    /// scheduled delay; 0: none known) and the arrow from the wake that caused it, if there is
    /// one to draw.
    pub(super) fn poll_started(&mut self, span: u64, ts: u64) -> (u32, Option<WakeFlow>) {
        let Some(task) = self.tasks.get_mut(&span) else {
            return (0, None);
        };
        let mut note = 0;
        if let Some(since) = task.ready_since.take()
            && let Ok(next) = u32::try_from(self.delays.len() + 1)
        {
            self.delays.push(ts.saturating_sub(since));
            note = next;
        }
        task.polling = true;
        task.woken_while_polled = false;
        let flow = task.wake.take().map(|from| {
            self.flows += 1;
            WakeFlow {
                id: WAKE_FLOW_BIT | self.flows,
                from,
            }
        });
        (note, flow)
    }

    /// The poll in progress ends at `at`; a task woken during it is ready from now.
    pub(super) fn poll_ended(&mut self, span: u64, (ts, thread): (u64, u32)) {
        let Some(task) = self.tasks.get_mut(&span) else {
            return;
        };
        task.polling = false;
        if task.woken_while_polled {
            task.ready_since = Some(ts);
            task.ready_thread = thread;
        }
    }

    /// The task's span closed: it waits for nothing any more.
    pub(super) fn closed(&mut self, span: u64) {
        if let Some(task) = self.tasks.get_mut(&span) {
            task.ready_since = None;
        }
    }

    /// The tasks still waiting to be polled at the window's end (queued behind a busy or
    /// blocked worker, say): (task span, ready since, capture thread), by span.
    pub(super) fn waiting(&self) -> Vec<(u64, u64, u32)> {
        let mut waiting: Vec<_> = self
            .tasks
            .iter()
            .filter_map(|(&span, task)| Some((span, task.ready_since?, task.ready_thread)))
            .collect();
        waiting.sort_unstable();
        waiting
    }

    /// The async id of a task's wait: apart from every span's own.
    pub(super) fn wait_id(span: u64) -> u64 {
        WAKE_FLOW_BIT | span
    }

    /// The scheduled delay a slice's note stands for.
    pub(super) fn scheduled_delay(&self, note: u32) -> Option<u64> {
        let index = usize::try_from(note).ok()?.checked_sub(1)?;
        self.delays.get(index).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::short_path;

    #[test]
    fn dependency_paths_start_at_their_crate() {
        assert_eq!(
            short_path(
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/runtime/x.rs"
            ),
            "tokio-1.54.1/src/runtime/x.rs"
        );
        assert_eq!(short_path("src/main.rs"), "src/main.rs");
        assert_eq!(short_path("/a/registry/src/"), "");
    }
}
