//! JSON pieces of the Chrome output: strings, timestamps, field values (straight from the
//! chunks' bytes), locations, and the `otherData` values built with `serde_json`.

use std::io::{self, Write};

use serde_json::Value;

use crate::dump::context::TriggerEvent;
use crate::dump::reader::ValueRef;
use crate::record::encode::FieldValue;

pub(super) fn json_str<W: Write + ?Sized>(w: &mut W, text: &str) -> io::Result<()> {
    serde_json::to_writer(w, text).map_err(io::Error::from)
}

/// Nanoseconds as microseconds with three decimals, exactly.
pub(super) fn micros(w: &mut impl Write, nanos: u64) -> io::Result<()> {
    write!(w, "{}.{:03}", nanos / 1000, nanos % 1000)
}

/// JSON has no NaN or infinities: they are written as the strings `"NaN"`, `"inf"` and
/// `"-inf"` (JSON `null` would lose them).
fn non_finite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v.is_infinite() {
        Some(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        None
    }
}

/// A field value as stored, written without an intermediate copy.
pub(super) fn json_value(w: &mut impl Write, value: &ValueRef<'_>) -> io::Result<()> {
    let result = match *value {
        ValueRef::U64(v) => serde_json::to_writer(w, &v),
        ValueRef::I64(v) => serde_json::to_writer(w, &v),
        ValueRef::U128(v) => serde_json::to_writer(w, &v),
        ValueRef::I128(v) => serde_json::to_writer(w, &v),
        ValueRef::F64(v) => match non_finite(v) {
            Some(text) => serde_json::to_writer(w, text),
            None => serde_json::to_writer(w, &v),
        },
        ValueRef::Bool(v) => serde_json::to_writer(w, &v),
        ValueRef::Str { .. } | ValueRef::Redacted => {
            serde_json::to_writer(w, &value.text().unwrap_or_default())
        }
    };
    result.map_err(io::Error::from)
}

/// `,"fields":{…}`, or nothing when there are none.
pub(super) fn write_fields<'v>(
    w: &mut impl Write,
    fields: impl Iterator<Item = (&'static str, ValueRef<'v>)>,
) -> io::Result<()> {
    let mut fields = fields.peekable();
    if fields.peek().is_none() {
        return Ok(());
    }
    w.write_all(b",\"fields\":{")?;
    for (i, (name, value)) in fields.enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        json_str(w, name)?;
        w.write_all(b":")?;
        json_value(w, &value)?;
    }
    w.write_all(b"}")
}

pub(super) fn write_location(
    w: &mut impl Write,
    metadata: &tracing_core::Metadata<'_>,
) -> io::Result<()> {
    if let Some(file) = metadata.file() {
        w.write_all(b",\"location\":")?;
        match metadata.line() {
            Some(line) => json_str(w, &format!("{file}:{line}")),
            None => json_str(w, file),
        }?;
    }
    Ok(())
}

/// A field value for `otherData`, as [`json_value`] writes it.
pub(super) fn value_json(value: &ValueRef<'_>) -> Value {
    match *value {
        ValueRef::U64(v) => Value::from(v),
        ValueRef::I64(v) => Value::from(v),
        ValueRef::U128(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        ValueRef::I128(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        ValueRef::F64(v) => non_finite(v).map_or_else(|| Value::from(v), Value::from),
        ValueRef::Bool(v) => Value::from(v),
        ValueRef::Str { .. } | ValueRef::Redacted => {
            Value::from(value.text().unwrap_or_default().into_owned())
        }
    }
}

/// An owned field value for `otherData`, as [`json_value`] writes it.
fn owned_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::F64(v) => value_json(&ValueRef::F64(*v)),
        FieldValue::U64(v) => Value::from(*v),
        FieldValue::I64(v) => Value::from(*v),
        FieldValue::U128(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        FieldValue::I128(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        FieldValue::Bool(v) => Value::from(*v),
        FieldValue::Str(v) => Value::from(v.as_str()),
    }
}

/// `otherData.trigger_event`: the event an error dump is for.
pub(super) fn trigger_event_json(event: &TriggerEvent) -> Value {
    let metadata = event.metadata;
    let message = event.fields.iter().find(|f| f.name == "message");
    let fields: serde_json::Map<String, Value> = event
        .fields
        .iter()
        .filter(|f| f.name != "message")
        .map(|f| (f.name.to_owned(), owned_json(&f.value)))
        .collect();
    serde_json::json!({
        "level": metadata.level().as_str(),
        "target": metadata.target(),
        "name": metadata.name(),
        "location": match (metadata.file(), metadata.line()) {
            (Some(file), Some(line)) => Value::from(format!("{file}:{line}")),
            (Some(file), None) => Value::from(file),
            _ => Value::Null,
        },
        "message": message.map_or(Value::Null, |m| owned_json(&m.value)),
        "fields": fields,
        "recorded": event.recorded,
    })
}
