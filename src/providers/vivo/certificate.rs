//! vivo's part of a certificate (contract.md "More push services"): the credential fields
//! `app_id` (vivo's numeric AppId), `app_key` and `app_secret`, and `classification` (default 1)
//! and `category` (default IM). Validation names the field; the AppSecret is write-only.

use serde::{Deserialize, Serialize};

use super::wire::{
    VivoApp, VivoNotification, DEFAULT_CATEGORY, DEFAULT_CLASSIFICATION, OPERATIONAL_CATEGORIES,
    SYSTEM_CATEGORIES,
};
use crate::domain::validate::{CertificateInput, FieldError};
use crate::domain::vendor_fields::{
    check_one_of, check_zero_or_one, OvmPushFields, VIVO_CATEGORIES,
};
use crate::domain::{Certificate, ClickAction};
use crate::providers::oppo::certificate::check_token_like;

/// What an operator enters for vivo. On edit a missing `app_secret` keeps the stored one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VivoFields {
    pub app_id: String,
    pub app_key: String,
    #[serde(default)]
    pub app_secret: Option<String>,
    #[serde(default)]
    pub classification: Option<u8>,
    #[serde(default)]
    pub category: Option<String>,
}

impl std::fmt::Debug for VivoFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VivoFields")
            .field("app_id", &self.app_id)
            .field("app_key", &self.app_key)
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("classification", &self.classification)
            .field("category", &self.category)
            .finish()
    }
}

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

fn numeric_app_id(app_id: &str) -> Result<u64, FieldError> {
    app_id
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && app_id.len() <= 20)
        .ok_or_else(|| bad("app_id", "the vivo AppId is a positive number"))
}

/// A category must belong to its classification (system: IM, ACCOUNT, …; operational: NEWS, …).
fn check_category_matches(classification: u8, category: &str) -> Result<(), FieldError> {
    let allowed = if classification == 1 {
        SYSTEM_CATEGORIES
    } else {
        OPERATIONAL_CATEGORIES
    };
    if allowed.contains(&category) {
        Ok(())
    } else {
        Err(bad(
            "category",
            format!(
                "{category} does not belong to classification {classification} ({})",
                allowed.join(", ")
            ),
        ))
    }
}

impl VivoFields {
    pub fn from_input(input: &CertificateInput) -> VivoFields {
        VivoFields {
            app_id: input.app_id.clone(),
            app_key: input.app_key.clone().unwrap_or_default(),
            app_secret: input.app_secret.clone(),
            classification: input.classification,
            category: input.category.clone(),
        }
    }

    pub fn from_cert(cert: &Certificate) -> VivoFields {
        VivoFields {
            app_id: cert.app_id.clone(),
            app_key: cert.ovm.app_key.clone().unwrap_or_default(),
            app_secret: Some(cert.app_secret.clone()),
            classification: cert.ovm.classification,
            category: cert.ovm.category.clone(),
        }
    }

    /// Checks every field; `secret_required` is true on create.
    pub fn validate(&self, secret_required: bool) -> Result<(), FieldError> {
        numeric_app_id(&self.app_id)?;
        check_token_like("app_key", "vivo AppKey", &self.app_key)?;
        match &self.app_secret {
            None if secret_required => {
                return Err(bad("app_secret", "the vivo AppSecret is required"))
            }
            None => {}
            Some(s) => check_token_like("app_secret", "vivo AppSecret", s)?,
        }
        if let Some(c) = self.classification {
            check_zero_or_one("classification", c)?;
        }
        if let Some(c) = &self.category {
            check_one_of("category", c, VIVO_CATEGORIES)?;
            check_category_matches(self.classification.unwrap_or(DEFAULT_CLASSIFICATION), c)?;
        }
        Ok(())
    }

    /// The credentials to sign with, or the field that is missing.
    pub fn app(&self) -> Result<VivoApp, FieldError> {
        let app_secret = self.app_secret.clone().unwrap_or_default();
        check_token_like("app_secret", "vivo AppSecret", &app_secret)?;
        check_token_like("app_key", "vivo AppKey", &self.app_key)?;
        Ok(VivoApp {
            app_id: numeric_app_id(&self.app_id)?,
            app_key: self.app_key.clone(),
            app_secret,
        })
    }

    /// The notification for a message: the message's vivo fields override the certificate's;
    /// `classification` 1 and `category` IM when neither sets them. A category that does not
    /// belong to the classification in force is left out (vivo would refuse the message).
    pub fn render(
        &self,
        click: &ClickAction,
        title: &str,
        desc: &str,
        ext: Option<&str>,
        fields: &OvmPushFields,
        notify_id: i32,
    ) -> VivoNotification {
        let classification = fields
            .vivo_classification
            .or(self.classification)
            .unwrap_or(DEFAULT_CLASSIFICATION);
        let category = fields
            .vivo_category
            .clone()
            .or_else(|| self.category.clone())
            .unwrap_or_else(|| DEFAULT_CATEGORY.to_owned());
        let category = check_category_matches(classification, &category)
            .is_ok()
            .then_some(category);
        VivoNotification {
            title: title.to_owned(),
            content: desc.to_owned(),
            classification,
            category,
            click: click.clone(),
            ext: ext.map(str::to_owned),
            notify_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> VivoFields {
        VivoFields {
            app_id: "105562603".into(),
            app_key: "key".into(),
            app_secret: Some("secret".into()),
            classification: None,
            category: None,
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(fields().validate(true), Ok(()));
        type Mutation = Box<dyn Fn(&mut VivoFields)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|f| f.app_id = "abc".into()), "app_id"),
            (Box::new(|f| f.app_id = "0".into()), "app_id"),
            (Box::new(|f| f.app_key = "".into()), "app_key"),
            (Box::new(|f| f.app_secret = None), "app_secret"),
            (Box::new(|f| f.classification = Some(2)), "classification"),
            (Box::new(|f| f.category = Some("SPAM".into())), "category"),
            (
                Box::new(|f| f.category = Some("MARKETING".into())),
                "category",
            ),
        ];
        for (mutate, field) in cases {
            let mut f = fields();
            mutate(&mut f);
            assert_eq!(f.validate(true).map_err(|e| e.field), Err(field));
        }
        assert_eq!(fields().app().map(|a| a.app_id), Ok(105_562_603));
        assert!(!format!("{:?}", fields()).contains("secret\""));
    }

    #[test]
    fn chats_are_system_im_and_messages_override() {
        let n = fields().render(
            &ClickAction::OpenApp,
            "t",
            "d",
            None,
            &OvmPushFields::default(),
            1,
        );
        assert_eq!((n.classification, n.category.as_deref()), (1, Some("IM")));
        let msg = OvmPushFields {
            vivo_classification: Some(0),
            vivo_category: Some("NEWS".into()),
            ..OvmPushFields::default()
        };
        let n = fields().render(&ClickAction::OpenApp, "t", "d", None, &msg, 1);
        assert_eq!((n.classification, n.category.as_deref()), (0, Some("NEWS")));
        let msg = OvmPushFields {
            vivo_classification: Some(0),
            ..OvmPushFields::default()
        };
        let n = fields().render(&ClickAction::OpenApp, "t", "d", None, &msg, 1);
        assert_eq!(
            (n.classification, n.category),
            (0, None),
            "IM is not operational"
        );
    }
}
