//! FCM and APNs throughput: the gateway's vendor path against a direct blaster, both sending to
//! the same in-process emulator with the same HTTP/2 client (`H2Pool`: the same connections per
//! certificate) and the same streams in flight (`STREAMS_IN_FLIGHT`).
//!
//! `h2_vendors --vendor fcm|apns [--users 2000] [--rounds 5]` prints one JSON line. Each round
//! sends `--users` notifications both ways, one right after the other:
//! - direct: the blaster, one token per request, `STREAMS_IN_FLIGHT` at a time; its first
//!   `STREAMS_IN_FLIGHT` requests are sent while the emulator hangs and the clock starts when
//!   the emulator lets go, as the gateway's drain below (the same head start both ways);
//! - gateway: a queue of `--users` notifications filled while the emulator hangs, then drained
//!   through the gateway (registry → sender → pool), timed from the emulator's accepted count;
//! - `cpu_us_per_notification`: CPU time of the blaster's and of the gateway's threads (and the
//!   emulator's) per notification while the clock runs, from `/proc/self/task/*/sched`;
//! - `ratio` = gateway / direct of the median round (the target is ≥ 0.8), every round's in
//!   `ratios_per_round`; the per-second figures are the medians of the rounds;
//! - `accept_to_vendor_p99_ms`: the gateway's accept→vendor p99 while sending at a steady pace
//!   (not during the drain, whose queue wait would dominate).
//!
//! Ratios within one run on one machine, not absolute speeds, are the figures to compare.

use pushgate::config::Config;
use pushgate::domain::now_secs;
use pushgate::providers::apns::{self, ApnsClient, ApnsKey, ApnsNotification, TokenMemo};
use pushgate::providers::fcm::{self, FcmClient, FcmNotification, ServiceAccount};
use pushgate::providers::h2_pool::{H2Pool, CONNECTIONS_PER_CERTIFICATE, STREAMS_IN_FLIGHT};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "cli.rs"]
mod cli;
use cli::arg;

fn device_token(i: usize) -> String {
    format!("{i:064x}")
}

/// The emulator under test, whichever vendor.
enum Emulator {
    Fcm(fcm::emulator::EmulatorHandle),
    Apns(apns::emulator::EmulatorHandle),
}

impl Emulator {
    fn accepted(&self) -> u64 {
        match self {
            Emulator::Fcm(e) => e.stats().accepted_messages,
            Emulator::Apns(e) => e.stats().accepted_notifications,
        }
    }

    fn hang(&self, on: bool) {
        match self {
            Emulator::Fcm(e) => e.set_knobs(fcm::emulator::Knobs {
                hang: on,
                ..e.knobs()
            }),
            Emulator::Apns(e) => e.set_knobs(apns::emulator::Knobs {
                hang: on,
                ..e.knobs()
            }),
        }
    }

    fn clear(&self) {
        match self {
            Emulator::Fcm(e) => e.clear(),
            Emulator::Apns(e) => e.clear(),
        }
    }
}

/// A direct sender: the provider's client and pool, no gateway.
enum Direct {
    Fcm {
        client: FcmClient,
        account: ServiceAccount,
        access: String,
        body: FcmNotification,
    },
    Apns {
        client: ApnsClient,
        key: ApnsKey,
        base: String,
        body: ApnsNotification,
    },
}

impl Direct {
    async fn send(&self, pool: &H2Pool, i: usize, token: &apns::ProviderToken) -> bool {
        match self {
            Direct::Fcm {
                client,
                account,
                access,
                body,
            } => {
                let tag = i.to_string();
                let b = fcm::wire::send_body(&device_token(i), body, Some(&tag)).to_string();
                let r = client
                    .send(pool, &account.project_id, access, b.as_bytes())
                    .await;
                matches!(fcm::classify(&r), fcm::FcmOutcome::Delivered { .. })
            }
            Direct::Apns {
                client,
                key,
                base,
                body,
            } => {
                let collapse = i.to_string();
                let r = client
                    .send(
                        pool,
                        base,
                        token,
                        &key.bundle_id,
                        &device_token(i),
                        body,
                        None,
                        Some(&collapse),
                        now_secs(),
                    )
                    .await;
                matches!(apns::classify(&r), apns::ApnsOutcome::Delivered { .. })
            }
        }
    }
}

/// Sends `count` notifications straight through the provider's client and a fresh pool,
/// `STREAMS_IN_FLIGHT` at a time; notifications per second, errors, and the CPU reading when
/// the clock started.
///
/// Timed as the gateway's drain is: the emulator hangs while the first requests go out (and
/// the pool connects), and the clock starts when it lets go. Without this the gateway's drain
/// would start with `STREAMS_IN_FLIGHT` requests already at the emulator and the blaster with
/// none.
async fn direct_blast(
    direct: Arc<Direct>,
    token: apns::ProviderToken,
    count: u64,
    emu: &Emulator,
) -> (f64, u64, std::collections::HashMap<Role, f64>) {
    let pool =
        Arc::new(H2Pool::new(CONNECTIONS_PER_CERTIFICATE, Duration::from_secs(10)).expect("pool"));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    emu.hang(true);
    let workers: Vec<_> = (0..STREAMS_IN_FLIGHT)
        .map(|_| {
            let (direct, pool, ok, errors, next, token) = (
                direct.clone(),
                pool.clone(),
                ok.clone(),
                errors.clone(),
                next.clone(),
                token.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    if direct.send(&pool, i as usize, &token).await {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // The gateway's drain waits as long after its fill before the emulator lets go.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_at_start = cpu_by_role();
    let t0 = Instant::now();
    emu.hang(false);
    for w in workers {
        let _ = w.await;
    }
    let secs = t0.elapsed().as_secs_f64();
    (
        ok.load(Ordering::Relaxed) as f64 / secs,
        errors.load(Ordering::Relaxed),
        cpu_at_start,
    )
}

/// Who a thread of this process works for, by its name: the emulator's runtime, the gateway
/// (actix arbiters, the store writer, the server thread), or this tool's own runtime (the
/// direct blaster's workers and the main thread that drives the rounds).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Role {
    Emulator,
    Gateway,
    Driver,
}

fn role_of(thread_name: &str) -> Role {
    if thread_name.contains("-emulator") {
        Role::Emulator
    } else if thread_name.starts_with("actix")
        || thread_name.starts_with("store-writer")
        || thread_name.starts_with("pushgate")
    {
        Role::Gateway
    } else {
        Role::Driver
    }
}

/// CPU time used so far by each role's threads, in microseconds (`se.sum_exec_runtime` of
/// `/proc/self/task/*/sched`, nanosecond precision; clock ticks of `stat` when it is missing).
fn cpu_by_role() -> std::collections::HashMap<Role, f64> {
    let mut out = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let us = std::fs::read_to_string(dir.join("sched"))
            .ok()
            .and_then(|sched| {
                sched
                    .lines()
                    .find(|l| l.starts_with("se.sum_exec_runtime"))
                    .and_then(|l| l.split(':').nth(1))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .map(|ms| ms * 1000.0)
            })
            .or_else(|| {
                let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
                let rest = &stat[stat.rfind(')')? + 2..];
                let mut f = rest.split(' ').skip(11);
                let user: f64 = f.next()?.parse().ok()?;
                let system: f64 = f.next()?.parse().ok()?;
                Some((user + system) * 10_000.0)
            })
            .unwrap_or(0.0);
        *out.entry(role_of(name.trim())).or_insert(0.0) += us;
    }
    out
}

/// CPU-µs per role between two readings, summed into `total`.
fn add_cpu(
    total: &mut std::collections::HashMap<Role, f64>,
    before: &std::collections::HashMap<Role, f64>,
    after: &std::collections::HashMap<Role, f64>,
) {
    for (role, us) in after {
        *total.entry(*role).or_insert(0.0) += us - before.get(role).copied().unwrap_or(0.0);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

struct Gateway {
    http: reqwest::Client,
    base: String,
    admin: String,
    api: String,
}

impl Gateway {
    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("gateway answers");
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default()
    }
}

/// Cumulative bucket counts of a histogram (summed over label sets), by upper bound.
fn buckets(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut by_le: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for line in metrics.lines().filter(|l| l.starts_with(&prefix)) {
        let Some(le_at) = line.find("le=\"") else {
            continue;
        };
        let rest = &line[le_at + 4..];
        let Some(end) = rest.find('"') else { continue };
        let le_text = &rest[..end];
        let le = if le_text == "+Inf" {
            f64::INFINITY
        } else {
            le_text.parse().unwrap_or(f64::NAN)
        };
        let count: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let slot = by_le.entry(le_text.to_owned()).or_insert((le, 0.0));
        slot.1 += count;
    }
    let mut v: Vec<(f64, f64)> = by_le.into_values().collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// The `q` quantile of the observations between two scrapes (upper bucket bound, as Prometheus'
/// `histogram_quantile` would interpolate to at most).
fn quantile_between(before: &str, after: &str, name: &str, q: f64) -> Option<f64> {
    let b = buckets(before, name);
    let a = buckets(after, name);
    let counts: Vec<(f64, f64)> = a
        .iter()
        .map(|(le, n)| {
            (
                *le,
                n - b.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1),
            )
        })
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    counts
        .iter()
        .find(|(_, n)| *n >= total * q)
        .map(|(le, _)| *le)
}

#[tokio::main]
async fn main() {
    let vendor: String = arg("--vendor", "fcm".to_string());
    let users: usize = arg("--users", 2000usize).max(1);
    let rounds: usize = arg("--rounds", 5usize).clamp(1, 50);
    let listen = "127.0.0.1:0".parse().expect("addr");
    let workers = arg("--emulator-workers", 2usize);

    // The emulator, a direct sender, and the certificate body for the gateway.
    let (emu, direct, token, cert_body) = match vendor.as_str() {
        "fcm" => {
            let e = fcm::emulator::start(
                fcm::emulator::EmulatorConfig {
                    sample_project: Some("load-project".into()),
                    workers,
                    max_records: 10,
                    ..Default::default()
                },
                listen,
            )
            .expect("fcm emulator");
            let sa = e.sample_account().expect("sample account");
            let account = ServiceAccount::from_json(&sa).expect("account");
            let client = FcmClient::new(&e.base_url(), Duration::from_secs(10)).expect("client");
            let access = client
                .fetch_token(&account, now_secs())
                .await
                .expect("access token")
                .access_token;
            let body = FcmNotification {
                title: "load".into(),
                body: "hello".into(),
                channel_id: None,
                priority: fcm::Priority::High,
                ttl_secs: fcm::wire::DEFAULT_TTL_SECS,
                ext: None,
                sound: None,
                package: "com.example.chat".into(),
                click_action: None,
            };
            let cert = json!({"vendor":"fcm","package_name":"com.example.chat","click_action":{"type":"open_app"},"service_account":sa,"qps":100_000});
            let dummy = apns::ProviderToken {
                jwt: Arc::from(""),
                issued_at: 0,
            };
            (
                Emulator::Fcm(e),
                Direct::Fcm {
                    client,
                    account,
                    access,
                    body,
                },
                dummy,
                cert,
            )
        }
        "apns" => {
            let e = apns::emulator::start(
                apns::emulator::EmulatorConfig {
                    sample_key: true,
                    workers,
                    max_records: 10,
                    ..Default::default()
                },
                listen,
            )
            .expect("apns emulator");
            let k = e.sample_key().expect("sample key");
            let key = ApnsKey::new(
                k["key_id"].as_str().unwrap_or_default(),
                k["team_id"].as_str().unwrap_or_default(),
                k["private_key"].as_str().unwrap_or_default(),
                "sandbox",
                "com.example.chat",
            )
            .expect("key");
            let client =
                ApnsClient::new(Some(&e.base_url()), Duration::from_secs(10)).expect("client");
            let token = TokenMemo::default()
                .get(&key, now_secs(), false)
                .expect("provider token");
            let body = ApnsNotification {
                title: "load".into(),
                subtitle: None,
                body: "hello".into(),
                sound: None,
                counts_badge: false,
                mutable_content: false,
                thread_id: None,
                ext: None,
                expiration_secs: apns::wire::DEFAULT_EXPIRATION_SECS,
            };
            let cert = json!({"vendor":"apns","package_name":"com.example.chat","click_action":{"type":"open_app"},"key_id":k["key_id"],"team_id":k["team_id"],
                "private_key":k["private_key"],"environment":"sandbox","qps":100_000});
            let base = e.base_url();
            (
                Emulator::Apns(e),
                Direct::Apns {
                    client,
                    key,
                    base,
                    body,
                },
                token,
                cert,
            )
        }
        other => {
            eprintln!("h2_vendors: --vendor must be fcm or apns, not {other}");
            std::process::exit(2);
        }
    };

    let direct = Arc::new(direct);

    // The gateway on the same emulator.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_path_buf(),
        admin_token: Some("load-admin".into()),
        api_token: Some("load-api".into()),
        ..Default::default()
    };
    match &emu {
        Emulator::Fcm(e) => config.fcm_base_url = e.base_url(),
        Emulator::Apns(e) => config.apns_base_url = Some(e.base_url()),
    }
    config.push.queue_capacity = config.push.queue_capacity.max(users * 2);
    config.log_level = "warn".into();
    let server = pushgate::server::start(config).expect("gateway starts");
    let gw = Gateway {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client"),
        base: format!("http://{}", server.addr),
        admin: "load-admin".into(),
        api: "load-api".into(),
    };
    let cert = gw
        .call(
            reqwest::Method::POST,
            "/v1/certificates",
            &gw.admin.clone(),
            cert_body,
        )
        .await;
    let cert_id = cert["id"].as_u64().expect("certificate id");
    let names: Vec<String> = (0..users).map(|i| format!("u{i}")).collect();
    for chunk in names.chunks(500) {
        let login: Vec<Value> = chunk
            .iter()
            .map(|u| json!({"user":u,"platform":"Android","device":"d1","action":"login"}))
            .collect();
        gw.call(
            reqwest::Method::POST,
            "/v1/sessions/events",
            &gw.api.clone(),
            json!({"events": login}),
        )
        .await;
    }
    for (i, u) in names.iter().enumerate() {
        gw.call(reqwest::Method::PUT, "/v1/push-tokens", &gw.api.clone(),
            json!({"user":u,"platform":"Android","device":"d1","certificate_id":cert_id,"token":device_token(i)})).await;
    }
    for chunk in names.chunks(500) {
        let gone: Vec<Value> = chunk
            .iter()
            .map(|u| json!({"user":u,"platform":"Android","device":"d1","action":"disconnect"}))
            .collect();
        gw.call(
            reqwest::Method::POST,
            "/v1/sessions/events",
            &gw.api.clone(),
            json!({"events": gone}),
        )
        .await;
    }

    // Rounds, each the same work both ways: `users` notifications straight through the
    // provider's pool, then `users` notifications queued in the gateway (filled while the
    // emulator hangs) and drained. The machine is shared, so each round's ratio compares two
    // measurements taken seconds apart, and the median round is reported.
    let (mut direct_runs, mut gateway_runs, mut ratios) = (vec![], vec![], vec![]);
    let (mut direct_errors, mut drained_total) = (0u64, 0u64);
    // CPU-µs by role during the direct blasts, the gateway's fills and its drains.
    let (mut cpu_direct, mut cpu_fill, mut cpu_drain) =
        (Default::default(), Default::default(), Default::default());
    for round in 0..rounds {
        eprintln!("h2_vendors {vendor}: round {round}: direct, then gateway drain of {users}");
        let (direct_nps, errors, c0) =
            direct_blast(direct.clone(), token.clone(), users as u64, &emu).await;
        let c1 = cpu_by_role();
        add_cpu(&mut cpu_direct, &c0, &c1);
        direct_errors += errors;
        emu.hang(true);
        for chunk in names.chunks(500) {
            gw.call(
                reqwest::Method::POST,
                "/v1/messages",
                &gw.api.clone(),
                json!({"to": chunk, "from":"loader", "text":"hello"}),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let c2 = cpu_by_role();
        add_cpu(&mut cpu_fill, &c1, &c2);
        let a0 = emu.accepted();
        let t0 = Instant::now();
        emu.hang(false);
        let (mut last_a, mut last_t) = (a0, t0);
        let deadline = t0 + Duration::from_secs(300);
        while Instant::now() < deadline {
            // A fine poll: the drain's end is read up to one poll late, and a drain of 1,000
            // notifications takes well under 100 ms (the blast is timed to the microsecond).
            tokio::time::sleep(Duration::from_millis(1)).await;
            let a = emu.accepted();
            if a - a0 >= users as u64 {
                (last_a, last_t) = (a, Instant::now());
                break;
            }
            if a > last_a {
                (last_a, last_t) = (a, Instant::now());
            } else if last_t.elapsed() > Duration::from_millis(1500) {
                break;
            }
        }
        let drained = last_a - a0;
        drained_total += drained;
        add_cpu(&mut cpu_drain, &c2, &cpu_by_role());
        let drain_secs = (last_t - t0).as_secs_f64();
        let gateway_nps = if drain_secs > 0.0 {
            drained as f64 / drain_secs
        } else {
            0.0
        };
        direct_runs.push(direct_nps);
        gateway_runs.push(gateway_nps);
        ratios.push(if direct_nps > 0.0 {
            gateway_nps / direct_nps
        } else {
            0.0
        });
        emu.clear();
    }

    // Steady pace for the accept→vendor p99: batches of 100 every 20 ms.
    let before = gw.metrics().await;
    for chunk in names.chunks(100).take(20) {
        gw.call(
            reqwest::Method::POST,
            "/v1/messages",
            &gw.api.clone(),
            json!({"to": chunk, "from":"loader", "text":"steady"}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = gw.metrics().await;
    let p99 = quantile_between(&before, &after, "pushgate_accept_to_vendor_seconds", 0.99);
    server.stop().await;
    // CPU-microseconds per notification, by role and phase (the target's own threads are only
    // the driver's in a direct blast and only the gateway's in a drain).
    let per = |cpu: &std::collections::HashMap<Role, f64>, role: Role, n: u64| -> f64 {
        round1(cpu.get(&role).copied().unwrap_or(0.0) / n.max(1) as f64)
    };
    let sent_direct = (users * rounds) as u64;
    let cpu_us = json!({
        "direct_blaster": per(&cpu_direct, Role::Driver, sent_direct),
        "direct_emulator": per(&cpu_direct, Role::Emulator, sent_direct),
        "drain_gateway": per(&cpu_drain, Role::Gateway, drained_total),
        "drain_emulator": per(&cpu_drain, Role::Emulator, drained_total),
        "drain_driver": per(&cpu_drain, Role::Driver, drained_total),
        "fill_gateway": per(&cpu_fill, Role::Gateway, sent_direct),
    });

    println!(
        "{}",
        json!({
            "vendor": vendor,
            "streams_in_flight": STREAMS_IN_FLIGHT,
            "connections": CONNECTIONS_PER_CERTIFICATE,
            "rounds": rounds,
            "notifications_per_round": users,
            "direct_notifications_per_sec": round1(median(&direct_runs)),
            "direct_errors": direct_errors,
            "gateway_notifications_per_sec": round1(median(&gateway_runs)),
            "gateway_drained": drained_total,
            "ratio": (median(&ratios) * 1000.0).round() / 1000.0,
            "ratios_per_round": ratios.iter().map(|r| (r * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
            "accept_to_vendor_p99_ms": p99.map(|s| (s * 1000.0 * 100.0).round() / 100.0),
            "cpu_us_per_notification": cpu_us,
        })
    );
}
