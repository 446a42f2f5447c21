//! One thread's output events: enter→exit intervals paired with a stack into slices that nest
//! (out-of-order exits repaired, enters from before the window reopened), and every other
//! event in its place. Entries are compact (32 bytes); fields stay in the chunks until written.

use std::cmp::Reverse;

/// What an output entry is, in the order entries with the same timestamp are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(super) enum OutKind {
    /// `b`: a span's lifetime begins.
    Begin,
    /// `b`: a tokio task became ready and was still waiting to be polled at the window's end.
    WaitBegin,
    /// `X`: an enter→exit interval.
    Slice,
    /// `s`/`t`/`f`: a flow step at a slice's start.
    Flow,
    /// `s`/`f`: a wake arrow's start (at a wake) or end (at the poll it caused).
    Wake,
    /// `i`: an event.
    Instant,
    /// `C`: a counter sample (the runtime view's).
    Counter,
    /// `e`: the end of a `WaitBegin`'s wait, at the window's end.
    WaitEnd,
    /// `e`: a span's lifetime ends.
    End,
}

pub(super) const INCOMPLETE: u8 = 1;
pub(super) const REPAIRED: u8 = 2;
pub(super) const START_EVICTED: u8 = 4;

/// An output event. `id` is the span for slices, lifetimes and flows, and the record's packed
/// location (chunk, offset) for instants; `value` is a slice's duration, an instant's span
/// (0: none), or a flow's phase.
#[derive(Debug, Clone, Copy)]
pub(super) struct Out {
    pub(super) ts: u64,
    pub(super) value: u64,
    pub(super) id: u64,
    pub(super) kind: OutKind,
    pub(super) flags: u8,
    /// A slice's poll note (a tokio task's scheduled delay, see `TaskTable`); 0: none. Fits
    /// in the padding.
    pub(super) note: u32,
}

impl Out {
    pub(super) fn slice(span: u64, ts: u64, dur: u64, flags: u8) -> Self {
        Out {
            ts,
            value: dur,
            id: span,
            kind: OutKind::Slice,
            flags,
            note: 0,
        }
    }

    /// Per thread: by time, then lifetimes, slices (outer before the ones they contain),
    /// flows, events, lifetime ends. The sort is stable: events keep their order.
    fn order(&self) -> (u64, OutKind, Reverse<u64>) {
        let dur = if self.kind == OutKind::Slice {
            self.value
        } else {
            0
        };
        (self.ts, self.kind, Reverse(dur))
    }
}

/// An open enter→exit interval on a thread.
#[derive(Clone, Copy)]
struct Frame {
    span: u64,
    start: u64,
    /// The interval was cut by a repair and reopened at `start`.
    repaired: bool,
    /// The enter was not in the window; `start` is the thread's first retained record.
    start_evicted: bool,
    /// The slice's note (`Out::note`).
    note: u32,
}

/// How often slices had to be repaired, for `otherData`.
#[derive(Default)]
pub(super) struct Repairs {
    pub(super) out_of_order_exits: u64,
    pub(super) evicted_enters: u64,
}

/// One thread's output events, being built.
pub(super) struct Timeline {
    stack: Vec<Frame>,
    first_ts: u64,
    pub(super) out: Vec<Out>,
}

impl Timeline {
    pub(super) fn with_capacity(first_ts: u64, entries: usize) -> Self {
        Timeline {
            stack: Vec::new(),
            first_ts,
            out: Vec::with_capacity(entries),
        }
    }

    /// Whether `span` has an interval open on this thread now.
    pub(super) fn is_open(&self, span: u64) -> bool {
        self.stack.iter().any(|f| f.span == span)
    }

    /// The thread's first retained record's time.
    pub(super) fn first_ts(&self) -> u64 {
        self.first_ts
    }

    /// Whether a slice is open on this thread now.
    pub(super) fn in_slice(&self) -> bool {
        !self.stack.is_empty()
    }

    pub(super) fn enter(&mut self, span: u64, ts: u64, note: u32) {
        self.stack.push(Frame {
            span,
            start: ts,
            repaired: false,
            start_evicted: false,
            note,
        });
    }

    /// Makes sure `span` is open on this thread. A span that is found entered but whose enter
    /// is not in the window was entered before it, and has been entered ever since: it opens at
    /// the bottom of the stack, at the thread's first retained record, around everything after.
    pub(super) fn ensure_open(&mut self, span: u64, repairs: &mut Repairs) -> usize {
        if let Some(position) = self.stack.iter().rposition(|f| f.span == span) {
            return position;
        }
        repairs.evicted_enters += 1;
        self.stack.insert(
            0,
            Frame {
                span,
                start: self.first_ts,
                repaired: false,
                start_evicted: true,
                note: 0,
            },
        );
        0
    }

    /// Closes `span`'s innermost open interval at `ts`. Intervals opened inside it are closed
    /// at `ts` too and reopened there, so slices nest.
    pub(super) fn exit(&mut self, span: u64, ts: u64, repairs: &mut Repairs) {
        let position = self.ensure_open(span, repairs);
        let target = self.stack[position];
        let inner = self.stack.len() - position - 1;
        if inner > 0 {
            repairs.out_of_order_exits += 1;
        }
        for frame in self.stack[position + 1..].iter().rev() {
            let flags = REPAIRED
                | if frame.start_evicted {
                    START_EVICTED
                } else {
                    0
                };
            self.out
                .push(Out::slice(frame.span, frame.start, ts - frame.start, flags));
        }
        let mut flags = if target.start_evicted {
            START_EVICTED
        } else {
            0
        };
        if target.repaired || inner > 0 {
            flags |= REPAIRED;
        }
        self.out.push(Out {
            note: target.note,
            ..Out::slice(span, target.start, ts - target.start, flags)
        });
        self.stack.remove(position);
        for frame in &mut self.stack[position..] {
            *frame = Frame {
                start: ts,
                repaired: true,
                start_evicted: false,
                note: 0,
                ..*frame
            };
        }
    }

    /// Closes what is still open at the snapshot, as incomplete slices.
    pub(super) fn finish(&mut self, window_end: u64) {
        while let Some(frame) = self.stack.pop() {
            let mut flags = INCOMPLETE;
            if frame.repaired {
                flags |= REPAIRED;
            }
            if frame.start_evicted {
                flags |= START_EVICTED;
            }
            self.out.push(Out {
                note: frame.note,
                ..Out::slice(
                    frame.span,
                    frame.start,
                    window_end.saturating_sub(frame.start),
                    flags,
                )
            });
        }
    }

    pub(super) fn sort(&mut self) {
        self.out.sort_by_key(Out::order);
    }
}
