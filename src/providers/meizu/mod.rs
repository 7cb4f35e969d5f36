//! Meizu Flyme Push: wire format, per-request MD5 signature, HTTP client, reply classification
//! and a local emulator. The facts come from `spec/vendors/meizu.md`.
//!
//! `wire` builds the signed form, `client` sends it once, `reply` classifies every request-level
//! code and every per-target code of the `value` map, `emulator` is a loopback Meizu.

pub mod certificate;
pub mod client;
pub mod emulator;
pub mod reply;
pub mod service;
pub mod wire;

pub use client::MeizuClient;
pub use wire::{MeizuApp, MeizuNotification};
