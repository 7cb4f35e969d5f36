//! Under a backlog a certificate's requests are as full as Xiaomi allows: a request is cut when
//! the token bucket grants its token, so notifications that queue meanwhile still join it.
//! (Before, the linger timer cut requests before their token, and qps=5 with 3,000 distinct
//! messages went out as ~230 requests of ~5 notifications, 1,182 delivered after 40 s.)

mod common;

use common::Harness;
use futures_util::stream::{self, StreamExt};
use pushgate::providers::xiaomi::emulator::Knobs;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const QPS: u32 = 5;
const BURST: u32 = 1;
const MESSAGES: usize = 3_000;
/// Recipients the messages are spread over (each message has one).
const USERS: usize = 30;
/// Xiaomi's mixed request carries up to 100 notifications of distinct content.
const FULL: usize = 100;

#[tokio::test]
async fn a_backlog_of_distinct_messages_goes_out_in_full_multi_requests() {
    let h = Harness::start_with(|c| {
        c.push.burst = BURST;
        // One request at a time, and none given up while Xiaomi hangs below.
        c.push.max_in_flight = 1;
        c.push.vendor_timeout_ms = 60_000;
    })
    .await;
    let cert = h.certificate(QPS).await;
    for u in 0..USERS {
        h.push_online(&format!("u{u}"), "d1", cert, &format!("regid-u{u}"))
            .await;
    }
    // Xiaomi holds the first request, so the backlog builds however fast this test can send
    // (a debug build accepts a few hundred messages a second, slower than the sender drains).
    h.emu.set_knobs(Knobs {
        hang: true,
        ..Knobs::default()
    });
    let h = &h;
    stream::iter(0..MESSAGES)
        .for_each_concurrent(64, |i| async move {
            let v = h
                .send(json!({"to":[format!("u{}", i % USERS)],"from":"bob","text":format!("message {i}")}))
                .await;
            assert_eq!(v["results"][0]["outcome"], "push_queued", "{v}");
        })
        .await;
    h.emu.set_knobs(Knobs::default());
    // 30 full requests at 5 per second take about 6 s; the bound only stops a hung run.
    let got = h.wait_received(MESSAGES, Duration::from_secs(40)).await;
    let records = h.emu.received();
    assert_eq!(got, MESSAGES, "every notification reaches Xiaomi");

    // One request per trace id: its notifications and when it arrived.
    let mut requests: BTreeMap<&str, (usize, u64, &str)> = BTreeMap::new();
    for r in &records {
        let e = requests
            .entry(&r.trace_id)
            .or_insert((0, r.received_at_ms, &r.endpoint));
        e.0 += 1;
        e.1 = e.1.min(r.received_at_ms);
    }
    let sizes: Vec<usize> = requests.values().map(|(n, _, _)| *n).collect();
    let full = sizes.iter().filter(|n| **n == FULL).count();
    eprintln!("{} requests, {full} of {FULL}: {sizes:?}", requests.len());
    // 30 requests of 100 is the floor; a few partial ones while the backlog builds are fine.
    assert!(
        requests.len() <= MESSAGES / FULL + 6,
        "{} requests, sizes {sizes:?}",
        requests.len()
    );
    assert!(
        full >= MESSAGES / FULL - 6,
        "{full} full requests: {sizes:?}"
    );
    assert!(
        requests
            .values()
            .filter(|(n, _, _)| *n > 1)
            .all(|(_, _, endpoint)| *endpoint == "/v2/multi_messages/regids"),
        "distinct content goes in multi requests"
    );

    // Frequency control still holds: no 1-second window above qps + burst.
    let mut times: Vec<u64> = requests.values().map(|(_, t, _)| *t).collect();
    times.sort_unstable();
    // The first request took its token before the hang; Xiaomi records it when released.
    times.remove(0);
    let busiest = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t < times[i] + 1000)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        busiest <= (QPS + BURST) as usize,
        "{busiest} requests in one second at qps {QPS} + burst {BURST}: {times:?}"
    );

    // Each recipient got each of its messages exactly once.
    let mut per_user: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        *per_user.entry(&r.regid).or_default() += 1;
    }
    assert_eq!(per_user.len(), USERS);
    assert!(
        per_user.values().all(|n| *n == MESSAGES / USERS),
        "{per_user:?}"
    );
}
