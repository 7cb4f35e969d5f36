//! Delivery receipts over real sockets: the gateway asks Xiaomi (the emulator) for receipts at
//! its public URL, the emulator posts them the way Xiaomi does, and what a user would check
//! changes — the certificate's delivered and clicked counts, /metrics, diagnosis, the token
//! binding. Forged, oversized and too frequent receipt requests are refused and change nothing;
//! a lost receipt leaves the notification "sent, not confirmed", never failed.

mod common;

use common::*;
use pushgate::providers::xiaomi::emulator::{EmulatorConfig, ReceivedNotification};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// Polls `check` every 20 ms until it returns `Some`, or panics naming `what` after `WAIT`.
/// A loopback port free now, so the gateway's public URL can be known before it starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A gateway with a public URL (its own address) and a certificate; the emulator with `emu`.
async fn start(emu: EmulatorConfig, tweak: impl FnOnce(&mut pushgate::config::Config)) -> Harness {
    let port = free_port();
    Harness::builder()
        .config(move |c| {
            c.listen = format!("127.0.0.1:{port}").parse().expect("addr");
            c.public_url = Some(format!("http://127.0.0.1:{port}"));
        })
        .config(tweak)
        .emulator(emu)
        .certificate(cert_body(100))
        .start()
        .await
}

async fn send_to(h: &Harness, user: &str) {
    let v = h
        .send(json!({"to":[user],"from":"carol","text":"dinner?","offline_push":{"title":"Carol"}}))
        .await;
    assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
}

async fn one_push(h: &Harness, user: &str) -> ReceivedNotification {
    let got = h.wait_pushes(&regid(user), 1).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    got[0].clone()
}

fn check<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["devices"][0]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"] == name))
        .unwrap_or_else(|| panic!("no check {name}: {d}"))
}

/// The diagnosis of `user` once it shows the vendor's answer to the last notification.
async fn diagnosis_after_send(h: &Harness, user: &str) -> Value {
    wait_for(
        &format!("{user}'s last notification in diagnosis"),
        WAIT,
        || async {
            let d = h.diagnosis(user).await;
            (!d["devices"][0]["last_notification"].is_null()).then_some(d)
        },
    )
    .await
}

/// A notification whose receipt never came (`receipts_lost` is the emulator's count): after
/// the batch window it is "sent, not confirmed", counted sent, never failed; the token stays.
async fn assert_sent_not_confirmed(h: &Harness, user: &str, receipts_lost: impl Fn() -> u64) {
    wait_for("the emulator dropped the receipt", WAIT, || async {
        (receipts_lost() >= 1).then_some(())
    })
    .await;
    // Well past the emulators' batch window: a receipt would have come by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = diagnosis_after_send(h, user).await;
    let last = check(&d, "last_notification");
    assert_eq!(last["ok"], true, "{d}");
    assert_eq!(
        d["devices"][0]["last_notification"]["class"], "delivered",
        "{d}"
    );
    let detail = last["detail"].as_str().unwrap_or("");
    assert!(detail.starts_with("sent, not confirmed"), "{detail}");
    assert!(!detail.contains("fail"), "{detail}");
    let stats = cert_stats(h).await;
    assert_eq!(stats["sent"], 1, "{stats}");
    assert_eq!(stats["delivered_to_phone"], 0, "{stats}");
    let failed: u64 = stats["failed"]
        .as_object()
        .map(|f| f.values().filter_map(Value::as_u64).sum())
        .unwrap_or(99);
    assert_eq!(failed, 0, "{stats}");
    assert!(token_bound(h, user).await);
}

async fn cert_stats(h: &Harness) -> Value {
    let (s, v) = h
        .admin(Method::GET, &format!("/v1/certificates/{}", h.cert()), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v["stats"].clone()
}

async fn token_bound(h: &Harness, user: &str) -> bool {
    let (s, v) = h.api(Method::GET, &format!("/v1/users/{user}"), None).await;
    assert_eq!(s, 200, "{v}");
    v["devices"][0]["token_bound"]
        .as_bool()
        .unwrap_or_else(|| panic!("no token_bound: {v}"))
}

/// Posts a receipt body as Xiaomi would (form field `data`).
async fn post_receipt(h: &Harness, path: &str, data: &Value) -> (u16, Value) {
    let body = serde_urlencoded::to_string([("data", data.to_string())]).expect("form");
    post_raw(h, path, body.into_bytes()).await
}

async fn post_raw(h: &Harness, path: &str, body: Vec<u8>) -> (u16, Value) {
    let r = h
        .http
        .post(h.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    (status, v)
}

#[tokio::test]
async fn delivered_and_clicked_receipts_count_and_show_in_diagnosis() {
    let h = start(
        EmulatorConfig {
            receipt_click_ratio: 1.0,
            ..EmulatorConfig::default()
        },
        |_| {},
    )
    .await;
    h.killed("alice", "d1").await;
    send_to(&h, "alice").await;
    let push = one_push(&h, "alice").await;
    // The request asked for receipts exactly per the spec's wire format.
    let callback = format!(
        "{}/v1/receipts/xiaomi/{}",
        h.config.public_url.as_deref().unwrap_or(""),
        h.cert()
    );
    assert_eq!(push.extras.get("callback"), Some(&callback));
    assert_eq!(
        push.extras.get("callback.type").map(String::as_str),
        Some("19")
    );
    let param = push
        .extras
        .get("callback.param")
        .cloned()
        .unwrap_or_default();
    assert!(param.len() >= 16 && param.len() <= 64, "{param}");
    // The secret is never shown by the API.
    let (_, listed) = h.admin(Method::GET, "/v1/certificates", None).await;
    assert!(!listed.to_string().contains(&param), "{listed}");

    let labels = format!("certificate=\"{}\",vendor=\"xiaomi\"", h.cert());
    wait_for(
        "a delivered and a clicked receipt in /metrics",
        WAIT,
        || async {
            let m = h.metrics().await;
            (metric(&m, "pushgate_receipts_delivered_total", &labels) == 1.0
                && metric(&m, "pushgate_receipts_clicked_total", &labels) == 1.0)
                .then_some(())
        },
    )
    .await;
    let stats = cert_stats(&h).await;
    assert_eq!(
        (
            stats["delivered_to_phone"].as_u64(),
            stats["clicked"].as_u64()
        ),
        (Some(1), Some(1)),
        "{stats}"
    );
    // Xiaomi resending the same receipt changes no count.
    let again = json!({ push.message_id.clone():
        {"type": 1, "targets": regid("alice"), "timestamp": 1, "param": param} });
    let (s, v) = post_receipt(&h, &format!("/v1/receipts/xiaomi/{}", h.cert()), &again).await;
    assert_eq!(
        (s, v["delivered"].as_u64(), v["ignored"].as_u64()),
        (200, Some(0), Some(1)),
        "{v}"
    );
    assert_eq!(cert_stats(&h).await["delivered_to_phone"], 1);
    let d = diagnosis_after_send(&h, "alice").await;
    let last = check(&d, "last_notification");
    assert_eq!(last["ok"], true, "{d}");
    let detail = last["detail"].as_str().unwrap_or("");
    assert!(detail.starts_with("delivered to the phone at "), "{detail}");
    assert!(detail.contains("UTC"), "{detail}");
    assert_eq!(
        d["devices"][0]["receipts"]["msg_id"],
        push.message_id.as_str(),
        "{d}"
    );
    assert!(
        token_bound(&h, "alice").await,
        "a delivered receipt keeps the token"
    );
    assert_eq!(h.emu.receipt_stats().lost, 0);
}

#[tokio::test]
async fn an_invalid_target_receipt_unbinds_the_token_like_a_bad_regid_answer() {
    let h = start(EmulatorConfig::default(), |_| {}).await;
    h.emu.add_uninstalled_regids([regid("bob")]);
    h.killed("bob", "d1").await;
    h.killed("alice", "d1").await;
    send_to(&h, "bob").await;
    send_to(&h, "alice").await;
    one_push(&h, "bob").await;
    wait_for("bob's token unbound by the receipt", WAIT, || async {
        (!token_bound(&h, "bob").await).then_some(())
    })
    .await;
    assert!(
        token_bound(&h, "alice").await,
        "only the invalid token goes"
    );
    let labels = format!("certificate=\"{}\",vendor=\"xiaomi\"", h.cert());
    wait_for("alice's delivered receipt", WAIT, || async {
        let m = h.metrics().await;
        (metric(&m, "pushgate_receipts_delivered_total", &labels) == 1.0).then_some(())
    })
    .await;
    let m = h.metrics().await;
    assert_eq!(metric(&m, "pushgate_tokens_unbound_total", ""), 1.0);
    let d = h.diagnosis("bob").await;
    let token = check(&d, "token_reported");
    assert_eq!(token["ok"], false, "{d}");
    let detail = token["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("the vendor says this token is no longer valid"),
        "{detail}"
    );
    assert_eq!(d["would_push"], false, "{d}");
    // The next message finds no token, as after a synchronous bad regId.
    let v = h
        .send(json!({"to":["bob"],"from":"carol","text":"again?"}))
        .await;
    assert_eq!(v["results"][0]["outcome"], "skipped", "{v}");
    // The unbinding is durable.
    let h = h.restart().await;
    assert!(
        !token_bound(&h, "bob").await,
        "still unbound after a restart"
    );
}

#[tokio::test]
async fn forged_oversized_and_malformed_receipts_are_refused_and_change_nothing() {
    let h = start(
        EmulatorConfig {
            // The emulator's own receipts would change counts: none are posted in this test.
            receipt_loss_ratio: 1.0,
            ..EmulatorConfig::default()
        },
        |c| c.receipts.max_body_bytes = 4096,
    )
    .await;
    h.killed("carol", "d1").await;
    send_to(&h, "carol").await;
    let push = one_push(&h, "carol").await;
    let secret = push
        .extras
        .get("callback.param")
        .cloned()
        .unwrap_or_default();
    let path = format!("/v1/receipts/xiaomi/{}", h.cert());
    let invalid = |param: Option<&str>| {
        let mut e = json!({"type":16,"targets":regid("carol"),"timestamp":1});
        if let Some(p) = param {
            e["param"] = json!(p);
        }
        json!({ push.message_id.clone(): e })
    };

    for (what, data) in [
        ("a wrong param", invalid(Some("forged-secret"))),
        ("no param", invalid(None)),
        (
            "the secret cut short",
            invalid(Some(&secret[..secret.len() - 1])),
        ),
    ] {
        let (s, v) = post_receipt(&h, &path, &data).await;
        assert_eq!(s, 401, "{what}: {v}");
        assert_eq!(v["error"]["code"], "receipt_unverified", "{what}: {v}");
    }
    // One good entry does not carry a forged one.
    let mut mixed = invalid(Some(&secret));
    mixed["other-msg"] = json!({"type":1,"targets":regid("carol"),"param":"nope"});
    assert_eq!(post_receipt(&h, &path, &mixed).await.0, 401);

    // The right secret, but more than receipts.max_body_bytes.
    let mut big = invalid(Some(&secret));
    big[push.message_id.as_str()]["extra"] = json!({"pad": "x".repeat(5000)});
    let (s, v) = post_receipt(&h, &path, &big).await;
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["error"]["code"], "receipt_too_large", "{v}");

    let (s, v) = post_raw(&h, &path, b"data=%7Bnot-json".to_vec()).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("data")),
        "{v}"
    );
    let (s, v) = post_raw(&h, &path, b"nodata=1".to_vec()).await;
    assert_eq!(s, 400, "{v}");
    // The secret of one certificate opens no other, nor another vendor's path.
    for wrong in [
        "/v1/receipts/xiaomi/999999".to_string(),
        "/v1/receipts/xiaomi/not-a-number".to_string(),
        format!("/v1/receipts/huawei/{}", h.cert()),
    ] {
        let (s, v) = post_receipt(&h, &wrong, &invalid(Some(&secret))).await;
        assert_eq!(s, 404, "{wrong}: {v}");
    }

    // Nothing changed: the token is bound, nothing counted, diagnosis unconfirmed.
    assert!(token_bound(&h, "carol").await);
    let m = h.metrics().await;
    assert_eq!(metric(&m, "pushgate_tokens_unbound_total", ""), 0.0);
    let labels = format!("certificate=\"{}\",vendor=\"xiaomi\"", h.cert());
    assert_eq!(
        metric(&m, "pushgate_receipts_delivered_total", &labels),
        0.0
    );
    assert!(
        metric(
            &m,
            "pushgate_receipts_refused_total",
            "reason=\"unverified\",vendor=\"xiaomi\""
        ) >= 4.0,
        "{m}"
    );
    let stats = cert_stats(&h).await;
    assert_eq!(stats["delivered_to_phone"], 0, "{stats}");

    // And the genuine receipt, small and signed, is taken.
    let (s, v) = post_receipt(&h, &path, &invalid(Some(&secret))).await;
    assert_eq!((s, v["tokens_unbound"].as_u64()), (200, Some(1)), "{v}");
    assert!(!token_bound(&h, "carol").await);
}

#[tokio::test]
async fn receipts_faster_than_the_certificate_rate_get_429_with_retry_after() {
    let h = start(EmulatorConfig::default(), |c| {
        c.receipts.requests_per_sec = 1;
        c.receipts.burst = 2;
    })
    .await;
    let path = format!("/v1/receipts/xiaomi/{}", h.cert());
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let r = h
            .http
            .post(h.url(&path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("data=%7B%7D")
            .send()
            .await
            .expect("request");
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
        }
    }
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"));
}

#[tokio::test]
async fn a_lost_receipt_leaves_the_notification_sent_not_confirmed_never_failed() {
    let h = start(
        EmulatorConfig {
            receipt_loss_ratio: 1.0,
            ..EmulatorConfig::default()
        },
        |_| {},
    )
    .await;
    h.killed("dave", "d1").await;
    send_to(&h, "dave").await;
    one_push(&h, "dave").await;
    assert_sent_not_confirmed(&h, "dave", || h.emu.receipt_stats().lost).await;
    assert_eq!(h.emu.receipt_stats().posted, 0);
}

#[tokio::test]
async fn without_a_public_url_no_receipts_are_asked_for() {
    let h = Harness::builder().certificate(cert_body(100)).start().await;
    h.killed("erin", "d1").await;
    send_to(&h, "erin").await;
    let push = one_push(&h, "erin").await;
    assert!(
        !push.extras.keys().any(|k| k.starts_with("callback")),
        "{:?}",
        push.extras
    );
    // The vendor's answer is recorded just after the emulator stored the notification.
    let d = diagnosis_after_send(&h, "erin").await;
    let detail = check(&d, "last_notification")["detail"]
        .as_str()
        .unwrap_or("");
    assert!(
        detail.starts_with("delivered: accepted by Xiaomi"),
        "{detail}"
    );
}

// Huawei (spec/vendors/huawei.md §6): statuses posted as JSON to the callback address of a
// receipt configuration in AppGallery Connect, signed with `X-HUAWEI-CALLBACK-ID` from the
// configuration's user name and HMAC key, which the certificate carries as write-only fields.

use pushgate::providers::huawei::emulator::{
    self as hw_emulator, EmulatorHandle as HwEmulator, Knobs as HwKnobs, OAuthApp, ReceiptConfig,
};
use pushgate::providers::huawei_receipt::{callback_value, CallbackAuth};

const HW_APP_ID: &str = "10086";
const HW_SECRET: &str = "hw/secret+for=tests";
const HW_RECEIPT_ID: &str = "RCP1";
const HW_USER: &str = "receipt-user";
const HW_KEY: &str = "receipt-hmac-key/+=";

fn huawei_cert_body(callback: bool) -> Value {
    let mut b = json!({
        "vendor": "huawei", "package_name": PACKAGE, "app_id": HW_APP_ID,
        "app_secret": HW_SECRET, "click_action": {"type": "open_app"}, "qps": 100,
        "receipt_id": HW_RECEIPT_ID,
    });
    if callback {
        b["callback_user_name"] = json!(HW_USER);
        b["callback_hmac_key"] = json!(HW_KEY);
    }
    b
}

/// A gateway with a public URL and a Huawei certificate (with the receipt callback's user name
/// and key when `callback`), and a Huawei emulator whose receipt configuration `RCP1` posts to
/// the certificate's receipt path, signed like Huawei.
async fn start_huawei(
    knobs: HwKnobs,
    callback: bool,
    tweak: impl FnOnce(&mut pushgate::config::Config),
) -> (Harness, HwEmulator) {
    let emu = hw_emulator::start(
        hw_emulator::EmulatorConfig {
            apps: vec![OAuthApp::new(HW_APP_ID, HW_SECRET, &[])],
            knobs,
            ..hw_emulator::EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .expect("huawei emulator starts");
    let port = free_port();
    let (base, auth) = (emu.base_url(), emu.auth_url());
    let h = Harness::builder()
        .config(move |c| {
            c.listen = format!("127.0.0.1:{port}").parse().expect("addr");
            c.public_url = Some(format!("http://127.0.0.1:{port}"));
            c.huawei_base_url = base;
            c.huawei_auth_url = auth;
        })
        .config(tweak)
        .certificate(huawei_cert_body(callback))
        .start()
        .await;
    emu.add_receipt_config(ReceiptConfig {
        app_id: HW_APP_ID.into(),
        receipt_id: Some(HW_RECEIPT_ID.into()),
        callback_url: h.url(&format!("/v1/receipts/huawei/{}", h.cert())),
        user_name: Some(HW_USER.into()),
        hmac_key: Some(HW_KEY.into()),
    });
    (h, emu)
}

async fn one_huawei_push(emu: &HwEmulator, user: &str) -> hw_emulator::ReceivedNotification {
    let token = regid(user);
    let got = wait_for(
        &format!("a Huawei notification for {user}"),
        WAIT,
        || async {
            let got: Vec<_> = emu
                .received()
                .into_iter()
                .filter(|r| r.token == token)
                .collect();
            (!got.is_empty()).then_some(got)
        },
    )
    .await;
    assert_eq!(got.len(), 1, "{got:#?}");
    got[0].clone()
}

/// `X-HUAWEI-CALLBACK-ID` for `auth` at `timestamp`, as Huawei computes it.
fn callback_id(auth: &CallbackAuth, timestamp: u64) -> String {
    let ts = timestamp.to_string();
    let value = callback_value(auth, &ts, "n0nce");
    format!("timestamp={ts};nonce=n0nce;value={value}")
}

fn hw_auth() -> CallbackAuth {
    CallbackAuth {
        user_name: HW_USER.into(),
        key: HW_KEY.into(),
    }
}

fn now_ms() -> u64 {
    pushgate::domain::now_millis()
}

async fn post_statuses(
    h: &Harness,
    path: &str,
    header: Option<String>,
    body: &str,
) -> (u16, Value) {
    let mut r = h
        .http
        .post(h.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(v) = header {
        r = r.header("X-HUAWEI-CALLBACK-ID", v);
    }
    let r = r.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn huawei_receipts_count_show_in_diagnosis_and_unbind_invalid_tokens() {
    let (h, emu) = start_huawei(
        HwKnobs {
            // Long enough that diagnosis is seen unconfirmed before the receipt comes.
            receipt_delay_ms: 1_000,
            ..HwKnobs::default()
        },
        true,
        |_| {},
    )
    .await;
    emu.add_uninstalled_tokens([regid("bob")]);
    h.killed("alice", "d1").await;
    h.killed("bob", "d1").await;
    send_to(&h, "alice").await;
    send_to(&h, "bob").await;
    let push = one_huawei_push(&emu, "alice").await;
    // The request asks for receipts by the certificate's receipt configuration.
    assert_eq!(
        push.message["android"]["receipt_id"], HW_RECEIPT_ID,
        "{:#}",
        push.message
    );
    // Before the receipt: sent, not confirmed.
    let d = diagnosis_after_send(&h, "alice").await;
    let detail = check(&d, "last_notification")["detail"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(detail.starts_with("sent, not confirmed"), "{detail}");

    let labels = format!("certificate=\"{}\",vendor=\"huawei\"", h.cert());
    wait_for("alice's delivered receipt in /metrics", WAIT, || async {
        let m = h.metrics().await;
        (metric(&m, "pushgate_receipts_delivered_total", &labels) == 1.0).then_some(())
    })
    .await;
    wait_for("bob's token unbound by status 2", WAIT, || async {
        (!token_bound(&h, "bob").await).then_some(())
    })
    .await;
    assert!(
        token_bound(&h, "alice").await,
        "a delivered receipt keeps the token"
    );
    let m = h.metrics().await;
    assert_eq!(metric(&m, "pushgate_tokens_unbound_total", ""), 1.0);
    assert_eq!(metric(&m, "pushgate_receipts_clicked_total", &labels), 0.0);
    assert_eq!(cert_stats(&h).await["delivered_to_phone"], 1);

    let d = h.diagnosis("alice").await;
    let detail = check(&d, "last_notification")["detail"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(detail.starts_with("delivered to the phone at "), "{detail}");
    assert_eq!(
        d["devices"][0]["receipts"]["msg_id"],
        push.request_id.as_str(),
        "{d}"
    );
    let d = h.diagnosis("bob").await;
    let token = check(&d, "token_reported");
    assert_eq!(token["ok"], false, "{d}");
    assert!(
        token["detail"]
            .as_str()
            .unwrap_or("")
            .contains("the vendor says this token is no longer valid"),
        "{d}"
    );
    let v = h
        .send(json!({"to":["bob"],"from":"carol","text":"again?"}))
        .await;
    assert_eq!(v["results"][0]["outcome"], "skipped", "{v}");
    // The emulator counts a post once it has the answer, which may come after the change it
    // made shows.
    let stats = wait_for("both posts answered", WAIT, || async {
        let stats = emu.receipt_stats();
        (stats.posted + stats.lost + stats.failed >= 2).then_some(stats)
    })
    .await;
    assert_eq!(
        (stats.posted, stats.lost, stats.failed),
        (2, 0, 0),
        "{stats:?}"
    );

    // The callback's user name and key are never shown, and an edit that leaves them out keeps
    // them: receipts still verify afterwards.
    let (_, listed) = h.admin(Method::GET, "/v1/certificates", None).await;
    let text = listed.to_string();
    assert!(!text.contains(HW_USER) && !text.contains(HW_KEY), "{text}");
    let mut edit = huawei_cert_body(false);
    edit.as_object_mut().map(|o| o.remove("app_secret"));
    let path = format!("/v1/certificates/{}", h.cert());
    let (s, v) = h.admin(Method::PUT, &path, Some(edit)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["callback_user_name_set"].as_bool(),
            v["callback_hmac_key_set"].as_bool()
        ),
        (Some(true), Some(true)),
        "{v}"
    );
    let body = json!({"statuses":[{"token": regid("alice"), "status": 0,
        "requestId": "later", "appid": HW_APP_ID}]})
    .to_string();
    let receipts = format!("/v1/receipts/huawei/{}", h.cert());
    let (s, v) = post_statuses(
        &h,
        &receipts,
        Some(callback_id(&hw_auth(), now_ms())),
        &body,
    )
    .await;
    assert_eq!((s, v["delivered"].as_u64()), (200, Some(1)), "{v}");
}

#[tokio::test]
async fn forged_oversized_and_malformed_huawei_receipts_are_refused_and_change_nothing() {
    let (h, emu) = start_huawei(
        HwKnobs {
            // The emulator's own receipts would change counts: none are posted in this test.
            receipt_loss_ratio: 1.0,
            ..HwKnobs::default()
        },
        true,
        |c| c.receipts.max_body_bytes = 4096,
    )
    .await;
    h.killed("carol", "d1").await;
    send_to(&h, "carol").await;
    let push = one_huawei_push(&emu, "carol").await;
    let path = format!("/v1/receipts/huawei/{}", h.cert());
    let status = |app: &str| {
        json!({"biTag":"", "appid": app, "token": regid("carol"), "status": 2,
            "timestamp": now_ms(), "requestId": push.request_id})
    };
    let invalid = json!({ "statuses": [status(HW_APP_ID)] }).to_string();
    let good = || Some(callback_id(&hw_auth(), now_ms()));
    let other = |user: &str, key: &str| {
        Some(callback_id(
            &CallbackAuth {
                user_name: user.into(),
                key: key.into(),
            },
            now_ms(),
        ))
    };
    let stale = Some(callback_id(&hw_auth(), now_ms() - 10 * 60 * 1000));
    let another_app = json!({ "statuses": [status(HW_APP_ID), status("99999")] }).to_string();
    for (what, header, body) in [
        ("no header", None, invalid.clone()),
        ("another key", other(HW_USER, "forged-key"), invalid.clone()),
        (
            "another user name",
            other("someone", HW_KEY),
            invalid.clone(),
        ),
        ("a stale signature", stale, invalid.clone()),
        (
            "a tampered value",
            good().map(|h| h.replace("value=", "value=AAAA")),
            invalid.clone(),
        ),
        ("a status of another app", good(), another_app),
    ] {
        let (s, v) = post_statuses(&h, &path, header, &body).await;
        assert_eq!(s, 401, "{what}: {v}");
        assert_eq!(v["error"]["code"], "receipt_unverified", "{what}: {v}");
    }

    // Signed, but more than receipts.max_body_bytes.
    let big = json!({"statuses":[status(HW_APP_ID)], "pad": "x".repeat(5000)}).to_string();
    let (s, v) = post_statuses(&h, &path, good(), &big).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("receipt_too_large")),
        "{v}"
    );
    // Signed, but not Huawei's shape: more than 100 statuses, or no JSON.
    let many = json!({ "statuses": vec![json!({"token": "t", "status": 0}); 101] }).to_string();
    for (what, body) in [("101 statuses", many), ("not JSON", "{statuses".to_owned())] {
        let (s, v) = post_statuses(&h, &path, good(), &body).await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (400, Some("statuses")),
            "{what}: {v}"
        );
    }
    // The signature of one certificate opens no other, nor another vendor's path.
    for wrong in [
        "/v1/receipts/huawei/999999".to_string(),
        format!("/v1/receipts/xiaomi/{}", h.cert()),
    ] {
        let (s, v) = post_statuses(&h, &wrong, good(), &invalid).await;
        assert_eq!(s, 404, "{wrong}: {v}");
    }

    // Nothing changed: the token is bound, nothing counted, diagnosis unconfirmed.
    assert!(token_bound(&h, "carol").await);
    let m = h.metrics().await;
    assert_eq!(metric(&m, "pushgate_tokens_unbound_total", ""), 0.0);
    assert!(
        metric(
            &m,
            "pushgate_receipts_refused_total",
            "reason=\"unverified\",vendor=\"huawei\""
        ) >= 6.0,
        "{m}"
    );
    let d = h.diagnosis("carol").await;
    assert_eq!(check(&d, "token_reported")["ok"], true, "{d}");

    // And the genuine receipt, small and signed, is taken.
    let (s, v) = post_statuses(&h, &path, good(), &invalid).await;
    assert_eq!((s, v["tokens_unbound"].as_u64()), (200, Some(1)), "{v}");
    assert!(!token_bound(&h, "carol").await);
}

#[tokio::test]
async fn huawei_receipts_faster_than_the_certificate_rate_get_429() {
    let (h, _emu) = start_huawei(HwKnobs::default(), true, |c| {
        c.receipts.requests_per_sec = 1;
        c.receipts.burst = 2;
    })
    .await;
    let path = format!("/v1/receipts/huawei/{}", h.cert());
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let header = Some(callback_id(&hw_auth(), now_ms()));
        statuses.push(
            post_statuses(&h, &path, header, r#"{"statuses":[]}"#)
                .await
                .0,
        );
    }
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn a_lost_huawei_receipt_leaves_the_notification_sent_not_confirmed() {
    let (h, emu) = start_huawei(
        HwKnobs {
            receipt_loss_ratio: 1.0,
            ..HwKnobs::default()
        },
        true,
        |_| {},
    )
    .await;
    h.killed("dave", "d1").await;
    send_to(&h, "dave").await;
    one_huawei_push(&emu, "dave").await;
    assert_sent_not_confirmed(&h, "dave", || emu.receipt_stats().lost).await;
    assert_eq!(emu.receipt_stats().posted, 0);
}

#[tokio::test]
async fn a_huawei_certificate_without_a_callback_key_asks_for_no_receipts_and_believes_none() {
    let (h, emu) = start_huawei(HwKnobs::default(), false, |_| {}).await;
    h.killed("erin", "d1").await;
    send_to(&h, "erin").await;
    let push = one_huawei_push(&emu, "erin").await;
    assert!(
        push.message["android"].get("receipt_id").is_none(),
        "{:#}",
        push.message
    );
    let d = diagnosis_after_send(&h, "erin").await;
    let detail = check(&d, "last_notification")["detail"]
        .as_str()
        .unwrap_or("");
    assert!(
        detail.starts_with("delivered: accepted by Huawei"),
        "{detail}"
    );
    // Even signed with the emulator's key: the certificate has none to check it against.
    let body = json!({"statuses":[{"token": regid("erin"), "status": 2}]}).to_string();
    let path = format!("/v1/receipts/huawei/{}", h.cert());
    let (s, v) = post_statuses(&h, &path, Some(callback_id(&hw_auth(), now_ms())), &body).await;
    assert_eq!(s, 401, "{v}");
    assert!(token_bound(&h, "erin").await);
    assert_eq!(emu.receipt_stats().posted, 0);
}
