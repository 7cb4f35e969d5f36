//! Meizu Flyme Push: the AppId and AppSecret of the per-request MD5 signature
//! (spec/vendors/meizu.md §2), and `notice_msg_type` — 1, private, when unset: chats must not be
//! counted as public messages (§3).

use super::{bad, check_secret, FieldError};
use crate::domain::vendor_fields::check_zero_or_one;
use serde::{Deserialize, Serialize};

/// Private: what a chat is sent as when neither the certificate nor the message says.
pub const MEIZU_DEFAULT_NOTICE_MSG_TYPE: u8 = 1;

/// As stored. `app_secret` never leaves the process through an API or a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeizuCredentials {
    pub app_id: String,
    pub app_secret: String,
    #[serde(default)]
    pub notice_msg_type: Option<u8>,
}

impl std::fmt::Debug for MeizuCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeizuCredentials")
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("notice_msg_type", &self.notice_msg_type)
            .finish()
    }
}

/// As an operator submits them; the AppSecret may be left out of an edit to keep the stored one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeizuInput {
    pub app_id: String,
    #[serde(default)]
    pub app_secret: Option<String>,
    #[serde(default)]
    pub notice_msg_type: Option<u8>,
}

/// As the API shows them: whether an AppSecret is set, never the secret; the notice type chats
/// are sent with, the default when the certificate sets none.
#[derive(Debug, Clone, Serialize)]
pub struct MeizuView {
    pub app_id: String,
    pub app_secret_set: bool,
    pub notice_msg_type: Option<u8>,
}

impl MeizuInput {
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        if self.app_id.is_empty()
            || self.app_id.len() > 20
            || !self.app_id.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad("app_id", "the Meizu AppId is a number"));
        }
        check_secret(
            "app_secret",
            "Meizu AppSecret",
            self.app_secret.as_deref(),
            creating,
        )?;
        match self.notice_msg_type {
            Some(t) => check_zero_or_one("notice_msg_type", t),
            None => Ok(()),
        }
    }

    /// The credentials to store; an AppSecret left out keeps `old`'s.
    pub fn into_credentials(self, old: Option<&MeizuCredentials>) -> MeizuCredentials {
        MeizuCredentials {
            app_secret: self
                .app_secret
                .or_else(|| old.map(|o| o.app_secret.clone()))
                .unwrap_or_default(),
            app_id: self.app_id,
            notice_msg_type: self.notice_msg_type,
        }
    }
}

impl From<&MeizuCredentials> for MeizuView {
    fn from(c: &MeizuCredentials) -> Self {
        MeizuView {
            app_id: c.app_id.clone(),
            app_secret_set: !c.app_secret.is_empty(),
            notice_msg_type: Some(c.notice_msg_type.unwrap_or(MEIZU_DEFAULT_NOTICE_MSG_TYPE)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> MeizuInput {
        MeizuInput {
            app_id: "100999".into(),
            app_secret: Some("secret".into()),
            notice_msg_type: None,
        }
    }

    #[test]
    fn each_bad_field_is_named_and_an_edit_keeps_the_secret() {
        assert_eq!(input().validate(true), Ok(()));
        let mut f = input();
        f.app_id = "x1".into();
        assert_eq!(f.validate(true).map_err(|e| e.field), Err("app_id"));
        let mut f = input();
        f.notice_msg_type = Some(2);
        assert_eq!(
            f.validate(true).map_err(|e| e.field),
            Err("notice_msg_type")
        );
        let stored = input().into_credentials(None);
        let mut edit = input();
        edit.app_secret = None;
        assert_eq!(edit.validate(true).map_err(|e| e.field), Err("app_secret"));
        assert_eq!(edit.validate(false), Ok(()));
        let kept = edit.into_credentials(Some(&stored));
        assert_eq!(kept.app_secret, "secret");
        assert!(!format!("{kept:?}").contains("secret\""));
        let view = serde_json::to_string(&MeizuView::from(&kept)).expect("view");
        assert!(!view.contains("\"secret\""), "{view}");
    }
}
