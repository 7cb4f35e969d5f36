//! The Xiaomi client against the Xiaomi emulator, over real sockets on 127.0.0.1.
//!
//! Where the emulator's own validation is under test, requests are sent as raw forms with
//! reqwest so our client's encoding cannot hide a gap.

use std::collections::HashSet;
use std::time::Duration;

use pushgate::domain::ClickAction;
use pushgate::providers::xiaomi::emulator::{
    EmulatorApp, EmulatorConfig, EmulatorHandle, EmulatorRules, Knobs, RegidPolicy,
};
use pushgate::providers::xiaomi::{
    VendorReply, XiaomiApp, XiaomiClient, XiaomiMessage, DEFAULT_TITLE,
};
use serde_json::Value;

mod common;

const PKG: &str = "com.example.chat";
const SECRET: &str = "c2VjcmV0c2VjcmV0c2VjcmV0==";

fn app() -> XiaomiApp {
    XiaomiApp {
        package_name: PKG.to_owned(),
        app_secret: SECRET.to_owned(),
    }
}

fn strict() -> EmulatorConfig {
    EmulatorConfig {
        apps: vec![EmulatorApp::new(PKG, SECRET)],
        ..EmulatorConfig::default()
    }
}

fn start(config: EmulatorConfig) -> EmulatorHandle {
    common::emulator_with(config)
}

fn client(emu: &EmulatorHandle) -> XiaomiClient {
    XiaomiClient::new(&emu.base_url(), Duration::from_secs(5)).expect("client")
}

fn msg() -> XiaomiMessage {
    XiaomiMessage {
        title: "Alice".to_owned(),
        description: "hello".to_owned(),
        notify_id: 7,
        channel_id: Some("101556".to_owned()),
        click: ClickAction::OpenApp,
        ext: Some("{\"conv\":\"c2c_alice\"}".to_owned()),
        payload: None,
    }
}

/// POSTs a raw form, returning the HTTP status and the JSON body.
async fn raw_post(
    emu: &EmulatorHandle,
    path: &str,
    authorization: Option<&str>,
    pairs: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = common::http()
        .post(format!("{}{path}", emu.base_url()))
        .header(
            "content-type",
            "application/x-www-form-urlencoded;charset=UTF-8",
        )
        .body(serde_urlencoded::to_string(pairs).expect("form"));
    if let Some(auth) = authorization {
        req = req.header("authorization", auth);
    }
    let resp = req.send().await.expect("emulator answers");
    let status = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&body).expect("JSON envelope"),
    )
}

const AUTH: &str = "key=c2VjcmV0c2VjcmV0c2VjcmV0==";

fn base_form<'a>(title: &'a str, description: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("restricted_package_name", PKG),
        ("title", title),
        ("description", description),
        ("pass_through", "0"),
        ("notify_type", "-1"),
        ("registration_id", "r1"),
    ]
}

async fn get_json(url: String) -> Value {
    json_of(
        common::http()
            .get(url)
            .send()
            .await
            .expect("control answers"),
    )
    .await
}

/// reqwest is built without its `json` feature.
async fn json_of(resp: reqwest::Response) -> Value {
    let bytes = resp.bytes().await.expect("body");
    serde_json::from_slice(&bytes).expect("json")
}

#[tokio::test]
async fn delivered_with_every_field_decoded() {
    let emu = start(strict());
    let mut m = msg();
    m.title = "张三😀".to_owned() + &"长".repeat(60);
    m.description = "你好，世界 🌏 hello".to_owned();
    m.click = ClickAction::OpenActivity {
        intent_uri: "intent:#Intent;component=com.example.chat/.Main;end".to_owned(),
    };
    m.payload = Some("{\"k\":\"v & w\"}".to_owned());
    let reply = client(&emu).send_regid(&app(), &m, &["r1", "r2"]).await;
    let VendorReply::Delivered {
        msg_id,
        trace_id,
        bad_regids,
        over_quota,
    } = reply
    else {
        panic!("expected delivered, got {reply:?}");
    };
    assert!(bad_regids.is_empty());
    assert!(over_quota.is_empty());
    assert_eq!(msg_id.len(), 22);
    assert!(msg_id.starts_with("scm"), "{msg_id}");
    assert_eq!(trace_id.len(), 22);
    assert!(trace_id.starts_with('X'), "{trace_id}");

    let got = emu.received();
    assert_eq!(got.len(), 2);
    let regids: Vec<&str> = got.iter().map(|r| r.regid.as_str()).collect();
    assert_eq!(regids, ["r1", "r2"]);
    let r = &got[0];
    assert_eq!(r.endpoint, "/v3/message/regid");
    assert_eq!(r.package, PKG);
    // 张 三 😀(2 UTF-16 units) + 45 × 长 = 49 units, 48 chars.
    assert_eq!(r.title, "张三😀".to_owned() + &"长".repeat(45));
    assert_eq!(r.description, "你好，世界 🌏 hello");
    assert_eq!(r.notify_id, Some(7));
    assert_eq!(r.notify_type, Some(-1));
    assert_eq!(r.pass_through, 0);
    assert_eq!(r.payload.as_deref(), Some("{\"k\":\"v & w\"}"));
    assert_eq!(r.extras.get("notify_effect").map(String::as_str), Some("2"));
    assert_eq!(
        r.extras.get("intent_uri").map(String::as_str),
        Some("intent:#Intent;component=com.example.chat/.Main;end")
    );
    assert_eq!(
        r.extras.get("channel_id").map(String::as_str),
        Some("101556")
    );
    assert_eq!(
        r.extras.get("ext").map(String::as_str),
        Some("{\"conv\":\"c2c_alice\"}")
    );
    assert_eq!(r.message_id, msg_id);
    assert_eq!(r.trace_id, trace_id);
}

#[tokio::test]
async fn raw_success_envelope_matches_xiaomi() {
    let emu = start(strict());
    let (status, body) =
        raw_post(&emu, "/v3/message/regid", Some(AUTH), &base_form("t", "d")).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], "ok");
    assert_eq!(body["code"], 0);
    assert_eq!(body["description"], "成功");
    assert_eq!(body["info"], "Received push messages for 1 REGID");
    assert_eq!(body["trace_id"].as_str().map(str::len), Some(22));
    assert_eq!(body["data"]["id"].as_str().map(str::len), Some(22));
}

#[tokio::test]
async fn blank_title_is_defaulted_by_the_client() {
    let emu = start(strict());
    let mut m = msg();
    m.title = "   ".to_owned();
    let reply = client(&emu).send_regid(&app(), &m, &["r1"]).await;
    assert_eq!(reply.class(), "delivered", "{reply:?}");
    assert_eq!(emu.received()[0].title, DEFAULT_TITLE);
}

#[tokio::test]
async fn some_bad_regids() {
    let emu = start(EmulatorConfig {
        regids: RegidPolicy::Listed(HashSet::from(["good1".to_owned(), "good2".to_owned()])),
        ..strict()
    });
    let reply = client(&emu)
        .send_regid(&app(), &msg(), &["good1", "bad1", "good2", "bad2"])
        .await;
    match reply {
        VendorReply::Delivered { bad_regids, .. } => assert_eq!(bad_regids, ["bad1", "bad2"]),
        other => panic!("expected delivered, got {other:?}"),
    }
    assert_eq!(emu.received().len(), 2);

    let reply = client(&emu)
        .send_regid(&app(), &msg(), &["bad1", "bad3"])
        .await;
    assert!(
        matches!(reply, VendorReply::NoValidTargets { .. }),
        "{reply:?}"
    );

    emu.add_valid_regids(["bad1"]);
    emu.add_invalid_regids(["good1"]);
    let reply = client(&emu)
        .send_regid(&app(), &msg(), &["bad1", "good1"])
        .await;
    match reply {
        VendorReply::Delivered { bad_regids, .. } => assert_eq!(bad_regids, ["good1"]),
        other => panic!("expected delivered, got {other:?}"),
    }
}

#[tokio::test]
async fn no_valid_targets_envelope() {
    let emu = start(EmulatorConfig {
        regids: RegidPolicy::Listed(HashSet::new()),
        ..strict()
    });
    let (status, body) =
        raw_post(&emu, "/v3/message/regid", Some(AUTH), &base_form("t", "d")).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], "error");
    assert_eq!(body["code"], 20301);
    assert_eq!(body["reason"], "No valid targets!");
    assert_eq!(body["description"], "发送消息失败");
}

#[tokio::test]
async fn credentials_are_checked() {
    let emu = start(strict());
    let wrong = XiaomiApp {
        package_name: PKG.to_owned(),
        app_secret: "wrong".to_owned(),
    };
    let reply = client(&emu).send_regid(&wrong, &msg(), &["r1"]).await;
    assert!(
        matches!(&reply, VendorReply::Misconfigured { code: 21301, reason, .. } if reason == "Invalid application secret."),
        "{reply:?}"
    );
    let other_package = XiaomiApp {
        package_name: "com.example.other".to_owned(),
        app_secret: SECRET.to_owned(),
    };
    let reply = client(&emu)
        .send_regid(&other_package, &msg(), &["r1"])
        .await;
    assert!(
        matches!(reply, VendorReply::Misconfigured { code: 22022, .. }),
        "{reply:?}"
    );
    // `key` must be lowercase; no header at all is the same failure.
    for auth in [Some("Key=c2VjcmV0c2VjcmV0c2VjcmV0=="), Some(SECRET), None] {
        let (_, body) = raw_post(&emu, "/v3/message/regid", auth, &base_form("t", "d")).await;
        assert_eq!(body["code"], 21301, "{auth:?}");
        assert_eq!(body["description"], "认证失败");
    }
    assert!(emu.received().is_empty());
}

#[tokio::test]
async fn title_and_description_rules() {
    let emu = start(strict());
    for (title, description) in [("", "d"), ("  ", "d"), ("t", ""), ("t", "\t \n")] {
        let (_, body) = raw_post(
            &emu,
            "/v3/message/regid",
            Some(AUTH),
            &base_form(title, description),
        )
        .await;
        assert_eq!(body["code"], 65011, "{title:?} {description:?}");
        assert_eq!(body["reason"], "Title or Description is empty!");
        assert_eq!(body["description"], "未提供参数");
    }
    let missing = [("restricted_package_name", PKG), ("registration_id", "r1")];
    let (_, body) = raw_post(&emu, "/v3/message/regid", Some(AUTH), &missing).await;
    assert_eq!(body["code"], 65011);

    // Limits count chars: 49 CJK chars pass, 50 fail; same for 127 / 128.
    let ok_title = "标".repeat(49);
    let long_title = "标".repeat(50);
    let ok_desc = "述".repeat(127);
    let long_desc = "述".repeat(128);
    let (_, body) = raw_post(
        &emu,
        "/v3/message/regid",
        Some(AUTH),
        &base_form(&ok_title, &ok_desc),
    )
    .await;
    assert_eq!(body["code"], 0);
    let (_, body) = raw_post(
        &emu,
        "/v3/message/regid",
        Some(AUTH),
        &base_form(&long_title, "d"),
    )
    .await;
    assert_eq!(body["code"], 10017);
    let (_, body) = raw_post(
        &emu,
        "/v3/message/regid",
        Some(AUTH),
        &base_form("t", &long_desc),
    )
    .await;
    assert_eq!(body["code"], 10017);

    // Pass-through messages need no title.
    let mut pass = base_form("", "");
    pass[3] = ("pass_through", "1");
    pass.push(("payload", "data"));
    let (_, body) = raw_post(&emu, "/v3/message/regid", Some(AUTH), &pass).await;
    assert_eq!(body["code"], 0);
}

#[tokio::test]
async fn extra_limits() {
    let emu = start(strict());
    let keys: Vec<String> = (0..11).map(|i| format!("extra.k{i}")).collect();
    let mut form = base_form("t", "d");
    // Predefined extras do not count toward the 10 custom pairs.
    form.push(("extra.notify_effect", "1"));
    form.push(("extra.channel_id", "101556"));
    for key in keys.iter().take(10) {
        form.push((key, "v"));
    }
    let (_, body) = raw_post(&emu, "/v3/message/regid", Some(AUTH), &form).await;
    assert_eq!(body["code"], 0, "{body}");
    form.push((&keys[10], "v"));
    let (_, body) = raw_post(&emu, "/v3/message/regid", Some(AUTH), &form).await;
    assert_eq!(body["code"], 65014);
    assert_eq!(body["description"], "键值对数目太多");

    let long = "x".repeat(1025);
    let mut form = base_form("t", "d");
    form.push(("extra.ext", &long));
    let (_, body) = raw_post(&emu, "/v3/message/regid", Some(AUTH), &form).await;
    assert_eq!(body["code"], 65015);

    let half = "y".repeat(1000);
    let mut form = base_form("t", "d");
    form.push(("extra.a", &half));
    form.push(("extra.b", &half));
    form.push(("extra.c", &half));
    let (_, body) = raw_post(&emu, "/v3/message/regid", Some(AUTH), &form).await;
    assert_eq!(body["code"], 65015);
    assert_eq!(body["description"], "键值对总长度太长");

    // Our client's ext goes through the same rule.
    let mut m = msg();
    m.ext = Some("z".repeat(3000));
    let reply = client(&emu).send_regid(&app(), &m, &["r1"]).await;
    assert!(
        matches!(reply, VendorReply::InvalidRequest { code: 65015, .. }),
        "{reply:?}"
    );
}

#[tokio::test]
async fn targets_comma_joined_repeated_and_capped() {
    let emu = start(strict());
    let mut form = base_form("t", "d");
    form[5] = ("registration_id", "a,b");
    form.push(("registration_id", "c"));
    let (_, body) = raw_post(&emu, "/v3/message/regid", Some(AUTH), &form).await;
    assert_eq!(body["info"], "Received push messages for 3 REGID");

    let many: Vec<String> = (0..1001).map(|i| format!("r{i}")).collect();
    let joined = many.join(",");
    let mut form = base_form("t", "d");
    form[5] = ("registration_id", &joined);
    let (_, body) = raw_post(&emu, "/v3/message/regid", Some(AUTH), &form).await;
    assert_eq!(body["code"], 10017);
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let ok = client(&emu).send_regid(&app(), &msg(), &refs[..1000]).await;
    assert_eq!(ok.class(), "delivered");
    assert_eq!(emu.received().len(), 1003);
}

#[tokio::test]
async fn v2_takes_a_single_package() {
    let emu = start(strict());
    let (_, body) = raw_post(&emu, "/v2/message/regid", Some(AUTH), &base_form("t", "d")).await;
    assert_eq!(body["code"], 0);
    let mut form = base_form("t", "d");
    form[0] = (
        "restricted_package_name",
        "com.example.chat,com.example.chat2",
    );
    let (_, body) = raw_post(&emu, "/v2/message/regid", Some(AUTH), &form).await;
    assert_eq!(body["code"], 10017);
    assert_eq!(emu.received()[0].endpoint, "/v2/message/regid");
}

#[tokio::test]
async fn qps_limit_gives_10027() {
    let emu = start(EmulatorConfig {
        qps_limit: Some(2),
        ..strict()
    });
    let c = client(&emu);
    let mut classes = Vec::new();
    for _ in 0..6 {
        classes.push(c.send_regid(&app(), &msg(), &["r1"]).await);
    }
    let limited: Vec<&VendorReply> = classes
        .iter()
        .filter(|r| matches!(r, VendorReply::RateLimited { code: 10027, .. }))
        .collect();
    // 2 per second: six quick requests span at most two seconds, so at least two are refused.
    assert!(limited.len() >= 2, "{classes:?}");
    assert!(limited.iter().all(|r| r.retryable()));
}

#[tokio::test]
async fn daily_quota_gives_200001() {
    let emu = start(EmulatorConfig {
        daily_quota: Some(3),
        ..strict()
    });
    let c = client(&emu);
    assert_eq!(
        c.send_regid(&app(), &msg(), &["a", "b"]).await.class(),
        "delivered"
    );
    assert_eq!(
        c.send_regid(&app(), &msg(), &["c", "d"]).await.class(),
        "delivered"
    );
    let reply = c.send_regid(&app(), &msg(), &["e"]).await;
    assert_eq!(
        reply,
        VendorReply::QuotaExceeded {
            reason: "exceed quota, quota: 3, have acked: 4".to_owned(),
            trace_id: reply.trace_id().unwrap_or_default().to_owned(),
        }
    );
    assert!(!reply.retryable());
    assert_eq!(emu.received().len(), 4);
}

#[tokio::test]
async fn outages_are_transient() {
    let emu = start(EmulatorConfig {
        error_5xx_ratio: 1.0,
        ..strict()
    });
    let reply = client(&emu).send_regid(&app(), &msg(), &["r1"]).await;
    assert!(matches!(reply, VendorReply::Transient { .. }), "{reply:?}");
    assert!(reply.retryable());
    assert_eq!(emu.stats().requests["/v3/message/regid"]["http_503"], 1);

    emu.set_knobs(Knobs {
        hang: true,
        ..Knobs::default()
    });
    let impatient = XiaomiClient::new(&emu.base_url(), Duration::from_millis(300)).expect("client");
    let reply = impatient.send_regid(&app(), &msg(), &["r1"]).await;
    match &reply {
        VendorReply::Transient { reason } => assert!(reason.contains("timeout"), "{reason}"),
        other => panic!("expected transient, got {other:?}"),
    }

    // A request parked on `hang` completes once the knob is cleared.
    let c = client(&emu);
    let app = app();
    let m = msg();
    let parked = c.send_regid(&app, &m, &["r2"]);
    let release = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        emu.set_knobs(Knobs::default());
    };
    let (reply, ()) = tokio::join!(parked, release);
    assert_eq!(reply.class(), "delivered", "{reply:?}");

    emu.set_knobs(Knobs {
        latency_ms: 150,
        ..Knobs::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(c.send_regid(&app, &m, &["r3"]).await.class(), "delivered");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn multi_messages_carry_their_own_content() {
    let emu = start(strict());
    let mut second = msg();
    second.title = "Bob 🐱".to_owned();
    second.description = "群消息".to_owned();
    second.notify_id = XiaomiMessage::notify_id_for("group_42");
    second.click = ClickAction::OpenUrl {
        url: "https://example.com/g/42".to_owned(),
    };
    second.ext = None;
    second.payload = Some("p2".to_owned());
    let first = msg();
    let reply = client(&emu)
        .send_multi(&app(), &[("ra", &first), ("rb", &second)])
        .await;
    assert_eq!(reply.class(), "delivered", "{reply:?}");
    let got = emu.received();
    assert_eq!(got.len(), 2);
    let a = got.iter().find(|r| r.regid == "ra").expect("ra");
    let b = got.iter().find(|r| r.regid == "rb").expect("rb");
    assert_eq!(a.endpoint, "/v2/multi_messages/regids");
    assert_eq!((a.title.as_str(), a.notify_id), ("Alice", Some(7)));
    assert_eq!(
        a.extras.get("ext").map(String::as_str),
        Some("{\"conv\":\"c2c_alice\"}")
    );
    assert_eq!(b.title, "Bob 🐱");
    assert_eq!(b.description, "群消息");
    assert_eq!(b.notify_id, Some(i64::from(second.notify_id)));
    assert_eq!(b.payload.as_deref(), Some("p2"));
    assert_eq!(b.extras.get("notify_effect").map(String::as_str), Some("3"));
    assert_eq!(
        b.extras.get("web_uri").map(String::as_str),
        Some("https://example.com/g/42")
    );
    assert!(!b.extras.contains_key("ext"));

    // Bad regIds and credentials are checked on this endpoint too.
    emu.add_invalid_regids(["rb"]);
    let reply = client(&emu)
        .send_multi(&app(), &[("ra", &first), ("rb", &second)])
        .await;
    assert!(
        matches!(&reply, VendorReply::Delivered { bad_regids, .. } if bad_regids == &["rb"]),
        "{reply:?}"
    );
    let wrong = XiaomiApp {
        package_name: PKG.to_owned(),
        app_secret: "nope".to_owned(),
    };
    let reply = client(&emu).send_multi(&wrong, &[("ra", &first)]).await;
    assert_eq!(reply.class(), "misconfigured");
    let (_, body) = raw_post(
        &emu,
        "/v2/multi_messages/regids",
        Some(AUTH),
        &[("messages", "not json")],
    )
    .await;
    assert_eq!(body["code"], 10017);
}

#[tokio::test]
async fn control_surface() {
    let emu = start(EmulatorConfig::default());
    let base = emu.base_url();
    let http = common::http();

    // No app yet: the secret is unknown.
    let reply = client(&emu).send_regid(&app(), &msg(), &["r1"]).await;
    assert_eq!(reply.class(), "misconfigured");
    let resp = http
        .post(format!("{base}/_emulator/apps"))
        .body(format!(
            r#"{{"package_name":"{PKG}","app_secret":"{SECRET}"}}"#
        ))
        .send()
        .await
        .expect("apps");
    assert_eq!(resp.status(), 200);
    let listed = resp.text().await.expect("text");
    assert!(listed.contains(PKG) && !listed.contains(SECRET), "{listed}");

    let resp = http
        .post(format!("{base}/_emulator/regids"))
        .body(r#"{"invalid":["dead"]}"#)
        .send()
        .await
        .expect("regids");
    assert_eq!(resp.status(), 200);

    let c = client(&emu);
    let reply = c.send_regid(&app(), &msg(), &["r1", "dead"]).await;
    assert!(
        matches!(&reply, VendorReply::Delivered { bad_regids, .. } if bad_regids == &["dead"]),
        "{reply:?}"
    );
    let since = emu.received()[0].received_at_ms;
    assert_eq!(
        c.send_regid(&app(), &msg(), &["r2"]).await.class(),
        "delivered"
    );

    let all = get_json(format!("{base}/_emulator/received")).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    let r2 = get_json(format!("{base}/_emulator/received?regid=r2&package={PKG}")).await;
    assert_eq!(r2.as_array().map(Vec::len), Some(1));
    assert_eq!(r2[0]["title"], "Alice");
    assert_eq!(r2[0]["extras"]["channel_id"], "101556");
    let none = get_json(format!("{base}/_emulator/received?package=com.other")).await;
    assert_eq!(none.as_array().map(Vec::len), Some(0));
    let later = get_json(format!(
        "{base}/_emulator/received?since={}",
        since + 3_600_000
    ))
    .await;
    assert_eq!(later.as_array().map(Vec::len), Some(0));
    let bad = http
        .get(format!("{base}/_emulator/received?since=soon"))
        .send()
        .await
        .expect("bad filter");
    assert_eq!(bad.status(), 400);

    let resp = http
        .put(format!("{base}/_emulator/knobs"))
        .body(r#"{"qps_limit":5,"latency_ms":1}"#)
        .send()
        .await
        .expect("knobs");
    assert_eq!(resp.status(), 200);
    assert_eq!(emu.knobs().qps_limit, Some(5));
    assert_eq!(emu.knobs().latency_ms, 1);
    let knobs = get_json(format!("{base}/_emulator/knobs")).await;
    assert_eq!(knobs["qps_limit"], 5);
    let resp = http
        .put(format!("{base}/_emulator/knobs"))
        .body(r#"{"qps_limit":null,"no_such_knob":1}"#)
        .send()
        .await
        .expect("knobs");
    assert_eq!(resp.status(), 400);
    assert_eq!(emu.knobs().qps_limit, Some(5));

    let stats = get_json(format!("{base}/_emulator/stats")).await;
    assert_eq!(stats["requests"]["/v3/message/regid"]["0"], 2);
    assert_eq!(stats["requests"]["/v3/message/regid"]["21301"], 1);
    assert_eq!(stats["accepted_notifications"], 2);

    let cleared = http
        .delete(format!("{base}/_emulator/received"))
        .send()
        .await
        .expect("clear");
    assert_eq!(cleared.status(), 200);
    assert!(emu.received().is_empty());
    c.send_regid(&app(), &msg(), &["r3"]).await;
    emu.clear();
    assert!(emu.received().is_empty());
}

#[tokio::test]
async fn every_bad_request_gets_an_envelope() {
    let emu = start(strict());
    let http = common::http();
    let base = emu.base_url();
    let resp = http
        .get(format!("{base}/v3/message/regid"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 405);
    let body = json_of(resp).await;
    assert_eq!(body["code"], 10021);
    let resp = http
        .post(format!("{base}/v9/nothing"))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 404);
    let body = json_of(resp).await;
    assert_eq!(body["code"], 10020);

    let junk: &[&[(&str, &str)]] = &[
        &[],
        &[("restricted_package_name", PKG)],
        &[("restricted_package_name", PKG), ("registration_id", " , ")],
        &[
            ("restricted_package_name", PKG),
            ("registration_id", "r"),
            ("title", "t"),
            ("description", "d"),
            ("notify_id", "1e9"),
        ],
        &[
            ("restricted_package_name", PKG),
            ("registration_id", "r"),
            ("title", "t"),
            ("description", "d"),
            ("pass_through", "2"),
        ],
        &[
            ("restricted_package_name", PKG),
            ("registration_id", "r"),
            ("title", "t"),
            ("description", "d"),
            ("extra.notify_effect", "3"),
            ("extra.web_uri", "javascript:x"),
        ],
    ];
    for form in junk {
        let (status, body) = raw_post(&emu, "/v3/message/regid", Some(AUTH), form).await;
        assert_eq!(status, 200);
        assert_eq!(body["result"], "error", "{form:?}");
        assert!(body["code"].as_i64().is_some_and(|c| c != 0));
        assert_eq!(body["trace_id"].as_str().map(str::len), Some(22));
    }
    // Not even a form: bytes that are not UTF-8.
    let resp = http
        .post(format!("{base}/v3/message/regid"))
        .header("authorization", AUTH)
        .body(vec![0xff_u8, 0xfe, b'=', 0x00])
        .send()
        .await
        .expect("post");
    let body = json_of(resp).await;
    assert_eq!(body["result"], "error");
}

#[tokio::test]
async fn permissive_mode_accepts_any_app() {
    let emu = start(EmulatorConfig::permissive());
    let any = XiaomiApp {
        package_name: "com.any.thing".to_owned(),
        app_secret: "whatever".to_owned(),
    };
    let reply = client(&emu).send_regid(&any, &msg(), &["r1"]).await;
    assert_eq!(reply.class(), "delivered", "{reply:?}");
    let (_, body) = raw_post(&emu, "/v3/message/regid", None, &base_form("t", "d")).await;
    assert_eq!(body["code"], 21301);
}

#[tokio::test]
async fn stopped_emulator_is_a_transient_failure() {
    let emu = start(strict());
    let c = client(&emu);
    emu.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reply = c.send_regid(&app(), &msg(), &["r1"]).await;
    assert!(matches!(reply, VendorReply::Transient { .. }), "{reply:?}");
}

#[tokio::test]
async fn hang_is_capped_with_504() {
    let emu = start(EmulatorConfig {
        hang: true,
        rules: EmulatorRules {
            hang_cap_secs: 1,
            ..EmulatorRules::default()
        },
        ..strict()
    });
    let reply = client(&emu).send_regid(&app(), &msg(), &["r1"]).await;
    match &reply {
        VendorReply::Transient { reason } => assert!(reason.contains("504"), "{reason}"),
        other => panic!("expected transient, got {other:?}"),
    }
    assert_eq!(emu.stats().requests["/v3/message/regid"]["http_504"], 1);
}

#[tokio::test]
async fn multi_messages_report_quota_per_channel() {
    let emu = start(EmulatorConfig {
        daily_quota: Some(1),
        ..strict()
    });
    let messages = serde_json::json!([
        {"target": "ra", "message": {"restricted_package_name": PKG, "title": "t1", "description": "d",
            "notify_type": -1, "notify_id": 1, "pass_through": 0, "extra": {"channel_id": "101556"}}},
        {"target": "rb", "message": {"restricted_package_name": PKG, "title": "t2", "description": "d",
            "notify_type": -1, "notify_id": 2, "pass_through": 0, "extra": {"channel_id": "101556"}}}
    ])
    .to_string();
    let form = [("messages", messages.as_str()), ("time_to_send", "0")];
    let (_, body) = raw_post(&emu, "/v2/multi_messages/regids", Some(AUTH), &form).await;
    assert_eq!(body["code"], 0, "{body}");
    assert_eq!(body["data"]["channel_exceed_quota"]["101556"], 1);
    assert_eq!(body["data"]["day_quota"], "1");
    assert_eq!(body["data"]["day_acked"], "1");
    assert_eq!(emu.received().len(), 1);
    // The single-message API refuses outright once the day is used up.
    let (_, body) = raw_post(&emu, "/v3/message/regid", Some(AUTH), &base_form("t", "d")).await;
    assert_eq!(body["code"], 200001);
    assert_eq!(body["reason"], "exceed quota, quota: 1, have acked: 1");
}
