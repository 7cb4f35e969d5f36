//! vivo Push (also iQOO): wire format, MD5-signed auth token, HTTP client, reply classification
//! and a local emulator. The facts come from `spec/vendors/vivo.md`.
//!
//! `wire` builds the JSON bodies, `client` sends them once (a list send is `saveListPayload`
//! then `pushToList`), `reply` classifies every code of the spec's table and `invalidUser(s)`,
//! `emulator` is a loopback vivo for tests and load runs.

pub mod certificate;
pub mod client;
pub mod emulator;
pub mod reply;
pub mod service;
pub mod wire;

pub use client::VivoClient;
pub use wire::{VivoApp, VivoNotification};
