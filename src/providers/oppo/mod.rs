//! OPPO Push (OPUSH, also OnePlus and realme): wire format, signed auth token, HTTP client,
//! reply classification and a local emulator. The facts come from `spec/vendors/oppo.md`.
//!
//! `wire` builds the auth and send forms, `client` sends them once, `reply` classifies every
//! code of the spec's table, `emulator` is a loopback OPPO for tests and load runs.

pub mod certificate;
pub mod client;
pub mod emulator;
pub mod reply;
pub mod service;
pub mod wire;

pub use client::OppoClient;
pub use wire::{OppoApp, OppoNotification};
