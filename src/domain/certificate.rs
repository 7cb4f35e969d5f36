//! A vendor push certificate, as an operator enters it in the console (seed 步骤2).

use serde::{Deserialize, Serialize};

/// Generated numeric certificate id; clients report it with their token (TIM `businessID`).
pub type CertificateId = u64;

/// What a tap on the notification does (seed: 点击通知后).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", from = "ClickActionFields")]
pub enum ClickAction {
    /// Open the app's launcher activity (Xiaomi `notify_effect=1`).
    OpenApp,
    /// Open a web page; the URL must be http or https (Xiaomi `notify_effect=3`).
    OpenUrl { url: String },
    /// Open an in-app page given as an Android intent URI (Xiaomi `notify_effect=2`).
    OpenActivity { intent_uri: String },
}

/// `ClickAction` as read. serde ignores unknown fields next to the tag of a unit variant even
/// with `deny_unknown_fields`, so `open_app` is read as a struct variant with no fields: then
/// `{"type":"open_app","url":"…"}` is refused as `open_url`'s extra fields are.
// The variants mirror `ClickAction`'s (their names are the wire tags).
#[allow(clippy::enum_variant_names)]
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClickActionFields {
    OpenApp {},
    OpenUrl { url: String },
    OpenActivity { intent_uri: String },
}

impl From<ClickActionFields> for ClickAction {
    fn from(f: ClickActionFields) -> ClickAction {
        match f {
            ClickActionFields::OpenApp {} => ClickAction::OpenApp,
            ClickActionFields::OpenUrl { url } => ClickAction::OpenUrl { url },
            ClickActionFields::OpenActivity { intent_uri } => {
                ClickAction::OpenActivity { intent_uri }
            }
        }
    }
}

/// The push services a certificate can belong to; only Xiaomi sends today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vendor {
    Xiaomi,
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
            .finish()
    }
}
