//! Client sessions over WebSocket, against the real gateway on 127.0.0.1 with a real client
//! (tokio-tungstenite), the Xiaomi emulator for the push path, and the webhook receiver.

mod common;

use std::time::{Duration, Instant};

use common::webhook::{Captured, Reply, WebhookReceiver};
use common::{cert_body, Harness, SDKAPPID as APP};
use futures_util::{SinkExt, StreamExt};
use pushgate::config::Config;
use pushgate::usersig::UserSigKey;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One HTTP worker (so ordering across connections is the server's, not the scheduler's), a
/// 30 s heartbeat unless the test says otherwise, and a certificate for set_push_token.
async fn start(tweak: impl FnOnce(&mut Config)) -> Harness {
    Harness::builder()
        .config(|c| {
            c.http.workers = 1;
            c.sessions.heartbeat_timeout_secs = 30;
        })
        .config(tweak)
        .certificate(cert_body(1000))
        .start()
        .await
}

/// What the session tests do with the gateway, beyond the shared harness.
trait Sessions {
    fn ws_url(&self, user: &str, platform: &str, device: &str) -> String;
    async fn connect(&self, user: &str, platform: &str, device: &str) -> Ws;
    fn state(&self, user: &str, device: &str) -> (String, bool);
    async fn wait_state(&self, user: &str, device: &str, want: &str);
    async fn send_text(&self, to: &str, text: &str) -> Value;
    async fn pushed(&self, regid: &str, n: usize) -> Vec<String>;
}

impl Sessions for Harness {
    fn ws_url(&self, user: &str, platform: &str, device: &str) -> String {
        format!(
            "ws://{}/v1/ws?sdkappid={APP}&identifier={user}&usersig={}&platform={platform}&device={device}",
            self.server.addr,
            self.usersig_key().generate(user, 3600)
        )
    }

    async fn connect(&self, user: &str, platform: &str, device: &str) -> Ws {
        let (ws, res) = tokio_tungstenite::connect_async(self.ws_url(user, platform, device))
            .await
            .expect("websocket connect");
        assert_eq!(res.status(), 101);
        ws
    }

    fn state(&self, user: &str, device: &str) -> (String, bool) {
        match self.server.gateway.device_view(user, device) {
            Ok(v) => (v.state.to_string(), v.background),
            Err(_) => ("unknown".into(), false),
        }
    }

    /// Polls until the device is in `want` (bounded).
    async fn wait_state(&self, user: &str, device: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (state, _) = self.state(user, device);
            if state == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{user}/{device} is {state}, expected {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `POST /v1/messages` to one user; returns the result of that user.
    async fn send_text(&self, to: &str, text: &str) -> Value {
        let v = self
            .send(
                json!({"to": [to], "from": "carol", "text": text, "detail": true,
                   "offline_push": {"desc": text.chars().take(40).collect::<String>()}}),
            )
            .await;
        v["results"][0].clone()
    }

    /// The descriptions the emulator received for `regid`, once their number is at least `n`
    /// and has stayed put for a moment.
    async fn pushed(&self, regid: &str, n: usize) -> Vec<String> {
        self.wait_pushes(regid, n).await;
        // Nothing more should come.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.emu
            .received()
            .into_iter()
            .filter(|r| r.regid == regid)
            .map(|r| r.description)
            .collect()
    }
}

async fn json_body(res: reqwest::Response) -> Value {
    let bytes = res.bytes().await.expect("body");
    serde_json::from_slice(&bytes).expect("json body")
}

async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(WsMessage::text(v.to_string())).await.expect("send");
}

async fn send_mp(ws: &mut Ws, v: Value) {
    let bytes = rmp_serde::to_vec_named(&v).expect("msgpack");
    ws.send(WsMessage::binary(bytes)).await.expect("send");
}

/// The next server frame as JSON (MessagePack frames are decoded into the same shape); a close
/// becomes `{"type":"__close","code":..,"reason":..}` and the end of the stream `__end`.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s");
        match msg {
            Some(Ok(WsMessage::Text(t))) => {
                return serde_json::from_str(t.as_str()).expect("json frame")
            }
            Some(Ok(WsMessage::Binary(b))) => {
                let mut v: Value = rmp_serde::from_slice(&b).expect("msgpack frame");
                v["__binary"] = json!(true);
                return v;
            }
            Some(Ok(WsMessage::Close(c))) => {
                return json!({"type": "__close",
                    "code": c.as_ref().map(|c| u16::from(c.code)),
                    "reason": c.as_ref().map(|c| c.reason.to_string())})
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return json!({"type": "__end"}),
        }
    }
}

/// Reads frames until one of type `ty` (skipping `ok` and others); bounded.
async fn next_of(ws: &mut Ws, ty: &str) -> Value {
    for _ in 0..50 {
        let f = next(ws).await;
        if f["type"] == ty {
            return f;
        }
        assert!(f["type"] != "__end", "stream ended while waiting for {ty}");
    }
    panic!("no {ty} frame");
}

// ---- upgrade and authentication -------------------------------------------------------------

#[tokio::test]
async fn upgrade_refuses_bad_parameters_and_tickets() {
    let env = start(|_| {}).await;
    let sig = env.usersig_key().generate("alice", 3600);
    let base = format!("http://{}/v1/ws", env.server.addr);
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!("{base}?identifier=alice&usersig={sig}&platform=Android&device=d1"),
            400,
            "missing_parameter",
        ),
        (
            format!("{base}?sdkappid={APP}&identifier=alice&usersig={sig}&platform=Nokia&device=d1"),
            400,
            "invalid_parameter",
        ),
        (
            format!("{base}?sdkappid={APP}&identifier=alice&usersig={sig}&platform=Android"),
            400,
            "missing_parameter",
        ),
        (
            format!("{base}?sdkappid={APP}&identifier=alice&platform=Android&device=d1"),
            401,
            "usersig_missing",
        ),
        (
            format!("{base}?sdkappid={APP}&identifier=bob&usersig={sig}&platform=Android&device=d1"),
            401,
            "usersig_identifier_mismatch",
        ),
        (
            format!("{base}?sdkappid=1400000001&identifier=alice&usersig={sig}&platform=Android&device=d1"),
            401,
            "usersig_sdkappid_mismatch",
        ),
        (
            format!(
                "{base}?sdkappid={APP}&identifier=alice&usersig={}&platform=Android&device=d1",
                UserSigKey::new(APP, "another-key").generate("alice", 3600)
            ),
            401,
            "usersig_signature_mismatch",
        ),
        (
            format!(
                "{base}?sdkappid={APP}&identifier=alice&usersig={}&platform=Android&device=d1",
                env.usersig_key().generate_at("alice", 60, 1_000_000, None)
            ),
            401,
            "usersig_expired",
        ),
        (
            format!("{base}?sdkappid={APP}&identifier=alice&usersig=garbage&platform=Android&device=d1"),
            401,
            "usersig_invalid",
        ),
        // A good ticket but no upgrade headers.
        (
            format!("{base}?sdkappid={APP}&identifier=alice&usersig={sig}&platform=Android&device=d1"),
            400,
            "not_a_websocket",
        ),
    ];
    for (url, status, code) in cases {
        let res = env.http.get(&url).send().await.expect("get");
        let got = res.status().as_u16();
        let body = json_body(res).await;
        assert_eq!(got, status, "{url}: {body}");
        assert_eq!(body["error"]["code"], code, "{url}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Nothing logged in.
    assert_eq!(env.state("alice", "d1").0, "unknown");

    // A real WebSocket client cannot read a 401's body: it is upgraded and gets a close frame,
    // 1008, whose reason names the case and Tencent's code (spec/usersig-v2.md).
    let ws_base = format!("ws://{}/v1/ws", env.server.addr);
    let tickets = [
        (
            format!("{ws_base}?sdkappid={APP}&identifier=bob&usersig={sig}&platform=Android&device=d1"),
            "usersig_identifier_mismatch (TIM error 70013)",
        ),
        (
            format!("{ws_base}?sdkappid=1400000001&identifier=alice&usersig={sig}&platform=Android&device=d1"),
            "usersig_sdkappid_mismatch (TIM error 70014)",
        ),
        (
            format!(
                "{ws_base}?sdkappid={APP}&identifier=alice&usersig={}&platform=Android&device=d1",
                env.usersig_key().generate_at("alice", 60, 1_000_000, None)
            ),
            "usersig_expired (TIM error 70001)",
        ),
        (
            format!("{ws_base}?sdkappid={APP}&identifier=alice&usersig=garbage&platform=Android&device=d1"),
            "usersig_invalid (TIM error 70003)",
        ),
    ];
    for (url, reason) in tickets {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("upgraded");
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a close frame in time");
        match frame {
            Some(Ok(WsMessage::Close(Some(close)))) => {
                assert_eq!(u16::from(close.code), 1008, "{url}");
                assert_eq!(close.reason.as_str(), reason, "{url}");
            }
            other => panic!("{url}: expected a close frame, got {other:?}"),
        }
    }
    assert_eq!(env.state("alice", "d1").0, "unknown");
    assert_eq!(env.state("bob", "d1").0, "unknown");
}

// ---- transitions ----------------------------------------------------------------------------

#[tokio::test]
async fn close_without_logout_is_push_online_and_logout_is_offline() {
    let env = start(|_| {}).await;
    let mut ws = env.connect("alice", "Android", "d1").await;
    assert_eq!(env.state("alice", "d1").0, "Online");
    send_json(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await, json!({"type": "pong"}));
    ws.close(None).await.expect("close");
    env.wait_state("alice", "d1", "PushOnline").await;

    // Dropping the TCP connection without a close frame is the same.
    let ws = env.connect("alice", "Android", "d1").await;
    assert_eq!(env.state("alice", "d1").0, "Online");
    drop(ws);
    env.wait_state("alice", "d1", "PushOnline").await;

    let mut ws = env.connect("alice", "Android", "d1").await;
    send_json(&mut ws, json!({"type": "logout"})).await;
    assert_eq!(next(&mut ws).await, json!({"type": "ok", "for": "logout"}));
    let close = next(&mut ws).await;
    assert_eq!(close["type"], "__close");
    assert_eq!(close["reason"], "logout");
    assert_eq!(env.state("alice", "d1").0, "Offline");
}

#[tokio::test]
async fn background_and_foreground_in_messagepack() {
    let env = start(|_| {}).await;
    let mut ws = env.connect("bob", "Android", "d1").await;
    send_mp(
        &mut ws,
        json!({"type": "set_push_token", "certificate_id": env.cert(), "token": "regid-bob"}),
    )
    .await;
    let ok = next(&mut ws).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(ok["for"], "set_push_token");
    assert_eq!(
        ok["__binary"], true,
        "answers come in the client's encoding"
    );

    // Foreground: only the connection.
    let r = env.send_text("bob", "fg").await;
    assert_eq!(r["outcome"], "online", "{r}");
    let m = next(&mut ws).await;
    assert_eq!(m["type"], "message");
    assert_eq!(m["text"], "fg");
    assert_eq!(m["from"], "carol");
    send_mp(&mut ws, json!({"type": "ack", "id": m["id"]})).await;

    send_mp(&mut ws, json!({"type": "background", "unread": 3})).await;
    assert_eq!(next(&mut ws).await["for"], "background");
    assert_eq!(env.state("bob", "d1"), ("Online".into(), true));
    // Background: the connection and a notification.
    let r = env.send_text("bob", "bg").await;
    assert_eq!(r["outcome"], "online", "{r}");
    assert_eq!(r["devices"][0]["also_pushed"], true, "{r}");
    let m = next(&mut ws).await;
    assert_eq!(m["text"], "bg");
    send_mp(&mut ws, json!({"type": "ack", "id": m["id"]})).await;

    send_mp(&mut ws, json!({"type": "foreground"})).await;
    assert_eq!(next(&mut ws).await["for"], "foreground");
    assert_eq!(env.state("bob", "d1"), ("Online".into(), false));
    let r = env.send_text("bob", "fg2").await;
    assert_ne!(r["devices"][0]["also_pushed"], true, "{r}");
    let m = next(&mut ws).await;
    send_mp(&mut ws, json!({"type": "ack", "id": m["id"]})).await;
    send_mp(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await["type"], "pong");

    assert_eq!(env.pushed("regid-bob", 1).await, vec!["bg".to_string()]);
    // Acked messages are not pushed when the connection goes.
    drop(ws);
    env.wait_state("bob", "d1", "PushOnline").await;
    assert_eq!(env.pushed("regid-bob", 1).await, vec!["bg".to_string()]);
}

#[tokio::test]
async fn newer_login_kicks_the_older_connection() {
    let env = start(|_| {}).await;
    let mut old = env.connect("carl", "Android", "phone-a").await;
    send_json(
        &mut old,
        json!({"type": "set_push_token", "certificate_id": env.cert(), "token": "regid-a"}),
    )
    .await;
    assert_eq!(next(&mut old).await["type"], "ok");

    // Another Android device of the same user: the policy kicks the older one.
    let mut new = env.connect("carl", "Android", "phone-b").await;
    let kicked = next(&mut old).await;
    assert_eq!(kicked["type"], "kicked", "{kicked}");
    assert!(kicked["reason"].as_str().is_some_and(|r| !r.is_empty()));
    let close = next(&mut old).await;
    assert_eq!(close["type"], "__close");
    assert_eq!(close["reason"], "kicked");
    assert_eq!(env.state("carl", "phone-a").0, "Offline");
    assert_eq!(env.state("carl", "phone-b").0, "Online");
    // The kicked device gets no push.
    let r = env.send_text("carl", "after kick").await;
    assert_eq!(r["outcome"], "online");
    assert_eq!(next(&mut new).await["text"], "after kick");
    assert!(env.pushed("regid-a", 0).await.is_empty());

    // The same device reconnecting replaces its own connection; the late close of the old
    // socket does not disconnect the new one.
    // "after kick" was read on `new` but not acked: it moves to the newer connection.
    let mut again = env.connect("carl", "Android", "phone-b").await;
    assert_eq!(next_of(&mut new, "kicked").await["type"], "kicked");
    drop(new);
    let m = next(&mut again).await;
    assert_eq!(m["type"], "message", "{m}");
    assert_eq!(m["text"], "after kick");
    send_json(&mut again, json!({"type": "ack", "id": m["id"]})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.state("carl", "phone-b").0, "Online");
    send_json(&mut again, json!({"type": "ping"})).await;
    assert_eq!(next(&mut again).await["type"], "pong");
    assert!(env.pushed("regid-a", 0).await.is_empty());
}

// ---- online delivery and the fallback to push -----------------------------------------------

async fn ack_fallback(binary: bool) {
    let env = start(|_| {}).await;
    let user = if binary { "dora-mp" } else { "dora" };
    let regid = format!("regid-{user}");
    let mut ws = env.connect(user, "Android", "d1").await;
    let token = json!({"type": "set_push_token", "certificate_id": env.cert(), "token": regid});
    if binary {
        send_mp(&mut ws, token).await;
    } else {
        send_json(&mut ws, token).await;
    }
    assert_eq!(next(&mut ws).await["type"], "ok");
    for text in ["m1", "m2", "m3", "m4"] {
        assert_eq!(env.send_text(user, text).await["outcome"], "online");
    }
    let mut ids = Vec::new();
    for text in ["m1", "m2", "m3", "m4"] {
        let m = next(&mut ws).await;
        assert_eq!(m["type"], "message");
        assert_eq!(m["text"], text);
        assert_eq!(m.get("__binary").is_some(), binary);
        ids.push(m["id"].clone());
    }
    for id in [&ids[0], &ids[2]] {
        let ack = json!({"type": "ack", "id": id});
        if binary {
            send_mp(&mut ws, ack).await;
        } else {
            send_json(&mut ws, ack).await;
        }
    }
    // The acks are read before the close.
    send_json(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await["type"], "pong");
    assert!(
        env.pushed(&regid, 0).await.is_empty(),
        "nothing pushed while connected"
    );
    ws.close(None).await.expect("close");
    env.wait_state(user, "d1", "PushOnline").await;
    let mut pushed = env.pushed(&regid, 2).await;
    pushed.sort();
    assert_eq!(pushed, vec!["m2".to_string(), "m4".to_string()]);
}

#[tokio::test]
async fn unacked_messages_fall_back_to_push_json() {
    ack_fallback(false).await;
}

#[tokio::test]
async fn unacked_messages_fall_back_to_push_messagepack() {
    ack_fallback(true).await;
}

/// A client `user`/d1 with a push token that, once registered, reads nothing while the test
/// sends it messages of 12 KB (at most `limit`) until the gateway stops delivering online. Checks
/// that every message sent reached the phone by push (none acked, none lost) and that the
/// connection was cut as a slow reader; returns how many messages were sent.
async fn flood_a_client_that_does_not_read(env: &Harness, user: &str, limit: usize) -> usize {
    // A small receive buffer, so the kernel does not absorb megabytes for the idle reader.
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = sock.connect(env.server.addr).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(
        env.ws_url(user, "Android", "d1"),
        MaybeTlsStream::Plain(tcp),
    )
    .await
    .expect("websocket");
    let token = format!("regid-{user}");
    send_json(
        &mut ws,
        json!({"type": "set_push_token", "certificate_id": env.cert(), "token": token}),
    )
    .await;
    assert_eq!(next(&mut ws).await["type"], "ok");
    // From here on the client reads nothing. Big messages fill the socket buffers, then the
    // outbound queue; the gateway gives up on the connection.
    let big = "x".repeat(12 * 1024 - 16);
    let mut sent = 0;
    for i in 0..limit {
        let r = env.send_text(user, &format!("{i:05}{big}")).await;
        sent += 1;
        if r["outcome"] != "online" {
            break;
        }
    }
    env.wait_state(user, "d1", "PushOnline").await;
    let pushed = env.pushed(&token, sent).await;
    assert_eq!(pushed.len(), sent, "sent {sent}, pushed {}", pushed.len());
    let disconnects = env
        .server
        .gateway
        .metrics()
        .ws_disconnects
        .with_label_values(&["slow_reader"])
        .get();
    assert_eq!(disconnects, 1);
    drop(ws);
    sent
}

#[tokio::test]
async fn a_client_that_does_not_read_is_disconnected_and_its_messages_pushed() {
    let env = start(|c| c.sessions.outbound_queue = 4).await;
    let sent = flood_a_client_that_does_not_read(&env, "eve", 3000).await;
    assert!(sent < 3000, "the gateway never gave up on the connection");
}

/// With a frame bound that never triggers, the byte bound alone cuts a client that does not
/// read: 12 KB messages stop well before 1,000 (before the byte bound, the queue held them all).
#[tokio::test]
async fn a_slow_reader_is_cut_by_the_bytes_it_holds_not_only_by_frames() {
    let env = start(|c| {
        c.sessions.outbound_queue = 100_000;
        c.sessions.max_outbound_bytes = 64 * 1024;
    })
    .await;
    let sent = flood_a_client_that_does_not_read(&env, "erin", 1000).await;
    assert!(sent < 1000, "1,000 messages of 12 KB held for one client");
}

/// A `disconnect` the IM cluster reports for a device whose socket is live here closes that
/// socket (1000): its unacked message and later ones go to push, none is stranded on a socket
/// nobody routes to.
#[tokio::test]
async fn an_http_disconnect_closes_the_live_socket_and_its_messages_go_to_push() {
    let env = start(|_| {}).await;
    let mut ws = env.connect("fred", "Android", "d1").await;
    send_json(
        &mut ws,
        json!({"type": "set_push_token", "certificate_id": env.cert(), "token": "regid-fred"}),
    )
    .await;
    assert_eq!(next(&mut ws).await["type"], "ok");
    assert_eq!(env.send_text("fred", "m1").await["outcome"], "online");
    assert_eq!(next_of(&mut ws, "message").await["text"], "m1");

    let r = env.event("fred", "d1", "disconnect").await;
    assert_eq!(r["state"], "PushOnline", "{r}");
    let close = next(&mut ws).await;
    assert_eq!(close["type"], "__close", "{close}");
    assert_eq!(close["code"], 1000, "{close}");
    assert_eq!(env.send_text("fred", "m2").await["outcome"], "push_queued");
    let mut pushed = env.pushed("regid-fred", 2).await;
    pushed.sort();
    assert_eq!(pushed, vec!["m1".to_string(), "m2".to_string()]);
    assert_eq!(env.state("fred", "d1").0, "PushOnline");
    let closed = env
        .server
        .gateway
        .metrics()
        .ws_disconnects
        .with_label_values(&["server_disconnect"])
        .get();
    assert_eq!(closed, 1);
}

// ---- heartbeat ------------------------------------------------------------------------------

#[tokio::test]
async fn heartbeat_timeout_makes_the_device_push_online() {
    let env = start(|c| {
        c.sessions.heartbeat_timeout_secs = 1;
        c.sessions.ping_interval_secs = 60;
    })
    .await;
    // A client that sends `ping` frames stays.
    let mut alive = env.connect("fay", "Android", "alive").await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2200) {
        send_json(&mut alive, json!({"type": "ping"})).await;
        assert_eq!(next(&mut alive).await["type"], "pong");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(env.state("fay", "alive").0, "Online");

    // A silent one is dropped as TimeOut.
    let mut silent = env.connect("fay", "iPhone", "silent").await;
    let started = Instant::now();
    env.wait_state("fay", "silent", "PushOnline").await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    let close = next(&mut silent).await;
    assert_eq!(close["type"], "__close");
    assert_eq!(close["reason"], "heartbeat_timeout");
}

#[tokio::test]
async fn server_pings_keep_a_reading_client_alive() {
    let env = start(|c| {
        c.sessions.heartbeat_timeout_secs = 2;
        c.sessions.ping_interval_secs = 1;
    })
    .await;
    let mut ws = env.connect("gus", "Android", "d1").await;
    // Reading answers the server's pings (tungstenite pongs by itself).
    let deadline = tokio::time::Instant::now() + Duration::from_millis(4500);
    let mut pings = 0;
    while let Ok(got) = tokio::time::timeout_at(deadline, ws.next()).await {
        match got {
            Some(Ok(WsMessage::Ping(_))) => pings += 1,
            other => panic!("only pings expected, got {other:?}"),
        }
    }
    assert!(pings >= 3, "{pings} pings");
    assert_eq!(env.state("gus", "d1").0, "Online");
}

#[tokio::test]
async fn a_silent_client_is_pinged_at_the_interval_then_timed_out() {
    let env = start(|c| {
        c.sessions.heartbeat_timeout_secs = 3;
        c.sessions.ping_interval_secs = 1;
    })
    .await;
    // Taken before the handshake: the gateway's clock for this connection starts during it.
    let started = Instant::now();
    let mut ws = env.connect("kim", "Android", "d1").await;
    // Not reading: tungstenite answers pings only while reading, so the gateway hears nothing
    // from this client and its pings pile up unread.
    env.wait_state("kim", "d1", "PushOnline").await;
    assert!(started.elapsed() >= Duration::from_secs(3));

    // What arrived meanwhile: a ping each second of the silence, then the close.
    let mut pings = 0;
    let close = loop {
        let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s");
        match got {
            Some(Ok(WsMessage::Ping(_))) => pings += 1,
            Some(Ok(WsMessage::Close(c))) => break c.expect("a close reason"),
            other => panic!("only pings and a close expected, got {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason.as_str(), "heartbeat_timeout");
    assert!(
        (2..=3).contains(&pings),
        "{pings} pings in 3 s of silence at a 1 s ping interval"
    );
    let timeouts = env
        .server
        .gateway
        .metrics()
        .ws_disconnects
        .with_label_values(&["heartbeat_timeout"])
        .get();
    assert_eq!(timeouts, 1);
}

// ---- bad input ------------------------------------------------------------------------------

#[tokio::test]
async fn bad_frames_get_an_error_and_change_nothing() {
    let env = start(|_| {}).await;
    let mut ws = env.connect("hal", "Android", "d1").await;
    let cases: Vec<(WsMessage, &str)> = vec![
        (WsMessage::text(r#"{"type":"dance"}"#), "unknown_type"),
        (WsMessage::text("{not json"), "malformed_frame"),
        (WsMessage::text(r#"{"id":3}"#), "missing_type"),
        (WsMessage::text(r#"{"type":"ack"}"#), "bad_field"),
        (WsMessage::binary(vec![0xc1u8, 0x00]), "malformed_frame"),
        (
            WsMessage::binary(rmp_serde::to_vec_named(&json!({"type": 7})).expect("mp")),
            "bad_field",
        ),
        (
            WsMessage::text(format!(
                r#"{{"type":"ping","pad":"{}"}}"#,
                "p".repeat(20_000)
            )),
            "frame_too_large",
        ),
        (
            WsMessage::text(r#"{"type":"set_push_token","certificate_id":999999,"token":"t"}"#),
            "unknown_certificate",
        ),
        (
            WsMessage::text(format!(
                r#"{{"type":"set_push_token","certificate_id":{},"token":"{}"}}"#,
                env.cert(),
                "t".repeat(300)
            )),
            "token_too_long",
        ),
        (
            WsMessage::text(r#"{"type":"ack","id":12345}"#),
            "unknown_message",
        ),
    ];
    for (msg, code) in cases {
        ws.send(msg).await.expect("send");
        let f = next(&mut ws).await;
        assert_eq!(f["type"], "error", "{f}");
        assert_eq!(f["code"], code, "{f}");
        assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let view = env.server.gateway.device_view("hal", "d1").expect("device");
    assert_eq!(view.state, "Online");
    assert!(!view.token_bound);
    assert!(!view.background);

    // Beyond what the gateway reads at all: the connection closes with a reason.
    ws.send(WsMessage::binary(vec![0x90u8; 100_000]))
        .await
        .expect("send");
    let close = next(&mut ws).await;
    assert_eq!(close["type"], "__close", "{close}");
    assert_eq!(close["code"], u16::from(CloseCode::Size));
    assert!(close["reason"]
        .as_str()
        .is_some_and(|r| r.starts_with("frame_too_large")));
    env.wait_state("hal", "d1", "PushOnline").await;
}

// ---- State.StateChange webhook --------------------------------------------------------------

#[tokio::test]
async fn state_change_webhooks() {
    let mut hooks = WebhookReceiver::start(Reply::Ok).await;
    let env = start(|c| {
        c.webhook_url = Some(hooks.url("/im/callback"));
        c.sessions.heartbeat_timeout_secs = 1;
        c.sessions.ping_interval_secs = 60;
    })
    .await;

    let mut a = env.connect("ivy", "Android", "a").await;
    let Captured { target, body, .. } = hooks.next().await;
    assert!(target.starts_with("/im/callback?"), "{target}");
    assert!(target.contains(&format!("SdkAppid={APP}")), "{target}");
    assert!(
        target.contains("CallbackCommand=State.StateChange"),
        "{target}"
    );
    assert!(target.contains("OptPlatform=Android"), "{target}");
    assert!(target.contains("ClientIP=127.0.0.1"), "{target}");
    assert_eq!(body["CallbackCommand"], "State.StateChange");
    assert!(body["EventTime"]
        .as_u64()
        .is_some_and(|t| t > 1_600_000_000_000));
    assert_eq!(
        body["Info"],
        json!({"Action": "Login", "To_Account": "ivy", "Reason": "Register"})
    );
    assert!(body.get("KickedDevice").is_none());

    // A newer Android login kicks `a`: one Login with KickedDevice.
    let mut b = env.connect("ivy", "Android", "b").await;
    let Captured { body, .. } = hooks.next().await;
    assert_eq!(body["Info"]["Action"], "Login");
    assert_eq!(body["KickedDevice"], json!([{"Platform": "Android"}]));
    assert_eq!(next_of(&mut a, "kicked").await["type"], "kicked");

    send_json(&mut b, json!({"type": "logout"})).await;
    assert_eq!(next(&mut b).await["for"], "logout");
    let Captured { body, .. } = hooks.next().await;
    assert_eq!(
        body["Info"],
        json!({"Action": "Logout", "To_Account": "ivy", "Reason": "Unregister"})
    );

    let mut c = env.connect("ivy", "iPhone", "c").await;
    let Captured { target, body, .. } = hooks.next().await;
    assert_eq!(body["Info"]["Action"], "Login");
    assert!(target.contains("OptPlatform=IOS"), "{target}");
    c.close(None).await.expect("close");
    let Captured { body, .. } = hooks.next().await;
    assert_eq!(
        body["Info"],
        json!({"Action": "Disconnect", "To_Account": "ivy", "Reason": "LinkClose"})
    );

    let _silent = env.connect("ivy", "iPhone", "c").await;
    let Captured { body, .. } = hooks.next().await;
    assert_eq!(body["Info"]["Action"], "Login");
    let Captured { body, .. } = hooks.next().await;
    assert_eq!(
        body["Info"],
        json!({"Action": "Disconnect", "To_Account": "ivy", "Reason": "TimeOut"})
    );
    // The kick produced no Disconnect for `a` (its socket is closed by now).
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hooks.try_next().is_none(), "no further callbacks");
}
