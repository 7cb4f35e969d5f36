//! Issue 14: what a hostile client or a careless operator could do to the gateway, each case a
//! defect that was found and fixed (see the README's reliability section).

mod common;

use common::{Harness, API};
use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::MaybeTlsStream;

/// Samples of the HTTP request counter whose method label is `method`.
fn http_series_with_method(metrics: &str, method: &str) -> usize {
    let label = format!("method=\"{method}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("pushgate_http_requests_total{") && l.contains(&label))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_http_methods_share_one_metric_label() {
    let h = Harness::start().await;
    let before = h.metrics().await.len();
    for i in 0..200 {
        let method = reqwest::Method::from_bytes(format!("M{i:08}XYZ").as_bytes()).unwrap();
        let s = h
            .http
            .request(method, h.url("/nope"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, 404);
    }
    let metrics = h.metrics().await;
    assert!(
        !metrics.contains("M00000001XYZ"),
        "a client-chosen method became a label"
    );
    assert_eq!(http_series_with_method(&metrics, "other"), 1, "{metrics}");
    assert!(
        metrics.contains(r#"route="unmatched""#) && metrics.contains(r#"status="404""#),
        "the requests are still counted"
    );
    // 200 made-up methods add one counter and one histogram, not 200 of each.
    assert!(
        metrics.len() < before + 4_000,
        "/metrics grew from {before} to {} bytes",
        metrics.len()
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_the_store_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::builder()
        .certificate(common::cert_body(10))
        .start()
        .await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // The certificate (with its secret) is in the store by now.
    assert_eq!(mode(h.dir.path()), 0o700, "data dir");
    assert_eq!(mode(&h.dir.path().join("store")), 0o700, "store dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_msgpack_body_with_trailing_bytes_is_refused_and_changes_nothing() {
    let h = Harness::start().await;
    let event =
        json!({"events":[{"user":"alice","platform":"Android","device":"d1","action":"login"}]});
    let mut body = rmp_serde::to_vec_named(&event).unwrap();
    body.extend_from_slice(b"\xc0junk");
    let res = h
        .http
        .post(h.url("/v1/sessions/events"))
        .bearer_auth(API)
        .header("content-type", "application/msgpack")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "malformed_body", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trailing bytes"),
        "{v}"
    );
    assert!(
        h.server.gateway.device_view("alice", "d1").is_err(),
        "the refused body changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_websocket_connection_is_a_lost_link_not_a_protocol_error() {
    let h = Harness::start_with(|c| c.http.workers = 1).await;
    let url = format!(
        "ws://{}/v1/ws?sdkappid={}&identifier=alice&usersig={}&platform=Android&device=d1",
        h.server.addr,
        common::SDKAPPID,
        h.usersig_key().generate("alice", 3600)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Let the session register before the reset.
    let deadline = Instant::now() + common::WAIT;
    while h
        .server
        .gateway
        .device_view("alice", "d1")
        .map(|v| v.state != pushgate::gateway::UserStatus::Online)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "never Online");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = tokio::time::timeout(Duration::from_millis(100), ws.next()).await;
    match ws.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.set_zero_linger().unwrap(),
        _ => unreachable!("plain ws://"),
    }
    // Dropping a socket with SO_LINGER 0 sends RST instead of FIN.
    drop(ws);
    let deadline = Instant::now() + common::WAIT;
    loop {
        let m = h.metrics().await;
        let lost = common::metric(
            &m,
            "pushgate_ws_disconnects_total",
            r#"reason="link_close""#,
        );
        let protocol = common::metric(
            &m,
            "pushgate_ws_disconnects_total",
            r#"reason="protocol_error""#,
        );
        assert_eq!(protocol, 0.0, "a reset counted as a protocol error");
        if lost == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the reset was not counted: {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        h.server
            .gateway
            .device_view("alice", "d1")
            .unwrap()
            .state
            .to_string(),
        "PushOnline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_named_500_times_gets_one_notification_and_one_result() {
    let h = Harness::builder()
        .certificate(common::cert_body(1000))
        .start()
        .await;
    h.killed("alice", "d1").await;
    let to: Vec<&str> = std::iter::repeat_n("alice", 499).chain(["bob"]).collect();
    let v = h
        .send(json!({"to": to, "from": "carol", "text": "hi", "detail": true}))
        .await;
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{v}");
    assert_eq!(results[0]["user"], "alice");
    assert_eq!(results[0]["outcome"], "push_queued");
    assert_eq!(results[1]["user"], "bob");
    let pushes = h.wait_pushes(&common::regid("alice"), 1).await;
    // Give repeats, if any were sent, time to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pushes.len(), 1);
    assert_eq!(
        h.emu.received().len(),
        1,
        "one notification for one recipient"
    );
    let m = h.metrics().await;
    assert_eq!(
        common::metric(&m, "pushgate_recipients_total", r#"outcome="push_queued""#),
        1.0
    );
    // The limit still counts the list as sent.
    let (s, v) = h
        .api(
            reqwest::Method::POST,
            "/v1/messages",
            Some(json!({"to": std::iter::repeat_n("alice", 501).collect::<Vec<_>>(), "from": "carol", "text": "hi"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "too_many_recipients");
    assert_eq!(v["error"]["field"], "to");
}

/// `(device, token_bound)` of each of `user`'s devices, from the API.
async fn bound(h: &Harness, user: &str) -> Vec<(String, bool)> {
    let (s, v) = h
        .api(reqwest::Method::GET, &format!("/v1/users/{user}"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let mut out: Vec<(String, bool)> = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device"].as_str().unwrap().to_string(),
                d["token_bound"].as_bool().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_moved_between_two_devices_of_one_user_stays_moved_after_a_restart() {
    let h = Harness::builder()
        .certificate(common::cert_body(1000))
        .start()
        .await;
    let cert = h.cert();
    // Two platforms, so the default per-platform policy kicks neither.
    h.push_online("alice", "phone", cert, "regid-shared").await;
    h.events(json!([{"user":"alice","platform":"iPad","device":"tablet","action":"login"}]))
        .await;
    let (s, v) = h
        .api(
            reqwest::Method::PUT,
            "/v1/push-tokens",
            Some(json!({"user":"alice","platform":"iPad","device":"tablet","certificate_id":cert,"token":"regid-shared"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    h.events(json!([{"user":"alice","platform":"iPad","device":"tablet","action":"disconnect"}]))
        .await;
    let want = vec![("phone".to_string(), false), ("tablet".to_string(), true)];
    assert_eq!(bound(&h, "alice").await, want);

    let h = h.restart().await;
    assert_eq!(bound(&h, "alice").await, want, "after the restart");
    let m = h.metrics().await;
    assert_eq!(common::metric(&m, "pushgate_push_tokens_bound", ""), 1.0);
    let v = h
        .send(json!({"to": ["alice"], "from": "carol", "text": "hi"}))
        .await;
    assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
    let pushes = h.wait_pushes("regid-shared", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pushes.len(), 1);
    assert_eq!(
        h.emu.received().len(),
        1,
        "one message, one notification (not one per device holding the token)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_may_not_open_more_devices_than_the_setting_allows() {
    let h = Harness::start_with(|c| {
        c.sessions.max_devices_per_user = 3;
        c.sessions.multi_device_policy = pushgate::domain::policy::MultiDevicePolicy::Multi;
    })
    .await;
    for d in ["d1", "d2", "d3"] {
        assert_eq!(h.event("mallory", d, "login").await["ok"], true);
    }
    let (s, v) = h
        .api(
            reqwest::Method::POST,
            "/v1/sessions/events",
            Some(json!({"events":[{"user":"mallory","platform":"Android","device":"d4","action":"login"}]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let r = &v["results"][0];
    assert_eq!(r["ok"], false, "{v}");
    assert_eq!(r["error"]["code"], "too_many_devices", "{v}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_devices_per_user"),
        "the error names the setting: {v}"
    );
    assert_eq!(bound(&h, "mallory").await.len(), 3, "nothing was added");
    // A device already known logs in again freely.
    assert_eq!(h.event("mallory", "d2", "logout").await["ok"], true);
    assert_eq!(h.event("mallory", "d2", "login").await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_app_refuses_unknown_fields_as_open_url_does() {
    let h = Harness::start().await;
    for action in [
        json!({"type": "open_app", "url": "https://example.com"}),
        json!({"type": "open_url", "url": "https://example.com", "x": 1}),
    ] {
        let (s, v) = h
            .admin(
                reqwest::Method::POST,
                "/v1/certificates",
                Some(common::cert_body_with(
                    10,
                    json!({ "click_action": action }),
                )),
            )
            .await;
        assert_eq!(s, 400, "{action}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown field"),
            "{v}"
        );
    }
    let (s, v) = h
        .admin(reqwest::Method::GET, "/v1/certificates", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["certificates"].as_array().unwrap().len(), 0);
    let (s, v) = h
        .admin(
            reqwest::Method::POST,
            "/v1/certificates",
            Some(common::cert_body(10)),
        )
        .await;
    assert_eq!(s, 201, "plain open_app still works: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_do_not_restart_the_retention_of_a_device_that_was_online() {
    let h = Harness::start().await;
    assert_eq!(h.event("alice", "d1", "login").await["state"], "Online");
    let since = |h: &Harness| {
        let v = h.server.gateway.device_view("alice", "d1").unwrap();
        assert_eq!(v.state.to_string(), "PushOnline");
        v.push_online_since.expect("push_online_since")
    };
    // The first start after the crash is when its connection was lost.
    let h = h.restart().await;
    let first = since(&h);
    // Unix seconds: make sure a later start would be a later second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let h = h.restart().await;
    assert_eq!(since(&h), first, "the second restart kept the clock");
}

/// Defect 2: a `logout` and a `login` of one device at the same moment reach the disk in the
/// order memory saw them. 1,500 concurrent pairs, then a restart: every device comes back in the
/// state it had in memory (before the fix, a few logged-out devices came back `PushOnline` or
/// logged-in ones `Offline`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logout_and_login_of_one_device_reach_the_disk_in_memory_order() {
    const PAIRS: usize = 1500;
    let h = Harness::start().await;
    let user = |i: usize| format!("pair{i}");
    let logins: Vec<_> = (0..PAIRS)
        .map(|i| json!({"user": user(i), "platform": "Android", "device": "d1", "action": "login"}))
        .collect();
    for chunk in logins.chunks(500) {
        h.events(json!(chunk)).await;
    }
    let one = |i: usize, action: &'static str| {
        let h = &h;
        let u = user(i);
        async move {
            let (s, v) = h
                .api(
                    reqwest::Method::POST,
                    "/v1/sessions/events",
                    Some(json!({"events":[{"user":u,"platform":"Android","device":"d1","action":action}]})),
                )
                .await;
            assert_eq!(s, 200, "{v}");
        }
    };
    let requests = (0..PAIRS).flat_map(|i| [one(i, "logout"), one(i, "login")]);
    futures_util::stream::iter(requests)
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let states = |h: &Harness| -> Vec<String> {
        (0..PAIRS)
            .map(|i| {
                h.server
                    .gateway
                    .device_view(&user(i), "d1")
                    .map(|v| v.state.to_string())
                    .unwrap_or_else(|e| e.to_string())
            })
            .collect()
    };
    let before = states(&h);
    let h = h.restart().await;
    let after = states(&h);
    let differ: Vec<String> = (0..PAIRS)
        .filter(|i| before[*i] != after[*i])
        // A device Online before the restart is PushOnline after it (its connection is gone).
        .filter(|i| !(before[*i] == "Online" && after[*i] == "PushOnline"))
        .map(|i| format!("{}: {} before, {} after", user(i), before[i], after[i]))
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
}
