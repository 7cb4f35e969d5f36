//! The emulator against our client, over a real socket.

use std::time::Duration;

use super::*;
use crate::domain::ClickAction;
use crate::providers::honor::{HonorApp, HonorClient, HonorMessage, HonorReply};
use crate::providers::huawei::TokenError;

fn app() -> HonorApp {
    HonorApp {
        app_id: "104436".into(),
        client_id: "cid-1".into(),
        client_secret: "sec/ret".into(),
    }
}

fn msg() -> HonorMessage {
    HonorMessage {
        title: String::new(),
        body: "hi there".into(),
        importance: "NORMAL".into(),
        package_name: "com.example.chat".into(),
        click: ClickAction::OpenActivity {
            intent_uri: "intent://chat/open#Intent;scheme=app;component=com.example.chat/.Chat;end"
                .into(),
        },
        ext: Some(r#"{"conv":"7"}"#.into()),
        notify_id: 5,
        bi_tag: None,
    }
}

fn emulator(rules: HonorRules) -> (EmulatorHandle, HonorClient) {
    let config = EmulatorConfig {
        apps: vec![OAuthApp::new("cid-1", "sec/ret", &["104436"])],
        rules,
        ..EmulatorConfig::default()
    };
    let emu = start(config, "127.0.0.1:0".parse().expect("addr")).expect("start");
    let client =
        HonorClient::new(&emu.base_url(), &emu.auth_url(), Duration::from_secs(5)).expect("client");
    (emu, client)
}

#[tokio::test]
async fn token_then_send_with_timestamp_and_lists() {
    let (emu, client) = emulator(HonorRules::default());
    let token = client.fetch_token(&app()).await.expect("token").value;
    emu.add_expired_tokens(["gone"]);
    emu.add_failing_tokens(["flaky"]);
    let reply = client
        .send(&app(), &token, &msg(), &["ok", "gone", "flaky"])
        .await;
    assert_eq!(
        reply,
        HonorReply::Delivered {
            request_id: match &reply {
                HonorReply::Delivered { request_id, .. } => request_id.clone(),
                _ => String::new(),
            },
            expire_tokens: vec!["gone".into()],
            fail_tokens: vec!["flaky".into()],
        }
    );
    let got = emu.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.title, "a new message");
    assert_eq!(r.importance, "NORMAL");
    assert_eq!(r.ext.as_deref(), Some(r#"{"conv":"7"}"#));
    assert!(r.headers.get("timestamp").is_some_and(|t| t.len() == 13));
    assert_eq!(r.endpoint, "/api/v1/104436/sendMessage");
}

#[tokio::test]
async fn auth_failures_and_expiry() {
    let (emu, client) = emulator(HonorRules::default());
    let wrong = HonorApp {
        client_secret: "x".into(),
        ..app()
    };
    assert!(
        matches!(client.fetch_token(&wrong).await, Err(TokenError::Refused(m)) if m.contains("invalid_client"))
    );
    let token = client.fetch_token(&app()).await.expect("token").value;
    assert_eq!(
        client.send(&app(), "forged", &msg(), &["t"]).await.class(),
        "access_refused"
    );
    emu.expire_access_tokens();
    assert_eq!(
        client.send(&app(), &token, &msg(), &["t"]).await.class(),
        "access_expired"
    );
}

#[tokio::test]
async fn unconfirmed_behaviours_follow_the_rules() {
    let rules = HonorRules {
        success_code: 80000000,
        rate_limit_status: 429,
        all_invalid_code: Some(80300007),
        ..HonorRules::default()
    };
    let (emu, client) = emulator(rules);
    let token = client.fetch_token(&app()).await.expect("token").value;
    assert_eq!(
        client.send(&app(), &token, &msg(), &["t"]).await.class(),
        "delivered"
    );
    emu.add_expired_tokens(["gone"]);
    assert_eq!(
        client.send(&app(), &token, &msg(), &["gone"]).await.class(),
        "no_valid_targets"
    );
    emu.set_knobs(Knobs {
        qps_limit: Some(1),
        ..Knobs::default()
    });
    let mut classes = Vec::new();
    for _ in 0..3 {
        classes.push(client.send(&app(), &token, &msg(), &["t"]).await.class());
    }
    assert!(classes.contains(&"rate_limited"), "{classes:?}");
}
