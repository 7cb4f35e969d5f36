//! The live connections of this gateway, by connection id: how dispatch reaches a
//! `SessionActor`. Sends never wait: a full mailbox is reported to the caller.

use crate::domain::message::Message;
use crate::registry::ConnId;
use actix::prelude::*;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the gateway tells a live session.
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "()")]
pub enum SessionCommand {
    /// Deliver a message as a `message` frame; the client acks it.
    Deliver(Arc<Message>),
    /// A newer login (or a REST kick) ended this session: send `kicked`, then close.
    Kick { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    #[error("the connection is gone")]
    Gone,
    #[error("the connection's queue is full")]
    Full,
}

/// Live sessions by connection id.
#[derive(Default)]
pub struct Hub {
    conns: DashMap<ConnId, Recipient<SessionCommand>>,
    next: AtomicU64,
}

impl Hub {
    /// A fresh connection id (never 0).
    pub fn next_conn_id(&self) -> ConnId {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn register(&self, conn: ConnId, r: Recipient<SessionCommand>) {
        self.conns.insert(conn, r);
    }

    pub fn unregister(&self, conn: ConnId) {
        self.conns.remove(&conn);
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn send(&self, conn: ConnId, cmd: SessionCommand) -> Result<(), DeliverError> {
        let r = self
            .conns
            .get(&conn)
            .map(|e| e.value().clone())
            .ok_or(DeliverError::Gone)?;
        r.try_send(cmd).map_err(|e| match e {
            SendError::Full(_) => DeliverError::Full,
            SendError::Closed(_) => DeliverError::Gone,
        })
    }
}
