//! Fills a running gateway's registry through its public API, as an IM cluster would: login
//! events in batches of 1000, a push-token report per push-eligible device, then disconnect and
//! logout events. Every change is durable before the gateway answers, so the token phase is the
//! "durable token reports per second" figure (group commit under concurrency).
//!
//! Device `i` is user `u{i}`, device `a{i}` on Android. By `i % 10`: 0 stays `Online` (connection
//! held by the IM cluster), 1 logs out (`Offline`), 2–9 report regId `lt{i:010}…` and disconnect
//! (`PushOnline` with a token). The k6 scenarios pick recipients with the same rule.
//!
//! `preload --url http://127.0.0.1:PORT --api-token T --certificate-id 1001 --devices 1000000`
//! prints one JSON line with the phase rates. `--prefix oppo-` names the users `oppo-u{i}` (a
//! second population bound to another certificate, for the per-vendor drains).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "proc_stat.rs"]
#[allow(dead_code)] // vm_rss_kib is ws_hold's
mod proc_stat;
use proc_stat::{clock_ticks_per_sec, cpu_seconds};

#[path = "cli.rs"]
mod cli;
use cli::{arg, regid};

/// Events per `/v1/sessions/events` request (the API's maximum).
const EVENTS_PER_REQUEST: usize = 1000;

fn has_token(i: usize) -> bool {
    i % 10 >= 2
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: Arc<str>,
    auth: Arc<str>,
    errors: Arc<AtomicU64>,
    first_error: Arc<std::sync::Mutex<Option<String>>>,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> bool {
        let res = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &*self.auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let problem = match res {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                // A per-event refusal comes back in a 200 with `"ok":false`.
                Ok(b) if !contains(&b, b"\"ok\":false") => None,
                Ok(b) => Some(String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned()),
                Err(e) => Some(e.to_string()),
            },
            Ok(r) => {
                let s = r.status();
                Some(format!("HTTP {s}: {}", r.text().await.unwrap_or_default()))
            }
            Err(e) => Some(e.to_string()),
        };
        match problem {
            None => true,
            Some(p) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                if first.is_none() {
                    *first = Some(p);
                }
                false
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Runs `job(k)` for k in 0..n on `concurrency` tasks; returns the seconds it took.
async fn run_phase<F, Fut>(n: usize, concurrency: usize, job: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, job) = (next.clone(), job.clone());
            tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= n {
                        break;
                    }
                    job(k).await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    started.elapsed().as_secs_f64()
}

fn events_body(
    prefix: &str,
    range: std::ops::Range<usize>,
    action: &str,
    pick: impl Fn(usize) -> bool,
) -> Vec<u8> {
    let events: Vec<serde_json::Value> = range
        .filter(|i| pick(*i))
        .map(|i| {
            serde_json::json!({"user": format!("{prefix}u{i}"), "platform": "Android",
                               "device": format!("a{i}"), "action": action})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let base: String = arg("--url", "http://127.0.0.1:8080".to_string());
    let token: String = arg("--api-token", String::new());
    let cert: u64 = arg("--certificate-id", 1001u64);
    let devices: usize = arg("--devices", 10_000usize);
    let concurrency: usize = arg("--concurrency", 64usize).max(1);
    let prefix: Arc<str> = arg("--prefix", String::new()).into();
    // With the gateway's pid, each phase also reports the gateway's CPU-seconds.
    let pid: u32 = arg("--pid", 0u32);
    let ticks = clock_ticks_per_sec();
    let gateway_cpu = move || (pid != 0).then(|| cpu_seconds(pid, ticks)).flatten();
    let http = match reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("preload: {e}");
            std::process::exit(2);
        }
    };
    let api = Api {
        http,
        base: base.trim_end_matches('/').into(),
        auth: format!("Bearer {token}").into(),
        errors: Arc::new(AtomicU64::new(0)),
        first_error: Arc::new(std::sync::Mutex::new(None)),
    };
    let chunks = devices.div_ceil(EVENTS_PER_REQUEST);
    let chunk = move |k: usize| k * EVENTS_PER_REQUEST..((k + 1) * EVENTS_PER_REQUEST).min(devices);

    let cpu0 = gateway_cpu();
    let (a, p) = (api.clone(), prefix.clone());
    let login_secs = run_phase(chunks, concurrency.min(16), move |k| {
        let (a, p) = (a.clone(), p.clone());
        async move {
            let body = events_body(&p, chunk(k), "login", |_| true);
            a.call(reqwest::Method::POST, "/v1/sessions/events", body)
                .await;
        }
    })
    .await;

    let cpu1 = gateway_cpu();
    let with_token: Vec<usize> = (0..devices).filter(|i| has_token(*i)).collect();
    let reports = with_token.len();
    let with_token = Arc::new(with_token);
    let (a, p) = (api.clone(), prefix.clone());
    let token_secs = run_phase(reports, concurrency, move |k| {
        let (a, p, with_token) = (a.clone(), p.clone(), with_token.clone());
        async move {
            let i = with_token[k];
            let body = serde_json::to_vec(&serde_json::json!({
                "user": format!("{p}u{i}"), "platform": "Android", "device": format!("a{i}"),
                "certificate_id": cert, "token": regid(i)}))
            .unwrap_or_default();
            a.call(reqwest::Method::PUT, "/v1/push-tokens", body).await;
        }
    })
    .await;

    let cpu2 = gateway_cpu();
    let (a, p) = (api.clone(), prefix.clone());
    let leave_secs = run_phase(chunks, concurrency.min(16), move |k| {
        let (a, p) = (a.clone(), p.clone());
        async move {
            let r = chunk(k);
            let body = events_body(&p, r.clone(), "disconnect", has_token);
            a.call(reqwest::Method::POST, "/v1/sessions/events", body)
                .await;
            let body = events_body(&p, r, "logout", |i| i % 10 == 1);
            a.call(reqwest::Method::POST, "/v1/sessions/events", body)
                .await;
        }
    })
    .await;

    let cpu3 = gateway_cpu();
    let used = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    let errors = api.errors.load(Ordering::Relaxed);
    let first_error = api
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let leave_events = reports + devices / 10;
    println!(
        "{}",
        serde_json::json!({
            "devices": devices,
            "push_devices": reports,
            "concurrency": concurrency,
            "login_seconds": login_secs,
            "login_events_per_sec": devices as f64 / login_secs,
            "token_reports": reports,
            "token_seconds": token_secs,
            "token_reports_per_sec": reports as f64 / token_secs,
            "leave_seconds": leave_secs,
            "leave_events_per_sec": leave_events as f64 / leave_secs,
            "errors": errors,
            "first_error": first_error,
            "gateway_cpu_seconds": {
                "login": used(cpu0, cpu1),
                "token": used(cpu1, cpu2),
                "leave": used(cpu2, cpu3),
            },
        })
    );
    if errors > 0 {
        std::process::exit(1);
    }
}
