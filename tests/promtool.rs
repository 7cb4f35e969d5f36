//! `/metrics` passes `promtool check metrics` (Prometheus' own linter: names, help, types,
//! units, counter suffixes). The gateway runs in-process against the Xiaomi emulator and serves
//! a few real requests first, so every histogram and labelled series has samples to lint.
//!
//! The alert rules pass `promtool check config` (through config/prometheus.yml, which loads
//! them) and their unit tests, `promtool test rules config/alerts_test.yml`.
//!
//! promtool comes from Debian's `prometheus` package; without it this test fails, it does not
//! skip: `apt-get install -y prometheus`.

use pushgate::config::Config;
use pushgate::providers::xiaomi::emulator::{self, EmulatorApp, EmulatorConfig};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PKG: &str = "com.example.chat";
const SECRET: &str = "promtool-secret";

fn promtool() -> std::path::PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "promtool is not installed, so /metrics cannot be checked; \
             install it with `apt-get install -y prometheus` (Debian's package ships /usr/bin/promtool)"
        )
    })
}

/// Runs promtool with `args` from the repository root; fails with its output unless it succeeds.
fn run_promtool(args: &[&str]) {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_config_and_alert_rules_are_valid() {
    run_promtool(&["check", "config", "config/prometheus.yml"]);
    run_promtool(&["check", "rules", "config/alerts.yml"]);
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    run_promtool(&["test", "rules", "config/alerts_test.yml"]);
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let res = http
        .request(method, url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let bytes = res.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_check() {
    let promtool = promtool();
    let emu = emulator::start(
        EmulatorConfig {
            apps: vec![EmulatorApp::new(PKG, SECRET)],
            ..EmulatorConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .expect("emulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_path_buf(),
        admin_token: Some("admin-token-promtool".into()),
        api_token: Some("api-token-promtool".into()),
        xiaomi_base_url: emu.base_url(),
        ..Config::default()
    };
    let gw = pushgate::server::start(config).expect("gateway starts");
    let http = reqwest::Client::new();
    let (admin, api) = (gw.admin_token.clone(), gw.api_token.clone());
    use reqwest::Method;

    let (status, cert) = call(
        &http,
        Method::POST,
        gw.url("/v1/certificates"),
        &admin,
        json!({"vendor": "xiaomi", "package_name": PKG, "app_id": "2882303761517000000",
               "app_secret": SECRET, "click_action": {"type": "open_app"}, "qps": 100}),
    )
    .await;
    assert_eq!(status, 201, "{cert}");
    let cert_id = cert["id"].as_u64().expect("certificate id");
    let event = |action: &str| json!({"events": [{"user": "alice", "platform": "Android", "device": "d1", "action": action}]});
    let (status, _) = call(
        &http,
        Method::POST,
        gw.url("/v1/sessions/events"),
        &api,
        event("login"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &http,
        Method::PUT,
        gw.url("/v1/push-tokens"),
        &api,
        json!({"user": "alice", "platform": "Android", "device": "d1",
               "certificate_id": cert_id, "token": "regid-alice-d1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(
        &http,
        Method::POST,
        gw.url("/v1/sessions/events"),
        &api,
        event("disconnect"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &http,
        Method::POST,
        gw.url("/v1/messages"),
        &api,
        json!({"to": ["alice", "nobody"], "from": "carol", "text": "hi"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A 4xx too, so error statuses appear as label values.
    let (status, _) = call(&http, Method::GET, gw.url("/v1/nothing"), &api, json!({})).await;
    assert_eq!(status, 404);

    // Wait for the notification to reach the emulator so the vendor series have samples.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = http
            .get(gw.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        if text.contains("pushgate_notifications_total{") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        text.contains("pushgate_notifications_total{"),
        "no notification was finished within 10 s:\n{text}"
    );

    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics found problems:\n{report}\n--- metrics ---\n{text}"
    );
    // No `gw.stop()`: RunningServer::stop waits for the store writer, which outlives it while
    // the certificate senders hold store handles; the process exit ends everything.
    drop(gw);
}
