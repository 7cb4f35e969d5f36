//! Live client sessions: one `SessionActor` per WebSocket connection, the hub that reaches
//! them, the frame codec, and the State.StateChange webhook.

pub mod actor;
pub mod frame;
pub mod hub;
pub mod outbound;
pub mod webhook;

pub use hub::{DeliverError, Hub, SessionCommand};
