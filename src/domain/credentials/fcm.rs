//! Firebase Cloud Messaging HTTP v1: the service-account JSON object as Google issues it (its
//! `private_key` signs the assertion exchanged at its `token_uri`) and the Android channel
//! notifications go to (spec/vendors/fcm.md §2; contract.md "More push services").

use super::{bad, check_opt_token, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// As stored. The service account (its `private_key`) never leaves the process through an API
/// or a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcmCredentials {
    pub service_account: Value,
    /// `android.notification.channel_id` unless a message names its own (`GoogleChannelID`).
    #[serde(default)]
    pub channel_id: Option<String>,
}

impl std::fmt::Debug for FcmCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmCredentials")
            .field("service_account", &"<redacted>")
            .field("channel_id", &self.channel_id)
            .finish()
    }
}

/// As an operator submits them; the service account may be left out of an edit to keep the
/// stored one.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmInput {
    #[serde(default)]
    pub service_account: Option<Value>,
    #[serde(default)]
    pub channel_id: Option<String>,
}

impl std::fmt::Debug for FcmInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmInput")
            .field(
                "service_account",
                &self.service_account.as_ref().map(|_| "<redacted>"),
            )
            .field("channel_id", &self.channel_id)
            .finish()
    }
}

/// As the API shows them: which account, whether its key is set, never the key.
#[derive(Debug, Clone, Serialize)]
pub struct FcmView {
    pub service_account: FcmAccountView,
    pub channel_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FcmAccountView {
    pub project_id: Option<String>,
    pub client_email: Option<String>,
    pub private_key_set: bool,
}

impl FcmInput {
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        match &self.service_account {
            None if creating => {
                return Err(bad(
                    "service_account",
                    "the service-account JSON object is required (Firebase console → Project settings → Service accounts)",
                ))
            }
            None => {}
            // Parsed by the sender's own parser (the RSA key included), so an account that
            // passes here is one the sender can sign with.
            Some(account) => {
                crate::providers::fcm::ServiceAccount::from_json(account)?;
            }
        }
        check_opt_token("channel_id", "channel id", self.channel_id.as_deref(), 64)
    }

    /// The credentials to store; a service account left out keeps `old`'s.
    pub fn into_credentials(self, old: Option<&FcmCredentials>) -> FcmCredentials {
        FcmCredentials {
            service_account: self
                .service_account
                .or_else(|| old.map(|o| o.service_account.clone()))
                .unwrap_or_default(),
            channel_id: self.channel_id,
        }
    }
}

impl From<&FcmCredentials> for FcmView {
    fn from(c: &FcmCredentials) -> Self {
        let field = |name: &str| {
            c.service_account
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        FcmView {
            service_account: FcmAccountView {
                project_id: field("project_id"),
                client_email: field("client_email"),
                private_key_set: field("private_key").is_some_and(|k| !k.trim().is_empty()),
            },
            channel_id: c.channel_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn account() -> Value {
        crate::providers::fcm::account::sample_account_json(
            "my-app-1234",
            "https://oauth2.googleapis.com/token",
        )
        .expect("sample account")
        .0
    }

    #[test]
    fn an_account_is_required_on_create_and_kept_on_edit() {
        let none = FcmInput {
            service_account: None,
            channel_id: None,
        };
        assert_eq!(none.validate(true).unwrap_err().field, "service_account");
        assert_eq!(none.validate(false), Ok(()));
        let old = FcmInput {
            service_account: Some(account()),
            channel_id: None,
        }
        .into_credentials(None);
        let kept = FcmInput {
            service_account: None,
            channel_id: Some("im".into()),
        }
        .into_credentials(Some(&old));
        assert_eq!(kept.service_account, old.service_account);
        assert_eq!(kept.channel_id.as_deref(), Some("im"));
    }

    #[test]
    fn a_bad_account_is_refused_naming_the_field() {
        let with = |k: &str, v: Value| {
            let mut a = account();
            a[k] = v;
            FcmInput {
                service_account: Some(a),
                channel_id: None,
            }
            .validate(true)
            .unwrap_err()
            .field
        };
        assert_eq!(
            with(
                "private_key",
                json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            ),
            "service_account.private_key"
        );
        assert_eq!(
            with("client_email", json!("nobody")),
            "service_account.client_email"
        );
        assert_eq!(
            with("project_id", json!("My App")),
            "service_account.project_id"
        );
        let channel = FcmInput {
            service_account: Some(account()),
            channel_id: Some("a b".into()),
        };
        assert_eq!(channel.validate(true).unwrap_err().field, "channel_id");
    }

    #[test]
    fn neither_view_nor_debug_shows_the_key() {
        let c = FcmInput {
            service_account: Some(account()),
            channel_id: None,
        }
        .into_credentials(None);
        let view = serde_json::to_string(&FcmView::from(&c)).expect("view");
        assert!(view.contains("my-app-1234") && view.contains("\"private_key_set\":true"));
        assert!(!view.contains("PRIVATE KEY"), "{view}");
        assert!(!format!("{c:?}").contains("PRIVATE KEY"));
    }
}
