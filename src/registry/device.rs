//! One registered device as the registry keeps it, packed small: there are millions.

use crate::domain::{CertificateId, DeviceState, OfflineReason, Platform};
use crate::providers::DeliveryClass;
use crate::registry::table::Keyed;
use crate::registry::{ConnId, Route, SkipReason};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One device of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The client's device id (inline up to 24 bytes: no allocation for typical ids).
    pub id: CompactString,
    /// The bound vendor token, shared with the reverse index.
    pub token: Option<Arc<str>>,
    /// The certificate the token was reported for (meaningful only with a token).
    pub cert: CertificateId,
    /// Live WebSocket connection on this gateway; 0 when none (or held by the IM cluster).
    pub conn: ConnId,
    /// `PushOnline` since (unix seconds); 0 otherwise.
    since: u32,
    /// When the last notification to this device ended (unix seconds; 0: none since start).
    /// With `last_push`, what diagnosis shows once the result's details (vendor code, text,
    /// ids) have left the bounded `push::outcomes` store. Fits in what was padding.
    last_push_at: u32,
    pub platform: Platform,
    /// Packed `DeviceState` kind: see `state()`.
    kind: u8,
    /// How the last notification to this device ended.
    last_push: Option<DeliveryClass>,
}

const K_ONLINE: u8 = 0;
const K_BACKGROUND: u8 = 1;
const K_PUSH_ONLINE: u8 = 2;
const K_LOGGED_OUT: u8 = 3;
const K_KICKED: u8 = 4;
const K_EXPIRED: u8 = 5;
const K_DISCONNECTED: u8 = 6;

impl Device {
    pub fn new(id: &str, platform: Platform) -> Device {
        Device {
            id: CompactString::from(id),
            token: None,
            cert: 0,
            conn: 0,
            since: 0,
            last_push_at: 0,
            platform,
            kind: K_LOGGED_OUT,
            last_push: None,
        }
    }

    /// How the last notification to this device ended and when (unix seconds), if one did
    /// since the gateway started.
    pub fn last_push(&self) -> Option<(DeliveryClass, u64)> {
        self.last_push.map(|c| (c, u64::from(self.last_push_at)))
    }

    pub(crate) fn set_last_push(&mut self, class: DeliveryClass, at_secs: u64) {
        self.last_push = Some(class);
        self.last_push_at = at_secs.min(u64::from(u32::MAX)) as u32;
    }

    pub fn state(&self) -> DeviceState {
        match self.kind {
            K_ONLINE => DeviceState::Online { background: false },
            K_BACKGROUND => DeviceState::Online { background: true },
            K_PUSH_ONLINE => DeviceState::PushOnline {
                since: u64::from(self.since),
            },
            K_KICKED => DeviceState::Offline {
                reason: OfflineReason::Kicked,
            },
            K_EXPIRED => DeviceState::Offline {
                reason: OfflineReason::Expired,
            },
            K_DISCONNECTED => DeviceState::Offline {
                reason: OfflineReason::Disconnected,
            },
            _ => DeviceState::Offline {
                reason: OfflineReason::LoggedOut,
            },
        }
    }

    pub fn set_state(&mut self, s: DeviceState) {
        let (kind, since) = match s {
            DeviceState::Online { background: false } => (K_ONLINE, 0),
            DeviceState::Online { background: true } => (K_BACKGROUND, 0),
            // Unix seconds fit in u32 until 2106.
            DeviceState::PushOnline { since } => {
                (K_PUSH_ONLINE, since.min(u64::from(u32::MAX)) as u32)
            }
            DeviceState::Offline { reason } => (
                match reason {
                    OfflineReason::LoggedOut => K_LOGGED_OUT,
                    OfflineReason::Kicked => K_KICKED,
                    OfflineReason::Expired => K_EXPIRED,
                    OfflineReason::Disconnected => K_DISCONNECTED,
                },
                0,
            ),
        };
        self.kind = kind;
        self.since = since;
    }

    pub(crate) fn take_conn(&mut self) -> Option<ConnId> {
        let c = std::mem::take(&mut self.conn);
        (c != 0).then_some(c)
    }

    /// Reads what routing and the journal read of this device (the state byte, the token's
    /// reference count and every cache line of the token's bytes) and nothing else: the batch
    /// router touches every recipient's devices before it routes any, so the cache misses of
    /// different recipients overlap instead of coming one at a time when each notification's
    /// share is encoded (a 64-byte token and its counts span two lines).
    pub(crate) fn touch(&self) -> usize {
        usize::from(self.kind)
            ^ self.token.as_ref().map_or(0, |t| {
                let bytes = t.as_bytes();
                // One byte of each 64-byte stretch, and the last one.
                let lines = bytes
                    .iter()
                    .step_by(64)
                    .fold(0, |acc, b| acc ^ usize::from(*b));
                Arc::strong_count(t) ^ lines ^ bytes.last().map_or(0, |b| usize::from(*b))
            })
    }

    /// The routing decision for this device now (certificate health is checked by dispatch).
    pub fn route(&self, now: u64, retention: u64) -> Route {
        match self.state().effective(now, retention) {
            DeviceState::Online { background } => {
                let conn = (self.conn != 0).then_some(self.conn);
                if background {
                    if let Some(t) = &self.token {
                        // Background: the connection and a notification (§3.4).
                        return Route::OnlineAndPush {
                            conn,
                            cert: self.cert,
                            token: t.clone(),
                        };
                    }
                }
                Route::Online { conn }
            }
            DeviceState::PushOnline { .. } => match &self.token {
                Some(t) => Route::Push {
                    cert: self.cert,
                    token: t.clone(),
                },
                None => Route::Skip(SkipReason::NoToken),
            },
            DeviceState::Offline { reason } => Route::Skip(match reason {
                OfflineReason::LoggedOut => SkipReason::LoggedOut,
                OfflineReason::Kicked => SkipReason::Kicked,
                OfflineReason::Expired => SkipReason::Expired,
                OfflineReason::Disconnected => SkipReason::Disconnected,
            }),
        }
    }

    /// The durable form of this device.
    pub fn record(&self) -> DeviceRecord {
        let state = self.state();
        DeviceRecord {
            platform: self.platform,
            state: state.tim_name().to_string(),
            background: matches!(state, DeviceState::Online { background: true }),
            offline_reason: match state {
                DeviceState::Offline { reason } => Some(reason),
                _ => None,
            },
            since: match state {
                DeviceState::PushOnline { since } => since,
                _ => 0,
            },
            token: self.token.as_ref().map(|t| (self.cert, t.to_string())),
        }
    }

    /// Rebuilds a device from its record. A device stored as `Online` comes back `PushOnline`
    /// since `now` (mobile) or `Offline` (desktop): its connection did not survive the restart,
    /// and the retention clock starts when the gateway noticed.
    pub fn from_record(id: &str, rec: &DeviceRecord, token: Option<Arc<str>>, now: u64) -> Device {
        Device::from_stored(id, &rec.view(), token, now)
    }

    /// [`Device::from_record`] from a record read in place (start-up reads millions).
    pub fn from_stored(
        id: &str,
        rec: &StoredRecord<'_>,
        token: Option<Arc<str>>,
        now: u64,
    ) -> Device {
        let mut d = Device::new(id, rec.platform);
        let state = match rec.state {
            "Online" => {
                if rec.platform.is_mobile() {
                    DeviceState::PushOnline { since: now }
                } else {
                    DeviceState::Offline {
                        reason: OfflineReason::Disconnected,
                    }
                }
            }
            "PushOnline" => DeviceState::PushOnline { since: rec.since },
            _ => DeviceState::Offline {
                reason: rec.offline_reason.unwrap_or(OfflineReason::LoggedOut),
            },
        };
        d.set_state(state);
        if let (Some((cert, _)), Some(t)) = (&rec.token, token) {
            d.cert = *cert;
            d.token = Some(t);
        }
        d
    }

    /// Whether [`Device::record`] would write `rec` again unchanged (without building it: a
    /// start-up asks this of every stored device).
    pub fn is_stored_as(&self, rec: &StoredRecord<'_>) -> bool {
        let state = self.state();
        let offline_reason = match state {
            DeviceState::Offline { reason } => Some(reason),
            _ => None,
        };
        let since = match state {
            DeviceState::PushOnline { since } => since,
            _ => 0,
        };
        self.platform == rec.platform
            && state.tim_name() == rec.state
            && matches!(state, DeviceState::Online { background: true }) == rec.background
            && offline_reason == rec.offline_reason
            && since == rec.since
            && self.token.as_deref().map(|t| (self.cert, t)) == rec.token
    }
}

/// A device as written to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub platform: Platform,
    /// `Online`, `PushOnline` or `Offline`.
    pub state: String,
    #[serde(default)]
    pub background: bool,
    #[serde(default)]
    pub offline_reason: Option<OfflineReason>,
    /// For `PushOnline`: since when (unix seconds). For `Online`: when the record was written,
    /// so a restart can start the retention clock.
    #[serde(default)]
    pub since: u64,
    #[serde(default)]
    pub token: Option<(CertificateId, String)>,
}

impl DeviceRecord {
    pub fn view(&self) -> StoredRecord<'_> {
        StoredRecord {
            platform: self.platform,
            state: &self.state,
            background: self.background,
            offline_reason: self.offline_reason,
            since: self.since,
            token: self.token.as_ref().map(|(c, t)| (*c, t.as_str())),
        }
    }
}

/// A [`DeviceRecord`] read in place from the stored bytes: the same JSON fields and defaults,
/// with the strings borrowed, so a start-up decodes millions of records without allocating.
/// A string with JSON escapes in it cannot be borrowed: [`StoredRecord::decode`] then reads a
/// `DeviceRecord` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct StoredRecord<'a> {
    pub platform: Platform,
    pub state: &'a str,
    #[serde(default)]
    pub background: bool,
    #[serde(default)]
    pub offline_reason: Option<OfflineReason>,
    #[serde(default)]
    pub since: u64,
    #[serde(default)]
    pub token: Option<(CertificateId, &'a str)>,
}

impl<'a> StoredRecord<'a> {
    /// Decodes `bytes` in place, or into `owned` (then viewed) when a string has escapes.
    pub fn decode(
        bytes: &'a [u8],
        owned: &'a mut Option<DeviceRecord>,
    ) -> Result<StoredRecord<'a>, serde_json::Error> {
        match serde_json::from_slice::<StoredRecord<'a>>(bytes) {
            Ok(r) => Ok(r),
            Err(_) => Ok(owned.insert(serde_json::from_slice(bytes)?).view()),
        }
    }
}

/// The devices of one user; almost always one. A boxed slice: 16 bytes in the user's table
/// slot and one allocation holding the devices (a `Vec` would be 24 bytes; devices are added
/// rarely, so the exact-size reallocation on each addition costs nothing that matters).
#[derive(Debug, Clone, Default)]
pub struct DeviceList(Box<[Device]>);

impl DeviceList {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Device> {
        self.0.iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Device> {
        self.0.iter_mut()
    }

    pub fn get(&self, id: &str) -> Option<&Device> {
        self.iter().find(|d| d.id == id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Device> {
        self.iter_mut().find(|d| d.id == id)
    }

    /// Inserts or replaces the device with the same id.
    pub fn upsert(&mut self, dev: Device) {
        if let Some(d) = self.get_mut(&dev.id) {
            *d = dev;
            return;
        }
        // Exactly one more: `push` on the old list's `Vec` would allocate room for four.
        let mut v = Vec::with_capacity(self.0.len() + 1);
        v.extend(std::mem::take(&mut self.0));
        v.push(dev);
        self.0 = v.into_boxed_slice();
    }

    /// Whether one of these devices holds `token`.
    pub fn holds(&self, token: &str) -> bool {
        self.iter().any(|d| d.token.as_deref() == Some(token))
    }
}

impl From<Vec<Device>> for DeviceList {
    fn from(devices: Vec<Device>) -> DeviceList {
        DeviceList(devices.into_boxed_slice())
    }
}

/// One user in the registry's user table: the name is the key.
#[derive(Debug, Default)]
pub struct UserEntry {
    pub name: CompactString,
    pub devices: DeviceList,
}

impl Keyed for UserEntry {
    fn key(&self) -> &str {
        &self.name
    }
}

/// One bound token in the reverse index. The token is the device's own `Arc` (stored once);
/// the owner is kept as the hash of its name in the user table, 8 bytes instead of a copy of
/// the name: the owner is the user with that hash whose devices hold the token.
#[derive(Debug)]
pub struct TokenEntry {
    pub token: Arc<str>,
    pub user_hash: u64,
}

impl Keyed for TokenEntry {
    fn key(&self) -> &str {
        &self.token
    }
}
