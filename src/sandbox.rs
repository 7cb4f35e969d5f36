//! `pushgate serve --sandbox`: every vendor emulator runs inside the gateway's process and each
//! vendor client sends to its emulator, so a newcomer sees the whole flow on one machine without
//! vendor credentials. Every certificate created is registered with its vendor's emulator as an
//! app; every device token is valid unless marked invalid over the emulator's control API.
//! (OPPO, vivo and Meizu: `providers::ovm_sandbox`.)

use crate::config::Config;
use crate::domain::credentials::Credentials;
use crate::domain::Certificate;
use crate::providers::oauth_emulator::OAuthApp;
use crate::providers::xiaomi::emulator::{self, EmulatorApp, EmulatorConfig};
use crate::providers::{honor, huawei};
use crate::server::StartError;
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
    let e = emu.clone();
    crate::server::run_with(config, move |g| {
        let hook = move |c: &Certificate| match &c.credentials {
            Credentials::Xiaomi(x) => e.add_app(EmulatorApp::new(
                c.package_name.clone(),
                x.app_secret.clone(),
            )),
            // Huawei's OAuth client id is the app id (huawei.md §1).
            Credentials::Huawei(h) => {
                huawei_emu.add_app(OAuthApp::new(h.app_id.clone(), h.app_secret.clone(), &[]))
            }
            Credentials::Honor(h) => honor_emu.add_app(OAuthApp::new(
                h.client_id.clone(),
                h.client_secret.clone(),
                &[&h.app_id],
            )),
            _ => ovm.register(c),
        };
        g.on_certificate_change(Box::new(hook));
    })
    .await
}
