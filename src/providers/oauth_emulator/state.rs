//! What an OAuth push-service emulator keeps: apps, the access tokens it issued, which device
//! tokens are valid, knobs, counters and the received log.
//!
//! Plain `std::sync::Mutex`es: no lock is held across an `.await`, and each critical section is
//! a few map operations, so an async lock would only add cost.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

/// An app the emulator knows: an OAuth client and the ids its sends may use in the URL.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
    /// Ids accepted in the send URL for this client (Huawei: the client id itself and the
    /// project id; Honor: the APP ID). Empty: the client id only.
    #[serde(default)]
    pub app_ids: Vec<String>,
}

impl OAuthApp {
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        app_ids: &[&str],
    ) -> Self {
        OAuthApp {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            app_ids: app_ids.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn owns(&self, app_id: &str) -> bool {
        self.client_id == app_id || self.app_ids.iter().any(|a| a == app_id)
    }
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("app_ids", &self.app_ids)
            .finish()
    }
}

/// Behaviour that can change while the emulator runs (`GET|PUT /_emulator/knobs`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Send requests per second per app; more are rate limited (Huawei: HTTP 503).
    pub qps_limit: Option<u32>,
    /// Per device per app per China day, messages classified as marketing (Huawei `category`
    /// MARKETING, Honor `importance` LOW) beyond this are accepted but dropped, as the vendors'
    /// cap on "information & marketing" does (spec §6); chats (IM / NORMAL) are never capped.
    pub marketing_daily_cap: Option<u64>,
    /// Share of send requests (0.0–1.0) answered with `error_5xx_status` before any processing.
    pub error_5xx_ratio: f64,
    /// The status of those failures: 502 by default (503 means flow control to Huawei).
    pub error_5xx_status: u16,
    /// Added before every send request is handled.
    pub latency_ms: u64,
    /// Send requests wait without answer until this is cleared (or the hang cap passes).
    pub hang: bool,
    /// `expires_in` of access tokens issued from now on.
    pub access_token_ttl_secs: u64,
    /// The token endpoint answers 503 (its "system rate limiting") while set.
    pub auth_unavailable: bool,
    /// Access tokens one client may get per 5 minutes (Huawei: 1000, spec §2.1); past it, 503.
    pub token_fetch_limit_per_5min: Option<u32>,
    /// Milliseconds from accepting a notification to its delivery receipt being due (Huawei;
    /// Honor's receipt format is UNCONFIRMED, so its emulator posts none).
    pub receipt_delay_ms: u64,
    /// Share of receipts (0.0–1.0) never posted, as when Huawei's callback is lost.
    pub receipt_loss_ratio: f64,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            qps_limit: None,
            marketing_daily_cap: None,
            error_5xx_ratio: 0.0,
            error_5xx_status: 502,
            latency_ms: 0,
            hang: false,
            access_token_ttl_secs: 3600,
            auth_unavailable: false,
            token_fetch_limit_per_5min: None,
            receipt_delay_ms: 0,
            receipt_loss_ratio: 0.0,
        }
    }
}

/// One (device token, notification) the emulator accepted, as the device would see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedNotification {
    /// Increases by one per record.
    pub seq: u64,
    /// The path the request came on.
    pub endpoint: String,
    /// The app id of the send URL.
    pub app_id: String,
    pub token: String,
    pub title: String,
    pub body: String,
    /// Huawei `android.category`; empty for Honor.
    pub category: String,
    /// `android.notification.importance`.
    pub importance: String,
    /// `click_action.type` / `clickAction.type`.
    pub click_type: i64,
    pub intent: Option<String>,
    pub url: Option<String>,
    /// The `S.ext` extra decoded from the intent, as the app reads it.
    pub ext: Option<String>,
    pub channel_id: Option<String>,
    pub notify_id: Option<i64>,
    pub bi_tag: Option<String>,
    /// The vendor's `requestId` of the accepting reply; receipts would name it.
    pub request_id: String,
    /// Request headers a test may check (e.g. Honor's `timestamp`), lower-case names.
    pub headers: BTreeMap<String, String>,
    /// The decoded message without its token list, for anything else a test wants to see.
    pub message: Value,
    /// Unix milliseconds when accepted.
    pub received_at_ms: u64,
}

/// Which records `received` returns; every set field must match.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReceivedFilter {
    pub token: Option<String>,
    pub app_id: Option<String>,
    /// Unix milliseconds; only records received at or after it.
    pub since: Option<u64>,
}

impl ReceivedFilter {
    fn matches(&self, r: &ReceivedNotification) -> bool {
        self.token.as_ref().is_none_or(|x| *x == r.token)
            && self.app_id.as_ref().is_none_or(|x| *x == r.app_id)
            && self.since.is_none_or(|s| r.received_at_ms >= s)
    }
}

/// Request counts by endpoint and outcome, and other totals (`GET /_emulator/stats`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EmulatorStats {
    /// endpoint → outcome (vendor code or `http_NNN`) → count.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub accepted_notifications: u64,
    /// Accepted but dropped by the marketing cap.
    pub frequency_controlled: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Token requests refused (bad client or secret).
    pub token_refusals: u64,
}

/// The verdict on a device token for an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceToken {
    Valid,
    /// Expired or unregistered (Huawei illegal token, Honor `expireTokens`).
    Invalid,
    /// Fails for a reason the vendor does not tell (Honor `failTokens`).
    Failing,
}

/// Which device tokens are valid. Unknown tokens are valid for every app unless `strict`.
#[derive(Clone, Debug, Default)]
struct TokenBook {
    invalid: HashSet<String>,
    failing: HashSet<String>,
    /// A token registered by one app's SDK is invalid for every other app: how a wrong app id
    /// makes every token look invalid (Huawei 80300007).
    owner: HashMap<String, String>,
}

impl TokenBook {
    fn check(&self, app_id: &str, token: &str) -> DeviceToken {
        if self.invalid.contains(token) {
            return DeviceToken::Invalid;
        }
        if self.owner.get(token).is_some_and(|owner| owner != app_id) {
            return DeviceToken::Invalid;
        }
        if self.failing.contains(token) {
            return DeviceToken::Failing;
        }
        DeviceToken::Valid
    }
}

/// An access token the emulator issued.
#[derive(Clone, Debug)]
struct Issued {
    client_id: String,
    expires_at_ms: u64,
}

/// Why a bearer token was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerCheck {
    Ok,
    /// No `Authorization: Bearer …` header.
    Missing,
    /// Not a token this emulator issued.
    Unknown,
    Expired,
    /// Issued to a client that does not own the app id of the URL.
    OtherApp,
}

#[derive(Default)]
struct Counters {
    /// app id → (unix second, requests in it).
    qps: HashMap<String, (u64, u32)>,
    /// client id → fetch times (unix ms) within the last 5 minutes.
    token_fetches: HashMap<String, VecDeque<u64>>,
    /// (app id, device token) → (china day, marketing messages that day).
    marketing: HashMap<(String, String), (u64, u64)>,
    stats: EmulatorStats,
}

#[derive(Default)]
struct Received {
    records: VecDeque<ReceivedNotification>,
    next_seq: u64,
}

/// State shared by the handlers of one emulator.
pub struct Shared {
    /// `huawei` or `honor`, for logs.
    pub vendor: &'static str,
    /// Any client id with any non-empty secret gets a token; off by default.
    pub accept_any_app: bool,
    pub hang_cap: Duration,
    pub max_records: usize,
    apps: Mutex<Vec<OAuthApp>>,
    issued: Mutex<HashMap<String, Issued>>,
    tokens: Mutex<TokenBook>,
    knobs_tx: watch::Sender<Knobs>,
    counters: Mutex<Counters>,
    received: Mutex<Received>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not make the emulator unusable; every critical section is a few
    // infallible map operations, so the data stays consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Days since the epoch in China time (UTC+8): the day of the vendors' caps.
fn china_day(now_ms: u64) -> u64 {
    (now_ms / 1000 + 8 * 3600) / 86_400
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A random token-like string.
pub fn random_id(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALNUM[rng.random_range(0..ALNUM.len())]))
        .collect()
}

/// A numeric request id shaped like Huawei's (`160209653167346065000206`).
pub fn request_id(now_ms: u64) -> String {
    let tail: u64 = rand::rng().random_range(0..10_000_000_000);
    format!("{now_ms}{tail:010}")
}

impl Shared {
    pub fn new(
        vendor: &'static str,
        apps: Vec<OAuthApp>,
        knobs: Knobs,
        accept_any_app: bool,
    ) -> Self {
        Shared {
            vendor,
            accept_any_app,
            hang_cap: Duration::from_secs(300),
            max_records: 100_000,
            apps: Mutex::new(apps),
            issued: Mutex::new(HashMap::new()),
            tokens: Mutex::new(TokenBook::default()),
            knobs_tx: watch::channel(knobs).0,
            counters: Mutex::new(Counters::default()),
            received: Mutex::new(Received::default()),
        }
    }

    pub fn knobs(&self) -> Knobs {
        self.knobs_tx.borrow().clone()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.knobs_tx.send_replace(knobs);
    }

    pub fn watch_knobs(&self) -> watch::Receiver<Knobs> {
        self.knobs_tx.subscribe()
    }

    /// Adds an app, or replaces the secret and ids of a known client.
    pub fn add_app(&self, app: OAuthApp) {
        let mut apps = lock(&self.apps);
        apps.retain(|a| a.client_id != app.client_id);
        apps.push(app);
    }

    pub fn client_ids(&self) -> Vec<String> {
        lock(&self.apps)
            .iter()
            .map(|a| a.client_id.clone())
            .collect()
    }

    /// Whether the client and secret are known (or any are accepted).
    pub fn check_client(&self, client_id: &str, secret: &str) -> ClientCheck {
        if client_id.is_empty() || secret.is_empty() {
            return ClientCheck::UnknownClient;
        }
        if self.accept_any_app {
            return ClientCheck::Ok;
        }
        match lock(&self.apps).iter().find(|a| a.client_id == client_id) {
            None => ClientCheck::UnknownClient,
            Some(app) if app.client_secret == secret => ClientCheck::Ok,
            Some(_) => ClientCheck::WrongSecret,
        }
    }

    /// Counts a token fetch against the client's 5-minute window; false when over `limit`.
    pub fn admit_token_fetch(&self, client_id: &str, limit: Option<u32>, now: u64) -> bool {
        let Some(limit) = limit else { return true };
        let mut counters = lock(&self.counters);
        let window = counters
            .token_fetches
            .entry(client_id.to_owned())
            .or_default();
        while window
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= 300_000)
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return false;
        }
        window.push_back(now);
        true
    }

    /// Issues a new access token to the client.
    pub fn issue(&self, client_id: &str, ttl_secs: u64, now: u64) -> String {
        let token = format!("CV{}", random_id(40));
        lock(&self.issued).insert(
            token.clone(),
            Issued {
                client_id: client_id.to_owned(),
                expires_at_ms: now.saturating_add(ttl_secs.saturating_mul(1000)),
            },
        );
        lock(&self.counters).stats.tokens_issued += 1;
        token
    }

    /// Every issued access token expires now (a test of refresh after "token expired").
    pub fn expire_access_tokens(&self) -> usize {
        let mut issued = lock(&self.issued);
        let now = now_ms();
        for i in issued.values_mut() {
            i.expires_at_ms = i.expires_at_ms.min(now);
        }
        issued.len()
    }

    /// Checks a bearer token against the app id of the send URL.
    pub fn check_bearer(&self, token: Option<&str>, app_id: &str, now: u64) -> BearerCheck {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return BearerCheck::Missing;
        };
        let issued = lock(&self.issued);
        let Some(grant) = issued.get(token) else {
            return BearerCheck::Unknown;
        };
        if grant.expires_at_ms <= now {
            return BearerCheck::Expired;
        }
        if self.accept_any_app || grant.client_id == app_id {
            return BearerCheck::Ok;
        }
        let apps = lock(&self.apps);
        match apps.iter().find(|a| a.client_id == grant.client_id) {
            Some(app) if app.owns(app_id) => BearerCheck::Ok,
            _ => BearerCheck::OtherApp,
        }
    }

    /// Marks device tokens: valid (for `owner` only when given), invalid, or failing.
    pub fn set_tokens(
        &self,
        valid: Vec<String>,
        invalid: Vec<String>,
        failing: Vec<String>,
        owner: Option<&str>,
    ) {
        let mut book = lock(&self.tokens);
        for t in valid {
            book.invalid.remove(&t);
            book.failing.remove(&t);
            match owner {
                Some(o) => book.owner.insert(t, o.to_owned()),
                None => book.owner.remove(&t),
            };
        }
        for t in invalid {
            book.failing.remove(&t);
            book.invalid.insert(t);
        }
        for t in failing {
            book.invalid.remove(&t);
            book.failing.insert(t);
        }
    }

    pub fn check_token(&self, app_id: &str, token: &str) -> DeviceToken {
        lock(&self.tokens).check(app_id, token)
    }

    /// Counts one request against the app's per-second window; false when over `limit`.
    pub fn admit_qps(&self, app_id: &str, limit: u32, now: u64) -> bool {
        let second = now / 1000;
        let mut counters = lock(&self.counters);
        let slot = counters.qps.entry(app_id.to_owned()).or_insert((second, 0));
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        slot.1 <= limit
    }

    /// A marketing message to a device: false when the device's daily cap is reached (it is
    /// then dropped and counted as frequency-controlled).
    pub fn admit_marketing(&self, app_id: &str, token: &str, cap: Option<u64>, now: u64) -> bool {
        let Some(cap) = cap else { return true };
        let day = china_day(now);
        let mut counters = lock(&self.counters);
        let slot = counters
            .marketing
            .entry((app_id.to_owned(), token.to_owned()))
            .or_insert((day, 0));
        if slot.0 != day {
            *slot = (day, 0);
        }
        if slot.1 >= cap {
            counters.stats.frequency_controlled += 1;
            return false;
        }
        slot.1 += 1;
        true
    }

    pub fn count_request(&self, endpoint: &str, outcome: &str) {
        let mut counters = lock(&self.counters);
        *counters
            .stats
            .requests
            .entry(endpoint.to_owned())
            .or_default()
            .entry(outcome.to_owned())
            .or_insert(0) += 1;
    }

    pub fn count_token_refusal(&self) {
        lock(&self.counters).stats.token_refusals += 1;
    }

    pub fn stats(&self) -> EmulatorStats {
        lock(&self.counters).stats.clone()
    }

    pub fn record(&self, mut records: Vec<ReceivedNotification>) {
        let accepted = records.len() as u64;
        {
            let mut received = lock(&self.received);
            for r in &mut records {
                r.seq = received.next_seq;
                received.next_seq += 1;
            }
            received.records.extend(records);
            let over = received.records.len().saturating_sub(self.max_records);
            received.records.drain(..over);
        }
        lock(&self.counters).stats.accepted_notifications += accepted;
    }

    pub fn received(&self, filter: &ReceivedFilter) -> Vec<ReceivedNotification> {
        lock(&self.received)
            .records
            .iter()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect()
    }

    pub fn clear(&self) -> usize {
        let mut received = lock(&self.received);
        let n = received.records.len();
        received.records.clear();
        n
    }
}

/// The token endpoint's view of a client id and secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCheck {
    Ok,
    UnknownClient,
    WrongSecret,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared::new(
            "test",
            vec![OAuthApp::new("100", "secret", &["proj-1"])],
            Knobs::default(),
            false,
        )
    }

    #[test]
    fn clients_and_bearers() {
        let s = shared();
        assert_eq!(s.check_client("100", "secret"), ClientCheck::Ok);
        assert_eq!(s.check_client("100", "nope"), ClientCheck::WrongSecret);
        assert_eq!(s.check_client("200", "secret"), ClientCheck::UnknownClient);
        let now = 1_000_000;
        let t = s.issue("100", 60, now);
        assert_eq!(s.check_bearer(Some(&t), "100", now), BearerCheck::Ok);
        assert_eq!(s.check_bearer(Some(&t), "proj-1", now), BearerCheck::Ok);
        assert_eq!(s.check_bearer(Some(&t), "999", now), BearerCheck::OtherApp);
        assert_eq!(
            s.check_bearer(Some(&t), "100", now + 60_000),
            BearerCheck::Expired
        );
        assert_eq!(s.check_bearer(Some("x"), "100", now), BearerCheck::Unknown);
        assert_eq!(s.check_bearer(None, "100", now), BearerCheck::Missing);
        s.expire_access_tokens();
        assert_eq!(
            s.check_bearer(Some(&t), "100", now_ms()),
            BearerCheck::Expired
        );
    }

    #[test]
    fn device_tokens_and_owners() {
        let s = shared();
        assert_eq!(s.check_token("100", "any"), DeviceToken::Valid);
        s.set_tokens(
            vec!["mine".into()],
            vec!["dead".into()],
            vec!["flaky".into()],
            Some("100"),
        );
        assert_eq!(s.check_token("100", "mine"), DeviceToken::Valid);
        assert_eq!(s.check_token("300", "mine"), DeviceToken::Invalid);
        assert_eq!(s.check_token("100", "dead"), DeviceToken::Invalid);
        assert_eq!(s.check_token("100", "flaky"), DeviceToken::Failing);
        s.set_tokens(vec!["dead".into()], vec![], vec![], None);
        assert_eq!(s.check_token("300", "dead"), DeviceToken::Valid);
    }

    #[test]
    fn windows_and_caps() {
        let s = shared();
        assert!(s.admit_qps("100", 2, 5_000));
        assert!(s.admit_qps("100", 2, 5_100));
        assert!(!s.admit_qps("100", 2, 5_900));
        assert!(s.admit_qps("100", 2, 6_000));
        assert!(s.admit_token_fetch("100", Some(1), 0));
        assert!(!s.admit_token_fetch("100", Some(1), 299_999));
        assert!(s.admit_token_fetch("100", Some(1), 300_000));
        assert!(s.admit_marketing("100", "t", Some(2), 0));
        assert!(s.admit_marketing("100", "t", Some(2), 0));
        assert!(!s.admit_marketing("100", "t", Some(2), 0));
        assert!(s.admit_marketing("100", "u", Some(2), 0));
        assert!(s.admit_marketing("100", "t", Some(2), 86_400_000));
        assert_eq!(s.stats().frequency_controlled, 1);
    }
}
