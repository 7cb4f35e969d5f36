//! Durable token reports per second with group commit, in-process: the gateway's own
//! `report_token` (registry change, store write, answer after the group's fsync) from many
//! concurrent callers, without HTTP in the way. `loadtest/run` gives the same figure over HTTP.
//! Target (issue 2): ≥ 50,000 durable token reports/s.
//!
//! Sizes from the environment: `PUSHGATE_BENCH_TOKEN_REPORTS` (default 200,000) and
//! `PUSHGATE_BENCH_TOKEN_CONCURRENCY` (default 1024 callers). The store lives in a temp dir
//! under `CARGO_TARGET_DIR` (or `target/`), so it is on the same disk as a real data dir would
//! likely be. `cargo bench --bench token_reports`; under `cargo test` it runs a small size.

use pushgate::config::Config;
use pushgate::gateway::{SessionAction, SessionEvent};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

// The bench's own knobs, not gateway settings (.clippy.toml bans env reads elsewhere).
#[allow(clippy::disallowed_methods)]
fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn regid(i: usize) -> String {
    format!("lt{i:010}AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnop")
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full {
        env_usize("PUSHGATE_BENCH_TOKEN_REPORTS", 200_000)
    } else {
        2_000
    }
    .max(1);
    let concurrency = env_usize("PUSHGATE_BENCH_TOKEN_CONCURRENCY", 1024).max(1);
    #[allow(clippy::disallowed_methods)] // where cargo builds, to keep the bench's store there
    let base = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    std::fs::create_dir_all(&base).expect("target dir");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_path_buf(),
        admin_token: Some("bench-admin-token".into()),
        api_token: Some("bench-api-token".into()),
        // Nothing is sent: no message goes out in this bench.
        xiaomi_base_url: "http://127.0.0.1:9".into(),
        ..Config::default()
    };
    let server = pushgate::server::start(config).expect("gateway starts");
    let gw = server.gateway.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let input = serde_json::from_value(serde_json::json!({
            "vendor": "xiaomi", "package_name": "com.example.chat",
            "app_id": "2882303761517000000", "app_secret": "bench-secret",
            "click_action": {"type": "open_app"}, "qps": 100
        }))
        .expect("certificate input");
        let cert = gw
            .create_certificate(input)
            .await
            .expect("certificate")
            .cert()
            .id;

        let started = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let events = chunk
                .iter()
                .map(|i| SessionEvent {
                    user: format!("u{i}"),
                    platform: pushgate::domain::Platform::Android,
                    device: format!("a{i}"),
                    action: SessionAction::Login,
                    unread: None,
                })
                .collect();
            let results = gw.session_events(events).await;
            assert!(results.iter().all(|r| r.ok), "login refused");
        }
        let login_secs = started.elapsed().as_secs_f64();

        let m = gw.metrics();
        let (groups0, ops0) = (
            m.store_group_size.get_sample_count(),
            m.store_group_size.get_sample_sum(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (gw, next, errors) = (gw.clone(), next.clone(), errors.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let (u, d) = (format!("u{i}"), format!("a{i}"));
                        if gw
                            .report_token(&u, None, &d, cert, &regid(i))
                            .await
                            .is_err()
                        {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let secs = started.elapsed().as_secs_f64();
        let groups = m.store_group_size.get_sample_count() - groups0;
        let ops = m.store_group_size.get_sample_sum() - ops0;
        println!(
            "durable_token_reports reports={n} concurrency={concurrency} seconds={secs:.2} \
             reports_per_sec={:.0} errors={} commits={groups} mean_group={:.1} \
             login_events_per_sec={:.0} (target >= 50000 reports/s)",
            n as f64 / secs,
            errors.load(Ordering::Relaxed),
            if groups > 0 { ops / groups as f64 } else { 0.0 },
            n as f64 / login_secs,
        );
    });
    // Not `server.stop()`: it waits for the store writer, which the certificate senders keep
    // alive; the process exit ends everything (the temp dir is removed first).
    drop(dir);
}
