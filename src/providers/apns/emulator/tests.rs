use std::time::Duration;

use super::*;
use crate::providers::apns::client::ApnsClient;
use crate::providers::apns::key::{ApnsKey, Environment, ProviderToken, TokenMemo};
use crate::providers::apns::reply::{classify, ApnsOutcome};
use crate::providers::apns::wire::ApnsNotification;
use crate::providers::h2_pool::H2Pool;

fn emulator() -> EmulatorHandle {
    start(
        EmulatorConfig {
            sample_key: true,
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
}

fn key_of(emu: &EmulatorHandle) -> ApnsKey {
    let k = emu.sample_key().unwrap();
    ApnsKey::new(
        k["key_id"].as_str().unwrap(),
        k["team_id"].as_str().unwrap(),
        k["private_key"].as_str().unwrap(),
        "sandbox",
        "com.example.chat",
    )
    .unwrap()
}

fn note() -> ApnsNotification {
    ApnsNotification {
        title: "Alice".into(),
        subtitle: Some("Group".into()),
        body: "hi".into(),
        sound: Some("default".into()),
        counts_badge: false,
        mutable_content: true,
        thread_id: None,
        ext: Some("{\"k\":1}".into()),
        expiration_secs: 3600,
    }
}

fn now() -> u64 {
    crate::domain::now_secs()
}

struct Rig {
    emu: EmulatorHandle,
    key: ApnsKey,
    client: ApnsClient,
    pool: H2Pool,
    token: ProviderToken,
}

impl Rig {
    fn new() -> Rig {
        let emu = emulator();
        let key = key_of(&emu);
        let client = ApnsClient::new(Some(&emu.base_url()), Duration::from_secs(5)).unwrap();
        let token = TokenMemo::default().get(&key, now(), false).unwrap();
        Rig {
            emu,
            key,
            client,
            pool: H2Pool::new(2, Duration::from_secs(5)).unwrap(),
            token,
        }
    }

    async fn send_with(
        &self,
        token: &ProviderToken,
        device: &str,
        n: &ApnsNotification,
    ) -> ApnsOutcome {
        let base = self.client.base_url(Environment::Sandbox).to_owned();
        classify(
            &self
                .client
                .send(
                    &self.pool,
                    &base,
                    token,
                    &self.key.bundle_id,
                    device,
                    n,
                    None,
                    Some("m-1"),
                    now(),
                )
                .await,
        )
    }

    async fn send(&self, device: &str) -> ApnsOutcome {
        self.send_with(&self.token, device, &note()).await
    }
}

#[tokio::test]
async fn a_notification_arrives_with_apples_headers_and_payload() {
    let rig = Rig::new();
    let out = rig.send("ABCDEF0123").await;
    let ApnsOutcome::Delivered { apns_id: Some(id) } = out else {
        panic!("{out:?}")
    };
    let got = rig.emu.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.apns_id, id);
    assert_eq!(r.device_token, "abcdef0123");
    assert_eq!(r.topic, "com.example.chat");
    assert_eq!(r.push_type, "alert");
    assert_eq!(r.priority.as_deref(), Some("10"));
    assert_eq!(r.collapse_id.as_deref(), Some("m-1"));
    let exp: u64 = r.expiration.as_deref().unwrap().parse().unwrap();
    assert!(exp >= now() + 3500 && exp <= now() + 3700, "{exp}");
    assert_eq!(r.payload["aps"]["alert"]["subtitle"], "Group");
    assert_eq!(r.payload["aps"]["mutable-content"], 1);
    assert_eq!(r.payload["ext"], "{\"k\":1}");
    assert_eq!(r.key_id, SAMPLE_KEY_ID);
}

#[tokio::test]
async fn provider_tokens_are_checked() {
    let rig = Rig::new();
    // Same ids, another key: the signature does not verify.
    let forged_pem = Es256Key::generate_pem().unwrap();
    let forged = ApnsKey::new(
        SAMPLE_KEY_ID,
        SAMPLE_TEAM_ID,
        &forged_pem,
        "sandbox",
        "com.example.chat",
    )
    .unwrap();
    let t = TokenMemo::default().get(&forged, now(), false).unwrap();
    assert_eq!(
        rig.send_with(&t, "ab", &note()).await,
        ApnsOutcome::AuthBroken("InvalidProviderToken".into())
    );
    // Two hours old: expired.
    let old = ProviderToken {
        jwt: rig.key.sign(now() - 7200).unwrap().into(),
        issued_at: 0,
    };
    let rig2 = Rig::new();
    let old2 = ProviderToken {
        jwt: rig2.key.sign(now() - 7200).unwrap().into(),
        issued_at: 0,
    };
    assert_eq!(
        rig2.send_with(&old2, "ab", &note()).await,
        ApnsOutcome::ProviderTokenExpired
    );
    drop(old);
    // A fresh token on the same connections within 20 minutes: TooManyProviderTokenUpdates.
    assert!(matches!(
        rig.send("ab").await,
        ApnsOutcome::Delivered { .. }
    ));
    let again = ProviderToken {
        jwt: rig.key.sign(now() - 1).unwrap().into(),
        issued_at: 0,
    };
    let out = rig.send_with(&again, "ab", &note()).await;
    assert!(
        matches!(out, ApnsOutcome::Retry { ref detail, .. } if detail == "TooManyProviderTokenUpdates"),
        "{out:?}"
    );
}

#[tokio::test]
async fn device_states_and_payload_errors() {
    let rig = Rig::new();
    rig.emu.set_devices(DeviceState::Unregistered, ["aa01"]);
    rig.emu.set_devices(DeviceState::Expired, ["aa02"]);
    rig.emu.set_devices(DeviceState::Bad, ["aa03"]);
    rig.emu.set_devices(DeviceState::OtherTopic, ["aa04"]);
    assert_eq!(
        rig.send("aa01").await,
        ApnsOutcome::BadToken("Unregistered".into())
    );
    assert_eq!(
        rig.send("aa02").await,
        ApnsOutcome::BadToken("ExpiredToken".into())
    );
    assert_eq!(
        rig.send("aa03").await,
        ApnsOutcome::BadToken("BadDeviceToken".into())
    );
    assert_eq!(
        rig.send("aa04").await,
        ApnsOutcome::BadToken("DeviceTokenNotForTopic".into())
    );
    let huge = ApnsNotification {
        body: "x".repeat(5000),
        ..note()
    };
    let out = rig.send_with(&rig.token, "aa05", &huge).await;
    assert_eq!(out, ApnsOutcome::InvalidRequest("PayloadTooLarge".into()));
    assert!(!out.unbinds());
    rig.emu.set_knobs(Knobs {
        qps_limit: Some(0),
        ..Knobs::default()
    });
    assert!(matches!(
        rig.send("aa06").await,
        ApnsOutcome::RateLimited { .. }
    ));
    rig.emu.set_knobs(Knobs {
        error_5xx_ratio: 1.0,
        ..Knobs::default()
    });
    assert!(matches!(rig.send("aa06").await, ApnsOutcome::Retry { .. }));
    assert_eq!(rig.emu.stats().requests["Unregistered"], 1);
}

#[tokio::test]
async fn the_pool_survives_a_concurrency_cut() {
    let rig = Rig::new();
    rig.emu.set_knobs(Knobs {
        latency_ms: 20,
        ..Knobs::default()
    });
    let burst = |n: usize| {
        let rig = &rig;
        futures_util::future::join_all(
            (0..n).map(move |i| async move { rig.send(&format!("{i:04x}")).await }),
        )
    };
    let before = burst(40).await;
    assert!(before
        .iter()
        .all(|o| matches!(o, ApnsOutcome::Delivered { .. })));
    assert!(
        rig.emu.stats().peak_streams_per_connection > 1,
        "streams are multiplexed"
    );
    let opened = rig.emu.connections();
    assert!(rig.emu.connections_open() >= 1);
    rig.emu.set_knobs(Knobs {
        latency_ms: 20,
        concurrency_cut: true,
        ..Knobs::default()
    });
    // The cut ends the live connections (GOAWAY); wait until they are gone.
    for _ in 0..100 {
        if rig.emu.connections_open() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rig.emu.connections_open(), 0);
    let after = burst(40).await;
    assert!(
        after
            .iter()
            .all(|o| matches!(o, ApnsOutcome::Delivered { .. })),
        "{after:?}"
    );
    assert_eq!(rig.emu.stats().peak_streams_per_connection, 1);
    assert!(rig.emu.connections() > opened, "the pool reconnected");
    assert_eq!(rig.emu.received().len(), 80);
}

#[tokio::test]
async fn http1_is_refused() {
    let emu = emulator();
    let plain = reqwest::Client::builder().http1_only().build().unwrap();
    let r = plain
        .post(format!("{}/3/device/ab", emu.base_url()))
        .send()
        .await;
    assert!(r.is_err() || r.is_ok_and(|r| !r.status().is_success()));
}
