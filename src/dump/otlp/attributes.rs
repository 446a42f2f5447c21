//! OTLP attributes and statuses: a callsite and its attributes, typed values from fields, the
//! helpers that build key-value pairs.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Status, status};

use tracing_core::Metadata;

use crate::record::encode::FieldValue;

/// Where a span or event was written: its callsite.
#[derive(Clone, Debug, Default)]
pub(crate) struct Callsite {
    pub(crate) name: String,
    pub(crate) level: String,
    pub(crate) target: String,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<u32>,
}

impl Callsite {
    pub(super) fn of(metadata: &'static Metadata<'static>) -> Self {
        Callsite {
            name: metadata.name().to_owned(),
            level: metadata.level().as_str().to_owned(),
            target: metadata.target().to_owned(),
            file: metadata.file().map(str::to_owned),
            line: metadata.line(),
        }
    }
}

pub(super) fn callsite_attributes(callsite: &Callsite) -> Vec<KeyValue> {
    let mut attributes = vec![
        string("level", &callsite.level),
        string("code.namespace", &callsite.target),
    ];
    if let Some(file) = &callsite.file {
        attributes.push(string("code.filepath", file));
    }
    if let Some(line) = callsite.line {
        attributes.push(int("code.lineno", u64::from(line)));
    }
    attributes
}

pub(super) fn error_status(message: &str) -> Status {
    Status {
        message: message.to_owned(),
        code: status::StatusCode::Error as i32,
    }
}

/// A field as a typed attribute: integers that fit as integers, the others as text.
pub(super) fn field_attribute(name: &str, value: &FieldValue) -> KeyValue {
    let value = match value {
        FieldValue::U64(v) => match i64::try_from(*v) {
            Ok(v) => any_value::Value::IntValue(v),
            Err(_) => any_value::Value::StringValue(v.to_string()),
        },
        FieldValue::I64(v) => any_value::Value::IntValue(*v),
        FieldValue::F64(v) => any_value::Value::DoubleValue(*v),
        FieldValue::Bool(v) => any_value::Value::BoolValue(*v),
        FieldValue::Str(v) => any_value::Value::StringValue(v.clone()),
        other => any_value::Value::StringValue(other.to_string()),
    };
    key_value(name, value)
}

pub(crate) fn key_value(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub(crate) fn string(key: &str, value: &str) -> KeyValue {
    key_value(key, any_value::Value::StringValue(value.to_owned()))
}

pub(crate) fn int(key: &str, value: u64) -> KeyValue {
    key_value(
        key,
        i64::try_from(value).map_or_else(
            |_| any_value::Value::StringValue(value.to_string()),
            any_value::Value::IntValue,
        ),
    )
}

pub(super) fn double(key: &str, value: f64) -> KeyValue {
    key_value(key, any_value::Value::DoubleValue(value))
}

pub(super) fn boolean(key: &str, value: bool) -> KeyValue {
    key_value(key, any_value::Value::BoolValue(value))
}
