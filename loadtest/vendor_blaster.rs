//! The ceiling of the vendor path: our Xiaomi client (reqwest, kept-alive pool, same form
//! encoding) sending regId batches straight at the emulator with a fixed number of requests in
//! flight — no registry, no dispatch, no sender queue. `loadtest/run` gives it the batch size
//! and concurrency the gateway's sender uses, so notifications/s through the gateway divided by
//! this figure is the vendor-path efficiency.
//!
//! `vendor_blaster --url http://127.0.0.1:PORT --batch 500 --concurrency 8 --seconds 10`
//! prints one JSON line: notifications/s, requests/s, latency p50/p99, errors.

use pushgate::domain::ClickAction;
use pushgate::providers::xiaomi::{VendorReply, XiaomiApp, XiaomiClient, XiaomiMessage};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "cli.rs"]
mod cli;
use cli::{arg, regid};

struct Tally {
    notifications: u64,
    requests: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let url: String = arg("--url", "http://127.0.0.1:9090".to_string());
    let batch: usize = arg("--batch", 500usize).clamp(1, 1000);
    let concurrency: usize = arg("--concurrency", 8usize).max(1);
    let seconds: f64 = arg("--seconds", 10.0f64).clamp(0.5, 600.0);
    let pool: usize = arg("--regids", 100_000usize).max(batch);
    let client = match XiaomiClient::new(&url, Duration::from_secs(5)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vendor_blaster: {e}");
            std::process::exit(2);
        }
    };
    let app = Arc::new(XiaomiApp {
        package_name: "com.example.chat".into(),
        app_secret: "loadtest-secret".into(),
    });
    // The same shape of message the gateway builds from a /v1/messages body.
    let msg = Arc::new(XiaomiMessage {
        title: "carol".into(),
        description: "loadtest message".into(),
        notify_id: XiaomiMessage::notify_id_for("c2c:carol"),
        channel_id: None,
        click: ClickAction::OpenApp,
        ext: None,
        payload: None,
        callback: None,
    });
    let regids: Arc<Vec<String>> = Arc::new((0..pool).map(regid).collect());
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (client, app, msg, regids) = (client.clone(), app.clone(), msg.clone(), regids.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = Tally {
                notifications: 0,
                requests: 0,
                errors: 0,
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
                let reply = client.send_regid(&app, &msg, &targets).await;
                t.latencies_us.push(sent.elapsed().as_micros() as u64);
                t.requests += 1;
                match reply {
                    VendorReply::Delivered { bad_regids, .. } => {
                        t.notifications += (batch - bad_regids.len()) as u64;
                    }
                    _ => t.errors += 1,
                }
            }
            t
        }));
    }
    let mut all = Tally {
        notifications: 0,
        requests: 0,
        errors: 0,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        if let Ok(t) = task.await {
            all.notifications += t.notifications;
            all.requests += t.requests;
            all.errors += t.errors;
            all.latencies_us.extend(t.latencies_us);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    println!(
        "{}",
        serde_json::json!({
            "batch": batch,
            "concurrency": concurrency,
            "seconds": elapsed,
            "requests": all.requests,
            "errors": all.errors,
            "notifications": all.notifications,
            "notifications_per_sec": all.notifications as f64 / elapsed,
            "requests_per_sec": all.requests as f64 / elapsed,
            "p50_ms": percentile(&all.latencies_us, 0.50),
            "p99_ms": percentile(&all.latencies_us, 0.99),
        })
    );
}
