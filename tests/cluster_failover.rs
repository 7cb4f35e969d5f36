//! shared/cluster.md §13.2 #6 in full: a Redis master killed under a 20-s mixed load of token
//! reports (300/s), sends (200/s, half to open WebSockets, half to PushOnline devices) and 100
//! WebSocket clients, across three gateway processes. Only 200s and 503s with Retry-After, and
//! every acknowledged thing accounted for: each token bound, each `online` message on its socket,
//! each `push_queued` message at the emulator; no socket closed, no Disconnect webhook for a live
//! socket, no live node's device reaped. Run twice, on the same body:
//! - 3 masters + 3 replicas: the promoted replica has no replica of its own, so strict WAIT
//!   refuses the shard's writes until the killed server, restarted, has replicated again; 503s
//!   only between the kill and 2 s after that;
//! - 3 masters + 6 replicas: the other replica follows the promoted one, so WAIT can be met as
//!   soon as the failover is over; 503s only between the kill and 2 s after the failover.
//!
//! The two run one after the other (each loads the two cores on its own). Without redis-server
//! installed they print SKIPPED.

mod cluster_node;
mod common;
mod redis_cluster;

use cluster_node::{
    bounded, create_certificate, next_message, push_online, tokens_not_bound, Gateway, Setup,
};
use common::webhook::{Reply, WebhookReceiver};
use common::{emulator, regid, API};
use futures_util::SinkExt;
use redis_cluster::RedisCluster;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WS_CLIENTS: usize = 100;
const PUSH_USERS: usize = 50;
/// Token reports per second (§13.2 #6), by `REPORTERS` paced workers.
const REPORTS_PER_SEC: u64 = 300;
const REPORTERS: u64 = 6;
/// Sends per second, by `SENDERS` paced workers.
const SENDS_PER_SEC: u64 = 200;
const SENDERS: u64 = 4;
/// The whole load lasts at least this long; the master is killed `KILL_AT` into it.
const LOAD: Duration = Duration::from_secs(20);
const KILL_AT: Duration = Duration::from_secs(4);
/// Users logged in before the load, for the token reports to name.
const REPORT_USERS: usize = 12_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What one worker saw: what was acknowledged (user, text, outcome), the wall-clock times of its
/// 503s, the ticks it let pass because `IN_FLIGHT` requests were still unanswered, and the
/// requests it was too slow to send.
#[derive(Default)]
struct Tally {
    acked: Vec<(String, String, String)>,
    /// (when the refused request was sent, the answer's error code and message)
    refused_at: Vec<(u64, String)>,
    /// When each refusal was answered (the test process, starved on a loaded machine, may
    /// read an answer late: reported, not judged).
    refused_answered_at: Vec<u64>,
    saturated: u64,
    /// Connections the gateway closed with 408 because the request did not follow within its
    /// 5 s: the test process, starved on a loaded machine, had connected but not yet written.
    /// Nothing was read, so nothing is acknowledged; they say nothing about Redis.
    unsent: u64,
}

/// Unanswered requests a worker allows before it lets ticks pass.
const IN_FLIGHT: usize = 64;

/// An open-loop worker: a request every 1/`per_sec` s until `stop` (not one after the other, so
/// the rate does not fall with the answers' latency), each built by `request(k)` as
/// (url, method, body, user, text) and judged by the rules of the test.
async fn worker(
    per_sec: u64,
    stop: Arc<AtomicBool>,
    request: impl Fn(u64) -> (String, reqwest::Method, Value, String, String),
) -> Tally {
    // A connection per request: an idle keep-alive connection the server closes just as a
    // request goes out on it fails that request without an answer, which says nothing about
    // Redis (the race every HTTP client has; load balancers resend).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client");
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut requests = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_sec));
    // A late tick is made up for: the offered rate holds on a busy machine.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        k += 1;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tally.lock().unwrap().saturated += 1;
            continue;
        };
        let (url, method, body, user, text) = request(k);
        let (client, tally) = (client.clone(), tally.clone());
        requests.spawn(async move {
            let _slot = slot;
            let sent_at = now_ms();
            let sent = client
                .request(method, &url)
                .bearer_auth(API)
                .json(&body)
                .send()
                .await;
            let res = match sent {
                Ok(res) if res.status() != 408 => res,
                // The 408 itself, or its arrival before the request went out (hyper:
                // "UnexpectedMessage").
                Ok(_) => {
                    tally.lock().unwrap().unsent += 1;
                    return;
                }
                Err(e) if format!("{e:?}").contains("UnexpectedMessage") => {
                    tally.lock().unwrap().unsent += 1;
                    return;
                }
                Err(e) => panic!("{user}/{text}: no answer: {e:?}"),
            };
            let status = res.status().as_u16();
            let retry_after = res.headers().contains_key("retry-after");
            let v: Value = res.json().await.unwrap_or(Value::Null);
            match status {
                200 => {
                    let outcome = v["results"][0]["outcome"].as_str().unwrap_or("ok");
                    let acked = (user, text, outcome.to_string());
                    tally.lock().unwrap().acked.push(acked);
                }
                503 => {
                    assert!(retry_after, "{user}/{text}: 503 without Retry-After: {v}");
                    let why = format!("{} {}", v["error"]["code"], v["error"]["message"]);
                    let mut t = tally.lock().unwrap();
                    t.refused_at.push((sent_at, why));
                    t.refused_answered_at.push(now_ms());
                }
                other => panic!("{user}/{text}: {other} {v}"),
            }
        });
    }
    while let Some(done) = requests.join_next().await {
        if let Err(e) = done {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let seen = std::mem::take(&mut *tally.lock().unwrap());
    seen
}

/// The two variants: how many replicas each master has, and so until when a 503 is allowed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Replicas {
    /// 3+3: until the restarted server has replicated the promoted master again (+ 2 s).
    One,
    /// 3+6: until the failover is over (+ 2 s).
    Two,
}

/// §13.2 #6 on 3 masters + 3 replicas.
#[test]
fn a_master_killed_under_mixed_load_loses_nothing_acknowledged() {
    master_killed_under_mixed_load(Replicas::One);
}

/// §13.2 #6's last line: with 3 masters + 6 replicas the strict WAIT window disappears.
#[test]
fn with_two_replicas_per_master_503s_end_with_the_failover() {
    master_killed_under_mixed_load(Replicas::Two);
}

/// One variant at a time: two would share the two cores and the failover timings.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn master_killed_under_mixed_load(replicas: Replicas) {
    // A failed run poisons the lock; the next one still runs.
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let per_master = match replicas {
        Replicas::One => 1,
        Replicas::Two => 2,
    };
    let Some(rc) = RedisCluster::start_with_replicas(per_master) else {
        return;
    };
    bounded(240, async {
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let emu = emulator();
        let mut hook = WebhookReceiver::start(Reply::Ok).await;
        let hook_url = hook.url("/im");
        // Every State.StateChange callback, read as it comes: (action, user).
        let callbacks = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
        let seen = callbacks.clone();
        tokio::spawn(async move {
            while let Some(c) = hook.recv().await {
                let info = &c.body["Info"];
                seen.lock().unwrap().push((
                    info["Action"].as_str().unwrap_or_default().to_string(),
                    info["To_Account"].as_str().unwrap_or_default().to_string(),
                ));
            }
        });
        // §13.2's 10 s lease: a node whose lease key is on the killed master must outlast the
        // failover (about 4 s) and its client's reconnection, or another node reaps it.
        let env = [("PUSHGATE_WEBHOOK_URL", hook_url.as_str())];
        let setup = Setup {
            lease_ms: 10_000,
            env: &env,
            ..Setup::default()
        };
        let urls = rc.urls();
        let nodes: Vec<Gateway> = ["gw-1", "gw-2", "gw-3"]
            .iter()
            .map(|n| Gateway::start_opts(dir.path(), n, &emu.base_url(), Some(&urls), &setup))
            .collect();
        let cert = create_certificate(&nodes, 1000).await;

        // 100 WebSocket clients spread over the nodes; each acks every message until "last"
        // and hands back what it got and its still-open socket (None: the socket ended).
        let mut readers = Vec::new();
        for i in 0..WS_CLIENTS {
            let user = format!("ws{i}");
            let mut ws = nodes[i % 3].connect(&user, "d1").await;
            readers.push(tokio::spawn(async move {
                let mut got = HashSet::new();
                loop {
                    let (id, text) = next_message(&mut ws).await?;
                    let ack = json!({"type": "ack", "id": id}).to_string();
                    ws.send(WsMessage::Text(ack.into())).await.ok()?;
                    if text == "last" {
                        return Some((got, ws));
                    }
                    got.insert(text);
                }
            }));
        }
        eprintln!(
            "{:.1} s: {WS_CLIENTS} sockets open",
            started.elapsed().as_secs_f64()
        );
        for i in 0..PUSH_USERS {
            let via = [&nodes[i % 3], &nodes[(i + 1) % 3], &nodes[(i + 2) % 3]];
            push_online(via, &format!("p{i}"), "d1", cert).await;
        }
        for chunk in (0..REPORT_USERS).collect::<Vec<_>>().chunks(1000) {
            let events: Vec<Value> = chunk
                .iter()
                .map(|k| json!({"user": format!("t{k}"), "platform": "Android", "device": "d1", "action": "login"}))
                .collect();
            let (s, v) = nodes[chunk[0] % 3]
                .api(
                    reqwest::Method::POST,
                    "/v1/sessions/events",
                    Some(json!({ "events": events })),
                )
                .await;
            assert_eq!(s, 200, "{v}");
        }

        eprintln!(
            "{:.1} s: {PUSH_USERS} PushOnline users, {REPORT_USERS} logged in",
            started.elapsed().as_secs_f64()
        );
        // The victim: the master holding the most of these users' hashes.
        let mut per_master: HashMap<u16, Vec<String>> = HashMap::new();
        for user in (0..WS_CLIENTS)
            .map(|i| format!("ws{i}"))
            .chain((0..PUSH_USERS).map(|i| format!("p{i}")))
        {
            let key = format!("pg:{{u:{user}}}");
            per_master.entry(rc.master_of(&key)).or_default().push(key);
        }
        let (victim, keys) = per_master
            .into_iter()
            .max_by_key(|(_, keys)| keys.len())
            .expect("a master");
        let held = keys.len();
        // One of its keys tells when another master serves its slots.
        let probe = keys[0].clone();

        let stop = Arc::new(AtomicBool::new(false));
        let bases: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.url("")).collect());
        let mut workers = Vec::new();
        for w in 0..REPORTERS {
            let bases = bases.clone();
            workers.push(tokio::spawn(worker(
                REPORTS_PER_SEC / REPORTERS,
                stop.clone(),
                move |k| {
                    // Users t0..: each worker its own, each reported once.
                    let n = (k - 1) * REPORTERS + w;
                    let user = format!("t{n}");
                    assert!((n as usize) < REPORT_USERS, "more reports than users");
                    let body = json!({"user": user, "platform": "Android", "device": "d1",
                                      "certificate_id": cert, "token": regid(&user)});
                    let url = format!("{}/v1/push-tokens", bases[(n % 3) as usize]);
                    (url, reqwest::Method::PUT, body, user, String::new())
                },
            )));
        }
        for w in 0..SENDERS {
            let bases = bases.clone();
            workers.push(tokio::spawn(worker(
                SENDS_PER_SEC / SENDERS,
                stop.clone(),
                move |k| {
                    // Even workers to WebSocket users, odd ones to PushOnline users, each
                    // through a node the user is not connected to when it can be.
                    let user = if w % 2 == 0 {
                        format!("ws{}", k as usize % WS_CLIENTS)
                    } else {
                        format!("p{}", k as usize % PUSH_USERS)
                    };
                    let text = format!("s{w}-{k}");
                    let body = json!({"to": [user], "from": "bob", "text": text});
                    let url = format!("{}/v1/messages", bases[((k + 1) % 3) as usize]);
                    (url, reqwest::Method::POST, body, user, text)
                },
            )));
        }
        let load = Instant::now();
        tokio::time::sleep(KILL_AT).await;
        rc.kill9(victim);
        let killed_at = now_ms();
        let t = Instant::now();
        // The failover is over once another master serves the victim's slots; the killed server
        // is then restarted, as a supervisor would, and rejoins as that master's replica.
        let survivor = rc
            .ports()
            .into_iter()
            .find(|p| *p != victim)
            .expect("a survivor");
        let new_master = loop {
            if rc
                .cli(survivor, &["cluster", "info"])
                .contains("cluster_state:ok")
            {
                if let Some(m) = rc.master_seen_by(survivor, &probe).filter(|m| *m != victim) {
                    break m;
                }
            }
            assert!(t.elapsed() < Duration::from_secs(30), "no failover");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let failover = t.elapsed();
        rc.restart(victim);
        while !rc.has_online_replica(new_master) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the restarted server never replicated {new_master}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let replicated = t.elapsed();
        let replicated_at = now_ms();
        // At least 20 s of load in all, and 3 s past the end of the strict-WAIT window.
        let rest = LOAD
            .saturating_sub(load.elapsed())
            .max(Duration::from_secs(3));
        tokio::time::sleep(rest).await;
        stop.store(true, Ordering::Relaxed);
        let load_secs = load.elapsed().as_secs_f64();
        let mut tallies = Vec::new();
        for w in workers {
            tallies.push(w.await.expect("worker"));
        }
        eprintln!(
            "{:.1} s: load over (failover {:.1} s, replicated {:.1} s after the kill)",
            started.elapsed().as_secs_f64(),
            failover.as_secs_f64(),
            replicated.as_secs_f64()
        );
        let (reports, sends) = tallies.split_at(REPORTERS as usize);

        // Only 503s, and only from the kill to 2 s after the shard could meet WAIT again: with
        // one replica per master once the restarted server has replicated the promoted one, with
        // two once the failover is over (the other replica follows the promoted one). A 503
        // counts at the moment its request was sent: a request sent later than that is
        // accepted. (When the starved test process read the answer says nothing about the
        // gateway; those times are reported.)
        let failed_over_at = killed_at + failover.as_millis() as u64;
        let (window_end, window) = match replicas {
            Replicas::One => (replicated_at, "the shard replicated again"),
            Replicas::Two => (failed_over_at, "the failover"),
        };
        let refused: Vec<u64> = tallies
            .iter()
            .flat_map(|t| t.refused_answered_at.iter().copied())
            .collect();
        let mut why: HashMap<&str, usize> = HashMap::new();
        for (_, w) in tallies.iter().flat_map(|t| t.refused_at.iter()) {
            *why.entry(w.as_str()).or_default() += 1;
        }
        eprintln!("503s by reason: {why:?}");
        // When their requests were sent: per 500 ms after the kill, how many, by the last words
        // of the reason.
        let mut timeline: std::collections::BTreeMap<u64, HashMap<&str, usize>> =
            Default::default();
        for (at, w) in tallies.iter().flat_map(|t| t.refused_at.iter()) {
            let tail = w.rsplit(": ").next().unwrap_or(w);
            *timeline
                .entry(at.saturating_sub(killed_at) / 500 * 500)
                .or_default()
                .entry(tail)
                .or_default() += 1;
        }
        eprintln!(
            "503s per 500 ms after the kill, by sending time (failover at {} ms, {} at {} ms): \
             {timeline:?}",
            failover.as_millis(),
            window,
            window_end - killed_at
        );
        if let (Some(first), Some(last)) = (refused.iter().min(), refused.iter().max()) {
            assert!(
                *first >= killed_at,
                "a 503 {} ms before the kill",
                killed_at - first
            );
            let late: Vec<String> = tallies
                .iter()
                .flat_map(|t| t.refused_at.iter())
                .filter(|r| r.0 > window_end + 2_000)
                .map(|r| {
                    format!(
                        "+{} ms: {}",
                        r.0 - window_end,
                        &r.1[r.1.len().saturating_sub(30)..]
                    )
                })
                .collect();
            if !late.is_empty() {
                // Why each node replaced its connections (the usual source of late 503s).
                for n in &nodes {
                    let log =
                        std::fs::read_to_string(n.data.join("stderr.log")).unwrap_or_default();
                    for l in log.lines().filter(|l| l.contains("connections replaced")) {
                        eprintln!("{}: {l}", n.name);
                    }
                }
            }
            assert!(
                late.is_empty(),
                "503s for requests sent more than 2 s after {window}: {late:?}"
            );
            let _ = last;
        }

        // Every acknowledged token report: the device holds a bound token.
        let acked_reports: Vec<String> = reports
            .iter()
            .flat_map(|t| t.acked.iter().map(|a| a.0.clone()))
            .collect();
        // From Redis itself; a sample through the API below.
        let reported = acked_reports
            .iter()
            .map(|u| (u.clone(), regid(u)))
            .collect();
        let unbound = tokens_not_bound(&rc, cert, reported).await;
        assert!(unbound.is_empty(), "acknowledged tokens lost: {unbound:?}");
        for (i, u) in acked_reports.iter().enumerate().step_by(50) {
            let v = nodes[i % 3].user(u).await;
            assert_eq!(v["devices"][0]["token_bound"], true, "{v}");
        }
        eprintln!(
            "{:.1} s: every acknowledged token bound",
            started.elapsed().as_secs_f64()
        );

        // Every `online` send on its socket, every `push_queued` one at the emulator.
        for i in 0..WS_CLIENTS {
            nodes[(i + 1) % 3]
                .send_until_online(&format!("ws{i}"), "last", Duration::from_secs(20))
                .await;
        }
        let mut got: HashMap<String, HashSet<String>> = HashMap::new();
        let mut sockets = Vec::new();
        for (i, r) in readers.into_iter().enumerate() {
            let (texts, ws) = tokio::time::timeout(Duration::from_secs(30), r)
                .await
                .expect("every socket got \"last\" in time")
                .expect("reader")
                .unwrap_or_else(|| panic!("ws{i}'s socket was closed"));
            got.insert(format!("ws{i}"), texts);
            sockets.push(ws);
        }
        let mut lost = Vec::new();
        let mut queued: Vec<(&String, &String)> = Vec::new();
        for (user, text, outcome) in sends.iter().flat_map(|t| t.acked.iter()) {
            match outcome.as_str() {
                "online" if got.get(user).is_some_and(|g| g.contains(text)) => {}
                "push_queued" => queued.push((user, text)),
                _ => lost.push(format!("{user}/{text} ({outcome})")),
            }
        }
        assert!(lost.is_empty(), "acknowledged sends lost: {lost:?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let missing = loop {
            let received: HashSet<(String, String)> = emu
                .received()
                .into_iter()
                .map(|n| (n.regid, n.description))
                .collect();
            let missing: Vec<String> = queued
                .iter()
                .filter(|(u, t)| !received.contains(&(regid(u), (*t).clone())))
                .map(|(u, t)| format!("{u}/{t}"))
                .collect();
            if missing.is_empty() || Instant::now() > deadline {
                break missing;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        assert!(
            missing.is_empty(),
            "push_queued but never pushed: {missing:?}"
        );

        // No socket closed, none of them taken for disconnected.
        for n in &nodes {
            let metrics = n.metrics_text().await;
            let closed: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("pushgate_ws_disconnects_total{") && !l.ends_with(" 0"))
                .collect();
            assert!(
                closed.is_empty(),
                "sockets closed on {}: {closed:?}",
                n.name
            );
            // No node took another, live one for dead (published each second; the load is
            // long over by now).
            let reaped: Vec<&str> = metrics
                .lines()
                .filter(|l| {
                    l.starts_with("pushgate_cluster_events_total{kind=\"reaped_device\"}")
                        && !l.ends_with(" 0")
                })
                .collect();
            assert!(
                reaped.is_empty(),
                "devices reaped by {}: {reaped:?}",
                n.name
            );
        }
        for i in 0..WS_CLIENTS {
            let v = nodes[i % 3].user(&format!("ws{i}")).await;
            assert_eq!(v["devices"][0]["state"], "Online", "{v}");
        }
        let disconnects: Vec<String> = callbacks
            .lock()
            .unwrap()
            .iter()
            .filter(|(action, user)| action != "Login" && user.starts_with("ws"))
            .map(|(action, user)| format!("{action} {user}"))
            .collect();
        assert!(
            disconnects.is_empty(),
            "callbacks for live sockets: {disconnects:?}"
        );
        let logins = callbacks
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, u)| a == "Login" && u.starts_with("ws"))
            .count();
        assert_eq!(
            logins, WS_CLIENTS,
            "one Login callback per WebSocket client (the webhook works)"
        );
        let saturated: u64 = tallies.iter().map(|t| t.saturated).sum();
        let unsent: u64 = tallies.iter().map(|t| t.unsent).sum();
        let online = sends
            .iter()
            .flat_map(|t| t.acked.iter())
            .filter(|a| a.2 == "online")
            .count();
        eprintln!(
            "{replicas:?} replica(s) per master: Redis master {victim} (held {held} of the {} users) killed {:.1} s into a {load_secs:.1} s \
             load: failover {:.1} s, replicated again {:.1} s after the kill; {} token reports \
             ({:.0}/s) and {} sends ({:.0}/s ; {online} online, {} push_queued) acknowledged, none lost; {} answers \
             503 with Retry-After, answered from {:?} to {:?} ms after the kill (sent up to {:?} ms \
             after it); {WS_CLIENTS} sockets \
             stayed open; {saturated} ticks let pass with {IN_FLIGHT} requests unanswered, \
             {unsent} requests not sent within the gateway's 5 s (408)",
            WS_CLIENTS + PUSH_USERS,
            KILL_AT.as_secs_f64(),
            failover.as_secs_f64(),
            replicated.as_secs_f64(),
            acked_reports.len(),
            acked_reports.len() as f64 / load_secs,
            online + queued.len(),
            (online + queued.len()) as f64 / load_secs,
            queued.len(),
            refused.len(),
            refused.iter().min().map(|m| m - killed_at),
            refused.iter().max().map(|m| m.saturating_sub(killed_at)),
            tallies
                .iter()
                .flat_map(|t| t.refused_at.iter())
                .map(|r| r.0.saturating_sub(killed_at))
                .max(),
        );
        drop(sockets);
    });
}
