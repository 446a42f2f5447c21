//! The runtime view (feature `tokio`): tokio's workers, counters and tasks on the dump's
//! timeline, next to the spans and events the application wrote.
//!
//! # Workers and counters (stable tokio)
//!
//! [`instrument`] wires a runtime builder's park and unpark hooks: each worker's track shows
//! `busy` slices (the polls it ran nest inside) and `parked` slices. [`RuntimeSampler`] records
//! counter tracks every interval (default [`DEFAULT_SAMPLE_INTERVAL`], 10 ms): the runtime's
//! metrics, each worker's busy ratio, the process's memory and CPU time, the recorder's own
//! bytes and counts. Both write into the recorder's bounded storage, so they age out with
//! everything else.
//!
//! ```
//! use tracing_blackbox::tokio::{DEFAULT_SAMPLE_INTERVAL, RuntimeSampler, instrument};
//! # let (_layer, recorder) = tracing_blackbox::FlightRecorder::builder().build()?;
//!
//! let mut builder = tokio::runtime::Builder::new_multi_thread();
//! instrument(&mut builder, &recorder);
//! let runtime = builder.enable_all().build()?;
//! let sampler = RuntimeSampler::start(runtime.handle(), &recorder, DEFAULT_SAMPLE_INTERVAL)?;
//! // ... serve; the sampler stops when dropped.
//! # drop(sampler);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Tasks (`--cfg tokio_unstable`)
//!
//! Built with `--cfg tokio_unstable` and tokio's `tracing` feature, tokio wraps every spawned
//! task in a `runtime.spawn` span (target `tokio::task`; fields `kind`, `task.name`,
//! `task.id`, `loc.file`, `loc.line`, `loc.col`) that is entered around each poll, and emits a
//! `tokio::task::waker` event for each waker operation. The recorder keeps them like any other
//! records, and the dump shows them as a runtime view, with no `spawn` of ours:
//!
//! - each poll is a slice on the worker thread that ran it, named after the task (its name,
//!   else `task <file>:<line>` where it was spawned), with the poll's `scheduled_delay_us`:
//!   how long the task had been ready (woken, or spawned) before this poll started;
//! - each task's lifetime is an async track of its own;
//! - a wake made inside a slice (one task waking another, a request handler notifying a
//!   worker) is a flow arrow from there to the poll it caused.
//!
//! tokio's spans and events are at TRACE, so they must reach this layer and, usually, no other
//! one: give the layers their own filters, and this one [`task_filter`]:
//!
//! ```
//! use std::time::Duration;
//! use tracing_subscriber::filter::LevelFilter;
//! use tracing_subscriber::prelude::*;
//!
//! let (layer, recorder) = tracing_blackbox::FlightRecorder::builder()
//!     .dump_on_long_poll(Duration::from_millis(50))
//!     .dump_on_scheduled_delay(Duration::from_millis(100))
//!     .build()?;
//! let subscriber = tracing_subscriber::registry()
//!     // The recorder: the application's DEBUG and up, and tokio's task records.
//!     .with(layer.with_filter(tracing_blackbox::tokio::task_filter(LevelFilter::DEBUG)));
//!     // Other layers with filters of their own: `.with(fmt::layer().with_filter(...))`.
//! # drop((subscriber, recorder));
//! # Ok::<(), tracing_blackbox::BuildError>(())
//! ```
//!
//! A global filter (an `EnvFilter` added as a layer, or `RUST_LOG` at INFO for the whole
//! subscriber) turns tokio's TRACE callsites off for every layer, this one included.
//!
//! # Triggers
//!
//! [`Builder::dump_on_long_poll`](crate::Builder::dump_on_long_poll) dumps when one poll runs
//! longer than its threshold (a task blocking its worker), and
//! [`Builder::dump_on_scheduled_delay`](crate::Builder::dump_on_scheduled_delay) when a task
//! waits longer than its threshold between being woken and being polled. Both go through the
//! same cooldown, queue and retention as the other triggers.

mod hooks;
mod process;
mod sampler;

use tracing_core::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};

pub use hooks::{RuntimeHooks, instrument};
pub use sampler::{DEFAULT_SAMPLE_INTERVAL, MIN_SAMPLE_INTERVAL, RuntimeSampler};

/// The target of tokio's task spans (`runtime.spawn`); its waker events' target
/// (`tokio::task::waker`) and blocking tasks' (`tokio::task::blocking`) start with it.
pub const TASK_TARGET: &str = "tokio::task";

/// A per-layer filter for the recorder: everything at `level` or more severe, and tokio's
/// task spans and waker events at TRACE (but none of tokio's other internals: resource spans,
/// async ops).
///
/// ```
/// use tracing_subscriber::filter::LevelFilter;
///
/// let filter = tracing_blackbox::tokio::task_filter(LevelFilter::INFO);
/// assert!(filter.would_enable("tokio::task", &tracing::Level::TRACE));
/// assert!(filter.would_enable("tokio::task::waker", &tracing::Level::TRACE));
/// assert!(!filter.would_enable("tokio::sync::batch_semaphore", &tracing::Level::TRACE));
/// assert!(!filter.would_enable("my_app", &tracing::Level::DEBUG));
/// assert!(filter.would_enable("my_app", &tracing::Level::INFO));
/// ```
#[must_use]
pub fn task_filter(level: impl Into<LevelFilter>) -> Targets {
    Targets::new()
        .with_default(level)
        .with_target(TASK_TARGET, Level::TRACE)
}
