//! Per-vendor certificate fields (contract.md "More push services"): which fields a vendor
//! takes beyond the common ones, their rules (errors name the field) and their defaults.

use crate::domain::validate::{CertificateInput, FieldError};
use crate::domain::{ClickAction, Vendor, VendorFields};
use crate::providers::{honor, huawei};

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

fn not_for(vendor: &str, field: &'static str, given: bool) -> Result<(), FieldError> {
    if given {
        return Err(bad(
            field,
            format!("{field} is not a field of a {vendor} certificate"),
        ));
    }
    Ok(())
}

fn plain(field: &'static str, value: &str, max: usize, what: &str) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(bad(field, format!("the {what} is required")));
    }
    if value.len() > max || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            field,
            format!("the {what} must be at most {max} characters without spaces"),
        ));
    }
    Ok(())
}

/// Huawei and Honor open only https pages (huawei.md §3 click_action type 2; honor.md §3).
fn https_only(vendor: &str, click: &ClickAction) -> Result<(), FieldError> {
    match click {
        ClickAction::OpenUrl { url } if !url.starts_with("https://") => Err(bad(
            "click_action.url",
            format!("{vendor} opens only https:// pages"),
        )),
        _ => Ok(()),
    }
}

/// Checks the vendor-specific fields of a certificate; `secret_required` on create.
pub fn check(input: &CertificateInput, secret_required: bool) -> Result<(), FieldError> {
    match input.vendor {
        Vendor::Xiaomi => {
            not_for("Xiaomi", "client_id", input.client_id.is_some())?;
            not_for("Xiaomi", "client_secret", input.client_secret.is_some())?;
            not_for("Xiaomi", "category", input.category.is_some())?;
            not_for("Xiaomi", "importance", input.importance.is_some())
        }
        Vendor::Huawei => {
            not_for("Huawei", "client_id", input.client_id.is_some())?;
            not_for("Huawei", "client_secret", input.client_secret.is_some())?;
            not_for("Huawei", "importance", input.importance.is_some())?;
            if let Some(category) = &input.category {
                // PLAY_VOICE is for data messages only (huawei.md §3).
                if category == "PLAY_VOICE"
                    || !huawei::wire::CATEGORIES.contains(&category.as_str())
                {
                    return Err(bad(
                        "category",
                        format!(
                            "'{category}' is not a Huawei notification category \
                             (IM, VOIP, SUBSCRIPTION, …, MARKETING)"
                        ),
                    ));
                }
            }
            https_only("Huawei", &input.click_action)
        }
        Vendor::Honor => {
            if input.app_secret.is_some() {
                return Err(bad(
                    "app_secret",
                    "a Honor certificate takes client_id and client_secret, not app_secret",
                ));
            }
            plain(
                "client_id",
                input.client_id.as_deref().unwrap_or(""),
                128,
                "Honor client id",
            )?;
            match &input.client_secret {
                None if secret_required => {
                    return Err(bad("client_secret", "the Honor client secret is required"))
                }
                Some(s) => plain("client_secret", s, 256, "Honor client secret")?,
                None => {}
            }
            not_for("Honor", "category", input.category.is_some())?;
            if input.channel_id.is_some() {
                return Err(bad(
                    "channel_id",
                    "Honor has no notification channels; a Honor certificate classifies by importance",
                ));
            }
            if let Some(i) = &input.importance {
                if !matches!(i.as_str(), "LOW" | "NORMAL") {
                    return Err(bad("importance", "importance must be LOW or NORMAL"));
                }
            }
            https_only("Honor", &input.click_action)
        }
    }
}

/// The fields as stored: a chat classification unless the operator chose another.
pub fn with_defaults(vendor: Vendor, mut fields: VendorFields) -> VendorFields {
    match vendor {
        Vendor::Xiaomi => {}
        Vendor::Huawei => {
            fields
                .category
                .get_or_insert_with(|| huawei::DEFAULT_CATEGORY.to_owned());
        }
        Vendor::Honor => {
            fields
                .importance
                .get_or_insert_with(|| honor::DEFAULT_IMPORTANCE.to_owned());
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validate::validate_certificate;

    fn input(vendor: Vendor) -> CertificateInput {
        CertificateInput {
            vendor,
            package_name: "com.example.chat".into(),
            app_id: "10086".into(),
            app_secret: (vendor != Vendor::Honor).then(|| "s3cret".into()),
            click_action: ClickAction::OpenApp,
            channel_id: None,
            qps: 100,
            client_id: (vendor == Vendor::Honor).then(|| "cid".into()),
            client_secret: (vendor == Vendor::Honor).then(|| "sec".into()),
            category: None,
            importance: None,
        }
    }

    #[test]
    fn good_certificates_pass_and_get_chat_defaults() {
        for v in [Vendor::Xiaomi, Vendor::Huawei, Vendor::Honor] {
            assert_eq!(validate_certificate(&input(v), true), Ok(()), "{v:?}");
        }
        let hw = input(Vendor::Huawei).into_certificate(1, None);
        assert_eq!(hw.fields.category.as_deref(), Some("IM"));
        let ho = input(Vendor::Honor).into_certificate(2, None);
        assert_eq!(ho.fields.importance.as_deref(), Some("NORMAL"));
        assert_eq!(ho.app_secret, "sec");
        assert_eq!(ho.fields.client_id.as_deref(), Some("cid"));
        let mut edit = input(Vendor::Honor);
        edit.client_secret = None;
        assert_eq!(validate_certificate(&edit, false), Ok(()));
        assert_eq!(edit.into_certificate(2, Some("kept")).app_secret, "kept");
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = Box<dyn Fn(&mut CertificateInput)>;
        let cases: Vec<(Vendor, Mutation, &str)> = vec![
            (
                Vendor::Xiaomi,
                Box::new(|i| i.category = Some("IM".into())),
                "category",
            ),
            (
                Vendor::Xiaomi,
                Box::new(|i| i.client_id = Some("x".into())),
                "client_id",
            ),
            (
                Vendor::Huawei,
                Box::new(|i| i.category = Some("CHAT".into())),
                "category",
            ),
            (
                Vendor::Huawei,
                Box::new(|i| i.category = Some("PLAY_VOICE".into())),
                "category",
            ),
            (
                Vendor::Huawei,
                Box::new(|i| i.importance = Some("LOW".into())),
                "importance",
            ),
            (
                Vendor::Huawei,
                Box::new(|i| {
                    i.click_action = ClickAction::OpenUrl {
                        url: "http://e.x/a".into(),
                    }
                }),
                "click_action.url",
            ),
            (
                Vendor::Huawei,
                Box::new(|i| i.app_secret = None),
                "app_secret",
            ),
            (Vendor::Honor, Box::new(|i| i.client_id = None), "client_id"),
            (
                Vendor::Honor,
                Box::new(|i| i.client_id = Some("a b".into())),
                "client_id",
            ),
            (
                Vendor::Honor,
                Box::new(|i| i.client_secret = None),
                "client_secret",
            ),
            (
                Vendor::Honor,
                Box::new(|i| i.app_secret = Some("s".into())),
                "app_secret",
            ),
            (
                Vendor::Honor,
                Box::new(|i| i.importance = Some("HIGH".into())),
                "importance",
            ),
            (
                Vendor::Honor,
                Box::new(|i| i.channel_id = Some("c".into())),
                "channel_id",
            ),
            (
                Vendor::Honor,
                Box::new(|i| i.category = Some("IM".into())),
                "category",
            ),
        ];
        for (vendor, mutate, field) in cases {
            let mut i = input(vendor);
            mutate(&mut i);
            let err = validate_certificate(&i, true).expect_err(field);
            assert_eq!(err.field, field, "{vendor:?}: {err}");
        }
    }
}
