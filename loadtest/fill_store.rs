//! Writes the devices `preload` would leave in a stopped gateway's data dir, straight into its
//! store, in minutes instead of the hour 8M single token reports take on a busy machine: for
//! timing restarts at 10M devices (loadtest/README.md, "Restart").
//!
//! Same users, devices, states and tokens as `preload` (device `i` is user `u{i}`, device
//! `a{i}`, Android; by `i % 10`: 0 `Online`, 1 logged out, 2–9 `PushOnline` with regId
//! `lt{i:010}…` for the certificate), and the same records, written by the store's own
//! `apply` as the gateway's writer does, in groups.
//!
//! `fill_store --data-dir DIR --certificate-id 1001 --devices 10000000`: the certificate must
//! exist already (create it through the API, then stop the gateway).

use pushgate::domain::{DeviceState, OfflineReason, Platform};
use pushgate::registry::Device;
use pushgate::store::{FjallStore, Store, StoreOp};
use std::sync::Arc;

#[path = "cli.rs"]
mod cli;
use cli::{arg, regid};

/// Records per `apply`: a large group of the gateway's writer.
const GROUP: usize = 50_000;

fn main() {
    let dir: String = arg("--data-dir", String::new());
    let cert: u64 = arg("--certificate-id", 1001u64);
    let devices: usize = arg("--devices", 10_000usize);
    if dir.is_empty() {
        eprintln!("fill_store: --data-dir is required");
        std::process::exit(2);
    }
    let store = match FjallStore::open(&std::path::Path::new(&dir).join("store")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fill_store: {e}");
            std::process::exit(1);
        }
    };
    let now = pushgate::domain::now_secs();
    let started = std::time::Instant::now();
    let mut ops = Vec::with_capacity(GROUP);
    for i in 0..devices {
        let mut d = Device::new(&format!("a{i}"), Platform::Android);
        match i % 10 {
            0 => d.set_state(DeviceState::Online { background: false }),
            1 => d.set_state(DeviceState::Offline {
                reason: OfflineReason::LoggedOut,
            }),
            _ => {
                d.set_state(DeviceState::PushOnline { since: now });
                d.cert = cert;
                d.token = Some(Arc::from(regid(i)));
            }
        }
        ops.push(StoreOp::PutDevice {
            user: format!("u{i}"),
            device: d.id.to_string(),
            record: d.record(),
        });
        if ops.len() == GROUP || i + 1 == devices {
            if let Err(e) = store.apply(&ops) {
                eprintln!("fill_store: {e}");
                std::process::exit(1);
            }
            ops.clear();
        }
    }
    println!(
        "{}",
        serde_json::json!({"devices": devices, "seconds": started.elapsed().as_secs_f64()})
    );
}
