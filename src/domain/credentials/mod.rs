//! A certificate's vendor part: the credentials and vendor settings of one push service, tagged
//! by `vendor`. Stored records and API bodies stay flat JSON (`{"vendor":"xiaomi","app_id":…}`):
//! the enum is flattened into `Certificate`.
//!
//! Adding a vendor: a file here with its stored, input and view structs (secrets redacted in
//! `Debug`, never in a view), one arm in each enum below and in their `match`es.

mod apns;
mod fcm;
mod honor;
mod huawei;
mod meizu;
mod oppo;
mod vivo;
mod xiaomi;

pub use super::validate::FieldError;
pub use apns::{validate_bundle_id, ApnsCredentials, ApnsInput, ApnsView};
pub use fcm::{FcmAccountView, FcmCredentials, FcmInput, FcmView};
pub use honor::{
    is_honor_importance, HonorCredentials, HonorInput, HonorView, HONOR_DEFAULT_IMPORTANCE,
};
pub use huawei::{
    is_notification_category as is_huawei_category, HuaweiApi, HuaweiCredentials, HuaweiInput,
    HuaweiView, HUAWEI_CATEGORIES, HUAWEI_DEFAULT_CATEGORY,
};
pub use meizu::{MeizuCredentials, MeizuInput, MeizuView, MEIZU_DEFAULT_NOTICE_MSG_TYPE};
pub use oppo::{
    OppoCredentials, OppoInput, OppoView, OPPO_DEFAULT_CATEGORY, OPPO_DEFAULT_NOTIFY_LEVEL,
};
pub use vivo::{
    vivo_app_id, VivoCredentials, VivoInput, VivoView, VIVO_DEFAULT_CATEGORY,
    VIVO_DEFAULT_CLASSIFICATION,
};
pub use xiaomi::{XiaomiCredentials, XiaomiInput, XiaomiView};

use super::certificate::{ClickAction, Vendor};
use serde::{Deserialize, Serialize};

/// As stored; secrets included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "vendor", rename_all = "snake_case")]
pub enum Credentials {
    Xiaomi(XiaomiCredentials),
    Huawei(HuaweiCredentials),
    Honor(HonorCredentials),
    Oppo(OppoCredentials),
    Vivo(VivoCredentials),
    Meizu(MeizuCredentials),
    Fcm(FcmCredentials),
    Apns(ApnsCredentials),
}

/// As an operator submits them (create, or edit with secrets optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "vendor", rename_all = "snake_case")]
pub enum CredentialsInput {
    Xiaomi(XiaomiInput),
    Huawei(HuaweiInput),
    Honor(HonorInput),
    Oppo(OppoInput),
    Vivo(VivoInput),
    Meizu(MeizuInput),
    Fcm(FcmInput),
    Apns(ApnsInput),
}

/// As the API shows them: no secret, only whether it is set.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "vendor", rename_all = "snake_case")]
pub enum CredentialsView {
    Xiaomi(XiaomiView),
    Huawei(HuaweiView),
    Honor(HonorView),
    Oppo(OppoView),
    Vivo(VivoView),
    Meizu(MeizuView),
    Fcm(FcmView),
    Apns(ApnsView),
}

impl Credentials {
    pub fn vendor(&self) -> Vendor {
        match self {
            Credentials::Xiaomi(_) => Vendor::Xiaomi,
            Credentials::Huawei(_) => Vendor::Huawei,
            Credentials::Honor(_) => Vendor::Honor,
            Credentials::Oppo(_) => Vendor::Oppo,
            Credentials::Vivo(_) => Vendor::Vivo,
            Credentials::Meizu(_) => Vendor::Meizu,
            Credentials::Fcm(_) => Vendor::Fcm,
            Credentials::Apns(_) => Vendor::Apns,
        }
    }

    pub fn view(&self) -> CredentialsView {
        match self {
            Credentials::Xiaomi(c) => CredentialsView::Xiaomi(c.into()),
            Credentials::Huawei(c) => CredentialsView::Huawei(c.into()),
            Credentials::Honor(c) => CredentialsView::Honor(c.into()),
            Credentials::Oppo(c) => CredentialsView::Oppo(c.into()),
            Credentials::Vivo(c) => CredentialsView::Vivo(c.into()),
            Credentials::Meizu(c) => CredentialsView::Meizu(c.into()),
            Credentials::Fcm(c) => CredentialsView::Fcm(c.into()),
            Credentials::Apns(c) => CredentialsView::Apns(c.into()),
        }
    }

    /// Xiaomi's part, if this is a Xiaomi certificate.
    pub fn xiaomi(&self) -> Option<&XiaomiCredentials> {
        match self {
            Credentials::Xiaomi(c) => Some(c),
            _ => None,
        }
    }

    /// The checks only a merged record allows (an edit keeps the secrets it leaves out).
    pub fn check(&self) -> Result<(), FieldError> {
        match self {
            Credentials::Huawei(c) => c.check(),
            _ => Ok(()),
        }
    }

    /// Huawei's part, if this is a Huawei certificate.
    pub fn huawei(&self) -> Option<&HuaweiCredentials> {
        match self {
            Credentials::Huawei(c) => Some(c),
            _ => None,
        }
    }

    /// Honor's part, if this is a Honor certificate.
    pub fn honor(&self) -> Option<&HonorCredentials> {
        match self {
            Credentials::Honor(c) => Some(c),
            _ => None,
        }
    }

    pub fn oppo(&self) -> Option<&OppoCredentials> {
        match self {
            Credentials::Oppo(c) => Some(c),
            _ => None,
        }
    }

    pub fn vivo(&self) -> Option<&VivoCredentials> {
        match self {
            Credentials::Vivo(c) => Some(c),
            _ => None,
        }
    }

    pub fn meizu(&self) -> Option<&MeizuCredentials> {
        match self {
            Credentials::Meizu(c) => Some(c),
            _ => None,
        }
    }

    /// FCM's part, if this is an FCM certificate.
    pub fn fcm(&self) -> Option<&FcmCredentials> {
        match self {
            Credentials::Fcm(c) => Some(c),
            _ => None,
        }
    }

    /// APNs' part, if this is an APNs certificate.
    pub fn apns(&self) -> Option<&ApnsCredentials> {
        match self {
            Credentials::Apns(c) => Some(c),
            _ => None,
        }
    }
}

impl CredentialsInput {
    pub fn vendor(&self) -> Vendor {
        match self {
            CredentialsInput::Xiaomi(_) => Vendor::Xiaomi,
            CredentialsInput::Huawei(_) => Vendor::Huawei,
            CredentialsInput::Honor(_) => Vendor::Honor,
            CredentialsInput::Oppo(_) => Vendor::Oppo,
            CredentialsInput::Vivo(_) => Vendor::Vivo,
            CredentialsInput::Meizu(_) => Vendor::Meizu,
            CredentialsInput::Fcm(_) => Vendor::Fcm,
            CredentialsInput::Apns(_) => Vendor::Apns,
        }
    }

    /// Checks every field, naming the culprit; secrets are required when `creating` (a new
    /// certificate, or an edit that changes the vendor).
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        match self {
            CredentialsInput::Xiaomi(i) => i.validate(creating),
            CredentialsInput::Huawei(i) => i.validate(creating),
            CredentialsInput::Honor(i) => i.validate(creating),
            CredentialsInput::Oppo(i) => i.validate(creating),
            CredentialsInput::Vivo(i) => i.validate(creating),
            CredentialsInput::Meizu(i) => i.validate(creating),
            CredentialsInput::Fcm(i) => i.validate(creating),
            CredentialsInput::Apns(i) => i.validate(creating),
        }
    }

    /// What the vendor's notifications can open: Huawei and Honor open only https pages
    /// (huawei.md §3 `click_action.type` 2; honor.md §3).
    pub fn validate_click_action(&self, click: &ClickAction) -> Result<(), FieldError> {
        let vendor = match self {
            CredentialsInput::Huawei(_) => "Huawei",
            CredentialsInput::Honor(_) => "Honor",
            _ => return Ok(()),
        };
        match click {
            ClickAction::OpenUrl { url } if !url.starts_with("https://") => Err(bad(
                "click_action.url",
                format!("{vendor} opens only https:// pages"),
            )),
            _ => Ok(()),
        }
    }

    /// The credentials to store: a secret left out of an edit keeps `old`'s (same vendor only;
    /// `validate(true)` refuses a vendor change without secrets).
    pub fn into_credentials(self, old: Option<&Credentials>) -> Credentials {
        match self {
            CredentialsInput::Xiaomi(i) => {
                Credentials::Xiaomi(i.into_credentials(old.and_then(Credentials::xiaomi)))
            }
            CredentialsInput::Huawei(i) => {
                Credentials::Huawei(i.into_credentials(old.and_then(Credentials::huawei)))
            }
            CredentialsInput::Honor(i) => {
                Credentials::Honor(i.into_credentials(old.and_then(Credentials::honor)))
            }
            CredentialsInput::Oppo(i) => {
                Credentials::Oppo(i.into_credentials(old.and_then(Credentials::oppo)))
            }
            CredentialsInput::Vivo(i) => {
                Credentials::Vivo(i.into_credentials(old.and_then(Credentials::vivo)))
            }
            CredentialsInput::Meizu(i) => {
                Credentials::Meizu(i.into_credentials(old.and_then(Credentials::meizu)))
            }
            CredentialsInput::Fcm(i) => {
                Credentials::Fcm(i.into_credentials(old.and_then(Credentials::fcm)))
            }
            CredentialsInput::Apns(i) => {
                Credentials::Apns(i.into_credentials(old.and_then(Credentials::apns)))
            }
        }
    }
}

pub(crate) fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// A secret: required when creating, never blank, at most 256 characters without spaces.
pub(crate) fn check_secret(
    field: &'static str,
    name: &str,
    value: Option<&str>,
    creating: bool,
) -> Result<(), FieldError> {
    match value {
        None if creating => Err(bad(field, format!("the {name} is required"))),
        Some(s) if s.trim().is_empty() => Err(bad(field, format!("the {name} is required"))),
        Some(s) if s.len() > 256 || s.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(bad(
                field,
                format!("the {name} must be at most 256 characters without spaces"),
            ))
        }
        _ => Ok(()),
    }
}

/// An optional identifier-like setting (a channel id): 1 to `max` characters without spaces.
pub(crate) fn check_opt_token(
    field: &'static str,
    name: &str,
    value: Option<&str>,
    max: usize,
) -> Result<(), FieldError> {
    match value {
        Some(v)
            if v.is_empty()
                || v.len() > max
                || v.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Err(bad(
                field,
                format!("the {name} must be 1 to {max} characters without spaces"),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::{validate_certificate, CertificateInput};
    use super::*;
    use serde_json::{json, Value};

    fn body(vendor: &str) -> Value {
        let mut b = json!({
            "vendor": vendor, "package_name": "com.example.chat",
            "click_action": {"type": "open_app"}, "qps": 100, "app_id": "10086"
        });
        match vendor {
            "huawei" => b["app_secret"] = "s3cret/+=".into(),
            "honor" => {
                b["client_id"] = "cid-1".into();
                b["client_secret"] = "h0n0rpass".into();
            }
            _ => b["app_secret"] = "s3cret".into(),
        }
        b
    }

    fn input(b: Value) -> CertificateInput {
        serde_json::from_value(b).expect("a certificate body")
    }

    #[test]
    fn huawei_and_honor_bodies_parse_validate_and_get_chat_defaults() {
        for v in ["huawei", "honor"] {
            let i = input(body(v));
            assert_eq!(validate_certificate(&i, true), Ok(()), "{v}");
        }
        let hw = input(body("huawei")).credentials.into_credentials(None);
        assert_eq!(hw.huawei().map(|h| h.category.as_str()), Some("IM"));
        let ho = input(body("honor")).credentials.into_credentials(None);
        let h = ho.honor().expect("honor");
        assert_eq!(
            (h.importance.as_str(), h.client_secret.as_str()),
            ("NORMAL", "h0n0rpass")
        );
        // Stored flat, tagged by vendor, and read back the same.
        let stored = serde_json::to_value(&ho).expect("json");
        assert_eq!(stored["vendor"], "honor");
        assert_eq!(stored["client_id"], "cid-1");
        assert_eq!(serde_json::from_value::<Credentials>(stored).ok(), Some(ho));
    }

    #[test]
    fn secrets_are_neither_shown_nor_logged() {
        for v in ["huawei", "honor"] {
            let c = input(body(v)).credentials.into_credentials(None);
            let view = serde_json::to_string(&c.view()).expect("json");
            let debug = format!("{c:?}");
            for secret in ["s3cret", "h0n0rpass"] {
                assert!(!view.contains(secret), "{v} view: {view}");
                assert!(!debug.contains(secret), "{v} debug: {debug}");
            }
            assert!(view.contains("_secret_set\":true"), "{view}");
        }
    }

    #[test]
    fn an_edit_without_the_secret_keeps_the_stored_one() {
        for (v, key) in [("huawei", "app_secret"), ("honor", "client_secret")] {
            let old = input(body(v)).credentials.into_credentials(None);
            let mut edit = body(v);
            edit.as_object_mut().map(|o| o.remove(key));
            let i = input(edit);
            assert_eq!(validate_certificate(&i, false), Ok(()));
            assert_eq!(
                validate_certificate(&i, true).map_err(|e| e.field),
                Err(key)
            );
            assert_eq!(i.credentials.into_credentials(Some(&old)), old, "{v}");
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(&str, &str, Value, &str)> = vec![
            ("huawei", "app_id", "".into(), "app_id"),
            ("huawei", "app_id", "12a".into(), "app_id"),
            ("huawei", "app_secret", " ".into(), "app_secret"),
            ("huawei", "category", "CHAT".into(), "category"),
            ("huawei", "category", "PLAY_VOICE".into(), "category"),
            ("huawei", "channel_id", "a b".into(), "channel_id"),
            (
                "huawei",
                "click_action",
                json!({"type": "open_url", "url": "http://e.x/a"}),
                "click_action.url",
            ),
            ("honor", "app_id", "x".into(), "app_id"),
            ("honor", "client_id", "".into(), "client_id"),
            ("honor", "client_id", "a b".into(), "client_id"),
            ("honor", "client_secret", "".into(), "client_secret"),
            ("honor", "importance", "HIGH".into(), "importance"),
            (
                "honor",
                "click_action",
                json!({"type": "open_url", "url": "http://e.x/a"}),
                "click_action.url",
            ),
        ];
        for (vendor, key, value, field) in cases {
            let mut b = body(vendor);
            b[key] = value;
            let err = validate_certificate(&input(b), true).expect_err(field);
            assert_eq!(err.field, field, "{vendor}: {err}");
        }
    }

    #[test]
    fn another_vendors_field_is_refused_by_name() {
        for (vendor, key) in [
            ("huawei", "client_id"),
            ("huawei", "importance"),
            ("honor", "app_secret"),
            ("honor", "category"),
            ("honor", "channel_id"),
            ("xiaomi", "category"),
        ] {
            let mut b = body(vendor);
            b[key] = "x".into();
            let err = serde_json::from_value::<CertificateInput>(b).expect_err(key);
            assert!(err.to_string().contains(key), "{vendor}/{key}: {err}");
        }
    }
}
