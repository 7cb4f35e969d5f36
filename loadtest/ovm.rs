//! The OPPO, vivo, Meizu, Huawei and Honor halves of `loadtest/run`'s vendor drains:
//!
//! `ovm emulator --vendor oppo --listen 127.0.0.1:0 [--workers 2]` runs that vendor's emulator
//! permissive (any app, any secret), with a short received-record buffer (a load run sends
//! millions) and several workers, and prints `emulator listening on ADDR`. Huawei's and Honor's
//! OAuth token endpoints are on the same address (`/oauth2/v3/token`, `/auth/token`).
//!
//! `ovm blast --vendor oppo --url http://127.0.0.1:PORT --batch 1000 --concurrency 8 --seconds 10`
//! is the ceiling of that vendor's path: our own client (same pool, same wire encoding, one auth
//! token fetched once) sending batches of the notification the gateway would render straight at
//! the emulator — no registry, dispatch or sender queue. It prints one JSON line like
//! `vendor_blaster`'s. The gateway's drain divided by this is `ratios.vendor_vs_direct_<vendor>`.
//! vivo batches go as the gateway sends them: `saveListPayload` then `pushToList`. Huawei and
//! Honor fetch one OAuth access token first, as the gateway's shared token cache does.

use pushgate::domain::ClickAction;
use pushgate::domain::{now_millis, vendor_fields::OvmPushFields};
use pushgate::providers::emulator_kit::{EmulatorHandle, KitRules};
use pushgate::providers::outcome::Outcome;
use pushgate::providers::text::notify_id_for;
use pushgate::providers::{honor, huawei, meizu, oppo, vivo};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "cli.rs"]
mod cli;
use cli::{arg, regid};

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

/// The emulator's address and its handle (dropping the handle stops it).
fn emulator(vendor: &str) -> std::io::Result<(std::net::SocketAddr, Box<dyn std::any::Any>)> {
    let listen = arg("--listen", "127.0.0.1:0".to_string())
        .parse()
        .map_err(|e| std::io::Error::other(format!("--listen: {e}")))?;
    let kit = load_kit(arg("--workers", 2usize).max(1));
    fn kept<H: 'static>(
        handle: std::io::Result<H>,
        addr: impl Fn(&H) -> std::net::SocketAddr,
    ) -> std::io::Result<(std::net::SocketAddr, Box<dyn std::any::Any>)> {
        handle.map(|h| (addr(&h), Box::new(h) as Box<dyn std::any::Any>))
    }
    let kit_addr = |h: &EmulatorHandle| h.addr;
    match vendor {
        "oppo" => kept(
            oppo::emulator::start(
                oppo::emulator::EmulatorConfig {
                    kit,
                    ..Default::default()
                },
                listen,
            ),
            kit_addr,
        ),
        "vivo" => kept(
            vivo::emulator::start(
                vivo::emulator::EmulatorConfig {
                    kit,
                    ..Default::default()
                },
                listen,
            ),
            kit_addr,
        ),
        "meizu" => kept(
            meizu::emulator::start(
                meizu::emulator::EmulatorConfig {
                    kit,
                    ..Default::default()
                },
                listen,
            ),
            kit_addr,
        ),
        "huawei" => huawei::emulator::start(
            huawei::emulator::EmulatorConfig {
                rules: huawei::emulator::HuaweiRules {
                    workers: kit.workers,
                    ..Default::default()
                },
                ..huawei::emulator::EmulatorConfig::permissive()
            },
            listen,
        )
        .map(|h| (h.addr, Box::new(h) as Box<dyn std::any::Any>)),
        "honor" => honor::emulator::start(
            honor::emulator::EmulatorConfig {
                rules: honor::emulator::HonorRules {
                    workers: kit.workers,
                    ..Default::default()
                },
                ..honor::emulator::EmulatorConfig::permissive()
            },
            listen,
        )
        .map(|h| (h.addr, Box::new(h) as Box<dyn std::any::Any>)),
        other => fail(format!("--vendor {other}: {VENDORS}")),
    }
}

const VENDORS: &str = "oppo, vivo, meizu, huawei or honor";

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
    Huawei(
        huawei::HuaweiClient,
        huawei::HuaweiApp,
        String,
        huawei::HuaweiMessage,
    ),
    Honor(
        honor::HonorClient,
        honor::HonorApp,
        String,
        honor::HonorMessage,
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
            // The certificate `loadtest/run` creates: open-app click, the default category
            // and importance, no per-message fields.
            "huawei" => {
                let auth = format!("{}/oauth2/v3/token", url.trim_end_matches('/'));
                let client =
                    huawei::HuaweiClient::new(url, &auth, timeout).unwrap_or_else(|e| fail(e));
                let app = huawei::HuaweiApp {
                    app_id: "10086".into(),
                    client_secret: "loadtest-secret".into(),
                    project_id: None,
                };
                let token = client
                    .fetch_token(&app)
                    .await
                    .unwrap_or_else(|e| fail(format!("Huawei auth: {e:?}")));
                let n = huawei::HuaweiMessage {
                    title: title.into(),
                    body: desc.into(),
                    category: huawei::DEFAULT_CATEGORY.into(),
                    importance: huawei::DEFAULT_IMPORTANCE.into(),
                    channel_id: None,
                    package_name: "com.example.chat".into(),
                    click,
                    ext: None,
                    notify_id,
                    sound: None,
                    ext_carriage: Default::default(),
                    bi_tag: None,
                    receipt_id: None,
                };
                Blaster::Huawei(client, app, token.value, n)
            }
            "honor" => {
                let auth = format!("{}/auth/token", url.trim_end_matches('/'));
                let client =
                    honor::HonorClient::new(url, &auth, timeout).unwrap_or_else(|e| fail(e));
                let app = honor::HonorApp {
                    app_id: "104440000".into(),
                    client_id: "loadtest-client".into(),
                    client_secret: "loadtest-secret".into(),
                };
                let token = client
                    .fetch_token(&app)
                    .await
                    .unwrap_or_else(|e| fail(format!("Honor auth: {e:?}")));
                let n = honor::HonorMessage {
                    title: title.into(),
                    body: desc.into(),
                    importance: honor::DEFAULT_IMPORTANCE.into(),
                    package_name: "com.example.chat".into(),
                    click,
                    ext: None,
                    notify_id,
                    bi_tag: None,
                };
                Blaster::Honor(client, app, token.value, n)
            }
            other => fail(format!("--vendor {other}: {VENDORS}")),
        }
    }

    /// How many targets were refused, or why the request failed.
    async fn send(&self, targets: &[&str]) -> Result<usize, String> {
        let ovm = |o: Outcome| match o {
            Outcome::Accepted { faults, .. } => Ok(faults.len()),
            other => Err(format!("{other:?}")),
        };
        match self {
            Blaster::Oppo(client, token, n) => {
                let items: Vec<(&str, &oppo::OppoNotification)> =
                    targets.iter().map(|t| (*t, n)).collect();
                ovm(client.unicast_batch(token, &items).await)
            }
            Blaster::Vivo(client, app, token, n) => match targets {
                [one] => ovm(client.send(app, token, one, n).await),
                _ => ovm(client.send_list(app, token, targets, n).await),
            },
            Blaster::Meizu(client, app, n) => ovm(client.push(app, targets, n).await),
            Blaster::Huawei(client, app, token, n) => {
                match client.send(app, token, n, targets).await {
                    huawei::HuaweiReply::Delivered { illegal_tokens, .. } => {
                        Ok(illegal_tokens.len())
                    }
                    other => Err(format!("{other:?}")),
                }
            }
            Blaster::Honor(client, app, token, n) => {
                match client.send(app, token, n, targets).await {
                    honor::HonorReply::Delivered {
                        expire_tokens,
                        fail_tokens,
                        ..
                    } => Ok(expire_tokens.len() + fail_tokens.len()),
                    other => Err(format!("{other:?}")),
                }
            }
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
                    Ok(faults) => t.notifications += (batch - faults) as u64,
                    Err(e) => {
                        t.errors += 1;
                        t.first_error.get_or_insert(e);
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
            let (addr, _handle) = emulator(&vendor).unwrap_or_else(|e| fail(e));
            println!("emulator listening on {addr}");
            // Runs until the runner ends it (SIGTERM's default action ends the process).
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
        "blast" => blast(&vendor).await,
        _ => fail("usage: ovm emulator|blast --vendor oppo|vivo|meizu|huawei|honor …"),
    }
}
