//! Huawei Push Kit: the OAuth client id (= the app id of the send URL) and client secret of the
//! app in AppGallery Connect, the `android.category` chats are sent under and an optional
//! notification channel (contract.md "More push services"; spec/vendors/huawei.md §1–§3); and
//! the receipt settings of AppGallery Connect (§3 `receipt_id`, §6): the callback user name and
//! HMAC key that sign Huawei's `X-HUAWEI-CALLBACK-ID` header, write-only like the AppSecret.
//! Instead of the AppSecret a certificate may hold a service-account key file (§2.2): its key
//! signs the bearer JWT, and it is write-only too. `api_version` picks the send API: `v1`
//! (Android and HarmonyOS up to 4) or `v3` (HarmonyOS NEXT, 5 and later), which takes only the
//! service-account JWT (§1).

use super::{bad, check_opt_token, check_secret, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `android.category` a certificate sends under unless it says otherwise: `IM` is "service &
/// communication", not counted against the marketing cap (huawei.md §3, §6).
pub const HUAWEI_DEFAULT_CATEGORY: &str = "IM";

/// The categories Huawei accepts for self-classification (huawei.md §3).
pub const HUAWEI_CATEGORIES: [&str; 14] = [
    "IM",
    "VOIP",
    "SUBSCRIPTION",
    "TRAVEL",
    "HEALTH",
    "WORK",
    "ACCOUNT",
    "EXPRESS",
    "FINANCE",
    "DEVICE_REMINDER",
    "SYSTEM_REMINDER",
    "MAIL",
    "PLAY_VOICE",
    "MARKETING",
];

/// Whether `category` may classify a notification: one of Huawei's, except `PLAY_VOICE`
/// (data messages only).
pub fn is_notification_category(category: &str) -> bool {
    category != "PLAY_VOICE" && HUAWEI_CATEGORIES.contains(&category)
}

/// Which send API a certificate's notifications go through (huawei.md §1): v1/v2 reach only
/// Android (EMUI) and HarmonyOS up to 4, v3 only HarmonyOS NEXT (5 and later), with its own
/// body and JWT authentication only. A HarmonyOS NEXT app has tokens of its own, so the choice
/// is the certificate's: one certificate per app, as Tencent IM has one per platform.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HuaweiApi {
    #[default]
    V1,
    V3,
}

impl HuaweiApi {
    pub fn as_str(self) -> &'static str {
        match self {
            HuaweiApi::V1 => "v1",
            HuaweiApi::V3 => "v3",
        }
    }

    pub fn parse(text: &str) -> Option<HuaweiApi> {
        match text {
            "v1" => Some(HuaweiApi::V1),
            "v3" => Some(HuaweiApi::V3),
            _ => None,
        }
    }
}

const V3_NEEDS_ACCOUNT: &str = "the v3 API (HarmonyOS NEXT) authenticates only with a \
                                service-account JWT: give the service_account key file";

fn default_category() -> String {
    HUAWEI_DEFAULT_CATEGORY.to_owned()
}

/// As stored. `app_secret` never leaves the process through an API or a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HuaweiCredentials {
    /// The OAuth client id, also the `{clientid}` of the v1 send URL.
    pub app_id: String,
    /// The OAuth client secret; empty when the certificate signs with `service_account`.
    pub app_secret: String,
    /// The service-account key file (JSON object), when the certificate authenticates with a
    /// JWT instead of OAuth client credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<Value>,
    /// The send API; records from before v3 read as v1.
    #[serde(default)]
    pub api_version: HuaweiApi,
    /// `android.category` of this certificate's notifications.
    #[serde(default = "default_category")]
    pub category: String,
    /// `android.notification.channel_id`.
    #[serde(default)]
    pub channel_id: Option<String>,
    /// `android.receipt_id`: which receipt configuration of AppGallery Connect Huawei posts
    /// receipts by; absent, the app's default one.
    #[serde(default)]
    pub receipt_id: Option<String>,
    /// The receipt configuration's callback user name and HMAC key: receipts are believed only
    /// with an `X-HUAWEI-CALLBACK-ID` made from them. Both or neither.
    #[serde(default)]
    pub callback_user_name: Option<String>,
    #[serde(default)]
    pub callback_hmac_key: Option<String>,
}

impl HuaweiCredentials {
    /// What only the merged record can tell: an edit that leaves the secrets out keeps the
    /// stored ones, so v3 without a service account shows only here.
    pub fn check(&self) -> Result<(), FieldError> {
        if self.api_version == HuaweiApi::V3 && self.service_account.is_none() {
            return Err(bad("service_account", V3_NEEDS_ACCOUNT));
        }
        Ok(())
    }

    /// The callback user name and HMAC key, when both are set.
    pub fn callback_auth(&self) -> Option<(&str, &str)> {
        match (&self.callback_user_name, &self.callback_hmac_key) {
            (Some(u), Some(k)) if !u.is_empty() && !k.is_empty() => Some((u, k)),
            _ => None,
        }
    }
}

impl std::fmt::Debug for HuaweiCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HuaweiCredentials")
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field(
                "service_account",
                &self.service_account.as_ref().map(|_| "<redacted>"),
            )
            .field("api_version", &self.api_version)
            .field("category", &self.category)
            .field("channel_id", &self.channel_id)
            .field("receipt_id", &self.receipt_id)
            .field("callback_user_name", &redacted(&self.callback_user_name))
            .field("callback_hmac_key", &redacted(&self.callback_hmac_key))
            .finish()
    }
}

fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

/// As an operator submits them; the secrets may be left out of an edit to keep the stored ones.
/// `app_secret` and `service_account` replace each other: the one given is kept, the other
/// cleared.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuaweiInput {
    pub app_id: String,
    #[serde(default)]
    pub app_secret: Option<String>,
    #[serde(default)]
    pub service_account: Option<Value>,
    /// `"v1"` (left out) or `"v3"`.
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub receipt_id: Option<String>,
    /// Given together with `callback_hmac_key`, or both left out (kept); both `""` remove them.
    #[serde(default)]
    pub callback_user_name: Option<String>,
    #[serde(default)]
    pub callback_hmac_key: Option<String>,
}

impl std::fmt::Debug for HuaweiInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: bool| s.then_some("<redacted>");
        f.debug_struct("HuaweiInput")
            .field("app_id", &self.app_id)
            .field("app_secret", &hidden(self.app_secret.is_some()))
            .field("service_account", &hidden(self.service_account.is_some()))
            .field("api_version", &self.api_version)
            .field("category", &self.category)
            .field("channel_id", &self.channel_id)
            .field("receipt_id", &self.receipt_id)
            .field(
                "callback_user_name",
                &hidden(self.callback_user_name.is_some()),
            )
            .field(
                "callback_hmac_key",
                &hidden(self.callback_hmac_key.is_some()),
            )
            .finish()
    }
}

/// As the API shows them: whether a secret is set, never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct HuaweiView {
    pub app_id: String,
    pub app_secret_set: bool,
    /// Which service account signs, when one does: its ids and whether its key is set.
    pub service_account: Option<HuaweiAccountView>,
    pub api_version: HuaweiApi,
    pub category: String,
    pub channel_id: Option<String>,
    pub receipt_id: Option<String>,
    /// Whether receipts can be verified: the callback user name and HMAC key are both set.
    pub callback_user_name_set: bool,
    pub callback_hmac_key_set: bool,
}

/// A service-account key file as the API shows it: never the key.
#[derive(Debug, Clone, Serialize)]
pub struct HuaweiAccountView {
    pub project_id: Option<String>,
    pub key_id: Option<String>,
    pub sub_account: Option<String>,
    pub private_key_set: bool,
}

impl HuaweiInput {
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        if self.app_id.is_empty() {
            return Err(bad(
                "app_id",
                "the Huawei AppID (OAuth client id) is required",
            ));
        }
        if self.app_id.len() > 64 || !self.app_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad(
                "app_id",
                "the Huawei AppID (OAuth client id) is a number of at most 64 digits",
            ));
        }
        if self.api()? == HuaweiApi::V3 {
            if self.app_secret.is_some() {
                return Err(bad("app_secret", V3_NEEDS_ACCOUNT));
            }
            if creating && self.service_account.is_none() {
                return Err(bad("service_account", V3_NEEDS_ACCOUNT));
            }
        }
        match (&self.app_secret, &self.service_account) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "service_account",
                    "give either app_secret (OAuth) or service_account (a JWT signed by the \
                     service account's key), not both",
                ))
            }
            // Parsed by the sender's own parser (the RSA key included), so a key file that
            // passes here is one the sender can sign with.
            (None, Some(file)) => {
                crate::providers::huawei::ServiceAccount::from_json(file)?;
            }
            (secret, None) => check_secret(
                "app_secret",
                "Huawei AppSecret (OAuth client secret) or a service_account key file",
                secret.as_deref(),
                creating,
            )?,
        }
        if let Some(category) = &self.category {
            if !is_notification_category(category) {
                return Err(bad(
                    "category",
                    format!(
                        "'{category}' is not a Huawei notification category (IM, VOIP, \
                         SUBSCRIPTION, TRAVEL, HEALTH, WORK, ACCOUNT, EXPRESS, FINANCE, \
                         DEVICE_REMINDER, SYSTEM_REMINDER, MAIL, MARKETING)"
                    ),
                ));
            }
        }
        check_opt_token("channel_id", "channel id", self.channel_id.as_deref(), 64)?;
        check_opt_token("receipt_id", "receipt id", self.receipt_id.as_deref(), 64)?;
        self.validate_callback_auth()
    }

    /// The send API asked for; left out, v1.
    fn api(&self) -> Result<HuaweiApi, FieldError> {
        match self.api_version.as_deref() {
            None => Ok(HuaweiApi::V1),
            Some(text) => HuaweiApi::parse(text).ok_or_else(|| {
                bad(
                    "api_version",
                    "must be \"v1\" (Android and HarmonyOS up to 4) or \"v3\" (HarmonyOS \
                     NEXT, 5 and later)",
                )
            }),
        }
    }

    /// The callback user name and HMAC key come as a pair: both set, both `""` (removed) or both
    /// left out (kept), so a certificate never holds half of what verifies a receipt.
    fn validate_callback_auth(&self) -> Result<(), FieldError> {
        let user = self.callback_user_name.as_deref();
        let key = self.callback_hmac_key.as_deref();
        match (user, key) {
            (None, None) | (Some(""), Some("")) => Ok(()),
            (Some(_), None) | (Some(_), Some("")) => Err(bad(
                "callback_hmac_key",
                "give the receipt callback HMAC key together with its user name",
            )),
            (None, Some(_)) | (Some(""), Some(_)) => Err(bad(
                "callback_user_name",
                "give the receipt callback user name together with its HMAC key",
            )),
            (Some(_), Some(_)) => {
                check_secret(
                    "callback_user_name",
                    "receipt callback user name",
                    user,
                    false,
                )?;
                check_secret("callback_hmac_key", "receipt callback HMAC key", key, false)
            }
        }
    }

    /// The credentials to store; a secret left out keeps `old`'s, a category left out is `IM`.
    pub fn into_credentials(self, old: Option<&HuaweiCredentials>) -> HuaweiCredentials {
        // `validate` refused any other value.
        let api_version = self.api().unwrap_or_default();
        // `validate` made the callback pair all-or-nothing: given, it replaces (`""` removes).
        let (callback_user_name, callback_hmac_key) =
            match (self.callback_user_name, self.callback_hmac_key) {
                (Some(u), Some(k)) => (
                    Some(u).filter(|u| !u.is_empty()),
                    Some(k).filter(|k| !k.is_empty()),
                ),
                _ => (
                    old.and_then(|o| o.callback_user_name.clone()),
                    old.and_then(|o| o.callback_hmac_key.clone()),
                ),
            };
        // The one given replaces both; neither keeps both as they were.
        let (app_secret, service_account) = match (self.app_secret, self.service_account) {
            (_, Some(file)) => (String::new(), Some(file)),
            (Some(secret), None) => (secret, None),
            (None, None) => (
                old.map(|o| o.app_secret.clone()).unwrap_or_default(),
                old.and_then(|o| o.service_account.clone()),
            ),
        };
        HuaweiCredentials {
            api_version,
            app_secret,
            service_account,
            app_id: self.app_id,
            category: self.category.unwrap_or_else(default_category),
            channel_id: self.channel_id,
            receipt_id: self.receipt_id,
            callback_user_name,
            callback_hmac_key,
        }
    }
}

impl From<&HuaweiCredentials> for HuaweiView {
    fn from(c: &HuaweiCredentials) -> Self {
        let field =
            |file: &Value, name: &str| file.get(name).and_then(Value::as_str).map(str::to_owned);
        HuaweiView {
            app_id: c.app_id.clone(),
            app_secret_set: !c.app_secret.is_empty(),
            service_account: c.service_account.as_ref().map(|file| HuaweiAccountView {
                project_id: field(file, "project_id"),
                key_id: field(file, "key_id"),
                sub_account: field(file, "sub_account"),
                private_key_set: field(file, "private_key").is_some_and(|k| !k.trim().is_empty()),
            }),
            api_version: c.api_version,
            category: c.category.clone(),
            channel_id: c.channel_id.clone(),
            receipt_id: c.receipt_id.clone(),
            callback_user_name_set: c.callback_user_name.is_some(),
            callback_hmac_key_set: c.callback_hmac_key.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> HuaweiInput {
        HuaweiInput {
            app_id: "10086".into(),
            app_secret: Some("s3cret".into()),
            service_account: None,
            api_version: None,
            category: None,
            channel_id: None,
            receipt_id: Some("RCP1".into()),
            callback_user_name: Some("receipt-user".into()),
            callback_hmac_key: Some("receipt-hmac-key".into()),
        }
    }

    #[test]
    fn the_callback_pair_is_all_or_nothing_and_each_bad_field_is_named() {
        assert_eq!(input().validate(true), Ok(()));
        type Mutation = Box<dyn Fn(&mut HuaweiInput)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|i| i.callback_hmac_key = None),
                "callback_hmac_key",
            ),
            (
                Box::new(|i| i.callback_hmac_key = Some("".into())),
                "callback_hmac_key",
            ),
            (
                Box::new(|i| i.callback_user_name = None),
                "callback_user_name",
            ),
            (
                Box::new(|i| i.callback_user_name = Some("".into())),
                "callback_user_name",
            ),
            (
                Box::new(|i| i.callback_hmac_key = Some("has space".into())),
                "callback_hmac_key",
            ),
            (
                Box::new(|i| i.callback_user_name = Some("x".repeat(257))),
                "callback_user_name",
            ),
            (
                Box::new(|i| i.receipt_id = Some("a b".into())),
                "receipt_id",
            ),
        ];
        for (mutate, field) in cases {
            let mut i = input();
            mutate(&mut i);
            assert_eq!(i.validate(true).map_err(|e| e.field), Err(field));
        }
        let mut neither = input();
        neither.callback_user_name = None;
        neither.callback_hmac_key = None;
        assert_eq!(neither.validate(true), Ok(()));
        assert_eq!(neither.into_credentials(None).callback_auth(), None);
    }

    #[test]
    fn an_edit_keeps_removes_or_replaces_the_callback_pair() {
        let stored = input().into_credentials(None);
        assert_eq!(
            stored.callback_auth(),
            Some(("receipt-user", "receipt-hmac-key"))
        );
        let mut keep = input();
        keep.app_secret = None;
        keep.callback_user_name = None;
        keep.callback_hmac_key = None;
        assert_eq!(keep.validate(false), Ok(()));
        assert_eq!(keep.into_credentials(Some(&stored)), stored);

        let mut remove = input();
        remove.callback_user_name = Some(String::new());
        remove.callback_hmac_key = Some(String::new());
        assert_eq!(remove.validate(false), Ok(()));
        assert_eq!(remove.into_credentials(Some(&stored)).callback_auth(), None);

        let mut replace = input();
        replace.callback_hmac_key = Some("new-key".into());
        let replaced = replace.into_credentials(Some(&stored));
        assert_eq!(replaced.callback_auth(), Some(("receipt-user", "new-key")));
    }

    #[test]
    fn a_service_account_replaces_the_secret_and_is_never_shown() {
        let (file, _) =
            crate::providers::huawei::account::sample_key_file("736430079244623135", "kid-9")
                .expect("key file");
        let mut both = input();
        both.service_account = Some(file.clone());
        assert_eq!(
            both.validate(true).map_err(|e| e.field),
            Err("service_account")
        );
        let mut jwt = input();
        jwt.app_secret = None;
        jwt.service_account = Some(file.clone());
        assert_eq!(jwt.validate(true), Ok(()));
        let mut neither = input();
        neither.app_secret = None;
        assert_eq!(
            neither.validate(true).map_err(|e| e.field),
            Err("app_secret")
        );
        assert_eq!(neither.validate(false), Ok(()));
        let mut broken = jwt.clone();
        broken.service_account = Some(serde_json::json!({"project_id": "1", "key_id": "k"}));
        assert_eq!(
            broken.validate(true).map_err(|e| e.field),
            Err("service_account.sub_account")
        );

        // Switching to the key clears the secret; an edit without either keeps the key.
        let stored = jwt
            .clone()
            .into_credentials(Some(&input().into_credentials(None)));
        assert_eq!(stored.app_secret, "");
        assert_eq!(stored.service_account.as_ref(), Some(&file));
        assert_eq!(neither.clone().into_credentials(Some(&stored)), stored);
        let back = input().into_credentials(Some(&stored));
        assert_eq!(
            (back.app_secret.as_str(), back.service_account),
            ("s3cret", None)
        );

        let view = serde_json::to_string(&HuaweiView::from(&stored)).expect("view");
        assert!(view.contains("\"key_id\":\"kid-9\""), "{view}");
        assert!(view.contains("\"private_key_set\":true"), "{view}");
        assert!(!view.contains("PRIVATE KEY"), "{view}");
        assert!(!format!("{stored:?}").contains("PRIVATE KEY"));
        assert!(!format!("{jwt:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn v3_takes_only_a_service_account_and_is_shown() {
        let (file, _) =
            crate::providers::huawei::account::sample_key_file("736430079244623135", "kid-3")
                .expect("key file");
        let mut v3 = input();
        v3.api_version = Some("v3".into());
        assert_eq!(v3.validate(true).map_err(|e| e.field), Err("app_secret"));
        v3.app_secret = None;
        assert_eq!(
            v3.validate(true).map_err(|e| e.field),
            Err("service_account")
        );
        v3.service_account = Some(file);
        assert_eq!(v3.validate(true), Ok(()));
        let mut odd = input();
        odd.api_version = Some("v2".into());
        assert_eq!(odd.validate(true).map_err(|e| e.field), Err("api_version"));

        let stored = v3.clone().into_credentials(None);
        assert_eq!(stored.api_version, HuaweiApi::V3);
        assert_eq!(stored.check(), Ok(()));
        let view = serde_json::to_value(HuaweiView::from(&stored)).expect("view");
        assert_eq!(view["api_version"], "v3");
        // An edit to v3 that keeps an OAuth certificate's secret passes the input check but
        // not the merged one.
        let oauth = input().into_credentials(None);
        assert_eq!(oauth.api_version, HuaweiApi::V1);
        let mut to_v3 = input();
        to_v3.app_secret = None;
        to_v3.api_version = Some("v3".into());
        assert_eq!(to_v3.validate(false), Ok(()));
        assert_eq!(
            to_v3
                .into_credentials(Some(&oauth))
                .check()
                .map_err(|e| e.field),
            Err("service_account")
        );
        // Left out in an edit: back to v1.
        let mut edit = v3;
        edit.service_account = None;
        edit.api_version = None;
        assert_eq!(
            edit.into_credentials(Some(&stored)).api_version,
            HuaweiApi::V1
        );
    }

    #[test]
    fn the_callback_secrets_are_neither_shown_nor_logged() {
        let c = input().into_credentials(None);
        let view = serde_json::to_string(&HuaweiView::from(&c)).expect("view");
        let debug = format!("{c:?}");
        for secret in ["receipt-user", "receipt-hmac-key", "s3cret"] {
            assert!(!view.contains(secret), "{view}");
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(view.contains("\"callback_hmac_key_set\":true"), "{view}");
        assert!(view.contains("\"receipt_id\":\"RCP1\""), "{view}");
        // Stored, they read back the same; records from before receipts load without them.
        let stored = serde_json::to_value(&c).expect("json");
        assert_eq!(
            serde_json::from_value::<HuaweiCredentials>(stored).ok(),
            Some(c)
        );
        let older: HuaweiCredentials =
            serde_json::from_str(r#"{"app_id":"1","app_secret":"s"}"#).expect("older record");
        assert_eq!(older.callback_auth(), None);
    }
}
