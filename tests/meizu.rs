//! Meizu delivery over real sockets: the gateway sends to the Meizu emulator (tests/ovm_common).

mod common;
mod ovm_common;

use common::PACKAGE;
use ovm_common::*;
use pushgate::providers::emulator_kit::{EmulatorHandle, ReceivedNotification};
use pushgate::providers::meizu::{emulator, wire};
use serde_json::json;

fn start() -> EmulatorHandle {
    emulator::start(
        emulator::EmulatorConfig {
            apps: vec![emulator::app("100999", "meizu-app-secret")],
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .expect("Meizu emulator")
}

fn ext_of(r: &ReceivedNotification) -> Option<String> {
    r.message["clickTypeInfo"]["parameters"]["ext"]
        .as_str()
        .map(str::to_owned)
}

const MEIZU: Vendor = Vendor {
    name: "meizu",
    emulator: start,
    base_url: |c, url| c.meizu_base_url = url,
    cert_body: |qps| {
        json!({"vendor": "meizu", "package_name": PACKAGE, "app_id": "100999",
               "app_secret": "meizu-app-secret", "click_action": {"type": "open_app"}, "qps": qps})
    },
    secret_field: "app_secret",
    send_paths: &[wire::PUSH_BY_PUSH_ID_PATH],
    auth_expired_code: None,
    mixes_content: false,
    ext_of,
    override_fields: || {
        (
            json!({"meizu_notice_msg_type": 0}),
            vec![("noticeBarInfo.noticeMsgType", json!(0))],
        )
    },
    click_fields: |_| {
        vec![
            ("clickTypeInfo.clickType", json!(1)),
            ("clickTypeInfo.activity", json!("com.example.chat.Detail")),
        ]
    },
};

#[tokio::test]
async fn fields_title_body_ext_click_and_private_message_type() {
    fields(&MEIZU).await;
    let s = MEIZU.setup(100, json!({})).await;
    s.killed(&MEIZU, "alice").await;
    s.h.send(json!({"to": ["alice"], "from": "bob", "text": "hi"}))
        .await;
    let r = s.exactly(&MEIZU.token("alice"), 1).await.remove(0);
    assert_eq!(r.message["noticeBarInfo"]["noticeMsgType"], 1);
    assert_eq!(r.message["clickTypeInfo"]["clickType"], 0);
}

#[tokio::test]
async fn signed_requests_need_no_token() {
    token_refresh(&MEIZU).await;
}

#[tokio::test]
async fn identical_content_shares_comma_separated_push_ids() {
    batching(&MEIZU).await;
}

#[tokio::test]
async fn value_map_unbinds_invalid_push_ids_and_keeps_switched_off() {
    invalid_tokens(&MEIZU, true).await;
}

#[tokio::test]
async fn daily_push_count_110019_pauses_the_certificate() {
    quota_pause(&MEIZU).await;
}

#[tokio::test]
async fn frequency_110010_slows_down() {
    rate_limit(&MEIZU).await;
}

#[tokio::test]
async fn a_wrong_app_secret_breaks_the_certificate() {
    auth_failure(&MEIZU, "1006").await;
}

#[tokio::test]
async fn server_errors_are_retried() {
    server_errors(&MEIZU).await;
}
