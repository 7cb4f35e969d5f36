//! A Meizu certificate (`domain::credentials::MeizuCredentials`) as Meizu's requests use it: the
//! signing credentials, and the notification of a message with the message's
//! `MeiZuNoticeMsgType` over the certificate's and private (1) when neither sets it.

use super::wire::{MeizuApp, MeizuNotification, DEFAULT_NOTICE_MSG_TYPE};
use crate::domain::credentials::{bad, MeizuCredentials};
use crate::domain::validate::FieldError;
use crate::domain::vendor_fields::OvmPushFields;
use crate::domain::{Certificate, ClickAction};

/// The credentials to sign with, or the field that is wrong.
pub fn app(cert: &Certificate) -> Result<MeizuApp, FieldError> {
    let c = cert.credentials.meizu().ok_or_else(|| {
        bad(
            "vendor",
            format!("a {:?} certificate has no Meizu credentials", cert.vendor()),
        )
    })?;
    if c.app_secret.trim().is_empty() {
        return Err(bad("app_secret", "the Meizu AppSecret is required"));
    }
    Ok(MeizuApp {
        app_id: c.app_id.clone(),
        app_secret: c.app_secret.clone(),
    })
}

/// The notification for a message; `c` is `None` only for another vendor's certificate.
pub fn render(
    c: Option<&MeizuCredentials>,
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
            .or_else(|| c.and_then(|c| c.notice_msg_type))
            .unwrap_or(DEFAULT_NOTICE_MSG_TYPE),
        click: click.clone(),
        ext: ext.map(str::to_owned),
        notify_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chats_are_private_unless_the_message_says_otherwise() {
        let creds = MeizuCredentials {
            app_id: "100999".into(),
            app_secret: "secret".into(),
            notice_msg_type: None,
        };
        let r = |msg: &OvmPushFields| {
            render(Some(&creds), &ClickAction::OpenApp, "t", "d", None, msg, 1).notice_msg_type
        };
        assert_eq!(r(&OvmPushFields::default()), 1);
        let public = OvmPushFields {
            meizu_notice_msg_type: Some(0),
            ..OvmPushFields::default()
        };
        assert_eq!(r(&public), 0);
        let xiaomi = Certificate::xiaomi_for_tests(1, "s", 1);
        assert_eq!(app(&xiaomi).map_err(|e| e.field), Err("vendor"));
    }
}
