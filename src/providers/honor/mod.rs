//! Honor Push (荣耀推送): OAuth client credentials, the camelCase notification body with its
//! `timestamp` header, reply classification and a local emulator (spec/vendors/honor.md).
//!
//! Honor's doc is known only from copies, so several facts are UNCONFIRMED (token lifetime,
//! error codes, batch size, payload limit, how rate limiting is signalled). Each is a documented
//! default here (see `reply`, `wire`) and a knob of the emulator (`emulator::HonorRules`).

pub mod client;
pub mod emulator;
pub mod fails;
pub mod reply;
pub mod service;
pub mod wire;

pub use client::{HonorClient, DEFAULT_AUTH_URL, DEFAULT_BASE_URL};
pub use reply::{classify, HonorReply};
pub use wire::{send_body, HonorApp, HonorMessage, DEFAULT_IMPORTANCE};
