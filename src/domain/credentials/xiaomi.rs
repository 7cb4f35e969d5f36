//! Xiaomi MiPush: the AppID and AppSecret of the app in Xiaomi's developer console, and the
//! private-message channel (spec/xiaomi-push-api.md; seed 步骤2).

use super::{bad, check_opt_token, check_secret, FieldError};
use serde::{Deserialize, Serialize};

/// As stored. `app_secret` never leaves the process through an API or a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XiaomiCredentials {
    pub app_id: String,
    pub app_secret: String,
    /// The 私信 channel chats go to, so they are not counted as public messages.
    #[serde(default)]
    pub channel_id: Option<String>,
}

impl std::fmt::Debug for XiaomiCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XiaomiCredentials")
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("channel_id", &self.channel_id)
            .finish()
    }
}

/// As an operator submits them; the secret may be left out of an edit to keep the stored one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XiaomiInput {
    pub app_id: String,
    #[serde(default)]
    pub app_secret: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
}

/// As the API shows them: whether a secret is set, never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct XiaomiView {
    pub app_id: String,
    pub app_secret_set: bool,
    pub channel_id: Option<String>,
}

impl XiaomiInput {
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        if self.app_id.is_empty() {
            return Err(bad("app_id", "the AppID is required"));
        }
        if self.app_id.len() > 64 || !self.app_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad(
                "app_id",
                "the Xiaomi AppID is a number of at most 64 digits",
            ));
        }
        check_secret(
            "app_secret",
            "AppSecret",
            self.app_secret.as_deref(),
            creating,
        )?;
        check_opt_token("channel_id", "channel id", self.channel_id.as_deref(), 64)
    }

    /// The credentials to store; a secret left out keeps `old`'s.
    pub fn into_credentials(self, old: Option<&XiaomiCredentials>) -> XiaomiCredentials {
        XiaomiCredentials {
            app_secret: self
                .app_secret
                .or_else(|| old.map(|o| o.app_secret.clone()))
                .unwrap_or_default(),
            app_id: self.app_id,
            channel_id: self.channel_id,
        }
    }
}

impl From<&XiaomiCredentials> for XiaomiView {
    fn from(c: &XiaomiCredentials) -> Self {
        XiaomiView {
            app_id: c.app_id.clone(),
            app_secret_set: !c.app_secret.is_empty(),
            channel_id: c.channel_id.clone(),
        }
    }
}
