//! `dump_on_signal`: SIGUSR1 wakes a thread of the recorder's, which triggers a dump.
//!
//! The signal handler itself is `signal-hook`'s: it only writes to a pipe. The thread triggers
//! recording nothing (`Dispatch::none()`), holds the recorder weakly, and ends when the recorder is dropped.

use std::io;
use std::sync::{Arc, Weak};

use signal_hook::consts::SIGUSR1;
use signal_hook::iterator::Signals;

use super::Triggers;
use crate::dump::context::Reason;
use crate::sync::{lock, quietly};

pub(crate) fn install(triggers: &Arc<Triggers>) -> io::Result<()> {
    let mut signals = Signals::new([SIGUSR1])?;
    *lock(&triggers.signals) = Some(signals.handle());
    let triggers: Weak<Triggers> = Arc::downgrade(triggers);
    std::thread::Builder::new()
        .name("blackbox-signals".to_owned())
        .spawn(move || {
            for _ in signals.forever() {
                let Some(triggers) = triggers.upgrade() else {
                    break;
                };
                let now = triggers.recording.now();
                quietly(|| triggers.trigger(Reason::Signal, now, None, || None));
            }
        })?;
    Ok(())
}
