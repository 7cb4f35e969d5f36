//! Xiaomi MiPush (小米推送): wire format, HTTP client, reply classification and a local emulator.
//!
//! `service` is Xiaomi behind the `PushService` seam. `wire` turns a message into Xiaomi's form body, `client` sends it once, `reply` classifies the
//! answer into a [`VendorReply`] that retry, token clean-up and metrics all read, and `emulator`
//! is a loopback Xiaomi for tests and load runs. The facts come from `spec/xiaomi-push-api.md`.

pub mod client;
pub mod emulator;
pub mod reply;
pub mod service;
pub mod wire;

pub use client::{ClientError, XiaomiClient};
pub use reply::{classify, next_china_midnight_unix, retry_delay, VendorReply};
pub use service::Xiaomi;
pub use wire::{multi_form, regid_form, XiaomiApp, XiaomiMessage, DEFAULT_TITLE};
