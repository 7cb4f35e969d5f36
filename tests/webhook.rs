//! The State.StateChange webhook against a real HTTP receiver on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::webhook::{Reply, WebhookReceiver};
use pushgate::session::webhook::{StateAction, StateChange, WebhookSender, WebhookStats};
use serde_json::json;
use tokio::net::TcpListener;

const APP: u64 = 1_400_000_000;

fn event(user: &str, platform: &str, action: StateAction, ip: Option<&str>) -> StateChange {
    StateChange {
        user: user.into(),
        platform: platform.into(),
        action,
        client_ip: ip.map(str::to_owned),
        event_time_ms: 1_700_000_000_123,
    }
}

async fn wait_for_stats(
    sender: &WebhookSender,
    done: impl Fn(&WebhookStats) -> bool,
) -> WebhookStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = sender.stats();
        if done(&stats) || Instant::now() > deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn each_action_arrives_with_tencents_query_and_body() {
    let mut receiver = WebhookReceiver::start(Reply::Ok).await;
    let sender = WebhookSender::start(
        receiver.url("/im/callback"),
        APP,
        64,
        Duration::from_secs(2),
    );

    let events = [
        event(
            "u-login-kick",
            "Android",
            StateAction::Login {
                kicked: vec!["Windows".into(), "ios".into()],
            },
            Some("10.1.2.3"),
        ),
        event(
            "u-login",
            "iOS",
            StateAction::Login { kicked: vec![] },
            Some("10.1.2.4"),
        ),
        event("u-logout", "Web", StateAction::Logout, None),
        event(
            "u-close",
            "iPad",
            StateAction::DisconnectLinkClose,
            Some("10.1.2.5"),
        ),
        event(
            "u-timeout",
            "Mac",
            StateAction::DisconnectTimeout,
            Some("10.1.2.6"),
        ),
    ];
    for ev in &events {
        assert!(sender.notify(ev.clone()));
    }

    let mut seen = Vec::new();
    for _ in 0..events.len() {
        seen.push(receiver.next().await);
    }
    // Requests run concurrently; match them up by user.
    seen.sort_by_key(|c| {
        c.body["Info"]["To_Account"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    });
    let by_user = |user: &str| {
        seen.iter()
            .find(|c| c.body["Info"]["To_Account"] == user)
            .unwrap_or_else(|| panic!("no request for {user}: {seen:?}"))
    };

    let query = |ip: &str, opt: &str| {
        format!(
            "/im/callback?SdkAppid=1400000000&CallbackCommand=State.StateChange&contenttype=json&ClientIP={ip}&OptPlatform={opt}"
        )
    };
    let expected = [
        (
            "u-login-kick",
            query("10.1.2.3", "Android"),
            json!({"CallbackCommand":"State.StateChange","EventTime":1_700_000_000_123u64,
                   "Info":{"Action":"Login","To_Account":"u-login-kick","Reason":"Register"},
                   "KickedDevice":[{"Platform":"Windows"},{"Platform":"iOS"}]}),
        ),
        (
            "u-login",
            // State.StateChange is the one callback that writes iOS as IOS.
            query("10.1.2.4", "IOS"),
            json!({"CallbackCommand":"State.StateChange","EventTime":1_700_000_000_123u64,
                   "Info":{"Action":"Login","To_Account":"u-login","Reason":"Register"}}),
        ),
        (
            "u-logout",
            query("", "Web"),
            json!({"CallbackCommand":"State.StateChange","EventTime":1_700_000_000_123u64,
                   "Info":{"Action":"Logout","To_Account":"u-logout","Reason":"Unregister"}}),
        ),
        (
            "u-close",
            query("10.1.2.5", "iPad"),
            json!({"CallbackCommand":"State.StateChange","EventTime":1_700_000_000_123u64,
                   "Info":{"Action":"Disconnect","To_Account":"u-close","Reason":"LinkClose"}}),
        ),
        (
            "u-timeout",
            query("10.1.2.6", "Mac"),
            json!({"CallbackCommand":"State.StateChange","EventTime":1_700_000_000_123u64,
                   "Info":{"Action":"Disconnect","To_Account":"u-timeout","Reason":"TimeOut"}}),
        ),
    ];
    for (user, target, body) in expected {
        let got = by_user(user);
        assert_eq!(got.method, "POST", "{user}");
        assert_eq!(got.target, target, "{user}");
        assert_eq!(got.body, body, "{user}");
        assert_eq!(
            got.content_type.as_deref(),
            Some("application/json"),
            "{user}"
        );
    }

    let stats = wait_for_stats(&sender, |s| s.sent == 5).await;
    assert_eq!(
        stats,
        WebhookStats {
            sent: 5,
            ..WebhookStats::default()
        }
    );
}

#[tokio::test]
async fn a_url_with_its_own_query_keeps_it() {
    let mut receiver = WebhookReceiver::start(Reply::Ok).await;
    let sender = WebhookSender::start(
        receiver.url("/cb?token=abc"),
        APP,
        8,
        Duration::from_secs(2),
    );
    assert!(sender.notify(event(
        "bob",
        "Android",
        StateAction::Logout,
        Some("1.2.3.4")
    )));
    let got = receiver.next().await;
    assert_eq!(
        got.target,
        "/cb?token=abc&SdkAppid=1400000000&CallbackCommand=State.StateChange&contenttype=json&ClientIP=1.2.3.4&OptPlatform=Android"
    );
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_blocking() {
    let receiver = WebhookReceiver::start(Reply::Hang).await;
    let sender = WebhookSender::start(receiver.url("/cb"), APP, 2, Duration::from_secs(30));

    // On this single-threaded runtime the sending task cannot run during the loop, so exactly
    // the queue's capacity is accepted.
    let started = Instant::now();
    let accepted = (0..100)
        .filter(|i| {
            sender.notify(event(
                &format!("u{i}"),
                "Android",
                StateAction::Logout,
                None,
            ))
        })
        .count();
    let elapsed = started.elapsed();

    assert_eq!(accepted, 2);
    assert_eq!(sender.stats().dropped_queue_full, 98);
    assert!(
        elapsed < Duration::from_millis(200),
        "notify blocked: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_never_blocks_callers() {
    let mut receiver = WebhookReceiver::start(Reply::Hang).await;
    let sender = WebhookSender::start(receiver.url("/cb"), APP, 4, Duration::from_secs(30));
    // Let the first requests reach the receiver and hang there.
    for i in 0..8 {
        sender.notify(event(
            &format!("warm{i}"),
            "Android",
            StateAction::Logout,
            None,
        ));
    }
    receiver.next().await;

    let started = Instant::now();
    let accepted = (0..1000)
        .filter(|i| {
            sender.notify(event(
                &format!("u{i}"),
                "Android",
                StateAction::Logout,
                None,
            ))
        })
        .count();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    // Four in flight, one waiting for a slot, four queued: nothing else fits.
    assert!(accepted <= 9, "accepted {accepted}");
    assert!(sender.stats().dropped_queue_full >= 1000 - 9);
}

#[tokio::test]
async fn failures_are_counted_not_retried() {
    // Error status.
    let mut receiver = WebhookReceiver::start(Reply::Status(500)).await;
    let sender = WebhookSender::start(receiver.url("/cb"), APP, 8, Duration::from_secs(2));
    assert!(sender.notify(event("a", "Android", StateAction::Logout, None)));
    receiver.next().await;
    let stats = wait_for_stats(&sender, |s| s.failed == 1).await;
    assert_eq!((stats.sent, stats.failed), (0, 1));
    // No retry arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.try_next().is_none());

    // Timeout.
    let mut receiver = WebhookReceiver::start(Reply::Hang).await;
    let sender = WebhookSender::start(receiver.url("/cb"), APP, 8, Duration::from_millis(200));
    assert!(sender.notify(event("a", "Android", StateAction::Logout, None)));
    receiver.next().await;
    let stats = wait_for_stats(&sender, |s| s.failed == 1).await;
    assert_eq!((stats.sent, stats.failed), (0, 1));

    // Nobody listening.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let sender = WebhookSender::start(format!("http://{addr}/cb"), APP, 8, Duration::from_secs(2));
    assert!(sender.notify(event("a", "Android", StateAction::Logout, None)));
    let stats = wait_for_stats(&sender, |s| s.failed == 1).await;
    assert_eq!((stats.sent, stats.failed), (0, 1));
}

#[tokio::test]
async fn disabled_sender_sends_nothing() {
    let sender = WebhookSender::disabled();
    assert!(!sender.is_enabled());
    assert!(sender.notify(event("a", "Android", StateAction::Logout, None)));
    assert_eq!(sender.stats(), WebhookStats::default());
}

#[tokio::test]
async fn exported_request_counts_match_the_stats() {
    let requests = prometheus::IntCounterVec::new(
        prometheus::Opts::new("webhook_requests_total", "requests by result"),
        &["result"],
    )
    .expect("metric");
    let count = |result: &str| requests.with_label_values(&[result]).get();

    let mut receiver = WebhookReceiver::start(Reply::Ok).await;
    let sender = WebhookSender::start(receiver.url("/cb"), APP, 8, Duration::from_secs(2));
    sender.export_requests(&requests);
    assert!(sender.notify(event("a", "Android", StateAction::Logout, None)));
    receiver.next().await;
    wait_for_stats(&sender, |s| s.sent == 1).await;
    assert_eq!((count("ok"), count("failed")), (1, 0));

    let mut receiver = WebhookReceiver::start(Reply::Status(503)).await;
    let sender = WebhookSender::start(receiver.url("/cb"), APP, 8, Duration::from_secs(2));
    sender.export_requests(&requests);
    assert!(sender.notify(event("a", "Android", StateAction::Logout, None)));
    receiver.next().await;
    wait_for_stats(&sender, |s| s.failed == 1).await;
    assert_eq!((count("ok"), count("failed")), (1, 1));
}
