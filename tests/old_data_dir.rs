//! A data dir written by the gateway at commit 71a8754 (before the push-service seam) loads
//! unchanged: its certificate still sends (the stored secret works against the emulator) and
//! its killed device still gets the notification.
//!
//! The fixture was made by that commit's binary: one Xiaomi certificate (id 1001, the test
//! package and secret of tests/common, open_url click action, channel 101556, qps 50); alice's
//! device d1 logged in, reported token `regid-alice-from-71a8754`, then disconnected.

mod common;

use common::{emulator, ADMIN, API};
use pushgate::server::start;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// A gzipped tar of the data dir as that binary left it (a tar keeps fjall's empty directories, which
/// git would drop); made by tests/fixtures/make-datadir-71a8754.sh.
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/datadir-71a8754.tar.gz"
);

fn unpack(tar: &str, to: &Path) {
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(tar)
        .arg("-C")
        .arg(to)
        .status()
        .expect("run tar");
    assert!(status.success(), "unpacking {tar}");
}

async fn get(http: &reqwest::Client, url: String, token: &str) -> Value {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_data_dir_of_the_previous_release_loads_and_sends() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    unpack(FIXTURE, dir.path());
    let mut config = common::config(dir.path(), &emu.base_url());
    // The fixture's device went PushOnline when it was made; keep it so for this test.
    config.sessions.push_online_retention_secs = 100 * 365 * 86_400;
    let server = start(config).unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let list = get(&http, server.url("/v1/certificates"), ADMIN).await;
    let certs = list["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 1, "{list}");
    let c = &certs[0];
    assert_eq!(c["id"], 1001);
    assert_eq!(c["vendor"], "xiaomi");
    assert_eq!(c["package_name"], common::PACKAGE);
    assert_eq!(c["app_id"], "2882303761517");
    assert_eq!(c["channel_id"], "101556");
    assert_eq!(c["qps"], 50);
    assert_eq!(
        c["click_action"],
        json!({"type":"open_url","url":"https://example.com/chat"})
    );
    assert!(c.get("app_secret").is_none(), "never the secret: {c}");

    let user = get(&http, server.url("/v1/users/alice"), API).await;
    assert!(user.to_string().contains("PushOnline"), "{user}");

    let r = http
        .post(server.url("/v1/messages"))
        .bearer_auth(API)
        .json(&json!({"to":["alice"],"from":"bob","text":"still here"}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
    let t0 = std::time::Instant::now();
    let got = loop {
        let got = emu.received();
        if !got.is_empty() || t0.elapsed() > Duration::from_secs(10) {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        got.len(),
        1,
        "the stored secret and token still send: {got:#?}"
    );
    assert_eq!(got[0].regid, "regid-alice-from-71a8754");
    assert_eq!(got[0].description, "still here");
    assert_eq!(
        got[0].extras.get("web_uri").map(String::as_str),
        Some("https://example.com/chat")
    );
}
