//! State shared by the OPPO, vivo and Meizu emulators: apps, token fates, knobs, counters, issued
//! auth tokens and the received log.
//!
//! Plain `std::sync::Mutex`es: no lock is held across an `.await`, and each critical section is a
//! few map operations, so an async lock would only add cost.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// An app an emulator knows. Which fields matter is the vendor's: OPPO `app_key` + `secret`
/// (MasterSecret), vivo all three, Meizu `app_id` + `secret` (AppSecret).
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorApp {
    pub app_id: String,
    pub app_key: String,
    pub secret: String,
}

impl EmulatorApp {
    pub fn new(
        app_id: impl Into<String>,
        app_key: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        EmulatorApp {
            app_id: app_id.into(),
            app_key: app_key.into(),
            secret: secret.into(),
        }
    }
}

impl std::fmt::Debug for EmulatorApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorApp")
            .field("app_id", &self.app_id)
            .field("app_key", &self.app_key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What the vendor says about a device token that is not plainly valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFate {
    /// Unknown or malformed: OPPO 10000, vivo 10302 / status 1, Meizu 110003.
    Invalid,
    /// The user switched notifications off: vivo status 2, Meizu per-target 110010.
    SwitchedOff,
}

/// Behaviour that can change while the emulator runs (`GET|PUT /_emulator/knobs`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Per app and second; what one unit is (a request, a target) is the vendor's rule.
    pub qps_limit: Option<u32>,
    /// Notifications per app per China day.
    pub daily_quota: Option<u64>,
    /// Share of requests (0.0–1.0) answered with HTTP 503 before any processing.
    pub error_5xx_ratio: f64,
    /// Added before every push request is handled.
    pub latency_ms: u64,
    /// Push requests wait without answer until this is cleared (or the hang cap passes).
    pub hang: bool,
    /// Lifetime of newly issued auth tokens; `None` is the vendor's own (24 h at OPPO and vivo).
    pub auth_ttl_secs: Option<u64>,
}

/// Limits fixed at start, common to the three emulators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KitRules {
    /// Any app key / id is accepted with any non-empty secret (load runs without setup).
    pub accept_any_app: bool,
    /// A hanging request answers 504 after this long even if `hang` stays on.
    pub hang_cap_secs: u64,
    /// Received records kept; the oldest are dropped first.
    pub max_records: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// actix workers (threads); 1 suits tests, more suits load runs.
    pub workers: usize,
    /// Auth token lifetime when the knob is unset: 24 h at OPPO and vivo.
    pub default_auth_ttl_secs: u64,
}

impl Default for KitRules {
    fn default() -> Self {
        KitRules {
            accept_any_app: false,
            hang_cap_secs: 300,
            max_records: 100_000,
            max_body_bytes: 8 * 1024 * 1024,
            workers: 1,
            default_auth_ttl_secs: 86_400,
        }
    }
}

/// One (target, notification) the emulator accepted, decoded as the device would see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedNotification {
    /// Increases by one per record; a cheap cursor for pollers.
    pub seq: u64,
    /// The path the request came on.
    pub endpoint: String,
    /// The app key or id that sent it.
    pub app: String,
    /// The device token (regId / pushId).
    pub target: String,
    pub title: String,
    pub body: String,
    /// The whole notification as the vendor decoded it (every wire field, vendor names).
    pub message: serde_json::Value,
    /// The vendor's id of the accepted message.
    pub message_id: String,
    /// Unix milliseconds when the emulator accepted it.
    pub received_at_ms: u64,
}

/// Which records `received` returns; every set field must match.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReceivedFilter {
    pub target: Option<String>,
    pub app: Option<String>,
    /// Unix milliseconds; only records received at or after it.
    pub since: Option<u64>,
}

impl ReceivedFilter {
    fn matches(&self, r: &ReceivedNotification) -> bool {
        self.target.as_ref().is_none_or(|x| *x == r.target)
            && self.app.as_ref().is_none_or(|x| *x == r.app)
            && self.since.is_none_or(|x| r.received_at_ms >= x)
    }
}

/// Request counts by endpoint, then by outcome (`"0"`, `"11"`, `"http_503"`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatorStats {
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// (target, notification) pairs accepted since start (not reset by `clear`).
    pub accepted_notifications: u64,
    /// Auth tokens issued since start.
    pub auth_tokens_issued: u64,
}

/// The day's quota is used up: `(quota, acked)` for the reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    pub quota: u64,
    pub acked: u64,
}

/// What an auth token presented on a send is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// Issued to this app key / id and still valid.
    Valid(String),
    Expired,
    Unknown,
}

#[derive(Default)]
struct Counters {
    /// key → (unix second, units in it): per-second windows.
    windows: HashMap<String, (u64, u64)>,
    /// app → (China day number, notifications accepted that day).
    acked: HashMap<String, (u64, u64)>,
    stats: EmulatorStats,
}

#[derive(Default)]
struct Received {
    next_seq: u64,
    records: VecDeque<ReceivedNotification>,
}

pub struct Shared {
    /// The vendor's name, for thread names and logs.
    pub vendor: &'static str,
    pub rules: KitRules,
    apps: Mutex<Vec<EmulatorApp>>,
    fates: Mutex<HashMap<String, TokenFate>>,
    /// A watch so hanging requests wake when `hang` is cleared.
    knobs: watch::Sender<Knobs>,
    counters: Mutex<Counters>,
    /// auth token → (app, expiry in unix ms).
    auth_tokens: Mutex<HashMap<String, (String, u64)>>,
    received: Mutex<Received>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not make the emulator unusable; every critical section is a
    // handful of infallible map operations, so the data stays consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Days since the epoch in China time (UTC+8): the quotas' day.
fn china_day(now_ms: u64) -> u64 {
    (now_ms / 1000 + 8 * 3600) / 86_400
}

/// `n` random lower-case hex digits, for ids and tokens.
pub fn random_hex(n: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(HEX[rng.random_range(0..HEX.len())]))
        .collect()
}

impl Shared {
    pub fn new(
        vendor: &'static str,
        apps: Vec<EmulatorApp>,
        knobs: Knobs,
        rules: KitRules,
    ) -> Self {
        Shared {
            vendor,
            rules,
            apps: Mutex::new(apps),
            fates: Mutex::default(),
            knobs: watch::Sender::new(knobs),
            counters: Mutex::default(),
            auth_tokens: Mutex::default(),
            received: Mutex::default(),
        }
    }

    pub fn knobs(&self) -> Knobs {
        self.knobs.borrow().clone()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.knobs.send_replace(knobs);
    }

    pub fn watch_knobs(&self) -> watch::Receiver<Knobs> {
        self.knobs.subscribe()
    }

    /// Adds an app, replacing one with the same app id and key.
    pub fn add_app(&self, app: EmulatorApp) {
        let mut apps = lock(&self.apps);
        apps.retain(|a| !(a.app_id == app.app_id && a.app_key == app.app_key));
        apps.push(app);
    }

    /// `(app_id, app_key)` of every known app; secrets never leave.
    pub fn app_ids(&self) -> Vec<(String, String)> {
        lock(&self.apps)
            .iter()
            .map(|a| (a.app_id.clone(), a.app_key.clone()))
            .collect()
    }

    /// The first known app matching `pick`.
    pub fn find_app(&self, pick: impl Fn(&EmulatorApp) -> bool) -> Option<EmulatorApp> {
        lock(&self.apps).iter().find(|a| pick(a)).cloned()
    }

    pub fn set_fates(&self, valid: Vec<String>, fates: Vec<(String, TokenFate)>) {
        let mut map = lock(&self.fates);
        for t in valid {
            map.remove(&t);
        }
        map.extend(fates);
    }

    /// `None`: a valid, registered device.
    pub fn fate(&self, target: &str) -> Option<TokenFate> {
        lock(&self.fates).get(target).copied()
    }

    /// Counts `cost` units against `key`'s per-second window; false when over `limit`.
    pub fn admit(&self, key: &str, cost: u64, limit: u32, now_ms: u64) -> bool {
        let second = now_ms / 1000;
        let mut counters = lock(&self.counters);
        let slot = counters
            .windows
            .entry(key.to_owned())
            .or_insert((second, 0));
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 = slot.1.saturating_add(cost);
        slot.1 <= u64::from(limit)
    }

    /// Refuses once the day's accepted count has reached the quota; otherwise counts `n` more.
    /// A request that crosses the quota is accepted whole.
    pub fn take_quota(
        &self,
        app: &str,
        quota: Option<u64>,
        n: u64,
        now_ms: u64,
    ) -> Result<(), OverQuota> {
        let day = china_day(now_ms);
        let mut counters = lock(&self.counters);
        let slot = counters.acked.entry(app.to_owned()).or_insert((day, 0));
        if slot.0 != day {
            *slot = (day, 0);
        }
        if let Some(quota) = quota {
            if slot.1 >= quota {
                return Err(OverQuota {
                    quota,
                    acked: slot.1,
                });
            }
        }
        slot.1 = slot.1.saturating_add(n);
        Ok(())
    }

    /// A new auth token for `app`, valid for the knob's lifetime (else the vendor's); returns
    /// the token and its expiry in unix ms.
    pub fn issue_auth_token(&self, app: &str, now_ms: u64) -> (String, u64) {
        let ttl = self
            .knobs()
            .auth_ttl_secs
            .unwrap_or(self.rules.default_auth_ttl_secs);
        let expires = now_ms.saturating_add(ttl.saturating_mul(1000));
        let token = random_hex(40);
        lock(&self.auth_tokens).insert(token.clone(), (app.to_owned(), expires));
        lock(&self.counters).stats.auth_tokens_issued += 1;
        (token, expires)
    }

    pub fn check_auth_token(&self, token: &str, now_ms: u64) -> TokenCheck {
        match lock(&self.auth_tokens).get(token) {
            Some((app, expires)) if *expires > now_ms => TokenCheck::Valid(app.clone()),
            Some(_) => TokenCheck::Expired,
            None => TokenCheck::Unknown,
        }
    }

    /// Every issued token expires now (`POST /_emulator/auth/expire`); returns how many.
    pub fn expire_auth_tokens(&self) -> usize {
        let mut tokens = lock(&self.auth_tokens);
        for (_, expires) in tokens.values_mut() {
            *expires = 0;
        }
        tokens.len()
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
            let over = received
                .records
                .len()
                .saturating_sub(self.rules.max_records);
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

    pub fn hang_cap(&self) -> Duration {
        Duration::from_secs(self.rules.hang_cap_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared::new("test", Vec::new(), Knobs::default(), KitRules::default())
    }

    #[test]
    fn windows_count_units_per_second() {
        let s = shared();
        assert!(s.admit("a", 3, 5, 1_000));
        assert!(s.admit("a", 2, 5, 1_999));
        assert!(!s.admit("a", 1, 5, 1_500));
        assert!(s.admit("b", 5, 5, 1_500), "per key");
        assert!(s.admit("a", 5, 5, 2_000), "a new second");
    }

    #[test]
    fn quota_refuses_once_reached_and_resets_on_the_china_day() {
        let s = shared();
        assert!(s.take_quota("a", Some(2), 1, 0).is_ok());
        assert!(
            s.take_quota("a", Some(2), 5, 0).is_ok(),
            "crossing is accepted whole"
        );
        assert_eq!(
            s.take_quota("a", Some(2), 1, 0),
            Err(OverQuota { quota: 2, acked: 6 })
        );
        // 16:00 UTC is midnight in China.
        assert!(s.take_quota("a", Some(2), 1, 16 * 3600 * 1000).is_ok());
    }

    #[test]
    fn auth_tokens_expire_by_knob_and_on_demand() {
        let s = shared();
        let (t, exp) = s.issue_auth_token("k", 1_000);
        assert_eq!(exp, 1_000 + 86_400_000);
        assert_eq!(s.check_auth_token(&t, 2_000), TokenCheck::Valid("k".into()));
        assert_eq!(s.check_auth_token("nope", 2_000), TokenCheck::Unknown);
        s.set_knobs(Knobs {
            auth_ttl_secs: Some(1),
            ..Knobs::default()
        });
        let (short, _) = s.issue_auth_token("k", 1_000);
        assert_eq!(s.check_auth_token(&short, 2_000), TokenCheck::Expired);
        assert_eq!(s.expire_auth_tokens(), 2);
        assert_eq!(s.check_auth_token(&t, 2_000), TokenCheck::Expired);
        assert_eq!(s.stats().auth_tokens_issued, 2);
    }

    #[test]
    fn fates_are_set_and_cleared() {
        let s = shared();
        s.set_fates(
            vec![],
            vec![
                ("a".into(), TokenFate::Invalid),
                ("b".into(), TokenFate::SwitchedOff),
            ],
        );
        assert_eq!(s.fate("a"), Some(TokenFate::Invalid));
        s.set_fates(vec!["a".into()], vec![]);
        assert_eq!(s.fate("a"), None);
        assert_eq!(s.fate("b"), Some(TokenFate::SwitchedOff));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let shown = format!("{:?}", EmulatorApp::new("1", "k", "s3cr3t"));
        assert!(!shown.contains("s3cr3t"));
    }
}
