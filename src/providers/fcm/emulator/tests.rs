use std::time::Duration;

use super::*;
use crate::providers::fcm::account::{sample_account_json, ServiceAccount};
use crate::providers::fcm::client::FcmClient;
use crate::providers::fcm::reply::{classify, FcmOutcome, TokenFailure};
use crate::providers::fcm::wire::{send_body, FcmNotification, Priority};
use crate::providers::h2_pool::H2Pool;

fn emulator() -> EmulatorHandle {
    start(
        EmulatorConfig {
            sample_project: Some("demo-project".into()),
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
}

fn notification() -> FcmNotification {
    FcmNotification {
        title: "Alice".into(),
        body: "hi".into(),
        channel_id: Some("im".into()),
        priority: Priority::High,
        ttl_secs: 3600,
        ext: Some("{\"k\":1}".into()),
        sound: None,
        package: "com.example.chat".into(),
        click_action: None,
    }
}

fn now() -> u64 {
    crate::domain::now_secs()
}

#[tokio::test]
async fn token_exchange_then_send_over_http2() {
    let emu = emulator();
    let account = ServiceAccount::from_json(&emu.sample_account().unwrap()).unwrap();
    let client = FcmClient::new(&emu.base_url(), Duration::from_secs(5)).unwrap();
    let grant = client.fetch_token(&account, now()).await.unwrap();
    assert!(grant.access_token.starts_with("ya29."));
    assert_eq!(grant.expires_in, 3599);
    let pool = H2Pool::new(2, Duration::from_secs(5)).unwrap();
    let body = send_body("tok-1", &notification(), Some("77")).to_string();
    let reply = client
        .send(
            &pool,
            &account.project_id,
            &grant.access_token,
            body.as_bytes(),
        )
        .await;
    let FcmOutcome::Delivered { name } = classify(&reply) else {
        panic!("{reply:?}");
    };
    assert!(name.starts_with("projects/demo-project/messages/"));
    let got = emu.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].token, "tok-1");
    assert_eq!(got[0].http_version, "HTTP/2.0");
    assert_eq!(got[0].channel_id.as_deref(), Some("im"));
    assert_eq!(got[0].tag.as_deref(), Some("77"));
    assert_eq!(got[0].priority.as_deref(), Some("high"));
    assert_eq!(got[0].ttl.as_deref(), Some("3600s"));
    assert_eq!(
        got[0].data.get("ext").map(String::as_str),
        Some("{\"k\":1}")
    );
    assert_eq!(got[0].name, name);
}

#[tokio::test]
async fn a_key_the_emulator_does_not_trust_gets_no_token() {
    let emu = emulator();
    // Same e-mail as the trusted account, another key: the signature check refuses it.
    let mut forged = sample_account_json("demo-project", &emu.token_uri())
        .unwrap()
        .0;
    forged["client_email"] = emu.sample_account().unwrap()["client_email"].clone();
    let account = ServiceAccount::from_json(&forged).unwrap();
    let client = FcmClient::new(&emu.base_url(), Duration::from_secs(5)).unwrap();
    assert_eq!(
        client.fetch_token(&account, now()).await,
        Err(TokenFailure::Refused(
            "invalid_grant: Invalid JWT Signature.".into()
        ))
    );
    // An assertion from two hours ago is refused too.
    let trusted = ServiceAccount::from_json(&emu.sample_account().unwrap()).unwrap();
    assert!(matches!(
        client.fetch_token(&trusted, now() - 7200).await,
        Err(TokenFailure::Refused(_))
    ));
    emu.set_knobs(Knobs {
        token_endpoint_down: true,
        ..Knobs::default()
    });
    assert!(matches!(
        client.fetch_token(&trusted, now()).await,
        Err(TokenFailure::Unavailable(_))
    ));
}

#[tokio::test]
async fn token_states_rate_limit_and_revocation() {
    let emu = emulator();
    let account = ServiceAccount::from_json(&emu.sample_account().unwrap()).unwrap();
    let client = FcmClient::new(&emu.base_url(), Duration::from_secs(5)).unwrap();
    let token = client
        .fetch_token(&account, now())
        .await
        .unwrap()
        .access_token;
    let pool = H2Pool::new(1, Duration::from_secs(5)).unwrap();
    emu.set_tokens(TokenState::Unregistered, ["gone"]);
    emu.set_tokens(TokenState::Invalid, ["junk"]);
    emu.set_tokens(TokenState::OtherSender, ["foreign"]);
    let send = |t: &'static str| {
        let body = send_body(t, &notification(), None).to_string();
        let (client, pool, token, project) =
            (&client, &pool, token.clone(), account.project_id.clone());
        async move { classify(&client.send(pool, &project, &token, body.as_bytes()).await) }
    };
    assert_eq!(send("gone").await, FcmOutcome::Unregistered);
    assert_eq!(send("junk").await, FcmOutcome::InvalidToken);
    assert_eq!(send("has space").await, FcmOutcome::InvalidToken);
    assert_eq!(send("foreign").await, FcmOutcome::SenderMismatch);
    emu.set_knobs(Knobs {
        qps_limit: Some(1),
        retry_after_secs: 9,
        ..Knobs::default()
    });
    // The limit counts whole clock seconds, so two sends can straddle a boundary; of three
    // sent one after the other, two share a second and the later one is refused.
    let mut outcomes = Vec::new();
    for t in ["a", "b", "c"] {
        outcomes.push(send(t).await);
    }
    assert!(
        outcomes.contains(&FcmOutcome::QuotaExceeded {
            retry_after: Some(Duration::from_secs(9))
        }),
        "{outcomes:?}"
    );
    emu.set_knobs(Knobs {
        error_5xx_ratio: 1.0,
        ..Knobs::default()
    });
    assert!(matches!(send("c").await, FcmOutcome::Unavailable { .. }));
    emu.set_knobs(Knobs::default());
    assert_eq!(emu.revoke_access_tokens(), 1);
    assert_eq!(send("d").await, FcmOutcome::AccessRefused);
    // A payload mistake is a 400 that does not name the token.
    let bad = json!({"message":{"token":"t","android":{"ttl":"forever"}}}).to_string();
    let fresh = client
        .fetch_token(&account, now())
        .await
        .unwrap()
        .access_token;
    let out = classify(
        &client
            .send(&pool, &account.project_id, &fresh, bad.as_bytes())
            .await,
    );
    assert!(
        matches!(out, FcmOutcome::InvalidRequest(_)) && !out.unbinds(),
        "{out:?}"
    );
    // Another project's token is refused.
    let out = classify(&client.send(&pool, "other-project", &fresh, b"{}").await);
    assert!(matches!(out, FcmOutcome::AuthBroken(_)), "{out:?}");
    let stats = emu.stats();
    assert_eq!(stats.access_tokens_issued, 2);
    assert_eq!(stats.requests["send"]["UNREGISTERED"], 1);
}

#[tokio::test]
async fn control_endpoints_answer_json() {
    let emu = emulator();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let base = emu.base_url();
    let put = http
        .put(format!("{base}/_emulator/knobs"))
        .body(r#"{"qps_limit":5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(emu.knobs().qps_limit, Some(5));
    let bad = http
        .put(format!("{base}/_emulator/knobs"))
        .body(r#"{"nope":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let sample: Value = http
        .get(format!("{base}/_emulator/sample-account"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sample["project_id"], "demo-project");
    let tokens = http
        .post(format!("{base}/_emulator/tokens"))
        .body(r#"{"unregistered":["x"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), 200);
    let missing = http
        .get(format!("{base}/_emulator/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
