//! The last notification result per device, for "why did this user get no notification?".

use crate::domain::receipt::ReceiptKind;
use crate::providers::DeliveryClass;
use compact_str::CompactString;
use dashmap::DashMap;
use serde::Serialize;
use std::borrow::Cow;
use std::sync::Arc;

/// What happened to the last notification sent to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastNotification {
    /// Unix milliseconds of the vendor's answer.
    pub at: u64,
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

/// Told of every notification's final outcome (cluster mode finishes its queue entries).
pub type OutcomeObserver = Box<dyn Fn(&str, &str, &LastNotification) + Send + Sync>;

/// Last results keyed by (user, device); one small entry per device that was ever pushed to.
#[derive(Default)]
pub struct Outcomes {
    last: DashMap<(CompactString, CompactString), LastNotification>,
    receipts: DashMap<(CompactString, CompactString), ReceiptsSeen>,
    /// Unset in embedded mode.
    observer: std::sync::OnceLock<OutcomeObserver>,
}

impl Outcomes {
    pub fn record(&self, user: &CompactString, device: &CompactString, n: LastNotification) {
        if let Some(o) = self.observer.get() {
            o(user, device, &n);
        }
        self.last.insert((user.clone(), device.clone()), n);
    }

    /// Registers the observer of final outcomes; only the first registration counts.
    pub fn observe(&self, o: OutcomeObserver) {
        let _ = self.observer.set(o);
    }

    pub fn get(&self, user: &str, device: &str) -> Option<LastNotification> {
        self.last
            .get(&(CompactString::from(user), CompactString::from(device)))
            .map(|e| e.value().clone())
    }

    /// Notes one receipt for a device; false when the same kind was already noted for the same
    /// message (a vendor resending a receipt), so it is not counted twice. Receipts may arrive
    /// out of order (a click before the delivery it implies); each kind keeps its own time.
    pub fn record_receipt(
        &self,
        user: &CompactString,
        device: &CompactString,
        kind: ReceiptKind,
        msg_id: Option<&str>,
        at_ms: u64,
    ) -> bool {
        let mut e = self
            .receipts
            .entry((user.clone(), device.clone()))
            .or_default();
        let seen = e.value_mut();
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
    }

    pub fn receipts(&self, user: &str, device: &str) -> Option<ReceiptsSeen> {
        self.receipts
            .get(&(CompactString::from(user), CompactString::from(device)))
            .map(|e| e.value().clone())
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
}
