//! The `tracing_subscriber::Layer`: the hot path.
//!
//! Each callback finds this thread's slot (`slot`), encodes one record into the slot's
//! scratch buffer (formatting `Debug` values there), then appends it to the thread's current
//! chunk without a lock (`storage`); enter, exit and close are written straight into the
//! chunk. No I/O, no allocation in steady state, no `tracing` calls of its own. A callback
//! that re-enters the layer on the same thread (a `Debug` impl that logs) finds the slot in
//! use and is counted as dropped.

use std::fmt;
use std::sync::Arc;

use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::record::Recording;
use crate::record::encode::{FLAG_EXPLICIT_PARENT, SpanRecord, kind};
use crate::record::hooks::TriggerHooks;
use crate::record::slot::{Slot, with_slot};
use crate::record::span_timing::SpanTiming;

/// The layer half of a flight recorder: add it to a `tracing_subscriber::Registry`.
///
/// Created with its [`FlightRecorder`](crate::FlightRecorder) handle by
/// [`FlightRecorder::builder`](crate::FlightRecorder::builder).
#[must_use = "a layer records nothing until it is added to a subscriber"]
pub struct FlightRecorderLayer {
    shared: Arc<Recording>,
    /// The triggers this layer reports errors and slow spans to, if any are configured.
    hooks: Option<Arc<dyn TriggerHooks>>,
}

impl fmt::Debug for FlightRecorderLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlightRecorderLayer")
            .field("recorder", &self.shared.id)
            .finish_non_exhaustive()
    }
}

/// Records an event that came through no subscriber (the runtime view's park, unpark and
/// counters): the same encoding and storage as [`Layer::on_event`]'s, no triggers.
#[cfg(feature = "tokio")]
pub(crate) fn record_event(shared: &Arc<Recording>, event: &Event<'_>) {
    if !shared.is_recording() {
        return;
    }
    with_slot(shared, |shared, slot| {
        let ts = shared.now();
        let _ = append_event(shared, slot, event, 0, FLAG_EXPLICIT_PARENT, ts);
    });
}

/// Encodes `event` (in span `span`, with `flags`) at `ts` and appends it; whether it was kept.
#[inline]
fn append_event(
    shared: &Recording,
    slot: &mut Slot,
    event: &Event<'_>,
    span: u64,
    flags: u8,
    ts: u64,
) -> bool {
    let redaction = slot
        .redaction
        .for_callsite(event.metadata(), &shared.redaction);
    let scratch = &mut slot.scratch;
    scratch.begin(kind::EVENT, ts);
    scratch.put_metadata(event.metadata());
    scratch.put_u64(span);
    let mut fields = scratch.fields(shared.max_field_bytes, redaction);
    event.record(&mut fields);
    let flags = fields.flags() | flags;
    shared.append(&slot.buffer, scratch.finish(flags), ts)
}

impl FlightRecorderLayer {
    pub(crate) fn new(shared: Arc<Recording>, hooks: Option<Arc<dyn TriggerHooks>>) -> Self {
        FlightRecorderLayer { shared, hooks }
    }

    #[inline]
    fn with_slot(&self, f: impl FnOnce(&Recording, &mut Slot)) {
        with_slot(&self.shared, f);
    }

    /// Records an enter, exit or close; returns the clock reading it used, if it recorded.
    #[inline]
    fn span_record(&self, kind: u8, id: &Id) -> Option<u64> {
        if !self.shared.enabled {
            return None;
        }
        let mut recorded = None;
        #[cfg(feature = "tokio")]
        let mut task_breach = None;
        self.with_slot(|shared, slot| {
            let recording = shared.is_recording();
            let busy_timing = shared
                .slow
                .as_ref()
                .filter(|slow| kind != kind::CLOSE && slow.timing() == SpanTiming::Busy);
            // One clock reading for the timing and the record, and none when neither needs it
            // (a stopped recorder).
            let ts = if recording || busy_timing.is_some() {
                shared.now()
            } else {
                0
            };
            if let Some(slow) = busy_timing {
                slow.on_enter_exit(id.into_u64(), kind == kind::ENTER, ts, |a, b| {
                    shared.timebase.nanos_between(a, b)
                });
            }
            #[cfg(feature = "tokio")]
            if let Some(tasks) = &shared.tasks
                && recording
            {
                let between = |a, b| shared.timebase.nanos_between(a, b);
                task_breach = match kind {
                    kind::ENTER => tasks.on_enter(id.into_u64(), ts, between),
                    kind::EXIT => tasks.on_exit(id.into_u64(), ts, between),
                    _ => None,
                };
            }
            match kind {
                kind::ENTER => slot.entered(id.into_u64()),
                kind::EXIT => slot.left(id.into_u64()),
                _ => {}
            }
            if !recording {
                return;
            }
            let _ = shared.append_span(&slot.buffer, SpanRecord::new(kind, ts, id.into_u64()));
            recorded = Some(ts);
        });
        #[cfg(feature = "tokio")]
        if let (Some(breach), Some(hooks), Some(now)) = (task_breach, &self.hooks, recorded) {
            // After the record is in, outside the slot, like the other triggers.
            hooks.task_trouble(breach, now);
        }
        recorded
    }
}

impl<S> Layer<S> for FlightRecorderLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    /// Called once per callsite (and again when interest is rebuilt): a crash file keeps the
    /// callsite's metadata, so records that point at it can be read after the process died.
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        #[cfg(feature = "crash")]
        if let Some(crash) = self.shared.storage.crash_store() {
            crash.intern(metadata);
        }
        let _ = metadata;
        Interest::always()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        if !self.shared.is_recording() {
            return;
        }
        self.with_slot(|shared, slot| {
            let parent = match attrs.parent() {
                Some(parent) => parent.into_u64(),
                None if attrs.is_contextual() => slot.current_span(),
                None => 0,
            };
            let key = slot.next_span_key();
            let ts = shared.now();
            let redaction = slot
                .redaction
                .for_callsite(attrs.metadata(), &shared.redaction);
            let scratch = &mut slot.scratch;
            scratch.begin(kind::NEW_SPAN, ts);
            scratch.put_u64(id.into_u64());
            scratch.put_u64(key);
            scratch.put_u64(parent);
            scratch.put_metadata(attrs.metadata());
            let mut fields = scratch.fields(shared.max_field_bytes, redaction);
            attrs.record(&mut fields);
            let flags = fields.flags();
            let _ = shared.append(&slot.buffer, scratch.finish(flags), ts);
            if let Some(slow) = &shared.slow {
                slow.on_new(id.into_u64(), key, attrs.metadata(), ts);
            }
            #[cfg(feature = "tokio")]
            if let Some(tasks) = &shared.tasks {
                tasks.on_new(id.into_u64(), key, attrs.metadata(), ts);
            }
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if !self.shared.is_recording() {
            return;
        }
        let metadata = ctx.metadata(id);
        self.with_slot(|shared, slot| {
            let ts = shared.now();
            // A span the registry no longer knows: every field is checked.
            let redaction = match metadata {
                Some(metadata) => slot.redaction.for_callsite(metadata, &shared.redaction),
                None => Some(&shared.redaction),
            };
            let scratch = &mut slot.scratch;
            scratch.begin(kind::VALUES, ts);
            scratch.put_u64(id.into_u64());
            match metadata {
                Some(metadata) => scratch.put_metadata(metadata),
                None => scratch.put_u64(0),
            }
            let mut fields = scratch.fields(shared.max_field_bytes, redaction);
            values.record(&mut fields);
            let flags = fields.flags();
            let _ = shared.append(&slot.buffer, scratch.finish(flags), ts);
        });
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, _ctx: Context<'_, S>) {
        if !self.shared.is_recording() {
            return;
        }
        self.with_slot(|shared, slot| {
            let ts = shared.now();
            let scratch = &mut slot.scratch;
            scratch.begin(kind::FOLLOWS_FROM, ts);
            scratch.put_u64(id.into_u64());
            scratch.put_u64(follows.into_u64());
            let _ = shared.append(&slot.buffer, scratch.finish(0), ts);
        });
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !self.shared.is_recording() {
            return;
        }
        let mut recorded_at = None;
        self.with_slot(|shared, slot| {
            let (span, explicit) = match event.parent() {
                Some(parent) => (parent.into_u64(), FLAG_EXPLICIT_PARENT),
                None if event.is_contextual() => (slot.current_span(), 0),
                None => (0, FLAG_EXPLICIT_PARENT),
            };
            let ts = shared.now();
            if append_event(shared, slot, event, span, explicit, ts) {
                recorded_at = Some(ts);
            }
            #[cfg(feature = "tokio")]
            if let Some(tasks) = &shared.tasks {
                tasks.on_event(event, ts);
            }
        });
        if let Some(level) = self.shared.error_level
            && *event.metadata().level() <= level
            && let Some(hooks) = &self.hooks
        {
            // After the record is in, so the dump shows it; the triggers are also told whether
            // it could be kept.
            let now = recorded_at.unwrap_or_else(|| self.shared.now());
            hooks.error_event(event, recorded_at.is_some(), now);
        }
    }

    fn on_enter(&self, id: &Id, _ctx: Context<'_, S>) {
        let _ = self.span_record(kind::ENTER, id);
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let _ = self.span_record(kind::EXIT, id);
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        let shared = &self.shared;
        if !shared.enabled {
            return;
        }
        let recorded = if shared.is_recording() {
            self.span_record(kind::CLOSE, &id)
        } else {
            None
        };
        // Also when stopped: the span's timing entries must go.
        #[cfg(feature = "tokio")]
        if let Some(tasks) = &shared.tasks {
            tasks.on_close(id.into_u64());
        }
        if let Some(slow) = &shared.slow {
            let now = recorded.unwrap_or_else(|| shared.now());
            let breach = slow.on_close(id.into_u64(), now, |a, b| {
                shared.timebase.nanos_between(a, b)
            });
            if let Some(breach) = breach
                && shared.is_recording()
                && let Some(hooks) = &self.hooks
            {
                hooks.slow_span(breach, now);
            }
        }
    }
}
