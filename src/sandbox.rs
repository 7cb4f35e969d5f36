//! `pushgate serve --sandbox`: the Xiaomi emulator (and the OPPO, vivo and Meizu ones,
//! `providers::ovm_sandbox`) runs inside the gateway's process and the
//! Xiaomi client sends to it, so a newcomer sees the whole flow on one machine without Xiaomi
//! credentials. Every certificate created is registered with the emulator as an app; every regId
//! is valid unless marked invalid over the emulator's control API.

use crate::config::Config;
use crate::providers::xiaomi::emulator::{self, EmulatorApp, EmulatorConfig};
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
    let e = emu.clone();
    crate::server::run_with(config, move |g| {
        let hook = move |c: &crate::domain::Certificate| {
            if let Some(x) = c.credentials.xiaomi() {
                e.add_app(EmulatorApp::new(
                    c.package_name.clone(),
                    x.app_secret.clone(),
                ));
            }
            ovm.register(c);
        };
        g.on_certificate_change(Box::new(hook));
    })
    .await
}
