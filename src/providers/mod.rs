//! Push services, one module each; they know their wire format and nothing of users.

pub mod fields;
pub mod honor;
pub mod huawei;
pub mod oauth_emulator;
pub mod xiaomi;
