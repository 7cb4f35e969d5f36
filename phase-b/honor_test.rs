//! Honor delivery over real sockets: the gateway and the Honor emulator on loopback — the
//! notification's fields (bearer, `timestamp` header, importance NORMAL, title, body, ext,
//! click action), the renewed access token, batching, `expireTokens` unbound at once and
//! `failTokens` after three failures in a row, rate limiting, a refused secret shown as a broken
//! certificate, 5xx retried, and every notification accounted for.

mod common;

use common::*;
use pushgate::providers::honor::emulator::{
    self, EmulatorConfig, EmulatorHandle, Knobs, OAuthApp, ReceivedNotification,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::future::Future;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);
const APP_ID: &str = "104436";
const CLIENT_ID: &str = "honor-client-1";
const CLIENT_SECRET: &str = "honor/secret=";

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

struct Ho {
    h: Harness,
    emu: EmulatorHandle,
}

async fn start() -> Ho {
    let emu = emulator::start(
        EmulatorConfig {
            apps: vec![OAuthApp::new(CLIENT_ID, CLIENT_SECRET, &[APP_ID])],
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let (base, auth) = (emu.base_url(), emu.auth_url());
    let h = Harness::start_with(move |c| {
        c.honor_base_url = base;
        c.honor_auth_url = auth;
    })
    .await;
    Ho { h, emu }
}

fn cert_body(secret: &str) -> Value {
    json!({
        "vendor": "honor",
        "package_name": PACKAGE,
        "app_id": APP_ID,
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "click_action": {"type": "open_activity",
            "intent_uri": "intent://chat/open#Intent;scheme=app;component=com.example.chat/.Chat;end"},
        "qps": 100
    })
}

impl Ho {
    async fn certificate(&self) -> u64 {
        let (s, v) = self
            .h
            .admin(Method::POST, "/v1/certificates", Some(cert_body(CLIENT_SECRET)))
            .await;
        assert_eq!(s, 201, "{v}");
        assert!(v.get("client_secret").is_none(), "{v}");
        assert_eq!(v["importance"], "NORMAL", "{v}");
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

    async fn accounted(&self, cert: u64, n: u64) {
        wait_for("every notification accounted for", WAIT, || async {
            let v = self.cert_view(cert).await;
            let failed: u64 = v["stats"]["failed"]
                .as_object()
                .map(|f| f.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0);
            (v["stats"]["sent"].as_u64().unwrap_or(0) + failed == n).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn killed_user_gets_a_honor_notification_with_every_field() {
    let t = start().await;
    let cert = t.certificate().await;
    t.h.push_online("alice", "d1", cert, "ho-a").await;
    t.h.push_online("bob", "d1", cert, "ho-b").await;
    t.h.send(json!({"to":["alice","bob"],"from":"carol","text":"hi both",
        "offline_push":{"title":"Carol","ext":"{\"conv\":\"g1\"}"}}))
        .await;
    let r = &t.exactly("ho-a", 1).await[0];
    t.exactly("ho-b", 1).await;
    assert_eq!(r.endpoint, format!("/api/v1/{APP_ID}/sendMessage"));
    assert_eq!((r.title.as_str(), r.body.as_str()), ("Carol", "hi both"));
    assert_eq!(r.importance, "NORMAL");
    assert_eq!(r.click_type, 1);
    assert!(r.intent.as_deref().unwrap().starts_with("intent://chat/open#Intent;"));
    assert_eq!(r.ext.as_deref(), Some("{\"conv\":\"g1\"}"));
    assert!(r.headers["timestamp"].parse::<u64>().unwrap() > 1_000_000_000_000);
    // Identical content went as one request.
    assert_eq!(t.records("ho-b")[0].request_id, r.request_id);
    // Per-message importance override.
    t.h.send(json!({"to":["alice"],"from":"carol","text":"promo",
        "offline_push":{"honor_importance":"LOW"}}))
        .await;
    let got = t.exactly("ho-a", 2).await;
    assert_eq!(got[1].importance, "LOW");
    assert_eq!(t.emu.stats().tokens_issued, 1);
    t.accounted(cert, 3).await;
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_and_the_request_resent() {
    let t = start().await;
    let cert = t.certificate().await;
    t.h.push_online("alice", "d1", cert, "ho-a").await;
    t.h.send(json!({"to":["alice"],"from":"c","text":"one"})).await;
    t.exactly("ho-a", 1).await;
    t.emu.expire_access_tokens();
    t.h.send(json!({"to":["alice"],"from":"c","text":"two"})).await;
    let got = t.exactly("ho-a", 2).await;
    assert_eq!(got[1].body, "two");
    assert_eq!(t.emu.stats().tokens_issued, 2);
    t.accounted(cert, 2).await;
}

#[tokio::test]
async fn expired_tokens_are_unbound_at_once_failing_ones_after_three_failures() {
    let t = start().await;
    let cert = t.certificate().await;
    t.emu.add_expired_tokens(["ho-gone"]);
    t.emu.add_failing_tokens(["ho-flaky"]);
    t.h.push_online("gone", "d1", cert, "ho-gone").await;
    t.h.push_online("flaky", "d1", cert, "ho-flaky").await;
    t.h.push_online("live", "d1", cert, "ho-live").await;
    t.h.send(json!({"to":["gone","flaky","live"],"from":"c","text":"1"}))
        .await;
    t.exactly("ho-live", 1).await;
    wait_for("the expired token unbound", WAIT, || async {
        (t.device("gone").await["token_bound"] == false).then_some(())
    })
    .await;
    for i in 2..=3 {
        assert_eq!(t.device("flaky").await["token_bound"], true, "kept after {} failure(s)", i - 1);
        t.h.send(json!({"to":["flaky","live"],"from":"c","text":format!("{i}")}))
            .await;
        t.exactly("ho-live", i).await;
    }
    wait_for("the failing token unbound after 3 failures", WAIT, || async {
        (t.device("flaky").await["token_bound"] == false).then_some(())
    })
    .await;
    t.accounted(cert, 7).await;
}

#[tokio::test]
async fn rate_limiting_slows_down_and_5xx_is_retried() {
    let t = start().await;
    let cert = t.certificate().await;
    t.h.push_online("alice", "d1", cert, "ho-a").await;
    t.emu.set_knobs(Knobs {
        qps_limit: Some(3),
        ..Knobs::default()
    });
    const N: usize = 10;
    for i in 0..N {
        t.h.send(json!({"to":["alice"],"from":"c","text":format!("m{i}")}))
            .await;
    }
    wait_for("every message through", Duration::from_secs(20), || async {
        (t.records("ho-a").len() >= N).then_some(())
    })
    .await;
    let v = t.cert_view(cert).await;
    assert!(v["stats"]["rate_limited"].as_u64().unwrap() > 0, "{v}");
    t.emu.set_knobs(Knobs {
        error_5xx_ratio: 1.0,
        ..Knobs::default()
    });
    t.h.send(json!({"to":["alice"],"from":"c","text":"storm"})).await;
    let path = format!("/api/v1/{APP_ID}/sendMessage");
    wait_for("a 502 answered", WAIT, || async {
        t.emu.stats().requests.get(&path).and_then(|r| r.get("http_502")).map(|_| ())
    })
    .await;
    t.emu.set_knobs(Knobs::default());
    let got = t.exactly("ho-a", N + 1).await;
    assert_eq!(got[N].body, "storm");
    t.accounted(cert, N as u64 + 1).await;
}

#[tokio::test]
async fn a_wrong_secret_breaks_the_certificate() {
    let t = start().await;
    let (s, v) = t
        .h
        .admin(Method::POST, "/v1/certificates", Some(cert_body("wrong")))
        .await;
    assert_eq!(s, 201, "{v}");
    let cert = v["id"].as_u64().unwrap();
    t.h.push_online("alice", "d1", cert, "ho-a").await;
    t.h.send(json!({"to":["alice"],"from":"c","text":"x"})).await;
    let v = wait_for("the certificate broken", WAIT, || async {
        let v = t.cert_view(cert).await;
        (v["status"]["state"] == "broken").then_some(v)
    })
    .await;
    assert!(v.to_string().contains("invalid_client"), "{v}");
    t.accounted(cert, 1).await;
}
