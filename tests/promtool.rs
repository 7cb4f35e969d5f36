//! `/metrics` passes `promtool check metrics` (Prometheus' own linter: names, help, types,
//! units, counter suffixes). The gateway runs in-process against the Xiaomi emulator and serves
//! a few real requests first, so every histogram and labelled series has samples to lint.
//!
//! The alert rules pass `promtool check config` (through config/prometheus.yml, which loads
//! them) and their unit tests, `promtool test rules config/alerts_test.yml`.
//!
//! promtool comes from Debian's `prometheus` package; without it this test fails, it does not
//! skip: `apt-get install -y prometheus`.

mod common;

use common::Harness;
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn promtool() -> std::path::PathBuf {
    common::on_path("promtool").unwrap_or_else(|| {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_check() {
    let promtool = promtool();
    let h = Harness::start().await;
    let cert = h.certificate(100).await;
    h.push_online("alice", "d1", cert, "regid-alice-d1").await;
    h.send(json!({"to": ["alice", "nobody"], "from": "carol", "text": "hi"}))
        .await;
    // A 4xx too, so error statuses appear as label values.
    let (status, _) = h.api(reqwest::Method::GET, "/v1/nothing", None).await;
    assert_eq!(status, 404);

    // Wait for the notification to reach the emulator so the vendor series have samples.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = h.metrics().await;
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
}
