//! OPPO OPUSH: the AppKey and MasterSecret that sign the auth token (spec/vendors/oppo.md §2),
//! and the classification chats need since 2024 — `category` (IM when unset) with
//! `notify_level` (2 when unset) — or an older app's private-message `channel_id` (§4); and the
//! private-message template notifications use unless a message names its own.

use super::{bad, check_opt_token, check_secret, FieldError};
use crate::domain::vendor_fields::{
    check_one_of, check_oppo_template_id, OPPO_CATEGORIES, OPPO_NOTIFY_LEVELS,
};
use serde::{Deserialize, Serialize};

/// What a chat is sent as when neither the certificate nor the message says (contract.md).
pub const OPPO_DEFAULT_CATEGORY: &str = "IM";
pub const OPPO_DEFAULT_NOTIFY_LEVEL: u8 = 2;

/// As stored. `master_secret` never leaves the process through an API or a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OppoCredentials {
    pub app_key: String,
    pub master_secret: String,
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub notify_level: Option<u8>,
    /// `private_msg_template_id` of every notification (a message's own id wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_msg_template_id: Option<String>,
}

impl std::fmt::Debug for OppoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OppoCredentials")
            .field("app_key", &self.app_key)
            .field("master_secret", &"<redacted>")
            .field("channel_id", &self.channel_id)
            .field("category", &self.category)
            .field("notify_level", &self.notify_level)
            .field("private_msg_template_id", &self.private_msg_template_id)
            .finish()
    }
}

/// As an operator submits them; the MasterSecret may be left out of an edit to keep the stored one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OppoInput {
    pub app_key: String,
    #[serde(default)]
    pub master_secret: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub notify_level: Option<u8>,
    #[serde(default)]
    pub private_msg_template_id: Option<String>,
}

/// As the API shows them: whether a MasterSecret is set, never the secret; the classification
/// chats are sent with, the default when the certificate sets none.
#[derive(Debug, Clone, Serialize)]
pub struct OppoView {
    pub app_key: String,
    pub master_secret_set: bool,
    pub channel_id: Option<String>,
    pub category: Option<String>,
    pub notify_level: Option<u8>,
    pub private_msg_template_id: Option<String>,
}

impl OppoInput {
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        check_secret("app_key", "OPPO AppKey", Some(&self.app_key), true)?;
        check_secret(
            "master_secret",
            "OPPO MasterSecret",
            self.master_secret.as_deref(),
            creating,
        )?;
        check_opt_token("channel_id", "channel id", self.channel_id.as_deref(), 64)?;
        if let Some(c) = &self.category {
            check_one_of("category", c, OPPO_CATEGORIES)?;
        }
        if let Some(id) = &self.private_msg_template_id {
            check_oppo_template_id("private_msg_template_id", id)?;
        }
        match self.notify_level {
            Some(level) if !OPPO_NOTIFY_LEVELS.contains(&level) => {
                Err(bad("notify_level", "notify_level must be 1, 2 or 16"))
            }
            _ => Ok(()),
        }
    }

    /// The credentials to store; a MasterSecret left out keeps `old`'s.
    pub fn into_credentials(self, old: Option<&OppoCredentials>) -> OppoCredentials {
        OppoCredentials {
            master_secret: self
                .master_secret
                .or_else(|| old.map(|o| o.master_secret.clone()))
                .unwrap_or_default(),
            app_key: self.app_key,
            channel_id: self.channel_id,
            category: self.category,
            notify_level: self.notify_level,
            private_msg_template_id: self.private_msg_template_id,
        }
    }
}

impl From<&OppoCredentials> for OppoView {
    fn from(c: &OppoCredentials) -> Self {
        OppoView {
            app_key: c.app_key.clone(),
            master_secret_set: !c.master_secret.is_empty(),
            channel_id: c.channel_id.clone(),
            category: Some(
                c.category
                    .clone()
                    .unwrap_or_else(|| OPPO_DEFAULT_CATEGORY.to_owned()),
            ),
            notify_level: Some(c.notify_level.unwrap_or(OPPO_DEFAULT_NOTIFY_LEVEL)),
            private_msg_template_id: c.private_msg_template_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> OppoInput {
        OppoInput {
            app_key: "key".into(),
            master_secret: Some("master".into()),
            channel_id: None,
            category: None,
            notify_level: None,
            private_msg_template_id: None,
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(input().validate(true), Ok(()));
        type Mutation = Box<dyn Fn(&mut OppoInput)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|f| f.app_key = " ".into()), "app_key"),
            (Box::new(|f| f.master_secret = None), "master_secret"),
            (
                Box::new(|f| f.master_secret = Some("a b".into())),
                "master_secret",
            ),
            (Box::new(|f| f.category = Some("CHAT".into())), "category"),
            (Box::new(|f| f.notify_level = Some(3)), "notify_level"),
            (
                Box::new(|f| f.channel_id = Some("a b".into())),
                "channel_id",
            ),
            (
                Box::new(|f| f.private_msg_template_id = Some("".into())),
                "private_msg_template_id",
            ),
        ];
        for (mutate, field) in cases {
            let mut f = input();
            mutate(&mut f);
            assert_eq!(f.validate(true).map_err(|e| e.field), Err(field));
        }
    }

    #[test]
    fn an_edit_keeps_the_secret_and_nothing_shows_it() {
        let stored = input().into_credentials(None);
        let mut edit = input();
        edit.master_secret = None;
        assert_eq!(edit.validate(false), Ok(()));
        let kept = edit.into_credentials(Some(&stored));
        assert_eq!(kept.master_secret, "master");
        assert!(!format!("{kept:?}").contains("master\""));
        let view = serde_json::to_string(&OppoView::from(&kept)).expect("view");
        assert!(!view.contains("\"master\""), "{view}");
        assert!(view.contains("\"master_secret_set\":true"), "{view}");
    }
}
