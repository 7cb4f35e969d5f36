//! vivo delivery over real sockets: the gateway sends to the vivo emulator (tests/ovm_common).

mod common;
mod ovm_common;

use common::PACKAGE;
use ovm_common::*;
use pushgate::providers::emulator_kit::{EmulatorHandle, ReceivedNotification};
use pushgate::providers::vivo::{emulator, wire};
use serde_json::json;

fn start() -> EmulatorHandle {
    emulator::start(
        emulator::EmulatorConfig {
            apps: vec![emulator::app(
                105_562_603,
                "vivo-app-key",
                "vivo-app-secret",
            )],
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .expect("vivo emulator")
}

fn ext_of(r: &ReceivedNotification) -> Option<String> {
    r.message["clientCustomMap"]["ext"]
        .as_str()
        .map(str::to_owned)
}

const VIVO: Vendor = Vendor {
    name: "vivo",
    emulator: start,
    base_url: |c, url| c.vivo_base_url = url,
    cert_body: |qps| {
        json!({"vendor": "vivo", "package_name": PACKAGE, "app_id": "105562603",
               "app_key": "vivo-app-key", "app_secret": "vivo-app-secret",
               "click_action": {"type": "open_app"}, "qps": qps})
    },
    secret_field: "app_secret",
    send_paths: &[wire::SEND_PATH, wire::PUSH_TO_LIST_PATH],
    auth_expired_code: Some("10000"),
    mixes_content: false,
    ext_of,
    override_fields: || {
        (
            json!({"vivo_classification": 0, "vivo_category": "NEWS"}),
            vec![("classification", json!(0)), ("category", json!("NEWS"))],
        )
    },
    click_fields: |intent| vec![("skipType", json!(4)), ("skipContent", json!(intent))],
};

#[tokio::test]
async fn fields_title_body_ext_click_and_classification() {
    fields(&VIVO).await;
    let s = VIVO.setup(100, json!({})).await;
    s.killed(&VIVO, "alice").await;
    s.h.send(json!({"to": ["alice"], "from": "bob", "text": "hi"}))
        .await;
    let r = s.exactly(&VIVO.token("alice"), 1).await.remove(0);
    assert_eq!(r.message["classification"], 1);
    assert_eq!(r.message["category"], "IM");
    assert_eq!(r.message["skipType"], 1);
}

#[tokio::test]
async fn auth_token_is_fetched_once_and_renewed_after_expiry() {
    token_refresh(&VIVO).await;
}

#[tokio::test]
async fn identical_content_goes_through_save_list_payload_and_push_to_list() {
    batching(&VIVO).await;
}

#[tokio::test]
async fn invalid_users_are_unbound_and_switched_off_kept() {
    invalid_tokens(&VIVO, true).await;
}

#[tokio::test]
async fn over_quota_10070_pauses_the_certificate() {
    quota_pause(&VIVO).await;
}

#[tokio::test]
async fn too_fast_10072_slows_down() {
    rate_limit(&VIVO).await;
}

#[tokio::test]
async fn a_wrong_app_secret_breaks_the_certificate() {
    auth_failure(&VIVO, "10206").await;
}

#[tokio::test]
async fn server_errors_are_retried() {
    server_errors(&VIVO).await;
}
