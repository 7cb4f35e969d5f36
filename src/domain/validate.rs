//! Certificate field rules: what the console and the API refuse, naming the field.

use super::certificate::{ClickAction, Vendor};
use serde::Deserialize;

/// One field is wrong; `field` is its dotted path in the request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// The certificate fields an operator submits (create, or edit with the secret optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateInput {
    pub vendor: Vendor,
    pub package_name: String,
    /// Xiaomi's AppID (FCM and APNs have none).
    #[serde(default)]
    pub app_id: String,
    #[serde(default)]
    pub app_secret: Option<String>,
    /// Open the app when absent (FCM and APNs open the app; Xiaomi forms always send one).
    #[serde(default)]
    pub click_action: ClickAction,
    #[serde(default)]
    pub channel_id: Option<String>,
    pub qps: u32,
    /// FCM: the service-account JSON object. On edit, absent keeps the stored one.
    #[serde(default)]
    pub service_account: Option<serde_json::Value>,
    /// APNs: the .p8 key's Key ID, the Team ID, the .p8 text, `production` or `sandbox`.
    /// On edit, an absent `private_key` keeps the stored one.
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub private_key: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
}

/// The largest QPS a certificate may ask for; Xiaomi's own per-app limits are far below it.
pub const MAX_QPS: u32 = 100_000;

pub fn validate_package_name(name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(bad("package_name", "the package name is required"));
    }
    if name.len() > 255 {
        return Err(bad(
            "package_name",
            "the package name is longer than 255 characters",
        ));
    }
    let parts: Vec<&str> = name.split('.').collect();
    let valid_part = |p: &&str| {
        let mut chars = p.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if parts.len() < 2 || !parts.iter().all(valid_part) {
        return Err(bad(
            "package_name",
            format!("'{name}' is not an Android package name such as com.example.chat"),
        ));
    }
    Ok(())
}

pub fn validate_click_action(action: &ClickAction) -> Result<(), FieldError> {
    match action {
        ClickAction::OpenApp => Ok(()),
        ClickAction::OpenUrl { url } => {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            match rest {
                Some(r)
                    if !r.is_empty()
                        && !r.starts_with('/')
                        && !url.chars().any(char::is_whitespace)
                        && url.len() <= 1024 =>
                {
                    Ok(())
                }
                _ => Err(bad(
                    "click_action.url",
                    "opening a web page needs an http:// or https:// URL with a host",
                )),
            }
        }
        ClickAction::OpenActivity { intent_uri } => {
            let ok = intent_uri.starts_with("intent:")
                && intent_uri.contains("#Intent;")
                && intent_uri.ends_with(";end")
                && intent_uri.len() <= 1024;
            if ok {
                Ok(())
            } else {
                Err(bad(
                    "click_action.intent_uri",
                    "opening an in-app page needs an Android intent URI such as intent://host/path#Intent;scheme=app;component=com.example.chat/.Detail;end",
                ))
            }
        }
    }
}

/// The FCM and APNs fields given to a Xiaomi certificate, or the Xiaomi fields given to an
/// FCM or APNs one: named, so a form mix-up is not silently ignored.
fn foreign_field(input: &CertificateInput) -> Option<&'static str> {
    let fcm = [("service_account", input.service_account.is_some())];
    let apns = [
        ("key_id", input.key_id.is_some()),
        ("team_id", input.team_id.is_some()),
        ("private_key", input.private_key.is_some()),
        ("environment", input.environment.is_some()),
    ];
    let xiaomi = [
        ("app_id", !input.app_id.is_empty()),
        ("app_secret", input.app_secret.is_some()),
    ];
    let given = |fields: &[(&'static str, bool)]| fields.iter().find(|f| f.1).map(|f| f.0);
    match input.vendor {
        Vendor::Xiaomi => given(&fcm).or_else(|| given(&apns)),
        Vendor::Fcm => given(&xiaomi).or_else(|| given(&apns)),
        Vendor::Apns => given(&xiaomi).or_else(|| given(&fcm)),
    }
}

/// Checks every field; `secret_required` is true on create. FCM's and APNs' credentials are
/// parsed by their providers (`stored` is the certificate being edited, whose secrets an edit
/// may leave out).
pub fn validate_certificate(
    input: &CertificateInput,
    secret_required: bool,
) -> Result<(), FieldError> {
    if let Some(field) = foreign_field(input) {
        return Err(bad(
            field,
            format!(
                "is not a field of a {} certificate",
                vendor_name(input.vendor)
            ),
        ));
    }
    if input.qps == 0 || input.qps > MAX_QPS {
        return Err(bad("qps", format!("qps must be between 1 and {MAX_QPS}")));
    }
    match input.vendor {
        Vendor::Xiaomi => {}
        Vendor::Fcm | Vendor::Apns => {
            if input.vendor == Vendor::Fcm {
                validate_package_name(&input.package_name)?;
            }
            if let Some(ch) = &input.channel_id {
                if ch.is_empty()
                    || ch.len() > 64
                    || ch.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(bad(
                        "channel_id",
                        "the channel id must be 1 to 64 characters without spaces",
                    ));
                }
            }
            return validate_click_action(&input.click_action);
        }
    }
    validate_package_name(&input.package_name)?;
    if input.app_id.is_empty() {
        return Err(bad("app_id", "the AppID is required"));
    }
    if input.app_id.len() > 64 || !input.app_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad(
            "app_id",
            "the Xiaomi AppID is a number of at most 64 digits",
        ));
    }
    match &input.app_secret {
        None if secret_required => return Err(bad("app_secret", "the AppSecret is required")),
        Some(s) if s.trim().is_empty() => {
            return Err(bad("app_secret", "the AppSecret is required"))
        }
        Some(s) if s.len() > 256 || s.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            return Err(bad(
                "app_secret",
                "the AppSecret must be at most 256 characters without spaces",
            ))
        }
        _ => {}
    }
    validate_click_action(&input.click_action)?;
    if let Some(ch) = &input.channel_id {
        if ch.is_empty() || ch.len() > 64 || ch.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad(
                "channel_id",
                "the channel id must be 1 to 64 characters without spaces",
            ));
        }
    }
    if input.qps == 0 || input.qps > MAX_QPS {
        return Err(bad("qps", format!("qps must be between 1 and {MAX_QPS}")));
    }
    Ok(())
}

fn vendor_name(v: Vendor) -> &'static str {
    match v {
        Vendor::Xiaomi => "xiaomi",
        Vendor::Fcm => "fcm",
        Vendor::Apns => "apns",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> CertificateInput {
        CertificateInput {
            vendor: Vendor::Xiaomi,
            package_name: "com.example.chat".into(),
            app_id: "2882303761517".into(),
            app_secret: Some("c2VjcmV0c2VjcmV0c2VjcmV0==".into()),
            click_action: ClickAction::OpenApp,
            channel_id: Some("101556".into()),
            qps: 500,
            service_account: None,
            key_id: None,
            team_id: None,
            private_key: None,
            environment: None,
        }
    }

    #[test]
    fn a_good_certificate_passes() {
        assert_eq!(validate_certificate(&input(), true), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = Box<dyn Fn(&mut CertificateInput)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|i| i.package_name = "chat".into()), "package_name"),
            (
                Box::new(|i| i.package_name = "com..x".into()),
                "package_name",
            ),
            (Box::new(|i| i.app_id = "".into()), "app_id"),
            (Box::new(|i| i.app_id = "12a".into()), "app_id"),
            (Box::new(|i| i.app_secret = None), "app_secret"),
            (
                Box::new(|i| {
                    i.click_action = ClickAction::OpenUrl {
                        url: "ftp://x".into(),
                    }
                }),
                "click_action.url",
            ),
            (
                Box::new(|i| {
                    i.click_action = ClickAction::OpenUrl {
                        url: "https://".into(),
                    }
                }),
                "click_action.url",
            ),
            (
                Box::new(|i| {
                    i.click_action = ClickAction::OpenActivity {
                        intent_uri: "com.example.Detail".into(),
                    }
                }),
                "click_action.intent_uri",
            ),
            (Box::new(|i| i.qps = 0), "qps"),
            (
                Box::new(|i| i.channel_id = Some("a b".into())),
                "channel_id",
            ),
        ];
        for (mutate, field) in cases {
            let mut i = input();
            mutate(&mut i);
            assert_eq!(validate_certificate(&i, true).unwrap_err().field, field);
        }
    }

    #[test]
    fn edit_may_omit_the_secret() {
        let mut i = input();
        i.app_secret = None;
        assert_eq!(validate_certificate(&i, false), Ok(()));
    }

    #[test]
    fn intent_and_url_forms() {
        assert!(validate_click_action(&ClickAction::OpenActivity {
            intent_uri: "intent://com.tencent.qcloud/detail#Intent;scheme=pushscheme;launchFlags=0x4000000;component=com.x/.A;end".into()
        })
        .is_ok());
        assert!(validate_click_action(&ClickAction::OpenUrl {
            url: "http://example.com/a?b=c".into()
        })
        .is_ok());
    }
}
