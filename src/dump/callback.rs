//! Running the application's `on_dump` callback so that nothing it does can take the process
//! down: a panic in it is caught and reported, never re-enters the panic hook's dump, and,
//! from inside a panic hook (where a second panic would abort), it runs on a thread of its own.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use crate::dump::outcome::DumpOutcome;
use crate::sync::quietly;

/// The callback type of [`Builder::on_dump`](crate::Builder::on_dump).
pub(crate) type OnDump = Arc<dyn Fn(&DumpOutcome) + Send + Sync>;

/// How long a panic hook waits for the callback before going on with the panic.
const PANIC_CALLBACK_PATIENCE: Duration = Duration::from_secs(5);

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is running an `on_dump` callback: a panic here is the callback's, and
/// the panic hook leaves it to the callback's runner instead of dumping again.
pub(crate) fn in_callback() -> bool {
    IN_CALLBACK.try_with(Cell::get).unwrap_or(false)
}

/// Runs the callback; a panic in it comes back as its message.
pub(crate) fn run(on_dump: &OnDump, outcome: &DumpOutcome) -> Result<(), String> {
    let _ = IN_CALLBACK.try_with(|flag| flag.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_dump(outcome)));
    let _ = IN_CALLBACK.try_with(|flag| flag.set(false));
    result.map_err(|payload| panic_message(payload.as_ref()))
}

/// [`run`] for a panic hook: on a thread of its own, waited for up to a few seconds.
pub(crate) fn run_from_panic_hook(on_dump: &OnDump, outcome: &DumpOutcome) -> Result<(), String> {
    let (done, wait) = mpsc::channel();
    let on_dump = Arc::clone(on_dump);
    let outcome = outcome.clone();
    let spawned = std::thread::Builder::new()
        .name("blackbox-on-dump".to_owned())
        .spawn(move || quietly(|| done.send(run(&on_dump, &outcome))));
    if let Err(err) = spawned {
        return Err(format!("cannot start a thread for the callback: {err}"));
    }
    wait.recv_timeout(PANIC_CALLBACK_PATIENCE)
        .unwrap_or_else(|_| Err("the callback did not return in time".to_owned()))
}

/// A panic payload as text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_owned())
}
