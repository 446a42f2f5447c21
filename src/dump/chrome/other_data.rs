//! `otherData`: what the dump is (format, version), why it was written, its window, the
//! recorder's configuration and counters, and the trigger's details.

use std::borrow::Borrow;
use std::io::{self, Write};

use serde_json::Value;

use super::json::{trigger_event_json, value_json};
use super::{Encoder, FORMAT_VERSION};
use crate::record::Capture;

impl<C: Borrow<Capture>> Encoder<C> {
    pub(super) fn write_other_data(&self, w: &mut impl Write) -> io::Result<()> {
        let context = &self.context;
        let raw = &self.capture().raw;
        let timebase = &self.timebase;
        let rfc3339 = |ns| Value::String(timebase.wall_time(ns).to_rfc3339());
        let micros_value = |ns: u64| {
            serde_json::Number::from_f64(ns as f64 / 1000.0).map_or(Value::Null, Value::Number)
        };
        let mut data = serde_json::json!({
            "format": "tracing-blackbox",
            "version": FORMAT_VERSION,
            "crate_version": env!("CARGO_PKG_VERSION"),
            "reason": context.reason.as_str(),
            "anchor": timebase.anchor_wall.to_rfc3339(),
            "window_start": rfc3339(self.layout.window_start),
            "window_end": rfc3339(self.layout.window_end),
            "window_start_us": micros_value(self.layout.window_start),
            "window_end_us": micros_value(self.layout.window_end),
            "max_bytes": self.capture().max_bytes,
            "min_age_ms": u64::try_from(self.capture().min_age.as_millis()).unwrap_or(u64::MAX),
            "allocated_bytes": raw.allocated_bytes,
            "written": raw.written,
            "overwritten": raw.overwritten,
            "dropped": self.capture().dropped,
            "retained": self.layout.retained,
            "repaired_exits": self.layout.repairs.out_of_order_exits,
            "evicted_enters": self.layout.repairs.evicted_enters,
            "suppressed": context.suppressed,
        });
        for (key, value) in &context.extra {
            data[*key] = value.clone();
        }
        if let Some(trigger) = &context.trigger {
            let mut fields = Vec::new();
            self.layout
                .spans
                .fields(trigger.span_id, &raw.threads, &mut fields);
            let fields: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value_json(value)))
                .collect();
            data["trigger"] = serde_json::json!({
                "span": trigger.span_name,
                "span_id": trigger.span_id,
                "fields": fields,
                "duration_ms": trigger.duration_nanos as f64 / 1e6,
                "threshold_ms": trigger.threshold_nanos as f64 / 1e6,
                "timing": trigger.timing,
            });
            if let Some(task) = self.layout.tasks.name(trigger.span_id) {
                data["trigger"]["task"] = Value::String(task.to_owned());
            }
        }
        if let Some(event) = &context.event {
            data["trigger_event"] = trigger_event_json(event);
        }
        serde_json::to_writer(w, &data).map_err(io::Error::from)
    }
}
