//! The APNs emulator's shared state. Plain mutexes: no lock is held across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::config::{EmulatorConfig, EmulatorKey, Knobs};
use crate::providers::apns::key::Environment;
use crate::providers::h2_emulator::Resetter;

/// One accepted notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedNotification {
    pub seq: u64,
    pub device_token: String,
    pub topic: String,
    pub push_type: String,
    pub priority: Option<String>,
    pub expiration: Option<String>,
    pub collapse_id: Option<String>,
    pub apns_id: String,
    pub payload: serde_json::Value,
    pub key_id: String,
    pub team_id: String,
    pub connection: u64,
    pub received_at_ms: u64,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReceivedFilter {
    pub device_token: Option<String>,
    pub topic: Option<String>,
    pub since: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatorStats {
    /// Requests by outcome: `200` or the reason.
    pub requests: BTreeMap<String, u64>,
    pub accepted_notifications: u64,
    /// Most streams one connection had in flight at once since the last knob change.
    pub peak_streams_per_connection: u64,
    /// Distinct provider tokens seen since start.
    pub provider_tokens_seen: u64,
}

/// What APNs answers for a device token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Valid,
    /// 410 `Unregistered` (with `timestamp`).
    Unregistered,
    /// 410 `ExpiredToken`.
    Expired,
    /// 400 `BadDeviceToken` (e.g. a token of the other environment).
    Bad,
    /// 400 `DeviceTokenNotForTopic`.
    OtherTopic,
}

#[derive(Default)]
struct Counters {
    qps: (u64, u32),
    stats: EmulatorStats,
}

#[derive(Default)]
struct Received {
    next_seq: u64,
    records: VecDeque<ReceivedNotification>,
}

pub(crate) struct Shared {
    pub environment: Environment,
    pub max_records: usize,
    pub hang_cap_secs: u64,
    pub max_payload_bytes: usize,
    pub sample_key: Mutex<Option<serde_json::Value>>,
    /// Set once the server runs: ends live connections (the concurrency cut).
    pub resetter: OnceLock<Resetter>,
    keys: Mutex<HashMap<String, EmulatorKey>>,
    devices: Mutex<HashMap<String, DeviceState>>,
    seen_tokens: Mutex<std::collections::HashSet<String>>,
    knobs: watch::Sender<Knobs>,
    counters: Mutex<Counters>,
    received: Mutex<Received>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections are a few infallible map operations: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Shared {
    pub fn new(config: &EmulatorConfig) -> Shared {
        Shared {
            environment: config.environment,
            max_records: config.max_records,
            hang_cap_secs: config.hang_cap_secs,
            max_payload_bytes: config.max_payload_bytes,
            sample_key: Mutex::default(),
            resetter: OnceLock::new(),
            keys: Mutex::new(
                config
                    .keys
                    .iter()
                    .map(|k| (k.key_id.clone(), k.clone()))
                    .collect(),
            ),
            devices: Mutex::default(),
            seen_tokens: Mutex::default(),
            knobs: watch::Sender::new(config.knobs.clone()),
            counters: Mutex::default(),
            received: Mutex::default(),
        }
    }

    pub fn knobs(&self) -> Knobs {
        self.knobs.borrow().clone()
    }

    /// Replaces the knobs; a change of the stream limit ends live connections so the new
    /// limit reaches the clients.
    pub fn set_knobs(&self, knobs: Knobs) {
        let old = self.knobs.send_replace(knobs.clone());
        lock(&self.counters).stats.peak_streams_per_connection = 0;
        if old.concurrency_cut != knobs.concurrency_cut
            || old.max_concurrent_streams != knobs.max_concurrent_streams
        {
            if let Some(r) = self.resetter.get() {
                r.reset();
            }
        }
    }

    pub fn watch_knobs(&self) -> watch::Receiver<Knobs> {
        self.knobs.subscribe()
    }

    /// The stream limit a new connection advertises.
    pub fn stream_limit(&self) -> u32 {
        let k = self.knobs.borrow();
        if k.concurrency_cut {
            1
        } else {
            k.max_concurrent_streams.max(1)
        }
    }

    pub fn add_key(&self, key: EmulatorKey) {
        lock(&self.keys).insert(key.key_id.clone(), key);
    }

    pub fn key(&self, key_id: &str) -> Option<EmulatorKey> {
        lock(&self.keys).get(key_id).cloned()
    }

    pub fn key_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.keys).keys().cloned().collect();
        v.sort();
        v
    }

    pub fn set_devices(&self, state: DeviceState, tokens: Vec<String>) {
        let mut d = lock(&self.devices);
        for t in tokens {
            let t = t.to_ascii_lowercase();
            if state == DeviceState::Valid {
                d.remove(&t);
            } else {
                d.insert(t, state);
            }
        }
    }

    pub fn device(&self, token: &str) -> DeviceState {
        lock(&self.devices)
            .get(token)
            .copied()
            .unwrap_or(DeviceState::Valid)
    }

    pub fn note_token(&self, jwt: &str) {
        let mut seen = lock(&self.seen_tokens);
        if seen.len() < 100_000 && seen.insert(jwt.to_owned()) {
            lock(&self.counters).stats.provider_tokens_seen += 1;
        }
    }

    pub fn note_streams(&self, n: u64) {
        let mut c = lock(&self.counters);
        c.stats.peak_streams_per_connection = c.stats.peak_streams_per_connection.max(n);
    }

    pub fn admit_qps(&self, limit: u32, now_ms: u64) -> bool {
        let second = now_ms / 1000;
        let mut c = lock(&self.counters);
        if c.qps.0 != second {
            c.qps = (second, 0);
        }
        c.qps.1 = c.qps.1.saturating_add(1);
        c.qps.1 <= limit
    }

    pub fn count(&self, outcome: &str) {
        *lock(&self.counters)
            .stats
            .requests
            .entry(outcome.to_owned())
            .or_insert(0) += 1;
    }

    pub fn stats(&self) -> EmulatorStats {
        lock(&self.counters).stats.clone()
    }

    pub fn record(&self, mut r: ReceivedNotification) {
        {
            let mut rec = lock(&self.received);
            r.seq = rec.next_seq;
            rec.next_seq += 1;
            rec.records.push_back(r);
            let over = rec.records.len().saturating_sub(self.max_records);
            rec.records.drain(..over);
        }
        lock(&self.counters).stats.accepted_notifications += 1;
    }

    pub fn received(&self, f: &ReceivedFilter) -> Vec<ReceivedNotification> {
        lock(&self.received)
            .records
            .iter()
            .filter(|r| {
                f.device_token.as_ref().is_none_or(|x| *x == r.device_token)
                    && f.topic.as_ref().is_none_or(|x| *x == r.topic)
                    && f.since.is_none_or(|x| r.received_at_ms >= x)
            })
            .cloned()
            .collect()
    }

    pub fn clear(&self) -> usize {
        let mut rec = lock(&self.received);
        let n = rec.records.len();
        rec.records.clear();
        n
    }
}
