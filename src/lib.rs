//! pushgate: a push gateway in front of an IM cluster.
#![forbid(unsafe_code)]

pub mod api;
pub mod domain;
pub mod push;
pub mod registry;
pub mod session;
pub mod store;
pub mod usersig;
pub mod vendor;
