//! The layers the benches compare (ours and the peers, each alone on a `Registry`) and the
//! workloads they run.

use std::hint::black_box;
use std::time::Duration;

use tracing::{Dispatch, Subscriber, info, info_span};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

pub struct Noop;

impl<S: Subscriber> Layer<S> for Noop {}

/// The least any recorder of events must do: read the clock once and take each field's value,
/// formatting `Debug` values (the message) into a reused buffer; nothing is stored.
struct LowerBound {
    clock: quanta::Clock,
}

struct Taker<'a> {
    text: &'a mut String,
    sum: u64,
}

impl tracing::field::Visit for Taker<'_> {
    fn record_u64(&mut self, _: &tracing::field::Field, value: u64) {
        self.sum = self.sum.wrapping_add(value);
    }
    fn record_bool(&mut self, _: &tracing::field::Field, value: bool) {
        self.sum = self.sum.wrapping_add(u64::from(value));
    }
    fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.text, "{value:?}");
    }
}

thread_local! {
    static TEXT: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(1024));
}

impl<S: Subscriber> Layer<S> for LowerBound {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let ts = self.clock.raw();
        TEXT.with_borrow_mut(|text| {
            text.clear();
            let mut taker = Taker { text, sum: ts };
            event.record(&mut taker);
            black_box(taker.sum);
        });
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let ts = self.clock.raw();
        TEXT.with_borrow_mut(|text| {
            let mut taker = Taker { text, sum: ts };
            attrs.record(&mut taker);
            black_box(taker.sum);
        });
    }

    // A timestamp for each enter, exit and close, kept nowhere.
    fn on_enter(&self, id: &tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
        black_box((self.clock.raw(), id));
    }

    fn on_exit(&self, id: &tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
        black_box((self.clock.raw(), id));
    }

    fn on_close(&self, id: tracing::span::Id, _: tracing_subscriber::layer::Context<'_, S>) {
        black_box((self.clock.raw(), id));
    }
}

/// A subscriber under test; holds whatever must stay alive beside it.
pub struct Setup {
    pub name: &'static str,
    pub dispatch: Dispatch,
    _keep: Option<Box<dyn Send>>,
}

pub const SETUPS: [&str; 6] = [
    "floor",
    "lower_bound",
    "fmt_sink",
    "chrome_sink",
    "flight_recorder",
    "blackbox",
];

/// Our layer configured otherwise, in the single-thread groups only: every span timed by a
/// latency threshold that never fires, the recorder switched off (`BLACKBOX=0`), no
/// redaction, (with `--features otlp`) OTLP export configured but never triggered, and (with
/// `--features crash`) the chunks in a crash file under /dev/shm.
pub const VARIANTS: &[&str] = &[
    "blackbox_threshold",
    "blackbox_off",
    "blackbox_no_redaction",
    #[cfg(feature = "otlp")]
    "blackbox_otlp",
    #[cfg(feature = "crash")]
    "blackbox_crash",
];

/// A fresh subscriber for one benchmark. Each is dropped before the next is made: dropping
/// tracing-chrome's guard waits for its writer thread to drain, so its backlog never eats
/// into the next measurement.
pub fn setup(name: &'static str) -> Setup {
    let (dispatch, keep): (Dispatch, Option<Box<dyn Send>>) = match name {
        "floor" => (
            Dispatch::new(tracing_subscriber::registry().with(Noop)),
            None,
        ),
        "lower_bound" => (
            Dispatch::new(tracing_subscriber::registry().with(LowerBound {
                clock: quanta::Clock::new(),
            })),
            None,
        ),
        "fmt_sink" => (
            Dispatch::new(
                tracing_subscriber::registry()
                    .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
            ),
            None,
        ),
        "chrome_sink" => {
            let (chrome, guard) = tracing_chrome::ChromeLayerBuilder::new()
                .writer(std::io::sink())
                .include_args(true)
                .build();
            (
                Dispatch::new(tracing_subscriber::registry().with(chrome)),
                Some(Box::new(guard)),
            )
        }
        "flight_recorder" => {
            let peer = tracing_flight_recorder::FlightRecorder::new(1000);
            (
                Dispatch::new(
                    tracing_subscriber::registry()
                        .with(tracing_flight_recorder::FlightRecorderLayer::new(peer)),
                ),
                None,
            )
        }
        #[cfg(feature = "crash")]
        "blackbox_crash" => {
            let dir = tempfile::tempdir_in(tracing_blackbox::recover::default_crash_dir())
                .expect("a crash directory");
            let (ours, recorder) = tracing_blackbox::FlightRecorder::builder()
                .crash_safe(dir.path())
                .recover_on_start(false)
                .build()
                .expect("valid");
            (
                Dispatch::new(tracing_subscriber::registry().with(ours)),
                Some(Box::new((recorder, dir))),
            )
        }
        "blackbox_threshold" | "blackbox_off" | "blackbox_no_redaction" | "blackbox_otlp" => {
            let builder = tracing_blackbox::FlightRecorder::builder();
            #[cfg(feature = "otlp")]
            let builder = if name == "blackbox_otlp" {
                builder.export_otlp(tracing_blackbox::OtlpConfig::new("http://127.0.0.1:4318"))
            } else {
                builder
            };
            let builder = if name == "blackbox_otlp" {
                builder
            } else if name == "blackbox_off" {
                builder.enabled(false)
            } else if name == "blackbox_no_redaction" {
                builder.redact_fields(Vec::<String>::new())
            } else {
                // Every span timed; none breaches.
                builder.dump_on_slow_span(Duration::from_secs(3600))
            };
            let (ours, recorder) = builder.build().expect("valid");
            (
                Dispatch::new(tracing_subscriber::registry().with(ours)),
                Some(Box::new(recorder)),
            )
        }
        _ => {
            let (ours, recorder) = tracing_blackbox::FlightRecorder::builder()
                .build()
                .expect("defaults");
            (
                Dispatch::new(tracing_subscriber::registry().with(ours)),
                Some(Box::new(recorder)),
            )
        }
    };
    Setup {
        name,
        dispatch,
        _keep: keep,
    }
}

pub fn event_static() {
    info!(a = 1u64, b = true, "static message");
}

pub fn event_formatted(i: u64) {
    info!(a = i, b = true, "formatted message {} of {}", i, "many");
}

pub fn span_lifecycle(i: u64) {
    let span = info_span!("span", n = i);
    let guard = span.enter();
    drop(black_box(guard));
    drop(span);
}

/// Pending `remaining` times, then ready: a future polled several times, like a task that
/// awaits I/O.
struct Yields {
    remaining: u32,
}

impl std::future::Future for Yields {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.remaining == 0 {
            return std::task::Poll::Ready(());
        }
        self.remaining -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// Polls of one instrumented future.
pub const POLLS: u32 = 10;

/// An `#[instrument]`-style future: a span with a field, entered for each of its 10 polls.
pub fn instrumented_future(i: u64) {
    use tracing::Instrument;
    let mut future = std::pin::pin!(
        Yields {
            remaining: POLLS - 1
        }
        .instrument(info_span!("task", n = i))
    );
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    while future.as_mut().poll(&mut cx).is_pending() {}
}
