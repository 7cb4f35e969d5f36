//! The `State.StateChange` webhook: tells the IM application when a user's device logs in, logs
//! out or loses its connection, with Tencent's exact request shape (spec/tim-offline-push.md §5.3)
//! so that an existing callback receiver keeps working.
//!
//! Callers hand events to a bounded queue and never wait: a session actor must not stall on a
//! slow receiver. One task drains the queue with a few requests in flight. Like Tencent's
//! after-event callbacks, a failed request is not retried; it is counted and logged.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};

/// Tencent's callback timeout (§5.3); the receiver has this long to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Requests in flight at once. Enough to ride out one slow answer; few enough that a struggling
/// receiver is not hammered — beyond this, events wait in the queue and then are dropped.
pub const MAX_IN_FLIGHT: usize = 4;

const CALLBACK_COMMAND: &str = "State.StateChange";

/// What happened to the device. Each maps to Tencent's `Action` and `Reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateAction {
    /// `Login`/`Register`; `kicked` lists the platforms of the devices this login pushed out.
    Login { kicked: Vec<String> },
    /// `Logout`/`Unregister`.
    Logout,
    /// `Disconnect`/`LinkClose`: the connection closed without a logout.
    DisconnectLinkClose,
    /// `Disconnect`/`TimeOut`: the heartbeat timed out.
    DisconnectTimeout,
}

impl StateAction {
    fn action_and_reason(&self) -> (&'static str, &'static str) {
        match self {
            StateAction::Login { .. } => ("Login", "Register"),
            StateAction::Logout => ("Logout", "Unregister"),
            StateAction::DisconnectLinkClose => ("Disconnect", "LinkClose"),
            // Tencent's current spelling; the old docs had `Timeout` (§5.3).
            StateAction::DisconnectTimeout => ("Disconnect", "TimeOut"),
        }
    }
}

/// One event for the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub user: String,
    /// The device's platform as the client named it (`Android`, `iOS`, ...).
    pub platform: String,
    pub action: StateAction,
    /// The client's address, when known; sent as `ClientIP` (empty when unknown).
    pub client_ip: Option<String>,
    /// When it happened, unix milliseconds; sent as `EventTime`.
    pub event_time_ms: u64,
}

impl StateChange {
    /// An event that happens now.
    pub fn now(
        user: impl Into<String>,
        platform: impl Into<String>,
        action: StateAction,
        client_ip: Option<String>,
    ) -> Self {
        let event_time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        StateChange {
            user: user.into(),
            platform: platform.into(),
            action,
            client_ip,
            event_time_ms,
        }
    }

    /// The query string Tencent sends with this callback.
    fn query(&self, sdkappid: u64) -> String {
        let sdkappid = sdkappid.to_string();
        let pairs = [
            ("SdkAppid", sdkappid.as_str()),
            ("CallbackCommand", CALLBACK_COMMAND),
            ("contenttype", "json"),
            ("ClientIP", self.client_ip.as_deref().unwrap_or("")),
            ("OptPlatform", opt_platform(&self.platform)),
        ];
        // Encoding a list of string pairs cannot fail.
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The JSON body Tencent sends with this callback.
    fn body(&self) -> Vec<u8> {
        let (action, reason) = self.action.action_and_reason();
        let kicked = match &self.action {
            StateAction::Login { kicked } if !kicked.is_empty() => Some(
                kicked
                    .iter()
                    .map(|p| KickedDevice {
                        platform: device_platform(p),
                    })
                    .collect(),
            ),
            _ => None,
        };
        let body = Body {
            callback_command: CALLBACK_COMMAND,
            event_time: self.event_time_ms,
            info: Info {
                action,
                to_account: &self.user,
                reason,
            },
            kicked_device: kicked,
        };
        // A struct of strings and integers always serializes.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "CallbackCommand")]
    callback_command: &'static str,
    #[serde(rename = "EventTime")]
    event_time: u64,
    #[serde(rename = "Info")]
    info: Info<'a>,
    #[serde(rename = "KickedDevice", skip_serializing_if = "Option::is_none")]
    kicked_device: Option<Vec<KickedDevice<'a>>>,
}

#[derive(Serialize)]
struct Info<'a> {
    #[serde(rename = "Action")]
    action: &'static str,
    #[serde(rename = "To_Account")]
    to_account: &'a str,
    #[serde(rename = "Reason")]
    reason: &'static str,
}

#[derive(Serialize)]
struct KickedDevice<'a> {
    #[serde(rename = "Platform")]
    platform: Cow<'a, str>,
}

/// `OptPlatform` of the query string. Tencent's set is RESTAPI, Web, Android, iOS, Windows, Mac,
/// iPad, Unknown — and State.StateChange alone writes iOS as upper-case `IOS` (§5.3).
fn opt_platform(platform: &str) -> &'static str {
    const KNOWN: [(&str, &str); 8] = [
        ("ios", "IOS"),
        ("iphone", "IOS"),
        ("android", "Android"),
        ("web", "Web"),
        ("windows", "Windows"),
        ("mac", "Mac"),
        ("ipad", "iPad"),
        ("restapi", "RESTAPI"),
    ];
    KNOWN
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(platform))
        .map_or("Unknown", |(_, opt)| opt)
}

/// `KickedDevice[].Platform`: Tencent's spelling of a known platform (this field writes `iOS`),
/// anything else as the client gave it.
fn device_platform(platform: &str) -> Cow<'_, str> {
    const KNOWN: [(&str, &str); 8] = [
        ("ios", "iOS"),
        ("iphone", "iOS"),
        ("android", "Android"),
        ("web", "Web"),
        ("windows", "Windows"),
        ("mac", "Mac"),
        ("ipad", "iPad"),
        ("linux", "Linux"),
    ];
    KNOWN
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(platform))
        .map_or(Cow::Borrowed(platform), |(_, canonical)| {
            Cow::Borrowed(canonical)
        })
}

/// Counters of what became of the events handed to [`WebhookSender::notify`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Answered with a 2xx status.
    pub sent: u64,
    /// Sent but not answered with 2xx: connection error, timeout or error status.
    pub failed: u64,
    /// Refused by `notify` because the queue was full.
    pub dropped_queue_full: u64,
    /// Refused by `notify` because the sending task had stopped (runtime shutting down).
    pub dropped_closed: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_closed: AtomicU64,
    /// `pushgate_webhook_requests_total{result="ok"|"failed"}`, once the gateway exports them.
    exported: std::sync::OnceLock<[prometheus::IntCounter; 2]>,
}

/// Sends `State.StateChange` callbacks in the background. Cheap to clone; all clones feed the
/// same queue.
#[derive(Clone)]
pub struct WebhookSender {
    /// The queue into the sending task; `None` when no webhook is configured.
    queue: Option<mpsc::Sender<StateChange>>,
    /// Shared with the sending task, which counts outcomes there.
    counters: Arc<Counters>,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender")
            .field("enabled", &self.is_enabled())
            .field("stats", &self.stats())
            .finish()
    }
}

impl WebhookSender {
    /// Starts the sending task for callbacks to `url` (which may carry a query string of its
    /// own), with room for `queue_capacity` waiting events and `timeout` per request
    /// ([`DEFAULT_TIMEOUT`] is Tencent's).
    ///
    /// # Panics
    /// Outside a tokio runtime. Start it from a runtime that outlives the HTTP workers (the
    /// main one), not from inside a worker.
    pub fn start(url: String, sdkappid: u64, queue_capacity: usize, timeout: Duration) -> Self {
        let client = match reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
        {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the HTTP client; State.StateChange webhook disabled");
                return WebhookSender::disabled();
            }
        };
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel(queue_capacity.max(1));
        tokio::spawn(drain(rx, client, url, sdkappid, counters.clone()));
        WebhookSender {
            queue: Some(tx),
            counters,
        }
    }

    /// A sender for when no webhook URL is configured: accepts and discards every event.
    pub fn disabled() -> Self {
        WebhookSender {
            queue: None,
            counters: Arc::new(Counters::default()),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues `ev` without waiting. Returns false only when the event was dropped (queue full,
    /// or the sending task gone), which is counted in [`WebhookStats`]; a disabled sender
    /// returns true.
    pub fn notify(&self, ev: StateChange) -> bool {
        let Some(queue) = &self.queue else {
            return true;
        };
        match queue.try_send(ev) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(ev)) => {
                let n = self
                    .counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                tracing::debug!(user = %ev.user, "State.StateChange queue full, event dropped");
                if n == 1 || n % 1000 == 0 {
                    tracing::warn!(
                        dropped = n,
                        "State.StateChange webhook queue full; events are being dropped"
                    );
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.counters.dropped_closed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("State.StateChange webhook stopped, event dropped");
                false
            }
        }
    }

    /// Also counts every finished request in `requests` (label `result`: `ok` or `failed`).
    pub fn export_requests(&self, requests: &prometheus::IntCounterVec) {
        let _ = self
            .counters
            .exported
            .set(["ok", "failed"].map(|result| requests.with_label_values(&[result])));
    }

    pub fn stats(&self) -> WebhookStats {
        let c = &self.counters;
        WebhookStats {
            sent: c.sent.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
            dropped_closed: c.dropped_closed.load(Ordering::Relaxed),
        }
    }
}

/// The sending task: takes events off the queue and sends each in its own task, at most
/// [`MAX_IN_FLIGHT`] at once. Ends when every `WebhookSender` clone is dropped.
async fn drain(
    mut queue: mpsc::Receiver<StateChange>,
    client: reqwest::Client,
    url: String,
    sdkappid: u64,
    counters: Arc<Counters>,
) {
    let separator = if url.contains('?') { '&' } else { '?' };
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(ev) = queue.recv().await {
        // The semaphore is never closed, so this only waits.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let request = client
            .post(format!("{url}{separator}{}", ev.query(sdkappid)))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(ev.body());
        let counters = counters.clone();
        tokio::spawn(async move {
            let outcome = send(request).await;
            drop(slot);
            match outcome {
                Ok(()) => {
                    // Exported first, so whoever sees the stats sees the metric too.
                    if let Some([ok, _]) = counters.exported.get() {
                        ok.inc();
                    }
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(problem) => {
                    if let Some([_, failed]) = counters.exported.get() {
                        failed.inc();
                    }
                    let n = counters.failed.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::debug!(user = %ev.user, %problem, "State.StateChange webhook failed");
                    // Without the user; rate-limited so a dead receiver does not flood the log.
                    if n == 1 || n % 1000 == 0 {
                        tracing::warn!(%problem, failed = n, "State.StateChange webhook failed");
                    }
                }
            }
        });
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<(), String> {
    // `without_url`: the URL carries the client's IP, which stays out of warn-level logs.
    let response = request
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = response.status();
    // Read the reply so the connection can be reused; its content does not change anything,
    // as after-event callbacks have no effect on the event.
    let _ = response.bytes().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("receiver answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(action: StateAction, platform: &str) -> StateChange {
        StateChange {
            user: "alice".into(),
            platform: platform.into(),
            action,
            client_ip: Some("10.0.0.1".into()),
            event_time_ms: 1_629_883_332_497,
        }
    }

    fn body_json(ev: &StateChange) -> serde_json::Value {
        serde_json::from_slice(&ev.body()).expect("json")
    }

    #[test]
    fn body_shapes() {
        let login = ev(
            StateAction::Login {
                kicked: vec!["windows".into(), "Android".into(), "iphone".into()],
            },
            "Android",
        );
        assert_eq!(
            body_json(&login),
            serde_json::json!({
                "CallbackCommand": "State.StateChange",
                "EventTime": 1_629_883_332_497u64,
                "Info": {"Action": "Login", "To_Account": "alice", "Reason": "Register"},
                "KickedDevice": [{"Platform": "Windows"}, {"Platform": "Android"}, {"Platform": "iOS"}]
            })
        );
        let plain = ev(StateAction::Login { kicked: vec![] }, "Android");
        assert!(body_json(&plain).get("KickedDevice").is_none());
        for (action, name, reason) in [
            (StateAction::Logout, "Logout", "Unregister"),
            (StateAction::DisconnectLinkClose, "Disconnect", "LinkClose"),
            (StateAction::DisconnectTimeout, "Disconnect", "TimeOut"),
        ] {
            let body = body_json(&ev(action, "Web"));
            assert_eq!(body["Info"]["Action"], name);
            assert_eq!(body["Info"]["Reason"], reason);
            assert!(body.get("KickedDevice").is_none());
        }
    }

    #[test]
    fn query_string() {
        assert_eq!(
            ev(StateAction::Logout, "iOS").query(1_400_000_000),
            "SdkAppid=1400000000&CallbackCommand=State.StateChange&contenttype=json\
             &ClientIP=10.0.0.1&OptPlatform=IOS"
        );
        let mut e = ev(StateAction::Logout, "Linux");
        e.client_ip = None;
        assert_eq!(
            e.query(7),
            "SdkAppid=7&CallbackCommand=State.StateChange&contenttype=json&ClientIP=&OptPlatform=Unknown"
        );
        e.client_ip = Some("::1".into());
        assert!(e.query(7).contains("ClientIP=%3A%3A1"));
    }

    #[test]
    fn platforms() {
        for (given, opt, device) in [
            ("iOS", "IOS", "iOS"),
            ("IOS", "IOS", "iOS"),
            ("android", "Android", "Android"),
            ("iPad", "iPad", "iPad"),
            ("Mac", "Mac", "Mac"),
            ("Web", "Web", "Web"),
            ("Windows", "Windows", "Windows"),
            ("Linux", "Unknown", "Linux"),
            ("HarmonyOS", "Unknown", "HarmonyOS"),
        ] {
            assert_eq!(opt_platform(given), opt, "{given}");
            assert_eq!(device_platform(given), device, "{given}");
        }
    }

    #[test]
    fn disabled_accepts_everything_and_counts_nothing() {
        let sender = WebhookSender::disabled();
        assert!(!sender.is_enabled());
        assert!(sender.notify(ev(StateAction::Logout, "Web")));
        assert_eq!(sender.stats(), WebhookStats::default());
    }
}
