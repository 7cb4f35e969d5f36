//! Honor Push: the numeric APP ID of the send URL and the OAuth client id and secret from
//! Honor's developer console, and the `importance` chats are sent with (contract.md "More push
//! services"; spec/vendors/honor.md §1–§3). Honor has no notification channels.

use super::{bad, check_secret, FieldError};
use serde::{Deserialize, Serialize};

/// `android.notification.importance` unless the certificate says otherwise: `NORMAL` is
/// "service & communication", not counted against the marketing cap (honor.md §3, §6).
pub const HONOR_DEFAULT_IMPORTANCE: &str = "NORMAL";

/// Whether `importance` is one Honor takes (honor.md §3).
pub fn is_honor_importance(importance: &str) -> bool {
    matches!(importance, "LOW" | "NORMAL")
}

fn default_importance() -> String {
    HONOR_DEFAULT_IMPORTANCE.to_owned()
}

/// As stored. `client_secret` never leaves the process through an API or a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HonorCredentials {
    /// The APP ID of `/api/v1/{appId}/sendMessage`.
    pub app_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// `android.notification.importance` of this certificate's notifications.
    #[serde(default = "default_importance")]
    pub importance: String,
}

impl std::fmt::Debug for HonorCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HonorCredentials")
            .field("app_id", &self.app_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("importance", &self.importance)
            .finish()
    }
}

/// As an operator submits them; the secret may be left out of an edit to keep the stored one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HonorInput {
    pub app_id: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub importance: Option<String>,
}

/// As the API shows them: whether a secret is set, never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct HonorView {
    pub app_id: String,
    pub client_id: String,
    pub client_secret_set: bool,
    pub importance: String,
}

impl HonorInput {
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        if self.app_id.is_empty() {
            return Err(bad("app_id", "the Honor APP ID is required"));
        }
        if self.app_id.len() > 64 || !self.app_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad(
                "app_id",
                "the Honor APP ID is a number of at most 64 digits",
            ));
        }
        let id = self.client_id.as_str();
        if id.trim().is_empty() {
            return Err(bad("client_id", "the Honor client id is required"));
        }
        if id.len() > 128 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                "client_id",
                "the Honor client id must be at most 128 characters without spaces",
            ));
        }
        check_secret(
            "client_secret",
            "Honor client secret",
            self.client_secret.as_deref(),
            creating,
        )?;
        match &self.importance {
            Some(i) if !is_honor_importance(i) => Err(bad(
                "importance",
                format!("'{i}' is not a Honor importance (LOW or NORMAL)"),
            )),
            _ => Ok(()),
        }
    }

    /// The credentials to store; a secret left out keeps `old`'s, importance left out is NORMAL.
    pub fn into_credentials(self, old: Option<&HonorCredentials>) -> HonorCredentials {
        HonorCredentials {
            client_secret: self
                .client_secret
                .or_else(|| old.map(|o| o.client_secret.clone()))
                .unwrap_or_default(),
            app_id: self.app_id,
            client_id: self.client_id,
            importance: self.importance.unwrap_or_else(default_importance),
        }
    }
}

impl From<&HonorCredentials> for HonorView {
    fn from(c: &HonorCredentials) -> Self {
        HonorView {
            app_id: c.app_id.clone(),
            client_id: c.client_id.clone(),
            client_secret_set: !c.client_secret.is_empty(),
            importance: c.importance.clone(),
        }
    }
}
