//! A vendor push certificate, as an operator enters it in the console (seed 步骤2).

use super::credentials::Credentials;
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
    Huawei,
    Honor,
    Oppo,
    Vivo,
    Meizu,
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
        }
    }
}
