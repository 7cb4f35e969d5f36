//! Huawei Push Kit: the OAuth client id (= the app id of the send URL) and client secret of the
//! app in AppGallery Connect, the `android.category` chats are sent under and an optional
//! notification channel (contract.md "More push services"; spec/vendors/huawei.md §1–§3).

use super::{bad, check_opt_token, check_secret, FieldError};
use serde::{Deserialize, Serialize};

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

fn default_category() -> String {
    HUAWEI_DEFAULT_CATEGORY.to_owned()
}

/// As stored. `app_secret` never leaves the process through an API or a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HuaweiCredentials {
    /// The OAuth client id, also the `{clientid}` of the v1 send URL.
    pub app_id: String,
    /// The OAuth client secret.
    pub app_secret: String,
    /// `android.category` of this certificate's notifications.
    #[serde(default = "default_category")]
    pub category: String,
    /// `android.notification.channel_id`.
    #[serde(default)]
    pub channel_id: Option<String>,
}

impl std::fmt::Debug for HuaweiCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HuaweiCredentials")
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("category", &self.category)
            .field("channel_id", &self.channel_id)
            .finish()
    }
}

/// As an operator submits them; the secret may be left out of an edit to keep the stored one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuaweiInput {
    pub app_id: String,
    #[serde(default)]
    pub app_secret: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
}

/// As the API shows them: whether a secret is set, never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct HuaweiView {
    pub app_id: String,
    pub app_secret_set: bool,
    pub category: String,
    pub channel_id: Option<String>,
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
        check_secret(
            "app_secret",
            "Huawei AppSecret (OAuth client secret)",
            self.app_secret.as_deref(),
            creating,
        )?;
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
        check_opt_token("channel_id", "channel id", self.channel_id.as_deref(), 64)
    }

    /// The credentials to store; a secret left out keeps `old`'s, a category left out is `IM`.
    pub fn into_credentials(self, old: Option<&HuaweiCredentials>) -> HuaweiCredentials {
        HuaweiCredentials {
            app_secret: self
                .app_secret
                .or_else(|| old.map(|o| o.app_secret.clone()))
                .unwrap_or_default(),
            app_id: self.app_id,
            category: self.category.unwrap_or_else(default_category),
            channel_id: self.channel_id,
        }
    }
}

impl From<&HuaweiCredentials> for HuaweiView {
    fn from(c: &HuaweiCredentials) -> Self {
        HuaweiView {
            app_id: c.app_id.clone(),
            app_secret_set: !c.app_secret.is_empty(),
            category: c.category.clone(),
            channel_id: c.channel_id.clone(),
        }
    }
}
