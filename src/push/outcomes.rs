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
use serde::Serialize;
use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
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

type Key = (CompactString, CompactString);

/// A key with its hash, computed once per write with the shards' keyed `RandomState` (so the
/// maps are as safe from chosen user names as a std map): choosing the shard, looking in both
/// generations and inserting do not hash the two strings again (four hashes per notification
/// were most of the cost of a write, measured in the vendor drain's profile).
struct Hashed {
    hash: u64,
    key: Key,
}

impl PartialEq for Hashed {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl Eq for Hashed {}

impl Hash for Hashed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Passes a [`Hashed`] key's hash through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Hashed`; anything else still gets a usable hash.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Generation<V> = HashMap<Hashed, V, BuildHasherDefault<PassThrough>>;

/// Shards of [`Recent`]: writers are the certificates' senders and the receipt handler.
const SHARDS: usize = 16;

/// A map that keeps the most recently written keys: writes go to the current generation; a
/// full current generation becomes the previous one, and the older previous one is dropped.
/// So between `kept / 2` and `kept` keys, O(1) per write, no per-entry bookkeeping.
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

impl<V: Clone> Recent<V> {
    fn new(kept: usize) -> Self {
        Recent {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Generations {
                        current: Generation::default(),
                        previous: Generation::default(),
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            per_generation: (kept / 2 / SHARDS).max(1),
        }
    }

    fn hashed(&self, key: Key) -> Hashed {
        Hashed {
            hash: self.hasher.hash_one(&key),
            key,
        }
    }

    fn shard(&self, key: &Hashed) -> std::sync::MutexGuard<'_, Generations<V>> {
        // Bits the maps inside do not use for their buckets (low) nor their tags (top 7).
        let i = (key.hash >> 32) as usize % SHARDS;
        // A poisoned lock only means a writer panicked; the maps are still usable.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &Key) -> Option<V> {
        let key = self.hashed(key.clone());
        let g = self.shard(&key);
        g.current
            .get(&key)
            .or_else(|| g.previous.get(&key))
            .cloned()
    }

    /// `f` on the value of `key` (`None` when not kept), storing what it leaves as the newest.
    fn update<R>(&self, key: Key, f: impl FnOnce(&mut Option<V>) -> R) -> R {
        let key = self.hashed(key);
        let mut g = self.shard(&key);
        let mut v = g.current.remove(&key).or_else(|| g.previous.remove(&key));
        let r = f(&mut v);
        if let Some(v) = v {
            if g.current.len() >= self.per_generation {
                g.previous = std::mem::take(&mut g.current);
            }
            g.current.insert(key, v);
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
    last: Recent<LastNotification>,
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

    pub fn record(&self, user: &CompactString, device: &CompactString, n: LastNotification) {
        if let Some(o) = self.observer.get() {
            o(user, device, &n);
        }
        if let Some(r) = &self.registry {
            r.note_push_result(user, device, n.class, n.at / 1000);
        }
        self.last
            .update((user.clone(), device.clone()), |v| *v = Some(n));
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
        self.last
            .get(&(CompactString::from(user), CompactString::from(device)))
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
        self.receipts
            .update((user.clone(), device.clone()), |slot| {
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
            })
    }

    pub fn receipts(&self, user: &str, device: &str) -> Option<ReceiptsSeen> {
        self.receipts
            .get(&(CompactString::from(user), CompactString::from(device)))
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
