//! `pushgate serve --sandbox`: the Xiaomi emulator (and the OPPO, vivo and Meizu ones,
//! `providers::ovm_sandbox`) runs inside the gateway's process and the
//! Xiaomi client sends to it, so a newcomer sees the whole flow on one machine without Xiaomi
//! credentials. Every certificate created is registered with the emulator as an app; every regId
//! is valid unless marked invalid over the emulator's control API.
//!
//! FCM and APNs emulators run beside it: an FCM certificate's service account and an APNs
//! certificate's .p8 key are trusted by their emulator when the certificate is saved (the
//! emulator derives the public key from the private one), and each emulator also offers a
//! generated test-only account / key at `/_emulator/sample-account` / `/_emulator/sample-key`.

use crate::config::Config;
use crate::providers::xiaomi::emulator::{self, EmulatorApp, EmulatorConfig};
use crate::providers::{apns, fcm};
use crate::server::StartError;
use std::net::SocketAddr;
use std::sync::Arc;

pub async fn run(mut config: Config) -> Result<(), StartError> {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let emu = Arc::new(emulator::start(EmulatorConfig::default(), listen)?);
    config.xiaomi_base_url = emu.base_url();
    tracing::info!(emulator = %emu.base_url(), "sandbox: Xiaomi emulator running in-process; received notifications at {}/_emulator/received", emu.base_url());
    println!("pushgate sandbox: Xiaomi emulator at {}", emu.base_url());
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
    crate::server::run_with(config, move |g| {
        let hook = move |c: &crate::domain::Certificate| {
            if let Some(x) = c.credentials.xiaomi() {
                e.add_app(EmulatorApp::new(
                    c.package_name.clone(),
                    x.app_secret.clone(),
                ));
            } else if let Some(f) = c.credentials.fcm() {
                if let Err(err) = fcm_emu.trust_service_account(&f.service_account) {
                    tracing::warn!(certificate = c.id, error = %err, "sandbox: FCM emulator cannot trust this account");
                }
            } else if let Some(k) = c.credentials.apns() {
                if let Err(err) = apns_emu.trust_p8(&k.key_id, &k.team_id, &k.private_key) {
                    tracing::warn!(certificate = c.id, error = %err, "sandbox: APNs emulator cannot trust this key");
                }
            }
            ovm.register(c);
        };
        g.on_certificate_change(Box::new(hook));
    })
    .await
}
