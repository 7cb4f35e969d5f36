//! Live client sessions: one `SessionActor` per WebSocket connection, and the hub that reaches
//! them.

pub mod hub;

pub use hub::{DeliverError, Hub, SessionCommand};
