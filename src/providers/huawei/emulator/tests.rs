//! The emulator against our client, over a real socket.

use std::time::Duration;

use super::*;
use crate::domain::ClickAction;
use crate::providers::huawei::account::sample_key_file;
use crate::providers::huawei::{
    HuaweiApp, HuaweiClient, HuaweiMessage, HuaweiReply, ServiceAccount, TokenError,
};
use serde_json::Value;

fn app() -> HuaweiApp {
    HuaweiApp {
        app_id: "10086".into(),
        client_secret: "s3cret/+=".into(),
        project_id: None,
    }
}

fn msg() -> HuaweiMessage {
    HuaweiMessage {
        title: "Alice".into(),
        body: "hi there".into(),
        category: "IM".into(),
        importance: "NORMAL".into(),
        channel_id: None,
        package_name: "com.example.chat".into(),
        click: ClickAction::OpenApp,
        ext: Some(r#"{"conv":"42"}"#.into()),
        notify_id: 7,
        sound: None,
        ext_carriage: Default::default(),
        bi_tag: Some("m-1".into()),
        receipt_id: None,
    }
}

fn emulator() -> (EmulatorHandle, HuaweiClient) {
    let config = EmulatorConfig {
        apps: vec![OAuthApp::new("10086", "s3cret/+=", &["proj-1"])],
        ..EmulatorConfig::default()
    };
    let emu = start(config, "127.0.0.1:0".parse().expect("addr")).expect("start");
    let client = HuaweiClient::new(&emu.base_url(), &emu.auth_url(), Duration::from_secs(5))
        .expect("client");
    (emu, client)
}

#[tokio::test]
async fn token_then_send_then_received_as_the_device_sees_it() {
    let (emu, client) = emulator();
    let token = client.fetch_token(&app()).await.expect("token");
    assert_eq!(token.lifetime, Duration::from_secs(3600));
    let reply = client
        .send(&app(), &token.value, &msg(), &["t1", "t2"])
        .await;
    assert!(
        matches!(reply, HuaweiReply::Delivered { ref illegal_tokens, .. } if illegal_tokens.is_empty()),
        "{reply:?}"
    );
    let got = emu.received();
    assert_eq!(got.len(), 2);
    let r = &got[0];
    assert_eq!((r.app_id.as_str(), r.token.as_str()), ("10086", "t1"));
    assert_eq!((r.title.as_str(), r.body.as_str()), ("Alice", "hi there"));
    assert_eq!(
        (r.category.as_str(), r.importance.as_str()),
        ("IM", "NORMAL")
    );
    assert_eq!(r.click_type, 1);
    assert_eq!(r.ext.as_deref(), Some(r#"{"conv":"42"}"#));
    assert_eq!(r.bi_tag.as_deref(), Some("m-1"));
    assert_eq!(r.endpoint, "/v1/10086/messages:send");
    // v2 per-project URL.
    let v2 = HuaweiApp {
        project_id: Some("proj-1".into()),
        ..app()
    };
    let reply = client.send(&v2, &token.value, &msg(), &["t3"]).await;
    assert_eq!(reply.class(), "delivered");
    assert_eq!(
        emu.received().last().map(|r| r.endpoint.clone()).as_deref(),
        Some("/v2/proj-1/messages:send")
    );
}

#[tokio::test]
async fn bad_credentials_and_tokens() {
    let (emu, client) = emulator();
    let wrong = HuaweiApp {
        client_secret: "nope".into(),
        ..app()
    };
    assert!(
        matches!(client.fetch_token(&wrong).await, Err(TokenError::Refused(m)) if m.contains("1101/12304"))
    );
    let token = client.fetch_token(&app()).await.expect("token");
    let reply = client.send(&app(), "forged", &msg(), &["t"]).await;
    assert!(matches!(
        reply,
        HuaweiReply::AccessRefused { code: 80200001, .. }
    ));
    // A token of this app used for another app id.
    let other = HuaweiApp {
        app_id: "999".into(),
        ..app()
    };
    let reply = client.send(&other, &token.value, &msg(), &["t"]).await;
    assert!(matches!(reply, HuaweiReply::AccessRefused { .. }));
    emu.expire_access_tokens();
    let reply = client.send(&app(), &token.value, &msg(), &["t"]).await;
    assert!(
        matches!(reply, HuaweiReply::AccessExpired { code: 80200003, .. }),
        "{reply:?}"
    );
    let mut knobs = emu.knobs();
    knobs.auth_unavailable = true;
    emu.set_knobs(knobs);
    assert!(matches!(
        client.fetch_token(&app()).await,
        Err(TokenError::Unavailable(_))
    ));
}

#[tokio::test]
async fn illegal_tokens_partial_and_all() {
    let (emu, client) = emulator();
    let token = client.fetch_token(&app()).await.expect("token").value;
    emu.add_invalid_tokens(["dead1", "dead2"]);
    let reply = client
        .send(&app(), &token, &msg(), &["ok", "dead1", "dead2"])
        .await;
    match reply {
        HuaweiReply::Delivered { illegal_tokens, .. } => {
            assert_eq!(illegal_tokens, ["dead1", "dead2"])
        }
        other => panic!("{other:?}"),
    }
    let reply = client.send(&app(), &token, &msg(), &["dead1"]).await;
    assert!(matches!(reply, HuaweiReply::AllTokensInvalid { .. }));
    // Tokens registered by another app: 80300007 although the tokens are alive (wrong app id).
    emu.add_tokens_of_app("55555", ["alive-elsewhere"]);
    let reply = client
        .send(&app(), &token, &msg(), &["alive-elsewhere"])
        .await;
    assert!(matches!(reply, HuaweiReply::AllTokensInvalid { .. }));
    assert_eq!(emu.received().len(), 1);
}

#[tokio::test]
async fn flow_control_outages_and_the_marketing_cap() {
    let (emu, client) = emulator();
    let token = client.fetch_token(&app()).await.expect("token").value;
    emu.set_knobs(Knobs {
        qps_limit: Some(1),
        ..Knobs::default()
    });
    let mut classes = Vec::new();
    for _ in 0..3 {
        classes.push(client.send(&app(), &token, &msg(), &["t"]).await.class());
    }
    assert!(classes.contains(&"rate_limited"), "{classes:?}");
    emu.set_knobs(Knobs {
        error_5xx_ratio: 1.0,
        ..Knobs::default()
    });
    assert_eq!(
        client.send(&app(), &token, &msg(), &["t"]).await.class(),
        "transient"
    );
    emu.set_knobs(Knobs {
        marketing_daily_cap: Some(1),
        ..Knobs::default()
    });
    emu.clear();
    let mut marketing = msg();
    marketing.category = "MARKETING".into();
    for _ in 0..3 {
        assert_eq!(
            client
                .send(&app(), &token, &marketing, &["m"])
                .await
                .class(),
            "delivered"
        );
        assert_eq!(
            client.send(&app(), &token, &msg(), &["m"]).await.class(),
            "delivered"
        );
    }
    // Chats are never capped; the marketing messages past the cap are dropped by the vendor.
    assert_eq!(emu.received().len(), 4);
    assert_eq!(emu.stats().frequency_controlled, 2);
}

#[tokio::test]
async fn the_hang_knob_holds_requests_until_cleared() {
    let (emu, client) = emulator();
    let token = client.fetch_token(&app()).await.expect("token").value;
    emu.set_knobs(Knobs {
        hang: true,
        ..Knobs::default()
    });
    let quick = HuaweiClient::new(&emu.base_url(), &emu.auth_url(), Duration::from_millis(300))
        .expect("client");
    assert_eq!(
        quick.send(&app(), &token, &msg(), &["t"]).await.class(),
        "transient"
    );
    emu.set_knobs(Knobs::default());
    assert_eq!(
        client.send(&app(), &token, &msg(), &["t"]).await.class(),
        "delivered"
    );
}

/// A service account known to the emulator for app 10086, and a signer for its JWTs.
fn jwt_emulator(rules: HuaweiRules) -> (EmulatorHandle, HuaweiClient, ServiceAccount, Value) {
    let (file, public_key) = sample_key_file("proj-1", "kid-1").expect("key file");
    let account = ServiceAccount::from_json(&file).expect("account");
    let config = EmulatorConfig {
        rules,
        service_accounts: vec![ServiceAccountKey {
            key_id: "kid-1".into(),
            sub_account: account.sub_account.clone(),
            public_key,
            app_ids: vec!["10086".into()],
        }],
        ..EmulatorConfig::default()
    };
    let emu = start(config, "127.0.0.1:0".parse().expect("addr")).expect("start");
    let client = HuaweiClient::new(&emu.base_url(), &emu.auth_url(), Duration::from_secs(5))
        .expect("client");
    (emu, client, account, file)
}

#[tokio::test]
async fn a_service_account_jwt_is_a_bearer_and_is_checked() {
    let (emu, client, account, _) = jwt_emulator(HuaweiRules::default());
    let now = crate::domain::now_secs();
    let jwt = account.jwt(now).expect("jwt");
    let reply = client.send(&app(), &jwt, &msg(), &["t1"]).await;
    assert_eq!(reply.class(), "delivered", "{reply:?}");
    let got = emu.received();
    assert_eq!(
        got[0].headers.get("auth").map(String::as_str),
        Some("jwt kid-1")
    );
    assert_eq!(emu.stats().tokens_issued, 0, "no OAuth call");

    // Another account's key under the same kid: the signature does not verify.
    let (other_file, _) = sample_key_file("proj-1", "kid-1").expect("key file");
    let forged = ServiceAccount::from_json(&other_file)
        .expect("account")
        .jwt(now)
        .expect("jwt");
    let reply = client.send(&app(), &forged, &msg(), &["t1"]).await;
    assert!(
        matches!(reply, HuaweiReply::AccessRefused { code: 80200001, .. }),
        "{reply:?}"
    );
    // An app id the account does not own.
    let other_app = HuaweiApp {
        app_id: "999".into(),
        ..app()
    };
    let reply = client.send(&other_app, &jwt, &msg(), &["t1"]).await;
    assert!(
        matches!(reply, HuaweiReply::AccessRefused { .. }),
        "{reply:?}"
    );
    // Out of date: 80200005, which the client renews.
    let stale = account.jwt(now - 7200).expect("jwt");
    let reply = client.send(&app(), &stale, &msg(), &["t1"]).await;
    assert!(
        matches!(reply, HuaweiReply::AccessExpired { code: 80200005, .. }),
        "{reply:?}"
    );
    emu.expire_jwts_issued_before(now + 1);
    let reply = client.send(&app(), &jwt, &msg(), &["t1"]).await;
    assert!(
        matches!(reply, HuaweiReply::AccessExpired { code: 80200005, .. }),
        "{reply:?}"
    );
    assert_eq!(emu.received().len(), 1);
}

#[tokio::test]
async fn the_unconfirmed_jwt_choices_are_rules() {
    // An emulator that wants another audience and at most ten minutes of validity.
    let (_emu, client, account, _) = jwt_emulator(HuaweiRules {
        jwt_max_validity_secs: 600,
        ..HuaweiRules::default()
    });
    let jwt = account.jwt(crate::domain::now_secs()).expect("jwt");
    let reply = client.send(&app(), &jwt, &msg(), &["t1"]).await;
    assert!(
        matches!(reply, HuaweiReply::Misconfigured { code: 80300036, .. }),
        "{reply:?}"
    );
    let (_emu, client, account, _) = jwt_emulator(HuaweiRules {
        jwt_audience: "https://push-api.cloud.huawei.com".into(),
        ..HuaweiRules::default()
    });
    let jwt = account.jwt(crate::domain::now_secs()).expect("jwt");
    let reply = client.send(&app(), &jwt, &msg(), &["t1"]).await;
    assert!(
        matches!(reply, HuaweiReply::AccessRefused { .. }),
        "{reply:?}"
    );
}
