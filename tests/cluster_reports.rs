//! §13.2 #5, its second half: push-token reports acknowledged across 3 gateway nodes while
//! node 2 is killed with kill -9 at a random moment; afterwards every acknowledged token is bound
//! to its device in the shared directory and in the token index (nothing acknowledged was lost).
//! Clients behave like a load balancer's: a report whose node died unanswered is sent to another
//! node (it was never acknowledged), a 503 is retried after its Retry-After.
//!
//! The issue asks for 100,000 reports: `PUSHGATE_CLUSTER_REPORTS=100000`. The default run does
//! 5,000, because the debug-build gateways on the shared 2-core machine acknowledged only
//! 24–135 reports a second (each report is 5–7 Redis round trips, two of them WAITs; measured at
//! load averages 12–25): 10,000 took 125 s and 594 s, so 100,000 would take the suite far past
//! its 15-minute budget.
//!
//! The 100,000 figure (release build, run of 2026-11-30 on the shared 2-core machine with two
//! other helpers building, at commit 9281fc7):
//! `PUSHGATE_CLUSTER_REPORTS=100000 nice cargo test --release --test cluster_reports -- --nocapture`
//! — 100,000 logins in 9.4 s; 100,000 token reports acknowledged in 40.4 s (2,473/s across the
//! 3 nodes); node 2 killed with kill -9 after 15.6 s, at 36,884 acknowledged (12,297 of them by
//! node 2); acknowledged by node 43,836 / 12,297 / 43,867; no 503 or 408; every acknowledged
//! token found bound to its device and in the token index afterwards (checked in 3.6 s): none
//! lost.

mod cluster_node;
mod common;
mod redis_cluster;

use cluster_node::{bounded, three_nodes, tokens_not_bound};
use common::{emulator, API};
use rand::Rng;
use redis_cluster::RedisCluster;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Login events per `/v1/sessions/events` request (the API's maximum).
const EVENTS_PER_REQUEST: usize = 1000;
/// Token reports in flight across the three nodes.
const IN_FLIGHT: usize = 96;

fn user(i: usize) -> String {
    format!("r{i}")
}

fn token(i: usize) -> String {
    format!("tok{i:08}-0123456789abcdefghijklmnopqrstuvwxyz")
}

// How many reports is a test-size knob, not a gateway setting (.clippy.toml bans env reads for
// those).
#[allow(clippy::disallowed_methods)]
fn reports() -> usize {
    std::env::var("PUSHGATE_CLUSTER_REPORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// The nodes as clients see them: base URLs, and which ones stopped answering.
struct Pool {
    bases: Vec<String>,
    dead: Vec<AtomicBool>,
    /// 503 answers per node, and the first one's body.
    busy: Vec<AtomicUsize>,
    first_busy: std::sync::Mutex<Option<String>>,
}

impl Pool {
    /// The node for attempt `n` of a request: round robin over the live ones.
    fn pick(&self, n: usize) -> usize {
        let live: Vec<usize> = (0..self.bases.len())
            .filter(|i| !self.dead[*i].load(Ordering::Relaxed))
            .collect();
        assert!(!live.is_empty(), "every node is dead");
        live[n % live.len()]
    }

    /// Sends one request until some node acknowledges it; the node that did. A node that
    /// does not answer is marked dead (the request was not acknowledged, so it goes to another
    /// node); a 503 waits a little and tries again.
    async fn until_acked(
        &self,
        client: &reqwest::Client,
        start: usize,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> usize {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut n = start;
        loop {
            assert!(
                Instant::now() < deadline,
                "{path} not acknowledged within 120 s"
            );
            let node = self.pick(n);
            n += 1;
            let res = client
                .request(method.clone(), format!("{}{path}", self.bases[node]))
                .bearer_auth(API)
                .json(body)
                .send()
                .await;
            match res {
                Ok(r) if r.status() == 200 => {
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    // Session events answer per event: the ones the cluster did not
                    // acknowledge (busy) are sent again, alone; any other refusal is a failure.
                    let mut again = Vec::new();
                    for (i, res) in v["results"].as_array().into_iter().flatten().enumerate() {
                        if res["ok"] == false {
                            assert_eq!(res["error"]["code"], "busy", "{path}: {res}");
                            again.push(body["events"][i].clone());
                        }
                    }
                    if again.is_empty() {
                        return node;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let retry = json!({ "events": again });
                    return Box::pin(self.until_acked(client, n, method, path, &retry)).await;
                }
                // 408: the node was too busy to read the request in time (actix's request
                // timeout), so nothing was done; like a 503, it is sent again.
                Ok(r) if r.status() == 408 => {
                    self.busy[node].fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(r) if r.status() == 503 => {
                    assert!(
                        r.headers().contains_key("retry-after"),
                        "a 503 says when to retry"
                    );
                    self.busy[node].fetch_add(1, Ordering::Relaxed);
                    let text = r.text().await.unwrap_or_default();
                    self.first_busy
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(text);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(r) => {
                    let s = r.status();
                    let text = r.text().await.unwrap_or_default();
                    panic!("{path}: {s} {}", &text[..text.len().min(500)]);
                }
                // Refused: the node is dead. Reset or timed out mid-request: no answer came, so
                // nothing was acknowledged; the request goes to another node.
                Err(e) => {
                    if e.is_connect() {
                        self.dead[node].store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

#[test]
fn token_reports_acknowledged_across_the_nodes_survive_a_kill_9() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    let n = reports();
    bounded(900, async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let emu = emulator();
        let (mut nodes, cert) = three_nodes(&rc, dir.path(), &emu.base_url()).await;
        let pool = Arc::new(Pool {
            bases: nodes.iter().map(|n| n.url("")).collect(),
            dead: (0..3).map(|_| AtomicBool::new(false)).collect(),
            busy: (0..3).map(|_| AtomicUsize::new(0)).collect(),
            first_busy: std::sync::Mutex::new(None),
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(IN_FLIGHT)
            .build()
            .expect("HTTP client");

        // Logins, 1000 a request, 6 requests in flight over the 3 nodes.
        let t0 = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let batches = n.div_ceil(EVENTS_PER_REQUEST);
        let mut tasks = Vec::new();
        for w in 0..6 {
            let (pool, client, next) = (pool.clone(), client.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        return;
                    }
                    let events: Vec<_> = (b * EVENTS_PER_REQUEST..((b + 1) * EVENTS_PER_REQUEST).min(n))
                        .map(|i| json!({"user": user(i), "device": "d1", "platform": "Android", "action": "login"}))
                        .collect();
                    pool.until_acked(
                        &client,
                        w + b,
                        reqwest::Method::POST,
                        "/v1/sessions/events",
                        &json!({ "events": events }),
                    )
                    .await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("login worker");
        }
        let login_secs = t0.elapsed().as_secs_f64();

        // Token reports, IN_FLIGHT at a time; node 2 dies between 20 % and 80 % of them.
        let kill_at = rand::rng().random_range(n / 5..=n * 4 / 5);
        let next = Arc::new(AtomicUsize::new(0));
        let acked = Arc::new(AtomicUsize::new(0));
        let by_node: Arc<Vec<AtomicUsize>> =
            Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
        let t1 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..IN_FLIGHT {
            let (pool, client, next, acked, by_node) = (
                pool.clone(),
                client.clone(),
                next.clone(),
                acked.clone(),
                by_node.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let body = json!({"user": user(i), "device": "d1", "certificate_id": cert,
                                      "token": token(i)});
                    let node = pool
                        .until_acked(&client, i, reqwest::Method::PUT, "/v1/push-tokens", &body)
                        .await;
                    by_node[node].fetch_add(1, Ordering::Relaxed);
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        while acked.load(Ordering::Relaxed) < kill_at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let acked_at_kill = acked.load(Ordering::Relaxed);
        let acked_by_2 = by_node[1].load(Ordering::Relaxed);
        nodes[1].kill9();
        let killed_after = t1.elapsed().as_secs_f64();
        for t in tasks {
            t.await.expect("report worker");
        }
        let report_secs = t1.elapsed().as_secs_f64();
        assert_eq!(
            acked.load(Ordering::Relaxed),
            n,
            "every report acknowledged"
        );
        assert!(acked_by_2 > 0, "node 2 acknowledged reports before it died");
        assert!(
            pool.dead[1].load(Ordering::Relaxed),
            "the clients saw node 2 die"
        );

        // Every acknowledged token is bound to its device, in the user's hash and the index.
        let t2 = Instant::now();
        let missing =
            tokens_not_bound(&rc, cert, (0..n).map(|i| (user(i), token(i))).collect()).await;
        assert!(
            missing.is_empty(),
            "{} acknowledged tokens not bound, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        // And through the API of a surviving node, for a sample.
        for i in (0..n).step_by((n / 200).max(1)) {
            let (s, v) = nodes[2]
                .api(
                    reqwest::Method::GET,
                    &format!("/v1/users/{}", user(i)),
                    None,
                )
                .await;
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["devices"][0]["token_bound"], true, "{v}");
        }
        eprintln!(
            "cluster_reports: {n} logins in {login_secs:.1} s; {n} token reports in \
             {report_secs:.1} s ({:.0}/s); node 2 killed after {killed_after:.1} s at {acked_at_kill} \
             acked ({acked_by_2} by node 2); acked by node: {:?}; 503/408 by node: {:?} (first 503: {:?}); \
             checked in {:.1} s",
            n as f64 / report_secs,
            by_node.iter().map(|a| a.load(Ordering::Relaxed)).collect::<Vec<_>>(),
            pool.busy.iter().map(|a| a.load(Ordering::Relaxed)).collect::<Vec<_>>(),
            pool.first_busy.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            t2.elapsed().as_secs_f64()
        );
    });
}
