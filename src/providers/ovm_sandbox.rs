//! The OPPO, vivo and Meizu emulators of `pushgate serve --sandbox`: started in-process, the
//! gateway pointed at them, and every certificate of theirs registered as an app, so a
//! notification reaches `GET <emulator>/_emulator/received` without vendor credentials.

use std::io;
use std::net::SocketAddr;

use crate::config::Config;
use crate::domain::{Certificate, Credentials};
use crate::providers::emulator_kit::{EmulatorApp, EmulatorHandle};
use crate::providers::{meizu, oppo, vivo};

pub struct OvmSandbox {
    pub oppo: EmulatorHandle,
    pub vivo: EmulatorHandle,
    pub meizu: EmulatorHandle,
}

impl OvmSandbox {
    /// Starts the three emulators on loopback ports and points `config` at them.
    pub fn start(config: &mut Config) -> io::Result<OvmSandbox> {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let sandbox = OvmSandbox {
            oppo: oppo::emulator::start(Default::default(), listen)?,
            vivo: vivo::emulator::start(Default::default(), listen)?,
            meizu: meizu::emulator::start(Default::default(), listen)?,
        };
        for (name, emu, url) in [
            ("OPPO", &sandbox.oppo, &mut config.oppo_base_url),
            ("vivo", &sandbox.vivo, &mut config.vivo_base_url),
            ("Meizu", &sandbox.meizu, &mut config.meizu_base_url),
        ] {
            *url = emu.base_url();
            println!("pushgate sandbox: {name} emulator at {}", emu.base_url());
        }
        Ok(sandbox)
    }

    /// Registers a certificate's credentials with its vendor's emulator.
    pub fn register(&self, c: &Certificate) {
        match &c.credentials {
            Credentials::Oppo(o) => self.oppo.add_app(oppo::emulator::app(
                o.app_key.clone(),
                o.master_secret.clone(),
            )),
            Credentials::Vivo(v) => self.vivo.add_app(EmulatorApp::new(
                v.app_id.clone(),
                v.app_key.clone(),
                v.app_secret.clone(),
            )),
            Credentials::Meizu(m) => self
                .meizu
                .add_app(meizu::emulator::app(m.app_id.clone(), m.app_secret.clone())),
            _ => {}
        }
    }
}
