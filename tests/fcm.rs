//! FCM delivery over real sockets: the gateway, its HTTP/2 pool and the FCM emulator (token
//! endpoint included) on loopback. What a user would check: the notification's fields, one
//! access token shared by every send and renewed after a 401, invalid tokens unbound, a
//! payload error that leaves the token bound, 429 + Retry-After honoured, a refused account
//! shown as a broken certificate, 5xx retried, and every notification accounted for.

mod common;

use common::*;
use pushgate::providers::fcm::account::sample_account_json;
use pushgate::providers::fcm::emulator::{
    self, EmulatorConfig, EmulatorHandle, Knobs, ReceivedMessage, TokenState,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(8);

struct Rig {
    h: Harness,
    fcm: EmulatorHandle,
    cert: u64,
}

fn fcm_emulator(config: EmulatorConfig) -> EmulatorHandle {
    emulator::start(
        EmulatorConfig {
            sample_project: Some("demo-project".into()),
            ..config
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
}

fn cert_body(account: Value) -> Value {
    json!({"vendor":"fcm","package_name":PACKAGE,"click_action":{"type":"open_app"},"service_account":account,"channel_id":"im_default","qps":1000})
}

impl Rig {
    async fn start(config: EmulatorConfig) -> Rig {
        let fcm = fcm_emulator(config);
        let base = fcm.base_url();
        let h = Harness::builder()
            .config(move |c| c.fcm_base_url = base)
            .start()
            .await;
        let (s, v) = h
            .admin(
                Method::POST,
                "/v1/certificates",
                Some(cert_body(fcm.sample_account().unwrap())),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let cert = v["id"].as_u64().unwrap();
        Rig { h, fcm, cert }
    }

    async fn killed(&self, user: &str) {
        self.h
            .push_online(user, "d1", self.cert, &format!("fcm-{user}"))
            .await;
    }

    fn got(&self, user: &str) -> Vec<ReceivedMessage> {
        let token = format!("fcm-{user}");
        self.fcm
            .received()
            .into_iter()
            .filter(|r| r.token == token)
            .collect()
    }

    async fn wait_got(&self, user: &str, n: usize) -> Vec<ReceivedMessage> {
        wait_for(&format!("{n} FCM messages for {user}"), WAIT, || async {
            let got = self.got(user);
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

#[tokio::test]
async fn a_notification_carries_the_v1_fields_and_one_token_serves_every_send() {
    let rig = Rig::start(EmulatorConfig::default()).await;
    for u in ["alice", "bob", "carol"] {
        rig.killed(u).await;
    }
    let v = rig.h.send(json!({"to":["alice"],"from":"dave","text":"hi there",
        "offline_push":{"title":"Dave","ext":"{\"conv\":1}","google_channel_id":"im_chat","sound":"ding"}})).await;
    let message_id = v["message_id"].as_u64().unwrap();
    let got = rig.wait_got("alice", 1).await;
    let m = &got[0];
    assert_eq!(m.project_id, "demo-project");
    assert_eq!(m.http_version, "HTTP/2.0");
    assert_eq!(m.title.as_deref(), Some("Dave"));
    assert_eq!(m.body.as_deref(), Some("hi there"));
    assert_eq!(m.data.get("ext").map(String::as_str), Some("{\"conv\":1}"));
    assert_eq!(m.channel_id.as_deref(), Some("im_chat"));
    assert_eq!(m.sound.as_deref(), Some("ding"));
    assert_eq!(m.priority.as_deref(), Some("high"));
    assert_eq!(m.ttl.as_deref(), Some("604800s"));
    assert_eq!(m.restricted_package_name.as_deref(), Some(PACKAGE));
    assert_eq!(m.tag.as_deref(), Some(message_id.to_string().as_str()));
    assert_eq!(m.collapse_key, None);
    // The certificate's channel when the message names none; distinct content, one per request.
    rig.h
        .send(json!({"to":["bob","carol"],"from":"dave","text":"both"}))
        .await;
    rig.h
        .send(json!({"to":["bob"],"from":"erin","text":"other"}))
        .await;
    assert_eq!(
        rig.wait_got("bob", 2).await[0].channel_id.as_deref(),
        Some("im_default")
    );
    rig.wait_got("carol", 1).await;
    assert_eq!(rig.h.last_class("bob", WAIT).await, "delivered");
    assert_eq!(
        rig.fcm.stats().access_tokens_issued,
        1,
        "one access token for every send"
    );
    let v = rig.h.settled(rig.cert, 4, WAIT).await;
    assert_eq!(v["vendor"], "fcm");
    assert_eq!(v["service_account"]["project_id"], "demo-project");
    assert!(!v.to_string().contains("PRIVATE KEY"), "{v}");
    assert_eq!(v["stats"]["sent"], 4, "{v}");
}

#[tokio::test]
async fn a_refused_access_token_is_renewed_once_for_all_concurrent_sends() {
    let rig = Rig::start(EmulatorConfig::default()).await;
    let users: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    for u in &users {
        rig.killed(u).await;
    }
    rig.h
        .send(json!({"to":["u0"],"from":"x","text":"warm"}))
        .await;
    rig.wait_got("u0", 1).await;
    assert_eq!(rig.fcm.revoke_access_tokens(), 1);
    rig.h
        .send(json!({"to":users,"from":"x","text":"after revoke"}))
        .await;
    for u in &users {
        rig.wait_got(u, if u == "u0" { 2 } else { 1 }).await;
    }
    let stats = rig.fcm.stats();
    assert!(stats.requests["send"]["UNAUTHENTICATED"] >= 1, "{stats:?}");
    assert_eq!(
        stats.access_tokens_issued, 2,
        "one renewal shared by every send: {stats:?}"
    );
    assert_eq!(
        rig.h.cert_view(rig.cert).await["status"]["state"],
        "healthy"
    );
}

#[tokio::test]
async fn invalid_tokens_are_unbound_and_payload_errors_are_not() {
    let rig = Rig::start(EmulatorConfig {
        max_message_bytes: 200,
        ..EmulatorConfig::default()
    })
    .await;
    for u in ["gone", "junk", "foreign", "big", "fine"] {
        rig.killed(u).await;
    }
    rig.fcm.set_tokens(TokenState::Unregistered, ["fcm-gone"]);
    rig.fcm.set_tokens(TokenState::Invalid, ["fcm-junk"]);
    rig.fcm.set_tokens(TokenState::OtherSender, ["fcm-foreign"]);
    rig.h
        .send(json!({"to":["gone","junk","foreign","fine"],"from":"x","text":"hi"}))
        .await;
    rig.h
        .send(json!({"to":["big"],"from":"x","text":"y".repeat(300)}))
        .await;
    for u in ["gone", "junk", "foreign"] {
        assert_eq!(rig.h.last_class(u, WAIT).await, "bad_token", "{u}");
        assert!(!rig.h.token_bound(u).await, "{u}'s token is unbound");
    }
    assert_eq!(rig.h.last_class("big", WAIT).await, "invalid_request");
    assert!(
        rig.h.token_bound("big").await,
        "a payload error leaves the token bound"
    );
    assert_eq!(rig.h.last_class("fine", WAIT).await, "delivered");
    let v = rig.h.settled(rig.cert, 5, WAIT).await;
    assert_eq!(v["stats"]["sent"], 1, "{v}");
    assert_eq!(v["stats"]["failed"]["bad_token"], 3, "{v}");
    assert_eq!(v["stats"]["failed"]["invalid_request"], 1, "{v}");
    assert_eq!(v["status"]["state"], "healthy");
}

#[tokio::test]
async fn quota_exceeded_slows_down_and_honours_retry_after() {
    let rig = Rig::start(EmulatorConfig {
        knobs: Knobs {
            qps_limit: Some(2),
            retry_after_secs: 1,
            ..Knobs::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    let users: Vec<String> = (0..6).map(|i| format!("q{i}")).collect();
    for u in &users {
        rig.killed(u).await;
    }
    let t0 = Instant::now();
    rig.h
        .send(json!({"to":users,"from":"x","text":"burst"}))
        .await;
    for u in &users {
        rig.wait_got(u, 1).await;
    }
    let stats = rig.fcm.stats();
    assert!(
        stats.requests["send"]
            .get("QUOTA_EXCEEDED")
            .copied()
            .unwrap_or(0)
            >= 1,
        "{stats:?}"
    );
    // Six sends at two per second, the refused ones retried after Retry-After: not before 1 s.
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    let v = rig.h.settled(rig.cert, 6, WAIT).await;
    assert_eq!(v["stats"]["sent"], 6, "{v}");
    assert!(v["stats"]["rate_limited"].as_u64().unwrap() >= 1, "{v}");
}

#[tokio::test]
async fn an_account_google_refuses_breaks_the_certificate() {
    let rig = Rig::start(EmulatorConfig::default()).await;
    // A well-formed account whose key the emulator does not know.
    let (stranger, _) = sample_account_json("demo-project", &rig.fcm.token_uri()).unwrap();
    let (s, v) = rig
        .h
        .admin(Method::POST, "/v1/certificates", Some(cert_body(stranger)))
        .await;
    assert_eq!(s, 201, "{v}");
    let cert = v["id"].as_u64().unwrap();
    rig.h.push_online("alice", "d1", cert, "fcm-alice").await;
    rig.h
        .send(json!({"to":["alice"],"from":"x","text":"hi"}))
        .await;
    let v = wait_for("the certificate broken", WAIT, || async {
        let (_, v) = rig
            .h
            .admin(Method::GET, &format!("/v1/certificates/{cert}"), None)
            .await;
        (v["status"]["state"] == "broken").then_some(v)
    })
    .await;
    assert!(
        v["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{v}"
    );
    assert_eq!(rig.h.last_class("alice", WAIT).await, "misconfigured");
    assert!(rig.got("alice").is_empty());
}

#[tokio::test]
async fn unavailable_is_retried_until_fcm_answers() {
    let rig = Rig::start(EmulatorConfig {
        knobs: Knobs {
            error_5xx_ratio: 1.0,
            retry_after_secs: 0,
            ..Knobs::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    rig.killed("alice").await;
    rig.h
        .send(json!({"to":["alice"],"from":"x","text":"eventually"}))
        .await;
    wait_for("a 503", WAIT, || async {
        (rig.fcm
            .stats()
            .requests
            .get("send")
            .and_then(|s| s.get("UNAVAILABLE"))
            .is_some())
        .then_some(())
    })
    .await;
    rig.fcm.set_knobs(Knobs::default());
    rig.wait_got("alice", 1).await;
    assert_eq!(rig.h.last_class("alice", WAIT).await, "delivered");
    assert_eq!(rig.h.settled(rig.cert, 1, WAIT).await["stats"]["sent"], 1);
}

#[tokio::test]
async fn bad_service_accounts_are_field_errors() {
    let rig = Rig::start(EmulatorConfig::default()).await;
    let mut account = rig.fcm.sample_account().unwrap();
    account["private_key"] = json!("not a key");
    let (s, v) = rig
        .h
        .admin(Method::POST, "/v1/certificates", Some(cert_body(account)))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("service_account.private_key"), "{v}");
    let (s, v) = rig
        .h
        .admin(
            Method::POST,
            "/v1/certificates",
            Some(json!({"vendor":"fcm","package_name":PACKAGE,"click_action":{"type":"open_app"},"qps":10})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("service_account"), "{v}");
    let (s, v) = rig.h.admin(Method::POST, "/v1/certificates", Some(json!({"vendor":"fcm","package_name":PACKAGE,"click_action":{"type":"open_app"},"qps":10,"app_secret":"x","service_account":rig.fcm.sample_account().unwrap()}))).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("app_secret"), "{v}");
}

#[tokio::test]
async fn tim_google_channel_and_sound_reach_fcm() {
    let rig = Rig::start(EmulatorConfig::default()).await;
    rig.killed("alice").await;
    rig.h
        .tim_sendmsg(
            "dave",
            "alice",
            "hi there",
            json!({"Title": "Dave", "Ext": "{\"k\":1}",
        "AndroidInfo": {"GoogleChannelID": "im_chat", "Sound": "ding"}}),
        )
        .await;
    let m = &rig.wait_got("alice", 1).await[0];
    assert_eq!(m.title.as_deref(), Some("Dave"));
    assert_eq!(m.body.as_deref(), Some("hi there"));
    assert_eq!(m.channel_id.as_deref(), Some("im_chat"));
    assert_eq!(m.sound.as_deref(), Some("ding"));
    assert_eq!(m.data.get("ext").map(String::as_str), Some("{\"k\":1}"));
}

/// An "open in-app page" certificate opens its activity through FCM's `click_action` (the
/// intent filter's action from the certificate's intent URI); "open app" sends none.
#[tokio::test]
async fn the_certificates_in_app_page_becomes_fcms_click_action() {
    let rig = Rig::start(EmulatorConfig::default()).await;
    rig.killed("alice").await;
    rig.h
        .send(json!({"to":["alice"],"from":"dave","text":"launcher"}))
        .await;
    assert_eq!(rig.wait_got("alice", 1).await[0].click_action, None);
    let mut edit = cert_body(rig.fcm.sample_account().unwrap());
    edit["click_action"] = json!({"type":"open_activity",
        "intent_uri":"intent://chat/detail#Intent;scheme=app;action=com.example.OPEN_CHAT;end"});
    let (s, v) = rig
        .h
        .admin(
            Method::PUT,
            &format!("/v1/certificates/{}", rig.cert),
            Some(edit),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    rig.h
        .send(json!({"to":["alice"],"from":"dave","text":"page"}))
        .await;
    let m = &rig.wait_got("alice", 2).await[1];
    assert_eq!(m.body.as_deref(), Some("page"));
    assert_eq!(m.click_action.as_deref(), Some("com.example.OPEN_CHAT"));
}

#[tokio::test]
async fn the_service_account_survives_a_restart_and_still_signs() {
    let Rig { h, fcm, cert } = Rig::start(EmulatorConfig::default()).await;
    let h = h.restart().await;
    let rig = Rig { h, fcm, cert };
    let v = rig.h.cert_view(rig.cert).await;
    assert_eq!(v["service_account"]["private_key_set"], true, "{v}");
    rig.killed("alice").await;
    rig.h
        .send(json!({"to":["alice"],"from":"x","text":"after restart"}))
        .await;
    rig.wait_got("alice", 1).await;
    assert_eq!(rig.h.last_class("alice", WAIT).await, "delivered");
}
