//! `pushgate serve --sandbox`: every vendor emulator runs inside the gateway's process and each
//! vendor client sends to its emulator, so a newcomer sees the whole flow on one machine without
//! vendor credentials. Every certificate created is registered with its vendor's emulator as an
//! app; every device token is valid unless marked invalid over the emulator's control API.
//! (OPPO, vivo and Meizu: `providers::ovm_sandbox`.)
//!
//! FCM and APNs: an FCM certificate's service account and an APNs certificate's .p8 key are
//! trusted by their emulator when the certificate is saved (the emulator derives the public key
//! from the private one), and each emulator also offers a generated test-only account / key at
//! `/_emulator/sample-account` / `/_emulator/sample-key`.
//!
//! Huawei: with a public URL, a certificate with a receipt callback user name and key also
//! becomes the emulator's receipt configuration (what an operator sets in AppGallery Connect), so
//! its notifications' receipts come back to the gateway.

use crate::config::Config;
use crate::domain::credentials::Credentials;
use crate::domain::receipt::receipt_url;
use crate::domain::Certificate;
use crate::providers::oauth_emulator::OAuthApp;
use crate::providers::xiaomi::emulator::{self, EmulatorApp, EmulatorConfig};
use crate::providers::{apns, fcm};
use crate::providers::{honor, huawei};
use crate::server::StartError;
use huawei::emulator::{ReceiptConfig, ServiceAccountKey};
use std::net::SocketAddr;
use std::sync::Arc;

pub async fn run(mut config: Config) -> Result<(), StartError> {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let emu = Arc::new(emulator::start(EmulatorConfig::default(), listen)?);
    config.xiaomi_base_url = emu.base_url();
    tracing::info!(emulator = %emu.base_url(), "sandbox: Xiaomi emulator running in-process; received notifications at {}/_emulator/received", emu.base_url());
    println!("pushgate sandbox: Xiaomi emulator at {}", emu.base_url());
    let honor_emu = Arc::new(honor::emulator::start(
        honor::emulator::EmulatorConfig::default(),
        listen,
    )?);
    config.honor_base_url = honor_emu.base_url();
    config.honor_auth_url = honor_emu.auth_url();
    println!(
        "pushgate sandbox: Honor emulator at {}",
        honor_emu.base_url()
    );
    let huawei_emu = Arc::new(huawei::emulator::start(
        huawei::emulator::EmulatorConfig::default(),
        listen,
    )?);
    config.huawei_base_url = huawei_emu.base_url();
    config.huawei_auth_url = huawei_emu.auth_url();
    println!(
        "pushgate sandbox: Huawei emulator at {}",
        huawei_emu.base_url()
    );
    let ovm = Arc::new(crate::providers::ovm_sandbox::OvmSandbox::start(
        &mut config,
    )?);
    let fcm_emu = Arc::new(fcm::emulator::start(
        fcm::emulator::EmulatorConfig {
            sample_project: Some("pushgate-sandbox".into()),
            ..Default::default()
        },
        listen,
    )?);
    config.fcm_base_url = fcm_emu.base_url();
    println!(
        "pushgate sandbox: FCM emulator at {} (a test-only service account: GET {}/_emulator/sample-account)",
        fcm_emu.base_url(),
        fcm_emu.base_url()
    );
    let apns_emu = Arc::new(apns::emulator::start(
        apns::emulator::EmulatorConfig {
            sample_key: true,
            ..Default::default()
        },
        listen,
    )?);
    config.apns_base_url = Some(apns_emu.base_url());
    println!(
        "pushgate sandbox: APNs emulator at {} (HTTP/2 without TLS; a test-only key: GET {}/_emulator/sample-key)",
        apns_emu.base_url(),
        apns_emu.base_url()
    );
    let e = emu.clone();
    let public_url = config.public_url.clone().filter(|u| !u.is_empty());
    crate::server::run_with(config, move |g| {
        let hook = move |c: &Certificate| match &c.credentials {
            Credentials::Xiaomi(x) => e.add_app(EmulatorApp::new(
                c.package_name.clone(),
                x.app_secret.clone(),
            )),
            // Huawei's OAuth client id is the app id (huawei.md §1).
            Credentials::Huawei(h) => {
                huawei_emu.add_app(OAuthApp::new(h.app_id.clone(), h.app_secret.clone(), &[]));
                // A service-account certificate: its key's public half verifies its JWTs.
                if let Some(account) = h
                    .service_account
                    .as_ref()
                    .and_then(|f| crate::providers::huawei::ServiceAccount::from_json(f).ok())
                {
                    if let Ok(public_key) = account.public_pem() {
                        huawei_emu.add_service_account(ServiceAccountKey {
                            key_id: account.key_id.clone(),
                            sub_account: account.sub_account.clone(),
                            public_key,
                            app_ids: vec![h.app_id.clone(), account.project_id.clone()],
                        });
                    }
                }
                if let (Some(url), Some((user, key))) = (&public_url, h.callback_auth()) {
                    huawei_emu.add_receipt_config(ReceiptConfig {
                        app_id: h.app_id.clone(),
                        receipt_id: h.receipt_id.clone(),
                        callback_url: receipt_url(url, "huawei", c.id),
                        user_name: Some(user.to_owned()),
                        hmac_key: Some(key.to_owned()),
                    });
                }
            }
            Credentials::Honor(h) => honor_emu.add_app(OAuthApp::new(
                h.client_id.clone(),
                h.client_secret.clone(),
                &[&h.app_id],
            )),
            Credentials::Fcm(f) => {
                if let Err(err) = fcm_emu.trust_service_account(&f.service_account) {
                    tracing::warn!(certificate = c.id, error = %err, "sandbox: FCM emulator cannot trust this account");
                }
            }
            Credentials::Apns(k) => {
                if let Err(err) = apns_emu.trust_p8(&k.key_id, &k.team_id, &k.private_key) {
                    tracing::warn!(certificate = c.id, error = %err, "sandbox: APNs emulator cannot trust this key");
                }
            }
            _ => ovm.register(c),
        };
        g.on_certificate_change(Box::new(hook));
    })
    .await
}
