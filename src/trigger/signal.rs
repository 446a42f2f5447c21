//! `dump_on_signal`: SIGUSR1 wakes a thread of the recorder's, which triggers a dump.
//!
//! The signal handler itself is `signal-hook`'s: it only writes to a pipe. The thread triggers
//! under `NoSubscriber`, holds the recorder weakly, and ends when the recorder is dropped.

use std::io;
use std::sync::{Arc, Weak};

use signal_hook::consts::SIGUSR1;
use signal_hook::iterator::Signals;

use crate::recorder::Shared;
use crate::sync::lock;
use crate::sync::quietly;
use crate::trigger::admission::Reason;

pub(crate) fn install(shared: &Arc<Shared>) -> io::Result<()> {
    let mut signals = Signals::new([SIGUSR1])?;
    *lock(&shared.signals) = Some(signals.handle());
    let recorder: Weak<Shared> = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("blackbox-signals".to_owned())
        .spawn(move || {
            for _ in signals.forever() {
                let Some(shared) = recorder.upgrade() else {
                    break;
                };
                quietly(|| shared.trigger(Reason::Signal, shared.now(), None, || None));
            }
        })?;
    Ok(())
}
