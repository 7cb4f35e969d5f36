//! A vendor push certificate, as an operator enters it in the console (seed 步骤2).

use serde::{Deserialize, Serialize};

/// Generated numeric certificate id; clients report it with their token (TIM `businessID`).
pub type CertificateId = u64;

/// What a tap on the notification does (seed: 点击通知后).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClickAction {
    /// Open the app's launcher activity (Xiaomi `notify_effect=1`).
    #[default]
    OpenApp,
    /// Open a web page; the URL must be http or https (Xiaomi `notify_effect=3`).
    OpenUrl { url: String },
    /// Open an in-app page given as an Android intent URI (Xiaomi `notify_effect=2`).
    OpenActivity { intent_uri: String },
}

/// The push services a certificate can belong to; only Xiaomi sends today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vendor {
    Xiaomi,
    /// Firebase Cloud Messaging HTTP v1.
    Fcm,
    /// Apple Push Notification service, token (.p8) auth.
    Apns,
}

/// The credentials of vendors that do not use `app_id`/`app_secret` (contract.md "More push
/// services"). Write-only like `app_secret`: never returned by an API, never logged. Stored
/// with `#[serde(default)]`, so certificates written before it existed load as `None`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VendorCredentials {
    /// Xiaomi: `app_id` and `app_secret` are the credentials.
    #[default]
    None,
    /// The service-account JSON object as Google issues it.
    Fcm { service_account: serde_json::Value },
    /// A .p8 key: Key ID, Team ID, the PEM text, and `production` or `sandbox`.
    Apns {
        key_id: String,
        team_id: String,
        private_key: String,
        environment: String,
    },
}

/// The APNs fields of [`VendorCredentials::Apns`], borrowed.
#[derive(Clone, Copy)]
pub struct ApnsKeyFields<'a> {
    pub key_id: &'a str,
    pub team_id: &'a str,
    pub private_key: &'a str,
    pub environment: &'a str,
}

impl VendorCredentials {
    pub fn is_none(&self) -> bool {
        matches!(self, VendorCredentials::None)
    }

    pub fn fcm_service_account(&self) -> Option<&serde_json::Value> {
        match self {
            VendorCredentials::Fcm { service_account } => Some(service_account),
            _ => None,
        }
    }

    pub fn apns_key(&self) -> Option<ApnsKeyFields<'_>> {
        match self {
            VendorCredentials::Apns {
                key_id,
                team_id,
                private_key,
                environment,
            } => Some(ApnsKeyFields {
                key_id,
                team_id,
                private_key,
                environment,
            }),
            _ => None,
        }
    }
}

impl std::fmt::Debug for VendorCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VendorCredentials::None => f.write_str("None"),
            VendorCredentials::Fcm { .. } => f.write_str("Fcm { service_account: <redacted> }"),
            VendorCredentials::Apns {
                key_id,
                team_id,
                environment,
                ..
            } => f
                .debug_struct("Apns")
                .field("key_id", key_id)
                .field("team_id", team_id)
                .field("private_key", &"<redacted>")
                .field("environment", environment)
                .finish(),
        }
    }
}

/// A certificate as stored; `app_secret` never leaves the process through an API or a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub id: CertificateId,
    pub vendor: Vendor,
    pub package_name: String,
    pub app_id: String,
    pub app_secret: String,
    pub click_action: ClickAction,
    pub channel_id: Option<String>,
    /// Vendor requests per second this certificate may spend (Xiaomi counts requests, not devices).
    pub qps: u32,
    /// FCM's and APNs' credentials (Xiaomi's are `app_id`/`app_secret`).
    #[serde(default, skip_serializing_if = "VendorCredentials::is_none")]
    pub credentials: VendorCredentials,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("id", &self.id)
            .field("vendor", &self.vendor)
            .field("package_name", &self.package_name)
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("click_action", &self.click_action)
            .field("channel_id", &self.channel_id)
            .field("qps", &self.qps)
            .field("credentials", &self.credentials)
            .finish()
    }
}
