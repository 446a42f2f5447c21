//! Stable tokio, no cfg: the workers' park and unpark, as busy and parked slices on each
//! worker's track, from `runtime::Builder::on_thread_park` / `on_thread_unpark`.

use std::fmt;
use std::sync::Arc;

use crate::FlightRecorder;
use crate::record::Recording;
use crate::record::runtime::{self, PARK, UNPARK};

/// The park and unpark hooks of one recorder, to call from a runtime's thread hooks.
///
/// [`instrument`] installs them; when the application has park or unpark hooks of its own
/// (tokio keeps one of each, the last one set), call these from them instead:
///
/// ```
/// # let (_layer, recorder) = tracing_blackbox::FlightRecorder::builder().build().unwrap();
/// let hooks = tracing_blackbox::tokio::RuntimeHooks::new(&recorder);
/// let on_unpark = hooks.clone();
/// let runtime = tokio::runtime::Builder::new_multi_thread()
///     .on_thread_park(move || {
///         // the application's own park work...
///         hooks.on_park();
///     })
///     .on_thread_unpark(move || on_unpark.on_unpark())
///     .build()?;
/// # drop(runtime);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct RuntimeHooks {
    recording: Arc<Recording>,
}

impl fmt::Debug for RuntimeHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeHooks")
            .field("recorder", &self.recording.id)
            .finish()
    }
}

impl RuntimeHooks {
    /// Hooks that record into `recorder`.
    #[must_use]
    pub fn new(recorder: &FlightRecorder) -> Self {
        let recording = Arc::clone(recorder.recording());
        runtime::intern_callsites(&recording);
        RuntimeHooks { recording }
    }

    /// The calling worker goes idle: call from `on_thread_park`. Costs one record (about what
    /// an event costs); never blocks, never allocates in steady state.
    pub fn on_park(&self) {
        runtime::record(&self.recording, &PARK, &PARK.fields().value_set(&[]));
    }

    /// The calling worker goes back to work: call from `on_thread_unpark`.
    pub fn on_unpark(&self) {
        runtime::record(&self.recording, &UNPARK, &UNPARK.fields().value_set(&[]));
    }
}

/// Installs `recorder`'s park and unpark hooks on `builder`: each worker's track then shows
/// when it was busy and when it was parked. tokio keeps one park and one unpark hook: hooks set
/// after this replace these, and these replace earlier ones; to keep both, call
/// [`RuntimeHooks`] from your own.
///
/// ```
/// # let (_layer, recorder) = tracing_blackbox::FlightRecorder::builder().build().unwrap();
/// let mut builder = tokio::runtime::Builder::new_multi_thread();
/// tracing_blackbox::tokio::instrument(&mut builder, &recorder);
/// let runtime = builder.enable_all().build()?;
/// # drop(runtime);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn instrument<'b>(
    builder: &'b mut tokio::runtime::Builder,
    recorder: &FlightRecorder,
) -> &'b mut tokio::runtime::Builder {
    let hooks = RuntimeHooks::new(recorder);
    let unpark = hooks.clone();
    builder
        .on_thread_park(move || hooks.on_park())
        .on_thread_unpark(move || unpark.on_unpark())
}
