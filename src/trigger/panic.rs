//! `dump_on_panic`: a chained panic hook that writes a dump synchronously, and lets concurrent
//! panics share it.
//!
//! The hook holds the triggers weakly. It takes the snapshot with `try_lock` and a deadline on
//! every lock (the panicking thread may hold one) and never uses the layer's thread-local slot,
//! which a panic inside a layer callback leaves in use. A panic inside an `on_dump` callback
//! is left to the callback's runner.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Triggers;
use crate::dump::callback::{in_callback, panic_message};
use crate::dump::context::{DumpContext, Reason};
use crate::sync::lock;

/// How long a panic dump waits for a lock before giving up.
const LOCK_PATIENCE: Duration = Duration::from_millis(500);
/// How long a panic waits for a concurrent panic's dump, which it then shares.
const SHARE_PATIENCE: Duration = Duration::from_secs(10);
/// A panic this soon after a panic dump shares it: one storm, one dump.
const SHARE_WINDOW: Duration = Duration::from_secs(1);

/// When the last panic dump was done, and its file (or why there is none).
type LastDump = Option<(Instant, Result<PathBuf, String>)>;

/// Panic dumps in flight and done, for panics that share them.
#[derive(Default)]
pub(crate) struct PanicDumps {
    /// A panic dump is being written.
    writing: AtomicBool,
    last: Mutex<LastDump>,
}

/// Chains a panic hook that dumps before the previous hook runs. Once the recorder is gone, it
/// only calls the previous hook.
pub(crate) fn install(triggers: &Arc<Triggers>) {
    let triggers = Arc::downgrade(triggers);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(triggers) = triggers.upgrade()
            && !in_callback()
        {
            triggers.dump_for_panic(info);
        }
        previous(info);
    }));
}

/// The file of a panic dump done within the sharing window.
fn shareable(last: &LastDump) -> Option<PathBuf> {
    let (done, result) = last.as_ref()?;
    let path = result.as_ref().ok()?;
    (done.elapsed() < SHARE_WINDOW).then(|| path.clone())
}

fn report_shared(path: &Path) {
    eprintln!(
        "tracing-blackbox: panic: trace saved to {} (with a concurrent panic)",
        path.display()
    );
}

impl Triggers {
    /// Writes a dump synchronously, without waiting on a lock the panicking thread may hold. A
    /// dump that cannot be taken safely is skipped, and says why on stderr. Panics that come
    /// while one is being dumped, or within a second after, share that dump, so a panic storm
    /// costs one snapshot.
    pub(crate) fn dump_for_panic(&self, info: &std::panic::PanicHookInfo<'_>) {
        let panics = &self.panics;
        if panics.writing.swap(true, Ordering::AcqRel) {
            let deadline = Instant::now() + SHARE_PATIENCE;
            while panics.writing.load(Ordering::Acquire) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            match shareable(&lock(&panics.last)) {
                Some(path) => report_shared(&path),
                None => eprintln!(
                    "tracing-blackbox: panic: no trace of its own (a concurrent panic's dump is \
                     in progress or failed)"
                ),
            }
            return;
        }
        let recent = shareable(&lock(&panics.last));
        if let Some(path) = recent {
            panics.writing.store(false, Ordering::Release);
            report_shared(&path);
            return;
        }
        *lock(&panics.last) = None;
        let result = self.write_panic_dump(info);
        match &result {
            Ok(path) => eprintln!("tracing-blackbox: panic: trace saved to {}", path.display()),
            Err(why) => eprintln!("tracing-blackbox: panic: {why}"),
        }
        *lock(&panics.last) = Some((Instant::now(), result));
        panics.writing.store(false, Ordering::Release);
    }

    fn write_panic_dump(&self, info: &std::panic::PanicHookInfo<'_>) -> Result<PathBuf, String> {
        let deadline = Instant::now() + LOCK_PATIENCE;
        let Some(capture) = self.recording.try_capture(deadline) else {
            return Err(
                "no panic dump: the recorder's buffers stayed locked (the panic \
                        happened while they were in use)"
                    .to_owned(),
            );
        };
        let mut context = DumpContext::new(Reason::Panic);
        context.extra.push((
            "panic",
            serde_json::json!({
                "message": panic_message(info.payload()),
                "location": info.location().map(|l| format!("{}:{}", l.file(), l.line())),
                "thread": std::thread::current().name().unwrap_or("unnamed"),
            }),
        ));
        self.dumper
            .write_for_panic(&context, capture, deadline)
            .map(|dump| dump.path)
            .map_err(|err| format!("trace not saved: {err}"))
    }
}
