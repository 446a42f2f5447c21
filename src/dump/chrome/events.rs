//! One trace event of the output, written from its timeline entry: slices, span lifetimes,
//! flow arrows and instants, with their fields read from the capture's chunks.

use std::borrow::Borrow;
use std::io::{self, Write};

use super::json::{self, json_str, json_value, micros, write_fields};
use super::timeline::{INCOMPLETE, Out, OutKind, REPAIRED, START_EVICTED};
use super::{EXPLICIT_PARENT, Encoder};
use crate::dump::reader::{Body, Fields, RecordReader, ValueRef};
use crate::dump::snapshot::RecordAt;
use crate::record::Capture;
use crate::record::encode::FLAG_FIELDS_DROPPED;
use crate::record::storage::ThreadChunks;
use tracing_core::Metadata;

impl<C: Borrow<Capture>> Encoder<C> {
    pub(super) fn write_event<'a>(
        &'a self,
        w: &mut impl Write,
        thread: &'a ThreadChunks,
        out: &Out,
        fields: &mut Vec<(&'static str, ValueRef<'a>)>,
    ) -> io::Result<()> {
        let (pid, tid) = (self.pid, thread.identity.tid);
        let threads = &self.capture().raw.threads;
        let span = out.id;
        let info = self.layout.spans.get(span);
        let name = self.layout.tasks.name(span).unwrap_or(info.name());
        let head = |w: &mut dyn Write, ph: &str| -> io::Result<()> {
            write!(w, "{{\"ph\":\"{ph}\",\"name\":")?;
            json_str(w, name)?;
            w.write_all(b",\"cat\":")?;
            json_str(w, info.category())
        };
        match out.kind {
            OutKind::Slice if super::runtime::runtime_slice(span).is_some() => {
                let parked = super::runtime::runtime_slice(span) == Some(true);
                super::runtime::write_slice(w, parked, (pid, tid), out)
            }
            OutKind::Slice => {
                head(w, "X")?;
                write!(w, ",\"pid\":{pid},\"tid\":{tid},\"ts\":")?;
                micros(w, out.ts)?;
                w.write_all(b",\"dur\":")?;
                micros(w, out.value)?;
                write!(w, ",\"args\":{{\"span_id\":{span}")?;
                if let Some(parent) = info.parent() {
                    write!(w, ",\"parent_id\":{parent}")?;
                }
                if let Some(delay) = self.layout.tasks.scheduled_delay(out.note) {
                    w.write_all(b",\"scheduled_delay_us\":")?;
                    micros(w, delay)?;
                }
                for (flag, name) in [
                    (out.flags & INCOMPLETE != 0, "incomplete"),
                    (out.flags & REPAIRED != 0, "repaired"),
                    (out.flags & START_EVICTED != 0, "start_evicted"),
                    (self.trigger_span == Some(span), "trigger"),
                ] {
                    if flag {
                        write!(w, ",\"{name}\":true")?;
                    }
                }
                self.layout.spans.fields(span, threads, fields);
                write_fields(w, fields.iter().copied())?;
                w.write_all(b"}}")
            }
            OutKind::Begin => {
                head(w, "b")?;
                write!(
                    w,
                    ",\"id\":\"0x{span:x}\",\"pid\":{pid},\"tid\":{tid},\"ts\":"
                )?;
                micros(w, out.ts)?;
                write!(w, ",\"args\":{{\"span_id\":{span}")?;
                if let Some(parent) = info.parent() {
                    write!(w, ",\"parent_id\":{parent}")?;
                }
                if let Some(metadata) = info.metadata {
                    w.write_all(b",\"level\":")?;
                    json_str(w, metadata.level().as_str())?;
                    w.write_all(b",\"target\":")?;
                    json_str(w, metadata.target())?;
                    json::write_location(w, metadata)?;
                } else {
                    w.write_all(b",\"start_evicted\":true")?;
                }
                if self.trigger_span == Some(span) {
                    w.write_all(b",\"trigger\":true")?;
                }
                let follows = self.layout.spans.follows(span);
                if !follows.is_empty() {
                    w.write_all(b",\"follows_from\":[")?;
                    for (i, follows) in follows.iter().enumerate() {
                        if i > 0 {
                            w.write_all(b",")?;
                        }
                        write!(w, "{follows}")?;
                    }
                    w.write_all(b"]")?;
                }
                self.layout.spans.fields(span, threads, fields);
                write_fields(w, fields.iter().copied())?;
                w.write_all(b"}}")
            }
            OutKind::Flow => {
                head(w, &char::from(out.value as u8).to_string())?;
                write!(w, ",\"id\":{span},\"pid\":{pid},\"tid\":{tid},\"ts\":")?;
                micros(w, out.ts)?;
                if out.value == u64::from(b'f') {
                    w.write_all(b",\"bp\":\"e\"")?;
                }
                w.write_all(b"}")
            }
            OutKind::WaitBegin | OutKind::WaitEnd => {
                let begin = out.kind == OutKind::WaitBegin;
                let wait = super::tasks::TaskTable::wait_id(span);
                write!(
                    w,
                    "{{\"ph\":\"{}\",\"name\":",
                    if begin { 'b' } else { 'e' }
                )?;
                json_str(w, &format!("{name} (ready, not polled)"))?;
                write!(
                    w,
                    ",\"cat\":\"tokio::task::ready\",\"id\":\"0x{wait:x}\",\"pid\":{pid},\"tid\":{tid},\"ts\":"
                )?;
                micros(w, out.ts)?;
                if begin {
                    write!(w, ",\"args\":{{\"task_span_id\":{span},\"waited_us\":")?;
                    micros(w, out.value)?;
                    w.write_all(b",\"incomplete\":true}")?;
                }
                w.write_all(b"}")
            }
            OutKind::Wake => {
                let phase = char::from(out.value as u8);
                write!(
                    w,
                    "{{\"ph\":\"{phase}\",\"name\":\"wake\",\"cat\":\"tokio::task::waker\",\"id\":{span},\"pid\":{pid},\"tid\":{tid},\"ts\":"
                )?;
                micros(w, out.ts)?;
                if out.value == u64::from(b'f') {
                    w.write_all(b",\"bp\":\"e\"")?;
                }
                w.write_all(b"}")
            }
            OutKind::End => {
                head(w, "e")?;
                write!(
                    w,
                    ",\"id\":\"0x{span:x}\",\"pid\":{pid},\"tid\":{tid},\"ts\":"
                )?;
                micros(w, out.ts)?;
                if info.closed().is_none() {
                    w.write_all(b",\"args\":{\"incomplete\":true}")?;
                }
                w.write_all(b"}")
            }
            OutKind::Instant => self.write_instant(w, thread, out),
            OutKind::Counter => match Self::event_at(thread, out.id) {
                Some((metadata, fields, _)) => {
                    super::runtime::write_counter(w, metadata, &fields, (pid, tid), out.ts)
                }
                None => Ok(()),
            },
        }
    }

    /// The event record an instant or counter entry points at (its packed chunk and offset):
    /// its callsite, fields and record flags.
    fn event_at(
        thread: &ThreadChunks,
        packed: u64,
    ) -> Option<(&'static Metadata<'static>, Fields<'_>, u8)> {
        let at = RecordAt {
            thread: 0,
            chunk: (packed >> 32) as u32,
            offset: packed as u32,
        };
        let view = thread
            .chunk(at.chunk as usize)
            .and_then(|chunk| RecordReader::at(chunk, at.offset))?;
        match view.body {
            Body::Event {
                metadata, fields, ..
            } => Some((metadata, fields, view.flags)),
            _ => None,
        }
    }

    fn write_instant(
        &self,
        w: &mut impl Write,
        thread: &ThreadChunks,
        out: &Out,
    ) -> io::Result<()> {
        let Some((metadata, fields, record_flags)) = Self::event_at(thread, out.id) else {
            return Ok(());
        };
        let (pid, tid) = (self.pid, thread.identity.tid);
        // tokio's waker events have no message: their operation names them.
        let message = fields.iter().find(|(name, _)| {
            *name == "message" || (*name == "op" && super::tasks::is_waker_event(metadata))
        });
        w.write_all(b"{\"ph\":\"i\",\"s\":\"t\",\"name\":")?;
        match &message {
            Some((_, value)) => match value.text() {
                Some(text) => json_str(w, &text)?,
                None => json_str(w, &value.to_field_value().to_string())?,
            },
            None => json_str(w, metadata.name())?,
        }
        w.write_all(b",\"cat\":")?;
        json_str(w, metadata.target())?;
        write!(w, ",\"pid\":{pid},\"tid\":{tid},\"ts\":")?;
        micros(w, out.ts)?;
        w.write_all(b",\"args\":{\"level\":")?;
        json_str(w, metadata.level().as_str())?;
        w.write_all(b",\"target\":")?;
        json_str(w, metadata.target())?;
        json::write_location(w, metadata)?;
        if out.value != 0 {
            write!(w, ",\"span_id\":{}", out.value)?;
        }
        if out.flags & EXPLICIT_PARENT != 0 {
            w.write_all(b",\"explicit_parent\":true")?;
        }
        if let Some((_, value)) = &message {
            w.write_all(b",\"message\":")?;
            json_value(w, value)?;
        }
        if record_flags & FLAG_FIELDS_DROPPED != 0 {
            w.write_all(b",\"fields_dropped\":true")?;
        }
        write_fields(w, fields.iter().filter(|(name, _)| *name != "message"))?;
        w.write_all(b"}}")
    }
}
