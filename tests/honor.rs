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
use pushgate::usersig::UserSigKey;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);
const APP_ID: &str = "104436";
const CLIENT_ID: &str = "honor-client-1";
const CLIENT_SECRET: &str = "honor/secret=";
const TIM_ADMIN: &str = "administrator";

struct Ho {
    h: Harness,
    emu: EmulatorHandle,
}

async fn start() -> Ho {
    start_with(|_| {}, Knobs::default()).await
}

/// The gateway with `tweak` applied, pointed at a Honor emulator with `knobs` that knows the
/// test app.
async fn start_with(tweak: impl FnOnce(&mut pushgate::config::Config), knobs: Knobs) -> Ho {
    let emu = emulator::start(
        EmulatorConfig {
            apps: vec![OAuthApp::new(CLIENT_ID, CLIENT_SECRET, &[APP_ID])],
            knobs,
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let (base, auth) = (emu.base_url(), emu.auth_url());
    let h = Harness::start_with(move |c| {
        c.honor_base_url = base;
        c.honor_auth_url = auth;
        c.tim_admins = vec![TIM_ADMIN.into()];
        tweak(c);
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
    /// /v4 openim/sendmsg as the TIM administrator.
    async fn tim_sendmsg(&self, body: Value) -> Value {
        let sig = UserSigKey::new(SDKAPPID, USERSIG_KEY).generate(TIM_ADMIN, 86_400);
        let q = format!(
            "/v4/openim/sendmsg?sdkappid={SDKAPPID}&identifier={TIM_ADMIN}&usersig={sig}\
             &random=1&contenttype=json"
        );
        let res = self
            .h
            .http
            .post(self.h.url(&q))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// `n` killed users `u0…`, each with the token `tok-u{i}` of `cert`.
    async fn killed_users(&self, cert: u64, n: usize) {
        let ev = |i: usize, action: &str| json!({"user":format!("u{i}"),"platform":"Android","device":"d1","action":action});
        let all: Vec<usize> = (0..n).collect();
        for chunk in all.chunks(1000) {
            self.h
                .events(Value::Array(
                    chunk.iter().map(|&i| ev(i, "login")).collect(),
                ))
                .await;
        }
        for i in 0..n {
            let (s, v) = self
                .h
                .token(&format!("u{i}"), "d1", cert, &format!("tok-u{i}"))
                .await;
            assert_eq!(s, 200, "{v}");
        }
        for chunk in all.chunks(1000) {
            self.h
                .events(Value::Array(
                    chunk.iter().map(|&i| ev(i, "disconnect")).collect(),
                ))
                .await;
        }
    }

    /// The number of tokens of each request the emulator accepted, largest first.
    fn request_sizes(&self) -> Vec<usize> {
        let mut by_request: std::collections::HashMap<String, usize> = Default::default();
        for r in self.emu.received() {
            *by_request.entry(r.request_id).or_default() += 1;
        }
        let mut sizes: Vec<usize> = by_request.into_values().collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        sizes
    }

    async fn certificate(&self) -> u64 {
        let (s, v) = self
            .h
            .admin(
                Method::POST,
                "/v1/certificates",
                Some(cert_body(CLIENT_SECRET)),
            )
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
    assert!(r
        .intent
        .as_deref()
        .unwrap()
        .starts_with("intent://chat/open#Intent;"));
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
    // /v4: Tencent's AndroidInfo.HonorImportance.
    let v = t
        .tim_sendmsg(
            json!({"From_Account":"carol","To_Account":"alice","MsgRandom":7,
            "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"from v4"}}],
            "OfflinePushInfo":{"AndroidInfo":{"HonorImportance":"LOW"}}}),
        )
        .await;
    assert_eq!(v["ErrorCode"], 0, "{v}");
    let got = t.exactly("ho-a", 3).await;
    assert_eq!(
        (got[2].body.as_str(), got[2].importance.as_str()),
        ("from v4", "LOW")
    );
    // Refused naming the field; nothing sent.
    let (s, v) =
        t.h.api(
            Method::POST,
            "/v1/messages",
            Some(json!({"to":["alice"],"from":"carol","text":"x",
                "offline_push":{"honor_importance":"HIGH"}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["field"], "offline_push.honor_importance", "{v}");
    let v = t
        .tim_sendmsg(
            json!({"From_Account":"carol","To_Account":"alice","MsgRandom":8,
            "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"x"}}],
            "OfflinePushInfo":{"AndroidInfo":{"HonorImportance":"URGENT"}}}),
        )
        .await;
    assert_ne!(v["ErrorCode"], 0, "{v}");
    assert!(
        v["ErrorInfo"].as_str().unwrap().contains("HonorImportance"),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(t.records("ho-a").len(), 3);
    assert_eq!(t.emu.stats().tokens_issued, 1);
    t.accounted(cert, 4).await;
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_and_the_request_resent() {
    let t = start().await;
    let cert = t.certificate().await;
    t.h.push_online("alice", "d1", cert, "ho-a").await;
    t.h.send(json!({"to":["alice"],"from":"c","text":"one"}))
        .await;
    t.exactly("ho-a", 1).await;
    t.emu.expire_access_tokens();
    t.h.send(json!({"to":["alice"],"from":"c","text":"two"}))
        .await;
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
        assert_eq!(
            t.device("flaky").await["token_bound"],
            true,
            "kept after {} failure(s)",
            i - 1
        );
        t.h.send(json!({"to":["flaky","live"],"from":"c","text":format!("{i}")}))
            .await;
        t.exactly("ho-live", i).await;
    }
    wait_for(
        "the failing token unbound after 3 failures",
        WAIT,
        || async { (t.device("flaky").await["token_bound"] == false).then_some(()) },
    )
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
    t.h.send(json!({"to":["alice"],"from":"c","text":"storm"}))
        .await;
    let path = format!("/api/v1/{APP_ID}/sendMessage");
    wait_for("a 502 answered", WAIT, || async {
        t.emu
            .stats()
            .requests
            .get(&path)
            .and_then(|r| r.get("http_502"))
            .map(|_| ())
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
    let (s, v) =
        t.h.admin(Method::POST, "/v1/certificates", Some(cert_body("wrong")))
            .await;
    assert_eq!(s, 201, "{v}");
    let cert = v["id"].as_u64().unwrap();
    t.h.push_online("alice", "d1", cert, "ho-a").await;
    t.h.send(json!({"to":["alice"],"from":"c","text":"x"}))
        .await;
    let v = wait_for("the certificate broken", WAIT, || async {
        let v = t.cert_view(cert).await;
        (v["status"]["state"] == "broken").then_some(v)
    })
    .await;
    assert!(v.to_string().contains("invalid_client"), "{v}");
    t.accounted(cert, 1).await;
}

/// The certificate's importance is what its notifications carry unless a message overrides it.
#[tokio::test]
async fn the_certificates_importance_reaches_the_wire() {
    let t = start().await;
    let mut body = cert_body(CLIENT_SECRET);
    body["importance"] = "LOW".into();
    let (s, v) =
        t.h.admin(Method::POST, "/v1/certificates", Some(body))
            .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["client_secret_set"], true, "{v}");
    let cert = v["id"].as_u64().unwrap();
    t.h.push_online("alice", "d1", cert, "ho-a").await;
    t.h.send(json!({"to":["alice"],"from":"c","text":"promo"}))
        .await;
    t.h.send(json!({"to":["alice"],"from":"c","text":"chat",
        "offline_push":{"honor_importance":"NORMAL"}}))
        .await;
    let got = t.exactly("ho-a", 2).await;
    let by_body: std::collections::HashMap<&str, &str> = got
        .iter()
        .map(|r| (r.body.as_str(), r.importance.as_str()))
        .collect();
    assert_eq!(by_body["promo"], "LOW");
    assert_eq!(by_body["chat"], "NORMAL");
    t.accounted(cert, 2).await;
}

/// An access token is renewed before it expires (120 s early): with a 123 s lifetime it serves
/// the sends of its first 3 s, and a send after that fetches a new one without a refusal.
#[tokio::test]
async fn the_access_token_is_renewed_before_it_expires() {
    let t = start_with(
        |_| {},
        Knobs {
            access_token_ttl_secs: 123,
            ..Knobs::default()
        },
    )
    .await;
    let cert = t.certificate().await;
    t.h.push_online("alice", "d1", cert, "ho-a").await;
    t.h.send(json!({"to":["alice"],"from":"c","text":"one"}))
        .await;
    t.h.send(json!({"to":["alice"],"from":"c","text":"two"}))
        .await;
    t.exactly("ho-a", 2).await;
    assert_eq!(
        t.emu.stats().tokens_issued,
        1,
        "one token while it is fresh"
    );
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    t.h.send(json!({"to":["alice"],"from":"c","text":"three"}))
        .await;
    t.exactly("ho-a", 3).await;
    let stats = t.emu.stats();
    assert_eq!(stats.tokens_issued, 2, "renewed before expiry: {stats:?}");
    let path = format!("/api/v1/{APP_ID}/sendMessage");
    let answers: Vec<&String> = stats.requests[&path].keys().collect();
    assert_eq!(answers, vec!["200"], "never refused: {stats:?}");
    t.accounted(cert, 3).await;
}

/// While the token endpoint is down nothing is lost; once it is back, the requests waiting for
/// a token share one fetch.
#[tokio::test]
async fn requests_waiting_for_a_token_share_one_fetch() {
    let t = start_with(
        |_| {},
        Knobs {
            auth_unavailable: true,
            ..Knobs::default()
        },
    )
    .await;
    let cert = t.certificate().await;
    t.killed_users(cert, 10).await;
    for i in 0..10 {
        t.h.send(json!({"to":[format!("u{i}")],"from":"c","text":format!("hello {i}")}))
            .await;
    }
    wait_for("the token endpoint refused while down", WAIT, || async {
        let s = t.emu.stats();
        s.requests
            .get("/auth/token")
            .and_then(|r| r.get("http_503"))
            .map(|_| ())
    })
    .await;
    assert_eq!(t.emu.received().len(), 0);
    t.emu.set_knobs(Knobs::default());
    wait_for(
        "10 notifications once the token endpoint is back",
        Duration::from_secs(15),
        || async { (t.emu.received().len() >= 10).then_some(()) },
    )
    .await;
    assert_eq!(
        t.emu.stats().tokens_issued,
        1,
        "one fetch shared by every waiting request"
    );
    t.accounted(cert, 10).await;
}

/// Identical content to 1,001 devices: requests of at most 1,000 tokens, each device once.
#[tokio::test]
async fn identical_content_to_1001_devices_goes_in_requests_of_1000_tokens() {
    let t = start_with(
        |c| {
            c.http.max_recipients = 2_000;
            // Long enough that every notification of the send is queued before a request is cut.
            c.push.linger_ms = 300;
        },
        Knobs::default(),
    )
    .await;
    let cert = t.certificate().await;
    const N: usize = 1_001;
    t.killed_users(cert, N).await;
    let to: Vec<String> = (0..N).map(|i| format!("u{i}")).collect();
    t.h.send(json!({"to":to,"from":"c","text":"to everyone"}))
        .await;
    wait_for("1,001 notifications", Duration::from_secs(15), || async {
        (t.emu.received().len() >= N).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received = t.emu.received();
    assert_eq!(received.len(), N, "each device once");
    let tokens: std::collections::HashSet<&str> =
        received.iter().map(|r| r.token.as_str()).collect();
    assert_eq!(tokens.len(), N);
    assert_eq!(t.request_sizes(), vec![1_000, 1]);
    t.accounted(cert, N as u64).await;
}
