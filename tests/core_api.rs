//! The native /v1 API over real sockets: certificates, auth, session transitions, token rules,
//! per-recipient outcomes, bad input, restart from disk.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn certificate_crud_and_validation() {
    let h = Harness::start().await;
    let id = h.certificate(500).await;
    assert!(id >= 1001);

    let (s, v) = h
        .admin(Method::GET, &format!("/v1/certificates/{id}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["package_name"], PACKAGE);
    assert_eq!(v["app_secret_set"], true);
    assert!(
        v.get("app_secret").is_none(),
        "the secret must never come back: {v}"
    );
    assert!(!v.to_string().contains(SECRET));
    assert_eq!(v["status"]["state"], "healthy");

    // Each bad field is named, and nothing is created.
    let cases = [
        (
            json!({"click_action": {"type": "open_url", "url": "ftp://x"}}),
            "click_action.url",
        ),
        (
            json!({"click_action": {"type": "open_activity", "intent_uri": "Detail"}}),
            "click_action.intent_uri",
        ),
        (json!({"package_name": "chat"}), "package_name"),
        (json!({"app_id": "abc"}), "app_id"),
        (json!({"qps": 0}), "qps"),
        (json!({"app_secret": ""}), "app_secret"),
    ];
    for (patch, field) in cases {
        let body = cert_body_with(10, patch);
        let (s, v) = h.admin(Method::POST, "/v1/certificates", Some(body)).await;
        assert_eq!(s, 400, "{field}: {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 10);
    }
    // Unknown click action type and unknown field: 400 naming it.
    let mut body = cert_body(10);
    body["click_action"] = json!({"type": "open_door"});
    let (s, v) = h.admin(Method::POST, "/v1/certificates", Some(body)).await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("open_door"),
        "{v}"
    );
    let mut body = cert_body(10);
    body["colour"] = json!("red");
    let (s, v) = h.admin(Method::POST, "/v1/certificates", Some(body)).await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("colour"),
        "{v}"
    );
    let (_, list) = h.admin(Method::GET, "/v1/certificates", None).await;
    assert_eq!(list["certificates"].as_array().unwrap().len(), 1);

    // Edit without the secret keeps it; qps changes.
    let mut body = cert_body(42);
    body.as_object_mut().unwrap().remove("app_secret");
    body["click_action"] = json!({"type": "open_url", "url": "https://example.com/chat"});
    let (s, v) = h
        .admin(Method::PUT, &format!("/v1/certificates/{id}"), Some(body))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["qps"], 42);
    assert_eq!(v["app_secret_set"], true);
    assert_eq!(v["click_action"]["url"], "https://example.com/chat");

    let (s, _) = h
        .admin(Method::DELETE, &format!("/v1/certificates/{id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, v) = h
        .admin(Method::GET, &format!("/v1/certificates/{id}"), None)
        .await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "unknown_certificate");
    let (s, _) = h.admin(Method::GET, "/v1/certificates/abc", None).await;
    assert_eq!(s, 400);
    // Ids are not reused.
    assert!(h.certificate(10).await > id);
}

#[tokio::test]
async fn every_endpoint_checks_its_token() {
    let h = Harness::start().await;
    let admin_only = [
        (Method::POST, "/v1/certificates"),
        (Method::GET, "/v1/certificates"),
        (Method::GET, "/v1/certificates/1001"),
        (Method::PUT, "/v1/certificates/1001"),
        (Method::DELETE, "/v1/certificates/1001"),
    ];
    let api_only = [
        (Method::POST, "/v1/sessions/events"),
        (Method::PUT, "/v1/push-tokens"),
        (Method::DELETE, "/v1/push-tokens"),
        (Method::POST, "/v1/messages"),
    ];
    let either = [
        (Method::GET, "/v1/users/alice"),
        (Method::GET, "/v1/users/alice/diagnosis"),
    ];
    let body = Some(json!({}));
    for (m, p) in admin_only
        .iter()
        .chain(api_only.iter())
        .chain(either.iter())
    {
        for token in [None, Some("wrong-token-123")] {
            let (s, v) = h.req(m.clone(), p, token, body.clone()).await;
            assert_eq!(s, 401, "{m} {p} with {token:?}: {v}");
            assert_eq!(v["error"]["code"], "unauthorized");
        }
    }
    for (m, p) in &admin_only {
        let (s, _) = h.req(m.clone(), p, Some(API), body.clone()).await;
        assert_eq!(s, 401, "{m} {p} must refuse the API token");
    }
    for (m, p) in &api_only {
        let (s, _) = h.req(m.clone(), p, Some(ADMIN), body.clone()).await;
        assert_eq!(s, 401, "{m} {p} must refuse the admin token");
    }
    for (m, p) in &either {
        for t in [ADMIN, API] {
            let (s, _) = h.req(m.clone(), p, Some(t), None).await;
            assert_eq!(s, 200, "{m} {p}");
        }
    }
}

#[tokio::test]
async fn session_events_walk_every_transition() {
    let h = Harness::start().await;
    let state = |v: &Value| v["state"].as_str().unwrap_or("").to_string();
    assert_eq!(state(&h.event("alice", "d1", "login").await), "Online");
    let r = h.event("alice", "d1", "background").await;
    assert_eq!(state(&r), "Online");
    let (_, u) = h.api(Method::GET, "/v1/users/alice", None).await;
    assert_eq!(u["devices"][0]["background"], true);
    assert_eq!(state(&h.event("alice", "d1", "foreground").await), "Online");
    assert_eq!(
        state(&h.event("alice", "d1", "disconnect").await),
        "PushOnline"
    );
    // Background needs a connection: refused, nothing changes.
    let r = h.event("alice", "d1", "background").await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["code"], "not_connected");
    let (_, u) = h.api(Method::GET, "/v1/users/alice", None).await;
    assert_eq!(u["devices"][0]["state"], "PushOnline");
    assert_eq!(u["status"], "PushOnline");
    // Reconnect, then logout.
    assert_eq!(state(&h.event("alice", "d1", "login").await), "Online");
    assert_eq!(state(&h.event("alice", "d1", "logout").await), "Offline");
    let (_, u) = h.api(Method::GET, "/v1/users/alice", None).await;
    assert_eq!(u["devices"][0]["offline_reason"], "logged_out");
    // Kicked.
    h.event("alice", "d1", "login").await;
    assert_eq!(state(&h.event("alice", "d1", "kicked").await), "Offline");
    // A newer login on the same platform kicks the older device.
    h.event("bob", "phone1", "login").await;
    let r = h.event("bob", "phone2", "login").await;
    assert_eq!(r["kicked"][0]["device"], "phone1");
    let (_, u) = h.api(Method::GET, "/v1/users/bob", None).await;
    let p1 = u["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "phone1")
        .unwrap()
        .clone();
    assert_eq!(p1["state"], "Offline");
    assert_eq!(p1["offline_reason"], "kicked");
    // A web client that disconnects is Offline, not PushOnline.
    let (_, v) = h
        .api(
            Method::POST,
            "/v1/sessions/events",
            Some(json!({"events":[
                {"user":"carol","platform":"Web","device":"tab","action":"login"},
                {"user":"carol","platform":"Web","device":"tab","action":"disconnect"},
                {"user":"carol","platform":"Android","device":"nope","action":"logout"}
            ]})),
        )
        .await;
    assert_eq!(v["results"][1]["state"], "Offline");
    assert_eq!(v["results"][2]["ok"], false);
    assert_eq!(v["results"][2]["error"]["code"], "unknown_device");
    // An unknown action value changes nothing at all.
    let (s, v) = h
        .api(
            Method::POST,
            "/v1/sessions/events",
            Some(json!({"events":[
                {"user":"dave","platform":"Android","device":"d","action":"login"},
                {"user":"dave","platform":"Android","device":"d","action":"explode"}
            ]})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("explode"));
    let (_, u) = h.api(Method::GET, "/v1/users/dave", None).await;
    assert_eq!(u["devices"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn token_rules_and_the_reverse_index() {
    let h = Harness::start().await;
    let cert = h.certificate(100).await;
    // Before login: 409 not_logged_in (TIM 21005).
    let (s, v) = h.token("alice", "d1", cert, "regid-a").await;
    assert_eq!(s, 409);
    assert_eq!(v["error"]["code"], "not_logged_in");
    assert_eq!(v["error"]["tim_code"], 21005);
    h.event("alice", "d1", "login").await;
    let (s, v) = h.token("alice", "d1", 999_999, "regid-a").await;
    assert_eq!((s, v["error"]["tim_code"].clone()), (400, json!(22001)));
    let (s, v) = h.token("alice", "d1", cert, "").await;
    assert_eq!((s, v["error"]["tim_code"].clone()), (400, json!(22003)));
    let (s, v) = h.token("alice", "d1", cert, &"x".repeat(257)).await;
    assert_eq!((s, v["error"]["tim_code"].clone()), (400, json!(22004)));
    // A report naming another platform than the device's is refused and binds nothing.
    let (s, v) = h
        .api(
            Method::PUT,
            "/v1/push-tokens",
            Some(json!({"user":"alice","platform":"iOS","device":"d1","certificate_id":cert,"token":"regid-a-0123456789"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "platform_mismatch");
    assert_eq!(v["error"]["field"], "platform");
    let (_, a) = h.api(Method::GET, "/v1/users/alice", None).await;
    assert_eq!(a["devices"][0]["token_bound"], false);
    let (s, v) = h.token("alice", "d1", cert, "regid-a-0123456789").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_bound"], true);
    assert_eq!(v["state"], "Online");
    assert_eq!(v["certificate_id"], cert);
    assert!(
        !v.to_string().contains("regid-a-0123456789"),
        "the token must not come back in full"
    );
    // The same token reported by bob moves to bob.
    h.event("bob", "b1", "login").await;
    let (s, _) = h.token("bob", "b1", cert, "regid-a-0123456789").await;
    assert_eq!(s, 200);
    let (_, a) = h.api(Method::GET, "/v1/users/alice", None).await;
    assert_eq!(a["devices"][0]["token_bound"], false);
    let (_, b) = h.api(Method::GET, "/v1/users/bob", None).await;
    assert_eq!(b["devices"][0]["token_bound"], true);
    h.server.gateway.check_invariants().unwrap();
    // Disabling push unbinds.
    let (s, v) = h
        .api(
            Method::DELETE,
            "/v1/push-tokens",
            Some(json!({"user":"bob","device":"b1"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["token_bound"], false);
}

#[tokio::test]
async fn per_recipient_outcomes() {
    let h = Harness::start().await;
    let cert = h.certificate(1000).await;
    h.push_online("killed", "d1", cert, "regid-killed").await;
    h.event("online", "d1", "login").await;
    h.event("gone", "d1", "login").await;
    h.event("gone", "d1", "logout").await;
    h.event("notoken", "d1", "login").await;
    h.event("notoken", "d1", "disconnect").await;
    let v = h
        .send(json!({"to":["killed","online","gone","notoken","stranger"],"from":"carol","text":"hi"}))
        .await;
    let r: Vec<(String, String, String)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap().into(),
                r["outcome"].as_str().unwrap().into(),
                r["reason"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        r,
        vec![
            ("killed".into(), "push_queued".into(), "".into()),
            ("online".into(), "online".into(), "".into()),
            ("gone".into(), "skipped".into(), "logged_out".into()),
            ("notoken".into(), "skipped".into(), "no_push_token".into()),
            ("stranger".into(), "skipped".into(), "unknown_user".into()),
        ]
    );
    let v = h
        .send(json!({"to":["killed"],"from":"carol","text":"hi","offline_push":{"push_flag":1}}))
        .await;
    assert_eq!(v["results"][0]["reason"], "push_flag_disabled");
    assert!(
        v["results"][0].get("devices").is_none(),
        "no per-device detail unless asked"
    );
    // With detail, each device's outcome.
    let v = h
        .send(json!({"to":["killed","gone"],"from":"carol","text":"hi","detail":true}))
        .await;
    assert_eq!(v["results"][0]["devices"][0]["device"], "d1");
    assert_eq!(v["results"][0]["devices"][0]["outcome"], "push_queued");
    assert_eq!(v["results"][1]["devices"][0]["reason"], "logged_out");
    let m = h.metrics().await;
    assert!(metric(&m, "pushgate_skipped_total", "reason=\"logged_out\"") >= 1.0);
    assert!(metric(&m, "pushgate_recipients_total", "outcome=\"push_queued\"") >= 1.0);
}

#[tokio::test]
async fn message_limits_and_bad_bodies() {
    let h = Harness::start_with(|c| {
        c.http.max_recipients = 3;
        c.http.body_limit_bytes = 4096;
    })
    .await;
    let (s, v) = h
        .api(
            Method::POST,
            "/v1/messages",
            Some(json!({"to":["a","b","c","d"],"from":"x","text":"hi"})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["code"], "too_many_recipients");
    let (s, v) = h
        .api(
            Method::POST,
            "/v1/messages",
            Some(json!({"to":[],"from":"x","text":"hi"})),
        )
        .await;
    assert_eq!((s, v["error"]["field"].clone()), (400, json!("to")));
    let (s, v) = h
        .api(
            Method::POST,
            "/v1/messages",
            Some(json!({"to":["a"],"from":"x","text":"hi","offline_push":{"push_flag":7}})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].clone()),
        (400, json!("offline_push.push_flag"))
    );
    // Malformed JSON, wrong content type, oversized body.
    for (ct, body, want) in [
        ("application/json", "{\"to\":[", 400),
        ("text/plain", "hello", 415),
        (
            "application/json",
            &*format!("{{\"to\":[\"{}\"]}}", "x".repeat(5000)),
            413,
        ),
    ] {
        let r = h
            .http
            .post(h.url("/v1/messages"))
            .bearer_auth(API)
            .header("content-type", ct)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, want, "{ct}: {v}");
        assert!(v["error"]["code"].is_string(), "{v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    // Unknown route.
    let (s, v) = h.api(Method::GET, "/v1/nothing", None).await;
    assert_eq!((s, v["error"]["code"].clone()), (404, json!("not_found")));
}

#[tokio::test]
async fn messagepack_in_and_out() {
    let h = Harness::start().await;
    h.event("alice", "d1", "login").await;
    #[derive(serde::Serialize)]
    struct Send<'a> {
        to: Vec<&'a str>,
        from: &'a str,
        text: &'a str,
    }
    let body = rmp_serde::to_vec_named(&Send {
        to: vec!["alice"],
        from: "bob",
        text: "你好",
    })
    .unwrap();
    let r = h
        .http
        .post(h.url("/v1/messages"))
        .bearer_auth(API)
        .header("content-type", "application/msgpack")
        .header("accept", "application/msgpack")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/msgpack");
    let v: Value = rmp_serde::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["results"][0]["outcome"], "online");
    // Garbage MessagePack: 400.
    let r = h
        .http
        .post(h.url("/v1/messages"))
        .bearer_auth(API)
        .header("content-type", "application/msgpack")
        .body(vec![0xc1, 0x00, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn restart_from_disk_keeps_state() {
    let h = Harness::start().await;
    let cert = h.certificate(77).await;
    h.push_online("killed", "d1", cert, "regid-killed").await;
    h.event("live", "d1", "login").await;
    h.token("live", "d1", cert, "regid-live").await;
    h.event("out", "d1", "login").await;
    h.event("out", "d1", "logout").await;
    let h = h.restart().await;
    let (_, v) = h
        .admin(Method::GET, &format!("/v1/certificates/{cert}"), None)
        .await;
    assert_eq!(v["qps"], 77);
    let state = |v: &Value| v["devices"][0]["state"].as_str().unwrap().to_string();
    let (_, k) = h.api(Method::GET, "/v1/users/killed", None).await;
    assert_eq!(state(&k), "PushOnline");
    assert_eq!(k["devices"][0]["token_bound"], true);
    // Its connection is gone: a device that was Online comes back PushOnline, token kept.
    let (_, l) = h.api(Method::GET, "/v1/users/live", None).await;
    assert_eq!(state(&l), "PushOnline");
    assert_eq!(l["devices"][0]["token_bound"], true);
    let (_, o) = h.api(Method::GET, "/v1/users/out", None).await;
    assert_eq!(state(&o), "Offline");
    // New ids continue after the old ones.
    assert!(h.certificate(5).await > cert);
    // And the restored device still gets its notification.
    let v = h
        .send(json!({"to":["killed"],"from":"x","text":"after restart"}))
        .await;
    assert_eq!(v["results"][0]["outcome"], "push_queued");
    assert_eq!(
        h.wait_received(1, std::time::Duration::from_secs(5)).await,
        1
    );
    h.server.gateway.check_invariants().unwrap();
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let h = Harness::start().await;
    let (s, _) = h.req(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, 200);
    let (s, _) = h.req(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, 200);
    h.event("alice", "d1", "login").await;
    let m = h.metrics().await;
    assert!(m.contains("pushgate_http_requests_total{method=\"POST\",route=\"/v1/sessions/events\",status=\"200\"}"), "{m}");
    assert_eq!(metric(&m, "pushgate_devices", "state=\"online\""), 1.0);
    assert!(m.contains("pushgate_store_commit_duration_seconds_bucket"));
    assert!(!m.contains("alice"), "no user ids in metrics");
}
