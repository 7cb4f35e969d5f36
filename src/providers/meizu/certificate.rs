//! Meizu's part of a certificate (contract.md "More push services"): the credential fields
//! `app_id` and `app_secret`, and `notice_msg_type` (default 1, private). Validation names the
//! field; the AppSecret is write-only.

use serde::{Deserialize, Serialize};

use super::wire::{MeizuApp, MeizuNotification, DEFAULT_NOTICE_MSG_TYPE};
use crate::domain::validate::{CertificateInput, FieldError};
use crate::domain::vendor_fields::{check_zero_or_one, OvmPushFields};
use crate::domain::{Certificate, ClickAction};
use crate::providers::oppo::certificate::check_token_like;

/// What an operator enters for Meizu. On edit a missing `app_secret` keeps the stored one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeizuFields {
    pub app_id: String,
    #[serde(default)]
    pub app_secret: Option<String>,
    #[serde(default)]
    pub notice_msg_type: Option<u8>,
}

impl std::fmt::Debug for MeizuFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeizuFields")
            .field("app_id", &self.app_id)
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("notice_msg_type", &self.notice_msg_type)
            .finish()
    }
}

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

impl MeizuFields {
    pub fn from_input(input: &CertificateInput) -> MeizuFields {
        MeizuFields {
            app_id: input.app_id.clone(),
            app_secret: input.app_secret.clone(),
            notice_msg_type: input.notice_msg_type,
        }
    }

    pub fn from_cert(cert: &Certificate) -> MeizuFields {
        MeizuFields {
            app_id: cert.app_id.clone(),
            app_secret: Some(cert.app_secret.clone()),
            notice_msg_type: cert.ovm.notice_msg_type,
        }
    }

    /// Checks every field; `secret_required` is true on create.
    pub fn validate(&self, secret_required: bool) -> Result<(), FieldError> {
        if self.app_id.is_empty()
            || self.app_id.len() > 20
            || !self.app_id.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad("app_id", "the Meizu AppId is a number"));
        }
        match &self.app_secret {
            None if secret_required => {
                return Err(bad("app_secret", "the Meizu AppSecret is required"))
            }
            None => {}
            Some(s) => check_token_like("app_secret", "Meizu AppSecret", s)?,
        }
        if let Some(t) = self.notice_msg_type {
            check_zero_or_one("notice_msg_type", t)?;
        }
        Ok(())
    }

    /// The credentials to sign with, or the field that is missing.
    pub fn app(&self) -> Result<MeizuApp, FieldError> {
        let app_secret = self.app_secret.clone().unwrap_or_default();
        check_token_like("app_secret", "Meizu AppSecret", &app_secret)?;
        Ok(MeizuApp {
            app_id: self.app_id.clone(),
            app_secret,
        })
    }

    /// The notification for a message: the message's `MeiZuNoticeMsgType` overrides the
    /// certificate's; private (1) when neither sets it.
    pub fn render(
        &self,
        click: &ClickAction,
        title: &str,
        desc: &str,
        ext: Option<&str>,
        fields: &OvmPushFields,
        notify_id: i32,
    ) -> MeizuNotification {
        MeizuNotification {
            title: title.to_owned(),
            content: desc.to_owned(),
            notice_msg_type: fields
                .meizu_notice_msg_type
                .or(self.notice_msg_type)
                .unwrap_or(DEFAULT_NOTICE_MSG_TYPE),
            click: click.clone(),
            ext: ext.map(str::to_owned),
            notify_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> MeizuFields {
        MeizuFields {
            app_id: "100999".into(),
            app_secret: Some("secret".into()),
            notice_msg_type: None,
        }
    }

    #[test]
    fn each_bad_field_is_named_and_chats_are_private() {
        assert_eq!(fields().validate(true), Ok(()));
        let mut f = fields();
        f.app_id = "x1".into();
        assert_eq!(f.validate(true).map_err(|e| e.field), Err("app_id"));
        let mut f = fields();
        f.app_secret = None;
        assert_eq!(f.validate(true).map_err(|e| e.field), Err("app_secret"));
        assert_eq!(f.validate(false), Ok(()));
        let mut f = fields();
        f.notice_msg_type = Some(2);
        assert_eq!(
            f.validate(true).map_err(|e| e.field),
            Err("notice_msg_type")
        );
        let n = fields().render(
            &ClickAction::OpenApp,
            "t",
            "d",
            None,
            &OvmPushFields::default(),
            1,
        );
        assert_eq!(n.notice_msg_type, 1);
        let msg = OvmPushFields {
            meizu_notice_msg_type: Some(0),
            ..OvmPushFields::default()
        };
        assert_eq!(
            fields()
                .render(&ClickAction::OpenApp, "t", "d", None, &msg, 1)
                .notice_msg_type,
            0
        );
        assert!(!format!("{:?}", fields()).contains("secret\""));
    }
}
