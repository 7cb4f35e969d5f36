//! The emulator's shared state: apps, valid regIds, knobs, counters and the received log.
//!
//! Plain `std::sync::Mutex`es: no lock is held across an `.await`, and each critical section is
//! a few map operations, so an async lock would only add cost.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::config::{EmulatorApp, EmulatorConfig, EmulatorRules, Knobs, RegidPolicy};
use super::receipts::PendingReceipt;
use crate::providers::receipt_poster::{ReceiptQueue, ReceiptStats};

/// One (regId, notification) pair the emulator accepted, decoded as the device would see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedNotification {
    /// Increases by one per record; a cheap cursor for pollers.
    pub seq: u64,
    /// The path the request came on, e.g. `/v3/message/regid`.
    pub endpoint: String,
    /// `restricted_package_name` of the message.
    pub package: String,
    pub regid: String,
    /// Empty when absent (pass-through messages need none).
    pub title: String,
    pub description: String,
    pub notify_id: Option<i64>,
    pub notify_type: Option<i64>,
    /// 0 notification bar, 1 pass-through.
    pub pass_through: i64,
    pub payload: Option<String>,
    /// Every `extra.*` field keyed without the prefix, as `MiPushMessage.getExtra()` shows it.
    pub extras: BTreeMap<String, String>,
    /// `data.id` of the reply that accepted it.
    pub message_id: String,
    pub trace_id: String,
    /// Unix milliseconds when the emulator accepted the request.
    pub received_at_ms: u64,
}

/// Which records `received` returns; every set field must match.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReceivedFilter {
    pub regid: Option<String>,
    pub package: Option<String>,
    /// Unix milliseconds; only records received at or after it.
    pub since: Option<u64>,
}

impl ReceivedFilter {
    fn matches(&self, r: &ReceivedNotification) -> bool {
        self.regid.as_ref().is_none_or(|x| *x == r.regid)
            && self.package.as_ref().is_none_or(|x| *x == r.package)
            && self.since.is_none_or(|x| r.received_at_ms >= x)
    }
}

/// Request counts by endpoint, then by outcome (`"0"`, `"21301"`, `"http_503"`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatorStats {
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// (regId, notification) pairs accepted since start (not reset by `clear`).
    pub accepted_notifications: u64,
}

/// Why the daily quota refused a request: `(quota, acked)` for the reason text.
pub(crate) struct QuotaExceeded {
    pub quota: u64,
    pub acked: u64,
}

#[derive(Default)]
struct Counters {
    /// package → (unix second, requests in it): the per-app QPS window.
    qps: HashMap<String, (u64, u32)>,
    /// package → (China day number, notifications accepted that day).
    acked: HashMap<String, (u64, u64)>,
    stats: EmulatorStats,
}

#[derive(Default)]
struct Received {
    next_seq: u64,
    records: VecDeque<ReceivedNotification>,
}

/// The result of matching the `Authorization` header and packages against known apps.
pub(crate) enum AppCheck {
    Known,
    BadSecret,
    UnknownPackage(String),
}

pub(crate) struct Shared {
    /// Fixed at start: limits and the codes chosen where the spec is UNCONFIRMED.
    pub rules: EmulatorRules,
    apps: Mutex<Vec<EmulatorApp>>,
    regids: Mutex<RegidPolicy>,
    /// A watch so hanging requests wake when `hang` is cleared.
    knobs: watch::Sender<Knobs>,
    counters: Mutex<Counters>,
    received: Mutex<Received>,
    /// RegIds accepted but answered later with a target-invalid receipt (app uninstalled).
    uninstalled: Mutex<HashSet<String>>,
    /// Receipts waiting for their time, shared with the poster.
    pub receipts: Arc<ReceiptQueue<PendingReceipt>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not make the emulator unusable; the data stays consistent because
    // every critical section is a handful of infallible map operations.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Days since the epoch in China time (UTC+8): the quota's day.
fn china_day(now_ms: u64) -> u64 {
    (now_ms / 1000 + 8 * 3600) / 86_400
}

impl Shared {
    pub fn new(config: EmulatorConfig) -> Self {
        let receipts = Arc::new(ReceiptQueue::new(config.rules.max_records));
        let knobs = Knobs {
            qps_limit: config.qps_limit,
            daily_quota: config.daily_quota,
            error_5xx_ratio: config.error_5xx_ratio,
            latency_ms: u64::try_from(config.latency.as_millis()).unwrap_or(u64::MAX),
            hang: config.hang,
            receipt_delay_ms: u64::try_from(config.receipt_delay.as_millis()).unwrap_or(u64::MAX),
            receipt_loss_ratio: config.receipt_loss_ratio,
            receipt_click_ratio: config.receipt_click_ratio,
        };
        Shared {
            rules: config.rules,
            apps: Mutex::new(config.apps),
            regids: Mutex::new(config.regids),
            knobs: watch::Sender::new(knobs),
            counters: Mutex::default(),
            received: Mutex::default(),
            uninstalled: Mutex::default(),
            receipts,
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

    pub fn add_app(&self, app: EmulatorApp) {
        let mut apps = lock(&self.apps);
        apps.retain(|a| a.package_name != app.package_name);
        apps.push(app);
    }

    pub fn package_names(&self) -> Vec<String> {
        lock(&self.apps)
            .iter()
            .map(|a| a.package_name.clone())
            .collect()
    }

    pub fn add_regids(&self, valid: Vec<String>, invalid: Vec<String>) {
        let mut policy = lock(&self.regids);
        for r in valid {
            policy.add_valid(r);
        }
        for r in invalid {
            policy.add_invalid(r);
        }
    }

    /// Xiaomi finds the app by its AppSecret, then checks that every package belongs to it.
    pub fn check_app(&self, secret: Option<&str>, packages: &[String]) -> AppCheck {
        let Some(secret) = secret.filter(|s| !s.is_empty()) else {
            return AppCheck::BadSecret;
        };
        if self.rules.accept_any_app {
            return AppCheck::Known;
        }
        let apps = lock(&self.apps);
        if !apps.iter().any(|a| a.app_secret == secret) {
            return AppCheck::BadSecret;
        }
        let foreign = packages.iter().find(|p| {
            !apps
                .iter()
                .any(|a| a.app_secret == secret && a.package_name == **p)
        });
        match foreign {
            Some(p) => AppCheck::UnknownPackage(p.clone()),
            None => AppCheck::Known,
        }
    }

    /// Counts one request against the app's per-second window; false when over `limit`.
    pub fn admit_qps(&self, package: &str, limit: u32, now_ms: u64) -> bool {
        let second = now_ms / 1000;
        let mut counters = lock(&self.counters);
        let slot = counters
            .qps
            .entry(package.to_owned())
            .or_insert((second, 0));
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        slot.1 <= limit
    }

    /// Splits targets into (valid, invalid), keeping order.
    pub fn split_regids<'a>(&self, regids: &[&'a str]) -> (Vec<&'a str>, Vec<&'a str>) {
        let policy = lock(&self.regids);
        regids.iter().partition(|r| policy.is_valid(r))
    }

    /// Single-message APIs: refuse the whole request once the day's acked count has reached
    /// the quota; otherwise count `n` more. A request that crosses the quota is accepted whole
    /// (how Xiaomi treats the crossing request is UNCONFIRMED).
    pub fn take_quota(
        &self,
        package: &str,
        quota: Option<u64>,
        n: u64,
        now_ms: u64,
    ) -> Result<(), QuotaExceeded> {
        let day = china_day(now_ms);
        let mut counters = lock(&self.counters);
        let slot = counters.acked.entry(package.to_owned()).or_insert((day, 0));
        if slot.0 != day {
            *slot = (day, 0);
        }
        if let Some(quota) = quota {
            if slot.1 >= quota {
                return Err(QuotaExceeded {
                    quota,
                    acked: slot.1,
                });
            }
        }
        slot.1 = slot.1.saturating_add(n);
        Ok(())
    }

    /// Multi-message APIs: accept up to what is left of the quota; returns how many of `n`.
    pub fn take_quota_partial(
        &self,
        package: &str,
        quota: Option<u64>,
        n: u64,
        now_ms: u64,
    ) -> u64 {
        let day = china_day(now_ms);
        let mut counters = lock(&self.counters);
        let slot = counters.acked.entry(package.to_owned()).or_insert((day, 0));
        if slot.0 != day {
            *slot = (day, 0);
        }
        let granted = quota.map_or(n, |q| n.min(q.saturating_sub(slot.1)));
        slot.1 = slot.1.saturating_add(granted);
        granted
    }

    /// Notifications accepted today for the package (`data.day_acked`).
    pub fn acked_today(&self, package: &str, now_ms: u64) -> u64 {
        let day = china_day(now_ms);
        lock(&self.counters)
            .acked
            .get(package)
            .filter(|(d, _)| *d == day)
            .map_or(0, |(_, n)| *n)
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
            // Bounded: the oldest records go first.
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

    /// Marks regIds as uninstalled: accepted, then a target-invalid receipt.
    pub fn add_uninstalled(&self, regids: Vec<String>) {
        lock(&self.uninstalled).extend(regids);
    }

    pub fn is_uninstalled(&self, regid: &str) -> bool {
        lock(&self.uninstalled).contains(regid)
    }

    /// Queues receipts, dropping `loss_ratio` of them (counted); bounded by `max_records`.
    pub fn queue_receipts(&self, receipts: Vec<PendingReceipt>, loss_ratio: f64) {
        self.receipts.queue(receipts, loss_ratio);
    }

    pub fn receipt_stats(&self) -> ReceiptStats {
        self.receipts.stats()
    }

    pub fn hang_cap(&self) -> Duration {
        Duration::from_secs(self.rules.hang_cap_secs)
    }
}

impl RegidPolicy {
    pub fn is_valid(&self, regid: &str) -> bool {
        match self {
            RegidPolicy::Listed(valid) => valid.contains(regid),
            RegidPolicy::AnyExcept(invalid) => !invalid.contains(regid),
        }
    }

    pub fn add_valid(&mut self, regid: String) {
        match self {
            RegidPolicy::Listed(valid) => {
                valid.insert(regid);
            }
            RegidPolicy::AnyExcept(invalid) => {
                invalid.remove(&regid);
            }
        }
    }

    pub fn add_invalid(&mut self, regid: String) {
        match self {
            RegidPolicy::Listed(valid) => {
                valid.remove(&regid);
            }
            RegidPolicy::AnyExcept(invalid) => {
                invalid.insert(regid);
            }
        }
    }
}

impl Default for RegidPolicy {
    /// Every regId is valid until marked otherwise.
    fn default() -> Self {
        RegidPolicy::AnyExcept(HashSet::new())
    }
}
