//! What a certificate's owner learns, every node shows (issue 15, shared/cluster.md §1, §7.6):
//! a certificate the vendor refused is `broken` with the vendor's reason in the API, in
//! diagnosis and in `/metrics` of every node; the figures (sent, failed by class) are the
//! cluster's; a device's last notification reads the same through any node; a token the vendor
//! named invalid is unbound in the shared directory; and the APNs badge count goes on where it
//! was when the certificate's owner changes. Real processes (and a real 3+3 Redis Cluster) on
//! loopback; each test bounded in time.

mod cluster_node;
mod common;
mod redis_cluster;

use cluster_node::{bounded, owner_of, push_online, three_nodes, wait_certificate, Gateway};
use common::{cert_body, emulator, metric, regid};
use compact_str::CompactString;
use pushgate::cluster::shared::RedisBadges;
use pushgate::cluster::Cluster;
use pushgate::config::{ClusterConfig, ClusterMode};
use pushgate::domain::MultiDevicePolicy;
use pushgate::providers::apns::{BadgeEvent, Badges};
use redis_cluster::RedisCluster;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Xiaomi AppSecret the emulator refuses (21301).
const WRONG_SECRET: &str = "d3Jvbmctc2VjcmV0LXh4eA==";

fn check<'a>(d: &'a Value, device: usize, name: &str) -> &'a Value {
    d["devices"][device]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {d}"))
}

async fn diagnosis(node: &Gateway, user: &str) -> Value {
    let (s, d) = node
        .api(
            reqwest::Method::GET,
            &format!("/v1/users/{user}/diagnosis"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{d}");
    d
}

/// Polls (bounded) until `f` holds for what `node` answers.
async fn until<F, Fut>(what: &str, node: &Gateway, f: F) -> Value
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (bool, Value)>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, v) = f().await;
        if ok {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} through {}: {v}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn what_the_owner_learns_every_node_shows() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    bounded(150, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let emu = emulator();
        emu.add_invalid_regids([regid("bad")]);
        let (nodes, good) = three_nodes(&rc, dir.path(), &emu.base_url()).await;
        let mut body = cert_body(100);
        body["app_secret"] = json!(WRONG_SECRET);
        let (s, v) = nodes[0]
            .api(reqwest::Method::POST, "/v1/certificates", Some(body))
            .await;
        assert_eq!(s, 201, "{v}");
        let broken = v["id"].as_u64().expect("id");
        for n in &nodes {
            wait_certificate(n, broken, |c| c["id"] == broken).await;
        }
        push_online([&nodes[0], &nodes[1], &nodes[2]], "bob", "d1", broken).await;
        push_online([&nodes[1], &nodes[2], &nodes[0]], "bad", "d1", good).await;
        push_online([&nodes[2], &nodes[0], &nodes[1]], "good", "d1", good).await;
        let (s, v) = nodes[0]
            .api(
                reqwest::Method::POST,
                "/v1/messages",
                Some(json!({"to": ["bob", "bad", "good"], "from": "carol", "text": "hi"})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        for r in v["results"].as_array().expect("results") {
            assert_eq!(r["outcome"], "push_queued", "{v}");
        }
        let owner = owner_of(&nodes, broken).await;
        let good_owner = owner_of(&nodes, good).await;
        eprintln!(
            "certificate {broken} (wrong secret) is owned by {}, {good} by {}",
            nodes[owner].name, nodes[good_owner].name
        );

        for n in &nodes {
            // The console's view: broken with the vendor's reason, the cluster's figures.
            let c = until("the certificate broken", n, || async {
                let c = n.certificate(broken).await.unwrap_or(Value::Null);
                let ok =
                    c["status"]["state"] == "broken" && c["stats"]["failed"]["misconfigured"] == 1;
                (ok, c)
            })
            .await;
            assert!(
                c["status"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("21301"),
                "{c}"
            );
            let c = until("the good certificate's figures", n, || async {
                let c = n.certificate(good).await.unwrap_or(Value::Null);
                let ok = c["stats"]["sent"] == 1 && c["stats"]["failed"]["bad_token"] == 1;
                (ok, c)
            })
            .await;
            assert_eq!(c["status"]["state"], "healthy", "{c}");
            let m = n.metrics_text().await;
            assert_eq!(
                metric(&m, "pushgate_certificates", "state=\"broken\""),
                1.0,
                "{}",
                n.name
            );

            // bob's diagnosis: his certificate is broken, and why; his last notification.
            let d = until("bob's last notification", n, || async {
                let d = diagnosis(n, "bob").await;
                let ok = check(&d, 0, "last_notification")["detail"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("misconfigured"));
                (ok, d)
            })
            .await;
            let healthy = check(&d, 0, "certificate_healthy");
            assert_eq!(healthy["ok"], false, "{d}");
            assert!(
                healthy["detail"].as_str().unwrap_or("").contains("21301"),
                "{d}"
            );
            assert_eq!(d["would_push"], false, "{d}");

            // bad's token, named invalid by Xiaomi on its owner, is unbound for every node.
            let d = until("bad's token unbound", n, || async {
                let d = diagnosis(n, "bad").await;
                (d["devices"][0]["token_bound"] == false, d)
            })
            .await;
            let last = check(&d, 0, "last_notification");
            assert_eq!(last["ok"], false, "{d}");
            assert!(
                last["detail"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("bad_token"),
                "{d}"
            );
            let d = diagnosis(n, "good").await;
            assert_eq!(check(&d, 0, "last_notification")["ok"], true, "{d}");
            assert_eq!(d["would_push"], true, "{d}");
        }
        let unbound: f64 = {
            let mut sum = 0.0;
            for n in &nodes {
                sum += metric(&n.metrics_text().await, "pushgate_tokens_unbound_total", "");
            }
            sum
        };
        assert_eq!(unbound, 1.0, "one token unbound, by the owner");

        // The right secret, set through a node that is not the owner: healthy everywhere, and
        // bob gets his notification.
        let editor = (owner + 1) % 3;
        let mut fixed = cert_body(100);
        fixed["app_secret"] = json!(common::SECRET);
        let (s, v) = nodes[editor]
            .api(
                reqwest::Method::PUT,
                &format!("/v1/certificates/{broken}"),
                Some(fixed),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        for n in &nodes {
            wait_certificate(n, broken, |c| c["status"]["state"] == "healthy").await;
        }
        let v = nodes[2].send("bob", "carol", "fixed").await;
        assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
        for n in &nodes {
            until("bob's notification delivered", n, || async {
                let d = diagnosis(n, "bob").await;
                let ok = check(&d, 0, "last_notification")["ok"] == true;
                (ok, d)
            })
            .await;
            let m = n.metrics_text().await;
            assert_eq!(
                metric(&m, "pushgate_certificates", "state=\"broken\""),
                0.0,
                "{}",
                n.name
            );
        }
    });
}

fn config(rc: &RedisCluster) -> ClusterConfig {
    ClusterConfig {
        mode: ClusterMode::Redis,
        redis_nodes: rc.urls(),
        wait_timeout_ms: 1_000,
        ..ClusterConfig::default()
    }
}

/// The APNs badge is counted in Redis: a background event seen by one node and pushes sent by
/// two successive owners of the certificate count on from each other; a retry adds nothing; a
/// reset anywhere starts over everywhere.
#[test]
fn the_apns_badge_counts_on_when_the_certificates_owner_changes() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    bounded(60, async {
        let cfg = config(&rc);
        let mut nodes = Vec::new();
        for _ in 0..2 {
            let c = Cluster::connect(&cfg, MultiDevicePolicy::PerPlatform, 7 * 86_400)
                .await
                .expect("connect to the test cluster");
            let b = Badges::default();
            b.share(Arc::new(RedisBadges(Arc::new(c))));
            nodes.push(b);
        }
        let (a, b) = (&nodes[0], &nodes[1]);
        let (u, d) = (CompactString::from("alice"), CompactString::from("iphone"));
        a.session_shared("alice", "iphone", BadgeEvent::Background(5))
            .expect("shared in cluster mode")
            .await;
        assert_eq!(a.next_counted(&u, &d).await, 6, "first owner");
        assert_eq!(a.next_counted(&u, &d).await, 7);
        assert_eq!(b.next_counted(&u, &d).await, 8, "the next owner counts on");
        assert_eq!(b.current_counted(&u, &d).await, 8, "a retry adds nothing");
        let other = CompactString::from("ipad");
        assert_eq!(b.next_counted(&u, &other).await, 1, "each device its own");
        b.session_shared("alice", "iphone", BadgeEvent::Reset)
            .expect("shared")
            .await;
        assert_eq!(a.current_counted(&u, &d).await, 1);
        assert_eq!(
            a.next_counted(&u, &d).await,
            1,
            "started over on every node"
        );
    });
}

/// Posts a Xiaomi receipt callback (form field `data`) to `node`; (status, body).
async fn post_receipt(node: &Gateway, cert: u64, data: &Value) -> (u16, Value) {
    let body = serde_urlencoded::to_string([("data", data.to_string())]).expect("form");
    let r = common::http()
        .post(node.url(&format!("/v1/receipts/xiaomi/{cert}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("receipt request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The certificate's receipt secret as the nodes keep it in Redis (what Xiaomi echoes back in
/// `param`).
fn receipt_secret(rc: &RedisCluster, cert: u64) -> String {
    let json = rc.cli(
        rc.master_of("pg:certs"),
        &["hget", "pg:certs", &cert.to_string()],
    );
    let c: Value = serde_json::from_str(json.trim()).expect("certificate JSON in Redis");
    c["receipt_secret"]
        .as_str()
        .expect("receipt secret")
        .to_string()
}

async fn token_bound(node: &Gateway, user: &str) -> bool {
    node.user(user).await["devices"][0]["token_bound"]
        .as_bool()
        .unwrap_or_else(|| panic!("{user} through {}: no token_bound", node.name))
}

/// Xiaomi's receipt callback saying a token is invalid (type 16), posted to a node that is not
/// the certificate's owner, unbinds it in the shared directory: every node shows it unbound, the
/// next message to it is skipped, the receipt's answer counts it, and it is counted once. A
/// receipt for a token bound under another certificate, or bound nowhere, changes nothing.
#[test]
fn an_invalid_token_receipt_unbinds_the_token_on_every_node() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    bounded(120, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let emu = emulator();
        let (nodes, cert) = three_nodes(&rc, dir.path(), &emu.base_url()).await;
        let (s, v) = nodes[0]
            .api(
                reqwest::Method::POST,
                "/v1/certificates",
                Some(cert_body(100)),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let other = v["id"].as_u64().expect("id");
        for n in &nodes {
            wait_certificate(n, other, |c| c["id"] == other).await;
        }
        push_online([&nodes[0], &nodes[1], &nodes[2]], "bob", "d1", cert).await;
        push_online([&nodes[1], &nodes[2], &nodes[0]], "dave", "d1", other).await;
        let owner = owner_of(&nodes, cert).await;
        let via = &nodes[(owner + 1) % 3];
        let secret = receipt_secret(&rc, cert);
        let receipt = |user: &str| {
            json!({ format!("m-{user}"): {"type": 16, "targets": regid(user), "timestamp": 1,
                                          "param": secret} })
        };

        // dave's token is bound under the other certificate: this certificate's receipt does
        // not speak for it. A token bound nowhere: nothing to unbind.
        for data in [receipt("dave"), receipt("nobody")] {
            let (s, v) = post_receipt(via, cert, &data).await;
            assert_eq!(s, 200, "{v}");
            assert_eq!(
                (&v["tokens_unbound"], &v["ignored"]),
                (&json!(0), &json!(1)),
                "{v}"
            );
        }
        for n in &nodes {
            assert!(
                token_bound(n, "dave").await,
                "dave's token through {}",
                n.name
            );
        }

        let (s, v) = post_receipt(via, cert, &receipt("bob")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["tokens_unbound"], 1, "{v}");
        // Acknowledged: every node reads it unbound at once.
        for n in &nodes {
            assert!(
                !token_bound(n, "bob").await,
                "bob's token through {}",
                n.name
            );
            assert!(
                token_bound(n, "dave").await,
                "dave's token through {}",
                n.name
            );
        }
        let v = nodes[owner].send("bob", "carol", "still there?").await;
        assert_eq!(v["results"][0]["outcome"], "skipped", "{v}");
        // The vendor resending the receipt changes nothing more.
        let (s, v) = post_receipt(&nodes[owner], cert, &receipt("bob")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (&v["tokens_unbound"], &v["ignored"]),
            (&json!(0), &json!(1)),
            "{v}"
        );
        let mut unbound = 0.0;
        for n in &nodes {
            unbound += metric(&n.metrics_text().await, "pushgate_tokens_unbound_total", "");
        }
        assert_eq!(unbound, 1.0, "one token unbound, counted once");
        rc.check_token_invariant();
    });
}

/// Delivered and clicked receipts (Xiaomi types 1 and 2), each posted to a node that is not the
/// certificate's owner and another one each time (a load balancer spreads a vendor's
/// requests): every node's diagnosis shows the same answer for the device — delivered to the
/// phone at T, opened at T' — and the same figures, each receipt counted once. Posted again
/// to the owner, they change nothing.
#[test]
fn delivered_and_clicked_receipts_show_the_same_on_every_node() {
    use pushgate::domain::receipt::utc_text;
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    bounded(120, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let emu = emulator();
        let (nodes, cert) = three_nodes(&rc, dir.path(), &emu.base_url()).await;
        push_online([&nodes[0], &nodes[1], &nodes[2]], "bob", "d1", cert).await;
        let v = nodes[0].send("bob", "carol", "dinner?").await;
        assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
        // The owner's answer from Xiaomi carries the message id the receipts are about.
        let d = until("bob's notification delivered", &nodes[1], || async {
            let d = diagnosis(&nodes[1], "bob").await;
            let done = d["devices"][0]["last_notification"]["class"] == "delivered";
            (done, d)
        })
        .await;
        let msg_id = d["devices"][0]["last_notification"]["msg_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no msg_id: {d}"))
            .to_string();
        let owner = owner_of(&nodes, cert).await;
        let secret = receipt_secret(&rc, cert);
        const DELIVERED_AT: u64 = 1_764_000_000_000;
        const CLICKED_AT: u64 = DELIVERED_AT + 65_000;
        let receipt = |kind: u32, at: u64| {
            json!({ &msg_id: {"type": kind, "targets": regid("bob"), "timestamp": at,
                              "param": secret} })
        };
        let (s, v) = post_receipt(&nodes[(owner + 1) % 3], cert, &receipt(1, DELIVERED_AT)).await;
        assert_eq!((s, &v["delivered"]), (200, &json!(1)), "{v}");
        let (s, v) = post_receipt(&nodes[(owner + 2) % 3], cert, &receipt(2, CLICKED_AT)).await;
        assert_eq!((s, &v["clicked"]), (200, &json!(1)), "{v}");
        let want = format!(
            "delivered to the phone at {}, opened at {}",
            utc_text(DELIVERED_AT),
            utc_text(CLICKED_AT)
        );
        for n in &nodes {
            let d = diagnosis(n, "bob").await;
            let r = &d["devices"][0]["receipts"];
            assert_eq!(
                (&r["msg_id"], &r["delivered_at"], &r["clicked_at"]),
                (&json!(msg_id), &json!(DELIVERED_AT), &json!(CLICKED_AT)),
                "receipts through {}: {d}",
                n.name
            );
            let detail = check(&d, 0, "last_notification")["detail"]
                .as_str()
                .unwrap_or("")
                .to_string();
            assert!(detail.starts_with(&want), "through {}: {d}", n.name);
            let c = n.certificate(cert).await.expect("certificate");
            assert_eq!(
                (&c["stats"]["delivered_to_phone"], &c["stats"]["clicked"]),
                (&json!(1), &json!(1)),
                "figures through {}: {c}",
                n.name
            );
        }
        // Posted again, to the owner this time: nothing new.
        for kind in [1, 2] {
            let at = if kind == 1 { DELIVERED_AT } else { CLICKED_AT };
            let (s, v) = post_receipt(&nodes[owner], cert, &receipt(kind, at)).await;
            assert_eq!(s, 200, "{v}");
            assert_eq!(
                (&v["delivered"], &v["clicked"], &v["ignored"]),
                (&json!(0), &json!(0), &json!(1)),
                "posted again: {v}"
            );
        }
        for n in &nodes {
            let c = n.certificate(cert).await.expect("certificate");
            assert_eq!(
                (&c["stats"]["delivered_to_phone"], &c["stats"]["clicked"]),
                (&json!(1), &json!(1)),
                "figures through {}: {c}",
                n.name
            );
        }
    });
}

/// Sets the Redis ACL user `user` (on every server) with access to the keys matching
/// `key_patterns` only.
fn redis_acl(rc: &RedisCluster, user: &str, password: &str, key_patterns: &[&str]) {
    for p in rc.ports() {
        let mut args: Vec<String> = ["ACL", "SETUSER", user, "on", "resetkeys", "&*", "+@all"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.push(format!(">{password}"));
        args.extend(key_patterns.iter().map(|k| format!("~{k}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = rc.cli(p, &args);
        assert_eq!(r.trim(), "OK", "ACL SETUSER on {p}: {r}");
    }
}

/// A receipt request that fails partway is posted again by the vendor, maybe to another node,
/// and each of its receipts counts once. The node it first reaches has its own Redis user,
/// which loses access to some keys for one request at a time: first to dave's (the request
/// fails at dave's device), then to the certificate's (it fails at the figures, after the
/// tokens were unbound and the devices' receipts noted); each time the node answers 503.
/// Posted again through the other node, the request counts each delivered and clicked receipt
/// once; the vendor resending it once more changes nothing. Figures, `/metrics` and diagnosis
/// agree.
#[test]
fn a_receipt_request_posted_again_after_a_503_counts_each_receipt_once() {
    use cluster_node::Setup;
    const PASSWORD: &str = "receipt-test-password";
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    bounded(150, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let emu = emulator();
        let urls = rc.urls();
        redis_acl(&rc, "gw-r", PASSWORD, &["*"]);
        let a = Gateway::start(dir.path(), "gw-1", &emu.base_url(), Some(&urls));
        let setup = Setup {
            cluster: "redis_username = \"gw-r\"",
            env: &[("PUSHGATE_REDIS_PASSWORD", PASSWORD)],
            ..Setup::default()
        };
        let r = Gateway::start_opts(dir.path(), "gw-r", &emu.base_url(), Some(&urls), &setup);
        let (s, v) = a
            .api(
                reqwest::Method::POST,
                "/v1/certificates",
                Some(cert_body(1000)),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let cert = v["id"].as_u64().expect("id");
        wait_certificate(&r, cert, |c| c["id"] == cert).await;
        for user in ["bob", "ann", "carl", "dave"] {
            push_online([&a, &r, &a], user, "d1", cert).await;
        }
        let secret = receipt_secret(&rc, cert);
        const AT: u64 = 1_764_000_000_000;
        let targets = |users: &[&str]| users.iter().map(|u| regid(u)).collect::<Vec<_>>().join(",");
        let data = json!({
            "m-1": {"type": 1, "targets": targets(&["bob", "ann", "nobody"]), "timestamp": AT,
                    "param": secret},
            "m-2": {"type": 2, "targets": targets(&["bob"]), "timestamp": AT + 1_000,
                    "param": secret},
            "m-3": {"type": 16, "targets": targets(&["carl", "dave"]), "timestamp": AT + 2_000,
                    "param": secret},
        });

        // 1. Every key but dave's user hash (users starting with 'd'): the request fails at
        // dave, nothing of it is counted nor unbound.
        redis_acl(
            &rc,
            "gw-r",
            PASSWORD,
            &["pg:[^{]*", "pg:{[^u]*", "pg:{u:[^d]*"],
        );
        let (s, v) = post_receipt(&r, cert, &data).await;
        redis_acl(&rc, "gw-r", PASSWORD, &["*"]);
        assert_eq!(s, 503, "{v}");
        assert!(token_bound(&a, "dave").await, "dave's token");
        // 2. Posted again, every key but the certificate's: the tokens are unbound and the
        // devices' receipts noted, the figures fail.
        redis_acl(&rc, "gw-r", PASSWORD, &["pg:[^{]*", "pg:{[^c]*"]);
        let (s, v) = post_receipt(&r, cert, &data).await;
        redis_acl(&rc, "gw-r", PASSWORD, &["*"]);
        assert_eq!(s, 503, "{v}");
        for user in ["carl", "dave"] {
            assert!(!token_bound(&a, user).await, "{user}'s token unbound");
        }

        // 3. Posted again, through the other node: the receipts are counted, once each.
        let (s, v) = post_receipt(&a, cert, &data).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (
                &v["delivered"],
                &v["clicked"],
                &v["tokens_unbound"],
                &v["ignored"]
            ),
            (&json!(3), &json!(1), &json!(0), &json!(2)),
            "the tokens were unbound already: {v}"
        );
        // The vendor resends it once more: nothing new.
        let (s, v) = post_receipt(&r, cert, &data).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (
                &v["delivered"],
                &v["clicked"],
                &v["tokens_unbound"],
                &v["ignored"]
            ),
            (&json!(0), &json!(0), &json!(0), &json!(6)),
            "{v}"
        );

        let mut counted = (0.0, 0.0);
        for n in [&a, &r] {
            let c = n.certificate(cert).await.expect("certificate");
            assert_eq!(
                (&c["stats"]["delivered_to_phone"], &c["stats"]["clicked"]),
                (&json!(3), &json!(1)),
                "figures through {}: {c}",
                n.name
            );
            let m = n.metrics_text().await;
            let label = format!("certificate=\"{cert}\",vendor=\"xiaomi\"");
            counted.0 += metric(&m, "pushgate_receipts_delivered_total", &label);
            counted.1 += metric(&m, "pushgate_receipts_clicked_total", &label);
            // Each device's entry is about the last message a receipt named.
            for (user, msg, delivered, clicked) in [
                ("ann", "m-1", json!(AT), Value::Null),
                ("bob", "m-2", Value::Null, json!(AT + 1_000)),
            ] {
                let d = diagnosis(n, user).await;
                let seen = &d["devices"][0]["receipts"];
                assert_eq!(
                    (&seen["msg_id"], &seen["delivered_at"], &seen["clicked_at"]),
                    (&json!(msg), &delivered, &clicked),
                    "{user} through {}: {d}",
                    n.name
                );
            }
            for user in ["carl", "dave"] {
                let d = diagnosis(n, user).await;
                assert_eq!(
                    d["devices"][0]["receipts"]["invalid_token_at"],
                    json!(AT + 2_000),
                    "{user} through {}: {d}",
                    n.name
                );
                assert_eq!(d["devices"][0]["token_bound"], false, "{d}");
            }
        }
        assert_eq!(counted, (3.0, 1.0), "/metrics of both nodes together");
        rc.check_token_invariant();
    });
}

/// The certificate's 10027 back-off as its owner last published it in `pg:{c:<id>}:meta`
/// (1 when none).
fn shared_factor(rc: &RedisCluster, cert: u64) -> f64 {
    let meta = format!("pg:{{c:{cert}}}:meta");
    let f = rc.cli(rc.master_of(&meta), &["hget", &meta, "factor"]);
    f.trim().parse().unwrap_or(1.0)
}

/// The 10027 back-off belongs to the certificate, not to its owner: an owner that Xiaomi told
/// "too fast" publishes how far it slowed down, and when it stops, the node taking the
/// certificate over starts from there instead of at full qps into the same frequency control.
#[test]
fn a_new_owner_starts_from_the_previous_owners_back_off() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    bounded(150, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let emu = emulator();
        let mut knobs = emu.knobs();
        // The certificate may send 50 requests/s; Xiaomi takes 2/s from this app.
        knobs.qps_limit = Some(2);
        emu.set_knobs(knobs);
        let (mut nodes, cert) = cluster_node::three_nodes_with(
            &rc,
            dir.path(),
            &emu.base_url(),
            "multi_batch = 1\n",
            50,
        )
        .await;
        push_online([&nodes[0], &nodes[1], &nodes[2]], "bob", "d1", cert).await;
        const SENDS: usize = 8;
        for i in 0..SENDS {
            let v = nodes[i % 3].send("bob", "carol", &format!("m{i}")).await;
            assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
        }
        let owner = owner_of(&nodes, cert).await;
        let got = emu_wait(&emu, &regid("bob"), SENDS).await;
        assert_eq!(got, SENDS, "every notification sent, after the back-offs");
        // The owner slowed down and says so, in its metrics and in Redis.
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut seen, mut shared) = (1.0, 1.0);
        while Instant::now() < deadline {
            let m = nodes[owner].metrics_text().await;
            seen = metric(
                &m,
                "pushgate_cert_rate_factor",
                &format!("certificate=\"{cert}\""),
            );
            shared = shared_factor(&rc, cert);
            if seen < 1.0 && (shared - seen).abs() < 1e-3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(seen < 1.0, "the owner backs off after 10027: {seen}");
        assert!(
            (shared - seen).abs() < 1e-3,
            "published: {shared} in Redis, {seen} on the owner"
        );
        let mut old = nodes.remove(owner);
        assert!(
            old.terminate(Duration::from_secs(15)).await,
            "graceful stop"
        );

        // The next owner starts from that back-off, before it sends anything.
        let next = owner_of(&nodes, cert).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut now = 1.0;
        while Instant::now() < deadline {
            let m = nodes[next].metrics_text().await;
            now = metric(
                &m,
                "pushgate_cert_rate_factor",
                &format!("certificate=\"{cert}\""),
            );
            if now < 1.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The previous owner may still have published a step while it stopped: the new one
        // must have started from what Redis held when it took over, not from full speed.
        let last = shared_factor(&rc, cert);
        assert!(
            now < 1.0 && (now - last).abs() < 1e-3,
            "{} took over at {now} of the qps, the previous owner had {shared} and Redis holds {last}",
            nodes[next].name
        );
        // And recovers from there with traffic, as the previous owner would have.
        let v = nodes[0].send("bob", "carol", "after").await;
        assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
        assert_eq!(emu_wait(&emu, &regid("bob"), SENDS + 1).await, SENDS + 1);
    });
}

/// Waits (bounded) until the emulator received `n` notifications for `token`; how many it got.
async fn emu_wait(
    emu: &pushgate::providers::xiaomi::emulator::EmulatorHandle,
    token: &str,
    n: usize,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = emu.received().iter().filter(|r| r.regid == token).count();
        if got >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A certificate's figures are added to the cluster's totals once each, even when Redis applies
/// an addition whose reply the node never got (a timeout) and the node sends it again: the
/// master is paused for writes so that the addition times out. Since a node replaces its
/// connections after a timeout, Redis may drop the paused addition instead of applying it on
/// resume; then the test applies it under its number behind the node's back, as Redis would
/// have, so the node's next flush always re-sends an addition already applied.
#[test]
fn figures_sent_again_after_a_timeout_are_counted_once() {
    use pushgate::certs::CertStats;
    use pushgate::cluster::shared::FigureAdder;
    use pushgate::providers::DeliveryClass;
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    bounded(60, async {
        let cfg = ClusterConfig {
            response_timeout_ms: 300,
            overall_timeout_ms: 600,
            ..config(&rc)
        };
        let cluster = Cluster::connect(&cfg, MultiDevicePolicy::PerPlatform, 7 * 86_400)
            .await
            .expect("connect to the test cluster");
        const CERT: u64 = 4242;
        let meta = format!("pg:{{c:{CERT}}}:meta");
        let stats = CertStats::default();
        stats.count(DeliveryClass::Delivered, 5);
        stats.count(DeliveryClass::BadToken, 2);
        let adder = FigureAdder::new("gw-1#1");
        let master = rc.master_of(&meta);
        rc.cli(master, &["client", "pause", "1500", "write"]);
        let r = adder.flush(&cluster, CERT, &stats).await;
        assert!(r.is_err(), "the addition's reply timed out: {r:?}");
        // Applied on resume without the node knowing, or never: a node replaces its connections
        // after a timeout (redis-rs's failover deadlock, src/cluster/mod.rs `recover`), and Redis
        // drops a paused command whose client has gone. Either way it is counted once below.
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        let sent = rc.cli(master, &["hget", &meta, "sent"]);
        assert!(
            matches!(sent.trim(), "5" | ""),
            "applied once on resume, or not at all: {sent:?}"
        );
        eprintln!(
            "the timed-out addition was {} on resume",
            if sent.trim() == "5" {
                "applied"
            } else {
                "dropped"
            }
        );
        if sent.trim().is_empty() {
            // Dropped: apply it as Redis would have, under its number, without the node
            // learning it, so that the node's next flush sends an addition already applied.
            let (seq, added) = adder
                .unanswered(CERT)
                .expect("the addition waits to be resent");
            cluster
                .cert_figures_add(CERT, adder.field(), seq, &added)
                .await
                .expect("applied behind the node's back");
            let sent = rc.cli(master, &["hget", &meta, "sent"]);
            assert_eq!(sent.trim(), "5", "applied once");
        }
        stats.count(DeliveryClass::Delivered, 1);
        for _ in 0..3 {
            adder.flush(&cluster, CERT, &stats).await.expect("flushed");
        }
        let totals = cluster.cert_figures(CERT).await.expect("totals");
        assert_eq!(totals.sent, 6, "{totals:?}");
        assert_eq!(
            totals.failures().map(|(_, n)| n).sum::<u64>(),
            2,
            "{totals:?}"
        );
        assert_eq!(stats.shown().sent, 6, "what the API shows");
        // Another node's figures add to them.
        let other = CertStats::default();
        other.count(DeliveryClass::Delivered, 3);
        FigureAdder::new("gw-2#2")
            .flush(&cluster, CERT, &other)
            .await
            .expect("flushed");
        assert_eq!(cluster.cert_figures(CERT).await.expect("totals").sent, 9);
    });
}

/// The owner's "broken" never overwrites a fixing edit made meanwhile: a request sent with the
/// wrong AppSecret is held by Xiaomi while the secret is fixed through another node, then
/// answered 21301. That answer is about the old secret: the certificate stays healthy on every
/// node and the next notification goes out with the new one.
#[test]
fn a_broken_answer_about_the_old_secret_does_not_undo_the_fix() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    bounded(120, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let emu = emulator();
        let (nodes, _) = three_nodes(&rc, dir.path(), &emu.base_url()).await;
        let mut body = cert_body(100);
        body["app_secret"] = json!(WRONG_SECRET);
        let (s, v) = nodes[0]
            .api(reqwest::Method::POST, "/v1/certificates", Some(body))
            .await;
        assert_eq!(s, 201, "{v}");
        let cert = v["id"].as_u64().expect("id");
        for n in &nodes {
            wait_certificate(n, cert, |c| c["id"] == cert).await;
        }
        push_online([&nodes[0], &nodes[1], &nodes[2]], "bob", "d1", cert).await;
        let owner = owner_of(&nodes, cert).await;
        let editor = &nodes[(owner + 1) % 3];

        // Xiaomi holds the request sent with the wrong secret.
        let mut knobs = emu.knobs();
        knobs.hang = true;
        emu.set_knobs(knobs.clone());
        let v = editor.send("bob", "carol", "with the old secret").await;
        assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = nodes[owner].metrics_text().await;
            let sent = m
                .lines()
                .filter(|l| l.starts_with("pushgate_vendor_batch_size_count{"))
                .any(|l| l.rsplit_once(' ').is_some_and(|(_, n)| n != "0"));
            if sent {
                break;
            }
            assert!(Instant::now() < deadline, "no request sent by the owner");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Fixed through another node while it is held; then Xiaomi answers 21301.
        let mut fixed = cert_body(100);
        fixed["app_secret"] = json!(common::SECRET);
        let (s, v) = editor
            .api(
                reqwest::Method::PUT,
                &format!("/v1/certificates/{cert}"),
                Some(fixed),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        knobs.hang = false;
        emu.set_knobs(knobs);
        for n in &nodes {
            until("the old secret's notification failed", n, || async {
                let c = n.certificate(cert).await.unwrap_or(Value::Null);
                (c["stats"]["failed"]["misconfigured"] == 1, c)
            })
            .await;
        }
        // Time for the owner to publish and every node to read it (0.5 s periods).
        tokio::time::sleep(Duration::from_secs(3)).await;
        for n in &nodes {
            let c = n.certificate(cert).await.unwrap_or(Value::Null);
            assert_eq!(c["status"]["state"], "healthy", "through {}: {c}", n.name);
        }
        let v = nodes[owner]
            .send("bob", "carol", "with the new secret")
            .await;
        assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !emu
            .received()
            .iter()
            .any(|r| r.regid == regid("bob") && r.description == "with the new secret")
        {
            assert!(Instant::now() < deadline, "bob's notification never sent");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}
