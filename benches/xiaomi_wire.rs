//! Xiaomi wire encoding and reply classification: the per-request CPU cost of the vendor path.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pushgate::domain::ClickAction;
use pushgate::providers::xiaomi::{classify, multi_form, regid_form, XiaomiApp, XiaomiMessage};

fn app() -> XiaomiApp {
    XiaomiApp {
        package_name: "com.example.chat".to_owned(),
        app_secret: "c2VjcmV0c2VjcmV0c2VjcmV0==".to_owned(),
    }
}

fn message(i: usize) -> XiaomiMessage {
    XiaomiMessage {
        title: format!("群聊 {i} · 张三"),
        description: "你好，今晚一起吃饭吗？🍜 Let's meet at 7.".repeat(3),
        notify_id: XiaomiMessage::notify_id_for(&format!("group_{i}")),
        channel_id: Some("101556".to_owned()),
        click: ClickAction::OpenApp,
        ext: Some(format!("{{\"conv\":\"group_{i}\",\"seq\":{i}}}")),
        payload: None,
        callback: None,
    }
}

fn wire(c: &mut Criterion) {
    let app = app();
    let msg = message(1);
    let regids: Vec<String> = (0..1000).map(|i| format!("regid{i:040}")).collect();
    let refs: Vec<&str> = regids.iter().map(String::as_str).collect();

    let mut group = c.benchmark_group("xiaomi_wire");
    for n in [1usize, 100, 1000] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("regid_form/{n}"), |b| {
            b.iter(|| regid_form(black_box(&app), black_box(&msg), black_box(&refs[..n])))
        });
    }
    let messages: Vec<XiaomiMessage> = (0..100).map(message).collect();
    let items: Vec<(&str, &XiaomiMessage)> = refs.iter().copied().zip(messages.iter()).collect();
    group.throughput(Throughput::Elements(items.len() as u64));
    group.bench_function("multi_form/100", |b| {
        b.iter(|| multi_form(black_box(&app), black_box(&items)))
    });
    group.finish();

    let ok = r#"{"result":"ok","trace_id":"Xcm07b77488763663927bm","code":0,"data":{"id":"scm01b20510561935064bK","bad_regids":"r1,r2,r3"},"description":"成功","info":"Received push messages for 997 REGID"}"#;
    let err = r#"{"result":"error","reason":"No valid targets!","trace_id":"Xcm07b77488763663927bm","code":20301,"description":"发送消息失败"}"#;
    c.bench_function("xiaomi_classify/delivered", |b| {
        b.iter(|| classify(200, black_box(ok.as_bytes())))
    });
    c.bench_function("xiaomi_classify/error", |b| {
        b.iter(|| classify(200, black_box(err.as_bytes())))
    });
    c.bench_function("xiaomi_notify_id_for", |b| {
        b.iter(|| XiaomiMessage::notify_id_for(black_box("group_@TGS#2AB3CDEFG")))
    });
}

criterion_group!(benches, wire);
criterion_main!(benches);
