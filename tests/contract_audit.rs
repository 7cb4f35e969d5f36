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
