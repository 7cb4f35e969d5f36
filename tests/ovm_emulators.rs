//! The OPPO, vivo and Meizu clients against their emulators, over real sockets on 127.0.0.1:
//! signatures, auth tokens and their expiry, batches with per-target results, rate limits,
//! quotas and outages. Raw requests check what the emulators refuse, so our own encoding cannot
//! hide a gap.

use std::time::Duration;

use pushgate::domain::ClickAction;
use pushgate::providers::emulator_kit::{EmulatorHandle, Knobs, TokenFate};
use pushgate::providers::outcome::{AuthFailure, Outcome, TargetFault};
use pushgate::providers::{meizu, oppo, vivo};
use serde_json::Value;

fn listen() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

const TIMEOUT: Duration = Duration::from_secs(5);

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("http client")
}

// ---------------------------------------------------------------- OPPO

fn oppo_app() -> oppo::OppoApp {
    oppo::OppoApp {
        app_key: "oppokey".into(),
        master_secret: "oppomaster".into(),
    }
}

fn oppo_emulator() -> EmulatorHandle {
    oppo::emulator::start(
        oppo::emulator::EmulatorConfig {
            apps: vec![oppo::emulator::app("oppokey", "oppomaster")],
            ..Default::default()
        },
        listen(),
    )
    .expect("oppo emulator")
}

fn oppo_note(text: &str) -> oppo::OppoNotification {
    oppo::OppoNotification {
        title: "Alice".into(),
        content: text.into(),
        channel_id: None,
        category: Some("IM".into()),
        notify_level: Some(2),
        click: ClickAction::OpenApp,
        ext: Some(r#"{"conv":"42"}"#.into()),
        notify_id: 9,
        private_template: None,
    }
}

#[tokio::test]
async fn oppo_auth_batch_and_per_target_results() {
    let emu = oppo_emulator();
    let client = oppo::OppoClient::new(&emu.base_url(), TIMEOUT).expect("client");
    let token = client
        .authenticate(&oppo_app(), now_ms())
        .await
        .expect("auth token");
    assert_eq!(token.valid_for, Duration::from_secs(86_400));
    emu.set_token_fate(["CN_dead"], TokenFate::Invalid);
    let (a, b) = (oppo_note("one"), oppo_note("two"));
    let outcome = client
        .unicast_batch(&token.token, &[("CN_a", &a), ("CN_dead", &a), ("CN_b", &b)])
        .await;
    match outcome {
        Outcome::Accepted { msg_id, faults } => {
            assert!(msg_id.starts_with("oppokey-1-1-"), "{msg_id}");
            assert_eq!(
                faults,
                [("CN_dead".to_owned(), TargetFault::Invalid { code: 10000 })]
            );
        }
        other => panic!("{other:?}"),
    }
    let received = emu.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].target, "CN_a");
    assert_eq!(received[1].body, "two");
    let n = &received[0].message;
    assert_eq!(n["category"], "IM");
    assert_eq!(n["notify_level"], 2);
    assert_eq!(n["action_parameters"], r#"{"ext":"{\"conv\":\"42\"}"}"#);
    // A single unicast to a dead token is refused whole.
    assert_eq!(
        client.unicast(&token.token, "CN_dead", &a).await.class(),
        "no_valid_targets"
    );
}

#[tokio::test]
async fn oppo_refusals_expiry_rate_quota_outage() {
    let emu = oppo_emulator();
    let client = oppo::OppoClient::new(&emu.base_url(), TIMEOUT).expect("client");
    let wrong = oppo::OppoApp {
        master_secret: "nope".into(),
        ..oppo_app()
    };
    assert!(matches!(
        client.authenticate(&wrong, now_ms()).await,
        Err(AuthFailure::Refused(m)) if m.contains("16")
    ));
    assert!(matches!(
        client.authenticate(&oppo_app(), now_ms() - 11 * 60 * 1000).await,
        Err(AuthFailure::Refused(m)) if m.contains("19")
    ));
    let token = client
        .authenticate(&oppo_app(), now_ms())
        .await
        .expect("token")
        .token;
    let n = oppo_note("x");
    assert_eq!(
        client.unicast("forged", "CN_a", &n).await.class(),
        "auth_expired"
    );
    emu.expire_auth_tokens();
    assert_eq!(
        client.unicast(&token, "CN_a", &n).await.class(),
        "auth_expired"
    );
    let token = client
        .authenticate(&oppo_app(), now_ms())
        .await
        .expect("token")
        .token;
    let mut plain = n.clone();
    plain.category = None;
    assert_eq!(
        client.unicast(&token, "CN_a", &plain).await.class(),
        "misconfigured",
        "67"
    );
    emu.set_knobs(Knobs {
        qps_limit: Some(2),
        ..Knobs::default()
    });
    let three = [("CN_a", &n), ("CN_b", &n), ("CN_c", &n)];
    assert_eq!(
        client.unicast_batch(&token, &three).await.class(),
        "rate_limited"
    );
    emu.set_knobs(Knobs {
        daily_quota: Some(1),
        ..Knobs::default()
    });
    assert_eq!(
        client.unicast(&token, "CN_a", &n).await.class(),
        "delivered"
    );
    assert_eq!(
        client.unicast(&token, "CN_a", &n).await.class(),
        "quota_exceeded"
    );
    emu.set_knobs(Knobs {
        error_5xx_ratio: 1.0,
        ..Knobs::default()
    });
    assert_eq!(
        client.unicast(&token, "CN_a", &n).await.class(),
        "transient"
    );
    assert!(emu.stats().requests[oppo::wire::UNICAST_PATH].contains_key("http_503"));
}

// ---------------------------------------------------------------- vivo

fn vivo_app() -> vivo::VivoApp {
    vivo::VivoApp {
        app_id: 105_562_603,
        app_key: "vivokey".into(),
        app_secret: "vivosecret".into(),
    }
}

fn vivo_emulator() -> EmulatorHandle {
    vivo::emulator::start(
        vivo::emulator::EmulatorConfig {
            apps: vec![vivo::emulator::app(105_562_603, "vivokey", "vivosecret")],
            ..Default::default()
        },
        listen(),
    )
    .expect("vivo emulator")
}

fn vivo_note() -> vivo::VivoNotification {
    vivo::VivoNotification {
        title: "Alice".into(),
        content: "hi".into(),
        classification: 1,
        category: Some("IM".into()),
        click: ClickAction::OpenActivity {
            intent_uri: "intent://chat#Intent;end".into(),
        },
        ext: Some(r#"{"conv":"42"}"#.into()),
        notify_id: 3,
    }
}

#[tokio::test]
async fn vivo_single_and_list_sends_with_invalid_users() {
    let emu = vivo_emulator();
    let client = vivo::VivoClient::new(&emu.base_url(), TIMEOUT).expect("client");
    let token = client
        .authenticate(&vivo_app(), now_ms())
        .await
        .expect("token")
        .token;
    let n = vivo_note();
    assert_eq!(
        client.send(&vivo_app(), &token, "v2-a", &n).await.class(),
        "delivered"
    );
    emu.set_token_fate(["v2-dead"], TokenFate::Invalid);
    emu.set_token_fate(["v2-off"], TokenFate::SwitchedOff);
    assert_eq!(
        client
            .send(&vivo_app(), &token, "v2-dead", &n)
            .await
            .class(),
        "no_valid_targets",
        "10302"
    );
    match client
        .send_list(
            &vivo_app(),
            &token,
            &["v2-b", "v2-dead", "v2-off", "v2-c"],
            &n,
        )
        .await
    {
        Outcome::Accepted { faults, .. } => assert_eq!(
            faults,
            [
                ("v2-dead".to_owned(), TargetFault::Invalid { code: 1 }),
                ("v2-off".to_owned(), TargetFault::SwitchedOff { code: 2 }),
            ]
        ),
        other => panic!("{other:?}"),
    }
    let got: Vec<String> = emu.received().iter().map(|r| r.target.clone()).collect();
    assert_eq!(got, ["v2-a", "v2-b", "v2-c"]);
    let m = &emu.received()[1].message;
    assert_eq!(m["classification"], 1);
    assert_eq!(m["category"], "IM");
    assert_eq!(m["skipType"], 4);
    assert_eq!(m["clientCustomMap"]["ext"], r#"{"conv":"42"}"#);
    let stats = emu.stats();
    assert_eq!(stats.requests[vivo::wire::SAVE_LIST_PAYLOAD_PATH]["0"], 1);
    assert_eq!(stats.auth_tokens_issued, 1);
}

#[tokio::test]
async fn vivo_auth_limits_expiry_rate_quota() {
    let emu = vivo_emulator();
    let client = vivo::VivoClient::new(&emu.base_url(), TIMEOUT).expect("client");
    let wrong = vivo::VivoApp {
        app_secret: "nope".into(),
        ..vivo_app()
    };
    assert!(matches!(
        client.authenticate(&wrong, now_ms()).await,
        Err(AuthFailure::Refused(m)) if m.contains("10206")
    ));
    // About 10 auth calls per second and app: the 11th within the second is refused (10250).
    // The emulator counts in whole clock seconds; 24 calls sent together fall in at most two of
    // them however loaded the machine, so one second sees more than 10.
    let app = vivo_app();
    let calls = (0..24).map(|_| client.authenticate(&app, now_ms()));
    let mut limited = 0;
    for answer in futures_util::future::join_all(calls).await {
        if let Err(AuthFailure::Unavailable(m)) = answer {
            assert!(m.contains("10250"), "{m}");
            limited += 1;
        }
    }
    assert!(limited >= 1, "the auth endpoint limits calls");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let token = client
        .authenticate(&vivo_app(), now_ms())
        .await
        .expect("token")
        .token;
    let n = vivo_note();
    emu.expire_auth_tokens();
    assert_eq!(
        client.send(&vivo_app(), &token, "v2-a", &n).await.class(),
        "auth_expired"
    );
    let token = client
        .authenticate(&vivo_app(), now_ms())
        .await
        .expect("token")
        .token;
    let other_app = vivo::VivoApp {
        app_id: 1,
        ..vivo_app()
    };
    assert_eq!(
        client.send(&other_app, &token, "v2-a", &n).await.class(),
        "misconfigured",
        "10094"
    );
    emu.set_knobs(Knobs {
        qps_limit: Some(1),
        ..Knobs::default()
    });
    // The limit counts per calendar second: a pair straddling a second's edge passes twice
    // (a loaded machine), so a few pairs are allowed until one shows the limit.
    let mut pairs = Vec::new();
    for _ in 0..10 {
        let first = client.send(&vivo_app(), &token, "v2-a", &n).await.class();
        let second = client.send(&vivo_app(), &token, "v2-a", &n).await.class();
        pairs.push((first, second));
        if (first, second) == ("delivered", "rate_limited") {
            break;
        }
    }
    assert_eq!(
        pairs.last(),
        Some(&("delivered", "rate_limited")),
        "{pairs:?}"
    );
    emu.set_knobs(Knobs {
        daily_quota: Some(0),
        ..Knobs::default()
    });
    assert_eq!(
        client.send(&vivo_app(), &token, "v2-a", &n).await.class(),
        "quota_exceeded"
    );
}

// ---------------------------------------------------------------- Meizu

fn meizu_app() -> meizu::MeizuApp {
    meizu::MeizuApp {
        app_id: "100999".into(),
        app_secret: "meizusecret".into(),
    }
}

fn meizu_emulator() -> EmulatorHandle {
    meizu::emulator::start(
        meizu::emulator::EmulatorConfig {
            apps: vec![meizu::emulator::app("100999", "meizusecret")],
            ..Default::default()
        },
        listen(),
    )
    .expect("meizu emulator")
}

fn meizu_note() -> meizu::MeizuNotification {
    meizu::MeizuNotification {
        title: "Alice".into(),
        content: "hi".into(),
        notice_msg_type: 1,
        click: ClickAction::OpenApp,
        ext: Some(r#"{"conv":"42"}"#.into()),
        notify_id: 5,
    }
}

#[tokio::test]
async fn meizu_signed_push_with_value_map() {
    let emu = meizu_emulator();
    let client = meizu::MeizuClient::new(&emu.base_url(), TIMEOUT).expect("client");
    emu.set_token_fate(["dead"], TokenFate::Invalid);
    emu.set_token_fate(["off"], TokenFate::SwitchedOff);
    let n = meizu_note();
    match client
        .push(&meizu_app(), &["a", "dead", "off", "b"], &n)
        .await
    {
        Outcome::Accepted { msg_id, mut faults } => {
            assert!(msg_id.starts_with("NS"));
            faults.sort_by(|x, y| x.0.cmp(&y.0));
            assert_eq!(
                faults,
                [
                    ("dead".to_owned(), TargetFault::Invalid { code: 110003 }),
                    ("off".to_owned(), TargetFault::SwitchedOff { code: 110010 }),
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    let received = emu.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].message["noticeBarInfo"]["noticeMsgType"], 1);
    assert_eq!(
        received[0].message["clickTypeInfo"]["parameters"]["ext"],
        r#"{"conv":"42"}"#
    );
    let wrong = meizu::MeizuApp {
        app_secret: "nope".into(),
        ..meizu_app()
    };
    assert_eq!(
        client.push(&wrong, &["a"], &n).await,
        Outcome::Broken {
            code: 1006,
            reason: "signature failed".into()
        }
    );
    emu.set_knobs(Knobs {
        qps_limit: Some(1),
        ..Knobs::default()
    });
    // The limit counts per calendar second: a pair straddling a second's edge passes twice
    // (a loaded machine), so a few pairs are allowed until one shows the limit.
    let mut pairs = Vec::new();
    for _ in 0..10 {
        let first = client.push(&meizu_app(), &["a"], &n).await.class();
        let second = client.push(&meizu_app(), &["a"], &n).await.class();
        pairs.push((first, second));
        if (first, second) == ("delivered", "rate_limited") {
            break;
        }
    }
    assert_eq!(
        pairs.last(),
        Some(&("delivered", "rate_limited")),
        "{pairs:?}"
    );
    emu.set_knobs(Knobs {
        daily_quota: Some(0),
        ..Knobs::default()
    });
    assert_eq!(
        client.push(&meizu_app(), &["a"], &n).await.class(),
        "quota_exceeded"
    );
    emu.set_knobs(Knobs {
        error_5xx_ratio: 1.0,
        ..Knobs::default()
    });
    assert_eq!(
        client.push(&meizu_app(), &["a"], &n).await.class(),
        "transient"
    );
}

#[tokio::test]
async fn emulators_refuse_raw_requests_missing_what_the_spec_requires() {
    let emu = meizu_emulator();
    let post = |path: &str, ct: &str, body: String| {
        http()
            .post(format!("{}{path}", emu.base_url()))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let form = "appId=100999&pushIds=a&messageJson=%7B%7D";
    let reply: Value = post(
        meizu::wire::PUSH_BY_PUSH_ID_PATH,
        "application/x-www-form-urlencoded",
        form.into(),
    )
    .await
    .expect("answer")
    .json()
    .await
    .expect("json");
    assert_eq!(reply["code"], "110004", "sign missing");
    let oppo = oppo_emulator();
    let reply: Value = http()
        .post(format!("{}{}", oppo.base_url(), oppo::wire::UNICAST_PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("message=%7B%7D")
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(reply["code"], 29, "auth_token missing");
    let vivo = vivo_emulator();
    let reply: Value = http()
        .post(format!("{}{}", vivo.base_url(), vivo::wire::SEND_PATH))
        .header("content-type", "application/json")
        .body(r#"{"appId":105562603,"regId":"a"}"#)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(reply["result"], 10000, "authToken header missing");
    // The control surface is shared.
    let knobs: Value = http()
        .put(format!("{}/_emulator/knobs", vivo.base_url()))
        .body(r#"{"auth_ttl_secs":1}"#)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(knobs["auth_ttl_secs"], 1);
}
