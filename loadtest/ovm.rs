//! The OPPO, vivo and Meizu halves of `loadtest/run`'s vendor drains:
//!
//! `ovm emulator --vendor oppo --listen 127.0.0.1:0 [--workers 2]` runs that vendor's emulator
//! permissive (any app, any secret), with a short received-record buffer (a load run sends
//! millions) and several workers, and prints `emulator listening on ADDR`.
//!
//! `ovm blast --vendor oppo --url http://127.0.0.1:PORT --batch 1000 --concurrency 8 --seconds 10`
//! is the ceiling of that vendor's path: our own client (same pool, same wire encoding, one auth
//! token fetched once) sending batches of the notification the gateway would render straight at
//! the emulator — no registry, dispatch or sender queue. It prints one JSON line like
//! `vendor_blaster`'s. The gateway's drain divided by this is `ratios.vendor_vs_direct_<vendor>`.
//! vivo batches go as the gateway sends them: `saveListPayload` then `pushToList`.

use pushgate::domain::ClickAction;
use pushgate::domain::{now_millis, vendor_fields::OvmPushFields};
use pushgate::providers::emulator_kit::{EmulatorHandle, KitRules};
use pushgate::providers::outcome::Outcome;
use pushgate::providers::text::notify_id_for;
use pushgate::providers::{meizu, oppo, vivo};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            if let Some(v) = args.next().and_then(|v| v.parse().ok()) {
                return v;
            }
        }
    }
    default
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("ovm: {message}");
    std::process::exit(2);
}

fn load_kit(workers: usize) -> KitRules {
    KitRules {
        accept_any_app: true,
        max_records: 1_000,
        workers,
        ..KitRules::default()
    }
}

fn emulator(vendor: &str) -> std::io::Result<EmulatorHandle> {
    let listen = arg("--listen", "127.0.0.1:0".to_string())
        .parse()
        .map_err(|e| std::io::Error::other(format!("--listen: {e}")))?;
    let kit = load_kit(arg("--workers", 2usize).max(1));
    match vendor {
        "oppo" => oppo::emulator::start(
            oppo::emulator::EmulatorConfig {
                kit,
                ..Default::default()
            },
            listen,
        ),
        "vivo" => vivo::emulator::start(
            vivo::emulator::EmulatorConfig {
                kit,
                ..Default::default()
            },
            listen,
        ),
        "meizu" => meizu::emulator::start(
            meizu::emulator::EmulatorConfig {
                kit,
                ..Default::default()
            },
            listen,
        ),
        other => fail(format!("--vendor {other}: oppo, vivo or meizu")),
    }
}

/// One vendor's client with its credentials and the notification the gateway would render for
/// a /v1/messages body from carol (no per-message fields, the certificate's defaults).
enum Blaster {
    Oppo(oppo::OppoClient, String, oppo::OppoNotification),
    Vivo(
        vivo::VivoClient,
        vivo::VivoApp,
        String,
        vivo::VivoNotification,
    ),
    Meizu(
        meizu::MeizuClient,
        meizu::MeizuApp,
        meizu::MeizuNotification,
    ),
}

impl Blaster {
    async fn new(vendor: &str, url: &str) -> Blaster {
        let timeout = Duration::from_secs(30);
        let (title, desc, fields) = ("carol", "loadtest message", OvmPushFields::default());
        let notify_id = notify_id_for("c2c:carol");
        let click = ClickAction::OpenApp;
        match vendor {
            "oppo" => {
                let client = oppo::OppoClient::new(url, timeout).unwrap_or_else(|e| fail(e));
                let app = oppo::OppoApp {
                    app_key: "loadtest-key".into(),
                    master_secret: "loadtest-secret".into(),
                };
                let token = client
                    .authenticate(&app, now_millis())
                    .await
                    .unwrap_or_else(|e| fail(format!("OPPO auth: {e:?}")));
                let n =
                    oppo::certificate::render(None, &click, title, desc, None, &fields, notify_id);
                Blaster::Oppo(client, token.token, n)
            }
            "vivo" => {
                let client = vivo::VivoClient::new(url, timeout).unwrap_or_else(|e| fail(e));
                let app = vivo::VivoApp {
                    app_id: 105_562_603,
                    app_key: "loadtest-key".into(),
                    app_secret: "loadtest-secret".into(),
                };
                let token = client
                    .authenticate(&app, now_millis())
                    .await
                    .unwrap_or_else(|e| fail(format!("vivo auth: {e:?}")));
                let n =
                    vivo::certificate::render(None, &click, title, desc, None, &fields, notify_id);
                Blaster::Vivo(client, app, token.token, n)
            }
            "meizu" => {
                let client = meizu::MeizuClient::new(url, timeout).unwrap_or_else(|e| fail(e));
                let app = meizu::MeizuApp {
                    app_id: "100999".into(),
                    app_secret: "loadtest-secret".into(),
                };
                let n =
                    meizu::certificate::render(None, &click, title, desc, None, &fields, notify_id);
                Blaster::Meizu(client, app, n)
            }
            other => fail(format!("--vendor {other}: oppo, vivo or meizu")),
        }
    }

    async fn send(&self, targets: &[&str]) -> Outcome {
        match self {
            Blaster::Oppo(client, token, n) => {
                let items: Vec<(&str, &oppo::OppoNotification)> =
                    targets.iter().map(|t| (*t, n)).collect();
                client.unicast_batch(token, &items).await
            }
            Blaster::Vivo(client, app, token, n) => match targets {
                [one] => client.send(app, token, one, n).await,
                _ => client.send_list(app, token, targets, n).await,
            },
            Blaster::Meizu(client, app, n) => client.push(app, targets, n).await,
        }
    }
}

struct Tally {
    notifications: u64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u64>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// The token of device `i` as `preload` reports it (the same string the gateway sends).
fn regid(i: usize) -> String {
    format!("lt{i:010}AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnop")
}

async fn blast(vendor: &str) {
    let url: String = arg("--url", "http://127.0.0.1:9090".to_string());
    let batch: usize = arg("--batch", 1000usize).clamp(1, 1000);
    let concurrency: usize = arg("--concurrency", 8usize).max(1);
    let seconds: f64 = arg("--seconds", 10.0f64).clamp(0.5, 600.0);
    let pool: usize = arg("--regids", 100_000usize).max(batch);
    let blaster = Arc::new(Blaster::new(vendor, &url).await);
    let regids: Arc<Vec<String>> = Arc::new((0..pool).map(regid).collect());
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (blaster, regids) = (blaster.clone(), regids.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = Tally {
                notifications: 0,
                requests: 0,
                errors: 0,
                first_error: None,
                latencies_us: Vec::new(),
            };
            let mut offset = (w * batch) % regids.len();
            while Instant::now() < deadline {
                if offset + batch > regids.len() {
                    offset = 0;
                }
                let targets: Vec<&str> = regids[offset..offset + batch]
                    .iter()
                    .map(String::as_str)
                    .collect();
                offset += batch * concurrency;
                let sent = Instant::now();
                let reply = blaster.send(&targets).await;
                t.latencies_us.push(sent.elapsed().as_micros() as u64);
                t.requests += 1;
                match reply {
                    Outcome::Accepted { faults, .. } => {
                        t.notifications += (batch - faults.len()) as u64;
                    }
                    other => {
                        t.errors += 1;
                        t.first_error.get_or_insert_with(|| format!("{other:?}"));
                    }
                }
            }
            t
        }));
    }
    let mut all = Tally {
        notifications: 0,
        requests: 0,
        errors: 0,
        first_error: None,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        if let Ok(t) = task.await {
            all.notifications += t.notifications;
            all.requests += t.requests;
            all.errors += t.errors;
            all.first_error = all.first_error.or(t.first_error);
            all.latencies_us.extend(t.latencies_us);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    println!(
        "{}",
        serde_json::json!({
            "vendor": vendor,
            "batch": batch,
            "concurrency": concurrency,
            "seconds": elapsed,
            "requests": all.requests,
            "errors": all.errors,
            "first_error": all.first_error,
            "notifications": all.notifications,
            "notifications_per_sec": all.notifications as f64 / elapsed,
            "requests_per_sec": all.requests as f64 / elapsed,
            "p50_ms": percentile(&all.latencies_us, 0.50),
            "p99_ms": percentile(&all.latencies_us, 0.99),
        })
    );
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let vendor: String = arg("--vendor", String::new());
    match mode.as_str() {
        "emulator" => {
            let handle = emulator(&vendor).unwrap_or_else(|e| fail(e));
            println!("emulator listening on {}", handle.addr);
            // Runs until the runner ends it (SIGTERM's default action ends the process).
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
        "blast" => blast(&vendor).await,
        _ => fail("usage: ovm emulator|blast --vendor oppo|vivo|meizu …"),
    }
}
