//! Flow arrows: the slices of a span that ran on more than one thread (the polls of async
//! code), linked in time order so a request can be followed from worker to worker; and for
//! tokio's tasks, an arrow from each wake to the poll it caused instead.

use std::collections::HashMap;

use super::Layout;
use super::spans::MANY_THREADS;
use super::tasks::WakeFlow;
use super::timeline::{Out, OutKind};
use crate::record::storage::ThreadChunks;

/// A slice's start, its thread's tid and capture index: flows go in this order.
type SliceStart = (u64, u64, u32);

impl Layout {
    /// Links the consecutive slices (polls, for async code) of every span that ran on more than
    /// one thread with flow arrows: `s` on the first, `t` on the ones between, `f` on the last,
    /// each at its slice's start, so a request can be followed from thread to thread.
    /// A wake arrow: `s` at the wake, inside the slice that made it, and `f` at the start of
    /// the poll it caused (`to`: ts, capture thread).
    pub(super) fn add_wake_flow(&mut self, flow: &WakeFlow, to: (u64, u32)) {
        for ((ts, thread), phase) in [(flow.from, b's'), (to, b'f')] {
            if let Some(Some(timeline)) = self.timelines.get_mut(thread as usize) {
                timeline.out.push(Out {
                    ts,
                    value: u64::from(phase),
                    id: flow.id,
                    kind: OutKind::Wake,
                    flags: 0,
                    note: 0,
                });
            }
        }
    }

    pub(super) fn add_flows(&mut self, threads: &[ThreadChunks]) {
        // Which spans have slices on two threads or more.
        for (thread, timeline) in self.timelines.iter().enumerate() {
            let Some(timeline) = timeline else { continue };
            for out in timeline.out.iter().filter(|o| o.kind == OutKind::Slice) {
                if let Some(info) = self.spans.get_mut(out.id) {
                    info.sliced_on(thread as u32);
                }
            }
        }
        // Per span: its slices' (start, tid, capture thread).
        let mut slices: HashMap<u64, Vec<SliceStart>> = HashMap::new();
        for (thread, timeline) in self.timelines.iter().enumerate() {
            let Some(timeline) = timeline else { continue };
            let tid = threads[thread].identity.tid;
            for out in timeline.out.iter().filter(|o| o.kind == OutKind::Slice) {
                // A task's polls are linked by its wakes instead.
                if self.spans.get(out.id).slice_thread == MANY_THREADS
                    && !self.tasks.is_task(out.id)
                {
                    slices
                        .entry(out.id)
                        .or_default()
                        .push((out.ts, tid, thread as u32));
                }
            }
        }
        let mut slices: Vec<(u64, Vec<SliceStart>)> = slices.into_iter().collect();
        slices.sort_unstable_by_key(|(span, _)| *span);
        for (span, mut list) in slices {
            list.sort_unstable();
            let last = list.len() - 1;
            for (i, (ts, _, thread)) in list.into_iter().enumerate() {
                let phase = match i {
                    0 => b's',
                    i if i == last => b'f',
                    _ => b't',
                };
                if let Some(Some(timeline)) = self.timelines.get_mut(thread as usize) {
                    timeline.out.push(Out {
                        ts,
                        value: u64::from(phase),
                        id: span,
                        kind: OutKind::Flow,
                        flags: 0,
                        note: 0,
                    });
                }
            }
        }
    }
}
