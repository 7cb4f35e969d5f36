//! Fault injection (issue 14): the vendor emulator's knobs turned against a running gateway. For
//! each fault: the API keeps answering while it lasts, and every accepted notification ends in a
//! counted, labelled outcome (`pushgate_notifications_total`) that diagnosis shows per device.

mod common;

use common::{cert_body, cert_body_with, Harness};
use pushgate::providers::xiaomi::emulator::Knobs;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const USERS: usize = 12;

/// The sum of `pushgate_notifications_total` over every outcome, and the outcomes seen.
fn finished(metrics: &str) -> (f64, Vec<String>) {
    let mut sum = 0.0;
    let mut outcomes = Vec::new();
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("pushgate_notifications_total{"))
    {
        let v: f64 = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if v > 0.0 {
            sum += v;
            outcomes.push(l.to_string());
        }
    }
    (sum, outcomes)
}

/// Starts a gateway with `cert` and the emulator's `knobs`, sends one message to each of
/// `USERS` killed devices, and checks the promises; returns the outcome lines.
async fn under_fault(
    what: &str,
    tweak: impl FnOnce(&mut pushgate::config::Config),
    cert: Value,
    knobs: Knobs,
) -> Vec<String> {
    let h = Harness::builder()
        .config(|c| {
            c.push.max_attempts = 2;
            c.push.vendor_timeout_ms = 1_000;
        })
        .config(tweak)
        .certificate(cert)
        .start()
        .await;
    for i in 0..USERS {
        h.killed(&format!("u{i}"), "d1").await;
    }
    h.emu.set_knobs(knobs);
    for i in 0..USERS {
        let v = h
            .send(json!({"to": [format!("u{i}")], "from": "carol", "text": format!("m{i}")}))
            .await;
        let outcome = &v["results"][0]["outcome"];
        assert!(
            outcome == "push_queued" || outcome == "skipped",
            "{what}: {v}"
        );
    }
    // The API answers while the fault lasts.
    for path in ["/healthz", "/v1/users/u0", "/v1/users/u0/diagnosis"] {
        let (s, v) = h.api(Method::GET, path, None).await;
        assert_eq!(s, 200, "{what}: {path} {v}");
    }
    let m = h.metrics().await;
    let skipped = common::metric(
        &m,
        "pushgate_skipped_total",
        "reason=\"certificate_broken\"",
    ) + common::metric(&m, "pushgate_skipped_total", "reason=\"quota_paused\"");
    let deadline = Instant::now() + Duration::from_secs(30);
    let outcomes = loop {
        let (n, outcomes) = finished(&h.metrics().await);
        if n + skipped >= USERS as f64 {
            assert_eq!(n + skipped, USERS as f64, "{what}: {outcomes:?}");
            break outcomes;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {n} of {USERS} notifications finished: {outcomes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Diagnosis names the end of each notification that was queued.
    for i in 0..USERS {
        let (s, d) = h
            .api(Method::GET, &format!("/v1/users/u{i}/diagnosis"), None)
            .await;
        assert_eq!(s, 200, "{d}");
        let last = &d["devices"][0]["last_notification"]["class"];
        let checks = d["checks"].to_string();
        assert!(
            last.is_string() || checks.contains("broken") || checks.contains("paused"),
            "{what}: u{i} has no labelled outcome in diagnosis: {d}"
        );
    }
    h.emu.set_knobs(Knobs::default());
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_5xx() {
    under_fault(
        "30% 5xx",
        |_| {},
        cert_body(100),
        Knobs {
            error_5xx_ratio: 0.3,
            ..Knobs::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_vendor() {
    let o = under_fault(
        "hang",
        |_| {},
        cert_body(100),
        Knobs {
            hang: true,
            ..Knobs::default()
        },
    )
    .await;
    assert!(
        o.iter().all(|l| !l.contains("outcome=\"delivered\"")),
        "{o:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_vendor_within_the_timeout() {
    under_fault(
        "latency",
        |_| {},
        cert_body(100),
        Knobs {
            latency_ms: 300,
            ..Knobs::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_storm() {
    under_fault(
        "rate limit",
        |c| c.push.multi_batch = 1,
        cert_body(100),
        Knobs {
            qps_limit: Some(2),
            ..Knobs::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_quota_used_up() {
    under_fault(
        "daily quota",
        |c| c.push.multi_batch = 1,
        cert_body(100),
        Knobs {
            daily_quota: Some(3),
            ..Knobs::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials() {
    let o = under_fault(
        "auth failure",
        |_| {},
        cert_body_with(100, json!({"app_secret": "d3Jvbmctc2VjcmV0"})),
        Knobs::default(),
    )
    .await;
    assert!(
        o.iter().all(|l| !l.contains("outcome=\"delivered\"")),
        "{o:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_unreachable() {
    let o = under_fault(
        "unreachable",
        |c| c.xiaomi_base_url = "http://127.0.0.1:9".into(),
        cert_body(100),
        Knobs::default(),
    )
    .await;
    assert!(
        o.iter().all(|l| !l.contains("outcome=\"delivered\"")),
        "{o:?}"
    );
}

/// The webhook receiver is down: sessions go on, and each failed callback is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_down() {
    let h = Harness::builder()
        .webhook("http://127.0.0.1:9/im/callback")
        .certificate(cert_body(100))
        .start()
        .await;
    for i in 0..5 {
        h.killed(&format!("w{i}"), "d1").await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = h.metrics().await;
        let failed = common::metric(&m, "pushgate_webhook_requests_total", "result=\"failed\"");
        let queued = common::metric(&m, "pushgate_webhooks_total", "result=\"queued\"");
        if queued > 0.0 && failed >= queued {
            break;
        }
        // Sessions over HTTP send no State.StateChange; a WebSocket session does.
        assert!(
            Instant::now() < deadline,
            "webhook failures not counted: failed {failed}, queued {queued}"
        );
        let url = format!(
            "ws://{}/v1/ws?sdkappid={}&identifier=w0&usersig={}&platform=Android&device=d1",
            h.server.addr,
            common::SDKAPPID,
            h.usersig_key().generate("w0", 3600)
        );
        if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await {
            let _ = ws.close(None).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, _) = h.api(Method::GET, "/v1/users/w0", None).await;
    assert_eq!(s, 200);
}
