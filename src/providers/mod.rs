//! Push services, one module each; they know their wire format and nothing of users.

pub mod apns;
pub mod credentials;
pub mod fcm;
pub mod h2_emulator;
pub mod h2_pool;
pub mod jwt;
pub mod xiaomi;
