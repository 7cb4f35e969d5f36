//! APNs delivery over real sockets: the gateway, its HTTP/2 pool and the APNs emulator (h2c) on
//! loopback. What a user would check: Apple's headers and payload, one provider token for every
//! send, invalid tokens unbound, a payload error that leaves the token bound, TooManyRequests
//! slowing down, a refused key shown as a broken certificate, a connection cut to one stream
//! survived, 5xx retried, and every notification accounted for.

mod common;

use common::*;
use pushgate::providers::apns::emulator::{
    self, DeviceState, EmulatorConfig, EmulatorHandle, Knobs, ReceivedNotification,
};
use pushgate::providers::jwt::Es256Key;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(8);

/// A device token in Apple's shape (lowercase hex) for a user.
fn device_token(user: &str) -> String {
    let hex: String = user.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex:0>64}")
}

fn cert_body(key: &Value) -> Value {
    json!({"vendor":"apns","package_name":PACKAGE,"click_action":{"type":"open_app"},"key_id":key["key_id"],"team_id":key["team_id"],
        "private_key":key["private_key"],"environment":"sandbox","qps":1000})
}

struct Rig {
    h: Harness,
    apns: EmulatorHandle,
    cert: u64,
}

impl Rig {
    async fn start(config: EmulatorConfig) -> Rig {
        let apns = emulator::start(
            EmulatorConfig {
                sample_key: true,
                ..config
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let base = apns.base_url();
        let h = Harness::builder()
            .config(move |c| c.apns_base_url = Some(base))
            .start()
            .await;
        let (s, v) = h
            .admin(
                Method::POST,
                "/v1/certificates",
                Some(cert_body(&apns.sample_key().unwrap())),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let cert = v["id"].as_u64().unwrap();
        Rig { h, apns, cert }
    }

    async fn killed(&self, user: &str) {
        self.h
            .push_online(user, "d1", self.cert, &device_token(user))
            .await;
    }

    fn got(&self, user: &str) -> Vec<ReceivedNotification> {
        let token = device_token(user);
        self.apns
            .received()
            .into_iter()
            .filter(|r| r.device_token == token)
            .collect()
    }

    async fn wait_got(&self, user: &str, n: usize) -> Vec<ReceivedNotification> {
        wait_for(
            &format!("{n} APNs notifications for {user}"),
            WAIT,
            || async {
                let got = self.got(user);
                (got.len() >= n).then_some(got)
            },
        )
        .await
    }
}

#[tokio::test]
async fn a_notification_carries_apples_headers_and_payload() {
    let rig = Rig::start(EmulatorConfig::default()).await;
    rig.killed("alice").await;
    rig.killed("bob").await;
    let v = rig.h.send(json!({"to":["alice"],"from":"dave","text":"hi there",
        "offline_push":{"title":"Dave","ext":"{\"conv\":1}",
            "apns":{"title":"Dave (iOS)","sub_title":"Group X","sound":"ping.caf","mutable_content":1}}})).await;
    let message_id = v["message_id"].as_u64().unwrap().to_string();
    let got = rig.wait_got("alice", 1).await;
    let n = &got[0];
    assert_eq!(n.topic, PACKAGE);
    assert_eq!(n.push_type, "alert");
    assert_eq!(n.priority.as_deref(), Some("10"));
    assert_eq!(n.collapse_id.as_deref(), Some(message_id.as_str()));
    let expiration: u64 = n.expiration.as_deref().unwrap().parse().unwrap();
    let now = pushgate::domain::now_secs();
    assert!(
        expiration > now + 6 * 86_400 && expiration <= now + 7 * 86_400 + 60,
        "{expiration}"
    );
    let aps = &n.payload["aps"];
    assert_eq!(
        aps["alert"],
        json!({"title":"Dave (iOS)","subtitle":"Group X","body":"hi there"})
    );
    assert_eq!(aps["sound"], "ping.caf");
    assert_eq!(aps["mutable-content"], 1);
    assert_eq!(aps["thread-id"], "c2c:dave");
    assert_eq!(n.payload["ext"], "{\"conv\":1}", "ext outside aps");
    for i in 0..5 {
        rig.h
            .send(json!({"to":["bob"],"from":"dave","text":format!("m{i}")}))
            .await;
    }
    let got = rig.wait_got("bob", 5).await;
    assert_eq!(
        got[0].payload["aps"]["alert"]["title"], "a new message",
        "the gateway's default title when none is given"
    );
    assert_eq!(
        rig.apns.stats().provider_tokens_seen,
        1,
        "one provider token for every send"
    );
    assert!(
        rig.apns.connections() <= 4,
        "a bounded pool: {}",
        rig.apns.connections()
    );
    let v = rig.h.settled(rig.cert, 6, WAIT).await;
    assert_eq!(v["key_id"], emulator::SAMPLE_KEY_ID);
    assert_eq!(v["private_key_set"], true);
    assert!(!v.to_string().contains("PRIVATE KEY"), "{v}");
    assert_eq!(v["stats"]["sent"], 6, "{v}");
}

#[tokio::test]
async fn invalid_tokens_are_unbound_and_payload_errors_are_not() {
    let rig = Rig::start(EmulatorConfig {
        max_payload_bytes: 300,
        ..EmulatorConfig::default()
    })
    .await;
    for u in ["gone", "expired", "bad", "other", "big", "fine"] {
        rig.killed(u).await;
    }
    rig.apns
        .set_devices(DeviceState::Unregistered, [device_token("gone")]);
    rig.apns
        .set_devices(DeviceState::Expired, [device_token("expired")]);
    rig.apns
        .set_devices(DeviceState::Bad, [device_token("bad")]);
    rig.apns
        .set_devices(DeviceState::OtherTopic, [device_token("other")]);
    rig.h
        .send(json!({"to":["gone","expired","bad","other","fine"],"from":"x","text":"hi"}))
        .await;
    rig.h
        .send(json!({"to":["big"],"from":"x","text":"y".repeat(400)}))
        .await;
    for u in ["gone", "expired", "bad", "other"] {
        assert_eq!(rig.h.last_class(u, WAIT).await, "bad_token", "{u}");
        assert!(!rig.h.token_bound(u).await, "{u}'s token is unbound");
    }
    assert_eq!(rig.h.last_class("big", WAIT).await, "invalid_request");
    assert!(
        rig.h.token_bound("big").await,
        "a payload error leaves the token bound"
    );
    assert_eq!(rig.h.last_class("fine", WAIT).await, "delivered");
    let v = rig.h.settled(rig.cert, 6, WAIT).await;
    assert_eq!(v["stats"]["sent"], 1, "{v}");
    assert_eq!(v["stats"]["failed"]["bad_token"], 4, "{v}");
    assert_eq!(v["stats"]["failed"]["invalid_request"], 1, "{v}");
}

#[tokio::test]
async fn a_connection_cut_to_one_stream_is_survived() {
    let slow = Knobs {
        latency_ms: 20,
        ..Knobs::default()
    };
    let rig = Rig::start(EmulatorConfig {
        knobs: slow.clone(),
        ..EmulatorConfig::default()
    })
    .await;
    let users: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
    for u in &users {
        rig.killed(u).await;
    }
    rig.h
        .send(json!({"to":users,"from":"x","text":"many at a time"}))
        .await;
    for u in &users {
        rig.wait_got(u, 1).await;
    }
    assert!(rig.apns.stats().peak_streams_per_connection > 1);
    // APNs cuts the live connections (graceful GOAWAY) and the new ones allow one stream.
    rig.apns.set_knobs(Knobs {
        concurrency_cut: true,
        ..slow
    });
    rig.h
        .send(json!({"to":users,"from":"x","text":"one at a time"}))
        .await;
    for u in &users {
        rig.wait_got(u, 2).await;
    }
    assert_eq!(rig.apns.stats().peak_streams_per_connection, 1);
    let v = rig.h.settled(rig.cert, 60, WAIT).await;
    assert_eq!(v["stats"]["sent"], 60, "{v}");
    assert_eq!(v["status"]["state"], "healthy");
}

#[tokio::test]
async fn too_many_requests_slows_down_and_5xx_is_retried() {
    let rig = Rig::start(EmulatorConfig {
        knobs: Knobs {
            qps_limit: Some(2),
            ..Knobs::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    let users: Vec<String> = (0..6).map(|i| format!("r{i}")).collect();
    for u in &users {
        rig.killed(u).await;
    }
    rig.h
        .send(json!({"to":users,"from":"x","text":"burst"}))
        .await;
    for u in &users {
        rig.wait_got(u, 1).await;
    }
    assert!(
        rig.apns
            .stats()
            .requests
            .get("TooManyRequests")
            .copied()
            .unwrap_or(0)
            >= 1
    );
    let v = rig.h.settled(rig.cert, 6, WAIT).await;
    assert_eq!(v["stats"]["sent"], 6, "{v}");
    assert!(v["stats"]["rate_limited"].as_u64().unwrap() >= 1, "{v}");

    // A 503 with Retry-After: 2 is retried no sooner (the back-off alone would be 0.5 s).
    rig.apns.set_knobs(Knobs {
        error_5xx_ratio: 1.0,
        retry_after_secs: 2,
        ..Knobs::default()
    });
    rig.h
        .send(json!({"to":["r0"],"from":"x","text":"later"}))
        .await;
    wait_for("a 503", WAIT, || async {
        rig.apns
            .stats()
            .requests
            .get("ServiceUnavailable")
            .map(|_| ())
    })
    .await;
    let refused_at = Instant::now();
    rig.apns.set_knobs(Knobs::default());
    rig.wait_got("r0", 2).await;
    assert!(
        refused_at.elapsed() >= Duration::from_millis(1500),
        "retried {:?} after the 503",
        refused_at.elapsed()
    );
    assert_eq!(rig.h.last_class("r0", WAIT).await, "delivered");
    assert_eq!(rig.h.settled(rig.cert, 7, WAIT).await["stats"]["sent"], 7);
}

#[tokio::test]
async fn an_expired_provider_token_is_not_re_signed_inside_apples_20_minutes() {
    // The emulator calls a token expired after 1 s (as if this server's clock were an hour
    // behind): a new token would earn TooManyProviderTokenUpdates, so the gateway retries once
    // with the same one and then shows the certificate broken, pointing at the clock.
    let rig = Rig::start(EmulatorConfig {
        knobs: Knobs {
            provider_token_ttl_secs: 1,
            ..Knobs::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    rig.killed("alice").await;
    rig.h
        .send(json!({"to":["alice"],"from":"x","text":"first"}))
        .await;
    rig.wait_got("alice", 1).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    rig.h
        .send(json!({"to":["alice"],"from":"x","text":"second"}))
        .await;
    let v = wait_for("the certificate broken", WAIT, || async {
        let v = rig.h.cert_view(rig.cert).await;
        (v["status"]["state"] == "broken").then_some(v)
    })
    .await;
    assert!(
        v["status"]["reason"].as_str().unwrap().contains("clock"),
        "{v}"
    );
    let stats = rig.apns.stats();
    assert_eq!(stats.provider_tokens_seen, 1, "{stats:?}");
    assert_eq!(
        stats.requests.get("ExpiredProviderToken"),
        Some(&2),
        "{stats:?}"
    );
    assert_eq!(stats.requests.get("TooManyProviderTokenUpdates"), None);
    assert_eq!(rig.h.last_class("alice", WAIT).await, "misconfigured");
    let v = rig.h.settled(rig.cert, 2, WAIT).await;
    assert_eq!(v["stats"]["sent"], 1, "{v}");
    assert_eq!(v["stats"]["failed"]["misconfigured"], 1, "{v}");
}

#[tokio::test]
async fn a_key_apple_refuses_breaks_the_certificate() {
    let rig = Rig::start(EmulatorConfig::default()).await;
    let stranger = json!({"key_id": emulator::SAMPLE_KEY_ID, "team_id": emulator::SAMPLE_TEAM_ID,
        "private_key": Es256Key::generate_pem().unwrap()});
    let (s, v) = rig
        .h
        .admin(Method::POST, "/v1/certificates", Some(cert_body(&stranger)))
        .await;
    assert_eq!(s, 201, "{v}");
    let cert = v["id"].as_u64().unwrap();
    rig.h
        .push_online("alice", "d1", cert, &device_token("alice"))
        .await;
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
            .contains("InvalidProviderToken"),
        "{v}"
    );
    assert_eq!(rig.h.last_class("alice", WAIT).await, "misconfigured");
    assert!(rig.got("alice").is_empty());
}

#[tokio::test]
async fn bad_keys_are_field_errors() {
    let rig = Rig::start(EmulatorConfig::default()).await;
    let key = rig.apns.sample_key().unwrap();
    let mut body = cert_body(&key);
    body["key_id"] = json!("short");
    let (s, v) = rig
        .h
        .admin(Method::POST, "/v1/certificates", Some(body))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("key_id"), "{v}");
    let mut body = cert_body(&key);
    body["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----");
    let (s, v) = rig
        .h
        .admin(Method::POST, "/v1/certificates", Some(body))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("private_key"), "{v}");
    let mut body = cert_body(&key);
    body["environment"] = json!("staging");
    let (s, v) = rig
        .h
        .admin(Method::POST, "/v1/certificates", Some(body))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("environment"), "{v}");
    // An edit without the key keeps the stored one.
    let (s, v) = rig.h.admin(Method::PUT, &format!("/v1/certificates/{}", rig.cert),
        Some(json!({"vendor":"apns","package_name":PACKAGE,"click_action":{"type":"open_app"},"key_id":key["key_id"],"team_id":key["team_id"],"environment":"sandbox","qps":50}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["private_key_set"], true);
    assert_eq!(v["qps"], 50);
}

#[tokio::test]
async fn tim_apns_info_reaches_apple() {
    let rig = Rig::start(EmulatorConfig::default()).await;
    rig.killed("alice").await;
    rig.h
        .tim_sendmsg(
            "dave",
            "alice",
            "hi there",
            json!({"Title": "Dave", "Ext": "{\"k\":1}",
        "ApnsInfo": {"Title": "Dave (iOS)", "SubTitle": "Group X", "Sound": "ping.caf",
            "BadgeMode": 1, "MutableContent": 1}}),
        )
        .await;
    let n = &rig.wait_got("alice", 1).await[0];
    let aps = &n.payload["aps"];
    assert_eq!(
        aps["alert"],
        json!({"title":"Dave (iOS)","subtitle":"Group X","body":"hi there"})
    );
    assert_eq!(aps["sound"], "ping.caf");
    assert_eq!(aps["mutable-content"], 1);
    assert_eq!(n.payload["ext"], "{\"k\":1}");
}

/// The badge an iPhone shows: the unread count it went to the background with, plus one per
/// notification since; `BadgeMode` 1 leaves it alone; a login starts the count over.
#[tokio::test]
async fn the_badge_counts_up_from_the_background_unread_count() {
    let rig = Rig::start(EmulatorConfig::default()).await;
    let ev = |action: &str, unread: Option<u32>| {
        let mut e = json!({"user":"alice","platform":"iPhone","device":"ip","action":action});
        if let Some(n) = unread {
            e["unread"] = n.into();
        }
        e
    };
    rig.h.events(json!([ev("login", None)])).await;
    let (s, v) = rig
        .h
        .api(
            Method::PUT,
            "/v1/push-tokens",
            Some(json!({"user":"alice","platform":"iPhone","device":"ip",
                "certificate_id":rig.cert,"token":device_token("alice")})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    rig.h
        .events(json!([ev("background", Some(3)), ev("disconnect", None)]))
        .await;
    let badges = |got: &[ReceivedNotification]| -> Vec<Value> {
        got.iter()
            .map(|n| {
                n.payload["aps"]
                    .get("badge")
                    .cloned()
                    .unwrap_or(Value::Null)
            })
            .collect()
    };
    for text in ["one", "two"] {
        rig.h
            .send(json!({"to":["alice"],"from":"dave","text":text}))
            .await;
        let n = if text == "one" { 1 } else { 2 };
        rig.wait_got("alice", n).await;
    }
    rig.h
        .send(json!({"to":["alice"],"from":"dave","text":"quiet",
            "offline_push":{"apns":{"badge_mode":1}}}))
        .await;
    let got = rig.wait_got("alice", 3).await;
    assert_eq!(badges(&got), vec![json!(4), json!(5), Value::Null]);

    // In use again, then killed: the count starts over.
    rig.h
        .events(json!([ev("login", None), ev("disconnect", None)]))
        .await;
    rig.h
        .send(json!({"to":["alice"],"from":"dave","text":"later"}))
        .await;
    let got = rig.wait_got("alice", 4).await;
    assert_eq!(badges(&got[3..]), vec![json!(1)]);
    rig.h.settled(rig.cert, 4, WAIT).await;
}

#[tokio::test]
async fn the_key_survives_a_restart_and_still_signs() {
    let Rig { h, apns, cert } = Rig::start(EmulatorConfig::default()).await;
    let h = h.restart().await;
    let rig = Rig { h, apns, cert };
    let v = rig.h.cert_view(rig.cert).await;
    assert_eq!(v["vendor"], "apns");
    assert_eq!(v["private_key_set"], true, "{v}");
    rig.killed("alice").await;
    rig.h
        .send(json!({"to":["alice"],"from":"x","text":"after restart"}))
        .await;
    rig.wait_got("alice", 1).await;
    assert_eq!(rig.h.last_class("alice", WAIT).await, "delivered");
}
