//! Huawei delivery over real sockets: the gateway and the Huawei emulator on loopback, asserting
//! what a user would check — the notification the device gets (auth, classification, title,
//! body, ext, click action), the cached and renewed access token, batching, invalid tokens
//! unbound (and kept when 80300007 could mean a wrong app id), flow control, a refused secret
//! shown as a broken certificate, 5xx retried, and every notification accounted for.

mod common;

use common::*;
use pushgate::providers::huawei::emulator::{
    self, EmulatorConfig, EmulatorHandle, Knobs, OAuthApp, ReceivedNotification,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::future::Future;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);
const APP_ID: &str = "10086";
const CLIENT_SECRET: &str = "hw/secret+for=tests";

async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(t0.elapsed() < within, "timed out after {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Hw {
    h: Harness,
    emu: EmulatorHandle,
}

async fn start() -> Hw {
    let emu = emulator::start(
        EmulatorConfig {
            apps: vec![OAuthApp::new(APP_ID, CLIENT_SECRET, &[])],
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let (base, auth) = (emu.base_url(), emu.auth_url());
    let h = Harness::start_with(move |c| {
        c.huawei_base_url = base;
        c.huawei_auth_url = auth;
    })
    .await;
    Hw { h, emu }
}

fn cert_body(secret: &str) -> Value {
    json!({
        "vendor": "huawei",
        "package_name": PACKAGE,
        "app_id": APP_ID,
        "app_secret": secret,
        "click_action": {"type": "open_app"},
        "qps": 100
    })
}

impl Hw {
    async fn certificate(&self) -> u64 {
        let (s, v) = self
            .h
            .admin(Method::POST, "/v1/certificates", Some(cert_body(CLIENT_SECRET)))
            .await;
        assert_eq!(s, 201, "{v}");
        assert!(v.get("app_secret").is_none(), "{v}");
        v["id"].as_u64().unwrap()
    }

    fn records(&self, token: &str) -> Vec<ReceivedNotification> {
        self.emu
            .received()
            .into_iter()
            .filter(|r| r.token == token)
            .collect()
    }

    async fn exactly(&self, token: &str, n: usize) -> Vec<ReceivedNotification> {
        wait_for(&format!("{n} notifications for {token}"), WAIT, || async {
            (self.records(token).len() >= n).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = self.records(token);
        assert_eq!(got.len(), n, "{token}: {got:#?}");
        got
    }

    async fn cert_view(&self, id: u64) -> Value {
        let (s, v) = self
            .h
            .admin(Method::GET, &format!("/v1/certificates/{id}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    async fn device(&self, user: &str) -> Value {
        let (s, v) = self
            .h
            .api(Method::GET, &format!("/v1/users/{user}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v["devices"][0].clone()
    }

    async fn last_notification(&self, user: &str) -> Value {
        wait_for(&format!("a last notification for {user}"), WAIT, || async {
            let (_, d) = self
                .h
                .api(Method::GET, &format!("/v1/users/{user}/diagnosis"), None)
                .await;
            let n = d["devices"][0]["last_notification"].clone();
            n["class"].is_string().then_some(n)
        })
        .await
    }

    /// sent + every failure class = `n`: nothing unaccounted for.
    async fn accounted(&self, cert: u64, n: u64) {
        let v = wait_for("every notification accounted for", WAIT, || async {
            let v = self.cert_view(cert).await;
            let failed: u64 = v["stats"]["failed"]
                .as_object()
                .map(|f| f.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0);
            (v["stats"]["sent"].as_u64().unwrap_or(0) + failed == n).then_some(v)
        })
        .await;
        assert!(v["stats"].is_object(), "{v}");
    }
}

/// The notification a killed user gets, field by field, and one token fetch for many sends.
#[tokio::test]
async fn killed_user_gets_a_huawei_notification_with_every_field() {
    let t = start().await;
    let cert = t.certificate().await;
    t.h.push_online("alice", "d1", cert, "hw-token-alice").await;
    t.h.send(json!({"to":["alice"],"from":"bob","text":"hi alice",
        "offline_push":{"ext":"{\"conv\":\"c2c_bob\"}"}}))
        .await;
    let r = &t.exactly("hw-token-alice", 1).await[0];
    assert_eq!(r.endpoint, format!("/v1/{APP_ID}/messages:send"));
    assert_eq!(r.title, "a new message");
    assert_eq!(r.body, "hi alice");
    assert_eq!(r.category, "IM");
    assert_eq!(r.importance, "NORMAL");
    // Open-app with ext: an intent to the launcher that carries ext.
    assert_eq!(r.click_type, 1);
    assert_eq!(r.ext.as_deref(), Some("{\"conv\":\"c2c_bob\"}"));
    assert!(r.intent.as_deref().unwrap().contains(&format!("package={PACKAGE}")));
    for i in 0..3 {
        t.h.send(json!({"to":["alice"],"from":"bob","text":format!("again {i}"),
            "offline_push":{"title":"Bob"}}))
            .await;
    }
    let got = t.exactly("hw-token-alice", 4).await;
    assert!(got[1..].iter().all(|r| r.title == "Bob"));
    // One access token for every request of the certificate.
    assert_eq!(t.emu.stats().tokens_issued, 1);
    assert_eq!(t.last_notification("alice").await["class"], "delivered");
    t.accounted(cert, 4).await;
}

/// Per-message fields (/v1 `offline_push`) override the certificate's classification.
#[tokio::test]
async fn per_message_huawei_fields_reach_the_wire() {
    let t = start().await;
    let cert = t.certificate().await;
    t.h.push_online("alice", "d1", cert, "hw-a").await;
    t.h.send(json!({"to":["alice"],"from":"bob","text":"call me",
        "offline_push":{"title":"Bob","huawei_category":"VOIP","huawei_importance":"LOW",
                        "huawei_channel_id":"calls","sound":"ring"}}))
        .await;
    let r = &t.exactly("hw-a", 1).await[0];
    assert_eq!((r.category.as_str(), r.importance.as_str()), ("VOIP", "LOW"));
    assert_eq!(r.channel_id.as_deref(), Some("calls"));
    assert_eq!(r.message["android"]["notification"]["sound"], "/raw/ring");
    assert_eq!(r.message["android"]["notification"]["default_sound"], false);
    // A category Huawei does not know is refused at the API, naming the field.
    let (s, v) = t
        .h
        .api(
            Method::POST,
            "/v1/messages",
            Some(json!({"to":["alice"],"from":"bob","text":"x",
                "offline_push":{"huawei_category":"CHAT"}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("huawei_category"), "{v}");
}

/// An expired access token is renewed at once and the request resent; concurrent requests of a
/// certificate share one token fetch.
#[tokio::test]
async fn an_expired_access_token_is_renewed_once_and_shared() {
    let t = start().await;
    let cert = t.certificate().await;
    let users: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    for u in &users {
        t.h.push_online(u, "d1", cert, &format!("tok-{u}")).await;
    }
    // Distinct content per user: 20 requests, several in flight at once.
    for u in &users {
        t.h.send(json!({"to":[u],"from":"bob","text":format!("hello {u}")}))
            .await;
    }
    wait_for("20 notifications", WAIT, || async {
        (t.emu.received().len() >= 20).then_some(())
    })
    .await;
    assert_eq!(t.emu.stats().tokens_issued, 1, "one fetch shared by every request");

    t.emu.expire_access_tokens();
    t.h.send(json!({"to":["u0"],"from":"bob","text":"after expiry"}))
        .await;
    let got = t.exactly("tok-u0", 2).await;
    assert_eq!(got[1].body, "after expiry");
    let stats = t.emu.stats();
    assert_eq!(stats.tokens_issued, 2, "{stats:?}");
    let path = format!("/v1/{APP_ID}/messages:send");
    assert_eq!(stats.requests[&path].get("80200003").copied(), Some(1), "{stats:?}");
    assert_eq!(t.last_notification("u0").await["class"], "delivered");
    t.accounted(cert, 21).await;
}

/// Identical content to many tokens is one request; distinct content is one request each.
#[tokio::test]
async fn identical_content_shares_a_request_distinct_content_does_not() {
    let t = start().await;
    let cert = t.certificate().await;
    for u in ["a", "b", "c"] {
        t.h.push_online(u, "d1", cert, &format!("tok-{u}")).await;
    }
    t.h.send(json!({"to":["a","b","c"],"from":"bob","text":"to all"}))
        .await;
    for u in ["a", "b", "c"] {
        t.exactly(&format!("tok-{u}"), 1).await;
    }
    let ids: std::collections::HashSet<String> =
        t.emu.received().into_iter().map(|r| r.request_id).collect();
    assert_eq!(ids.len(), 1, "one request for identical content");
    t.emu.clear();
    for u in ["a", "b", "c"] {
        t.h.send(json!({"to":[u],"from":"bob","text":format!("for {u}")}))
            .await;
    }
    for u in ["a", "b", "c"] {
        t.exactly(&format!("tok-{u}"), 1).await;
    }
    let ids: std::collections::HashSet<String> =
        t.emu.received().into_iter().map(|r| r.request_id).collect();
    assert_eq!(ids.len(), 3, "one request per distinct content");
    let m = t.h.metrics().await;
    assert!(
        metric(&m, "pushgate_vendor_requests_total", "kind=\"token\",result=\"delivered\",vendor=\"huawei\"") >= 4.0,
        "{m}"
    );
    t.accounted(cert, 6).await;
}

/// 80100000 lists illegal tokens: those are unbound, the rest delivered. 80300007 unbinds only
/// once the certificate has proved its app id with a delivery.
#[tokio::test]
async fn invalid_tokens_are_unbound_but_not_on_a_possibly_wrong_app_id() {
    let t = start().await;
    let cert = t.certificate().await;
    // Tokens of another app: Huawei answers 80300007 although they are alive.
    t.emu.add_tokens_of_app("55555", ["tok-other"]);
    t.h.push_online("other", "d1", cert, "tok-other").await;
    t.h.send(json!({"to":["other"],"from":"bob","text":"x"})).await;
    let n = t.last_notification("other").await;
    assert_eq!(n["class"], "no_valid_targets", "{n}");
    assert!(n["detail"].as_str().unwrap().contains("app_id"), "{n}");
    assert_eq!(t.device("other").await["token_bound"], true, "kept: the app id may be wrong");

    t.emu.add_invalid_tokens(["tok-dead"]);
    t.h.push_online("dead", "d1", cert, "tok-dead").await;
    t.h.push_online("live", "d1", cert, "tok-live").await;
    t.h.send(json!({"to":["dead","live"],"from":"bob","text":"partial"}))
        .await;
    t.exactly("tok-live", 1).await;
    wait_for("the illegal token unbound", WAIT, || async {
        (t.device("dead").await["token_bound"] == false).then_some(())
    })
    .await;
    assert_eq!(t.device("live").await["token_bound"], true);

    // Now the app id is proved: 80300007 unbinds.
    t.h.push_online("other2", "d1", cert, "tok-other").await;
    t.h.send(json!({"to":["other2"],"from":"bob","text":"y"})).await;
    wait_for("the token unbound after 80300007", WAIT, || async {
        (t.device("other2").await["token_bound"] == false).then_some(())
    })
    .await;
    t.accounted(cert, 4).await;
}

/// HTTP 503 flow control slows the sender down; everything still arrives, once.
#[tokio::test]
async fn flow_control_slows_the_sender_down() {
    let t = start().await;
    let cert = t.certificate().await;
    t.h.push_online("alice", "d1", cert, "tok-a").await;
    t.emu.set_knobs(Knobs {
        qps_limit: Some(3),
        ..Knobs::default()
    });
    const N: usize = 12;
    for i in 0..N {
        t.h.send(json!({"to":["alice"],"from":"bob","text":format!("m{i}")}))
            .await;
    }
    let got = wait_for("every message through flow control", Duration::from_secs(20), || async {
        let r = t.records("tok-a");
        (r.len() >= N).then_some(r)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(t.records("tok-a").len(), N, "no duplicates");
    let mut bodies: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
    bodies.sort_unstable();
    bodies.dedup();
    assert_eq!(bodies.len(), N);
    let v = t.cert_view(cert).await;
    assert!(v["stats"]["rate_limited"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["stats"]["sent"], N as u64, "{v}");
}

/// A wrong client secret: the token endpoint refuses it, the certificate is broken with
/// Huawei's message, and editing in the right secret heals it.
#[tokio::test]
async fn a_wrong_secret_breaks_the_certificate_until_fixed() {
    let t = start().await;
    let (s, v) = t
        .h
        .admin(Method::POST, "/v1/certificates", Some(cert_body("wrong")))
        .await;
    assert_eq!(s, 201, "{v}");
    let cert = v["id"].as_u64().unwrap();
    t.h.push_online("alice", "d1", cert, "tok-a").await;
    t.h.send(json!({"to":["alice"],"from":"bob","text":"x"})).await;
    let v = wait_for("the certificate broken", WAIT, || async {
        let v = t.cert_view(cert).await;
        (v["status"]["state"] == "broken").then_some(v)
    })
    .await;
    assert!(v.to_string().contains("12304"), "Huawei's sub-error shown: {v}");
    assert!(!v.to_string().contains("wrong\""), "the secret is never returned: {v}");
    let (s, v) = t
        .h
        .admin(Method::PUT, &format!("/v1/certificates/{cert}"), Some(cert_body(CLIENT_SECRET)))
        .await;
    assert_eq!(s, 200, "{v}");
    t.h.send(json!({"to":["alice"],"from":"bob","text":"fixed"})).await;
    let r = t.exactly("tok-a", 1).await;
    assert_eq!(r[0].body, "fixed");
    t.accounted(cert, 2).await;
}

/// A 5xx burst is retried with backoff and delivered once.
#[tokio::test]
async fn a_5xx_burst_is_retried_and_delivered_once() {
    let t = start().await;
    let cert = t.certificate().await;
    t.h.push_online("alice", "d1", cert, "tok-a").await;
    t.emu.set_knobs(Knobs {
        error_5xx_ratio: 1.0,
        ..Knobs::default()
    });
    t.h.send(json!({"to":["alice"],"from":"bob","text":"through the storm"}))
        .await;
    let path = format!("/v1/{APP_ID}/messages:send");
    wait_for("a 502 answered", WAIT, || async {
        let s = t.emu.stats();
        s.requests.get(&path).and_then(|r| r.get("http_502")).map(|_| ())
    })
    .await;
    t.emu.set_knobs(Knobs::default());
    let r = t.exactly("tok-a", 1).await;
    assert_eq!(r[0].body, "through the storm");
    let v = t.cert_view(cert).await;
    assert_eq!(v["stats"]["sent"], 1, "{v}");
    t.accounted(cert, 1).await;
}
