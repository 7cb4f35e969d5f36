//! A vivo certificate (`domain::credentials::VivoCredentials`) as vivo's requests use it: the
//! signing credentials, and the notification of a message with the message's vivo fields over
//! the certificate's and `classification` 1 / `category` IM when neither sets them.

use super::wire::{VivoApp, VivoNotification, DEFAULT_CATEGORY, DEFAULT_CLASSIFICATION};
use crate::domain::credentials::{bad, vivo_app_id, VivoCredentials};
use crate::domain::validate::FieldError;
use crate::domain::vendor_fields::{vivo_category_fits, OvmPushFields};
use crate::domain::{Certificate, ClickAction};

/// The credentials to sign with, or the field that is wrong.
pub fn app(cert: &Certificate) -> Result<VivoApp, FieldError> {
    let c = cert.credentials.vivo().ok_or_else(|| {
        bad(
            "vendor",
            format!("a {:?} certificate has no vivo credentials", cert.vendor()),
        )
    })?;
    if c.app_key.trim().is_empty() {
        return Err(bad("app_key", "the vivo AppKey is required"));
    }
    if c.app_secret.trim().is_empty() {
        return Err(bad("app_secret", "the vivo AppSecret is required"));
    }
    Ok(VivoApp {
        app_id: vivo_app_id(&c.app_id)?,
        app_key: c.app_key.clone(),
        app_secret: c.app_secret.clone(),
    })
}

/// The notification for a message. A category that does not belong to the classification in
/// force is left out (vivo would refuse the message); `c` is `None` only for another vendor's
/// certificate.
pub fn render(
    c: Option<&VivoCredentials>,
    click: &ClickAction,
    title: &str,
    desc: &str,
    ext: Option<&str>,
    fields: &OvmPushFields,
    notify_id: i32,
) -> VivoNotification {
    let classification = fields
        .vivo_classification
        .or_else(|| c.and_then(|c| c.classification))
        .unwrap_or(DEFAULT_CLASSIFICATION);
    let category = fields
        .vivo_category
        .clone()
        .or_else(|| c.and_then(|c| c.category.clone()))
        .unwrap_or_else(|| DEFAULT_CATEGORY.to_owned());
    VivoNotification {
        title: title.to_owned(),
        content: desc.to_owned(),
        classification,
        category: vivo_category_fits(classification, &category).then_some(category),
        click: click.clone(),
        ext: ext.map(str::to_owned),
        notify_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> VivoCredentials {
        VivoCredentials {
            app_id: "105562603".into(),
            app_key: "key".into(),
            app_secret: "secret".into(),
            classification: None,
            category: None,
        }
    }

    fn cert(c: VivoCredentials) -> Certificate {
        let mut cert = Certificate::xiaomi_for_tests(1, "s", 1);
        cert.credentials = crate::domain::Credentials::Vivo(c);
        cert
    }

    #[test]
    fn credentials_come_from_a_vivo_certificate() {
        assert_eq!(app(&cert(creds())).map(|a| a.app_id), Ok(105_562_603));
        let mut bad_id = creds();
        bad_id.app_id = "x".into();
        assert_eq!(app(&cert(bad_id)).map_err(|e| e.field), Err("app_id"));
        let xiaomi = Certificate::xiaomi_for_tests(1, "s", 1);
        assert_eq!(app(&xiaomi).map_err(|e| e.field), Err("vendor"));
    }

    #[test]
    fn chats_are_system_im_and_messages_override() {
        let r = |msg: &OvmPushFields| {
            render(
                Some(&creds()),
                &ClickAction::OpenApp,
                "t",
                "d",
                None,
                msg,
                1,
            )
        };
        let n = r(&OvmPushFields::default());
        assert_eq!((n.classification, n.category.as_deref()), (1, Some("IM")));
        let n = r(&OvmPushFields {
            vivo_classification: Some(0),
            vivo_category: Some("NEWS".into()),
            ..OvmPushFields::default()
        });
        assert_eq!((n.classification, n.category.as_deref()), (0, Some("NEWS")));
        let n = r(&OvmPushFields {
            vivo_classification: Some(0),
            ..OvmPushFields::default()
        });
        assert_eq!(
            (n.classification, n.category),
            (0, None),
            "IM is not operational"
        );
    }
}
