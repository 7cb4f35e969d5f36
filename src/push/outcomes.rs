//! The last notification result per device, for "why did this user get no notification?".
//!
//! Kept in two parts so memory stays bounded with millions of devices pushed to:
//! - how the last notification ended and when, for every device, inline in the device's
//!   registry record (5 bytes that were padding; `Registry::note_push_result`);
//! - the details (vendor code, text, message and trace ids) and the receipts seen, for the
//!   devices pushed to most recently only: at most [`RECENT_KEPT`] devices each, at least half
//!   that many. Diagnosis of an older result shows its class and time and says the details
//!   are no longer kept.

use crate::domain::receipt::ReceiptKind;
use crate::providers::DeliveryClass;
use crate::registry::{Device, Registry};
use compact_str::CompactString;
use hashbrown::HashTable;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

/// How many devices' result details (and, separately, receipts) are kept at most: a few tens
/// of megabytes whatever the number of devices.
pub const RECENT_KEPT: usize = 65_536;

/// What happened to the last notification sent to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastNotification {
    /// Unix milliseconds of the vendor's answer.
    pub at: u64,
    /// Absent when the details are no longer kept (see `detail`).
    #[serde(skip_serializing_if = "is_zero")]
    pub message_id: u64,
    pub certificate_id: u64,
    /// How it ended: delivered, bad_token, misconfigured, …
    pub class: DeliveryClass,
    pub vendor_code: Option<i64>,
    /// Shared by every notification of one vendor request.
    pub trace_id: Option<Arc<str>>,
    pub msg_id: Option<Arc<str>>,
    pub detail: Cow<'static, str>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl LastNotification {
    /// The result as a device's record keeps it once the details are gone.
    pub fn from_device(d: &Device) -> Option<LastNotification> {
        let (class, at_secs) = d.last_push()?;
        Some(LastNotification {
            at: at_secs * 1000,
            message_id: 0,
            certificate_id: d.cert,
            class,
            vendor_code: None,
            trace_id: None,
            msg_id: None,
            detail: Cow::Borrowed(
                "the vendor's full answer is no longer kept (the gateway keeps it for the devices pushed to most recently)",
            ),
        })
    }
}

/// What one vendor reply (or one run of its notifications) ended as: everything of a
/// [`LastNotification`] but the message id, shared behind an `Arc` by every device that run
/// finished, so the recent map holds 16 bytes per device instead of a full result.
#[derive(Debug, PartialEq, Eq)]
pub struct SharedResult {
    pub at: u64,
    pub certificate_id: u64,
    pub class: DeliveryClass,
    pub vendor_code: Option<i64>,
    pub trace_id: Option<Arc<str>>,
    pub msg_id: Option<Arc<str>>,
    pub detail: Cow<'static, str>,
}

/// One device's last result in the recent map: its message and the result it shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub message_id: u64,
    pub result: Arc<SharedResult>,
}

impl Kept {
    /// A result of its own (not shared with other devices).
    pub fn of(n: LastNotification) -> Kept {
        Kept {
            message_id: n.message_id,
            result: Arc::new(SharedResult {
                at: n.at,
                certificate_id: n.certificate_id,
                class: n.class,
                vendor_code: n.vendor_code,
                trace_id: n.trace_id,
                msg_id: n.msg_id,
                detail: n.detail,
            }),
        }
    }

    /// The result as diagnosis shows it.
    pub fn to_last(&self) -> LastNotification {
        let r = &*self.result;
        LastNotification {
            at: r.at,
            message_id: self.message_id,
            certificate_id: r.certificate_id,
            class: r.class,
            vendor_code: r.vendor_code,
            trace_id: r.trace_id.clone(),
            msg_id: r.msg_id.clone(),
            detail: r.detail.clone(),
        }
    }
}

/// Finished notifications' results waiting for [`Outcomes::record_batch`], already hashed
/// and sorted by the recent map's shard (so recording them moves each once).
pub struct ResultBatch {
    shards: Vec<Vec<Slot<Kept>>>,
    len: usize,
}

impl ResultBatch {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What the vendor's receipts said last about a device (see `domain::receipt`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReceiptsSeen {
    /// The vendor's message id the receipts are about; a receipt for another one starts over.
    pub msg_id: Option<Arc<str>>,
    /// Unix milliseconds the notification reached the phone, as the vendor reports it.
    pub delivered_at: Option<u64>,
    /// Unix milliseconds the user tapped it.
    pub clicked_at: Option<u64>,
    /// Unix milliseconds the vendor said the token is no longer valid (the token was unbound).
    pub invalid_token_at: Option<u64>,
}

/// One device's value in [`Recent`], with its key and the key's hash (computed once per write
/// with the map's keyed `RandomState`, so the map is as safe from chosen user names as a std
/// map; choosing the shard, looking in both generations and inserting do not hash the two
/// strings again).
struct Slot<V> {
    hash: u64,
    user: CompactString,
    device: CompactString,
    /// `None` only while an update runs.
    value: Option<V>,
}

type Generation<V> = HashTable<Slot<V>>;

/// The shard of a key's hash: bits the tables inside do not use for their buckets (low) nor
/// their tags (top 7).
fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

/// Shards of [`Recent`]: writers are the certificates' senders and the receipt handler.
const SHARDS: usize = 16;

/// A map that keeps the most recently written keys: writes go to the current generation; a
/// full current generation becomes the previous one, and the older previous one is dropped
/// (handed to the map's `evicted` first). So between `kept / 2` and `kept` keys, O(1) per
/// write, no per-entry bookkeeping.
struct Recent<V> {
    shards: Box<[Mutex<Generations<V>>]>,
    hasher: RandomState,
    /// Keys per generation per shard.
    per_generation: usize,
}

struct Generations<V> {
    current: Generation<V>,
    previous: Generation<V>,
}

impl<V> Recent<V> {
    fn new(kept: usize) -> Self {
        Recent {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Generations {
                        current: Generation::new(),
                        previous: Generation::new(),
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            per_generation: (kept / 2 / SHARDS).max(1),
        }
    }

    fn hash(&self, user: &str, device: &str) -> u64 {
        self.hasher.hash_one((user, device))
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Generations<V>> {
        // A poisoned lock only means a writer panicked; the maps are still usable.
        self.shards[shard_of(hash)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn get<R>(&self, user: &str, device: &str, f: impl FnOnce(&V) -> R) -> Option<R> {
        let hash = self.hash(user, device);
        let g = self.shard(hash);
        let is = |s: &Slot<V>| s.user == user && s.device == device;
        g.current
            .find(hash, is)
            .or_else(|| g.previous.find(hash, is))
            .and_then(|s| s.value.as_ref())
            .map(f)
    }

    /// `f` on the value of `user`'s `device` (`None` when not kept), storing what it leaves
    /// as the newest. A generation dropped to make room goes to `evicted` first, under the
    /// shard's lock (so a reader never finds a key in neither place).
    fn update<R>(
        &self,
        user: &CompactString,
        device: &CompactString,
        f: impl FnOnce(&mut Option<V>) -> R,
        evicted: impl FnOnce(Generation<V>),
    ) -> R {
        let hash = self.hash(user, device);
        let mut g = self.shard(hash);
        let mut evicted = Some(evicted);
        self.update_locked(&mut g, hash, user, device, f, |gone| {
            if let Some(e) = evicted.take() {
                e(gone)
            }
        })
    }

    /// Stores each slot's value as its device's newest, like `update` with `*v = value`, a
    /// shard at a time (the slots come sorted by shard, [`ResultBatch`]): one lock per shard
    /// rather than per value, and a shard's keys looked up before any is written, so that
    /// their cache misses overlap. The slots move into the map as they are (their key is not
    /// copied again). A device given twice keeps the later value.
    fn put_sorted(&self, shards: &mut [Vec<Slot<V>>], mut evicted: impl FnMut(Generation<V>)) {
        for (shard, group) in shards.iter_mut().enumerate() {
            if group.is_empty() {
                continue;
            }
            let mut g = self.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
            let seen = group
                .iter()
                .filter(|s| {
                    let is = |o: &Slot<V>| o.user == s.user && o.device == s.device;
                    g.current.find(s.hash, is).is_some() || g.previous.find(s.hash, is).is_some()
                })
                .count();
            std::hint::black_box(seen);
            for slot in group.drain(..) {
                self.put_locked(&mut g, slot, &mut evicted);
            }
        }
    }

    /// `slot` as its device's newest value (in place when in the current generation).
    fn put_locked(
        &self,
        g: &mut Generations<V>,
        slot: Slot<V>,
        mut evicted: impl FnMut(Generation<V>),
    ) {
        let is = |s: &Slot<V>| s.user == slot.user && s.device == slot.device;
        if let Some(s) = g.current.find_mut(slot.hash, is) {
            s.value = slot.value;
            return;
        }
        if let Ok(e) = g.previous.find_entry(slot.hash, is) {
            e.remove();
        }
        if g.current.len() >= self.per_generation {
            let fresh = Generation::with_capacity(self.per_generation);
            let full = std::mem::replace(&mut g.current, fresh);
            evicted(std::mem::replace(&mut g.previous, full));
        }
        g.current.insert_unique(slot.hash, slot, |s| s.hash);
    }

    fn update_locked<R>(
        &self,
        g: &mut Generations<V>,
        hash: u64,
        user: &CompactString,
        device: &CompactString,
        f: impl FnOnce(&mut Option<V>) -> R,
        mut evicted: impl FnMut(Generation<V>),
    ) -> R {
        let is = |s: &Slot<V>| s.user == *user && s.device == *device;
        // Written again while in the current generation (a device pushed to often): in place.
        if let Some(s) = g.current.find_mut(hash, is) {
            let r = f(&mut s.value);
            if s.value.is_none() {
                if let Ok(e) = g.current.find_entry(hash, is) {
                    e.remove();
                }
            }
            return r;
        }
        let mut value = match g.previous.find_entry(hash, is) {
            Ok(e) => e.remove().0.value,
            Err(_) => None,
        };
        let r = f(&mut value);
        if value.is_some() {
            if g.current.len() >= self.per_generation {
                // The new generation fills to the same size: made at that size once, rather
                // than rehashed on its way there.
                let fresh = Generation::with_capacity(self.per_generation);
                let full = std::mem::replace(&mut g.current, fresh);
                evicted(std::mem::replace(&mut g.previous, full));
            }
            g.current.insert_unique(
                hash,
                Slot {
                    hash,
                    user: user.clone(),
                    device: device.clone(),
                    value,
                },
                |s| s.hash,
            );
        }
        r
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let g = s.lock().unwrap_or_else(|e| e.into_inner());
                g.current.len() + g.previous.len()
            })
            .sum()
    }
}

/// Told of every notification's final outcome (cluster mode finishes its queue entries).
pub type OutcomeObserver = Box<dyn Fn(&str, &str, &LastNotification) + Send + Sync>;

/// Told of each token a vendor named invalid (cluster mode unbinds it in Redis).
pub type InvalidTokenHook = Box<dyn Fn(&str) + Send + Sync>;

/// Last results and receipts per (user, device).
pub struct Outcomes {
    /// Where each device's last class and time are kept for good (its registry record);
    /// `None` for a sender tested on its own.
    registry: Option<Arc<Registry>>,
    last: Recent<Kept>,
    receipts: Recent<ReceiptsSeen>,
    /// Unset in embedded mode.
    observer: std::sync::OnceLock<OutcomeObserver>,
    /// Cluster mode: told of each token a vendor named invalid (unbound in the shared
    /// directory); unset in embedded mode.
    invalid_tokens: std::sync::OnceLock<InvalidTokenHook>,
}

impl Default for Outcomes {
    fn default() -> Self {
        Outcomes {
            registry: None,
            last: Recent::new(RECENT_KEPT),
            receipts: Recent::new(RECENT_KEPT),
            observer: std::sync::OnceLock::new(),
            invalid_tokens: std::sync::OnceLock::new(),
        }
    }
}

impl Outcomes {
    /// Outcomes that also note each result in the device's record in `registry`.
    pub fn new(registry: Arc<Registry>) -> Outcomes {
        Outcomes {
            registry: Some(registry),
            ..Outcomes::default()
        }
    }

    /// Notes the last result of `user`'s `device`. The device's registry record gets the
    /// result's class and time only when the details leave the recent map (diagnosis reads
    /// the details while they are kept): a write of the user table per notification was a
    /// tenth of a vendor drain's CPU, and a device pushed to again meanwhile is written once.
    pub fn record(&self, user: &CompactString, device: &CompactString, n: LastNotification) {
        if let Some(o) = self.observer.get() {
            o(user, device, &n);
        }
        let kept = Kept::of(n);
        self.last.update(
            user,
            device,
            |v| *v = Some(kept),
            |gone| self.keep_in_records(gone),
        );
    }

    /// Details that leave the recent map: each device's record keeps the class and time.
    fn keep_in_records(&self, gone: Generation<Kept>) {
        if let Some(r) = &self.registry {
            for s in gone {
                if let Some(k) = &s.value {
                    r.note_push_result(&s.user, &s.device, k.result.class, k.result.at / 1000);
                }
            }
        }
    }

    /// An empty batch of results for [`Outcomes::record_batch`].
    pub fn batch(&self) -> ResultBatch {
        ResultBatch {
            shards: (0..SHARDS).map(|_| Vec::new()).collect(),
            len: 0,
        }
    }

    /// Adds a finished notification's result to `batch` (its key hashed once, here).
    pub fn add(
        &self,
        batch: &mut ResultBatch,
        user: CompactString,
        device: CompactString,
        kept: Kept,
    ) {
        let hash = self.last.hash(&user, &device);
        batch.len += 1;
        batch.shards[shard_of(hash)].push(Slot {
            hash,
            user,
            device,
            value: Some(kept),
        });
    }

    /// `record` for every result in `batch` (a vendor reply's, or a pump's), the recent map
    /// written a shard at a time; `batch` is left empty with its room. A device given twice
    /// keeps the later result.
    pub fn record_batch(&self, batch: &mut ResultBatch) {
        if batch.len == 0 {
            return;
        }
        batch.len = 0;
        if let Some(o) = self.observer.get() {
            for s in batch.shards.iter().flatten() {
                if let Some(k) = &s.value {
                    o(&s.user, &s.device, &k.to_last());
                }
            }
        }
        self.last
            .put_sorted(&mut batch.shards, |gone| self.keep_in_records(gone));
    }

    /// `record` for many notifications, the recent map written a shard at a time. A device
    /// given twice keeps the later result.
    pub fn record_many(&self, results: Vec<(CompactString, CompactString, LastNotification)>) {
        let mut batch = self.batch();
        for (user, device, n) in results {
            self.add(&mut batch, user, device, Kept::of(n));
        }
        self.record_batch(&mut batch);
    }

    /// Registers who unbinds the tokens vendors name invalid outside this process (cluster
    /// mode); only the first registration counts.
    pub fn on_invalid_token(&self, f: InvalidTokenHook) {
        let _ = self.invalid_tokens.set(f);
    }

    /// A vendor named `token` invalid: tells the registered hook, if any.
    pub fn token_invalid(&self, token: &str) {
        if let Some(f) = self.invalid_tokens.get() {
            f(token);
        }
    }

    /// Registers the observer of final outcomes; only the first registration counts.
    pub fn observe(&self, o: OutcomeObserver) {
        let _ = self.observer.set(o);
    }

    /// The last result with its details, while they are kept.
    pub fn get(&self, user: &str, device: &str) -> Option<LastNotification> {
        self.last.get(user, device, Kept::to_last)
    }

    /// How many devices' details are kept now (at most [`RECENT_KEPT`]).
    pub fn details_kept(&self) -> usize {
        self.last.len()
    }

    /// Notes one receipt for a device; false when the same kind was already noted for the same
    /// message (a vendor resending a receipt), so it is not counted twice. Receipts may arrive
    /// out of order (a click before the delivery it implies); each kind keeps its own time.
    /// Receipts are kept for recently seen devices only, like the details above: a receipt
    /// resent after its device's entry was dropped counts again.
    pub fn record_receipt(
        &self,
        user: &CompactString,
        device: &CompactString,
        kind: ReceiptKind,
        msg_id: Option<&str>,
        at_ms: u64,
    ) -> bool {
        self.receipts.update(
            user,
            device,
            |slot| {
                let seen = slot.get_or_insert_with(ReceiptsSeen::default);
                if kind == ReceiptKind::InvalidToken {
                    seen.invalid_token_at = Some(at_ms);
                    return true;
                }
                if seen.msg_id.as_deref() != msg_id {
                    *seen = ReceiptsSeen {
                        msg_id: msg_id.map(Arc::from),
                        invalid_token_at: seen.invalid_token_at,
                        ..ReceiptsSeen::default()
                    };
                }
                let slot = match kind {
                    ReceiptKind::Delivered => &mut seen.delivered_at,
                    ReceiptKind::Clicked => &mut seen.clicked_at,
                    ReceiptKind::InvalidToken | ReceiptKind::Other => return false,
                };
                let new = slot.is_none();
                *slot = Some(at_ms);
                new
            },
            drop,
        )
    }

    pub fn receipts(&self, user: &str, device: &str) -> Option<ReceiptsSeen> {
        self.receipts.get(user, device, ReceiptsSeen::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_keep_each_kind_and_start_over_for_another_message() {
        let o = Outcomes::default();
        let (u, d) = (CompactString::from("u"), CompactString::from("d"));
        assert!(o.record_receipt(&u, &d, ReceiptKind::Clicked, Some("m1"), 20));
        assert!(o.record_receipt(&u, &d, ReceiptKind::Delivered, Some("m1"), 10));
        assert!(
            !o.record_receipt(&u, &d, ReceiptKind::Delivered, Some("m1"), 10),
            "a resent receipt is not new"
        );
        let seen = o.receipts("u", "d").unwrap_or_default();
        assert_eq!(
            (seen.delivered_at, seen.clicked_at, seen.msg_id.as_deref()),
            (Some(10), Some(20), Some("m1"))
        );
        o.record_receipt(&u, &d, ReceiptKind::InvalidToken, Some("m1"), 30);
        o.record_receipt(&u, &d, ReceiptKind::Delivered, Some("m2"), 40);
        let seen = o.receipts("u", "d").unwrap_or_default();
        assert_eq!(
            (seen.delivered_at, seen.clicked_at, seen.invalid_token_at),
            (Some(40), None, Some(30))
        );
        assert_eq!(o.receipts("u", "other"), None);
    }

    fn result(class: DeliveryClass, at: u64) -> LastNotification {
        LastNotification {
            at,
            message_id: 7,
            certificate_id: 1,
            class,
            vendor_code: Some(0),
            trace_id: None,
            msg_id: None,
            detail: Cow::Borrowed("ok"),
        }
    }

    #[test]
    fn results_recorded_together_keep_the_later_of_a_device_and_stay_bounded() {
        use crate::domain::{MultiDevicePolicy, Platform};
        let registry = Arc::new(Registry::new(MultiDevicePolicy::PerPlatform, 86_400));
        registry
            .login("u", Platform::Android, "d", None, 1)
            .unwrap();
        let o = Outcomes::new(registry.clone());
        let key = |u: &str| (CompactString::from(u), CompactString::from("d"));
        let (u, d) = key("u");
        o.record_many(vec![
            (
                u.clone(),
                d.clone(),
                result(DeliveryClass::Transient, 4_000),
            ),
            (
                key("v").0,
                d.clone(),
                result(DeliveryClass::Delivered, 4_000),
            ),
            (u.clone(), d.clone(), result(DeliveryClass::BadToken, 5_000)),
        ]);
        assert_eq!(
            o.get("u", "d").map(|n| n.class),
            Some(DeliveryClass::BadToken)
        );
        assert_eq!(
            o.get("v", "d").map(|n| n.class),
            Some(DeliveryClass::Delivered)
        );
        let many = (0..2 * RECENT_KEPT)
            .map(|i| {
                let (x, d) = key(&format!("x{i}"));
                (x, d, result(DeliveryClass::Delivered, 6_000))
            })
            .collect();
        o.record_many(many);
        assert!(o.details_kept() <= RECENT_KEPT);
        assert!(o.details_kept() >= RECENT_KEPT / 2);
        assert_eq!(o.get("u", "d"), None);
        let dev = &registry.devices("u")[0];
        assert_eq!(
            dev.last_push(),
            Some((DeliveryClass::BadToken, 5)),
            "the record keeps the class and time of the details that left"
        );
    }

    #[test]
    fn details_are_bounded_and_the_device_record_keeps_class_and_time() {
        use crate::domain::{MultiDevicePolicy, Platform};
        let registry = Arc::new(Registry::new(MultiDevicePolicy::PerPlatform, 86_400));
        let (u, d) = (CompactString::from("u"), CompactString::from("d"));
        registry
            .login("u", Platform::Android, "d", None, 1)
            .unwrap();
        let o = Outcomes::new(registry.clone());
        o.record(&u, &d, result(DeliveryClass::BadToken, 5_000));
        assert_eq!(o.get("u", "d").map(|n| n.vendor_code), Some(Some(0)));
        // Many more devices pushed to since: the details of "u"/"d" leave the store.
        for i in 0..2 * RECENT_KEPT {
            let other = CompactString::from(format!("x{i}"));
            o.record(&other, &d, result(DeliveryClass::Delivered, 6_000));
        }
        assert!(o.details_kept() <= RECENT_KEPT);
        assert!(o.details_kept() >= RECENT_KEPT / 2);
        assert_eq!(o.get("u", "d"), None);
        // The device's own record still says how it ended and when.
        let dev = &registry.devices("u")[0];
        let kept = LastNotification::from_device(dev).expect("class and time kept");
        assert_eq!(
            (kept.class, kept.at, kept.message_id),
            (DeliveryClass::BadToken, 5_000, 0)
        );
        let json = serde_json::to_value(&kept).unwrap();
        assert!(
            json.get("message_id").is_none(),
            "no made-up message id: {json}"
        );
    }
}
