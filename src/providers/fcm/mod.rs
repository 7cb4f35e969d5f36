//! Firebase Cloud Messaging, HTTP v1 (spec/vendors/fcm.md): one token per request over HTTP/2.
//!
//! `account` parses the service-account JSON and signs the RS256 assertion, `client` exchanges
//! it for an access token and sends, `wire` builds the `messages:send` body, `reply` classifies
//! every answer of the spec's table, and `emulator` is a loopback FCM (token endpoint included)
//! that checks the assertion's signature against the account's public key.

pub mod account;
pub mod client;
pub mod emulator;
pub mod reply;
pub mod service;
pub mod wire;

pub use account::{AccountError, ServiceAccount};
pub use client::{ClientError, FcmClient, DEFAULT_BASE_URL};
pub use reply::{classify, FcmOutcome, FcmReply};
pub use service::Fcm;
pub use wire::{FcmNotification, Priority};
