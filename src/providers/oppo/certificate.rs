//! OPPO's part of a certificate (contract.md "More push services"): the credential fields
//! `app_key` and `master_secret`, and `channel_id`, `category` (default IM) and `notify_level`
//! (default 2). Validation names the field; the MasterSecret is write-only.

use serde::{Deserialize, Serialize};

use super::wire::{OppoApp, OppoNotification, DEFAULT_CATEGORY, DEFAULT_NOTIFY_LEVEL};
use crate::domain::validate::{CertificateInput, FieldError};
use crate::domain::vendor_fields::{
    check_one_of, OvmPushFields, OPPO_CATEGORIES, OPPO_NOTIFY_LEVELS,
};
use crate::domain::{Certificate, ClickAction};

/// What an operator enters for OPPO. On edit a missing `master_secret` keeps the stored one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OppoFields {
    pub app_key: String,
    #[serde(default)]
    pub master_secret: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub notify_level: Option<u8>,
}

impl std::fmt::Debug for OppoFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OppoFields")
            .field("app_key", &self.app_key)
            .field(
                "master_secret",
                &self.master_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("channel_id", &self.channel_id)
            .field("category", &self.category)
            .field("notify_level", &self.notify_level)
            .finish()
    }
}

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// A key or secret: 1–256 visible characters without spaces.
pub(crate) fn check_token_like(field: &'static str, what: &str, v: &str) -> Result<(), FieldError> {
    if v.trim().is_empty() {
        return Err(bad(field, format!("the {what} is required")));
    }
    if v.len() > 256 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            field,
            format!("the {what} must be at most 256 characters without spaces"),
        ));
    }
    Ok(())
}

impl OppoFields {
    pub fn from_input(input: &CertificateInput) -> OppoFields {
        OppoFields {
            app_key: input.app_key.clone().unwrap_or_default(),
            master_secret: input.master_secret.clone(),
            channel_id: input.channel_id.clone(),
            category: input.category.clone(),
            notify_level: input.notify_level,
        }
    }

    pub fn from_cert(cert: &Certificate) -> OppoFields {
        OppoFields {
            app_key: cert.ovm.app_key.clone().unwrap_or_default(),
            master_secret: cert.ovm.master_secret.clone(),
            channel_id: cert.channel_id.clone(),
            category: cert.ovm.category.clone(),
            notify_level: cert.ovm.notify_level,
        }
    }

    /// Checks every field; `secret_required` is true on create.
    pub fn validate(&self, secret_required: bool) -> Result<(), FieldError> {
        check_token_like("app_key", "OPPO AppKey", &self.app_key)?;
        match &self.master_secret {
            None if secret_required => {
                return Err(bad("master_secret", "the OPPO MasterSecret is required"))
            }
            None => {}
            Some(s) => check_token_like("master_secret", "OPPO MasterSecret", s)?,
        }
        if let Some(ch) = &self.channel_id {
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
        if let Some(c) = &self.category {
            check_one_of("category", c, OPPO_CATEGORIES)?;
        }
        if let Some(level) = self.notify_level {
            if !OPPO_NOTIFY_LEVELS.contains(&level) {
                return Err(bad("notify_level", "notify_level must be 1, 2 or 16"));
            }
            if self.category.as_deref() == Some("") {
                return Err(bad("notify_level", "notify_level needs a category"));
            }
        }
        Ok(())
    }

    /// The credentials to sign with, or the field that is missing.
    pub fn app(&self) -> Result<OppoApp, FieldError> {
        let secret = self.master_secret.clone().unwrap_or_default();
        check_token_like("app_key", "OPPO AppKey", &self.app_key)?;
        check_token_like("master_secret", "OPPO MasterSecret", &secret)?;
        Ok(OppoApp {
            app_key: self.app_key.clone(),
            master_secret: secret,
        })
    }

    /// The notification for a message: the message's OPPO fields override the certificate's;
    /// `category` IM and `notify_level` 2 when neither sets them.
    pub fn render(
        &self,
        click: &ClickAction,
        title: &str,
        desc: &str,
        ext: Option<&str>,
        fields: &OvmPushFields,
        notify_id: i32,
    ) -> OppoNotification {
        OppoNotification {
            title: title.to_owned(),
            content: desc.to_owned(),
            channel_id: fields
                .oppo_channel_id
                .clone()
                .or_else(|| self.channel_id.clone()),
            category: Some(
                fields
                    .oppo_category
                    .clone()
                    .or_else(|| self.category.clone())
                    .unwrap_or_else(|| DEFAULT_CATEGORY.to_owned()),
            ),
            notify_level: Some(self.notify_level.unwrap_or(DEFAULT_NOTIFY_LEVEL)),
            click: click.clone(),
            ext: ext.map(str::to_owned),
            notify_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> OppoFields {
        OppoFields {
            app_key: "key".into(),
            master_secret: Some("master".into()),
            channel_id: None,
            category: None,
            notify_level: None,
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(fields().validate(true), Ok(()));
        type Mutation = Box<dyn Fn(&mut OppoFields)>;
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
        ];
        for (mutate, field) in cases {
            let mut f = fields();
            mutate(&mut f);
            assert_eq!(f.validate(true).map_err(|e| e.field), Err(field));
        }
        let mut edit = fields();
        edit.master_secret = None;
        assert_eq!(edit.validate(false), Ok(()));
        assert!(!format!("{:?}", fields()).contains("master\""));
    }

    #[test]
    fn chats_default_to_im_level_2_and_messages_override() {
        let n = fields().render(
            &ClickAction::OpenApp,
            "t",
            "d",
            None,
            &OvmPushFields::default(),
            1,
        );
        assert_eq!(
            (n.category.as_deref(), n.notify_level),
            (Some("IM"), Some(2))
        );
        let mut cert = fields();
        cert.category = Some("ORDER".into());
        cert.channel_id = Some("c1".into());
        let msg = OvmPushFields {
            oppo_category: Some("SUBSCRIPTION".into()),
            oppo_channel_id: Some("c2".into()),
            ..OvmPushFields::default()
        };
        let n = cert.render(&ClickAction::OpenApp, "t", "d", Some("{}"), &msg, 1);
        assert_eq!(n.category.as_deref(), Some("SUBSCRIPTION"));
        assert_eq!(n.channel_id.as_deref(), Some("c2"));
        assert_eq!(n.ext.as_deref(), Some("{}"));
    }
}
