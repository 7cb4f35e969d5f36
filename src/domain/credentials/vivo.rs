//! vivo Push: the numeric AppId, AppKey and AppSecret that sign the `authToken`
//! (spec/vendors/vivo.md §2), and the classification chats need — `classification` 1 (system,
//! when unset) and `category` IM (when unset), a category of that classification (§3).

use super::{bad, check_secret, FieldError};
use crate::domain::vendor_fields::{
    check_one_of, check_zero_or_one, vivo_category_fits, VIVO_CATEGORIES,
};
use serde::{Deserialize, Serialize};

/// Chats are system messages (vivo's own default is 0, operational; Tencent's is 1).
pub const VIVO_DEFAULT_CLASSIFICATION: u8 = 1;
/// The category of a chat when neither the certificate nor the message says, if it belongs to
/// the classification (an operational classification has no IM).
pub const VIVO_DEFAULT_CATEGORY: &str = "IM";

/// As stored. `app_secret` never leaves the process through an API or a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VivoCredentials {
    pub app_id: String,
    pub app_key: String,
    pub app_secret: String,
    #[serde(default)]
    pub classification: Option<u8>,
    #[serde(default)]
    pub category: Option<String>,
}

impl std::fmt::Debug for VivoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VivoCredentials")
            .field("app_id", &self.app_id)
            .field("app_key", &self.app_key)
            .field("app_secret", &"<redacted>")
            .field("classification", &self.classification)
            .field("category", &self.category)
            .finish()
    }
}

/// As an operator submits them; the AppSecret may be left out of an edit to keep the stored one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VivoInput {
    pub app_id: String,
    pub app_key: String,
    #[serde(default)]
    pub app_secret: Option<String>,
    #[serde(default)]
    pub classification: Option<u8>,
    #[serde(default)]
    pub category: Option<String>,
}

/// As the API shows them: whether an AppSecret is set, never the secret; the classification
/// and category chats are sent with, the defaults when the certificate sets none.
#[derive(Debug, Clone, Serialize)]
pub struct VivoView {
    pub app_id: String,
    pub app_key: String,
    pub app_secret_set: bool,
    pub classification: Option<u8>,
    pub category: Option<String>,
}

/// vivo's AppId is a number (its auth body carries it as one, §2).
pub fn vivo_app_id(app_id: &str) -> Result<u64, FieldError> {
    app_id
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && app_id.len() <= 20)
        .ok_or_else(|| bad("app_id", "the vivo AppId is a positive number"))
}

impl VivoInput {
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        vivo_app_id(&self.app_id)?;
        check_secret("app_key", "vivo AppKey", Some(&self.app_key), true)?;
        check_secret(
            "app_secret",
            "vivo AppSecret",
            self.app_secret.as_deref(),
            creating,
        )?;
        if let Some(c) = self.classification {
            check_zero_or_one("classification", c)?;
        }
        if let Some(c) = &self.category {
            check_one_of("category", c, VIVO_CATEGORIES)?;
            let classification = self.classification.unwrap_or(VIVO_DEFAULT_CLASSIFICATION);
            if !vivo_category_fits(classification, c) {
                return Err(bad(
                    "category",
                    format!("{c} is not a category of classification {classification}"),
                ));
            }
        }
        Ok(())
    }

    /// The credentials to store; an AppSecret left out keeps `old`'s.
    pub fn into_credentials(self, old: Option<&VivoCredentials>) -> VivoCredentials {
        VivoCredentials {
            app_secret: self
                .app_secret
                .or_else(|| old.map(|o| o.app_secret.clone()))
                .unwrap_or_default(),
            app_id: self.app_id,
            app_key: self.app_key,
            classification: self.classification,
            category: self.category,
        }
    }
}

impl From<&VivoCredentials> for VivoView {
    fn from(c: &VivoCredentials) -> Self {
        let classification = c.classification.unwrap_or(VIVO_DEFAULT_CLASSIFICATION);
        VivoView {
            app_id: c.app_id.clone(),
            app_key: c.app_key.clone(),
            app_secret_set: !c.app_secret.is_empty(),
            classification: Some(classification),
            category: c.category.clone().or_else(|| {
                vivo_category_fits(classification, VIVO_DEFAULT_CATEGORY)
                    .then(|| VIVO_DEFAULT_CATEGORY.to_owned())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> VivoInput {
        VivoInput {
            app_id: "105562603".into(),
            app_key: "key".into(),
            app_secret: Some("secret".into()),
            classification: None,
            category: None,
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(input().validate(true), Ok(()));
        type Mutation = Box<dyn Fn(&mut VivoInput)>;
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
            let mut f = input();
            mutate(&mut f);
            assert_eq!(f.validate(true).map_err(|e| e.field), Err(field));
        }
        let mut operational = input();
        operational.classification = Some(0);
        operational.category = Some("NEWS".into());
        assert_eq!(operational.validate(true), Ok(()));
    }

    #[test]
    fn an_edit_keeps_the_secret_and_nothing_shows_it() {
        let stored = input().into_credentials(None);
        let mut edit = input();
        edit.app_secret = None;
        assert_eq!(edit.validate(false), Ok(()));
        let kept = edit.into_credentials(Some(&stored));
        assert_eq!(kept.app_secret, "secret");
        assert!(!format!("{kept:?}").contains("secret\""));
        let view = serde_json::to_string(&VivoView::from(&kept)).expect("view");
        assert!(!view.contains("\"secret\""), "{view}");
    }
}
