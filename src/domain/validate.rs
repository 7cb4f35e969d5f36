//! Certificate field rules: what the console and the API refuse, naming the field.

use super::certificate::{ClickAction, Vendor};
use super::credentials::CredentialsInput;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::Deserialize;

/// One field is wrong; `field` is its dotted path in the request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

use super::credentials::bad;

/// The certificate fields an operator submits (create, or edit with secrets optional): the
/// common part and the vendor part, in one flat body.
#[derive(Debug, Clone)]
pub struct CertificateInput {
    pub package_name: String,
    pub click_action: ClickAction,
    pub qps: u32,
    pub credentials: CredentialsInput,
}

impl CertificateInput {
    pub fn vendor(&self) -> Vendor {
        self.credentials.vendor()
    }
}

/// The body is flat (`{"vendor":"xiaomi","package_name":…,"app_id":…}`); serde cannot flatten
/// a tagged enum and refuse unknown fields at once, so the common fields are taken out first
/// and the rest must be exactly the vendor's (each vendor's input refuses unknown fields).
impl<'de> Deserialize<'de> for CertificateInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        fn take<T: DeserializeOwned, E: de::Error>(
            map: &mut serde_json::Map<String, serde_json::Value>,
            key: &'static str,
        ) -> Result<T, E> {
            let v = map.remove(key).ok_or_else(|| E::missing_field(key))?;
            serde_json::from_value(v).map_err(|e| E::custom(format!("{key}: {e}")))
        }
        let package_name = take(&mut map, "package_name")?;
        let click_action = take(&mut map, "click_action")?;
        let qps = take(&mut map, "qps")?;
        if let Some(vendor) = map.get("vendor") {
            serde_json::from_value::<Vendor>(vendor.clone())
                .map_err(|e| de::Error::custom(format!("vendor: {e}")))?;
        }
        let credentials = serde_json::from_value(serde_json::Value::Object(map.clone()))
            .map_err(|e| de::Error::custom(name_the_member(&map, e)))?;
        Ok(CertificateInput {
            package_name,
            click_action,
            qps,
            credentials,
        })
    }
}

/// A type error inside a vendor's part comes out of serde's internally tagged enum without the
/// member's name ("invalid type: string \"x\", expected u8"). Unknown and missing members are
/// already named. The member at fault is the one whose removal changes the error: serde stops at
/// the first bad member it visits, and without it the error becomes another (or none).
fn name_the_member(
    map: &serde_json::Map<String, serde_json::Value>,
    error: serde_json::Error,
) -> String {
    let message = error.to_string();
    if message.starts_with("unknown field") || message.starts_with("missing field") {
        return message;
    }
    for key in map.keys().filter(|k| *k != "vendor") {
        let mut rest = map.clone();
        rest.remove(key);
        let without = serde_json::from_value::<CredentialsInput>(serde_json::Value::Object(rest));
        if without.err().is_none_or(|e| e.to_string() != message) {
            return format!("{key}: {message}");
        }
    }
    message
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

/// Checks every field; `creating` is true on create (secrets required).
pub fn validate_certificate(input: &CertificateInput, creating: bool) -> Result<(), FieldError> {
    match input.vendor() {
        // An iOS bundle id may carry '-', which Android package names may not.
        Vendor::Apns => super::credentials::validate_bundle_id(&input.package_name)?,
        _ => validate_package_name(&input.package_name)?,
    }
    input.credentials.validate(creating)?;
    validate_click_action(&input.click_action)?;
    input
        .credentials
        .validate_click_action(&input.click_action)?;
    if input.qps == 0 || input.qps > MAX_QPS {
        return Err(bad("qps", format!("qps must be between 1 and {MAX_QPS}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::credentials::XiaomiInput;

    fn input() -> CertificateInput {
        serde_json::from_value(serde_json::json!({
            "vendor": "xiaomi",
            "package_name": "com.example.chat",
            "app_id": "2882303761517",
            "app_secret": "c2VjcmV0c2VjcmV0c2VjcmV0==",
            "click_action": {"type": "open_app"},
            "channel_id": "101556",
            "qps": 500
        }))
        .unwrap()
    }

    fn xi(i: &mut CertificateInput) -> &mut XiaomiInput {
        match &mut i.credentials {
            CredentialsInput::Xiaomi(x) => x,
            other => panic!("a Xiaomi input, not {other:?}"),
        }
    }

    #[test]
    fn the_flat_body_parses_and_unknown_or_missing_fields_are_named() {
        let i = input();
        assert_eq!(i.vendor(), Vendor::Xiaomi);
        assert_eq!(i.qps, 500);
        let with = |k: &str, v: serde_json::Value| {
            let mut body = serde_json::json!({
                "vendor": "xiaomi", "package_name": "com.example.chat", "app_id": "1",
                "click_action": {"type": "open_app"}, "qps": 5
            });
            body[k] = v;
            serde_json::from_value::<CertificateInput>(body)
                .unwrap_err()
                .to_string()
        };
        assert!(with("color", "red".into()).contains("color"));
        assert!(with("vendor", "nokia".into()).contains("nokia"));
        assert!(with("qps", "fast".into()).contains("qps"));
        let missing = serde_json::from_value::<CertificateInput>(serde_json::json!({
            "vendor": "xiaomi", "package_name": "com.example.chat", "app_id": "1", "qps": 5
        }))
        .unwrap_err();
        assert!(missing.to_string().contains("click_action"), "{missing}");
    }

    /// contract.md: "Bad fields → 400 naming the field", including the tag and the members of
    /// the vendor's part, whose type errors serde reports without a name.
    #[test]
    fn a_bad_vendor_or_a_vendor_field_of_the_wrong_type_is_named() {
        let error = |body: serde_json::Value| {
            serde_json::from_value::<CertificateInput>(body)
                .unwrap_err()
                .to_string()
        };
        let common = |vendor: serde_json::Value, rest: serde_json::Value| {
            let mut body = serde_json::json!({
                "vendor": vendor, "package_name": "com.example.chat",
                "click_action": {"type": "open_app"}, "qps": 5
            });
            for (k, v) in rest.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        for vendor in [serde_json::json!("nokia"), serde_json::json!(5)] {
            let e = error(common(vendor, serde_json::json!({"app_id": "1"})));
            assert!(e.starts_with("vendor: "), "{e}");
        }
        let cases = [
            (
                "oppo",
                serde_json::json!({"app_key": "k", "master_secret": "m", "notify_level": "x"}),
                "notify_level",
            ),
            (
                "xiaomi",
                serde_json::json!({"app_id": 5, "app_secret": "s"}),
                "app_id",
            ),
            (
                "vivo",
                serde_json::json!({"app_id": "1", "app_key": "k", "app_secret": "s", "classification": "x"}),
                "classification",
            ),
            (
                "meizu",
                serde_json::json!({"app_id": "1", "app_secret": "s", "notice_msg_type": [1]}),
                "notice_msg_type",
            ),
        ];
        for (vendor, rest, field) in cases {
            let e = error(common(vendor.into(), rest));
            assert!(e.starts_with(&format!("{field}: ")), "{vendor}: {e}");
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
            (Box::new(|i| xi(i).app_id = "".into()), "app_id"),
            (Box::new(|i| xi(i).app_id = "12a".into()), "app_id"),
            (Box::new(|i| xi(i).app_secret = None), "app_secret"),
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
                Box::new(|i| xi(i).channel_id = Some("a b".into())),
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
        xi(&mut i).app_secret = None;
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
