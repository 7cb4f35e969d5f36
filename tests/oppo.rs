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
