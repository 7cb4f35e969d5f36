//! Crash consistency (issue 14): token reports and session events under load, `kill -9` at a
//! random moment, restart, and every acknowledged change must be what the store gives back.
//! 20 rounds on one data dir here; `PUSHGATE_CRASH_ROUNDS=1000` for the long run (loadtest/).

mod common;

use common::process::spawn;
use common::API;
use rand::Rng;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEVICES: usize = 24;

/// A device as the test's model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Model {
    /// `absent`, `Online`, `PushOnline` or `Offline`.
    state: &'static str,
    token: bool,
}

impl Model {
    /// What a restart makes of it: a connection does not survive one.
    fn restarted(self) -> Model {
        Model {
            state: if self.state == "Online" {
                "PushOnline"
            } else {
                self.state
            },
            ..self
        }
    }
}

/// The last acknowledged state of each device, and the change in flight when the process died.
#[derive(Debug, Clone, Copy)]
struct Known {
    acked: Model,
    in_flight: Option<Model>,
}

fn user(i: usize) -> String {
    format!("c{i}")
}

/// Drives one device until a request fails (the process was killed).
async fn drive(base: String, i: usize, cert: u64, known: Arc<Mutex<Vec<Known>>>) {
    let http = common::http();
    let u = user(i);
    let mut n = 0u64;
    loop {
        let now = known.lock().unwrap()[i].acked;
        let (action, next) = match (now.state, now.token) {
            ("absent" | "Offline" | "PushOnline", _) => (
                "login",
                Model {
                    state: "Online",
                    ..now
                },
            ),
            ("Online", false) => ("token", Model { token: true, ..now }),
            _ if n.is_multiple_of(2) => (
                "disconnect",
                Model {
                    state: "PushOnline",
                    ..now
                },
            ),
            _ => (
                "logout",
                Model {
                    state: "Offline",
                    ..now
                },
            ),
        };
        n += 1;
        known.lock().unwrap()[i].in_flight = Some(next);
        let req = if action == "token" {
            http.put(format!("{base}/v1/push-tokens")).json(&json!({
                "user": u, "platform": "Android", "device": "d1",
                "certificate_id": cert, "token": format!("regid-{u}-{n}")}))
        } else {
            http.post(format!("{base}/v1/sessions/events"))
                .json(&json!({"events": [{
                "user": u, "platform": "Android", "device": "d1", "action": action}]}))
        };
        let Ok(resp) = req.bearer_auth(API).send().await else {
            return;
        };
        let status = resp.status().as_u16();
        let Ok(v) = resp.json::<Value>().await else {
            return;
        };
        let ok = status == 200 && (action == "token" || v["results"][0]["ok"] == true);
        let mut k = known.lock().unwrap();
        if ok {
            k[i].acked = next;
        } else {
            assert!(
                status == 503 || v["results"][0]["error"]["code"] == "busy",
                "{u} {action}: {status} {v}"
            );
        }
        k[i].in_flight = None;
    }
}

// The number of rounds is the test's own knob (the long run in loadtest/), not a setting.
#[allow(clippy::disallowed_methods)]
fn rounds() -> usize {
    std::env::var("PUSHGATE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_change_survives_kill_9() {
    let emu = common::emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = "[store]\nmax_group = 64\n";
    let mut gw = spawn(dir.path(), &emu.base_url(), toml);
    let cert = gw.add_certificate(100).await;
    let known = Arc::new(Mutex::new(vec![
        Known {
            acked: Model {
                state: "absent",
                token: false,
            },
            in_flight: None,
        };
        DEVICES
    ]));
    let mut checked = 0usize;
    for round in 0..rounds() {
        let base = format!("http://{}", gw.addr);
        let tasks: Vec<_> = (0..DEVICES)
            .map(|i| tokio::spawn(drive(base.clone(), i, cert, known.clone())))
            .collect();
        let wait = rand::rng().random_range(100..500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        gw.kill9();
        for t in tasks {
            t.await.expect("driver");
        }
        gw = spawn(dir.path(), &emu.base_url(), toml);
        let mut k = known.lock().unwrap().clone();
        for (i, dev) in k.iter_mut().enumerate() {
            let (s, v) = gw
                .try_call(
                    reqwest::Method::GET,
                    &format!("/v1/users/{}", user(i)),
                    API,
                    None,
                )
                .await
                .expect("status after restart");
            assert_eq!(s, 200, "{v}");
            let found = v["devices"]
                .as_array()
                .and_then(|d| d.iter().find(|d| d["device"] == "d1"))
                .map(|d| {
                    (
                        d["state"].as_str().unwrap_or("?").to_string(),
                        d["token_bound"] == true,
                    )
                });
            let (state, token) = found.unwrap_or(("absent".into(), false));
            let allowed: Vec<Model> = [Some(dev.acked), dev.in_flight]
                .into_iter()
                .flatten()
                .map(Model::restarted)
                .collect();
            let seen = allowed
                .iter()
                .find(|m| m.state == state && m.token == token)
                .copied();
            assert!(
                seen.is_some(),
                "round {round}: {} is {state} (token {token}) after kill -9; acknowledged {:?}, in flight {:?}",
                user(i),
                dev.acked,
                dev.in_flight
            );
            dev.acked = seen.unwrap_or(dev.acked);
            dev.in_flight = None;
            checked += 1;
        }
        *known.lock().unwrap() = k;
    }
    assert!(checked >= DEVICES * rounds());
}
