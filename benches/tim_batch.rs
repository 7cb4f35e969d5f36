//! batchsendmsg with 500 recipients: translation (JSON body → TIM rules → `SendRequest`) and
//! routing (dedupe window, registry, per-certificate push queues), in-process through the /v4
//! module's functions — no HTTP. The gateway is a real one (`server::start`, store on a temp
//! dir, senders pointed at a permissive Xiaomi emulator). Recipients: 300 `PushOnline` with a
//! token, 100 `Online` (connection held by the IM cluster), 100 logged out.
//!
//! Prints "recipients routed per second" from a fixed run, then criterion's figure.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pushgate::api::v4::dedupe::DedupeWindow;
use pushgate::api::v4::sendmsg::batch_with_stats;
use pushgate::config::Config;
use pushgate::domain::validate::CertificateInput;
use pushgate::domain::Platform;
use pushgate::gateway::{Gateway, SessionAction, SessionEvent};
use pushgate::providers::xiaomi::emulator::{self, EmulatorConfig};
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

const RECIPIENTS: usize = 500;

fn event(user: &str, action: SessionAction) -> SessionEvent {
    SessionEvent {
        user: user.into(),
        platform: Platform::Android,
        device: "d1".into(),
        action,
        unread: None,
    }
}

fn setup(rt: &tokio::runtime::Runtime) -> (Arc<Gateway>, Vec<String>) {
    let emu = emulator::start(
        EmulatorConfig::permissive(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_path_buf(),
        admin_token: Some("bench-admin-token".into()),
        api_token: Some("bench-api-token".into()),
        xiaomi_base_url: emu.base_url(),
        ..Config::default()
    };
    let server = pushgate::server::start(config).expect("gateway");
    let gw = server.gateway.clone();
    let users: Vec<String> = (0..RECIPIENTS).map(|i| format!("用户-{i:04}")).collect();
    rt.block_on(async {
        let cert = gw
            .create_certificate(
                serde_json::from_value::<CertificateInput>(serde_json::json!({
                    "vendor": "xiaomi",
                    "package_name": "com.example.chat",
                    "app_id": "2882303761517",
                    "app_secret": "bench-secret",
                    "click_action": {"type": "open_app"},
                    "channel_id": "default",
                    "qps": 100_000
                }))
                .expect("certificate body"),
            )
            .await
            .expect("certificate");
        let id = cert.cert().id;
        let logins = users
            .iter()
            .map(|u| event(u, SessionAction::Login))
            .collect();
        gw.session_events(logins).await;
        let mut later = Vec::new();
        for (i, u) in users.iter().enumerate() {
            match i % 5 {
                0..=2 => {
                    gw.report_token(u, None, "d1", id, &format!("regid-{i:04}-abcdefghijklmnop"))
                        .await
                        .expect("token");
                    later.push(event(u, SessionAction::Disconnect));
                }
                3 => {}
                _ => later.push(event(u, SessionAction::Logout)),
            }
        }
        gw.session_events(later).await;
    });
    // Both keep running for the life of the bench process.
    std::mem::forget(server);
    std::mem::forget(emu);
    std::mem::forget(dir);
    (gw, users)
}

fn body(users: &[String], random: u32) -> Vec<u8> {
    serde_json::json!({
        "From_Account": "system",
        "To_Account": users,
        "MsgRandom": random,
        "MsgBody": [
            {"MsgType": "TIMTextElem", "MsgContent": {"Text": "今晚八点直播 🎬"}},
            {"MsgType": "TIMImageElem", "MsgContent": {"UUID": "u1", "ImageFormat": 1, "ImageInfoArray": []}}
        ],
        "OfflinePushInfo": {"Title": "直播提醒", "Ext": "{\"entity\":{\"action\":1}}",
                            "AndroidInfo": {"XiaoMiChannelID": "high_system"}}
    })
    .to_string()
    .into_bytes()
}

/// One batch from bytes: parse, translate, route. Returns the recipients routed.
fn one(gw: &Gateway, window: &DedupeWindow, bytes: &[u8]) -> usize {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(bytes) else {
        panic!("bench body is a JSON object");
    };
    let (reply, stats) =
        batch_with_stats(gw, window, "administrator", &obj, bytes.len()).expect("batch");
    assert_eq!(reply.code, 0);
    stats.routed
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (gw, users) = setup(&rt);
    let random = AtomicU32::new(1);
    let window = DedupeWindow::default();

    // A fixed run for the headline figure (bodies built beforehand: a new MsgRandom each, or
    // the dedupe window would answer instead of routing).
    let bodies: Vec<Vec<u8>> = (0..200)
        .map(|_| body(&users, random.fetch_add(1, Ordering::Relaxed)))
        .collect();
    let started = Instant::now();
    let routed: usize = bodies.iter().map(|b| one(&gw, &window, b)).sum();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "tim_batch: {} batches x {RECIPIENTS} recipients: {routed} routed in {secs:.3} s = {:.0} recipients routed per second",
        bodies.len(),
        routed as f64 / secs
    );

    let mut g = c.benchmark_group("tim_batch");
    g.throughput(Throughput::Elements(RECIPIENTS as u64));
    g.bench_function("batchsendmsg_500", |b| {
        b.iter_batched(
            || body(&users, random.fetch_add(1, Ordering::Relaxed)),
            |bytes| one(&gw, &window, &bytes),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
