//! The Xiaomi delivery path over real sockets: gateway and emulator on loopback, asserting what
//! a user would check — the notification the device gets, who gets none and why, token clean-up,
//! retries, frequency control, quota, broken credentials, a full queue, batching and metrics.
//! Every wait is a poll loop with a deadline of a few seconds.

mod common;

use common::*;
use pushgate::providers::xiaomi::emulator::{Knobs, ReceivedNotification};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn records_for(h: &Harness, regid: &str) -> Vec<ReceivedNotification> {
    h.emu
        .received()
        .into_iter()
        .filter(|r| r.regid == regid)
        .collect()
}

/// Waits until `regid` has `n` records, then a little longer to be sure no more come.
async fn exactly(h: &Harness, regid: &str, n: usize) -> Vec<ReceivedNotification> {
    wait_for(&format!("{n} notifications for {regid}"), WAIT, || async {
        (records_for(h, regid).len() >= n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = records_for(h, regid);
    assert_eq!(got.len(), n, "{regid}: {got:#?}");
    got
}

/// (user, outcome, reason) per recipient of a send reply.
fn results(v: &Value) -> Vec<(String, String, String)> {
    v["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {v}"))
        .iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap_or("").into(),
                r["outcome"].as_str().unwrap_or("").into(),
                r["reason"].as_str().unwrap_or("").into(),
            )
        })
        .collect()
}

fn outcome(user: &str, outcome: &str, reason: &str) -> (String, String, String) {
    (user.into(), outcome.into(), reason.into())
}

/// Edits a certificate: `cert_body(qps)` without the secret, then `patch`'s fields.
async fn edit_cert(h: &Harness, id: u64, qps: u32, patch: Value) -> Value {
    let mut body = cert_body(qps);
    body.as_object_mut().unwrap().remove("app_secret");
    for (k, v) in patch.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (s, v) = h
        .admin(Method::PUT, &format!("/v1/certificates/{id}"), Some(body))
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn device(h: &Harness, user: &str) -> Value {
    let (s, v) = h.api(Method::GET, &format!("/v1/users/{user}"), None).await;
    assert_eq!(s, 200, "{v}");
    v["devices"][0].clone()
}

fn diag_check<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {d}"))
}

/// Waits until the device's last notification has a class, and returns it.
/// One time per vendor request: the first receive time of each Xiaomi message id, sorted.
fn request_times(records: &[ReceivedNotification]) -> Vec<u64> {
    let mut first: BTreeMap<&str, u64> = BTreeMap::new();
    for r in records {
        let t = first.entry(&r.message_id).or_insert(r.received_at_ms);
        *t = (*t).min(r.received_at_ms);
    }
    let mut times: Vec<u64> = first.into_values().collect();
    times.sort_unstable();
    times
}

/// The most requests starting in any 1-second window.
fn max_per_second(times: &[u64]) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t < times[i] + 1000)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// 1. Every field of the notification a killed user gets, as the device would decode it.
#[tokio::test]
async fn killed_user_gets_one_notification_with_every_field() {
    let h = Harness::start().await;
    let cert = h.certificate(100).await;
    h.push_online("alice", "d1", cert, "regid-alice").await;

    // Text only: the default title, the text as description, the certificate's channel.
    let v = h
        .send(json!({"to":["alice"],"from":"bob","text":"你好 👋 世界"}))
        .await;
    assert_eq!(results(&v), vec![outcome("alice", "push_queued", "")]);
    let r = exactly(&h, "regid-alice", 1).await.remove(0);
    assert_eq!(r.endpoint, "/v3/message/regid");
    assert_eq!(r.package, PACKAGE);
    assert_eq!(r.title, "a new message");
    assert_eq!(r.description, "你好 👋 世界");
    assert_eq!(r.pass_through, 0);
    assert_eq!(r.notify_type, Some(-1));
    let first_notify_id = r.notify_id.expect("notify_id");
    assert_eq!(r.extras.get("notify_effect").map(String::as_str), Some("1"));
    assert_eq!(
        r.extras.get("channel_id").map(String::as_str),
        Some("101556")
    );
    for absent in ["ext", "intent_uri", "web_uri"] {
        assert!(!r.extras.contains_key(absent), "{absent}: {:?}", r.extras);
    }
    assert_eq!(h.last_class("alice", WAIT).await, "delivered");

    // Title, desc, ext and channel from the message; long text is cut to Xiaomi's limits by
    // characters (title < 50, description < 128). Same conversation: same notify_id.
    let long_title = "标题".repeat(40);
    let long_desc = "消息内容".repeat(50);
    h.emu.clear();
    h.send(json!({"to":["alice"],"from":"bob","text":"ignored",
        "offline_push":{"title":long_title,"desc":long_desc,"ext":"{\"conv\":\"c2c_bob\"}",
        "channel_id":"high_system"}}))
        .await;
    let r = exactly(&h, "regid-alice", 1).await.remove(0);
    assert_eq!(r.title, long_title.chars().take(49).collect::<String>());
    assert_eq!(
        r.description,
        long_desc.chars().take(127).collect::<String>()
    );
    assert_eq!(r.notify_id, Some(first_notify_id));
    assert_eq!(
        r.extras.get("channel_id").map(String::as_str),
        Some("high_system")
    );
    assert_eq!(
        r.extras.get("ext").map(String::as_str),
        Some("{\"conv\":\"c2c_bob\"}")
    );

    // Click actions follow certificate edits; another conversation gets another notify_id.
    let intent =
        "intent://chat/detail#Intent;scheme=pushgate;component=com.example.chat/.Detail;end";
    edit_cert(
        &h,
        cert,
        100,
        json!({"click_action":{"type":"open_activity","intent_uri":intent}}),
    )
    .await;
    h.emu.clear();
    h.send(json!({"to":["alice"],"from":"bob","text":"in a group","conversation":"group:g1"}))
        .await;
    let r = exactly(&h, "regid-alice", 1).await.remove(0);
    assert_eq!(r.extras.get("notify_effect").map(String::as_str), Some("2"));
    assert_eq!(r.extras.get("intent_uri").map(String::as_str), Some(intent));
    assert!(!r.extras.contains_key("web_uri"));
    assert_ne!(r.notify_id, Some(first_notify_id));
    let group_notify_id = r.notify_id;

    let url = "https://example.com/chat?c=g1";
    edit_cert(
        &h,
        cert,
        100,
        json!({"click_action":{"type":"open_url","url":url}}),
    )
    .await;
    h.emu.clear();
    h.send(json!({"to":["alice"],"from":"carol","text":"again","conversation":"group:g1"}))
        .await;
    let r = exactly(&h, "regid-alice", 1).await.remove(0);
    assert_eq!(r.extras.get("notify_effect").map(String::as_str), Some("3"));
    assert_eq!(r.extras.get("web_uri").map(String::as_str), Some(url));
    assert!(!r.extras.contains_key("intent_uri"));
    assert_eq!(r.notify_id, group_notify_id);
}

/// 2. Foreground, logged-out, kicked and push_flag=1 users get no notification, and the
/// results say why.
#[tokio::test]
async fn users_who_must_not_be_pushed_get_nothing() {
    let h = Harness::start().await;
    let cert = h.certificate(100).await;
    h.event("fg", "d1", "login").await;
    assert_eq!(h.token("fg", "d1", cert, "regid-fg").await.0, 200);
    h.event("out", "d1", "login").await;
    assert_eq!(h.token("out", "d1", cert, "regid-out").await.0, 200);
    h.event("out", "d1", "logout").await;
    h.event("kicked", "d1", "login").await;
    assert_eq!(h.token("kicked", "d1", cert, "regid-kicked").await.0, 200);
    h.event("kicked", "d1", "kicked").await;
    h.push_online("killed", "d1", cert, "regid-killed").await;

    let v = h
        .send(json!({"to":["fg","out","kicked"],"from":"bob","text":"hi"}))
        .await;
    assert_eq!(
        results(&v),
        vec![
            outcome("fg", "online", ""),
            outcome("out", "skipped", "logged_out"),
            outcome("kicked", "skipped", "kicked"),
        ]
    );
    let v = h
        .send(json!({"to":["killed"],"from":"bob","text":"quiet","offline_push":{"push_flag":1}}))
        .await;
    assert_eq!(
        results(&v),
        vec![outcome("killed", "skipped", "push_flag_disabled")]
    );
    // A message that is pushed, sent last: once it arrived, nothing else is on its way.
    h.send(json!({"to":["killed"],"from":"bob","text":"loud"}))
        .await;
    let r = exactly(&h, "regid-killed", 1).await;
    assert_eq!(r[0].description, "loud");
    let all = h.emu.received();
    assert_eq!(all.len(), 1, "{all:#?}");
}

/// 3. A regId Xiaomi calls bad is unbound, and only that one; 20301 unbinds them all.
#[tokio::test]
async fn bad_regids_unbind_their_tokens() {
    let h = Harness::start().await;
    let cert = h.certificate(100).await;
    h.emu
        .add_invalid_regids(["regid-bad", "regid-dead-1", "regid-dead-2"]);
    for (u, t) in [
        ("good1", "regid-good-1"),
        ("bad", "regid-bad"),
        ("good2", "regid-good-2"),
    ] {
        h.push_online(u, "d1", cert, t).await;
    }
    let v = h
        .send(json!({"to":["good1","bad","good2"],"from":"bob","text":"hi"}))
        .await;
    assert!(results(&v).iter().all(|r| r.1 == "push_queued"), "{v}");
    exactly(&h, "regid-good-1", 1).await;
    exactly(&h, "regid-good-2", 1).await;
    // One request carried all three.
    let all = h.emu.received();
    assert_eq!(request_times(&all).len(), 1, "{all:#?}");

    wait_for("bad's token unbound", WAIT, || async {
        (device(&h, "bad").await["token_bound"] == false).then_some(())
    })
    .await;
    for u in ["good1", "good2"] {
        assert_eq!(device(&h, u).await["token_bound"], true, "{u}");
    }
    assert_eq!(
        metric(&h.metrics().await, "pushgate_tokens_unbound_total", ""),
        1.0
    );
    assert_eq!(h.last_class("bad", WAIT).await, "bad_token");
    let d = h.diagnosis("bad").await;
    let last = diag_check(&d, "last_notification");
    assert_eq!(last["ok"], false, "{d}");
    assert!(
        last["detail"].as_str().unwrap().starts_with("bad_token"),
        "{d}"
    );
    assert_eq!(diag_check(&d, "token_reported")["ok"], false, "{d}");
    let v = h
        .send(json!({"to":["bad"],"from":"bob","text":"again"}))
        .await;
    assert_eq!(
        results(&v),
        vec![outcome("bad", "skipped", "no_push_token")]
    );
    assert_eq!(h.cert_view(cert).await["stats"]["failed"]["bad_token"], 1);

    // Every target invalid: 20301, and every token of the request is unbound.
    h.push_online("dead1", "d1", cert, "regid-dead-1").await;
    h.push_online("dead2", "d1", cert, "regid-dead-2").await;
    h.send(json!({"to":["dead1","dead2"],"from":"bob","text":"hello?"}))
        .await;
    for u in ["dead1", "dead2"] {
        wait_for(&format!("{u}'s token unbound"), WAIT, || async {
            (device(&h, u).await["token_bound"] == false).then_some(())
        })
        .await;
        assert_eq!(h.last_class(u, WAIT).await, "no_valid_targets");
    }
    assert_eq!(
        metric(&h.metrics().await, "pushgate_tokens_unbound_total", ""),
        3.0
    );
    assert_eq!(device(&h, "good1").await["token_bound"], true);
    assert!(records_for(&h, "regid-dead-1").is_empty());
    let stats = h.emu.stats();
    assert_eq!(stats.requests["/v3/message/regid"]["20301"], 1, "{stats:?}");
    h.server.gateway.check_invariants().unwrap();
}

/// 4. A burst of 5xx is retried with the SDK's backoff and delivered exactly once.
#[tokio::test]
async fn a_5xx_burst_is_retried_and_delivered_once() {
    let h = Harness::start().await;
    let cert = h.certificate(100).await;
    h.push_online("alice", "d1", cert, "regid-alice").await;
    h.emu.set_knobs(Knobs {
        error_5xx_ratio: 1.0,
        ..Knobs::default()
    });
    h.send(json!({"to":["alice"],"from":"bob","text":"through the storm"}))
        .await;
    wait_for("a 503 answered", WAIT, || async {
        let s = h.emu.stats();
        let n = s
            .requests
            .get("/v3/message/regid")
            .and_then(|r| r.get("http_503"))
            .copied()
            .unwrap_or(0);
        (n >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.emu.set_knobs(Knobs::default());
    // The first retry waits 0.5–1.5 s.
    let r = exactly(&h, "regid-alice", 1).await;
    assert_eq!(r[0].description, "through the storm");
    assert_eq!(h.last_class("alice", WAIT).await, "delivered");
    let m = h.metrics().await;
    assert!(
        metric(
            &m,
            "pushgate_vendor_requests_total",
            "kind=\"regid\",result=\"transient\",vendor=\"xiaomi\""
        ) >= 1.0,
        "{m}"
    );
    let v = h.cert_view(cert).await;
    assert_eq!(v["stats"]["sent"], 1, "{v}");
    assert_eq!(v["stats"]["failed"]["transient"], 0, "{v}");
}

/// 5. 10027 slows the sender down; everything still arrives, once.
#[tokio::test]
async fn rate_limit_answers_slow_the_sender_down() {
    let h = Harness::start_with(|c| c.push.multi_batch = 1).await;
    let cert = h.certificate(50).await;
    h.push_online("alice", "d1", cert, "regid-alice").await;
    const KNOB: usize = 5;
    const N: usize = 15;
    h.emu.set_knobs(Knobs {
        qps_limit: Some(KNOB as u32),
        ..Knobs::default()
    });
    for i in 0..N {
        h.send(json!({"to":["alice"],"from":"bob","text":format!("message {i}")}))
            .await;
    }
    let got = wait_for(
        "every message through the rate limit",
        Duration::from_secs(20),
        || async {
            let r = records_for(&h, "regid-alice");
            (r.len() >= N).then_some(r)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(records_for(&h, "regid-alice").len(), N, "no duplicates");
    let mut texts: Vec<&str> = got.iter().map(|r| r.description.as_str()).collect();
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), N, "each message once: {texts:?}");

    let v = h.cert_view(cert).await;
    let limited = v["stats"]["rate_limited"].as_u64().unwrap();
    assert!(limited > 0, "{v}");
    let refused = h.emu.stats().requests["/v3/message/regid"]
        .get("10027")
        .copied()
        .unwrap_or(0);
    assert_eq!(limited, refused, "every 10027 counted once");
    // Slowing down means a handful of refusals, not one per request over the limit.
    assert!(
        limited <= 8,
        "{limited} rate-limit answers for {N} messages"
    );
    // What got through: at most the knob per second (twice it across a second boundary).
    let per_second = max_per_second(&request_times(&got));
    assert!(per_second <= 2 * KNOB, "{per_second} in one second");
    assert_eq!(v["stats"]["sent"], N as u64, "{v}");
}

/// 6. 200001 pauses the certificate until the next midnight, China time.
#[tokio::test]
async fn daily_quota_pauses_the_certificate() {
    let h = Harness::start().await;
    let cert = h.certificate(100).await;
    h.push_online("alice", "d1", cert, "regid-alice").await;
    h.push_online("bob", "d1", cert, "regid-bob").await;
    h.emu.set_knobs(Knobs {
        daily_quota: Some(1),
        ..Knobs::default()
    });
    h.send(json!({"to":["alice"],"from":"carol","text":"first"}))
        .await;
    exactly(&h, "regid-alice", 1).await;
    h.send(json!({"to":["alice"],"from":"carol","text":"over quota"}))
        .await;
    // The pause and the failure's count are two updates; a loaded machine can show one first.
    let v = wait_for(
        "the certificate paused, one quota failure",
        WAIT,
        || async {
            let v = h.cert_view(cert).await;
            (v["status"]["state"] == "quota_paused" && v["stats"]["failed"]["quota_exceeded"] == 1)
                .then_some(v)
        },
    )
    .await;
    let now = now_ms() / 1000;
    let china_day = (now + 8 * 3600) / 86_400;
    let next_midnight = (china_day + 1) * 86_400 - 8 * 3600;
    let until = v["status"]["paused_until"].as_u64().unwrap();
    assert!(until > now, "{v}");
    assert_eq!(until, next_midnight, "{v}");
    assert_eq!(v["stats"]["failed"]["quota_exceeded"], 1, "{v}");
    assert_eq!(h.last_class("alice", WAIT).await, "quota_exceeded");

    let v = h
        .send(json!({"to":["alice","bob"],"from":"carol","text":"later"}))
        .await;
    assert_eq!(
        results(&v),
        vec![
            outcome("alice", "skipped", "quota_paused"),
            outcome("bob", "skipped", "quota_paused"),
        ]
    );
    let d = h.diagnosis("bob").await;
    let healthy = diag_check(&d, "certificate_healthy");
    assert_eq!(healthy["ok"], false, "{d}");
    assert!(healthy["detail"].as_str().unwrap().contains("quota"), "{d}");
    assert_eq!(d["would_push"], false);
    let m = h.metrics().await;
    assert_eq!(
        metric(&m, "pushgate_certificates", "state=\"quota_paused\""),
        1.0
    );
    assert_eq!(
        metric(&m, "pushgate_certificates", "state=\"healthy\""),
        0.0
    );
    assert_eq!(records_for(&h, "regid-bob").len(), 0);
    assert_eq!(records_for(&h, "regid-alice").len(), 1);
}

/// 7. A wrong AppSecret marks the certificate broken until it is edited.
#[tokio::test]
async fn a_wrong_app_secret_breaks_the_certificate_until_fixed() {
    let h = Harness::start().await;
    let mut body = cert_body(100);
    body["app_secret"] = json!("d3Jvbmctc2VjcmV0LXh4eA==");
    let (s, v) = h.admin(Method::POST, "/v1/certificates", Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let cert = v["id"].as_u64().unwrap();
    h.push_online("alice", "d1", cert, "regid-alice").await;
    h.push_online("bob", "d1", cert, "regid-bob").await;

    h.send(json!({"to":["alice"],"from":"carol","text":"hi"}))
        .await;
    let v = wait_for("the certificate broken", WAIT, || async {
        let v = h.cert_view(cert).await;
        (v["status"]["state"] == "broken").then_some(v)
    })
    .await;
    assert!(
        v["status"]["reason"].as_str().unwrap().contains("21301"),
        "{v}"
    );
    assert_eq!(v["stats"]["failed"]["misconfigured"], 1, "{v}");
    assert_eq!(h.last_class("alice", WAIT).await, "misconfigured");
    let v = h
        .send(json!({"to":["alice","bob"],"from":"carol","text":"still?"}))
        .await;
    assert_eq!(
        results(&v),
        vec![
            outcome("alice", "skipped", "certificate_broken"),
            outcome("bob", "skipped", "certificate_broken"),
        ]
    );
    let d = h.diagnosis("bob").await;
    let healthy = diag_check(&d, "certificate_healthy");
    assert_eq!(healthy["ok"], false, "{d}");
    assert!(healthy["detail"].as_str().unwrap().contains("21301"), "{d}");
    let m = h.metrics().await;
    assert_eq!(metric(&m, "pushgate_certificates", "state=\"broken\""), 1.0);
    assert!(h.emu.received().is_empty());

    // The right secret: healthy again, and delivery works.
    let v = edit_cert(&h, cert, 100, json!({"app_secret": SECRET})).await;
    assert_eq!(v["status"]["state"], "healthy", "{v}");
    let v = h
        .send(json!({"to":["alice","bob"],"from":"carol","text":"fixed"}))
        .await;
    assert!(results(&v).iter().all(|r| r.1 == "push_queued"), "{v}");
    exactly(&h, "regid-alice", 1).await;
    exactly(&h, "regid-bob", 1).await;
    assert_eq!(h.last_class("alice", WAIT).await, "delivered");
    let m = h.metrics().await;
    assert_eq!(metric(&m, "pushgate_certificates", "state=\"broken\""), 0.0);
    assert_eq!(
        metric(&m, "pushgate_certificates", "state=\"healthy\""),
        1.0
    );
}

/// 8. A full push queue says so in the results and the certificate's figures; what was
/// accepted is delivered once the vendor answers again.
#[tokio::test]
async fn a_full_queue_is_reported() {
    const CAPACITY: usize = 3;
    let h = Harness::start_with(|c| c.push.queue_capacity = CAPACITY).await;
    let cert = h.certificate(100).await;
    let users: Vec<String> = (0..8).map(|i| format!("u{i}")).collect();
    for u in &users {
        h.push_online(u, "d1", cert, &format!("regid-{u}")).await;
    }
    h.emu.set_knobs(Knobs {
        hang: true,
        ..Knobs::default()
    });
    let v = h
        .send(json!({"to":users,"from":"bob","text":"crowded"}))
        .await;
    let r = results(&v);
    let queued: Vec<&String> = r
        .iter()
        .filter(|x| x.1 == "push_queued")
        .map(|x| &x.0)
        .collect();
    let full = r
        .iter()
        .filter(|x| x.1 == "skipped" && x.2 == "push_queue_full")
        .count();
    assert_eq!(queued.len(), CAPACITY, "{v}");
    assert_eq!(full, users.len() - CAPACITY, "{v}");
    let c = h.cert_view(cert).await;
    assert_eq!(
        c["stats"]["failed"]["queue_full"],
        (users.len() - CAPACITY) as u64,
        "{c}"
    );
    assert_eq!(c["stats"]["queued"], CAPACITY as u64, "{c}");
    let m = h.metrics().await;
    assert_eq!(
        metric(&m, "pushgate_skipped_total", "reason=\"push_queue_full\""),
        (users.len() - CAPACITY) as f64
    );
    // Still hanging: nothing arrived. Release it well inside the client's timeout.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.emu.received().is_empty());
    h.emu.set_knobs(Knobs::default());
    for u in &queued {
        exactly(&h, &format!("regid-{u}"), 1).await;
    }
    assert_eq!(h.emu.received().len(), CAPACITY);
    let c = wait_for("the queue drained", WAIT, || async {
        let c = h.cert_view(cert).await;
        (c["stats"]["queued"] == 0).then_some(c)
    })
    .await;
    assert_eq!(c["stats"]["sent"], CAPACITY as u64, "{c}");
}

/// 9. Frequency control: never more than qps + burst requests in any second (upper bound
/// only), and an edited qps applies to the very next second.
#[tokio::test]
async fn frequency_control_caps_requests_per_second() {
    // One notification per request, so requests are easy to count.
    let h = Harness::start_with(|c| {
        c.push.multi_batch = 1;
        c.push.burst = 1;
    })
    .await;
    const QPS: u32 = 20;
    const SLOW: u32 = 4;
    const N: usize = 40;
    let cert = h.certificate(QPS).await;
    h.push_online("alice", "d1", cert, "regid-alice").await;
    for i in 0..N {
        h.send(json!({"to":["alice"],"from":"bob","text":format!("message {i}")}))
            .await;
    }
    wait_for("half the messages at the first rate", WAIT, || async {
        (records_for(&h, "regid-alice").len() >= N / 2).then_some(())
    })
    .await;
    let slow_from = now_ms();
    edit_cert(&h, cert, SLOW, json!({})).await;
    let slow_applied = now_ms();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let slow_to = now_ms();
    edit_cert(&h, cert, 1000, json!({})).await;
    exactly(&h, "regid-alice", N).await;

    let times = request_times(&h.emu.received());
    assert_eq!(times.len(), N, "one request per message");
    let fast: Vec<u64> = times.iter().copied().filter(|t| *t < slow_from).collect();
    let slow: Vec<u64> = times
        .iter()
        .copied()
        .filter(|t| *t >= slow_applied && *t < slow_to)
        .collect();
    let fast_max = max_per_second(&fast);
    let bound = (f64::from(QPS) * 1.2) as usize + 2;
    assert!(
        fast_max <= bound,
        "{fast_max} requests in one second at qps {QPS}"
    );
    let slow_max = max_per_second(&slow);
    let bound = (f64::from(SLOW) * 1.2) as usize + 2;
    assert!(
        slow_max <= bound,
        "{slow_max} requests in one second after qps was set to {SLOW}: {slow:?}"
    );
}

/// 10 and 11. Identical content is one `/v3/message/regid` request with many regIds,
/// different content one `/v2/multi_messages/regids` request; the metrics show it.
#[tokio::test]
async fn batching_by_content_and_the_metrics() {
    // A long linger so separately sent messages meet in one batch.
    let h = Harness::start_with(|c| c.push.linger_ms = 300).await;
    let cert = h.certificate(100).await;
    let users: Vec<String> = (0..5).map(|i| format!("u{i}")).collect();
    for u in &users {
        h.push_online(u, "d1", cert, &format!("regid-{u}")).await;
    }
    h.send(json!({"to":users,"from":"bob","text":"same for all"}))
        .await;
    for u in &users {
        exactly(&h, &format!("regid-{u}"), 1).await;
    }
    let all = h.emu.received();
    assert!(all.iter().all(|r| r.endpoint == "/v3/message/regid"));
    assert_eq!(request_times(&all).len(), 1, "one request: {all:#?}");
    assert!(all.iter().all(|r| r.trace_id == all[0].trace_id));

    h.emu.clear();
    for (i, u) in users.iter().take(3).enumerate() {
        h.send(json!({"to":[u],"from":"bob","text":format!("just for {i}")}))
            .await;
    }
    for (i, u) in users.iter().take(3).enumerate() {
        let r = exactly(&h, &format!("regid-{u}"), 1).await;
        assert_eq!(r[0].description, format!("just for {i}"));
        assert_eq!(r[0].title, "a new message");
        assert_eq!(
            r[0].extras.get("channel_id").map(String::as_str),
            Some("101556")
        );
    }
    let all = h.emu.received();
    assert!(
        all.iter()
            .all(|r| r.endpoint == "/v2/multi_messages/regids"),
        "{all:#?}"
    );
    assert_eq!(request_times(&all).len(), 1, "one request: {all:#?}");

    wait_for("all eight counted", WAIT, || async {
        let m = h.metrics().await;
        (metric(
            &m,
            "pushgate_notifications_total",
            "outcome=\"delivered\",vendor=\"xiaomi\"",
        ) == 8.0)
            .then_some(())
    })
    .await;
    let m = h.metrics().await;
    let req = |kind: &str| {
        metric(
            &m,
            "pushgate_vendor_requests_total",
            &format!("kind=\"{kind}\",result=\"delivered\",vendor=\"xiaomi\""),
        )
    };
    assert_eq!(req("regid"), 1.0, "{m}");
    assert_eq!(req("multi_messages"), 1.0, "{m}");
    let batch = |kind: &str, what: &str| {
        metric(
            &m,
            &format!("pushgate_vendor_batch_size_{what}"),
            &format!("kind=\"{kind}\",vendor=\"xiaomi\""),
        )
    };
    assert_eq!(batch("regid", "count"), 1.0, "{m}");
    assert_eq!(batch("regid", "sum"), 5.0, "{m}");
    assert_eq!(batch("multi_messages", "count"), 1.0, "{m}");
    assert_eq!(batch("multi_messages", "sum"), 3.0, "{m}");
    assert_eq!(
        metric(&m, "pushgate_accept_to_vendor_seconds_count", ""),
        8.0,
        "{m}"
    );
    // The linger is part of the wait, so at least that long in total.
    assert!(metric(&m, "pushgate_accept_to_vendor_seconds_sum", "") > 0.0);
    assert_eq!(
        metric(&m, "pushgate_certificates", "state=\"healthy\""),
        1.0
    );
    assert_eq!(metric(&m, "pushgate_certificates", "state=\"broken\""), 0.0);
    assert_eq!(
        metric(&m, "pushgate_certificates", "state=\"quota_paused\""),
        0.0
    );
    assert_eq!(h.cert_view(cert).await["stats"]["sent"], 8);
}

/// 6b. The multi-message API never answers 200001: it accepts what the quota allows and says
/// how many went over in `channel_exceed_quota` (spec §5.3). Those are not delivered, and the
/// certificate is paused just the same.
#[tokio::test]
async fn multi_request_over_quota_pauses_too() {
    let h = Harness::start_with(|c| c.push.linger_ms = 300).await;
    let cert = h.certificate(100).await;
    let users = ["u0", "u1", "u2"];
    for u in users {
        h.push_online(u, "d1", cert, &format!("regid-{u}")).await;
    }
    h.emu.set_knobs(Knobs {
        daily_quota: Some(2),
        ..Knobs::default()
    });
    for u in users {
        h.send(json!({"to":[u],"from":"bob","text":format!("just for {u}")}))
            .await;
    }
    let v = wait_for("the certificate paused", WAIT, || async {
        let v = h.cert_view(cert).await;
        (v["status"]["state"] == "quota_paused").then_some(v)
    })
    .await;
    let got = h.emu.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got
        .iter()
        .all(|r| r.endpoint == "/v2/multi_messages/regids"));
    let stats = wait_for("all three finished", WAIT, || async {
        let v = h.cert_view(cert).await;
        (v["stats"]["queued"] == 0).then_some(v["stats"].clone())
    })
    .await;
    assert_eq!(stats["sent"], 2, "{v}");
    assert_eq!(stats["failed"]["quota_exceeded"], 1, "{v}");
    let mut classes = Vec::new();
    for u in users {
        classes.push(h.last_class(u, WAIT).await);
    }
    classes.sort();
    assert_eq!(classes, ["delivered", "delivered", "quota_exceeded"]);
    let v = h
        .send(json!({"to":["u0"],"from":"bob","text":"later"}))
        .await;
    assert_eq!(results(&v), vec![outcome("u0", "skipped", "quota_paused")]);
}
