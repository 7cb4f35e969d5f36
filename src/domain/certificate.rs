//! A vendor push certificate, as an operator enters it in the console (seed 步骤2).

use serde::{Deserialize, Serialize};

/// Generated numeric certificate id; clients report it with their token (TIM `businessID`).
pub type CertificateId = u64;

/// What a tap on the notification does (seed: 点击通知后).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClickAction {
    /// Open the app's launcher activity (Xiaomi `notify_effect=1`).
    OpenApp,
    /// Open a web page; the URL must be http or https (Xiaomi `notify_effect=3`).
    OpenUrl { url: String },
    /// Open an in-app page given as an Android intent URI (Xiaomi `notify_effect=2`).
    OpenActivity { intent_uri: String },
}

/// The push services a certificate can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vendor {
    Xiaomi,
    Honor,
    Huawei,
}

/// Fields only some vendors have (contract.md "More push services"); all empty for Xiaomi.
/// Stored flat beside the common fields, so records written before they existed load as is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VendorFields {
    /// Honor: the OAuth client id (`app_id` is the APP ID of the send URL; the client secret
    /// is kept in `app_secret`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Huawei: `android.category` of this certificate's notifications (`IM` by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Honor: `android.notification.importance` (`NORMAL` by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub importance: Option<String>,
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
    #[serde(flatten)]
    pub fields: VendorFields,
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
            .field("fields", &self.fields)
            .finish()
    }
}
