//! The writing half of a WebSocket session: a queue the `SessionActor` fills without waiting,
//! and the response body ([`OutboundBody`]) that actix-http's dispatcher polls for the bytes to
//! write. The body encodes the queued frames with actix-http's WebSocket codec when the
//! dispatcher asks for more, so there is no writer task and no channel: an idle connection
//! holds an empty `VecDeque` (which owns no allocation) behind one small shared lock, and the
//! dispatcher's waker (loadtest/README.md, "Memory per live WebSocket connection").
//!
//! The queue is bounded twice: by items (`sessions.outbound_queue`) and by bytes
//! (`sessions.max_outbound_bytes`, the frames queued and not yet encoded into the body). When
//! either is full the client is not reading and the actor ends the session
//! (`OutboundQueue::push` tells it so at once). The dispatcher asks the body for more only while
//! its write buffer holds less than 32 KiB, so on top of the bytes counted here a connection
//! holds at most that buffer, one poll's worth of encoded frames ([`MAX_BYTES_PER_POLL`]) and
//! the kernel's socket buffers.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use actix_codec::Encoder;
use actix_http::ws::{Codec, Message};
use actix_web::body::{BodySize, MessageBody};
use actix_ws::CloseReason;
use bytes::{Bytes, BytesMut};

use super::frame::Encoded;

/// Control frames carry at most 125 bytes of payload (RFC 6455 §5.5); a close frame's reason
/// comes after its 2-byte code.
const MAX_CONTROL_PAYLOAD: usize = 125;
const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Encoded bytes handed to the dispatcher per poll of the body, about its write buffer's size:
/// a long queue is written in pieces instead of being copied out of the byte bound at once.
pub const MAX_BYTES_PER_POLL: usize = 32 * 1024;

/// One thing to write.
#[derive(Debug)]
pub enum Outbound {
    Frame(Encoded),
    /// A WebSocket ping (heartbeat).
    Ping,
    /// A WebSocket pong answering the client's ping.
    Pong(Bytes),
    /// The last item: a close frame, after which the body ends.
    Close(Option<CloseReason>),
}

/// Why an item could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The client is not reading fast enough.
    Full,
    /// The body has ended (closed, aborted) or the connection is gone.
    Gone,
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

    fn into_message(self) -> Message {
        match self {
            Outbound::Frame(Encoded::Text(s)) => Message::Text(s.into()),
            Outbound::Frame(Encoded::Binary(b)) => Message::Binary(b.into()),
            Outbound::Ping => Message::Ping(Bytes::new()),
            Outbound::Pong(mut p) => {
                p.truncate(MAX_CONTROL_PAYLOAD);
                Message::Pong(p)
            }
            Outbound::Close(mut reason) => {
                if let Some(d) = reason.as_mut().and_then(|r| r.description.as_mut()) {
                    truncate_at_char(d, MAX_CLOSE_REASON);
                }
                Message::Close(reason)
            }
        }
    }
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// What the actor and the body share.
#[derive(Default)]
struct State {
    items: VecDeque<Outbound>,
    /// Bytes of `items`.
    bytes: usize,
    /// The dispatcher waiting for the next item.
    waker: Option<Waker>,
    /// No more items: the close frame was queued, the writer was aborted, or the body is gone.
    ended: bool,
    /// Drop what is queued and end the body at its next poll.
    aborted: bool,
}

impl State {
    /// Gives back the queue's allocation once it is empty, so that an idle connection holds
    /// none (the next push allocates again).
    fn release_if_empty(&mut self) {
        if self.items.is_empty() && self.items.capacity() > 0 {
            self.items = VecDeque::new();
        }
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

#[derive(Default)]
struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one still holds a consistent queue.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The actor's end of the queue.
pub struct OutboundQueue {
    shared: Arc<Shared>,
    /// The most items queued at once.
    max_items: usize,
    /// The most bytes queued at once (a frame larger than this still goes alone).
    max_bytes: usize,
}

impl OutboundQueue {
    /// A queue of at most `max_items` items and `max_bytes` bytes, and the response body that
    /// writes it.
    pub fn new(max_items: usize, max_bytes: usize) -> (OutboundQueue, OutboundBody) {
        let shared = Arc::new(Shared::default());
        let body = OutboundBody {
            shared: shared.clone(),
            codec: Codec::new(),
        };
        let queue = OutboundQueue {
            shared,
            max_items: max_items.max(1),
            max_bytes,
        };
        (queue, body)
    }

    /// Queues `item` without waiting; `Full` when either the items or the bytes would go over
    /// their bound.
    pub fn push(&self, item: Outbound) -> Result<(), QueueError> {
        let mut st = self.shared.lock();
        if st.ended {
            return Err(QueueError::Gone);
        }
        let size = item.size();
        if st.items.len() >= self.max_items
            || (size > 0 && st.bytes > 0 && st.bytes + size > self.max_bytes)
        {
            return Err(QueueError::Full);
        }
        if matches!(item, Outbound::Close(_)) {
            st.ended = true;
        }
        st.bytes += size;
        st.items.push_back(item);
        st.wake();
        Ok(())
    }

    /// Bytes queued and not yet handed to the connection.
    pub fn queued_bytes(&self) -> usize {
        self.shared.lock().bytes
    }

    /// Items the queue has room for without allocating: 0 while nothing waits to be written.
    pub fn allocated_items(&self) -> usize {
        self.shared.lock().items.capacity()
    }

    /// Queues a close frame, after which the body ends; when the queue is full, gives up on an
    /// orderly close and aborts.
    pub fn close(&self, reason: Option<CloseReason>) {
        if self.push(Outbound::Close(reason)) == Err(QueueError::Full) {
            self.abort();
        }
    }

    /// Drops what is queued and ends the body (which closes the connection) at its next poll.
    pub fn abort(&self) {
        let mut st = self.shared.lock();
        st.ended = true;
        st.aborted = true;
        st.items.clear();
        st.bytes = 0;
        st.release_if_empty();
        st.wake();
    }
}

/// The WebSocket response body: the queued frames, encoded when the dispatcher asks.
pub struct OutboundBody {
    shared: Arc<Shared>,
    codec: Codec,
}

impl MessageBody for OutboundBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let mut st = this.shared.lock();
        if st.aborted {
            return Poll::Ready(None);
        }
        if st.items.is_empty() {
            if st.ended {
                return Poll::Ready(None);
            }
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let mut buf = BytesMut::new();
        while buf.len() < MAX_BYTES_PER_POLL {
            let Some(item) = st.items.pop_front() else {
                break;
            };
            st.bytes -= item.size();
            // Encoding a server frame fails only for a close reason over the control-frame
            // limit, which `into_message` has cut; should it fail anyway, the frame is dropped
            // (its message stays unacked and goes to push when the session ends).
            if let Err(e) = this.codec.encode(item.into_message(), &mut buf) {
                tracing::warn!(error = %e, "websocket frame not encoded");
            }
        }
        st.release_if_empty();
        Poll::Ready(Some(Ok(buf.freeze())))
    }
}

impl Drop for OutboundBody {
    fn drop(&mut self) {
        // The connection is gone: nothing queued can be written any more.
        let mut st = self.shared.lock();
        st.ended = true;
        st.items.clear();
        st.bytes = 0;
        st.release_if_empty();
        st.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Decoder;
    use actix_http::ws::Frame;

    fn poll(body: &mut OutboundBody) -> Poll<Option<Bytes>> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(body)
            .poll_next(&mut cx)
            .map(|o| o.map(|r| r.unwrap_or_else(|e| match e {})))
    }

    fn frames(mut bytes: BytesMut) -> Vec<Frame> {
        let mut codec = Codec::new().client_mode();
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut bytes).expect("valid frame") {
            out.push(f);
        }
        assert!(bytes.is_empty());
        out
    }

    fn text(s: &str) -> Outbound {
        Outbound::Frame(Encoded::Text(s.to_owned()))
    }

    #[test]
    fn an_idle_queue_holds_no_buffer_before_or_after_writing() {
        let (q, mut body) = OutboundQueue::new(16, 1 << 20);
        assert_eq!(q.allocated_items(), 0);
        assert!(poll(&mut body).is_pending());
        q.push(text("a")).unwrap();
        q.push(text("b")).unwrap();
        assert!(q.allocated_items() >= 2);
        let Poll::Ready(Some(bytes)) = poll(&mut body) else {
            panic!("frames expected")
        };
        let got = frames(BytesMut::from(&bytes[..]));
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0], Frame::Text(t) if &t[..] == b"a"));
        assert!(matches!(&got[1], Frame::Text(t) if &t[..] == b"b"));
        assert_eq!(
            q.allocated_items(),
            0,
            "drained: the allocation is given back"
        );
        assert_eq!(q.queued_bytes(), 0);
        assert!(poll(&mut body).is_pending());
    }

    #[test]
    fn the_byte_bound_refuses_a_frame_that_would_exceed_it_but_a_big_one_goes_alone() {
        let (q, mut body) = OutboundQueue::new(100, 10);
        q.push(text(&"x".repeat(30))).unwrap();
        assert_eq!(q.push(text("y")), Err(QueueError::Full));
        assert_eq!(q.queued_bytes(), 30);
        // Control frames without payload still go.
        q.push(Outbound::Ping).unwrap();
        let _ = poll(&mut body);
        assert_eq!(q.queued_bytes(), 0);
        q.push(text("y")).unwrap();
    }

    #[test]
    fn the_item_bound_refuses_the_item_over_it() {
        let (q, _body) = OutboundQueue::new(2, 1 << 20);
        q.push(Outbound::Ping).unwrap();
        q.push(Outbound::Ping).unwrap();
        assert_eq!(q.push(Outbound::Ping), Err(QueueError::Full));
    }

    #[test]
    fn a_long_queue_is_written_in_pieces_in_order() {
        let (q, mut body) = OutboundQueue::new(1000, 1 << 20);
        for i in 0..100 {
            q.push(text(&format!("{i:04}{}", "x".repeat(1000))))
                .unwrap();
        }
        let mut all = BytesMut::new();
        let mut polls = 0;
        while let Poll::Ready(Some(b)) = poll(&mut body) {
            assert!(b.len() < MAX_BYTES_PER_POLL + 1100);
            all.extend_from_slice(&b);
            polls += 1;
        }
        assert!(polls > 1);
        let got = frames(all);
        assert_eq!(got.len(), 100);
        for (i, f) in got.iter().enumerate() {
            let Frame::Text(t) = f else { panic!("text") };
            assert!(t.starts_with(format!("{i:04}").as_bytes()));
        }
    }

    #[test]
    fn close_is_the_last_frame_and_ends_the_body() {
        let (q, mut body) = OutboundQueue::new(16, 1 << 20);
        q.push(text("bye")).unwrap();
        q.close(Some(CloseReason {
            code: actix_ws::CloseCode::Away,
            description: Some("é".repeat(100)),
        }));
        assert_eq!(q.push(text("late")), Err(QueueError::Gone));
        let Poll::Ready(Some(bytes)) = poll(&mut body) else {
            panic!("frames expected")
        };
        let got = frames(BytesMut::from(&bytes[..]));
        assert_eq!(got.len(), 2);
        let Frame::Close(Some(reason)) = &got[1] else {
            panic!("close frame expected")
        };
        assert_eq!(reason.code, actix_ws::CloseCode::Away);
        assert_eq!(reason.description.as_deref(), Some("é".repeat(61).as_str()));
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
    }

    #[test]
    fn abort_drops_the_queue_and_ends_the_body_at_once() {
        let (q, mut body) = OutboundQueue::new(16, 1 << 20);
        q.push(text("never written")).unwrap();
        q.abort();
        assert_eq!(q.queued_bytes(), 0);
        assert_eq!(q.allocated_items(), 0);
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        assert_eq!(q.push(text("late")), Err(QueueError::Gone));
    }

    #[test]
    fn a_dropped_body_makes_the_queue_gone() {
        let (q, body) = OutboundQueue::new(16, 1 << 20);
        q.push(text("queued")).unwrap();
        drop(body);
        assert_eq!(q.push(text("late")), Err(QueueError::Gone));
        assert_eq!(q.allocated_items(), 0);
    }
}
