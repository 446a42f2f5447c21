//! Snapshot responses streamed by one long-lived encoder thread, a piece at a time and only
//! as fast as each client takes them, so a response holds a few pieces, never a whole dump;
//! at most `MAX_BODIES_IN_FLIGHT` at once, and one whose client stopped reading gives its
//! place to a new request.

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc};

use super::MAX_BODIES_IN_FLIGHT;
use crate::dump::context::Reason;
use crate::recorder::FlightRecorder;
use crate::sync::{lock, quietly};

/// A piece of a response: what the encoder produces at a time.
pub(crate) const PIECE_BYTES: usize = 64 << 10;
/// Pieces a response may hold ready for a client that has not taken them yet.
pub(crate) const PIECES_QUEUED: usize = 4;
/// How long a client may leave a ready piece untaken before a new request may take its
/// response's place.
pub(crate) const STALL_GRACE: Duration = Duration::from_secs(1);

/// The encoder thread: a current-thread runtime of its own, whose tasks are the responses
/// being encoded. It waits for clients without blocking, so a client that stops reading holds
/// up nobody; stopping it drops whatever is in flight.
pub(super) struct EncoderThread {
    handle: Handle,
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

impl EncoderThread {
    pub(super) fn start() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let handle = runtime.handle().clone();
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("blackbox-http-encoder".to_owned())
            .spawn(move || runtime.block_on(stopped.notified()))?;
        Ok(EncoderThread {
            handle,
            stop,
            thread: Some(thread),
        })
    }

    pub(super) fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for EncoderThread {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The places of the responses in flight.
pub(super) struct Slots {
    slots: Mutex<Vec<Arc<Slot>>>,
    epoch: Instant,
}

/// One response in flight, shared by its body (in the connection) and its encoding task.
pub(super) struct Slot {
    /// Since when (ms after the epoch, plus one) a ready piece has waited for the client;
    /// 0 while it is not waiting.
    waiting_since: AtomicU64,
    cancelled: AtomicBool,
    cancel: Notify,
    /// The whole trace went out: the body ends cleanly (otherwise it ends with an error, so
    /// the client sees a cut-off transfer, never a complete-looking one).
    finished: AtomicBool,
    /// The body handed its end to the connection: the place is free, even if the connection
    /// has not dropped the body yet (a client that has read the end may ask again at once).
    ended: AtomicBool,
}

impl Slots {
    pub(super) fn new() -> Self {
        Slots {
            slots: Mutex::new(Vec::with_capacity(MAX_BODIES_IN_FLIGHT)),
            epoch: Instant::now(),
        }
    }

    /// A place for a new response: a free one, or that of a response whose client has left a
    /// piece untaken for longer than [`STALL_GRACE`] (it is cut off); `None` if every
    /// response in flight is moving.
    pub(super) fn take(&self) -> Option<Arc<Slot>> {
        let now = self.now_ms();
        let mut slots = lock(&self.slots);
        // Only this list holds a place whose body and task are both gone; a body that ended
        // is gone as far as the client can tell.
        slots.retain(|slot| Arc::strong_count(slot) > 1 && !slot.ended.load(Ordering::Acquire));
        if slots.len() >= MAX_BODIES_IN_FLIGHT {
            let grace = STALL_GRACE.as_millis() as u64;
            let stalled = slots.iter().position(|slot| {
                let since = slot.waiting_since.load(Ordering::Acquire);
                since != 0 && now.saturating_sub(since - 1) > grace
            })?;
            let slot = slots.swap_remove(stalled);
            slot.cancelled.store(true, Ordering::Release);
            slot.cancel.notify_one();
        }
        let slot = Arc::new(Slot {
            waiting_since: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            cancel: Notify::new(),
            finished: AtomicBool::new(false),
            ended: AtomicBool::new(false),
        });
        slots.push(Arc::clone(&slot));
        Some(slot)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// Starts encoding a snapshot, taken now, on the encoder thread; returns the body it flows
/// into.
pub(super) fn start(
    encoder: &Handle,
    slots: &Arc<Slots>,
    slot: Arc<Slot>,
    recorder: FlightRecorder,
    gzip: bool,
) -> SnapshotBody {
    let (sender, pieces) = mpsc::channel(PIECES_QUEUED);
    let body = SnapshotBody {
        pieces,
        slot: Arc::clone(&slot),
    };
    let slots = Arc::clone(slots);
    encoder.spawn(async move {
        let _ = encode(&recorder, gzip, &sender, &slot, &slots).await;
    });
    body
}

/// Encodes into `sender` a piece at a time, each once the client has room for it; gives up
/// when the client goes or its place is taken.
async fn encode(
    recorder: &FlightRecorder,
    gzip: bool,
    sender: &mpsc::Sender<Bytes>,
    slot: &Slot,
    slots: &Slots,
) -> io::Result<()> {
    let mut stream = quietly(|| recorder.stream(Reason::Http));
    let mut gz = gzip.then(Gzip::new);
    let mut piece = Vec::with_capacity(PIECE_BYTES + (PIECE_BYTES >> 2));
    loop {
        let permit = match sender.try_reserve() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Closed(())) => return Ok(()),
            Err(mpsc::error::TrySendError::Full(())) => {
                slot.waiting_since
                    .store(slots.now_ms() + 1, Ordering::Release);
                let permit = tokio::select! {
                    permit = sender.reserve() => permit,
                    () = slot.cancel.notified() => return Ok(()),
                };
                slot.waiting_since.store(0, Ordering::Release);
                match permit {
                    Ok(permit) => permit,
                    Err(_) => return Ok(()),
                }
            }
        };
        if slot.cancelled.load(Ordering::Acquire) {
            return Ok(());
        }
        let done = quietly(|| -> io::Result<bool> {
            let done = stream.fill(&mut piece, PIECE_BYTES)?;
            if let Some(gz) = &mut gz {
                gz.compress(&mut piece, done)?;
            }
            Ok(done)
        })?;
        // (The compressor may keep a whole piece to itself: nothing to send yet.)
        if !piece.is_empty() {
            permit.send(Bytes::from(std::mem::take(&mut piece)));
            piece.reserve(PIECE_BYTES + (PIECE_BYTES >> 2));
        }
        if done {
            slot.finished.store(true, Ordering::Release);
            return Ok(());
        }
        // Lets the other responses in flight have their turn.
        tokio::task::yield_now().await;
    }
}

/// Gzip, a piece at a time.
struct Gzip(flate2::write::GzEncoder<Vec<u8>>);

impl Gzip {
    fn new() -> Self {
        Gzip(flate2::write::GzEncoder::new(
            Vec::with_capacity(PIECE_BYTES),
            flate2::Compression::fast(),
        ))
    }

    /// Replaces `piece` with its compressed form (what the compressor let out so far; all of
    /// it, with the gzip trailer, when `last`).
    fn compress(&mut self, piece: &mut Vec<u8>, last: bool) -> io::Result<()> {
        self.0.write_all(piece)?;
        if last {
            self.0.try_finish()?;
        }
        piece.clear();
        std::mem::swap(piece, self.0.get_mut());
        Ok(())
    }
}

/// A snapshot response's body: the pieces as the encoder thread produces them.
pub(super) struct SnapshotBody {
    pieces: mpsc::Receiver<Bytes>,
    slot: Arc<Slot>,
}

impl Body for SnapshotBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match this.pieces.poll_recv(cx) {
            Poll::Ready(Some(piece)) => Poll::Ready(Some(Ok(Frame::data(piece)))),
            Poll::Ready(None) if this.slot.finished.load(Ordering::Acquire) => {
                this.slot.ended.store(true, Ordering::Release);
                Poll::Ready(None)
            }
            // Cut off (its place was taken, or the server is stopping): the connection is
            // closed without the end of the chunked body, so the client sees an error.
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::other(
                "the snapshot response was cut off",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
