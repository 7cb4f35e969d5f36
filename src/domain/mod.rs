//! Plain types and rules, no I/O.

pub mod certificate;

pub use certificate::{Certificate, CertificateId, ClickAction, Vendor};
