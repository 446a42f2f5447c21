//! Reading records back from chunks: headers and ids without allocating, fields on demand.
//!
//! A reader is built only from the crate's own chunks (which accept nothing but the encoder's
//! output, see `record::Encoded`) or from the encoder's output itself, which is what makes
//! reading a `&'static Metadata` back from its address sound.

use std::borrow::Cow;

use tracing_core::Metadata;

use crate::record::encode::{
    Encoded, Field, FieldValue, HEADER_BYTES, TRUNCATION_MARKER, kind, tag,
};
use crate::record::redact::REDACTED;
use crate::record::storage::Chunk;

/// A record as stored: its header, and its body with ids parsed and fields left as bytes.
#[derive(Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) ts: u64,
    pub(crate) body: Body<'a>,
}

/// Span references are the registry's ids (resolved to the recorder's own at decode time).
#[derive(Clone, Copy)]
pub(crate) enum Body<'a> {
    NewSpan {
        registry_id: u64,
        key: u64,
        parent: u64,
        metadata: &'static Metadata<'static>,
        fields: Fields<'a>,
    },
    /// Enter, exit and close.
    Span {
        registry_id: u64,
    },
    Record {
        registry_id: u64,
        fields: Fields<'a>,
    },
    FollowsFrom {
        registry_id: u64,
        follows: u64,
    },
    Event {
        metadata: &'static Metadata<'static>,
        span: u64,
        fields: Fields<'a>,
    },
}

/// A record's fields, still encoded; checked well-formed when the record was read.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    bytes: &'a [u8],
    metadata: Option<&'static Metadata<'static>>,
}

/// A field value borrowed from a chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueRef<'a> {
    U64(u64),
    I64(i64),
    U128(u128),
    I128(i128),
    F64(f64),
    Bool(bool),
    /// Text as recorded (valid UTF-8 unless a `Debug` impl was cut badly; read lossily), and
    /// whether it was cut at the configured length.
    Str {
        text: &'a [u8],
        truncated: bool,
    },
    /// The field's name looked secret: its value was never stored.
    Redacted,
}

impl ValueRef<'_> {
    /// The text of a string value, with the truncation marker where it was cut.
    pub(crate) fn text(&self) -> Option<Cow<'_, str>> {
        match *self {
            ValueRef::Str { text, truncated } => {
                let text = String::from_utf8_lossy(text);
                Some(if truncated {
                    Cow::Owned(format!("{text}{TRUNCATION_MARKER}"))
                } else {
                    text
                })
            }
            ValueRef::Redacted => Some(Cow::Borrowed(REDACTED)),
            _ => None,
        }
    }

    pub(crate) fn to_field_value(self) -> FieldValue {
        match self {
            ValueRef::U64(v) => FieldValue::U64(v),
            ValueRef::I64(v) => FieldValue::I64(v),
            ValueRef::U128(v) => FieldValue::U128(v),
            ValueRef::I128(v) => FieldValue::I128(v),
            ValueRef::F64(v) => FieldValue::F64(v),
            ValueRef::Bool(v) => FieldValue::Bool(v),
            ValueRef::Str { .. } | ValueRef::Redacted => {
                FieldValue::Str(self.text().unwrap_or_default().into_owned())
            }
        }
    }
}

impl<'a> Fields<'a> {
    /// The fields as (name, value), in recorded order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, ValueRef<'a>)> + use<'a> {
        let metadata = self.metadata;
        let mut cursor = Cursor { bytes: self.bytes };
        let count = cursor.u8().unwrap_or(0);
        (0..count).map_while(move |_| {
            let (index, value) = cursor.field()?;
            let name = metadata
                .and_then(|m| m.fields().iter().nth(index))
                .map_or("?", |f| f.name());
            Some((name, value))
        })
    }

    /// The fields, owned.
    pub(crate) fn decode(&self) -> Vec<Field> {
        self.iter()
            .map(|(name, value)| Field {
                name,
                value: value.to_field_value(),
            })
            .collect()
    }
}

/// Reads records one after another. Stops at the first malformed record (none are expected:
/// only the encoder writes chunks).
pub(crate) struct RecordReader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> RecordReader<'a> {
    pub(crate) fn new(chunk: &'a Chunk) -> Self {
        RecordReader {
            bytes: chunk.bytes(),
            offset: 0,
        }
    }

    /// Reads the encoder's output directly (an error trigger's event, before it is stored).
    pub(crate) fn of_encoded(encoded: Encoded<'a>) -> Self {
        RecordReader {
            bytes: encoded.bytes(),
            offset: 0,
        }
    }

    /// The record at `offset` (as the iterator reported it).
    pub(crate) fn at(chunk: &'a Chunk, offset: u32) -> Option<RecordView<'a>> {
        let mut reader = Self::new(chunk);
        reader.offset = offset as usize;
        reader.next().map(|(_, view)| view)
    }
}

impl<'a> Iterator for RecordReader<'a> {
    /// The record's offset in the chunk, and the record.
    type Item = (u32, RecordView<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.offset..)?;
        let view = parse(rest);
        let at = self.offset as u32;
        match view {
            Some((len, view)) => {
                self.offset += len;
                Some((at, view))
            }
            None => {
                self.offset = self.bytes.len();
                None
            }
        }
    }
}

/// Parses the record at the start of `bytes`; returns its length too.
fn parse(bytes: &[u8]) -> Option<(usize, RecordView<'_>)> {
    if bytes.len() < HEADER_BYTES {
        return None;
    }
    let len = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
    if len < HEADER_BYTES || len > bytes.len() {
        return None;
    }
    let record = &bytes[..len];
    let mut cursor = Cursor {
        bytes: &record[HEADER_BYTES..],
    };
    let ts = u64::from_le_bytes(record[4..12].try_into().ok()?);
    let body = match record[2] {
        kind::NEW_SPAN => {
            let registry_id = cursor.u64()?;
            let key = cursor.u64()?;
            let parent = cursor.u64()?;
            let metadata = cursor.metadata()?;
            Body::NewSpan {
                registry_id,
                key,
                parent,
                metadata,
                fields: cursor.fields(Some(metadata))?,
            }
        }
        kind::ENTER | kind::EXIT | kind::CLOSE => Body::Span {
            registry_id: cursor.u64()?,
        },
        kind::VALUES => {
            let registry_id = cursor.u64()?;
            let metadata = cursor.metadata();
            Body::Record {
                registry_id,
                fields: cursor.fields(metadata)?,
            }
        }
        kind::FOLLOWS_FROM => Body::FollowsFrom {
            registry_id: cursor.u64()?,
            follows: cursor.u64()?,
        },
        kind::EVENT => {
            let metadata = cursor.metadata()?;
            let span = cursor.u64()?;
            Body::Event {
                metadata,
                span,
                fields: cursor.fields(Some(metadata))?,
            }
        }
        _ => return None,
    };
    let view = RecordView {
        kind: record[2],
        flags: record[3],
        ts,
        body,
    };
    Some((len, view))
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn metadata(&mut self) -> Option<&'static Metadata<'static>> {
        let address = self.u64()? as usize;
        if address == 0 {
            return None;
        }
        // SAFETY: the address was written by `Scratch::put_metadata` from a
        // `&'static Metadata<'static>` (callsite metadata lives for the whole program), and a
        // reader only ever reads the encoder's output: chunks accept nothing else (`Encoded`
        // has no constructor outside the encoder).
        Some(unsafe { &*(address as *const Metadata<'static>) })
    }

    /// Checks the field list and returns it unparsed; it ends the record.
    fn fields(&mut self, metadata: Option<&'static Metadata<'static>>) -> Option<Fields<'a>> {
        let bytes = self.bytes;
        let count = self.u8()?;
        for _ in 0..count {
            self.field()?;
        }
        Some(Fields { bytes, metadata })
    }

    fn field(&mut self) -> Option<(usize, ValueRef<'a>)> {
        let index = self.u8()? as usize;
        let value = match self.u8()? {
            tag::U64 => ValueRef::U64(self.u64()?),
            tag::I64 => ValueRef::I64(self.u64()? as i64),
            tag::F64 => ValueRef::F64(f64::from_bits(self.u64()?)),
            tag::FALSE => ValueRef::Bool(false),
            tag::TRUE => ValueRef::Bool(true),
            tag::REDACTED => ValueRef::Redacted,
            tag::U128 => ValueRef::U128(u128::from_le_bytes(self.take(16)?.try_into().ok()?)),
            tag::I128 => ValueRef::I128(i128::from_le_bytes(self.take(16)?.try_into().ok()?)),
            tag @ (tag::STR | tag::STR_TRUNCATED) => {
                let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
                ValueRef::Str {
                    text: self.take(len)?,
                    truncated: tag == tag::STR_TRUNCATED,
                }
            }
            _ => return None,
        };
        Some((index, value))
    }
}
