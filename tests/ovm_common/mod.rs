//! The delivery scenarios every one of OPPO, vivo and Meizu must pass, over real sockets: the
//! gateway (tests/common's Harness) sends to the vendor's emulator on another loopback port.
//! Each `tests/<vendor>.rs` describes its vendor in a [`Vendor`] and runs these scenarios.
#![allow(dead_code)]

pub use crate::common::wait_for;
use crate::common::*;
use pushgate::config::Config;
use pushgate::providers::emulator_kit::{EmulatorHandle, Knobs, ReceivedNotification, TokenFate};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(8);

/// (JSON path, expected value) pairs a record must show.
pub type Expected = Vec<(&'static str, Value)>;

/// What differs between the three vendors in these scenarios.
pub struct Vendor {
    /// The `vendor` of a certificate and the metric label.
    pub name: &'static str,
    /// The emulator, strict, knowing the app of [`Vendor::cert_body`].
    pub emulator: fn() -> EmulatorHandle,
    /// Points the gateway's config at the emulator.
    pub base_url: fn(&mut Config, String),
    /// A certificate body for the app the emulator knows.
    pub cert_body: fn(u32) -> Value,
    /// The name of the credential field that holds the secret.
    pub secret_field: &'static str,
    /// The send endpoints (paths) of the vendor.
    pub send_paths: &'static [&'static str],
    /// The send answer that says the auth token expired (`None`: no token).
    pub auth_expired_code: Option<&'static str>,
    /// Whether one request carries notifications of distinct content.
    pub mixes_content: bool,
    /// The message's `Ext` where the vendor carries it to the app.
    pub ext_of: fn(&ReceivedNotification) -> Option<String>,
    /// An /v1 `offline_push` override and what the record shows for it.
    pub override_fields: fn() -> (Value, Expected),
    /// Where the click action shows: (JSON path, expected) for an intent-URI certificate.
    pub click_fields: fn(&str) -> Vec<(&'static str, Value)>,
}

/// The gateway with its certificate and the vendor's emulator.
pub struct Setup {
    pub h: Harness,
    pub emu: EmulatorHandle,
    pub cert: u64,
}

/// The value at a dotted path of a JSON object (`noticeBarInfo.noticeMsgType`).
pub fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

impl Vendor {
    pub fn token(&self, user: &str) -> String {
        format!("{}-{user}-0123456789abcdef", self.name)
    }

    /// Gateway + emulator + a certificate made of `cert_body(qps)` with `patch` applied.
    pub async fn setup(&self, qps: u32, patch: Value) -> Setup {
        self.setup_with(qps, patch, |_| {}).await
    }

    pub async fn setup_with(
        &self,
        qps: u32,
        patch: Value,
        tweak: impl FnOnce(&mut Config),
    ) -> Setup {
        let emu = (self.emulator)();
        let url = emu.base_url();
        let set = self.base_url;
        let h = Harness::builder()
            .config(move |c| set(c, url))
            .config(tweak)
            .start()
            .await;
        let mut body = (self.cert_body)(qps);
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (s, v) = h.admin(Method::POST, "/v1/certificates", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        assert!(
            v.get(self.secret_field).is_none(),
            "the secret is never returned: {v}"
        );
        let cert = v["id"].as_u64().expect("id");
        Setup { h, emu, cert }
    }

    /// Requests the emulator answered with `outcome` on the send endpoints.
    pub fn requests(&self, emu: &EmulatorHandle, outcome: &str) -> u64 {
        let stats = emu.stats();
        self.send_paths
            .iter()
            .filter_map(|p| stats.requests.get(*p))
            .filter_map(|by| by.get(outcome))
            .sum()
    }
}

impl Setup {
    pub async fn killed(&self, v: &Vendor, user: &str) {
        self.h
            .push_online(user, "d1", self.cert, &v.token(user))
            .await;
    }

    pub fn records(&self, target: &str) -> Vec<ReceivedNotification> {
        self.emu
            .received()
            .into_iter()
            .filter(|r| r.target == target)
            .collect()
    }

    /// Waits until `target` has `n` records, then a little longer to be sure no more come.
    pub async fn exactly(&self, target: &str, n: usize) -> Vec<ReceivedNotification> {
        wait_for(&format!("{n} notifications for {target}"), WAIT, || async {
            (self.records(target).len() >= n).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = self.records(target);
        assert_eq!(got.len(), n, "{target}: {got:#?}");
        got
    }

    pub async fn cert_view(&self) -> Value {
        let (s, v) = self
            .h
            .admin(
                Method::GET,
                &format!("/v1/certificates/{}", self.cert),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    pub async fn device(&self, user: &str) -> Value {
        let (s, v) = self
            .h
            .api(Method::GET, &format!("/v1/users/{user}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v["devices"][0].clone()
    }

    pub async fn last_class(&self, user: &str) -> String {
        wait_for(&format!("a last notification for {user}"), WAIT, || async {
            let (_, d) = self
                .h
                .api(Method::GET, &format!("/v1/users/{user}/diagnosis"), None)
                .await;
            d["devices"][0]["last_notification"]["class"]
                .as_str()
                .map(str::to_string)
        })
        .await
    }

    /// `pushgate_notifications_total{vendor=…}` summed over classes, and the delivered share.
    pub async fn notifications(&self, vendor: &str) -> (f64, f64) {
        let m = self.h.metrics().await;
        let label = format!("vendor=\"{vendor}\"");
        let mut total = 0.0;
        let mut delivered = 0.0;
        for line in m
            .lines()
            .filter(|l| l.starts_with("pushgate_notifications_total{"))
        {
            if !line.contains(&label) {
                continue;
            }
            let n: f64 = line
                .rsplit_once(' ')
                .and_then(|(_, n)| n.parse().ok())
                .unwrap_or(0.0);
            total += n;
            if line.contains("outcome=\"delivered\"") {
                delivered += n;
            }
        }
        (total, delivered)
    }
}

/// Scenario 1: The notification's fields: default title, body from the text, the chat classification
/// by default, `Ext` where the vendor carries it, the click action, and a per-message override.
pub async fn fields(v: &Vendor) {
    let intent =
        "intent://chat/detail#Intent;scheme=pushgate;component=com.example.chat/.Detail;end";
    let s = v
        .setup(
            100,
            json!({"click_action": {"type": "open_activity", "intent_uri": intent}}),
        )
        .await;
    s.killed(v, "alice").await;
    let sent =
        s.h.send(json!({"to": ["alice"], "from": "bob", "text": "你好 👋"}))
            .await;
    assert_eq!(sent["results"][0]["outcome"], "push_queued", "{sent}");
    let r = s.exactly(&v.token("alice"), 1).await.remove(0);
    assert_eq!(r.title, "a new message");
    assert_eq!(r.body, "你好 👋");
    for (path, want) in (v.click_fields)(intent) {
        assert_eq!(at(&r.message, path), &want, "{path}: {}", r.message);
    }
    assert_eq!((v.ext_of)(&r), None);
    assert_eq!(s.last_class("alice").await, "delivered");

    s.emu.clear();
    let (push, shown) = (v.override_fields)();
    let mut offline =
        json!({"title": "Bob", "desc": "sent a photo", "ext": "{\"conv\":\"c2c_bob\"}"});
    for (k, val) in push.as_object().expect("object") {
        offline[k] = val.clone();
    }
    s.h.send(json!({"to": ["alice"], "from": "bob", "text": "ignored", "offline_push": offline}))
        .await;
    let r = s.exactly(&v.token("alice"), 1).await.remove(0);
    assert_eq!((r.title.as_str(), r.body.as_str()), ("Bob", "sent a photo"));
    assert_eq!((v.ext_of)(&r).as_deref(), Some("{\"conv\":\"c2c_bob\"}"));
    for (path, want) in shown {
        assert_eq!(at(&r.message, path), &want, "{path}: {}", r.message);
    }
}

/// Scenario 2: An auth token is fetched once for many concurrent requests, reused, and fetched again at
/// once after the vendor says it expired; the notification still arrives, once.
pub async fn token_refresh(v: &Vendor) {
    let Some(expired) = v.auth_expired_code else {
        return;
    };
    let s = v.setup(1000, json!({})).await;
    let users: Vec<String> = (0..12).map(|i| format!("u{i}")).collect();
    for u in &users {
        s.killed(v, u).await;
    }
    // Distinct texts: separate requests where the vendor does not mix content.
    let sends = users.iter().map(|u| {
        s.h.send(json!({"to": [u], "from": "bob", "text": format!("hello {u}")}))
    });
    futures_util::future::join_all(sends).await;
    for u in &users {
        s.exactly(&v.token(u), 1).await;
    }
    assert_eq!(
        s.emu.stats().auth_tokens_issued,
        1,
        "one token for every request"
    );

    s.emu.expire_auth_tokens();
    s.h.send(json!({"to": ["u0"], "from": "bob", "text": "after expiry"}))
        .await;
    let r = s.exactly(&v.token("u0"), 2).await;
    assert_eq!(r[1].body, "after expiry");
    assert_eq!(s.emu.stats().auth_tokens_issued, 2);
    assert_eq!(
        v.requests(&s.emu, expired),
        1,
        "one refusal, then the renewed token"
    );
    assert_eq!(s.last_class("u0").await, "delivered");
}

/// Scenario 3: Identical content to many devices goes in one request; distinct content shares one only
/// where the vendor allows it.
pub async fn batching(v: &Vendor) {
    let s = v.setup(1, json!({})).await;
    for u in ["a", "b", "c", "d", "e"] {
        s.killed(v, u).await;
    }
    s.h.send(json!({"to": ["a", "b", "c"], "from": "bob", "text": "same for all"}))
        .await;
    for u in ["a", "b", "c"] {
        s.exactly(&v.token(u), 1).await;
    }
    assert_eq!(
        v.requests(&s.emu, "0") + v.requests(&s.emu, "200"),
        1,
        "{:?}",
        s.emu.stats()
    );
    // qps 1: the next request waits for its token while both messages queue behind it.
    s.h.send(json!({"to": ["d"], "from": "bob", "text": "for d"}))
        .await;
    s.h.send(json!({"to": ["e"], "from": "carol", "text": "for e"}))
        .await;
    s.exactly(&v.token("d"), 1).await;
    s.exactly(&v.token("e"), 1).await;
    let requests = v.requests(&s.emu, "0") + v.requests(&s.emu, "200");
    if v.mixes_content {
        assert_eq!(
            requests,
            2,
            "distinct content in one request: {:?}",
            s.emu.stats()
        );
    } else {
        assert_eq!(requests, 3, "one request per content: {:?}", s.emu.stats());
    }
}

/// Scenario 4: Tokens the vendor names invalid are unbound; switched-off devices keep theirs.
pub async fn invalid_tokens(v: &Vendor, switched_off_reported: bool) {
    let s = v.setup(100, json!({})).await;
    for u in ["good", "bad", "off"] {
        s.killed(v, u).await;
    }
    s.emu.set_token_fate([v.token("bad")], TokenFate::Invalid);
    s.emu
        .set_token_fate([v.token("off")], TokenFate::SwitchedOff);
    s.h.send(json!({"to": ["good", "bad", "off"], "from": "bob", "text": "hi"}))
        .await;
    s.exactly(&v.token("good"), 1).await;
    wait_for("the bad token unbound", WAIT, || async {
        (s.device("bad").await["token_bound"] == false).then_some(())
    })
    .await;
    assert_eq!(s.last_class("bad").await, "bad_token");
    assert_eq!(s.device("good").await["token_bound"], true);
    assert_eq!(
        s.device("off").await["token_bound"],
        true,
        "a switched-off device keeps its token"
    );
    if switched_off_reported {
        assert_eq!(s.last_class("off").await, "bad_token");
    }
    assert!(s.records(&v.token("off")).is_empty());
    wait_for("every notification accounted for", WAIT, || async {
        (s.notifications(v.name).await.0 == 3.0).then_some(())
    })
    .await;
}

/// Scenario 5: A used-up daily quota pauses the certificate until midnight China time.
pub async fn quota_pause(v: &Vendor) {
    let s = v.setup(100, json!({})).await;
    s.killed(v, "alice").await;
    s.emu.set_knobs(Knobs {
        daily_quota: Some(1),
        ..Knobs::default()
    });
    s.h.send(json!({"to": ["alice"], "from": "bob", "text": "one"}))
        .await;
    s.exactly(&v.token("alice"), 1).await;
    s.h.send(json!({"to": ["alice"], "from": "bob", "text": "two"}))
        .await;
    let view = wait_for("the certificate paused", WAIT, || async {
        let c = s.cert_view().await;
        (c["status"]["state"] == "quota_paused").then_some(c)
    })
    .await;
    assert!(view["status"]["paused_until"].as_u64().is_some(), "{view}");
    assert_eq!(s.last_class("alice").await, "quota_exceeded");
    let later =
        s.h.send(json!({"to": ["alice"], "from": "bob", "text": "three"}))
            .await;
    assert_eq!(later["results"][0]["outcome"], "skipped", "{later}");
    assert_eq!(s.records(&v.token("alice")).len(), 1);
}

/// Scenario 6: "Too fast" answers slow the sender down; everything still arrives, once.
pub async fn rate_limit(v: &Vendor) {
    // One notification per request, so the vendor's limit (OPPO counts targets) can be met.
    let s = v
        .setup_with(50, json!({}), |c| {
            c.push.regid_batch = 1;
            c.push.multi_batch = 1;
        })
        .await;
    s.killed(v, "alice").await;
    s.emu.set_knobs(Knobs {
        qps_limit: Some(2),
        ..Knobs::default()
    });
    const N: usize = 8;
    for i in 0..N {
        s.h.send(json!({"to": ["alice"], "from": "bob", "text": format!("message {i}")}))
            .await;
    }
    let got = wait_for(
        "every message through the rate limit",
        Duration::from_secs(25),
        || async {
            let r = s.records(&v.token("alice"));
            (r.len() >= N).then_some(r)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.records(&v.token("alice")).len(), N, "no duplicates");
    let mut texts: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), N);
    let c = s.cert_view().await;
    assert!(c["stats"]["rate_limited"].as_u64().unwrap_or(0) > 0, "{c}");
    assert_eq!(c["stats"]["sent"], N as u64, "{c}");
}

/// Scenario 7: Refused credentials mark the certificate broken, with the vendor's answer.
pub async fn auth_failure(v: &Vendor, code: &str) {
    let s = v
        .setup(100, json!({ v.secret_field: "wrong-secret-for-this-app" }))
        .await;
    s.killed(v, "alice").await;
    s.h.send(json!({"to": ["alice"], "from": "bob", "text": "hi"}))
        .await;
    let c = wait_for("the certificate broken", WAIT, || async {
        let c = s.cert_view().await;
        (c["status"]["state"] == "broken").then_some(c)
    })
    .await;
    let reason = c["status"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains(code), "{reason}");
    assert_eq!(s.last_class("alice").await, "misconfigured");
    assert!(s.emu.received().is_empty());
}

/// Scenario 8: A burst of 5xx is retried with backoff and delivered once.
pub async fn server_errors(v: &Vendor) {
    let s = v.setup(100, json!({})).await;
    s.killed(v, "alice").await;
    if v.auth_expired_code.is_some() {
        // The token first, so the outage hits the send endpoint.
        s.h.send(json!({"to": ["alice"], "from": "bob", "text": "warm up"}))
            .await;
        s.exactly(&v.token("alice"), 1).await;
        s.emu.clear();
    }
    s.emu.set_knobs(Knobs {
        error_5xx_ratio: 1.0,
        ..Knobs::default()
    });
    s.h.send(json!({"to": ["alice"], "from": "bob", "text": "through the storm"}))
        .await;
    wait_for("a 503 answered", WAIT, || async {
        (v.requests(&s.emu, "http_503") >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.emu.set_knobs(Knobs::default());
    let r = s.exactly(&v.token("alice"), 1).await;
    assert_eq!(r[0].body, "through the storm");
    assert_eq!(s.last_class("alice").await, "delivered");
    let c = s.cert_view().await;
    assert_eq!(c["stats"]["failed"]["transient"], 0, "{c}");
    // Nothing unaccounted for: each notification (with the warm-up) counted once, delivered.
    let sent = if v.auth_expired_code.is_some() {
        2.0
    } else {
        1.0
    };
    assert_eq!(s.notifications(v.name).await, (sent, sent));
}
