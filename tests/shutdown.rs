//! Graceful shutdown over a real process (issue 14, defects 4 and 5): the `pushgate` binary is
//! started, driven over HTTP and WebSocket, stopped with SIGTERM and started again on the same
//! data dir, against the in-process Xiaomi emulator.

mod common;

use common::{cert_body, regid, ADMIN, API, SDKAPPID, USERSIG_KEY};
use futures_util::StreamExt;
use pushgate::usersig::UserSigKey;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A gateway process.
struct Process {
    child: Child,
    addr: String,
}

/// Starts the binary on `dir` with `toml` as its config file; returns once it listens.
fn spawn(dir: &std::path::Path, xiaomi: &str, toml: &str) -> Process {
    let config = dir.join("pushgate.toml");
    std::fs::write(&config, toml).expect("config file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("PUSHGATE_LISTEN", "127.0.0.1:0")
        .env("PUSHGATE_DATA_DIR", dir.join("data"))
        .env("PUSHGATE_ADMIN_TOKEN", ADMIN)
        .env("PUSHGATE_API_TOKEN", API)
        .env("PUSHGATE_SDKAPPID", SDKAPPID.to_string())
        .env("PUSHGATE_SECRET_KEY", USERSIG_KEY)
        .env("PUSHGATE_XIAOMI_BASE_URL", xiaomi)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("pushgate starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("pushgate printed its address")
            .expect("stdout line");
        if let Some(a) = line.strip_prefix("pushgate listening on ") {
            break a.trim().to_string();
        }
    };
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Process { child, addr }
}

impl Process {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        let r = common::http()
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// SIGTERM, then waits (bounded) for the exit; returns how long it took.
    async fn terminate(&mut self) -> Duration {
        let t0 = Instant::now();
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "SIGTERM exits 0, got {status}");
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next(ws: &mut Ws) -> Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>> {
    tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a frame within 5 s")
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
