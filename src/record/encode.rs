//! The binary record format kept in the rings, and its encoder (the hot path). The decoder
//! is `reader`.
//!
//! A record is a 12-byte header — length (`u16`), kind (`u8`), flags (`u8`), raw clock ticks
//! (`u64`) — and a kind-specific body. Names, targets and locations are not copied: a record
//! keeps the address of the callsite's `&'static Metadata` and field indices into it. Span
//! references are the *registry's* ids; they are turned into the recorder's own unique ids at
//! decode time (see `snapshot`), which keeps per-span state off the hot path.

use std::fmt;

use tracing_core::Metadata;

use crate::record::redact::Redaction;
use tracing_core::field::{self, Visit};

pub(crate) const HEADER_BYTES: usize = 12;

/// Largest encoded record; fields that would not fit are left out and the record is flagged.
pub(crate) const MAX_RECORD_BYTES: usize = 8 << 10;

/// Appended to a field value that was cut at the configured length.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

pub(crate) mod kind {
    pub(crate) const NEW_SPAN: u8 = 1;
    pub(crate) const ENTER: u8 = 2;
    pub(crate) const EXIT: u8 = 3;
    pub(crate) const CLOSE: u8 = 4;
    /// `Span::record`: new values for a span's fields.
    pub(crate) const VALUES: u8 = 5;
    pub(crate) const FOLLOWS_FROM: u8 = 6;
    pub(crate) const EVENT: u8 = 7;
}

/// Record flag: some fields did not fit in [`MAX_RECORD_BYTES`] and were left out.
pub(crate) const FLAG_FIELDS_DROPPED: u8 = 1;
/// Record flag: the event named its parent span explicitly (`parent: &span`), rather than
/// happening in the thread's current span.
pub(crate) const FLAG_EXPLICIT_PARENT: u8 = 2;

/// Field value tags.
pub(crate) mod tag {
    pub(crate) const U64: u8 = 1;
    pub(crate) const I64: u8 = 2;
    pub(crate) const F64: u8 = 3;
    pub(crate) const FALSE: u8 = 4;
    pub(crate) const TRUE: u8 = 5;
    pub(crate) const STR: u8 = 6;
    pub(crate) const STR_TRUNCATED: u8 = 7;
    pub(crate) const U128: u8 = 8;
    pub(crate) const I128: u8 = 9;
    pub(crate) const REDACTED: u8 = 10;
}

/// One encoded record, as only [`Scratch::finish`] makes it: the one kind of bytes chunks
/// accept, so that everything a reader reads was written by this encoder.
#[derive(Clone, Copy)]
pub(crate) struct Encoded<'a>(&'a [u8]);

impl<'a> Encoded<'a> {
    pub(crate) fn bytes(self) -> &'a [u8] {
        self.0
    }

    pub(crate) fn len(self) -> usize {
        self.0.len()
    }

    /// Stand-in records for the storage's own tests, which never decode them.
    #[cfg(test)]
    pub(crate) fn for_storage_tests(bytes: &'a [u8]) -> Self {
        Encoded(bytes)
    }
}

/// Bytes of an enter, exit or close record: the header and the span's id.
pub(crate) const SPAN_RECORD_BYTES: usize = HEADER_BYTES + 8;

/// An enter, exit or close record: the same bytes as `begin(kind, ts)`, `put_u64(span)`,
/// `finish(0)` on a [`Scratch`], kept as the three words they are so that the chunk can store
/// them in place (see `Chunk::push_span`).
#[derive(Clone, Copy)]
pub(crate) struct SpanRecord {
    /// Length, kind and flags: the header's first four bytes, as a little-endian word.
    head: u32,
    pub(crate) ts: u64,
    span: u64,
}

impl SpanRecord {
    #[inline]
    pub(crate) fn new(kind: u8, ts: u64, span: u64) -> Self {
        SpanRecord {
            head: u32::from_le_bytes([SPAN_RECORD_BYTES as u8, 0, kind, 0]),
            ts,
            span,
        }
    }

    /// Stores the record's bytes at `at`.
    ///
    /// # Safety
    ///
    /// `at` is valid for writes of [`SPAN_RECORD_BYTES`] bytes.
    #[inline(always)]
    pub(crate) unsafe fn write(self, at: *mut u8) {
        // SAFETY: the caller's promise; unaligned stores, little-endian like every record.
        unsafe {
            at.cast::<u32>().write_unaligned(self.head.to_le());
            at.add(4).cast::<u64>().write_unaligned(self.ts.to_le());
            at.add(12).cast::<u64>().write_unaligned(self.span.to_le());
        }
    }

    /// The record as bytes, for the slow path (a new chunk, a crash-file block).
    #[inline]
    pub(crate) fn to_bytes(self) -> [u8; SPAN_RECORD_BYTES] {
        let mut bytes = [0u8; SPAN_RECORD_BYTES];
        // SAFETY: `bytes` holds exactly the record.
        unsafe { self.write(bytes.as_mut_ptr()) };
        bytes
    }
}

impl<'a> Encoded<'a> {
    /// The bytes of a [`SpanRecord`].
    #[inline]
    pub(crate) fn span(record: &'a [u8; SPAN_RECORD_BYTES]) -> Self {
        Encoded(record)
    }
}

/// A record being encoded: a fixed buffer of [`MAX_RECORD_BYTES`], so writes of fixed size
/// compile to plain stores, and it never grows.
pub(crate) struct Scratch {
    bytes: Box<[u8; MAX_RECORD_BYTES]>,
    len: usize,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch {
            bytes: Box::new([0; MAX_RECORD_BYTES]),
            len: 0,
        }
    }

    /// Starts a record: the header, with length and flags filled in by [`finish`](Self::finish).
    #[inline]
    pub(crate) fn begin(&mut self, kind: u8, ts: u64) {
        let t = ts.to_le_bytes();
        self.bytes[..HEADER_BYTES].copy_from_slice(&[
            0, 0, kind, 0, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7],
        ]);
        self.len = HEADER_BYTES;
    }

    /// Appends `N` bytes if they fit in the record; the header and ids always do.
    #[inline]
    fn put<const N: usize>(&mut self, bytes: [u8; N]) -> bool {
        let end = self.len + N;
        if end > MAX_RECORD_BYTES {
            return false;
        }
        self.bytes[self.len..end].copy_from_slice(&bytes);
        self.len = end;
        true
    }

    #[inline]
    pub(crate) fn put_u64(&mut self, value: u64) {
        self.put(value.to_le_bytes());
    }

    #[inline]
    pub(crate) fn put_metadata(&mut self, metadata: &'static Metadata<'static>) {
        self.put_u64(metadata as *const Metadata<'static> as usize as u64);
    }

    /// Writes the record's length and flags into its header and returns the record.
    #[inline]
    pub(crate) fn finish(&mut self, flags: u8) -> Encoded<'_> {
        let len = (self.len as u16).to_le_bytes();
        self.bytes[0] = len[0];
        self.bytes[1] = len[1];
        self.bytes[3] = flags;
        Encoded(&self.bytes[..self.len])
    }

    /// Starts the field list: a count byte, then fields appended by the returned visitor.
    /// `redaction` is `None` for a callsite none of whose fields is redacted.
    #[inline]
    pub(crate) fn fields<'a>(
        &'a mut self,
        max_value_bytes: usize,
        redaction: Option<&'a Redaction>,
    ) -> FieldEncoder<'a> {
        let count_at = self.len;
        self.put([0u8]);
        FieldEncoder {
            scratch: self,
            count_at,
            max_value_bytes,
            redaction,
            dropped_fields: false,
        }
    }
}

/// Visits a `ValueSet`/`Record` and appends `[count][field index, tag, value]...`.
pub(crate) struct FieldEncoder<'a> {
    scratch: &'a mut Scratch,
    count_at: usize,
    max_value_bytes: usize,
    redaction: Option<&'a Redaction>,
    dropped_fields: bool,
}

impl FieldEncoder<'_> {
    /// The record flags the visit produced.
    #[inline]
    pub(crate) fn flags(&self) -> u8 {
        if self.dropped_fields {
            FLAG_FIELDS_DROPPED
        } else {
            0
        }
    }

    /// Reserves room for a field of `value_bytes`; false (and the record flagged) if it does not
    /// fit.
    #[inline]
    fn start_field(&mut self, field: &field::Field, tag: u8, value_bytes: usize) -> bool {
        if self.scratch.len + 2 + value_bytes > MAX_RECORD_BYTES {
            self.dropped_fields = true;
            return false;
        }
        self.scratch.bytes[self.count_at] += 1;
        self.scratch.put([field.index() as u8, tag]);
        true
    }

    /// Records `[REDACTED]` instead of the value if the field's name says it is a secret.
    #[inline]
    fn redacted(&mut self, field: &field::Field) -> bool {
        if let Some(redaction) = self.redaction
            && redaction.matches(field.name())
        {
            self.entry([field.index() as u8, tag::REDACTED]);
            return true;
        }
        false
    }

    /// Appends a field with an 8-byte value in one write.
    #[inline]
    fn word(&mut self, field: &field::Field, tag: u8, v: [u8; 8]) {
        let entry = [
            field.index() as u8,
            tag,
            v[0],
            v[1],
            v[2],
            v[3],
            v[4],
            v[5],
            v[6],
            v[7],
        ];
        self.entry(entry);
    }

    /// Appends a whole `[index, tag, value]` entry, or flags the record if it does not fit.
    #[inline]
    fn entry<const N: usize>(&mut self, entry: [u8; N]) {
        if self.scratch.put(entry) {
            self.scratch.bytes[self.count_at] += 1;
        } else {
            self.dropped_fields = true;
        }
    }

    #[inline]
    fn fixed<const N: usize>(&mut self, field: &field::Field, tag: u8, bytes: [u8; N]) {
        if self.start_field(field, tag, N) {
            self.scratch.put(bytes);
        }
    }

    /// Appends `text`, cut to `max_value_bytes` at a character boundary.
    fn text(&mut self, field: &field::Field, text: &str) {
        let mut len = text.len().min(self.max_value_bytes);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        let tag = if len < text.len() {
            tag::STR_TRUNCATED
        } else {
            tag::STR
        };
        if self.start_field(field, tag, 2 + len) {
            self.scratch.put((len as u16).to_le_bytes());
            let at = self.scratch.len;
            self.scratch.bytes[at..at + len].copy_from_slice(&text.as_bytes()[..len]);
            self.scratch.len += len;
        }
    }
}

impl Visit for FieldEncoder<'_> {
    #[inline]
    fn record_u64(&mut self, field: &field::Field, value: u64) {
        if self.redacted(field) {
            return;
        }
        self.word(field, tag::U64, value.to_le_bytes());
    }

    #[inline]
    fn record_i64(&mut self, field: &field::Field, value: i64) {
        if self.redacted(field) {
            return;
        }
        self.word(field, tag::I64, value.to_le_bytes());
    }

    #[inline]
    fn record_f64(&mut self, field: &field::Field, value: f64) {
        if self.redacted(field) {
            return;
        }
        self.word(field, tag::F64, value.to_le_bytes());
    }

    #[inline]
    fn record_bool(&mut self, field: &field::Field, value: bool) {
        if self.redacted(field) {
            return;
        }
        let tag = if value { tag::TRUE } else { tag::FALSE };
        self.entry([field.index() as u8, tag]);
    }

    fn record_u128(&mut self, field: &field::Field, value: u128) {
        if self.redacted(field) {
            return;
        }
        self.fixed(field, tag::U128, value.to_le_bytes());
    }

    fn record_i128(&mut self, field: &field::Field, value: i128) {
        if self.redacted(field) {
            return;
        }
        self.fixed(field, tag::I128, value.to_le_bytes());
    }

    #[inline]
    fn record_str(&mut self, field: &field::Field, value: &str) {
        if self.redacted(field) {
            return;
        }
        self.text(field, value);
    }

    fn record_error(&mut self, field: &field::Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    #[inline]
    fn record_debug(&mut self, field: &field::Field, value: &dyn fmt::Debug) {
        if self.redacted(field) {
            return;
        }
        if !self.start_field(field, tag::STR, 2) {
            return;
        }
        let tag_at = self.scratch.len - 1;
        let len_at = self.scratch.len;
        self.scratch.put([0u8, 0]);
        let start = self.scratch.len;
        let end = (start + self.max_value_bytes).min(MAX_RECORD_BYTES);
        let mut writer = CappedWriter {
            buf: &mut self.scratch.bytes[start..end],
            len: 0,
            truncated: false,
        };
        // An `Err` here only means the writer stopped taking text at the cap.
        let _ = fmt::write(&mut writer, format_args!("{value:?}"));
        let (written, truncated) = (writer.len, writer.truncated);
        if truncated {
            self.scratch.bytes[tag_at] = tag::STR_TRUNCATED;
        }
        self.scratch.bytes[len_at..len_at + 2].copy_from_slice(&(written as u16).to_le_bytes());
        self.scratch.len = start + written;
    }
}

/// A `fmt::Write` into a fixed slice that keeps what fits, cut at a character boundary.
struct CappedWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    truncated: bool,
}

impl fmt::Write for CappedWriter<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        if s.len() <= room {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
            return Ok(());
        }
        let mut take = room;
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        self.truncated = true;
        Err(fmt::Error)
    }
}

/// A field value as recorded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldValue {
    /// An unsigned integer.
    U64(u64),
    /// A signed integer.
    I64(i64),
    /// A 128-bit unsigned integer.
    U128(u128),
    /// A 128-bit signed integer.
    I128(i128),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// A string, or a `Debug`/`Display` value formatted as one. A value cut at the configured
    /// length ends with [`TRUNCATION_MARKER`].
    Str(String),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::U64(v) => v.fmt(f),
            FieldValue::I64(v) => v.fmt(f),
            FieldValue::U128(v) => v.fmt(f),
            FieldValue::I128(v) => v.fmt(f),
            FieldValue::F64(v) => v.fmt(f),
            FieldValue::Bool(v) => v.fmt(f),
            FieldValue::Str(v) => f.write_str(v),
        }
    }
}

/// One recorded field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The field's name, as written at the callsite.
    pub name: &'static str,
    /// Its value.
    pub value: FieldValue,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_record_is_what_the_scratch_encodes() {
        let mut scratch = Scratch::new();
        for (kind, ts, span) in [
            (kind::ENTER, 0, 1),
            (kind::EXIT, u64::MAX, u64::MAX),
            (kind::CLOSE, 0x0102_0304_0506_0708, 1 << 63),
        ] {
            scratch.begin(kind, ts);
            scratch.put_u64(span);
            let expected = scratch.finish(0).bytes().to_vec();
            let record = SpanRecord::new(kind, ts, span);
            assert_eq!(record.to_bytes().as_slice(), expected.as_slice());
        }
    }
}
