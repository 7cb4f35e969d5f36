//! The hot path: every registered device of every user, in memory.
//!
//! `users` maps a user id to that user's devices; `tokens` is the reverse index from a vendor
//! token to the user holding it, so that a token re-reported by another user moves in O(1) and a
//! vendor's "bad token" unbinds it in O(1).
//!
//! Lock discipline: a DashMap guard is never held across an `.await`, and never while taking a
//! guard on the same map. Token changes take `token_lock` first, so the two maps change together
//! and a token stays bound to exactly one device.
//!
//! Store order equals memory order: every change of a user's devices is handed to the
//! [`Journal`] while that user's guard is still held (room reserved before the change, the
//! records sent right after it), so two changes of one device reach the disk in the order they
//! were made in memory, whatever the threads do next.

mod device;
pub mod remote;

pub use device::{Device, DeviceList, DeviceRecord};

use crate::domain::{
    token::check_token_shape, CertificateId, DeviceEvent, DeviceState, MultiDevicePolicy, Platform,
    TokenError, TransitionError,
};
use compact_str::CompactString;
use dashmap::DashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Identifies one live WebSocket connection held by this gateway (0 is never used).
pub type ConnId = u64;

/// What one device of a recipient should get for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Connected in the foreground (or background): deliver over the live connection. `conn` is
    /// `None` when the connection is held by the IM cluster (state reported over HTTP).
    Online { conn: Option<ConnId> },
    /// Connected but in the background with a bound token: the connection and a notification.
    OnlineAndPush {
        conn: Option<ConnId>,
        cert: CertificateId,
        token: Arc<str>,
    },
    /// Push-eligible with a bound token.
    Push {
        cert: CertificateId,
        token: Arc<str>,
    },
    /// Nothing to do for this device, with the reason.
    Skip(SkipReason),
}

/// Why a device gets nothing. Every skipped recipient carries one, counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    UnknownUser,
    LoggedOut,
    Kicked,
    Expired,
    Disconnected,
    NoToken,
    PushDisabled,
    OnlineOnly,
    NothingToShow,
    CertificateMissing,
    CertificateBroken,
    QuotaPaused,
    QueueFull,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UnknownUser => "unknown_user",
            SkipReason::LoggedOut => "logged_out",
            SkipReason::Kicked => "kicked",
            SkipReason::Expired => "push_online_expired",
            SkipReason::Disconnected => "disconnected",
            SkipReason::NoToken => "no_push_token",
            SkipReason::PushDisabled => "push_flag_disabled",
            SkipReason::OnlineOnly => "online_only",
            SkipReason::NothingToShow => "nothing_to_show",
            SkipReason::CertificateMissing => "certificate_missing",
            SkipReason::CertificateBroken => "certificate_broken",
            SkipReason::QuotaPaused => "quota_paused",
            SkipReason::QueueFull => "push_queue_full",
        }
    }

    pub const ALL: [SkipReason; 13] = [
        SkipReason::UnknownUser,
        SkipReason::LoggedOut,
        SkipReason::Kicked,
        SkipReason::Expired,
        SkipReason::Disconnected,
        SkipReason::NoToken,
        SkipReason::PushDisabled,
        SkipReason::OnlineOnly,
        SkipReason::NothingToShow,
        SkipReason::CertificateMissing,
        SkipReason::CertificateBroken,
        SkipReason::QuotaPaused,
        SkipReason::QueueFull,
    ];
}

/// A device kicked by a newer login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kicked {
    pub device: CompactString,
    pub platform: Platform,
    pub conn: Option<ConnId>,
    pub record: DeviceRecord,
}

/// The result of a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    pub record: DeviceRecord,
    pub kicked: Vec<Kicked>,
    /// The connection this login replaced on the same device, if any.
    pub replaced_conn: Option<ConnId>,
}

/// The result of a token report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOutcome {
    pub record: DeviceRecord,
    /// The (user, device) that held the token before it moved here, with its new record.
    pub moved_from: Option<(CompactString, CompactString, DeviceRecord)>,
    /// Other devices of the same user that held the token and lost it, with their new records
    /// (each must be persisted too, or a restart gives the token back to them).
    pub cleared_here: Vec<(CompactString, DeviceRecord)>,
    /// The device's previous token, now unbound.
    pub replaced: Option<Arc<str>>,
}

/// Why an event or report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("unknown device '{device}' of user '{user}'")]
    UnknownDevice { user: String, device: String },
    #[error("device '{device}' is registered on {actual}, not {given}")]
    PlatformMismatch {
        device: String,
        actual: Platform,
        given: Platform,
    },
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the connection was replaced by a newer one")]
    StaleConnection,
    #[error("user '{user}' already has {max} devices, the most one user may have (sessions.max_devices_per_user); log one out or raise the limit")]
    TooManyDevices { user: String, max: usize },
    /// The journal (the store's queue) has no room: nothing changed.
    #[error("the store's write queue is full; retry shortly")]
    Busy,
}

/// Where the registry hands the records it changes, under the lock of their user. The
/// gateway's journal is the store's queue; tests and benches pass `&mut NoJournal`.
pub trait Journal {
    /// Reserves room for one write, before anything changes (a refusal changes nothing).
    fn reserve(&mut self) -> Result<(), RegistryError>;
    /// Hands the records changed under the current guard to the store, in the order made.
    fn write(&mut self, changes: Vec<Change>);
}

/// One device's new record, for the store.
pub type Change = (CompactString, CompactString, DeviceRecord);

/// A journal that keeps nothing (tests, benches, changes that are not durable).
pub struct NoJournal;

impl Journal for NoJournal {
    fn reserve(&mut self) -> Result<(), RegistryError> {
        Ok(())
    }
    fn write(&mut self, _: Vec<Change>) {}
}

/// Counts of devices by state, for metrics (kept up to date on every change).
#[derive(Debug, Default)]
pub struct StateCounts {
    pub online: AtomicI64,
    pub background: AtomicI64,
    pub push_online: AtomicI64,
    pub offline: AtomicI64,
    pub tokens: AtomicI64,
}

/// The default of `sessions.max_devices_per_user`: far above a real user's phones, tablets and
/// desktops, low enough that one identifier cannot grow the registry, the store and every
/// per-user answer without bound.
pub const DEFAULT_MAX_DEVICES_PER_USER: usize = 32;

/// The device registry.
pub struct Registry {
    /// user → that user's devices; the hot path of every routing decision.
    users: DashMap<CompactString, DeviceList>,
    /// token → the user holding it (the device is found among that user's few devices).
    tokens: DashMap<Arc<str>, CompactString>,
    /// Serialises token changes so both maps move together (reports are rare next to routing).
    token_lock: Mutex<()>,
    policy: MultiDevicePolicy,
    /// `PushOnline` lifetime in seconds (7 days by default).
    retention: u64,
    /// The most devices one user may have registered (a login of one more is refused).
    max_devices: usize,
    counts: StateCounts,
}

impl Registry {
    pub fn new(policy: MultiDevicePolicy, retention_secs: u64) -> Self {
        Registry {
            users: DashMap::new(),
            tokens: DashMap::new(),
            token_lock: Mutex::new(()),
            policy,
            retention: retention_secs,
            max_devices: DEFAULT_MAX_DEVICES_PER_USER,
            counts: StateCounts::default(),
        }
    }

    /// Sets the most devices one user may have (`sessions.max_devices_per_user`).
    pub fn with_max_devices(mut self, max: usize) -> Self {
        self.max_devices = max.max(1);
        self
    }

    pub fn retention(&self) -> u64 {
        self.retention
    }

    pub fn policy(&self) -> MultiDevicePolicy {
        self.policy
    }

    pub fn counts(&self) -> &StateCounts {
        &self.counts
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    fn count(&self, state: DeviceState, delta: i64) {
        let c = match state {
            DeviceState::Online { background: false } => &self.counts.online,
            DeviceState::Online { background: true } => &self.counts.background,
            DeviceState::PushOnline { .. } => &self.counts.push_online,
            DeviceState::Offline { .. } => &self.counts.offline,
        };
        c.fetch_add(delta, Ordering::Relaxed);
    }

    fn recount(&self, old: Option<DeviceState>, new: DeviceState) {
        if let Some(o) = old {
            self.count(o, -1);
        }
        self.count(new, 1);
    }

    /// Inserts a device as loaded from the store, binding its token. Used at start-up; `now`
    /// is when the devices that were `Online` lost their connection. Returns the device's new
    /// record when it differs from the stored one (a device stored `Online` comes back
    /// `PushOnline` since `now`, or `Offline`): the caller writes it back, or every restart
    /// would start the 7-day retention clock again.
    pub fn restore(
        &self,
        user: &str,
        device: &str,
        rec: DeviceRecord,
        now: u64,
    ) -> Option<DeviceRecord> {
        let _t = self.lock_tokens();
        let user_key = CompactString::from(user);
        let token = rec
            .token
            .as_ref()
            .map(|(_, t)| Arc::<str>::from(t.as_str()));
        let dev = Device::from_record(device, &rec, token.clone(), now);
        let changed = dev.record();
        let rewrite = (changed != rec).then_some(changed);
        self.count(dev.state(), 1);
        if let Some(t) = token {
            // A store written before token moves within a user were persisted can name one
            // token on two devices: count it once.
            if self.tokens.insert(t, user_key.clone()).is_none() {
                self.counts.tokens.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.users.entry(user_key).or_default().upsert(dev);
        rewrite
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, ()> {
        // A poisoned lock only means another thread panicked mid-change; the maps are still usable.
        self.token_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A login of `device`. Applies the multi-device policy: the devices it kicks go `Offline`.
    pub fn login(
        &self,
        user: &str,
        platform: Platform,
        device: &str,
        conn: Option<ConnId>,
        now: u64,
    ) -> Result<LoginOutcome, RegistryError> {
        self.login_journaled(user, platform, device, conn, now, &mut NoJournal)
    }

    /// `login`, handing the changed records to `journal` under the user's lock.
    pub fn login_journaled(
        &self,
        user: &str,
        platform: Platform,
        device: &str,
        conn: Option<ConnId>,
        now: u64,
        journal: &mut dyn Journal,
    ) -> Result<LoginOutcome, RegistryError> {
        let mut entry = self.users.entry(CompactString::from(user)).or_default();
        let list = entry.value_mut();
        if let Some(d) = list.get(device) {
            if d.platform != platform {
                return Err(RegistryError::PlatformMismatch {
                    device: device.to_string(),
                    actual: d.platform,
                    given: platform,
                });
            }
        }
        // Before any kick: a refused login changes nothing.
        if list.get(device).is_none() && list.len() >= self.max_devices {
            return Err(RegistryError::TooManyDevices {
                user: user.to_string(),
                max: self.max_devices,
            });
        }
        if let Some(d) = list.get(device) {
            // Checked before anything changes, so a refused login changes nothing.
            d.state()
                .apply(DeviceEvent::Login, platform, now, self.retention)?;
        }
        journal.reserve()?;
        let mut kicked = Vec::new();
        for d in list.iter_mut() {
            if d.id != device && d.state().is_logged_in() && self.policy.kicks(platform, d.platform)
            {
                let old = d.state();
                let new = old.apply(DeviceEvent::Kicked, d.platform, now, self.retention)?;
                d.set_state(new);
                let conn = d.take_conn();
                self.recount(Some(old), new);
                kicked.push(Kicked {
                    device: d.id.clone(),
                    platform: d.platform,
                    conn,
                    record: d.record(),
                });
            }
        }
        let (record, replaced_conn) = match list.get_mut(device) {
            Some(d) => {
                let old = d.state();
                let new = old.apply(DeviceEvent::Login, platform, now, self.retention)?;
                d.set_state(new);
                let replaced = d.take_conn();
                d.conn = conn.unwrap_or(0);
                self.recount(Some(old), new);
                (d.record(), replaced)
            }
            None => {
                let mut d = Device::new(device, platform);
                d.set_state(DeviceState::Online { background: false });
                d.conn = conn.unwrap_or(0);
                self.recount(None, d.state());
                let rec = d.record();
                list.upsert(d);
                (rec, None)
            }
        };
        let user_key = entry.key().clone();
        let mut changes = vec![(
            user_key.clone(),
            CompactString::from(device),
            record.clone(),
        )];
        changes.extend(
            kicked
                .iter()
                .map(|k| (user_key.clone(), k.device.clone(), k.record.clone())),
        );
        journal.write(changes);
        drop(entry);
        Ok(LoginOutcome {
            record,
            kicked,
            replaced_conn,
        })
    }

    /// Applies a non-login event to a known device. With `conn`, the event only applies while
    /// that connection is still the device's current one (a late close of a replaced socket
    /// must not disconnect the new one). Returns the new state and the device's record.
    pub fn apply(
        &self,
        user: &str,
        device: &str,
        event: DeviceEvent,
        conn: Option<ConnId>,
        now: u64,
    ) -> Result<(DeviceState, DeviceRecord), RegistryError> {
        self.apply_journaled(user, device, event, conn, now, &mut NoJournal)
    }

    /// `apply`, handing the changed record to `journal` under the user's lock.
    pub fn apply_journaled(
        &self,
        user: &str,
        device: &str,
        event: DeviceEvent,
        conn: Option<ConnId>,
        now: u64,
        journal: &mut dyn Journal,
    ) -> Result<(DeviceState, DeviceRecord), RegistryError> {
        let unknown = || RegistryError::UnknownDevice {
            user: user.to_string(),
            device: device.to_string(),
        };
        let mut entry = self.users.get_mut(user).ok_or_else(unknown)?;
        let d = entry.value_mut().get_mut(device).ok_or_else(unknown)?;
        if let Some(c) = conn {
            if d.conn != c {
                return Err(RegistryError::StaleConnection);
            }
        }
        let old = d.state();
        let new = old.apply(event, d.platform, now, self.retention)?;
        journal.reserve()?;
        d.set_state(new);
        if !new.is_connected() {
            d.conn = 0;
        }
        self.recount(Some(old), new);
        let record = d.record();
        journal.write(vec![(
            entry.key().clone(),
            CompactString::from(device),
            record.clone(),
        )]);
        Ok((new, record))
    }

    /// Binds `token` of certificate `cert` to the device (TIM rules: after login; not empty; at
    /// most 256 bytes). A token held by another device moves here. The caller checks that the
    /// certificate exists.
    pub fn set_token(
        &self,
        user: &str,
        device: &str,
        cert: CertificateId,
        token: &str,
    ) -> Result<TokenOutcome, RegistryError> {
        self.set_token_journaled(user, device, cert, token, &mut NoJournal)
    }

    /// `set_token`, handing the changed records to `journal` under each user's lock.
    ///
    /// A token held by another user is taken from that user first (one write under that user's
    /// lock), then bound here (a second write under this user's lock): each device's records
    /// reach the disk in memory's order, and a crash between the two leaves the token bound to
    /// nobody, never to two devices. Both run under `token_lock`, so no other token change
    /// interleaves.
    pub fn set_token_journaled(
        &self,
        user: &str,
        device: &str,
        cert: CertificateId,
        token: &str,
        journal: &mut dyn Journal,
    ) -> Result<TokenOutcome, RegistryError> {
        check_token_shape(token)?;
        let _t = self.lock_tokens();
        let token: Arc<str> = Arc::from(token);
        let logged_in = |u: &str| {
            self.users
                .get(u)
                .and_then(|e| e.value().get(device).map(|d| d.state().is_logged_in()))
                .unwrap_or(false)
        };
        if !logged_in(user) {
            return Err(TokenError::NotLoggedIn.into());
        }
        let previous = self.tokens.get(&token).map(|u| u.value().clone());
        let mut moved_from = None;
        if let Some(prev_user) = previous.filter(|p| p != user) {
            if let Some(mut e) = self.users.get_mut(prev_user.as_str()) {
                let holder = e
                    .value_mut()
                    .iter_mut()
                    .find(|d| d.token.as_deref() == Some(&*token));
                if let Some(other) = holder {
                    journal.reserve()?;
                    other.token = None;
                    let change = (prev_user.clone(), other.id.clone(), other.record());
                    journal.write(vec![change.clone()]);
                    moved_from = Some(change);
                }
            }
            if self.tokens.remove(&token).is_some() {
                self.counts.tokens.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let (record, replaced, cleared_here) = {
            let mut entry = self
                .users
                .get_mut(user)
                .ok_or(RegistryError::Token(TokenError::NotLoggedIn))?;
            let user_key = entry.key().clone();
            let list = entry.value_mut();
            let d = list
                .get_mut(device)
                .ok_or(RegistryError::Token(TokenError::NotLoggedIn))?;
            if !d.state().is_logged_in() {
                return Err(TokenError::NotLoggedIn.into());
            }
            journal.reserve()?;
            let replaced = d.token.replace(token.clone()).filter(|t| **t != *token);
            d.cert = cert;
            let record = d.record();
            // Another device of the same user holding the token loses it.
            let mut cleared_here = Vec::new();
            for other in list.iter_mut() {
                if other.id != device && other.token.as_deref() == Some(&*token) {
                    // The index entry stays (same user); only the holder changes.
                    other.token = None;
                    cleared_here.push((other.id.clone(), other.record()));
                }
            }
            let mut changes = vec![(
                user_key.clone(),
                CompactString::from(device),
                record.clone(),
            )];
            changes.extend(
                cleared_here
                    .iter()
                    .map(|(d, r)| (user_key.clone(), d.clone(), r.clone())),
            );
            journal.write(changes);
            (record, replaced, cleared_here)
        };
        if let Some(old) = &replaced {
            if self.tokens.remove(old).is_some() {
                self.counts.tokens.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if self
            .tokens
            .insert(token.clone(), CompactString::from(user))
            .is_none()
        {
            self.counts.tokens.fetch_add(1, Ordering::Relaxed);
        }
        Ok(TokenOutcome {
            record,
            moved_from,
            cleared_here,
            replaced,
        })
    }

    /// Unbinds a token wherever it is (a vendor said it is invalid). Returns the user, device
    /// and the device's new record.
    pub fn unbind_token(
        &self,
        token: &str,
    ) -> Option<(CompactString, CompactString, DeviceRecord)> {
        self.unbind_token_journaled(token, &mut NoJournal)
    }

    /// `unbind_token`, handing the changed record to `journal` under the user's lock. With no
    /// room in the journal nothing changes (the next bad-token reply tries again).
    pub fn unbind_token_journaled(
        &self,
        token: &str,
        journal: &mut dyn Journal,
    ) -> Option<(CompactString, CompactString, DeviceRecord)> {
        let _t = self.lock_tokens();
        let user = self.tokens.get(token)?.value().clone();
        let mut changed = None;
        if let Some(mut e) = self.users.get_mut(user.as_str()) {
            if let Some(d) = e
                .value_mut()
                .iter_mut()
                .find(|d| d.token.as_deref() == Some(token))
            {
                journal.reserve().ok()?;
                d.token = None;
                let change = (user.clone(), d.id.clone(), d.record());
                journal.write(vec![change.clone()]);
                changed = Some(change);
            }
        }
        if self.tokens.remove(token).is_some() {
            self.counts.tokens.fetch_sub(1, Ordering::Relaxed);
        }
        changed
    }

    /// Unbinds the token of one device (the client disabled push, or logged out for good).
    pub fn clear_token(&self, user: &str, device: &str) -> Option<DeviceRecord> {
        self.clear_token_journaled(user, device, &mut NoJournal)
            .ok()
            .flatten()
    }

    /// `clear_token`, handing the changed record to `journal` under the user's lock.
    pub fn clear_token_journaled(
        &self,
        user: &str,
        device: &str,
        journal: &mut dyn Journal,
    ) -> Result<Option<DeviceRecord>, RegistryError> {
        let _t = self.lock_tokens();
        let Some(mut e) = self.users.get_mut(user) else {
            return Ok(None);
        };
        let user_key = e.key().clone();
        let Some(d) = e.value_mut().get_mut(device) else {
            return Ok(None);
        };
        if d.token.is_none() {
            return Ok(None);
        }
        journal.reserve()?;
        let Some(token) = d.token.take() else {
            return Ok(None);
        };
        let rec = d.record();
        journal.write(vec![(user_key, d.id.clone(), rec.clone())]);
        drop(e);
        if self.tokens.remove(&token).is_some() {
            self.counts.tokens.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(Some(rec))
    }

    /// Hands the current record of one device to `journal` again (the store refused an
    /// earlier write of it). Under the user's lock, like every change, so the disk keeps
    /// memory's order. `false` when the device is unknown; `Busy` when the journal has no room.
    pub fn rewrite_journaled(
        &self,
        user: &str,
        device: &str,
        journal: &mut dyn Journal,
    ) -> Result<bool, RegistryError> {
        // The write lock, as changes take it: no change of this user can pass this rewrite.
        let Some(e) = self.users.get_mut(user) else {
            return Ok(false);
        };
        let Some(d) = e.value().get(device) else {
            return Ok(false);
        };
        journal.reserve()?;
        journal.write(vec![(e.key().clone(), d.id.clone(), d.record())]);
        Ok(true)
    }

    /// Calls `f` with the routing decision of each device of `user`; returns how many devices
    /// the user has (0: unknown user). No allocation on the hot path.
    pub fn route_with(&self, user: &str, now: u64, mut f: impl FnMut(&Device, Route)) -> usize {
        let Some(entry) = self.users.get(user) else {
            return 0;
        };
        let list = entry.value();
        for d in list.iter() {
            f(d, d.route(now, self.retention));
        }
        list.len()
    }

    /// Whether any device of `user` is registered (no allocation, no routing).
    pub fn has_user(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|e| !e.value().is_empty())
    }

    /// A copy of the user's devices (for status queries and diagnosis).
    pub fn devices(&self, user: &str) -> Vec<Device> {
        self.users
            .get(user)
            .map(|e| e.value().iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Who holds `token` now (user, device).
    pub fn token_owner(&self, token: &str) -> Option<(CompactString, CompactString)> {
        let user = self.tokens.get(token)?.value().clone();
        let e = self.users.get(user.as_str())?;
        let d = e
            .value()
            .iter()
            .find(|d| d.token.as_deref() == Some(token))?;
        Some((user.clone(), d.id.clone()))
    }

    /// Moves every `PushOnline` device older than the retention to `Offline`; returns the
    /// changed devices for the store.
    pub fn sweep_expired(&self, now: u64) -> Vec<(CompactString, CompactString, DeviceRecord)> {
        self.sweep_expired_journaled(now, &mut NoJournal)
    }

    /// `sweep_expired`, handing each user's changed records to `journal` under that user's
    /// lock. Stops at the first user the journal has no room for (the next sweep goes on).
    pub fn sweep_expired_journaled(
        &self,
        now: u64,
        journal: &mut dyn Journal,
    ) -> Vec<(CompactString, CompactString, DeviceRecord)> {
        let mut changed = Vec::new();
        for mut e in self.users.iter_mut() {
            let expires = |d: &Device| {
                d.state()
                    .apply(DeviceEvent::Expire, d.platform, now, self.retention)
                    .is_ok()
            };
            if !e.value().iter().any(expires) {
                continue;
            }
            if journal.reserve().is_err() {
                break;
            }
            let user = e.key().clone();
            let mut here = Vec::new();
            for d in e.value_mut().iter_mut() {
                let old = d.state();
                if let Ok(new) = old.apply(DeviceEvent::Expire, d.platform, now, self.retention) {
                    d.set_state(new);
                    self.recount(Some(old), new);
                    here.push((user.clone(), d.id.clone(), d.record()));
                }
            }
            journal.write(here.clone());
            changed.extend(here);
        }
        changed
    }

    /// Checks the invariants: every bound token is in the reverse index pointing at its holder,
    /// every index entry is held by exactly one device, connection ids only on connected
    /// devices. Used by tests; cheap enough for a debug endpoint.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut bound = 0usize;
        for e in self.users.iter() {
            for d in e.value().iter() {
                if d.conn != 0 && !d.state().is_connected() {
                    return Err(format!(
                        "{}/{} has a connection but is {:?}",
                        e.key(),
                        d.id,
                        d.state()
                    ));
                }
                if let Some(t) = &d.token {
                    bound += 1;
                    match self.tokens.get(t) {
                        Some(u) if u.value() == e.key() => {}
                        other => {
                            return Err(format!(
                                "token of {}/{} indexed to {:?}",
                                e.key(),
                                d.id,
                                other.map(|u| u.value().clone())
                            ))
                        }
                    }
                }
            }
        }
        if bound != self.tokens.len() {
            return Err(format!(
                "{bound} devices hold tokens but the index has {}",
                self.tokens.len()
            ));
        }
        Ok(())
    }

    /// Every device, for a full snapshot (tests, migration).
    pub fn for_each_device(&self, mut f: impl FnMut(&str, &Device)) {
        for e in self.users.iter() {
            for d in e.value().iter() {
                f(e.key(), d);
            }
        }
    }
}

#[cfg(test)]
mod tests;
