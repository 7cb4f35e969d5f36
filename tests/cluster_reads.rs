//! Cluster-wide reads in redis mode (issue 15, shared/cluster.md §1): every node answers the /v4
//! status queries, kick and diagnosis from the shared directory (diagnosis names the node a
//! device is connected to), and the TIM duplicate window is one Redis key per recipient with
//! the window as its TTL, so a retry through another node is still a duplicate. Real processes
//! on loopback over a 3+3 Redis Cluster; each test bounded in time.

mod cluster_node;
mod common;
mod redis_cluster;

use cluster_node::{
    bounded, kicked_within, owner_of, push_online, three_nodes, wait_certificate, Gateway, Setup,
};
use common::{emulator, regid};
use pushgate::providers::xiaomi::emulator::EmulatorHandle;
use redis_cluster::RedisCluster;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// What each node counted on the way of a notification (recipients routed, queued to push,
/// sent to the vendor, finished by class, skipped), what the emulator received and each node's
/// log tail: printed when a notification is missing, to tell lost from late.
async fn accounts(nodes: &[Gateway], emu: &EmulatorHandle) -> String {
    let mut out = String::new();
    for n in nodes {
        out.push_str(&format!("--- {} metrics\n", n.name));
        let m = n.metrics_text().await;
        for l in m.lines().filter(|l| {
            !l.starts_with('#')
                && [
                    "pushgate_recipients_total",
                    "pushgate_skipped_total",
                    "pushgate_notifications_total",
                    "pushgate_vendor_requests_total",
                    "pushgate_cert_owned",
                    "pushgate_cert_queue_depth",
                    "pushgate_push_queue_depth",
                    "pushgate_cluster_events_total",
                ]
                .iter()
                .any(|p| l.starts_with(p))
        }) {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(&format!("--- {} log\n{}\n", n.name, n.log_tail()));
    }
    let got: Vec<(String, String)> = emu
        .received()
        .iter()
        .map(|r| (r.regid.clone(), r.description.clone()))
        .collect();
    out.push_str(&format!("--- the emulator received {got:?}\n"));
    out
}

fn status_of<'a>(reply: &'a Value, user: &str) -> &'a Value {
    reply["QueryResult"]
        .as_array()
        .expect("QueryResult")
        .iter()
        .find(|r| r["To_Account"] == user)
        .unwrap_or_else(|| panic!("{user} not in {reply}"))
}

/// /v4 status queries, kick and diagnosis answer the same on every node: a WebSocket on node 2
/// is Online through node 3, its diagnosis through node 1 names node 2, a kick through node 3
/// closes it on node 2, and an account no node has seen is unknown everywhere.
#[test]
fn v4_queries_kick_and_diagnosis_read_the_shared_directory() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    bounded(120, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let emu = emulator();
        let (nodes, cert) = three_nodes(&rc, dir.path(), &emu.base_url()).await;
        let mut alice = nodes[1].connect("alice", "a1").await;
        push_online([&nodes[0]; 3], "bob", "d1", cert).await;

        for (node, command, field) in [
            (&nodes[2], "openim/query_online_status", "Status"),
            (&nodes[0], "openim/querystate", "State"),
        ] {
            let r = node
                .v4(
                    command,
                    json!({"To_Account": ["alice", "bob", "carol"], "IsNeedDetail": 1}),
                )
                .await;
            assert_eq!(r["ActionStatus"], "OK", "{r}");
            assert_eq!(status_of(&r, "alice")[field], "Online", "{r}");
            assert_eq!(
                status_of(&r, "alice")["Detail"],
                json!([{"Platform": "Android", "Status": "Online"}]),
                "{r}"
            );
            assert_eq!(status_of(&r, "bob")[field], "PushOnline", "{r}");
            assert_eq!(
                r["ErrorList"],
                json!([{"To_Account": "carol", "ErrorCode": 70107}]),
                "through {}: {r}",
                node.name
            );
        }

        // Diagnosis through node 1 says which node holds alice's connection.
        let (s, d) = nodes[0]
            .api(reqwest::Method::GET, "/v1/users/alice/diagnosis", None)
            .await;
        assert_eq!(s, 200, "{d}");
        let dev = &d["devices"][0];
        assert_eq!(dev["device"], "a1", "{d}");
        assert_eq!(dev["state"], "Online", "{d}");
        let on = dev["connected_on"].as_str().expect("connected_on");
        assert!(
            on.starts_with("gw-2#"),
            "alice is on node 2, diagnosis says {on}"
        );
        let state_check = dev["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["check"] == "device_state")
            .expect("device_state check");
        assert!(
            state_check["detail"].as_str().unwrap_or("").contains(on),
            "{state_check}"
        );
        // bob's, through node 3: PushOnline with a token, a notification would reach him.
        let (s, d) = nodes[2]
            .api(reqwest::Method::GET, "/v1/users/bob/diagnosis", None)
            .await;
        assert_eq!(s, 200, "{d}");
        assert_eq!(d["would_push"], true, "{d}");
        assert!(d["devices"][0].get("connected_on").is_none(), "{d}");
        let (s, d) = nodes[1]
            .api(reqwest::Method::GET, "/v1/users/carol/diagnosis", None)
            .await;
        assert_eq!(s, 200, "{d}");
        assert_eq!(d["devices"], json!([]), "{d}");

        // Kick through node 3: alice's socket on node 2 gets `kicked`.
        let r = nodes[2]
            .v4("im_open_login_svc/kick", json!({"UserID": "alice"}))
            .await;
        assert_eq!(r["ActionStatus"], "OK", "{r}");
        assert!(
            kicked_within(&mut alice, Duration::from_secs(5)).await,
            "alice's socket on node 2 was kicked"
        );
        let r = nodes[0]
            .v4(
                "openim/query_online_status",
                json!({"To_Account": ["alice"]}),
            )
            .await;
        assert_eq!(status_of(&r, "alice")["Status"], "Offline", "{r}");
        let r = nodes[1]
            .v4("im_open_login_svc/kick", json!({"UserID": "carol"}))
            .await;
        assert_eq!(r["ErrorCode"], 70107, "{r}");
    });
}

/// The TIM duplicate window is shared: the same message (sender, recipient, MsgSeq, MsgRandom,
/// content) sent through node 1, then node 2, then node 3 is routed once and every node answers
/// the first send's MsgTime and MsgKey; the window is a Redis key per recipient whose TTL is
/// the 120 s window. A batch retried through another node reaches nobody twice.
#[test]
fn the_tim_duplicate_window_is_cluster_wide() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    bounded(120, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let emu = emulator();
        let (nodes, cert) = three_nodes(&rc, dir.path(), &emu.base_url()).await;
        for u in ["bob", "dave"] {
            push_online([&nodes[0]; 3], u, "d1", cert).await;
        }
        let body = |random: u64| {
            json!({"From_Account": "erin", "To_Account": "bob", "MsgRandom": random, "MsgSeq": 11,
                   "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello bob"}}]})
        };
        let first = nodes[0].v4("openim/sendmsg", body(7)).await;
        assert_eq!(first["ActionStatus"], "OK", "{first}");
        let key = first["MsgKey"].as_str().expect("MsgKey").to_string();
        for node in &nodes[1..] {
            let again = node.v4("openim/sendmsg", body(7)).await;
            assert_eq!(again["ActionStatus"], "OK", "{again}");
            assert_eq!(again["MsgKey"], key.as_str(), "through {}", node.name);
            assert_eq!(again["MsgTime"], first["MsgTime"], "through {}", node.name);
        }
        // Another MsgRandom is another message.
        let other = nodes[2].v4("openim/sendmsg", body(8)).await;
        assert_eq!(other["ActionStatus"], "OK", "{other}");
        assert_ne!(other["MsgKey"], key.as_str());

        // A batch, retried through another node: bob and dave once each, carol unknown.
        let batch = json!({"From_Account": "erin", "To_Account": ["bob", "dave", "carol"],
                           "MsgRandom": 9, "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "all"}}]});
        let b1 = nodes[1].v4("openim/batchsendmsg", batch.clone()).await;
        let b2 = nodes[2].v4("openim/batchsendmsg", batch).await;
        for b in [&b1, &b2] {
            assert_eq!(b["ActionStatus"], "OK", "{b}");
            assert_eq!(
                b["ErrorList"],
                json!([{"To_Account": "carol", "ErrorCode": 70107}]),
                "{b}"
            );
        }

        // bob: message 7 once, message 8 once, the batch once; dave: the batch once.
        let count = |user: &str| {
            let r = regid(user);
            emu.received().iter().filter(|n| n.regid == r).count()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while (count("bob") < 3 || count("dave") < 1) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Anything sent twice would arrive within the same time: wait a little more.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if count("bob") != 3 || count("dave") != 1 {
            eprintln!("{}", accounts(&nodes, &emu).await);
        }
        assert_eq!(count("bob"), 3, "bob's notifications");
        assert_eq!(count("dave"), 1, "dave's notifications");

        // The window lives in Redis: one key per (message, recipient), expiring with the window.
        let mut keys = Vec::new();
        for port in rc.masters() {
            let out = rc.cli(port, &["--scan", "--pattern", "pg:dd:*"]);
            for k in out.lines().filter(|l| !l.trim().is_empty()) {
                let ttl: i64 = rc.cli(port, &["pttl", k]).trim().parse().expect("pttl");
                assert!(ttl > 0 && ttl <= 120_000, "{k} expires in {ttl} ms");
                keys.push(k.to_string());
            }
        }
        // 7→bob, 8→bob, 9→bob, 9→dave.
        assert_eq!(keys.len(), 4, "{keys:?}");
    });
}

/// A certificate owner's blocking read of its queue whose reply it never gets (the process
/// stalled past the read's timeout, as on a loaded machine: Redis handed the entry to it all
/// the same) does not hold the notification back until the periodic takeover of idle entries
/// (one to two lease periods, 20 to 40 s with the lease here): the owner takes its unanswered
/// entries back at once.
#[test]
fn a_queue_read_whose_reply_is_lost_is_taken_back_at_once() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    bounded(120, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let emu = emulator();
        let urls = rc.urls();
        let setup = Setup {
            lease_ms: 20_000,
            ..Setup::default()
        };
        let nodes: Vec<Gateway> = ["gw-1", "gw-2", "gw-3"]
            .iter()
            .map(|n| Gateway::start_opts(dir.path(), n, &emu.base_url(), Some(&urls), &setup))
            .collect();
        let (s, v) = nodes[0]
            .api(
                reqwest::Method::POST,
                "/v1/certificates",
                Some(common::cert_body(1000)),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let cert = v["id"].as_u64().expect("id");
        for n in &nodes {
            wait_certificate(n, cert, |c| c["id"] == cert).await;
        }
        push_online([&nodes[0]; 3], "bob", "d1", cert).await;
        let owner = owner_of(&nodes, cert).await;
        let via = &nodes[(owner + 1) % 3];
        let got = |text: &str| {
            let r = regid("bob");
            emu.received()
                .iter()
                .any(|n| n.regid == r && n.description == text)
        };
        let v = via.send("bob", "carol", "first").await;
        assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !got("first") {
            assert!(Instant::now() < deadline, "first notification not sent");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The owner is blocked reading its queue; stopped for 3 s, it gets the entry's reply
        // only after the read's timeout (block 1 s + 2 s) has passed, long before its leases
        // would make it fence itself.
        let pid = nodes[owner].child.id().to_string();
        let signal = |s: &str| {
            let ok = std::process::Command::new("kill")
                .args([s, &pid])
                .status()
                .is_ok_and(|st| st.success());
            assert!(ok, "kill {s} {pid}");
        };
        signal("-STOP");
        let v = via.send("bob", "carol", "second").await;
        assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        signal("-CONT");
        let resumed = Instant::now();
        while !got("second") && resumed.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = resumed.elapsed();
        eprintln!("the second notification went out {took:?} after the owner resumed");
        if took >= Duration::from_secs(10) {
            eprintln!("{}", accounts(&nodes, &emu).await);
        }
        // Well under the 17 s at least that the periodic takeover would take.
        assert!(
            took < Duration::from_secs(10),
            "the second notification waited {took:?} after the owner resumed"
        );
    });
}
