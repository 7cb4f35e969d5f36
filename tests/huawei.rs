//! Huawei delivery over real sockets: the gateway and the Huawei emulator on loopback, asserting
//! what a user would check — the notification the device gets (auth, classification, title,
//! body, ext, click action), the cached and renewed access token, batching, invalid tokens
//! unbound (and kept when 80300007 could mean a wrong app id), flow control, a refused secret
//! shown as a broken certificate, 5xx retried, and every notification accounted for; and the
//! v3 request of HarmonyOS NEXT certificates (`api_version` v3).

mod common;

use common::*;
use pushgate::providers::huawei::emulator::{
    self, EmulatorConfig, EmulatorHandle, Knobs, OAuthApp, ReceivedNotification,
};
use pushgate::usersig::UserSigKey;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);
const APP_ID: &str = "10086";
const CLIENT_SECRET: &str = "hw/secret+for=tests";
const TIM_ADMIN: &str = "administrator";

struct Hw {
    h: Harness,
    emu: EmulatorHandle,
}

async fn start() -> Hw {
    start_with(|_| {}, Knobs::default()).await
}

/// The gateway with `tweak` applied, pointed at a Huawei emulator with `knobs` that knows the
/// test app.
async fn start_with(tweak: impl FnOnce(&mut pushgate::config::Config), knobs: Knobs) -> Hw {
    let emu = emulator::start(
        EmulatorConfig {
            apps: vec![OAuthApp::new(APP_ID, CLIENT_SECRET, &[])],
            knobs,
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let (base, auth) = (emu.base_url(), emu.auth_url());
    let h = Harness::start_with(move |c| {
        c.huawei_base_url = base;
        c.huawei_auth_url = auth;
        tweak(c);
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
    assert!(r
        .intent
        .as_deref()
        .unwrap()
        .contains(&format!("package={PACKAGE}")));
    for i in 0..3 {
        t.h.send(
            json!({"to":["alice"],"from":"bob","text":format!("again {i}"),
            "offline_push":{"title":"Bob"}}),
        )
        .await;
    }
    let got = t.exactly("hw-token-alice", 4).await;
    assert!(got[1..].iter().all(|r| r.title == "Bob"));
    // One access token for every request of the certificate.
    assert_eq!(t.emu.stats().tokens_issued, 1);
    assert_eq!(t.last_notification("alice").await["class"], "delivered");
    t.accounted(cert, 4).await;
}

/// The certificate's category and channel reach the wire; per-message fields (/v1
/// `offline_push`, /v4 `AndroidInfo`) override them; unknown values are refused naming the field.
#[tokio::test]
async fn certificate_and_per_message_classification_reach_the_wire() {
    let t = start_with(|c| c.tim_admins = vec![TIM_ADMIN.into()], Knobs::default()).await;
    let cert = t.certificate().await;
    // An edit without the secret keeps it (the next send is accepted).
    let mut edit = cert_body(CLIENT_SECRET);
    edit.as_object_mut().unwrap().remove("app_secret");
    edit["category"] = "SUBSCRIPTION".into();
    edit["channel_id"] = "news".into();
    let (s, v) =
        t.h.admin(Method::PUT, &format!("/v1/certificates/{cert}"), Some(edit))
            .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["category"].as_str(), v["channel_id"].as_str()),
        (Some("SUBSCRIPTION"), Some("news"))
    );
    assert_eq!(v["app_secret_set"], true, "{v}");
    t.h.push_online("alice", "d1", cert, "hw-a").await;

    t.h.send(json!({"to":["alice"],"from":"bob","text":"digest"}))
        .await;
    let r = &t.exactly("hw-a", 1).await[0];
    assert_eq!(
        (r.category.as_str(), r.importance.as_str()),
        ("SUBSCRIPTION", "NORMAL")
    );
    assert_eq!(r.channel_id.as_deref(), Some("news"));

    t.h.send(json!({"to":["alice"],"from":"bob","text":"call me",
        "offline_push":{"title":"Bob","huawei_category":"VOIP","huawei_importance":"LOW",
                        "huawei_channel_id":"calls"}}))
        .await;
    let r = &t.exactly("hw-a", 2).await[1];
    assert_eq!(
        (r.category.as_str(), r.importance.as_str()),
        ("VOIP", "LOW")
    );
    assert_eq!(r.channel_id.as_deref(), Some("calls"));

    // Empty means "the certificate's".
    t.h.send(json!({"to":["alice"],"from":"bob","text":"plain",
        "offline_push":{"huawei_category":"","huawei_channel_id":""}}))
        .await;
    let r = &t.exactly("hw-a", 3).await[2];
    assert_eq!(
        (r.category.as_str(), r.channel_id.as_deref()),
        ("SUBSCRIPTION", Some("news"))
    );

    // /v4: Tencent's AndroidInfo names.
    let v = t
        .tim_sendmsg(
            json!({"From_Account":"bob","To_Account":"alice","MsgRandom":7,
            "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"from v4"}}],
            "OfflinePushInfo":{"AndroidInfo":{"HuaWeiCategory":"IM","HuaWeiImportance":"NORMAL",
                "HuaWeiChannelID":"chat"}}}),
        )
        .await;
    assert_eq!(v["ErrorCode"], 0, "{v}");
    let r = &t.exactly("hw-a", 4).await[3];
    assert_eq!(r.body, "from v4");
    assert_eq!(
        (r.category.as_str(), r.importance.as_str()),
        ("IM", "NORMAL")
    );
    assert_eq!(r.channel_id.as_deref(), Some("chat"));

    // Refused, naming the field, and nothing sent.
    let (s, v) =
        t.h.api(
            Method::POST,
            "/v1/messages",
            Some(json!({"to":["alice"],"from":"bob","text":"x",
                "offline_push":{"huawei_category":"CHAT"}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["field"], "offline_push.huawei_category", "{v}");
    let v = t
        .tim_sendmsg(
            json!({"From_Account":"bob","To_Account":"alice","MsgRandom":8,
            "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"x"}}],
            "OfflinePushInfo":{"AndroidInfo":{"HuaWeiImportance":"HIGH"}}}),
        )
        .await;
    assert_ne!(v["ErrorCode"], 0, "{v}");
    assert!(
        v["ErrorInfo"]
            .as_str()
            .unwrap()
            .contains("HuaWeiImportance"),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(t.records("hw-a").len(), 4);
    t.accounted(cert, 4).await;
}

/// TIM `AndroidInfo.Sound` becomes Huawei's `sound` (with `default_sound` false), and
/// `ExtAsHuaweiIntentParam` 1 gives each member of `Ext` its own extra of the click intent;
/// both on /v1 and /v4, a bad flag refused naming the field.
#[tokio::test]
async fn sound_and_ext_as_intent_params_reach_the_wire() {
    let t = start_with(|c| c.tim_admins = vec![TIM_ADMIN.into()], Knobs::default()).await;
    let cert = t.certificate().await;
    t.h.push_online("alice", "d1", cert, "hw-s").await;

    t.h.send(json!({"to":["alice"],"from":"bob","text":"ring",
        "offline_push":{"sound":"shake","ext":"{\"conv\":\"c2c_bob\",\"n\":2}",
                        "ext_as_huawei_intent_param":1}}))
        .await;
    let r = &t.exactly("hw-s", 1).await[0];
    let n = &r.message["android"]["notification"];
    assert_eq!(n["sound"], "/raw/shake", "{n}");
    assert_eq!(n["default_sound"], false, "{n}");
    let intent = r.intent.as_deref().unwrap_or_default();
    assert!(intent.ends_with(";S.conv=c2c_bob;S.n=2;end"), "{intent}");
    assert_eq!(r.ext, None, "no whole-Ext extra: {intent}");

    // The default: no sound field, Ext whole as the extra `ext`.
    t.h.send(json!({"to":["alice"],"from":"bob","text":"plain",
        "offline_push":{"ext":"{\"conv\":\"c2c_bob\"}"}}))
        .await;
    let r = &t.exactly("hw-s", 2).await[1];
    let n = &r.message["android"]["notification"];
    assert!(n.get("sound").is_none(), "{n}");
    assert_eq!(n["default_sound"], true, "{n}");
    assert_eq!(r.ext.as_deref(), Some("{\"conv\":\"c2c_bob\"}"));

    let v = t
        .tim_sendmsg(
            json!({"From_Account":"bob","To_Account":"alice","MsgRandom":9,
            "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"from v4"}}],
            "OfflinePushInfo":{"Ext":"{\"k\":\"v\"}",
                "AndroidInfo":{"Sound":"ding","ExtAsHuaweiIntentParam":1}}}),
        )
        .await;
    assert_eq!(v["ErrorCode"], 0, "{v}");
    let r = &t.exactly("hw-s", 3).await[2];
    assert_eq!(r.message["android"]["notification"]["sound"], "/raw/ding");
    assert!(r
        .intent
        .as_deref()
        .unwrap_or_default()
        .ends_with(";S.k=v;end"));

    let (s, v) =
        t.h.api(
            Method::POST,
            "/v1/messages",
            Some(json!({"to":["alice"],"from":"bob","text":"x",
                "offline_push":{"ext_as_huawei_intent_param":2}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["field"], "offline_push.ext_as_huawei_intent_param",
        "{v}"
    );
    let v = t
        .tim_sendmsg(
            json!({"From_Account":"bob","To_Account":"alice","MsgRandom":10,
            "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"x"}}],
            "OfflinePushInfo":{"AndroidInfo":{"ExtAsHuaweiIntentParam":"yes"}}}),
        )
        .await;
    assert_ne!(v["ErrorCode"], 0, "{v}");
    assert!(
        v["ErrorInfo"]
            .as_str()
            .unwrap_or_default()
            .contains("ExtAsHuaweiIntentParam"),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(t.records("hw-s").len(), 3);
    t.accounted(cert, 3).await;
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
    assert_eq!(
        t.emu.stats().tokens_issued,
        1,
        "one fetch shared by every request"
    );

    t.emu.expire_access_tokens();
    t.h.send(json!({"to":["u0"],"from":"bob","text":"after expiry"}))
        .await;
    let got = t.exactly("tok-u0", 2).await;
    assert_eq!(got[1].body, "after expiry");
    let stats = t.emu.stats();
    assert_eq!(stats.tokens_issued, 2, "{stats:?}");
    let path = format!("/v1/{APP_ID}/messages:send");
    assert_eq!(
        stats.requests[&path].get("80200003").copied(),
        Some(1),
        "{stats:?}"
    );
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
        metric(
            &m,
            "pushgate_vendor_requests_total",
            "kind=\"token\",result=\"delivered\",vendor=\"huawei\""
        ) >= 4.0,
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
    t.h.send(json!({"to":["other"],"from":"bob","text":"x"}))
        .await;
    let n = t.last_notification("other").await;
    assert_eq!(n["class"], "no_valid_targets", "{n}");
    assert!(n["detail"].as_str().unwrap().contains("app_id"), "{n}");
    assert_eq!(
        t.device("other").await["token_bound"],
        true,
        "kept: the app id may be wrong"
    );

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
    t.h.send(json!({"to":["other2"],"from":"bob","text":"y"}))
        .await;
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
    let got = wait_for(
        "every message through flow control",
        Duration::from_secs(20),
        || async {
            let r = t.records("tok-a");
            (r.len() >= N).then_some(r)
        },
    )
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
    let (s, v) =
        t.h.admin(Method::POST, "/v1/certificates", Some(cert_body("wrong")))
            .await;
    assert_eq!(s, 201, "{v}");
    let cert = v["id"].as_u64().unwrap();
    t.h.push_online("alice", "d1", cert, "tok-a").await;
    t.h.send(json!({"to":["alice"],"from":"bob","text":"x"}))
        .await;
    let v = wait_for("the certificate broken", WAIT, || async {
        let v = t.cert_view(cert).await;
        (v["status"]["state"] == "broken").then_some(v)
    })
    .await;
    assert!(
        v.to_string().contains("12304"),
        "Huawei's sub-error shown: {v}"
    );
    assert!(
        !v.to_string().contains("wrong\""),
        "the secret is never returned: {v}"
    );
    let (s, v) =
        t.h.admin(
            Method::PUT,
            &format!("/v1/certificates/{cert}"),
            Some(cert_body(CLIENT_SECRET)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    t.h.send(json!({"to":["alice"],"from":"bob","text":"fixed"}))
        .await;
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
        s.requests
            .get(&path)
            .and_then(|r| r.get("http_502"))
            .map(|_| ())
    })
    .await;
    t.emu.set_knobs(Knobs::default());
    let r = t.exactly("tok-a", 1).await;
    assert_eq!(r[0].body, "through the storm");
    let v = t.cert_view(cert).await;
    assert_eq!(v["stats"]["sent"], 1, "{v}");
    t.accounted(cert, 1).await;
}

/// An access token is renewed before it expires (120 s early): with a 123 s lifetime it serves
/// the sends of its first 3 s, and a send after that fetches a new one without ever being
/// refused.
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
    t.h.push_online("alice", "d1", cert, "tok-a").await;
    t.h.send(json!({"to":["alice"],"from":"bob","text":"one"}))
        .await;
    t.h.send(json!({"to":["alice"],"from":"bob","text":"two"}))
        .await;
    t.exactly("tok-a", 2).await;
    assert_eq!(
        t.emu.stats().tokens_issued,
        1,
        "one token while it is fresh"
    );
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    t.h.send(json!({"to":["alice"],"from":"bob","text":"three"}))
        .await;
    t.exactly("tok-a", 3).await;
    let stats = t.emu.stats();
    assert_eq!(stats.tokens_issued, 2, "renewed before expiry: {stats:?}");
    let path = format!("/v1/{APP_ID}/messages:send");
    assert_eq!(
        stats.requests[&path].get("80200003"),
        None,
        "never refused: {stats:?}"
    );
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
        t.h.send(json!({"to":[format!("u{i}")],"from":"bob","text":format!("hello {i}")}))
            .await;
    }
    let token_path = "/oauth2/v3/token";
    wait_for("the token endpoint refused while down", WAIT, || async {
        let s = t.emu.stats();
        s.requests
            .get(token_path)
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

/// Identical content to 1,001 devices: requests of at most 1,000 tokens (Huawei's limit), every
/// device notified once.
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
    t.h.send(json!({"to":to,"from":"bob","text":"to everyone"}))
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

/// A certificate with a service-account key file instead of the AppSecret (spec §2.2): refused
/// naming the bad field, never shown, and its JWT is the bearer — no OAuth call, one signature
/// for many sends, and a fresh JWT after Huawei answers 80200005 "Jwt token expired".
#[tokio::test]
async fn a_service_account_certificate_sends_with_a_jwt_and_renews_it() {
    use pushgate::providers::huawei::account::sample_key_file;
    use pushgate::providers::huawei::emulator::ServiceAccountKey;

    let t = start().await;
    let (file, public_key) = sample_key_file("736430079244623135", "kid-it").unwrap();
    t.emu.add_service_account(ServiceAccountKey {
        key_id: "kid-it".into(),
        sub_account: file["sub_account"].as_str().unwrap().into(),
        public_key,
        app_ids: vec![APP_ID.into()],
    });
    let body = |account: Value| {
        let mut b = cert_body("unused");
        b.as_object_mut().unwrap().remove("app_secret");
        b["service_account"] = account;
        b
    };

    // Bad key files and a secret together with a key file: refused, naming the field.
    let mut broken = file.clone();
    broken["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----");
    let mut both = body(file.clone());
    both["app_secret"] = json!(CLIENT_SECRET);
    for (bad, field) in [
        (body(broken), "service_account.private_key"),
        (
            body(json!({"project_id": "1", "private_key": "x"})),
            "service_account.key_id",
        ),
        (both, "service_account"),
    ] {
        let (s, v) = t.h.admin(Method::POST, "/v1/certificates", Some(bad)).await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
        assert!(!v.to_string().contains("PRIVATE KEY"), "{v}");
    }

    let (s, v) =
        t.h.admin(Method::POST, "/v1/certificates", Some(body(file.clone())))
            .await;
    assert_eq!(s, 201, "{v}");
    let cert = v["id"].as_u64().unwrap();
    assert_eq!(v["app_secret_set"], false, "{v}");
    assert_eq!(v["service_account"]["key_id"], "kid-it", "{v}");
    assert_eq!(v["service_account"]["private_key_set"], true, "{v}");
    let (_, all) = t.h.admin(Method::GET, "/v1/certificates", None).await;
    assert!(!all.to_string().contains("PRIVATE KEY"), "{all}");

    t.h.push_online("alice", "d1", cert, "hw-jwt-a").await;
    for i in 0..3 {
        t.h.send(json!({"to":["alice"],"from":"bob","text":format!("jwt {i}")}))
            .await;
    }
    let got = t.exactly("hw-jwt-a", 3).await;
    assert!(
        got.iter()
            .all(|r| r.headers.get("auth").map(String::as_str) == Some("jwt kid-it")),
        "{got:#?}"
    );
    assert_eq!(t.emu.stats().tokens_issued, 0, "no OAuth token call");
    assert_eq!(
        t.emu.stats().requests[&format!("/v1/{APP_ID}/messages:send")]["80000000"],
        3
    );

    // Huawei says the JWT expired: one renewal, the same notification resent at once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    t.emu
        .expire_jwts_issued_before(pushgate::domain::now_secs());
    t.h.send(json!({"to":["alice"],"from":"bob","text":"after expiry"}))
        .await;
    let got = t.exactly("hw-jwt-a", 4).await;
    assert_eq!(got[3].body, "after expiry");
    let stats = t.emu.stats();
    assert_eq!(
        stats.requests[&format!("/v1/{APP_ID}/messages:send")]["80200005"],
        1,
        "{stats:?}"
    );
    assert_eq!(t.last_notification("alice").await["class"], "delivered");
    t.accounted(cert, 4).await;

    // Back to OAuth by an edit that gives the secret: the key file is cleared.
    let (s, v) =
        t.h.admin(
            Method::PUT,
            &format!("/v1/certificates/{cert}"),
            Some(cert_body(CLIENT_SECRET)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["app_secret_set"].as_bool(),
            v["service_account"].is_null()
        ),
        (Some(true), true),
        "{v}"
    );
}

const PROJECT_ID: &str = "736430079244623135";

/// A HarmonyOS NEXT certificate: `api_version` v3 with a service-account key file registered
/// in the emulator for `owns` (the ids its account may send for).
async fn harmony_cert(t: &Hw, kid: &str, owns: &[&str]) -> (u64, Value) {
    use pushgate::providers::huawei::account::sample_key_file;
    use pushgate::providers::huawei::emulator::ServiceAccountKey;

    let (file, public_key) = sample_key_file(PROJECT_ID, kid).unwrap();
    t.emu.add_service_account(ServiceAccountKey {
        key_id: kid.into(),
        sub_account: file["sub_account"].as_str().unwrap().into(),
        public_key,
        app_ids: owns.iter().map(|s| s.to_string()).collect(),
    });
    let mut body = cert_body("unused");
    body.as_object_mut().unwrap().remove("app_secret");
    body["service_account"] = file.clone();
    body["api_version"] = json!("v3");
    let (s, v) =
        t.h.admin(Method::POST, "/v1/certificates", Some(body))
            .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["api_version"], "v3", "{v}");
    (v["id"].as_u64().unwrap(), file)
}

/// HarmonyOS NEXT (huawei.md §1 "Send, v3"): the v3 URL of the account's project, `push-type:
/// 0`, the JWT, and the v3 body — category, title, body, Ext in `clickAction.data`, the intent's
/// action as actionType 1 — with illegal tokens unbound and every notification accounted for.
#[tokio::test]
async fn a_harmony_next_certificate_sends_the_v3_request() {
    let t = start().await;

    // v3 takes only a service account; the API version is one of two; each refusal names it.
    let (file, _) =
        pushgate::providers::huawei::account::sample_key_file(PROJECT_ID, "k0").unwrap();
    let mut secret_v3 = cert_body(CLIENT_SECRET);
    secret_v3["api_version"] = json!("v3");
    let mut v2 = cert_body("unused");
    v2.as_object_mut().unwrap().remove("app_secret");
    v2["service_account"] = file;
    v2["api_version"] = json!("v2");
    let mut both = v2.clone();
    both["api_version"] = json!("v3");
    both["app_secret"] = json!(CLIENT_SECRET);
    for (bad, field) in [
        (secret_v3, "app_secret"),
        (v2, "api_version"),
        (both, "app_secret"),
    ] {
        let (s, v) = t.h.admin(Method::POST, "/v1/certificates", Some(bad)).await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    // An OAuth certificate edited to v3 without a key file: refused, and left as it was.
    let oauth = t.certificate().await;
    let mut to_v3 = cert_body(CLIENT_SECRET);
    to_v3.as_object_mut().unwrap().remove("app_secret");
    to_v3["api_version"] = json!("v3");
    let (s, v) =
        t.h.admin(
            Method::PUT,
            &format!("/v1/certificates/{oauth}"),
            Some(to_v3),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("service_account")),
        "{v}"
    );
    assert_eq!(t.cert_view(oauth).await["api_version"], "v1");

    let (cert, _) = harmony_cert(&t, "kid-next", &[PROJECT_ID]).await;
    t.h.push_online("alice", "d1", cert, "next-tok-a").await;
    t.h.send(json!({"to":["alice"],"from":"bob","text":"hi on NEXT",
        "offline_push":{"title":"Bob","ext":"{\"conv\":\"c2c_bob\"}"}}))
        .await;
    let r = &t.exactly("next-tok-a", 1).await[0];
    assert_eq!(r.endpoint, format!("/v3/{PROJECT_ID}/messages:send"));
    assert_eq!(r.headers.get("push-type").map(String::as_str), Some("0"));
    assert_eq!(
        r.headers.get("auth").map(String::as_str),
        Some("jwt kid-next")
    );
    assert_eq!((r.title.as_str(), r.body.as_str()), ("Bob", "hi on NEXT"));
    assert_eq!(r.category, "IM");
    assert_eq!(r.click_type, 0, "open the app");
    assert_eq!(r.ext.as_deref(), Some("{\"conv\":\"c2c_bob\"}"));
    let n = &r.message["payload"]["notification"];
    assert_eq!(
        n["clickAction"]["data"]["ext"], "{\"conv\":\"c2c_bob\"}",
        "{r:#?}"
    );
    assert!(
        n.get("importance").is_none() && r.message.get("message").is_none(),
        "{r:#?}"
    );
    assert_eq!(r.message["pushOptions"]["ttl"], 86400, "{r:#?}");
    assert_eq!(t.emu.stats().tokens_issued, 0, "no OAuth token call");

    // The message's classification overrides the certificate's; blank texts get the default.
    t.h.send(json!({"to":["alice"],"from":"bob","text":"promo",
        "offline_push":{"huawei_category":"MARKETING"}}))
        .await;
    let r = &t.exactly("next-tok-a", 2).await[1];
    assert_eq!(
        (r.category.as_str(), r.title.as_str(), r.body.as_str()),
        ("MARKETING", "a new message", "promo")
    );

    // An in-app page: the intent's action names the ability (actionType 1). The edit keeps
    // the stored key file.
    let mut edit = cert_body("unused");
    edit.as_object_mut().unwrap().remove("app_secret");
    edit["api_version"] = json!("v3");
    edit["click_action"] = json!({"type": "open_activity",
        "intent_uri": "intent://chat#Intent;action=com.example.OPEN_CHAT;scheme=app;end"});
    let (s, v) =
        t.h.admin(Method::PUT, &format!("/v1/certificates/{cert}"), Some(edit))
            .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["service_account"]["private_key_set"], true, "{v}");
    t.h.send(json!({"to":["alice"],"from":"bob","text":"open the chat"}))
        .await;
    let r = &t.exactly("next-tok-a", 3).await[2];
    assert_eq!(r.click_type, 1);
    assert_eq!(r.intent.as_deref(), Some("com.example.OPEN_CHAT"));

    // A refused token in a shared request (80100000): unbound, the other delivered.
    t.emu.add_invalid_tokens(["next-dead"]);
    t.h.push_online("dead", "d1", cert, "next-dead").await;
    t.h.push_online("live", "d1", cert, "next-live").await;
    t.h.send(json!({"to":["dead","live"],"from":"bob","text":"partial"}))
        .await;
    t.exactly("next-live", 1).await;
    wait_for("the illegal token unbound", WAIT, || async {
        (t.device("dead").await["token_bound"] == false).then_some(())
    })
    .await;
    assert_eq!(t.device("live").await["token_bound"], true);
    assert_eq!(t.last_notification("live").await["class"], "delivered");
    t.accounted(cert, 5).await;
}

/// The emulator's v3 endpoint is strict over the socket: an OAuth bearer or a request without
/// `push-type` is refused; and a certificate whose service account does not own the project
/// (80200001 even after a fresh JWT) is shown as broken with Huawei's answer.
#[tokio::test]
async fn a_harmony_next_certificate_refused_by_huawei_is_broken() {
    let t = start().await;
    let url = format!("{}/v3/{PROJECT_ID}/messages:send", t.emu.base_url());
    let body = json!({"payload":{"notification":{"category":"IM","title":"t","body":"b",
        "clickAction":{"actionType":0}}},"target":{"token":["x"]}});
    let answer = |res: reqwest::Response| async move {
        (
            res.status().as_u16(),
            res.json::<Value>().await.unwrap()["code"].clone(),
        )
    };
    let res =
        t.h.http
            .post(&url)
            .bearer_auth("an-oauth-token")
            .header("push-type", "0")
            .json(&body)
            .send()
            .await
            .unwrap();
    assert_eq!(answer(res).await, (401, json!("80200001")));

    // Its account owns only the v1 app id, not the project of the v3 URL.
    let (cert, file) = harmony_cert(&t, "kid-elsewhere", &[APP_ID]).await;
    let account = pushgate::providers::huawei::ServiceAccount::from_json(&file).unwrap();
    let jwt = account.jwt(pushgate::domain::now_secs()).unwrap();
    let res =
        t.h.http
            .post(&url)
            .bearer_auth(&jwt)
            .json(&body)
            .send()
            .await
            .unwrap();
    assert_eq!(
        answer(res).await,
        (401, json!("80200001")),
        "refused before push-type"
    );

    t.h.push_online("alice", "d1", cert, "next-tok-a").await;
    t.h.send(json!({"to":["alice"],"from":"bob","text":"x"}))
        .await;
    let v = wait_for("the certificate broken", WAIT, || async {
        let v = t.cert_view(cert).await;
        (v["status"]["state"] == "broken").then_some(v)
    })
    .await;
    assert!(
        v["status"].to_string().contains("80200001"),
        "Huawei's answer shown: {v}"
    );
    assert!(!v.to_string().contains("PRIVATE KEY"), "{v}");
    let stats = t.emu.stats();
    assert_eq!(
        stats.requests[&format!("/v3/{PROJECT_ID}/messages:send")]["80200001"],
        4,
        "the two probes, the send, and its one resend with a fresh JWT: {stats:?}"
    );
    t.accounted(cert, 1).await;
    assert!(t.records("next-tok-a").is_empty());

    // With an account that owns the project, the same request without push-type is refused.
    t.emu
        .add_service_account(pushgate::providers::huawei::emulator::ServiceAccountKey {
            key_id: "kid-elsewhere".into(),
            sub_account: account.sub_account.clone(),
            public_key: account.public_pem().unwrap(),
            app_ids: vec![PROJECT_ID.into()],
        });
    let res =
        t.h.http
            .post(&url)
            .bearer_auth(&jwt)
            .json(&body)
            .send()
            .await
            .unwrap();
    assert_eq!(answer(res).await, (400, json!("80100001")));
}
