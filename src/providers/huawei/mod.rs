//! Huawei Push Kit (HMS Core) v1/v2, and v3 for HarmonyOS NEXT: OAuth client credentials, the
//! notification body, reply classification and a local emulator. The facts come from
//! `spec/vendors/huawei.md`.
//!
//! `auth` builds the token request and reads its answer, `account` signs the service-account
//! JWT that can replace it (§2.2), `wire` the send body, `harmony` the v3 body of HarmonyOS NEXT
//! (§1), `client` sends
//! once, `reply` classifies every code of the spec's table into a [`HuaweiReply`], and
//! `emulator` is a loopback Huawei for tests and load runs.

pub mod account;
pub mod auth;
pub mod client;
pub mod emulator;
pub mod harmony;
pub mod memory;
pub mod reply;
pub mod service;
pub mod verdicts;
pub mod wire;

pub use account::ServiceAccount;
pub use auth::{AccessToken, TokenError};
pub use client::{ClientError, HuaweiClient, DEFAULT_AUTH_URL, DEFAULT_BASE_URL};
pub use reply::{classify, HuaweiReply};
pub use service::{HuaweiAuth, HuaweiCert};
pub use wire::{send_body, HuaweiApp, HuaweiMessage, DEFAULT_CATEGORY, DEFAULT_IMPORTANCE};
