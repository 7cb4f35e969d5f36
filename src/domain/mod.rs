//! Plain types and rules, no I/O: certificates and their validation, device states and their
//! transitions, token rules, the multi-device policy, the text of a notification.

pub mod certificate;
pub mod credentials;
pub mod device;
pub mod global_push_fields;
pub mod hw_push_fields;
pub mod ids;
pub mod message;
pub mod policy;
pub mod push_text;
pub mod receipt;
pub mod token;
pub mod validate;
pub mod vendor_fields;

pub use certificate::{Certificate, CertificateId, ClickAction, Vendor};
pub use credentials::Credentials;
pub use device::{DeviceEvent, DeviceState, OfflineReason, Platform, TransitionError, UserStatus};
pub use policy::MultiDevicePolicy;
pub use push_text::PushText;
pub use token::TokenError;

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix milliseconds now.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
