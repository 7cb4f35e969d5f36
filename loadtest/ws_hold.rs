//! Hold tool: opens N authenticated WebSocket sessions to a running gateway, keeps them alive,
//! receives (and acks) messages, and reports the connect rate and the gateway's memory per idle
//! connection (VmRSS of the gateway process, read from /proc before and after).
//!
//! ```text
//! cargo run --release --example ws_hold -- --url ws://127.0.0.1:8080 --pid $(pgrep -x pushgate) \
//!     --sdkappid 1400000000 --key "$PUSHGATE_SECRET_KEY" -n 19000 --hold-secs 30 \
//!     --api-token "$PUSHGATE_API_TOKEN" --messages 2000
//! ```
//!
//! Each connection is one file descriptor here and one in the gateway: N is bounded by the
//! open-file limit of both processes (`ulimit -n`), less a few hundred for everything else.
//!
//! With `--pid` and `--cpu-at`, it also measures what idle connections cost the gateway in CPU:
//! for each `--cpu-at T` (seconds after the last connection is up) it reads the gateway's
//! utime+stime from `/proc/PID/stat`, waits `--cpu-secs`, reads them again, and prints the
//! CPU-seconds per second, also per 10,000 connections. Nothing is sent during a window; the
//! client only answers the gateway's pings. `loadtest/idle_cpu` runs it against a fresh gateway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use pushgate::usersig::UserSigKey;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[path = "proc_stat.rs"]
mod proc_stat;
use proc_stat::{clock_ticks_per_sec, cpu_seconds, vm_rss_kib};

#[derive(Parser, Debug)]
#[command(about = "Hold N WebSocket sessions open against a pushgate gateway")]
struct Args {
    /// Base WebSocket URL of the gateway.
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// The gateway's process id, to read its VmRSS (omit to skip the memory figure).
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value_t = 1_400_000_000)]
    sdkappid: u64,
    /// The UserSig secret key; defaults to $PUSHGATE_SECRET_KEY.
    #[arg(long)]
    key: Option<String>,
    /// Connections to open.
    #[arg(short = 'n', long, default_value_t = 1000)]
    connections: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to hold the connections after the last one is up.
    #[arg(long, default_value_t = 10)]
    hold_secs: u64,
    /// Users are `<prefix><i>`, each with device `d<i>` on Android.
    #[arg(long, default_value = "hold-")]
    prefix: String,
    /// With an API token, sends this many messages (to connected users, round robin) over
    /// `POST /v1/messages` during the hold, and counts how many arrive.
    #[arg(long, default_value_t = 0)]
    messages: usize,
    /// Defaults to $PUSHGATE_API_TOKEN.
    #[arg(long)]
    api_token: Option<String>,
    /// Starts a CPU measurement window this many seconds after the last connection is up
    /// (repeatable; needs --pid). The hold is extended to cover every window.
    #[arg(long)]
    cpu_at: Vec<u64>,
    /// Length of each CPU measurement window.
    #[arg(long, default_value_t = 60)]
    cpu_secs: u64,
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    failed: AtomicU64,
    closed: AtomicU64,
    received: AtomicU64,
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    // A command-line tool reading its own two variables, not the gateway's settings.
    #[allow(clippy::disallowed_methods)]
    let from_env = |key: &str| std::env::var(key).ok();
    args.api_token = args
        .api_token
        .take()
        .or_else(|| from_env("PUSHGATE_API_TOKEN"));
    let Some(secret) = args.key.clone().or_else(|| from_env("PUSHGATE_SECRET_KEY")) else {
        eprintln!("the UserSig key is needed: --key or PUSHGATE_SECRET_KEY");
        std::process::exit(2);
    };
    let key = UserSigKey::new(args.sdkappid, secret);
    let counters = Arc::new(Counters::default());
    let rss_before = args.pid.and_then(vm_rss_kib);
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    // One signal per connection attempt: room for all of them, so no send ever waits.
    let (up_tx, mut up_rx) = tokio::sync::mpsc::channel::<()>(args.connections.max(1));
    let started = Instant::now();

    for i in 0..args.connections {
        let user = format!("{}{i}", args.prefix);
        let url = format!(
            "{}/v1/ws?sdkappid={}&identifier={user}&usersig={}&platform=Android&device=d{i}",
            args.url.trim_end_matches('/'),
            args.sdkappid,
            key.generate(&user, 86_400)
        );
        let permits = permits.clone();
        let counters = counters.clone();
        let up = up_tx.clone();
        tokio::spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let ws = tokio_tungstenite::connect_async(url).await;
            drop(permit);
            let mut ws = match ws {
                Ok((ws, _)) => {
                    counters.connected.fetch_add(1, Ordering::Relaxed);
                    let _ = up.send(()).await;
                    ws
                }
                Err(e) => {
                    if counters.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("connect failed: {e}");
                    }
                    let _ = up.send(()).await;
                    return;
                }
            };
            drop(up);
            // Read until the end: tungstenite answers the server's pings while reading.
            while let Some(msg) = ws.next().await {
                let Ok(msg) = msg else { break };
                let text = match &msg {
                    WsMessage::Text(t) => t.as_str().to_owned(),
                    WsMessage::Close(_) => break,
                    _ => continue,
                };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                if v["type"] == "message" {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    let ack = serde_json::json!({"type": "ack", "id": v["id"]}).to_string();
                    if ws.send(WsMessage::text(ack)).await.is_err() {
                        break;
                    }
                }
            }
            counters.closed.fetch_add(1, Ordering::Relaxed);
        });
    }
    drop(up_tx);
    let mut done = 0u64;
    while up_rx.recv().await.is_some() {
        done += 1;
        if done.is_multiple_of(1000) {
            eprintln!("{done} handshakes done");
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connected = counters.connected.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed);
    println!(
        "connected {connected} of {} ({failed} failed) in {connect_secs:.2} s: {:.0} connections/s",
        args.connections,
        connected as f64 / connect_secs.max(1e-9)
    );

    // Let the gateway settle (allocator, store writes) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let (Some(pid), Some(before)) = (args.pid, rss_before) {
        if let Some(after) = vm_rss_kib(pid) {
            let per = (after.saturating_sub(before) as f64) / (connected.max(1) as f64);
            println!(
                "gateway VmRSS {before} KiB -> {after} KiB: {:.2} KiB per idle connection",
                per
            );
        }
    }

    if args.messages > 0 {
        match &args.api_token {
            Some(token) => {
                let ticks = clock_ticks_per_sec();
                let cpu0 = args.pid.and_then(|pid| cpu_seconds(pid, ticks));
                let received0 = counters.received.load(Ordering::Relaxed);
                let sent = send_messages(&args, token, connected as usize).await;
                // Wait (at most 10 s) for the frames and their acks before reading the CPU.
                let deadline = Instant::now() + Duration::from_secs(10);
                while counters.received.load(Ordering::Relaxed) - received0 < sent as u64
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let cpu1 = args.pid.and_then(|pid| cpu_seconds(pid, ticks));
                if let (Some(a), Some(b)) = (cpu0, cpu1) {
                    println!(
                        "gateway CPU per message: {:.1} µs ({sent} messages: REST request, \
                         WebSocket frame and its ack, over {} connections)",
                        (b - a) * 1e6 / (sent.max(1) as f64),
                        connected
                    );
                }
            }
            None => eprintln!("--messages needs --api-token"),
        }
    }
    // Windows count from the moment the last connection was up.
    let all_up = started + Duration::from_secs_f64(connect_secs);
    let mut windows = args.cpu_at.clone();
    windows.sort_unstable();
    let hold_secs = windows.last().map_or(args.hold_secs, |last| {
        args.hold_secs.max(last + args.cpu_secs)
    });
    if let Some(pid) = args.pid {
        let ticks = clock_ticks_per_sec();
        for at in windows {
            tokio::time::sleep_until((all_up + Duration::from_secs(at)).into()).await;
            let (Some(before), t0) = (cpu_seconds(pid, ticks), Instant::now()) else {
                eprintln!("cannot read /proc/{pid}/stat");
                break;
            };
            tokio::time::sleep(Duration::from_secs(args.cpu_secs)).await;
            let (Some(after), secs) = (cpu_seconds(pid, ticks), t0.elapsed().as_secs_f64()) else {
                eprintln!("cannot read /proc/{pid}/stat");
                break;
            };
            let open = connected - counters.closed.load(Ordering::Relaxed);
            let per_sec = (after - before) / secs;
            println!(
                "gateway CPU from {at} s to {} s after all up, {open} idle connections: \
                 {:.2} CPU-s in {secs:.1} s = {per_sec:.5} CPU-s/s, {:.5} CPU-s/s per 10,000 connections",
                at + args.cpu_secs,
                after - before,
                per_sec * 10_000.0 / (open.max(1) as f64)
            );
        }
    } else if !windows.is_empty() {
        eprintln!("--cpu-at needs --pid");
    }
    let hold = if args.cpu_at.is_empty() {
        Instant::now()
    } else {
        all_up
    };
    while hold.elapsed() < Duration::from_secs(hold_secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "after {} s: {} still open, {} messages received",
        hold_secs,
        connected - counters.closed.load(Ordering::Relaxed),
        counters.received.load(Ordering::Relaxed)
    );
}

/// Sends the messages one after another; returns how many the gateway accepted.
async fn send_messages(args: &Args, token: &str, connected: usize) -> usize {
    let http_base = args
        .url
        .replacen("ws://", "http://", 1)
        .replacen("wss://", "https://", 1);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let started = Instant::now();
    let mut ok = 0;
    for i in 0..args.messages {
        let user = format!("{}{}", args.prefix, i % connected.max(1));
        let body =
            serde_json::json!({"to": [user], "from": "ws-hold", "text": format!("hold {i}")});
        let res = client
            .post(format!("{}/v1/messages", http_base.trim_end_matches('/')))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        if matches!(&res, Ok(r) if r.status().is_success()) {
            ok += 1;
        }
    }
    println!(
        "sent {ok} of {} messages in {:.2} s",
        args.messages,
        started.elapsed().as_secs_f64()
    );
    ok
}
