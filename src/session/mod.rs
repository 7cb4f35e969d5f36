//! Live client sessions: the WebSocket frame codec and the `State.StateChange` webhook that
//! reports logins, logouts and disconnects to the IM application.

pub mod frame;
pub mod webhook;
