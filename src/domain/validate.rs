//! Certificate field rules: what the console and the API refuse, naming the field.

use super::certificate::{Certificate, CertificateId, ClickAction, Vendor, VendorFields};
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
    pub app_id: String,
    #[serde(default)]
    pub app_secret: Option<String>,
    pub click_action: ClickAction,
    #[serde(default)]
    pub channel_id: Option<String>,
    pub qps: u32,
    /// Honor's OAuth client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Honor's OAuth client secret (stored where other vendors keep `app_secret`).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Huawei `android.category` for the certificate's notifications.
    #[serde(default)]
    pub category: Option<String>,
    /// Honor `importance` for the certificate's notifications.
    #[serde(default)]
    pub importance: Option<String>,
}

impl CertificateInput {
    /// The secret given, under whichever name the vendor uses for it.
    pub fn secret(&self) -> Option<&String> {
        self.app_secret.as_ref().or(self.client_secret.as_ref())
    }

    /// The certificate this input describes; `kept_secret` is the stored secret an edit
    /// without one keeps. Vendor defaults (Huawei category IM, Honor importance NORMAL) are
    /// filled in, so what is shown is what is sent.
    pub fn into_certificate(self, id: CertificateId, kept_secret: Option<&str>) -> Certificate {
        let app_secret = self
            .secret()
            .cloned()
            .or_else(|| kept_secret.map(str::to_owned))
            .unwrap_or_default();
        let fields = crate::providers::fields::with_defaults(
            self.vendor,
            VendorFields {
                client_id: self.client_id,
                category: self.category,
                importance: self.importance,
            },
        );
        Certificate {
            id,
            vendor: self.vendor,
            package_name: self.package_name,
            app_id: self.app_id,
            app_secret,
            click_action: self.click_action,
            channel_id: self.channel_id,
            qps: self.qps,
            fields,
        }
    }
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

/// Checks every field; `secret_required` is true on create.
pub fn validate_certificate(
    input: &CertificateInput,
    secret_required: bool,
) -> Result<(), FieldError> {
    validate_package_name(&input.package_name)?;
    if input.app_id.is_empty() {
        return Err(bad("app_id", "the AppID is required"));
    }
    if input.app_id.len() > 64 || !input.app_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad("app_id", "the AppID is a number of at most 64 digits"));
    }
    crate::providers::fields::check(input, secret_required)?;
    match &input.app_secret {
        None if secret_required && input.client_secret.is_none() => {
            return Err(bad("app_secret", "the AppSecret is required"))
        }
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
            client_id: None,
            client_secret: None,
            category: None,
            importance: None,
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
