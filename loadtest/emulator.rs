//! The Xiaomi emulator as `loadtest/run` starts it: permissive (any package, any secret), every
//! regId valid, a short received-record buffer (a load run sends millions), and several workers.
//! `pushgate emulator xiaomi` starts the strict default with one worker, which suits tests.
//!
//! `cargo run --release --example loadtest_emulator -- --listen 127.0.0.1:0 [--workers N]`

use pushgate::providers::xiaomi::emulator::{self, EmulatorConfig, EmulatorRules};

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

fn main() -> std::io::Result<()> {
    let listen = arg("--listen")
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .map_err(|e| std::io::Error::other(format!("--listen: {e}")))?;
    let workers: usize = arg("--workers").and_then(|w| w.parse().ok()).unwrap_or(2);
    let config = EmulatorConfig {
        rules: EmulatorRules {
            accept_any_app: true,
            max_records: 1_000,
            workers,
            ..EmulatorRules::default()
        },
        ..EmulatorConfig::default()
    };
    let handle = emulator::start(config, listen)?;
    println!("emulator listening on {}", handle.addr);
    // Runs until the runner ends it (SIGTERM's default action ends the process).
    loop {
        std::thread::park();
    }
}
