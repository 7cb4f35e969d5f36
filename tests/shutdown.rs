//! Graceful shutdown over a real process (issue 14, defects 4 and 5): the `pushgate` binary is
//! started, driven over HTTP and WebSocket, stopped with SIGTERM and started again on the same
//! data dir, against the in-process Xiaomi emulator.

mod common;

use common::process::{next, spawn};
use common::{cert_body, regid, ADMIN, API, SDKAPPID, USERSIG_KEY};
use pushgate::usersig::UserSigKey;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const ONE_PER_REQUEST: &str = "[push]\nregid_batch = 1\nmulti_batch = 1\nshutdown_grace_secs = 2\n";

/// Defect 4: 20 notifications accepted on a slow certificate (one per request, 4 a second),
/// then SIGTERM. What the senders could not send within the 2 s grace is saved to the outbox
/// and sent by the next start: the vendor gets each of the 20 exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_what_it_can_and_the_next_start_sends_the_rest() {
    let emu = common::emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gw = spawn(dir.path(), &emu.base_url(), ONE_PER_REQUEST);
    let cert = gw
        .call(
            reqwest::Method::POST,
            "/v1/certificates",
            ADMIN,
            cert_body(4),
        )
        .await["id"]
        .as_u64()
        .expect("id");
    let mut events = vec![];
    for i in 0..20 {
        events.push(json!({"user": format!("u{i}"), "platform": "Android", "device": "d1", "action": "login"}));
    }
    gw.call(
        reqwest::Method::POST,
        "/v1/sessions/events",
        API,
        json!({ "events": events }),
    )
    .await;
    for i in 0..20 {
        let u = format!("u{i}");
        gw.call(
            reqwest::Method::PUT,
            "/v1/push-tokens",
            API,
            json!({"user": u, "platform": "Android", "device": "d1", "certificate_id": cert, "token": regid(&u)}),
        )
        .await;
        gw.call(
            reqwest::Method::POST,
            "/v1/sessions/events",
            API,
            json!({"events": [{"user": u, "platform": "Android", "device": "d1", "action": "disconnect"}]}),
        )
        .await;
    }
    for i in 0..20 {
        let v = gw
            .call(
                reqwest::Method::POST,
                "/v1/messages",
                API,
                json!({"to": [format!("u{i}")], "from": "carol", "text": format!("m{i}")}),
            )
            .await;
        assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
    }
    gw.terminate().await;
    let first = emu.received().len();
    assert!(
        first < 20,
        "all 20 went out within the grace: the test proves nothing"
    );
    drop(gw);

    let _gw = spawn(dir.path(), &emu.base_url(), ONE_PER_REQUEST);
    let deadline = Instant::now() + Duration::from_secs(30);
    while emu.received().len() < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut got: Vec<String> = emu.received().into_iter().map(|r| r.regid).collect();
    got.sort();
    let mut want: Vec<String> = (0..20).map(|i| regid(&format!("u{i}"))).collect();
    want.sort();
    assert_eq!(
        got, want,
        "{first} sent before the stop; each of the 20 exactly once"
    );
}

/// Defect 5: SIGTERM with a live WebSocket closes it at once with 1001, its unacked message
/// goes to push, and the process exits long before the 30 s HTTP grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_websockets_with_1001_and_pushes_their_unacked_messages() {
    let emu = common::emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gw = spawn(
        dir.path(),
        &emu.base_url(),
        "[http]\nshutdown_timeout_secs = 30\n[push]\nshutdown_grace_secs = 5\n",
    );
    let cert = gw
        .call(
            reqwest::Method::POST,
            "/v1/certificates",
            ADMIN,
            cert_body(100),
        )
        .await["id"]
        .as_u64()
        .expect("id");
    let key = UserSigKey::new(SDKAPPID, USERSIG_KEY);
    let url = format!(
        "ws://{}/v1/ws?sdkappid={SDKAPPID}&identifier=wendy&usersig={}&platform=Android&device=d1",
        gw.addr,
        key.generate("wendy", 3600)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let token = json!({"type": "set_push_token", "certificate_id": cert, "token": "regid-wendy"});
    futures_util::SinkExt::send(&mut ws, WsMessage::text(token.to_string()))
        .await
        .expect("send");
    let ok = next(&mut ws).await;
    assert!(matches!(ok, Some(Ok(WsMessage::Text(_)))), "{ok:?}");
    let v = gw
        .call(
            reqwest::Method::POST,
            "/v1/messages",
            API,
            json!({"to": ["wendy"], "from": "carol", "text": "unacked", "offline_push": {"desc": "unacked"}}),
        )
        .await;
    assert_eq!(v["results"][0]["outcome"], "online", "{v}");
    assert!(matches!(next(&mut ws).await, Some(Ok(WsMessage::Text(_)))));

    let stopping = tokio::spawn(async move {
        let took = gw.terminate().await;
        (gw, took)
    });
    let close = loop {
        match next(&mut ws).await {
            Some(Ok(WsMessage::Close(c))) => break c.map(|c| u16::from(c.code)),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(close, Some(1001));
    let (_gw, waited) = stopping.await.expect("terminate");
    assert!(
        waited < Duration::from_secs(20),
        "the stop took {waited:?}: it waited for the WebSocket"
    );
    let pushed: Vec<_> = emu.received().into_iter().map(|r| r.regid).collect();
    assert_eq!(pushed, vec!["regid-wendy".to_string()]);
}
