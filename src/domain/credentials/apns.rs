//! Apple Push Notification service, token auth: the .p8 key (PEM text), its Key ID, the Team ID
//! and the environment its device tokens belong to (spec/vendors/apns.md §2; contract.md "More
//! push services"). The certificate's `package_name` is the app's bundle id (`apns-topic`).

use super::{bad, FieldError};
use serde::{Deserialize, Serialize};

/// As stored. `private_key` never leaves the process through an API or a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApnsCredentials {
    pub key_id: String,
    pub team_id: String,
    pub private_key: String,
    /// `production` or `sandbox`: a sandbox token sent to production is `BadDeviceToken`.
    pub environment: String,
}

impl std::fmt::Debug for ApnsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsCredentials")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("private_key", &"<redacted>")
            .field("environment", &self.environment)
            .finish()
    }
}

/// As an operator submits them; the key may be left out of an edit to keep the stored one.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsInput {
    pub key_id: String,
    pub team_id: String,
    #[serde(default)]
    pub private_key: Option<String>,
    pub environment: String,
}

impl std::fmt::Debug for ApnsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsInput")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("environment", &self.environment)
            .finish()
    }
}

/// As the API shows them: whether a key is set, never the key.
#[derive(Debug, Clone, Serialize)]
pub struct ApnsView {
    pub key_id: String,
    pub team_id: String,
    pub environment: String,
    pub private_key_set: bool,
}

/// A bundle id (the `package_name` of an APNs certificate): letters, digits, '.' and '-'.
pub fn validate_bundle_id(name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(bad("package_name", "the bundle id is required"));
    }
    if !crate::providers::apns::key::valid_bundle_id(name) {
        return Err(bad(
            "package_name",
            format!("'{name}' is not an iOS bundle id such as com.example.chat (letters, digits, '.', '-')"),
        ));
    }
    Ok(())
}

impl ApnsInput {
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        if creating && self.private_key.is_none() {
            return Err(bad(
                "private_key",
                "the .p8 key is required (the text of the AuthKey_<KeyID>.p8 file)",
            ));
        }
        // Checked by the sender's own parser (the P-256 key included), so a key that passes
        // here is one the sender can sign with.
        crate::providers::apns::key::check_fields(
            &self.key_id,
            &self.team_id,
            self.private_key.as_deref(),
            &self.environment,
        )
        .map_err(|e| FieldError {
            field: e.field,
            message: e.message,
        })
    }

    /// The credentials to store; a key left out keeps `old`'s.
    pub fn into_credentials(self, old: Option<&ApnsCredentials>) -> ApnsCredentials {
        ApnsCredentials {
            private_key: self
                .private_key
                .or_else(|| old.map(|o| o.private_key.clone()))
                .unwrap_or_default(),
            key_id: self.key_id.trim().to_owned(),
            team_id: self.team_id.trim().to_owned(),
            environment: self.environment.trim().to_owned(),
        }
    }
}

impl From<&ApnsCredentials> for ApnsView {
    fn from(c: &ApnsCredentials) -> Self {
        ApnsView {
            key_id: c.key_id.clone(),
            team_id: c.team_id.clone(),
            environment: c.environment.clone(),
            private_key_set: !c.private_key.trim().is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ApnsInput {
        ApnsInput {
            key_id: "ABC123DEFG".into(),
            team_id: "DEF123GHIJ".into(),
            private_key: Some(crate::providers::apns::key::sample_key_pem().expect("key")),
            environment: "sandbox".into(),
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = Box<dyn Fn(&mut ApnsInput)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|i| i.key_id = "short".into()), "key_id"),
            (Box::new(|i| i.team_id = "DEF-23GHIJ".into()), "team_id"),
            (
                Box::new(|i| i.environment = "staging".into()),
                "environment",
            ),
            (Box::new(|i| i.private_key = Some("".into())), "private_key"),
            (
                Box::new(|i| {
                    i.private_key =
                        Some("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----".into())
                }),
                "private_key",
            ),
            (Box::new(|i| i.private_key = None), "private_key"),
        ];
        assert_eq!(input().validate(true), Ok(()));
        for (mutate, field) in cases {
            let mut i = input();
            mutate(&mut i);
            assert_eq!(i.validate(true).unwrap_err().field, field);
        }
        assert_eq!(validate_bundle_id("com.example.my-app"), Ok(()));
        assert_eq!(
            validate_bundle_id("com example").unwrap_err().field,
            "package_name"
        );
    }

    #[test]
    fn an_edit_may_omit_the_key_and_keeps_it() {
        let old = input().into_credentials(None);
        let mut edit = input();
        edit.private_key = None;
        edit.environment = "production".into();
        assert_eq!(edit.validate(false), Ok(()));
        edit.key_id = "bad".into();
        assert_eq!(edit.validate(false).unwrap_err().field, "key_id");
        edit.key_id = "ABC123DEFG".into();
        let kept = edit.into_credentials(Some(&old));
        assert_eq!(kept.private_key, old.private_key);
        assert_eq!(kept.environment, "production");
    }

    #[test]
    fn neither_view_nor_debug_shows_the_key() {
        let c = input().into_credentials(None);
        let view = serde_json::to_string(&ApnsView::from(&c)).expect("view");
        assert!(view.contains("\"private_key_set\":true"));
        assert!(!view.contains("PRIVATE KEY"));
        assert!(!format!("{c:?}").contains("PRIVATE KEY"));
        assert!(!format!("{:?}", input()).contains("PRIVATE KEY"));
    }
}
