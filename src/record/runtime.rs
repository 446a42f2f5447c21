//! The runtime view's own records (feature `tokio`): a worker's park and unpark, and the
//! sampler's counters. They come from no subscriber (tokio's thread hooks, the sampler
//! thread), so they have callsites of their own, which are never registered with `tracing`:
//! no other layer hears of them. They are ordinary event records otherwise, in the same
//! storage, so they age out with everything else; the encoder tells them by their target.

use std::sync::Arc;

use tracing_core::callsite::Callsite;
use tracing_core::field::{FieldSet, ValueSet};
use tracing_core::metadata::Kind;
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Level, Metadata, identify_callsite};

use crate::record::{RUNTIME_TARGET, Recording};

struct RuntimeCallsite(&'static Metadata<'static>);

impl Callsite for RuntimeCallsite {
    fn set_interest(&self, _interest: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        self.0
    }
}

macro_rules! runtime_callsite {
    ($(#[$doc:meta])* $callsite:ident, $metadata:ident, $name:literal, [$($field:literal),* $(,)?]) => {
        static $callsite: RuntimeCallsite = RuntimeCallsite(&$metadata);
        $(#[$doc])*
        pub(crate) static $metadata: Metadata<'static> = Metadata::new(
            $name,
            RUNTIME_TARGET,
            Level::INFO,
            None,
            None,
            None,
            FieldSet::new(&[$($field),*], identify_callsite!(&$callsite)),
            Kind::EVENT,
        );
    };
}

runtime_callsite!(
    /// A worker thread parks (goes idle).
    PARK_CALLSITE, PARK, "park", []
);
runtime_callsite!(
    /// A worker thread unparks (goes back to work).
    UNPARK_CALLSITE, UNPARK, "unpark", []
);
runtime_callsite!(
    /// The runtime's counters (the last four need `tokio_unstable`).
    RUNTIME_CALLSITE,
    RUNTIME_SAMPLE,
    "tokio runtime",
    [
        "workers",
        "alive_tasks",
        "global_queue_depth",
        "blocking_threads",
        "idle_blocking_threads",
        "blocking_queue_depth",
        "spawned_tasks",
    ]
);
runtime_callsite!(
    /// One worker's counters (`worker` names the track; the last four need `tokio_unstable`).
    WORKER_CALLSITE,
    WORKER_SAMPLE,
    "tokio worker",
    [
        "worker",
        "busy_ratio",
        "park_count",
        "park_unpark_count",
        "local_queue_depth",
        "steal_count",
        "poll_count",
        "overflow_count",
    ]
);
runtime_callsite!(
    /// The process's counters.
    PROCESS_CALLSITE,
    PROCESS_SAMPLE,
    "process",
    ["rss_bytes", "cpu_user_ms", "cpu_system_ms", "threads"]
);
runtime_callsite!(
    /// The recorder's own counters.
    RECORDER_CALLSITE,
    RECORDER_SAMPLE,
    "recorder",
    ["allocated_bytes", "written", "overwritten", "dropped"]
);

/// Every runtime-view callsite, for a crash file's callsite log.
#[cfg(feature = "crash")]
static RUNTIME_CALLSITES: [&Metadata<'static>; 6] = [
    &PARK,
    &UNPARK,
    &RUNTIME_SAMPLE,
    &WORKER_SAMPLE,
    &PROCESS_SAMPLE,
    &RECORDER_SAMPLE,
];

/// Makes the runtime view's records readable from a crash file (feature `crash`).
pub(crate) fn intern_callsites(_recording: &Recording) {
    #[cfg(feature = "crash")]
    if let Some(crash) = _recording.storage.crash_store() {
        for metadata in RUNTIME_CALLSITES {
            crash.intern(metadata);
        }
    }
}

/// Records a runtime-view record on the calling thread, as a root event of `metadata`.
#[inline]
pub(crate) fn record(
    recording: &Arc<Recording>,
    metadata: &'static Metadata<'static>,
    values: &ValueSet<'_>,
) {
    let event = Event::new_child_of(None, metadata, values);
    crate::record::layer::record_event(recording, &event);
}
