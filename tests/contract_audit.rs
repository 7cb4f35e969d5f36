//! Points of shared/contract.md that an outside test checks and no other suite did: found by
//! auditing the running gateway against the contract (notes/contract-audit.md).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// contract.md "More push services": OPPO `category` (default `IM`), `notify_level` (default 2);
/// vivo `classification` (default 1), `category` (default `IM`); Meizu `notice_msg_type`
/// (default 1). A certificate saved without them shows the defaults it is sent with, as Huawei
/// (`category`) and Honor (`importance`) already did.
#[tokio::test]
async fn certificates_show_the_contracts_defaults() {
    let h = Harness::start().await;
    let common = json!({"package_name": PACKAGE, "click_action": {"type": "open_app"}, "qps": 5});
    let with = |vendor_part: Value| {
        let mut body = common.clone();
        for (k, v) in vendor_part.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (
            json!({"vendor": "oppo", "app_key": "k", "master_secret": "m"}),
            vec![("category", json!("IM")), ("notify_level", json!(2))],
        ),
        (
            json!({"vendor": "vivo", "app_id": "105562603", "app_key": "k", "app_secret": "s"}),
            vec![("classification", json!(1)), ("category", json!("IM"))],
        ),
        (
            json!({"vendor": "meizu", "app_id": "100999", "app_secret": "s"}),
            vec![("notice_msg_type", json!(1))],
        ),
        // What the certificate says wins; vivo's operational classification has no IM.
        (
            json!({"vendor": "oppo", "app_key": "k", "master_secret": "m",
                   "category": "ORDER", "notify_level": 16}),
            vec![("category", json!("ORDER")), ("notify_level", json!(16))],
        ),
        (
            json!({"vendor": "vivo", "app_id": "105562603", "app_key": "k", "app_secret": "s",
                   "classification": 0}),
            vec![("classification", json!(0)), ("category", Value::Null)],
        ),
        (
            json!({"vendor": "meizu", "app_id": "100999", "app_secret": "s", "notice_msg_type": 0}),
            vec![("notice_msg_type", json!(0))],
        ),
    ];
    for (vendor_part, expected) in cases {
        let (s, created) = h
            .admin(
                Method::POST,
                "/v1/certificates",
                Some(with(vendor_part.clone())),
            )
            .await;
        assert_eq!(s, 201, "{vendor_part}: {created}");
        let (s, got) = h
            .admin(
                Method::GET,
                &format!("/v1/certificates/{}", created["id"]),
                None,
            )
            .await;
        assert_eq!(s, 200);
        for view in [&created, &got] {
            for (field, value) in &expected {
                assert_eq!(&view[field], value, "{field} of {vendor_part}: {view}");
            }
        }
    }
}

/// A request (method, path, bearer token, MessagePack body) and the status and error code due.
type Case = (
    Method,
    &'static str,
    &'static str,
    Vec<u8>,
    u16,
    &'static str,
);

/// contract.md: MessagePack "carries the same structures", errors included; openapi.json:
/// "every answer asked for as MessagePack (`Accept: application/msgpack`)".
#[tokio::test]
async fn errors_come_as_messagepack_when_asked_for() {
    let h = Harness::start().await;
    let cert = h.certificate(5).await;
    let msgpack = |v: Value| rmp_serde::to_vec_named(&v).unwrap();
    let cases: Vec<Case> = vec![
        // Refused by the gateway: a field.
        (
            Method::POST,
            "/v1/messages",
            API,
            msgpack(json!({"to": [], "from": "carol", "text": "hi"})),
            400,
            "invalid_field",
        ),
        // Refused by the gateway: the state of the device.
        (
            Method::PUT,
            "/v1/push-tokens",
            API,
            msgpack(
                json!({"user": "alice", "platform": "Android", "device": "d1",
                           "certificate_id": cert, "token": "regid-1"}),
            ),
            409,
            "not_logged_in",
        ),
        // Refused while decoding the body.
        (
            Method::POST,
            "/v1/messages",
            API,
            vec![0xc1, 0x00],
            400,
            "malformed_body",
        ),
        // Refused by the bearer check.
        (
            Method::GET,
            "/v1/certificates",
            "not-the-admin-token",
            Vec::new(),
            401,
            "unauthorized",
        ),
        (
            Method::GET,
            "/v1/certificates/4242",
            ADMIN,
            Vec::new(),
            404,
            "unknown_certificate",
        ),
    ];
    for (method, path, token, body, status, code) in cases {
        let mut req = h
            .http
            .request(method.clone(), h.url(path))
            .bearer_auth(token)
            .header("accept", "application/msgpack");
        if !body.is_empty() {
            req = req.header("content-type", "application/msgpack").body(body);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/msgpack",
            "{method} {path}"
        );
        let v: Value = rmp_serde::from_slice(&r.bytes().await.unwrap())
            .unwrap_or_else(|e| panic!("{method} {path}: not MessagePack: {e}"));
        assert_eq!(v["error"]["code"], code, "{method} {path}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Without Accept: JSON, as before.
    let r = h
        .http
        .post(h.url("/v1/messages"))
        .bearer_auth(API)
        .header("content-type", "application/msgpack")
        .body(msgpack(json!({"to": [], "from": "carol", "text": "hi"})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["field"], "to");
}

/// The quality bar: a body member of the wrong type or value is a 400 naming it, however deep it
/// sits (`events[0].unread`), in JSON and in MessagePack; nothing changes.
#[tokio::test]
async fn a_body_member_of_the_wrong_type_is_named() {
    let h = Harness::start().await;
    let cases = [
        (
            "/v1/sessions/events",
            json!({"events": [{"user": "u", "platform": "Android", "device": "d1",
                               "action": "background", "unread": -1}]}),
            "events[0].unread",
        ),
        (
            "/v1/messages",
            json!({"to": "alice", "from": "carol", "text": "hi"}),
            "to",
        ),
        (
            "/v1/messages",
            json!({"to": ["alice"], "from": "carol", "text": "hi",
                   "offline_push": {"push_flag": "yes"}}),
            "offline_push.push_flag",
        ),
    ];
    for (path, body, field) in cases {
        let (s, v) = h.api(Method::POST, path, Some(body.clone())).await;
        assert_eq!(s, 400, "{path}: {v}");
        assert_eq!(v["error"]["code"], "malformed_body", "{path}: {v}");
        assert_eq!(v["error"]["field"], field, "{path}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap_or("").contains(field),
            "{path}: {v}"
        );
        let r = h
            .http
            .post(h.url(path))
            .bearer_auth(API)
            .header("content-type", "application/msgpack")
            .body(rmp_serde::to_vec_named(&body).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path} (MessagePack)");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["field"], field, "{path} (MessagePack): {v}");
    }
    // Nothing was logged in or sent.
    let (s, v) = h.api(Method::GET, "/v1/users/u", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["devices"], json!([]), "{v}");
}
