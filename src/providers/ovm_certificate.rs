//! Certificate input checks for OPPO, vivo and Meizu: each vendor validates its own fields
//! (`providers::<vendor>::certificate`) and refuses, naming it, a field that belongs to another.

use crate::domain::validate::{CertificateInput, FieldError};
use crate::domain::Vendor;

use super::meizu::certificate::MeizuFields;
use super::oppo::certificate::OppoFields;
use super::vivo::certificate::VivoFields;

/// The fields a vendor's certificate may carry beyond the common ones.
fn allowed(vendor: Vendor) -> &'static [&'static str] {
    match vendor {
        Vendor::Xiaomi => &["app_id", "app_secret", "channel_id"],
        Vendor::Oppo => &[
            "app_id",
            "app_key",
            "master_secret",
            "channel_id",
            "category",
            "notify_level",
        ],
        Vendor::Vivo => &[
            "app_id",
            "app_key",
            "app_secret",
            "classification",
            "category",
        ],
        Vendor::Meizu => &["app_id", "app_secret", "notice_msg_type"],
    }
}

fn vendor_name(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Xiaomi => "xiaomi",
        Vendor::Oppo => "oppo",
        Vendor::Vivo => "vivo",
        Vendor::Meizu => "meizu",
    }
}

/// Checks an OPPO, vivo or Meizu certificate; `secret_required` is true on create.
pub fn validate(input: &CertificateInput, secret_required: bool) -> Result<(), FieldError> {
    let given = [
        ("app_secret", input.app_secret.is_some()),
        ("channel_id", input.channel_id.is_some()),
        ("app_key", input.app_key.is_some()),
        ("master_secret", input.master_secret.is_some()),
        ("category", input.category.is_some()),
        ("notify_level", input.notify_level.is_some()),
        ("classification", input.classification.is_some()),
        ("notice_msg_type", input.notice_msg_type.is_some()),
    ];
    let allowed = allowed(input.vendor);
    if let Some((field, _)) = given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
        return Err(FieldError {
            field,
            message: format!(
                "{field} is not a field of a {} certificate",
                vendor_name(input.vendor)
            ),
        });
    }
    match input.vendor {
        Vendor::Oppo => OppoFields::from_input(input).validate(secret_required),
        Vendor::Vivo => VivoFields::from_input(input).validate(secret_required),
        Vendor::Meizu => MeizuFields::from_input(input).validate(secret_required),
        Vendor::Xiaomi => Ok(()),
    }
}
