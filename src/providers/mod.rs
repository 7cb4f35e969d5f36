//! Push services, one module each; they know their wire format and nothing of users.

pub mod xiaomi;
