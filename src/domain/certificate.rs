//! A vendor push certificate, as an operator enters it in the console (seed 步骤2).

use super::credentials::Credentials;
use super::receipt::ReceiptSecret;
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

/// The push services a certificate can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vendor {
    Xiaomi,
    Huawei,
    Honor,
    Oppo,
    Vivo,
    Meizu,
    /// Firebase Cloud Messaging HTTP v1.
    Fcm,
    /// Apple Push Notification service, token (.p8) auth.
    Apns,
}

/// A certificate as stored: the common part and the vendor's (credentials and settings),
/// flattened into one JSON record. Secrets never leave the process through an API or a log
/// (`Credentials`' `Debug` redacts them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub id: CertificateId,
    pub package_name: String,
    pub click_action: ClickAction,
    /// Vendor requests per second this certificate may spend (Xiaomi counts requests, not devices).
    pub qps: u32,
    #[serde(flatten)]
    pub credentials: Credentials,
    /// What the vendor's delivery receipts must carry back to be believed. Absent in records
    /// written before receipts existed; the gateway generates one when it loads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_secret: Option<ReceiptSecret>,
}

impl Certificate {
    pub fn vendor(&self) -> Vendor {
        self.credentials.vendor()
    }

    /// A Xiaomi certificate for unit tests (package com.example.chat, opens the app).
    #[cfg(test)]
    pub fn xiaomi_for_tests(id: CertificateId, app_secret: &str, qps: u32) -> Certificate {
        Certificate {
            id,
            package_name: "com.example.chat".into(),
            click_action: ClickAction::OpenApp,
            qps,
            credentials: Credentials::Xiaomi(super::credentials::XiaomiCredentials {
                app_id: "1".into(),
                app_secret: app_secret.into(),
                channel_id: None,
            }),
            receipt_secret: Some(ReceiptSecret::for_tests("receipt-secret-for-tests")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receipt_secret_is_stored_and_older_records_load_without_one() {
        let cert = Certificate::xiaomi_for_tests(1001, "s", 10);
        let stored = serde_json::to_value(&cert).unwrap_or_default();
        assert_eq!(stored["receipt_secret"], "receipt-secret-for-tests");
        let mut older = stored.clone();
        older.as_object_mut().map(|o| o.remove("receipt_secret"));
        let loaded: Certificate = serde_json::from_value(older).expect("an older record loads");
        assert_eq!(loaded.receipt_secret, None);
        assert!(!format!("{cert:?}").contains("receipt-secret-for-tests"));
    }
}
