//! The FCM emulator's shared state. Plain mutexes: no lock is held across an `.await`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::config::{EmulatorAccount, EmulatorConfig, Knobs};

/// One accepted send, as the device would see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedMessage {
    pub seq: u64,
    pub project_id: String,
    pub token: String,
    pub title: Option<String>,
    pub body: Option<String>,
    pub data: BTreeMap<String, String>,
    pub priority: Option<String>,
    pub ttl: Option<String>,
    pub collapse_key: Option<String>,
    pub restricted_package_name: Option<String>,
    pub channel_id: Option<String>,
    pub tag: Option<String>,
    pub sound: Option<String>,
    /// `android.notification.click_action`: the activity's intent-filter action.
    #[serde(default)]
    pub click_action: Option<String>,
    /// `projects/{p}/messages/{id}`, as answered.
    pub name: String,
    /// `HTTP/2.0` or `HTTP/1.1`.
    pub http_version: String,
    /// The emulator's connection number: distinct values = distinct connections.
    pub connection: u64,
    pub received_at_ms: u64,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReceivedFilter {
    pub token: Option<String>,
    pub project_id: Option<String>,
    pub since: Option<u64>,
}

impl ReceivedFilter {
    fn matches(&self, r: &ReceivedMessage) -> bool {
        self.token.as_ref().is_none_or(|x| *x == r.token)
            && self.project_id.as_ref().is_none_or(|x| *x == r.project_id)
            && self.since.is_none_or(|x| r.received_at_ms >= x)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatorStats {
    /// Requests by endpoint (`send`, `token`), then outcome (`ok`, `UNREGISTERED`, `http_503`…).
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Access tokens issued since start.
    pub access_tokens_issued: u64,
    pub accepted_messages: u64,
}

/// What the emulator answers for a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenState {
    Valid,
    /// 404 `UNREGISTERED`.
    Unregistered,
    /// 400 "not a valid FCM registration token".
    Invalid,
    /// 403 `SENDER_ID_MISMATCH`.
    OtherSender,
}

#[derive(Clone, Debug)]
pub(crate) struct Issued {
    pub project_id: String,
    pub expires_at_ms: u64,
}

#[derive(Default)]
struct Tokens {
    unregistered: HashSet<String>,
    invalid: HashSet<String>,
    other_sender: HashSet<String>,
}

#[derive(Default)]
struct Counters {
    qps: HashMap<String, (u64, u32)>,
    stats: EmulatorStats,
}

#[derive(Default)]
struct Received {
    next_seq: u64,
    records: VecDeque<ReceivedMessage>,
}

pub(crate) struct Shared {
    pub max_records: usize,
    pub hang_cap_secs: u64,
    pub max_message_bytes: usize,
    /// `http://addr/token` once bound: an assertion's `aud` may name it (or Google's URL).
    pub own_token_uris: Mutex<Vec<String>>,
    /// The generated test-only account served at `/_emulator/sample-account`.
    pub sample_account: Mutex<Option<serde_json::Value>>,
    accounts: Mutex<HashMap<String, EmulatorAccount>>,
    access: Mutex<HashMap<String, Issued>>,
    tokens: Mutex<Tokens>,
    knobs: watch::Sender<Knobs>,
    counters: Mutex<Counters>,
    received: Mutex<Received>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a few infallible map operations: a poisoned lock still holds
    // consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(config: &EmulatorConfig) -> Shared {
        Shared {
            max_records: config.max_records,
            hang_cap_secs: config.hang_cap_secs,
            max_message_bytes: config.max_message_bytes,
            own_token_uris: Mutex::default(),
            sample_account: Mutex::default(),
            accounts: Mutex::new(
                config
                    .accounts
                    .iter()
                    .map(|a| (a.client_email.clone(), a.clone()))
                    .collect(),
            ),
            access: Mutex::default(),
            tokens: Mutex::default(),
            knobs: watch::Sender::new(config.knobs.clone()),
            counters: Mutex::default(),
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

    pub fn add_account(&self, account: EmulatorAccount) {
        lock(&self.accounts).insert(account.client_email.clone(), account);
    }

    pub fn account(&self, client_email: &str) -> Option<EmulatorAccount> {
        lock(&self.accounts).get(client_email).cloned()
    }

    pub fn account_emails(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.accounts).keys().cloned().collect();
        v.sort();
        v
    }

    pub fn issue(&self, token: String, issued: Issued) {
        let mut access = lock(&self.access);
        // Bounded: forget expired tokens now and then.
        if access.len() > 10_000 {
            let now = now_ms();
            access.retain(|_, i| i.expires_at_ms > now);
        }
        access.insert(token, issued);
        lock(&self.counters).stats.access_tokens_issued += 1;
    }

    pub fn access(&self, token: &str) -> Option<Issued> {
        lock(&self.access).get(token).cloned()
    }

    /// Every issued access token stops working (Google revoked them); returns how many.
    pub fn revoke_access(&self) -> usize {
        let mut access = lock(&self.access);
        let n = access.len();
        access.clear();
        n
    }

    pub fn set_tokens(&self, state: TokenState, tokens: Vec<String>) {
        let mut t = lock(&self.tokens);
        for token in tokens {
            t.unregistered.remove(&token);
            t.invalid.remove(&token);
            t.other_sender.remove(&token);
            match state {
                TokenState::Valid => {}
                TokenState::Unregistered => {
                    t.unregistered.insert(token);
                }
                TokenState::Invalid => {
                    t.invalid.insert(token);
                }
                TokenState::OtherSender => {
                    t.other_sender.insert(token);
                }
            }
        }
    }

    pub fn token_state(&self, token: &str) -> TokenState {
        let t = lock(&self.tokens);
        if t.unregistered.contains(token) {
            TokenState::Unregistered
        } else if t.invalid.contains(token) {
            TokenState::Invalid
        } else if t.other_sender.contains(token) {
            TokenState::OtherSender
        } else {
            TokenState::Valid
        }
    }

    pub fn admit_qps(&self, project: &str, limit: u32, now_ms: u64) -> bool {
        let second = now_ms / 1000;
        let mut c = lock(&self.counters);
        let slot = c.qps.entry(project.to_owned()).or_insert((second, 0));
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        slot.1 <= limit
    }

    pub fn count(&self, endpoint: &str, outcome: &str) {
        let mut c = lock(&self.counters);
        *c.stats
            .requests
            .entry(endpoint.to_owned())
            .or_default()
            .entry(outcome.to_owned())
            .or_insert(0) += 1;
    }

    pub fn stats(&self) -> EmulatorStats {
        lock(&self.counters).stats.clone()
    }

    pub fn record(&self, mut r: ReceivedMessage) {
        {
            let mut rec = lock(&self.received);
            r.seq = rec.next_seq;
            rec.next_seq += 1;
            rec.records.push_back(r);
            let over = rec.records.len().saturating_sub(self.max_records);
            rec.records.drain(..over);
        }
        lock(&self.counters).stats.accepted_messages += 1;
    }

    pub fn received(&self, filter: &ReceivedFilter) -> Vec<ReceivedMessage> {
        lock(&self.received)
            .records
            .iter()
            .filter(|r| filter.matches(r))
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

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
