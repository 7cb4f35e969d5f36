//! pushgate: a push gateway in front of an IM cluster.
//!
//! The path of a message: `api` (native /v1, TIM-style /v4, WebSocket) → `gateway` → `push::dispatch`
//! decides per device from the `registry`: online → the `session` of that connection; killed or
//! in the background with a token → the `push::sender::CertSender` of its certificate → the
//! `providers` client; otherwise skipped with a counted reason. Durable state goes through `store`.
#![forbid(unsafe_code)]
// The calls banned in .clippy.toml (each with its reason there) are errors, not warnings.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod api;
pub mod certs;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
pub mod domain;
pub mod gateway;
pub mod json_out;
pub mod metrics;
pub mod providers;
pub mod push;
pub mod registry;
pub mod sandbox;
pub mod server;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod usersig;
