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

use cluster_node::{bounded, push_online, three_nodes, wait_certificate, Gateway};
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

/// Which node consumes `cert`'s queue (`pushgate_cert_owned`), once one does.
async fn owner_of(nodes: &[Gateway], cert: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, n) in nodes.iter().enumerate() {
            let m = n.metrics_text().await;
            if metric(
                &m,
                "pushgate_cert_owned",
                &format!("certificate=\"{cert}\""),
            ) == 1.0
            {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no node owns certificate {cert}");
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
