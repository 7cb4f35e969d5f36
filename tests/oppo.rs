//! OPPO delivery over real sockets: the gateway sends to the OPPO emulator (tests/ovm_common).

mod common;
mod ovm_common;

use common::PACKAGE;
use ovm_common::*;
use pushgate::providers::emulator_kit::{EmulatorHandle, ReceivedNotification};
use pushgate::providers::oppo::{emulator, wire};
use serde_json::{json, Value};

fn start() -> EmulatorHandle {
    emulator::start(
        emulator::EmulatorConfig {
            apps: vec![emulator::app("oppo-app-key", "oppo-master-secret")],
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .expect("OPPO emulator")
}

fn ext_of(r: &ReceivedNotification) -> Option<String> {
    let params: Value = serde_json::from_str(r.message["action_parameters"].as_str()?).ok()?;
    params["ext"].as_str().map(str::to_owned)
}

const OPPO: Vendor = Vendor {
    name: "oppo",
    emulator: start,
    base_url: |c, url| c.oppo_base_url = url,
    cert_body: |qps| {
        json!({"vendor": "oppo", "package_name": PACKAGE, "app_key": "oppo-app-key",
               "master_secret": "oppo-master-secret", "click_action": {"type": "open_app"}, "qps": qps})
    },
    secret_field: "master_secret",
    send_paths: &[wire::UNICAST_BATCH_PATH],
    auth_expired_code: Some("11"),
    mixes_content: true,
    ext_of,
    override_fields: || {
        (
            json!({"oppo_category": "SUBSCRIPTION", "oppo_channel_id": "chat_hi"}),
            vec![
                ("category", json!("SUBSCRIPTION")),
                ("channel_id", json!("chat_hi")),
            ],
        )
    },
    click_fields: |intent| {
        vec![
            ("click_action_type", json!(5)),
            ("click_action_url", json!(intent)),
        ]
    },
};

#[tokio::test]
async fn fields_title_body_ext_click_and_category() {
    fields(&OPPO).await;
    // Chats default to category IM with notify_level 2 (checked here: consts cannot hold JSON).
    let s = OPPO.setup(100, json!({})).await;
    s.killed(&OPPO, "alice").await;
    s.h.send(json!({"to": ["alice"], "from": "bob", "text": "hi"}))
        .await;
    let r = s.exactly(&OPPO.token("alice"), 1).await.remove(0);
    assert_eq!(r.message["category"], "IM");
    assert_eq!(r.message["notify_level"], 2);
    assert_eq!(r.message["click_action_type"], 0);
}

#[tokio::test]
async fn auth_token_is_shared_and_renewed_after_expiry() {
    token_refresh(&OPPO).await;
}

#[tokio::test]
async fn identical_and_distinct_content_share_unicast_batch() {
    batching(&OPPO).await;
}

#[tokio::test]
async fn invalid_registration_ids_are_unbound() {
    // OPPO accepts switched-off devices and reports them only through receipts.
    invalid_tokens(&OPPO, false).await;
}

#[tokio::test]
async fn daily_limit_pauses_the_certificate() {
    quota_pause(&OPPO).await;
}

#[tokio::test]
async fn frequency_limit_slows_down() {
    rate_limit(&OPPO).await;
}

#[tokio::test]
async fn a_wrong_master_secret_breaks_the_certificate() {
    auth_failure(&OPPO, "16").await;
}

#[tokio::test]
async fn server_errors_are_retried() {
    server_errors(&OPPO).await;
}

/// An OPPO that wants a registered private-message template on every service message (the
/// UNCONFIRMED 2024 rule, an emulator rule here).
fn start_template_strict() -> EmulatorHandle {
    emulator::start(
        emulator::EmulatorConfig {
            apps: vec![emulator::app("oppo-app-key", "oppo-master-secret")],
            rules: emulator::OppoRules {
                require_private_template: true,
                private_template_ids: vec!["cert-tpl".into(), "msg-tpl".into()],
                ..Default::default()
            },
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .expect("OPPO emulator")
}

const OPPO_TEMPLATES: Vendor = Vendor {
    emulator: start_template_strict,
    ..OPPO
};

/// The certificate's private-message template, filled with the title and body by default; a
/// message's own template and placeholders (/v1 and /v4) win; bad values are refused naming
/// the field; a certificate without a template is refused by an OPPO that requires one.
#[tokio::test]
async fn private_message_templates_reach_the_wire() {
    const ADMIN_ID: &str = "administrator";
    let v = &OPPO_TEMPLATES;
    let s = v
        .setup_with(100, json!({"private_msg_template_id": "cert-tpl"}), |c| {
            c.tim_admins = vec![ADMIN_ID.into()]
        })
        .await;
    assert_eq!(s.cert_view().await["private_msg_template_id"], "cert-tpl");
    s.killed(v, "alice").await;
    let target = v.token("alice");

    s.h.send(json!({"to": ["alice"], "from": "bob", "text": "hi",
        "offline_push": {"title": "Bob"}}))
        .await;
    let r = s.exactly(&target, 1).await.remove(0);
    assert_eq!(r.message["private_msg_template_id"], "cert-tpl");
    assert_eq!(
        r.message["private_title_parameters"],
        json!({"title": "Bob"})
    );
    assert_eq!(
        r.message["private_content_parameters"],
        json!({"content": "hi"})
    );
    assert_eq!(r.message["category"], "IM");

    s.h.send(json!({"to": ["alice"], "from": "bob", "text": "again",
        "offline_push": {"oppo_private_msg_template_id": "msg-tpl",
            "oppo_private_title_parameters": {"sender": "Bob"},
            "oppo_private_content_parameters": {"preview": "again"}}}))
        .await;
    let r = s.exactly(&target, 2).await.remove(1);
    assert_eq!(r.message["private_msg_template_id"], "msg-tpl");
    assert_eq!(
        r.message["private_title_parameters"],
        json!({"sender": "Bob"})
    );
    assert_eq!(
        r.message["private_content_parameters"],
        json!({"preview": "again"})
    );

    // /v4: Tencent's AndroidInfo names; the parameters may come as JSON text.
    let sig = pushgate::usersig::UserSigKey::new(common::SDKAPPID, common::USERSIG_KEY)
        .generate(ADMIN_ID, 86_400);
    let q = format!(
        "/v4/openim/sendmsg?sdkappid={}&identifier={ADMIN_ID}&usersig={sig}&random=1&contenttype=json",
        common::SDKAPPID
    );
    let tim = |android: Value| {
        json!({"From_Account": "bob", "To_Account": "alice", "MsgRandom": 7,
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "from v4"}}],
            "OfflinePushInfo": {"AndroidInfo": android}})
    };
    s.h.tim_sendmsg(
        "bob",
        "alice",
        "from v4",
        json!({"AndroidInfo": {"OPPOPrivateMsgTemplateId": "msg-tpl",
            "OPPOPrivateTitleParameters": {"sender": "Bob"},
            "OPPOPrivateContentParameters": "{\"preview\":\"v4\"}"}}),
    )
    .await;
    let r = s.exactly(&target, 3).await.remove(2);
    assert_eq!(
        r.message["private_content_parameters"],
        json!({"preview": "v4"})
    );

    // Refused naming the field, nothing sent.
    let res: Value =
        s.h.http
            .post(s.h.url(&q))
            .json(&tim(json!({"OPPOPrivateTitleParameters": {"n": 1}})))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_ne!(res["ErrorCode"], 0, "{res}");
    assert!(
        res["ErrorInfo"]
            .as_str()
            .unwrap_or_default()
            .contains("OPPOPrivateTitleParameters"),
        "{res}"
    );
    let (status, res) =
        s.h.api(
            reqwest::Method::POST,
            "/v1/messages",
            Some(json!({"to": ["alice"], "from": "bob", "text": "x",
                "offline_push": {"oppo_private_msg_template_id": "has space"}})),
        )
        .await;
    assert_eq!(status, 400, "{res}");
    assert_eq!(
        res["error"]["field"], "offline_push.oppo_private_msg_template_id",
        "{res}"
    );
    let (status, res) =
        s.h.admin(
            reqwest::Method::PUT,
            &format!("/v1/certificates/{}", s.cert),
            Some(
                json!({"vendor": "oppo", "package_name": PACKAGE, "app_key": "oppo-app-key",
                "click_action": {"type": "open_app"}, "qps": 100,
                "private_msg_template_id": ""}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{res}");
    assert_eq!(res["error"]["field"], "private_msg_template_id", "{res}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(s.records(&target).len(), 3);

    // Without any template this OPPO refuses the chat (67): the certificate is at fault.
    let plain = v.setup(100, json!({})).await;
    plain.killed(v, "bob").await;
    plain
        .h
        .send(json!({"to": ["bob"], "from": "carol", "text": "no template"}))
        .await;
    wait_for("the 67 refusal", common::WAIT, || async {
        (v.requests(&plain.emu, "67") >= 1).then_some(())
    })
    .await;
    assert!(plain.records(&v.token("bob")).is_empty());
}
