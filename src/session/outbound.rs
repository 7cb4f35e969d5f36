//! The writing half of a WebSocket session: a task that owns a clone of the actix-ws `Session`
//! and writes what the `SessionActor` queues, so that the actor never waits on a socket.
//!
//! The queue is bounded twice: by items (`sessions.outbound_queue`) and by bytes
//! (`sessions.max_outbound_bytes`, the frames queued and not yet handed to actix-ws). When
//! either is full the client is not reading and the actor ends the session
//! (`OutboundQueue::push` tells it so at once). On top of the bytes counted here, a connection
//! holds at most actix-ws's own 32-message channel and the kernel's socket buffers.

use actix_ws::{CloseReason, Session};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

use super::frame::Encoded;

/// One thing to write.
#[derive(Debug)]
pub enum Outbound {
    Frame(Encoded),
    /// A WebSocket ping (heartbeat).
    Ping,
    /// A WebSocket pong answering the client's ping.
    Pong(bytes::Bytes),
    /// The last item: a close frame, after which the writer stops.
    Close(Option<CloseReason>),
}

/// Why an item could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The client is not reading fast enough.
    Full,
    /// The writer has stopped (the socket is gone).
    Gone,
}

/// The actor's end of the writer.
pub struct OutboundQueue {
    tx: mpsc::Sender<Outbound>,
    /// Stops the writer at once, even mid-write (a client that does not read would otherwise
    /// keep it waiting on the socket forever).
    abort: Arc<Notify>,
    /// Bytes of frames queued and not yet written, shared with the writer.
    queued_bytes: Arc<AtomicUsize>,
    /// The most bytes `queued_bytes` may reach (a frame larger than this still goes alone).
    max_bytes: usize,
}

impl Outbound {
    /// The bytes this item holds while queued.
    fn size(&self) -> usize {
        match self {
            Outbound::Frame(Encoded::Text(s)) => s.len(),
            Outbound::Frame(Encoded::Binary(b)) => b.len(),
            Outbound::Pong(p) => p.len(),
            Outbound::Ping | Outbound::Close(_) => 0,
        }
    }
}

impl OutboundQueue {
    /// Starts the writer task on the current arbiter, with room for `capacity` items and
    /// `max_bytes` bytes.
    pub fn start(session: Session, capacity: usize, max_bytes: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let abort = Arc::new(Notify::new());
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        actix_rt::spawn(write(session, rx, abort.clone(), queued_bytes.clone()));
        OutboundQueue {
            tx,
            abort,
            queued_bytes,
            max_bytes,
        }
    }

    /// Queues `item` without waiting; `Full` when either the items or the bytes would go over
    /// their bound.
    pub fn push(&self, item: Outbound) -> Result<(), QueueError> {
        let size = item.size();
        // Only the actor pushes, so the check and the add cannot race with another push; the
        // writer only subtracts.
        let queued = self.queued_bytes.load(Ordering::Acquire);
        if size > 0 && queued > 0 && queued + size > self.max_bytes {
            return Err(QueueError::Full);
        }
        self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        self.tx.try_send(item).map_err(|e| {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => QueueError::Full,
                mpsc::error::TrySendError::Closed(_) => QueueError::Gone,
            }
        })
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// Queues a close frame; when the queue is full (or the writer stuck), gives up on an orderly
    /// close and stops the writer, which drops its handle on the socket.
    pub fn close(&self, reason: Option<CloseReason>) {
        if self.push(Outbound::Close(reason)).is_err() {
            self.abort();
        }
    }

    /// Stops the writer now; queued items are dropped.
    pub fn abort(&self) {
        // A stored permit: the writer sees it even if it is not waiting right now.
        self.abort.notify_one();
    }
}

async fn write(
    mut session: Session,
    mut rx: mpsc::Receiver<Outbound>,
    abort: Arc<Notify>,
    queued_bytes: Arc<AtomicUsize>,
) {
    loop {
        let item = tokio::select! {
            biased;
            _ = abort.notified() => return,
            item = rx.recv() => match item {
                Some(item) => item,
                None => return,
            },
        };
        let size = item.size();
        let written = match item {
            Outbound::Frame(Encoded::Text(s)) => write_or_abort(session.text(s), &abort).await,
            Outbound::Frame(Encoded::Binary(b)) => write_or_abort(session.binary(b), &abort).await,
            Outbound::Ping => write_or_abort(session.ping(b""), &abort).await,
            Outbound::Pong(p) => write_or_abort(session.pong(&p), &abort).await,
            Outbound::Close(reason) => {
                let _ = write_or_abort(session.close(reason), &abort).await;
                return;
            }
        };
        queued_bytes.fetch_sub(size, Ordering::AcqRel);
        if !written {
            return;
        }
    }
}

/// Runs one write unless the writer is aborted first; true when it succeeded.
async fn write_or_abort<F>(write: F, abort: &Notify) -> bool
where
    F: std::future::Future<Output = Result<(), actix_ws::Closed>>,
{
    tokio::select! {
        biased;
        _ = abort.notified() => false,
        r = write => r.is_ok(),
    }
}
