//! Graceful shutdown over a real process (issue 14, defects 4 and 5): the `pushgate` binary is
//! started, driven over HTTP and WebSocket, stopped with SIGTERM and started again on the same
//! data dir, against the in-process Xiaomi emulator.

mod common;

use common::process::{next, spawn};
use common::{regid, API, SDKAPPID, USERSIG_KEY};
use pushgate::usersig::UserSigKey;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const ONE_PER_REQUEST: &str = "[push]\nregid_batch = 1\nmulti_batch = 1\nshutdown_grace_secs = 2\n";

/// How the notifications of [`accept_on_slow_certificate`] are sent.
#[derive(Clone, Copy, PartialEq)]
enum Messages {
    /// One message per user: each is a journal share of its own.
    OneEach,
    /// One message to all the users: one journal share, finished a notification at a time.
    OneToAll,
}

/// `n` killed devices u0.. on a certificate of `qps` (its id), sent messages whose answer is
/// `push_queued`.
async fn accept_on_slow_certificate(
    gw: &common::process::Process,
    qps: u32,
    n: usize,
    messages: Messages,
) -> u64 {
    let cert = gw.add_certificate(qps).await;
    let mut events = vec![];
    for i in 0..n {
        events.push(json!({"user": format!("u{i}"), "platform": "Android", "device": "d1", "action": "login"}));
    }
    gw.call(
        reqwest::Method::POST,
        "/v1/sessions/events",
        API,
        json!({ "events": events }),
    )
    .await;
    for i in 0..n {
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
    if messages == Messages::OneToAll {
        let to: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
        let v = gw
            .call(
                reqwest::Method::POST,
                "/v1/messages",
                API,
                json!({"to": to, "from": "carol", "text": "to all"}),
            )
            .await;
        for i in 0..n {
            assert_eq!(v["results"][i]["outcome"], "push_queued", "{v}");
        }
        return cert;
    }
    // All at once: one after the other, a loaded machine can take longer to accept them than
    // the certificate takes to send them, and nothing would be left for the stop to test.
    let sends = (0..n).map(|i| {
        gw.call(
            reqwest::Method::POST,
            "/v1/messages",
            API,
            json!({"to": [format!("u{i}")], "from": "carol", "text": format!("m{i}")}),
        )
    });
    for v in futures_util::future::join_all(sends).await {
        assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
    }
    cert
}

/// Waits (bounded) until the emulator has `n` notifications, then a little more for any
/// duplicate; returns the regIds received, sorted.
async fn received_after_restart(
    emu: &pushgate::providers::xiaomi::emulator::EmulatorHandle,
    n: usize,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while emu.received().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got: Vec<String> = emu.received().into_iter().map(|r| r.regid).collect();
    got.sort();
    got
}

/// Defect 4: 20 notifications accepted on a slow certificate (one per request, 4 a second),
/// then SIGTERM. What the senders could not send within the 2 s grace stays in the journal of
/// accepted notifications and is sent by the next start: the vendor gets each of the 20
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_what_it_can_and_the_next_start_sends_the_rest() {
    let emu = common::emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gw = spawn(dir.path(), &emu.base_url(), ONE_PER_REQUEST);
    accept_on_slow_certificate(&gw, 4, 20, Messages::OneEach).await;
    gw.terminate().await;
    let first = emu.received().len();
    assert!(
        first < 20,
        "all 20 went out within the grace: the test proves nothing"
    );
    drop(gw);

    let _gw = spawn(dir.path(), &emu.base_url(), ONE_PER_REQUEST);
    let got = received_after_restart(&emu, 20).await;
    let mut want: Vec<String> = (0..20).map(|i| regid(&format!("u{i}"))).collect();
    want.sort();
    assert_eq!(
        got, want,
        "{first} sent before the stop; each of the 20 exactly once"
    );
}

/// kill -9 loses nothing accepted: 10 notifications answered `push_queued` on a qps 1
/// certificate (one per request), the process killed while most are still queued, started
/// again: each reaches the vendor. Each is journaled before its answer and taken out of the
/// journal when it finishes, so only one whose request was in flight at the kill, or whose
/// removal was not yet on disk, can go out twice: at one request of one notification a
/// second, at most one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_accepted_notification() {
    kill_9_while_sending(Messages::OneEach).await;
}

/// The same with one message to all ten: the journal holds it as one share whose finished
/// notifications are marked in its progress record; the kill falls between two of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_one_message_to_many_loses_none_of_its_notifications() {
    kill_9_while_sending(Messages::OneToAll).await;
}

async fn kill_9_while_sending(messages: Messages) {
    const N: usize = 10;
    let emu = common::emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gw = spawn(dir.path(), &emu.base_url(), ONE_PER_REQUEST);
    accept_on_slow_certificate(&gw, 1, N, messages).await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    gw.kill9();
    let first = emu.received().len();
    assert!(
        first < N && (messages == Messages::OneEach || first > 0),
        "{first} of {N} went out before the kill: the test proves nothing"
    );
    drop(gw);

    let _gw = spawn(dir.path(), &emu.base_url(), ONE_PER_REQUEST);
    let got = received_after_restart(&emu, N).await;
    let mut distinct = got.clone();
    distinct.dedup();
    let mut want: Vec<String> = (0..N).map(|i| regid(&format!("u{i}"))).collect();
    want.sort();
    assert_eq!(
        distinct, want,
        "{first} sent before the kill; every accepted one after the restart"
    );
    assert!(
        got.len() <= N + 1,
        "{} duplicates: more than the one that can be in flight at the kill: {got:?}",
        got.len() - N
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
    let cert = gw.add_certificate(100).await;
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

/// An upgrade over a journal an older version wrote, one record per accepted notification
/// (`accepted` keyspace, key: message id BE, user, NUL, device; value: the length of the job
/// part as u32 BE, the job part and the message part as JSON): the new version sends each of
/// them once, and takes them out of the journal (a third start sends nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_an_older_version_journaled_one_record_each_are_sent_after_an_upgrade() {
    const N: usize = 3;
    let emu = common::emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gw = spawn(dir.path(), &emu.base_url(), ONE_PER_REQUEST);
    let cert = gw.add_certificate(100).await;
    gw.terminate().await;
    drop(gw);
    {
        // The records exactly as the older version wrote them.
        let db = fjall::Database::builder(dir.path().join("data").join("store"))
            .open()
            .expect("the store opens");
        let accepted = db
            .keyspace("accepted", fjall::KeyspaceCreateOptions::default)
            .expect("accepted keyspace");
        let message = r#"{"from":"carol","text":"from before","title":null,"desc":null,"ext":null,"content":{"title":"carol","desc":"from before","ext":null,"channel_id":null,"conversation":"c2c:carol"}}"#;
        for i in 0..N {
            let user = format!("u{i}");
            let mut key = 0x00f0_0000_0000_0007u64.to_be_bytes().to_vec();
            key.extend_from_slice(user.as_bytes());
            key.push(0);
            key.extend_from_slice(b"d1");
            let part = json!({"cert": cert, "token": regid(&user)}).to_string();
            let mut value = (part.len() as u32).to_be_bytes().to_vec();
            value.extend_from_slice(part.as_bytes());
            value.extend_from_slice(message.as_bytes());
            accepted.insert(key, value).expect("insert");
        }
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }

    let mut gw = spawn(dir.path(), &emu.base_url(), ONE_PER_REQUEST);
    let got = received_after_restart(&emu, N).await;
    let mut want: Vec<String> = (0..N).map(|i| regid(&format!("u{i}"))).collect();
    want.sort();
    assert_eq!(got, want, "each of the older version's notifications once");
    gw.terminate().await;
    drop(gw);

    let _gw = spawn(dir.path(), &emu.base_url(), ONE_PER_REQUEST);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        emu.received().len(),
        N,
        "sent again by a third start: the upgrade left them in the journal"
    );
}
