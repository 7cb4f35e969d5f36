//! The hot path: every registered device of every user, in memory.
//!
//! `users` maps a user id to that user's devices; `tokens` is the reverse index from a vendor
//! token to the user holding it, so that a token re-reported by another user moves in O(1) and a
//! vendor's "bad token" unbinds it in O(1). Both are [`table::StrTable`]s (sharded hashbrown
//! tables whose entries carry their key), so the index holds the owner as a hash, not a name.
//!
//! Lock discipline: a shard lock is never held across an `.await`, and never while taking a
//! lock on the same table or the other one (each closure given to a table touches only its
//! entry). Token changes take `token_lock` first, so the two tables change together and a
//! token stays bound to exactly one device.
//!
//! Store order equals memory order: every change of a user's devices is handed to the
//! [`Journal`] while that user's guard is still held (room reserved before the change, the
//! records sent right after it), so two changes of one device reach the disk in the order they
//! were made in memory, whatever the threads do next.

mod device;
pub mod remote;
pub mod restore;
mod table;

pub use device::{Device, DeviceList, DeviceRecord, StoredRecord, TokenEntry, UserEntry};
use table::StrTable;

use crate::domain::{
    token::check_token_shape, CertificateId, DeviceEvent, DeviceState, MultiDevicePolicy, Platform,
    TokenError, TransitionError,
};
use compact_str::CompactString;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
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

impl StateCounts {
    /// The counter of devices in `state`.
    fn of(&self, state: DeviceState) -> &AtomicI64 {
        match state {
            DeviceState::Online { background: false } => &self.online,
            DeviceState::Online { background: true } => &self.background,
            DeviceState::PushOnline { .. } => &self.push_online,
            DeviceState::Offline { .. } => &self.offline,
        }
    }
}

/// The default of `sessions.max_devices_per_user`: far above a real user's phones, tablets and
/// desktops, low enough that one identifier cannot grow the registry, the store and every
/// per-user answer without bound.
pub const DEFAULT_MAX_DEVICES_PER_USER: usize = 32;

/// The device registry.
pub struct Registry {
    /// user → that user's devices; the hot path of every routing decision.
    users: StrTable<UserEntry>,
    /// token → the hash of the user holding it (the device is found among that user's few
    /// devices).
    tokens: StrTable<TokenEntry>,
    /// Serialises token changes so both tables move together (reports are rare next to
    /// routing).
    token_lock: Mutex<()>,
    policy: MultiDevicePolicy,
    /// `PushOnline` lifetime in seconds (7 days by default).
    retention: u64,
    /// The most devices one user may have registered (a login of one more is refused).
    max_devices: usize,
    counts: StateCounts,
    /// Set when the process is about to exit ([`Registry::leak_at_exit`]).
    leak_at_exit: AtomicBool,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if *self.leak_at_exit.get_mut() {
            // The process ends right after: the kernel takes the memory back at once.
            std::mem::forget(std::mem::take(&mut self.users));
            std::mem::forget(std::mem::take(&mut self.tokens));
        }
    }
}

/// Where the registry's memory goes (bytes), for the registry bench and capacity planning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// The user table's slots (name + device list) and control bytes.
    pub users_table: usize,
    /// The device lists' allocations (the device records).
    pub devices: usize,
    /// The token strings (one `Arc<str>` each, shared by device and index).
    pub tokens: usize,
    /// The reverse index's slots and control bytes.
    pub token_index: usize,
}

impl Footprint {
    pub fn total(&self) -> usize {
        self.users_table + self.devices + self.tokens + self.token_index
    }
}

impl Registry {
    pub fn new(policy: MultiDevicePolicy, retention_secs: u64) -> Self {
        Registry {
            users: StrTable::new(),
            tokens: StrTable::new(),
            token_lock: Mutex::new(()),
            policy,
            retention: retention_secs,
            max_devices: DEFAULT_MAX_DEVICES_PER_USER,
            counts: StateCounts::default(),
            leak_at_exit: AtomicBool::new(false),
        }
    }

    /// The process exits once this registry is dropped: its tables are then left to the kernel
    /// instead of freeing every user's device list and token one by one, a cache miss each
    /// (18 s of one core at 10.5M devices, after the server had already stopped).
    pub fn leak_at_exit(&self) {
        self.leak_at_exit.store(true, Ordering::Relaxed);
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

    /// The registry's memory by part (allocations as requested, without allocator overhead).
    /// Walks every user: for benches and occasional reports, not for a hot path.
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint {
            users_table: self.users.table_bytes(),
            token_index: self.tokens.table_bytes(),
            ..Footprint::default()
        };
        self.users.for_each(|u| {
            f.devices += u.devices.len() * std::mem::size_of::<Device>();
            for d in u.devices.iter() {
                if let Some(t) = &d.token {
                    // An `Arc<str>` allocation: two counters, then the bytes.
                    f.tokens += 2 * std::mem::size_of::<usize>() + t.len();
                }
            }
        });
        f
    }

    fn count(&self, state: DeviceState, delta: i64) {
        self.counts.of(state).fetch_add(delta, Ordering::Relaxed);
    }

    fn recount(&self, old: Option<DeviceState>, new: DeviceState) {
        if let Some(o) = old {
            self.count(o, -1);
        }
        self.count(new, 1);
    }

    /// Binds `token` to `user` in the reverse index; counts a new binding.
    fn index_token(&self, token: Arc<str>, user: &str) {
        let user_hash = self.users.hash(user);
        if self
            .tokens
            .insert(TokenEntry { token, user_hash })
            .is_none()
        {
            self.counts.tokens.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes `token` from the reverse index; counts it.
    fn unindex_token(&self, token: &str) {
        if self.tokens.remove(token).is_some() {
            self.counts.tokens.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The user the index names as holder of `token`, with the device holding it.
    fn holder_of(&self, token: &str) -> Option<(CompactString, CompactString)> {
        let user_hash = self.tokens.read(token, |e| e.user_hash)?;
        self.users.read_by_hash(
            user_hash,
            |u| u.devices.holds(token),
            |u| {
                let d = u.devices.iter().find(|d| d.token.as_deref() == Some(token));
                d.map(|d| (u.name.clone(), d.id.clone()))
            },
        )?
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
            self.index_token(t, user);
        }
        self.users
            .write_or_insert(user, || new_user(user), |u| u.devices.upsert(dev));
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
        self.users.write_or_insert(
            user,
            || new_user(user),
            |entry| self.login_locked(entry, platform, device, conn, now, journal),
        )
    }

    fn login_locked(
        &self,
        entry: &mut UserEntry,
        platform: Platform,
        device: &str,
        conn: Option<ConnId>,
        now: u64,
        journal: &mut dyn Journal,
    ) -> Result<LoginOutcome, RegistryError> {
        let user_key = entry.name.clone();
        let list = &mut entry.devices;
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
                user: user_key.to_string(),
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
        self.users
            .write(user, |entry| {
                let d = entry.devices.get_mut(device).ok_or_else(unknown)?;
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
                    entry.name.clone(),
                    CompactString::from(device),
                    record.clone(),
                )]);
                Ok((new, record))
            })
            .unwrap_or_else(|| Err(unknown()))
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
        self.set_token_checked(user, device, cert, token, None, journal, |_| ())
            .map(|(outcome, ())| outcome)
    }

    /// `set_token_journaled` for a report that names the device's platform (refused with
    /// `PlatformMismatch`, changing nothing, when the registered device is on another), and
    /// `inspect` of the device as the report left it, under its user's lock: the HTTP answer is
    /// made there instead of looking the user up twice more.
    #[allow(clippy::too_many_arguments)]
    pub fn set_token_checked<V>(
        &self,
        user: &str,
        device: &str,
        cert: CertificateId,
        token: &str,
        platform: Option<Platform>,
        journal: &mut dyn Journal,
        inspect: impl FnOnce(&Device) -> V,
    ) -> Result<(TokenOutcome, V), RegistryError> {
        check_token_shape(token)?;
        let _t = self.lock_tokens();
        let found = self
            .users
            .read(user, |e| {
                e.devices
                    .get(device)
                    .map(|d| (d.platform, d.state().is_logged_in()))
            })
            .flatten();
        if let (Some(given), Some((actual, _))) = (platform, found) {
            if given != actual {
                return Err(RegistryError::PlatformMismatch {
                    device: device.to_string(),
                    actual,
                    given,
                });
            }
        }
        if !found.is_some_and(|(_, logged_in)| logged_in) {
            return Err(TokenError::NotLoggedIn.into());
        }
        // The token's current holder (one allocation of it, kept when it stays bound).
        let user_hash = self.users.hash(user);
        let previous = self.tokens.read(token, |e| (e.user_hash, e.token.clone()));
        let token: Arc<str> = match &previous {
            Some((_, t)) => t.clone(),
            None => Arc::from(token),
        };
        let mut moved_from = None;
        if let Some((prev_hash, _)) = previous {
            // Held by another user: the user with that hash, other than this one, holding it.
            let taken = self.users.write_by_hash(
                prev_hash,
                |u| u.name != user && u.devices.holds(&token),
                |u| -> Result<Option<Change>, RegistryError> {
                    let Some(other) = u
                        .devices
                        .iter_mut()
                        .find(|d| d.token.as_deref() == Some(&*token))
                    else {
                        return Ok(None);
                    };
                    journal.reserve()?;
                    other.token = None;
                    let change = (u.name.clone(), other.id.clone(), other.record());
                    journal.write(vec![change.clone()]);
                    Ok(Some(change))
                },
            );
            match taken {
                Some(change) => {
                    moved_from = change?;
                    self.unindex_token(&token);
                }
                // The index named a user that no longer holds it (or this user): rebound below.
                None if prev_hash != user_hash => self.unindex_token(&token),
                None => {}
            }
        }
        let (record, replaced, cleared_here, seen) = self
            .users
            .write(user, |entry| {
                let user_key = entry.name.clone();
                let list = &mut entry.devices;
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
                let seen = list.get(device).map(inspect);
                Ok((record, replaced, cleared_here, seen))
            })
            .unwrap_or(Err(RegistryError::Token(TokenError::NotLoggedIn)))?;
        if let Some(old) = &replaced {
            self.unindex_token(old);
        }
        self.index_token(token, user);
        let outcome = TokenOutcome {
            record,
            moved_from,
            cleared_here,
            replaced,
        };
        // The device was found above under the same lock, so `seen` is always there.
        let seen = seen.ok_or(RegistryError::Token(TokenError::NotLoggedIn))?;
        Ok((outcome, seen))
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
        let user_hash = self.tokens.read(token, |e| e.user_hash)?;
        let changed = self.users.write_by_hash(
            user_hash,
            |u| u.devices.holds(token),
            |u| {
                let d = u
                    .devices
                    .iter_mut()
                    .find(|d| d.token.as_deref() == Some(token))?;
                journal.reserve().ok()?;
                d.token = None;
                let change = (u.name.clone(), d.id.clone(), d.record());
                journal.write(vec![change.clone()]);
                Some(change)
            },
        );
        let changed = match changed {
            // The journal had no room: nothing changes, the index keeps the token.
            Some(None) => return None,
            Some(c) => c,
            None => None,
        };
        self.unindex_token(token);
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
        let cleared = self.users.write(user, |e| -> Result<_, RegistryError> {
            let user_key = e.name.clone();
            let Some(d) = e.devices.get_mut(device) else {
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
            Ok(Some((token, rec)))
        });
        let Some((token, rec)) = cleared.transpose()?.flatten() else {
            return Ok(None);
        };
        self.unindex_token(&token);
        Ok(Some(rec))
    }

    /// Notes how the last notification to a device ended (kept in the device's record for
    /// diagnosis; see `push::outcomes` for the details of recent ones). A device that is gone
    /// is left alone.
    pub fn note_push_result(
        &self,
        user: &str,
        device: &str,
        class: crate::providers::DeliveryClass,
        at_secs: u64,
    ) {
        self.users.write(user, |e| {
            if let Some(d) = e.devices.get_mut(device) {
                d.set_last_push(class, at_secs);
            }
        });
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
        self.users
            .write(user, |e| -> Result<bool, RegistryError> {
                let Some(d) = e.devices.get(device) else {
                    return Ok(false);
                };
                journal.reserve()?;
                journal.write(vec![(e.name.clone(), d.id.clone(), d.record())]);
                Ok(true)
            })
            .unwrap_or(Ok(false))
    }

    /// Calls `f` with the routing decision of each device of `user`; returns how many devices
    /// the user has (0: unknown user). No allocation on the hot path.
    pub fn route_with(&self, user: &str, now: u64, mut f: impl FnMut(&Device, Route)) -> usize {
        self.users
            .read(user, |e| {
                for d in e.devices.iter() {
                    f(d, d.route(now, self.retention));
                }
                e.devices.len()
            })
            .unwrap_or(0)
    }

    /// `route_with` for many users at once: `f(i, device, route)` for each device of
    /// `users[i]`, the users grouped by table shard (one lock per shard, not per user), and
    /// each group's devices read before any is routed, so that the cache misses of a batch's
    /// recipients overlap (they were most of a routed recipient's cost). Returns each user's
    /// device count (0: unknown). The calls come in shard order, not in the order of `users`.
    pub fn route_many<S: AsRef<str>>(
        &self,
        users: &[S],
        now: u64,
        mut f: impl FnMut(usize, &Device, Route),
    ) -> Vec<usize> {
        let mut counts = vec![0; users.len()];
        self.users.read_many(users, |found| {
            let touched = found
                .iter()
                .flat_map(|(_, e)| e.devices.iter())
                .fold(0, |acc, d| acc ^ d.touch());
            std::hint::black_box(touched);
            for &(i, e) in found {
                for d in e.devices.iter() {
                    f(i, d, d.route(now, self.retention));
                }
                counts[i] = e.devices.len();
            }
        });
        counts
    }

    /// Whether any device of `user` is registered (no allocation, no routing).
    pub fn has_user(&self, user: &str) -> bool {
        self.users
            .read(user, |e| !e.devices.is_empty())
            .unwrap_or(false)
    }

    /// `f` on `user`'s `device`, under the user's read lock (no copy of the device list: a
    /// token report and a session event each read one device).
    pub fn with_device<R>(
        &self,
        user: &str,
        device: &str,
        f: impl FnOnce(&Device) -> R,
    ) -> Option<R> {
        self.users
            .read(user, |e| e.devices.get(device).map(f))
            .flatten()
    }

    /// A copy of the user's devices (for status queries and diagnosis).
    pub fn devices(&self, user: &str) -> Vec<Device> {
        self.users
            .read(user, |e| e.devices.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Who holds `token` now (user, device).
    pub fn token_owner(&self, token: &str) -> Option<(CompactString, CompactString)> {
        self.holder_of(token)
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
        use std::ops::ControlFlow;
        let mut changed = Vec::new();
        self.users.for_each_mut(|e| {
            let expires = |d: &Device| {
                d.state()
                    .apply(DeviceEvent::Expire, d.platform, now, self.retention)
                    .is_ok()
            };
            if !e.devices.iter().any(expires) {
                return ControlFlow::Continue(());
            }
            if journal.reserve().is_err() {
                return ControlFlow::Break(());
            }
            let user = e.name.clone();
            let mut here = Vec::new();
            for d in e.devices.iter_mut() {
                let old = d.state();
                if let Ok(new) = old.apply(DeviceEvent::Expire, d.platform, now, self.retention) {
                    d.set_state(new);
                    self.recount(Some(old), new);
                    here.push((user.clone(), d.id.clone(), d.record()));
                }
            }
            journal.write(here.clone());
            changed.extend(here);
            ControlFlow::Continue(())
        });
        changed
    }

    /// Checks the invariants: every bound token is in the reverse index pointing at its holder,
    /// every index entry is held by exactly one device, connection ids only on connected
    /// devices. Used by tests; cheap enough for a debug endpoint.
    pub fn check_invariants(&self) -> Result<(), String> {
        // Collected first: no lock on `tokens` is taken while one on `users` is held.
        let mut bound = Vec::new();
        let mut problem = None;
        self.users.for_each(|e| {
            for d in e.devices.iter() {
                if d.conn != 0 && !d.state().is_connected() && problem.is_none() {
                    problem = Some(format!(
                        "{}/{} has a connection but is {:?}",
                        e.name,
                        d.id,
                        d.state()
                    ));
                }
                if let Some(t) = &d.token {
                    bound.push((t.clone(), e.name.clone(), d.id.clone()));
                }
            }
        });
        if let Some(p) = problem {
            return Err(p);
        }
        for (token, user, device) in &bound {
            let indexed = self.tokens.read(token, |i| i.user_hash);
            if indexed != Some(self.users.hash(user)) {
                return Err(format!(
                    "token of {user}/{device} indexed to user hash {indexed:?}"
                ));
            }
        }
        let indexed = self.tokens.len();
        if bound.len() != indexed {
            return Err(format!(
                "{} devices hold tokens but the index has {indexed}",
                bound.len()
            ));
        }
        Ok(())
    }

    /// Every device, for a full snapshot (tests, migration).
    pub fn for_each_device(&self, mut f: impl FnMut(&str, &Device)) {
        self.users.for_each(|e| {
            for d in e.devices.iter() {
                f(&e.name, d);
            }
        });
    }
}

fn new_user(name: &str) -> UserEntry {
    UserEntry {
        name: CompactString::from(name),
        devices: DeviceList::default(),
    }
}

#[cfg(test)]
mod tests;
