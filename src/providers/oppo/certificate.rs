//! An OPPO certificate (`domain::credentials::OppoCredentials`) as OPPO's requests use it: the
//! signing credentials, and the notification of a message with the message's OPPO fields over
//! the certificate's and `category` IM / `notify_level` 2 when neither sets them.

use std::collections::BTreeMap;

use super::wire::{
    OppoApp, OppoNotification, PrivateTemplate, DEFAULT_CATEGORY, DEFAULT_NOTIFY_LEVEL,
};
use crate::domain::credentials::{bad, OppoCredentials};
use crate::domain::validate::FieldError;
use crate::domain::vendor_fields::OvmPushFields;
use crate::domain::{Certificate, ClickAction};
use crate::providers::text::or_default;

/// The credentials to sign with, or the field that is wrong.
pub fn app(cert: &Certificate) -> Result<OppoApp, FieldError> {
    let c = cert.credentials.oppo().ok_or_else(|| {
        bad(
            "vendor",
            format!("a {:?} certificate has no OPPO credentials", cert.vendor()),
        )
    })?;
    if c.app_key.trim().is_empty() {
        return Err(bad("app_key", "the OPPO AppKey is required"));
    }
    if c.master_secret.trim().is_empty() {
        return Err(bad("master_secret", "the OPPO MasterSecret is required"));
    }
    Ok(OppoApp {
        app_key: c.app_key.clone(),
        master_secret: c.master_secret.clone(),
    })
}

/// The notification for a message; `c` is `None` only for another vendor's certificate (then
/// only the message's fields and the defaults count).
pub fn render(
    c: Option<&OppoCredentials>,
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
            .or_else(|| c.and_then(|c| c.channel_id.clone())),
        category: Some(
            fields
                .oppo_category
                .clone()
                .or_else(|| c.and_then(|c| c.category.clone()))
                .unwrap_or_else(|| DEFAULT_CATEGORY.to_owned()),
        ),
        notify_level: Some(
            c.and_then(|c| c.notify_level)
                .unwrap_or(DEFAULT_NOTIFY_LEVEL),
        ),
        click: click.clone(),
        ext: ext.map(str::to_owned),
        notify_id,
        private_template: private_template(c, fields, title, desc),
    }
}

/// The placeholder a template gets the notification's title in when the message fills none.
pub const TEMPLATE_TITLE_PARAMETER: &str = "title";
/// The placeholder a template gets the notification's body in when the message fills none.
pub const TEMPLATE_CONTENT_PARAMETER: &str = "content";

fn private_template(
    c: Option<&OppoCredentials>,
    fields: &OvmPushFields,
    title: &str,
    desc: &str,
) -> Option<PrivateTemplate> {
    let id = fields
        .oppo_private_msg_template_id
        .clone()
        .or_else(|| c.and_then(|c| c.private_msg_template_id.clone()))?;
    let or_text = |given: &Option<BTreeMap<String, String>>, key: &str, text: &str| {
        given
            .clone()
            .unwrap_or_else(|| BTreeMap::from([(key.to_owned(), or_default(text).to_owned())]))
    };
    Some(PrivateTemplate {
        id,
        title_parameters: or_text(
            &fields.oppo_private_title_parameters,
            TEMPLATE_TITLE_PARAMETER,
            title,
        ),
        content_parameters: or_text(
            &fields.oppo_private_content_parameters,
            TEMPLATE_CONTENT_PARAMETER,
            desc,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> OppoCredentials {
        OppoCredentials {
            app_key: "key".into(),
            master_secret: "master".into(),
            channel_id: None,
            category: None,
            notify_level: None,
            private_msg_template_id: None,
        }
    }

    #[test]
    fn chats_default_to_im_level_2_and_messages_override() {
        let n = render(
            Some(&creds()),
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
        let mut cert = creds();
        cert.category = Some("ORDER".into());
        cert.channel_id = Some("c1".into());
        let msg = OvmPushFields {
            oppo_category: Some("SUBSCRIPTION".into()),
            oppo_channel_id: Some("c2".into()),
            ..OvmPushFields::default()
        };
        let n = render(
            Some(&cert),
            &ClickAction::OpenApp,
            "t",
            "d",
            Some("{}"),
            &msg,
            1,
        );
        assert_eq!(n.category.as_deref(), Some("SUBSCRIPTION"));
        assert_eq!(n.channel_id.as_deref(), Some("c2"));
        assert_eq!(n.ext.as_deref(), Some("{}"));
    }

    #[test]
    fn a_template_comes_from_the_message_or_the_certificate() {
        let r = |c: &OppoCredentials, f: &OvmPushFields| {
            render(Some(c), &ClickAction::OpenApp, "Bob", "hi", None, f, 1).private_template
        };
        assert_eq!(r(&creds(), &OvmPushFields::default()), None);
        let mut cert = creds();
        cert.private_msg_template_id = Some("cert-tpl".into());
        let t = r(&cert, &OvmPushFields::default()).expect("template");
        assert_eq!(t.id, "cert-tpl");
        assert_eq!(
            t.title_parameters,
            BTreeMap::from([("title".into(), "Bob".into())])
        );
        assert_eq!(
            t.content_parameters,
            BTreeMap::from([("content".into(), "hi".into())])
        );
        let msg = OvmPushFields {
            oppo_private_msg_template_id: Some("msg-tpl".into()),
            oppo_private_title_parameters: Some(BTreeMap::from([("who".into(), "B".into())])),
            ..OvmPushFields::default()
        };
        let t = r(&cert, &msg).expect("template");
        assert_eq!(t.id, "msg-tpl");
        assert_eq!(
            t.title_parameters,
            BTreeMap::from([("who".into(), "B".into())])
        );
        assert_eq!(t.content_parameters["content"], "hi");
    }

    #[test]
    fn another_vendors_certificate_has_no_oppo_credentials() {
        let cert = Certificate::xiaomi_for_tests(1, "s", 1);
        assert_eq!(app(&cert).map_err(|e| e.field), Err("vendor"));
    }
}
