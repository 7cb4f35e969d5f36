//! Apple Push Notification service, token (.p8) auth over HTTP/2 (spec/vendors/apns.md): one
//! device token per request, many streams per connection, a bounded pool of connections per
//! certificate.
//!
//! `badge` counts each device's app-icon badge, `key` holds the credentials and the ES256 provider token kept inside Apple's window,
//! `wire` the headers and payload, `client` the exchange, `reply` the classification of every
//! reason, and `emulator` an h2c APNs that checks the provider token's signature.

pub mod badge;
pub mod client;
pub mod emulator;
pub mod key;
pub mod reply;
pub mod service;
pub mod wire;

pub use badge::{BadgeEvent, Badges};
pub use client::{ApnsClient, ClientError};
pub use key::{ApnsKey, Environment, KeyError, ProviderToken, TokenMemo};
pub use reply::{classify, ApnsOutcome, ApnsReply};
pub use service::Apns;
pub use wire::ApnsNotification;
