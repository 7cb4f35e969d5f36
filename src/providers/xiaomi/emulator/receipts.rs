//! Delivery receipts the way Xiaomi posts them (spec §5.4): for every accepted notification that
//! set `extra.callback`, a receipt of each type its `extra.callback.type` asks for, posted as
//! `application/x-www-form-urlencoded` with one field `data`, a JSON object keyed by message id
//! whose entries join the regIds of one type in `targets`. Receipts due in the same batch window
//! share a POST per (callback URL, type, param).
//!
//! Which phone "receives" a notification is the emulator's to decide: every accepted regId is
//! delivered, except those marked uninstalled (`POST /_emulator/regids {"uninstalled":[…]}`),
//! which get a target-invalid (16) receipt instead; `receipt_click_ratio` of deliveries are also
//! clicked. Knobs: `receipt_delay_ms` (before a receipt is due), `receipt_loss_ratio` (receipts
//! never sent, as when Xiaomi's callback fails). The queue and the posting loop are shared with
//! the Huawei emulator (`providers::receipt_poster`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Map, Value};

use super::state::{now_ms, ReceivedNotification, Shared};
use crate::providers::receipt_poster::{run_poster as post_due, Due, ReceiptPost};

/// Receipt types (spec §5.4).
const DELIVERED: i64 = 1;
const CLICKED: i64 = 2;
const TARGET_INVALID: i64 = 16;
/// `extra.callback.type` when absent: 3, delivered-or-clicked.
const DEFAULT_TYPE: i64 = 3;

/// One receipt waiting for its time.
#[derive(Clone, Debug)]
pub(crate) struct PendingReceipt {
    pub due_ms: u64,
    pub url: String,
    pub param: Option<String>,
    pub kind: i64,
    pub msg_id: String,
    pub regid: String,
    pub at_ms: u64,
}

impl Due for PendingReceipt {
    fn due_ms(&self) -> u64 {
        self.due_ms
    }
}

/// Whether `mask` (`extra.callback.type`) asks for receipts of `kind`: a bit mask, where 3 is
/// delivered (1) and clicked (2) together — "3 already includes 1 and 2" (spec §5.4).
fn wants(mask: i64, kind: i64) -> bool {
    mask & kind != 0
}

/// The receipts the accepted `records` will cause, before loss.
pub(crate) fn receipts_for(
    shared: &Shared,
    records: &[ReceivedNotification],
    delay_ms: u64,
    click_ratio: f64,
) -> Vec<PendingReceipt> {
    let mut out = Vec::new();
    let mut rng = rand::rng();
    for r in records {
        let Some(url) = r.extras.get("callback").filter(|u| !u.is_empty()) else {
            continue;
        };
        let mask = r
            .extras
            .get("callback.type")
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(DEFAULT_TYPE);
        let now = now_ms();
        let mut push = |kind: i64, extra_ms: u64| {
            out.push(PendingReceipt {
                due_ms: now.saturating_add(delay_ms).saturating_add(extra_ms),
                url: url.clone(),
                param: r.extras.get("callback.param").cloned(),
                kind,
                msg_id: r.message_id.clone(),
                regid: r.regid.clone(),
                at_ms: now.saturating_add(delay_ms).saturating_add(extra_ms),
            })
        };
        if shared.is_uninstalled(&r.regid) {
            if wants(mask, TARGET_INVALID) {
                push(TARGET_INVALID, 0);
            }
            continue;
        }
        if wants(mask, DELIVERED) {
            push(DELIVERED, 0);
            // `<` with a NaN ratio is false: a bad knob never fires.
            if wants(mask, CLICKED) && rng.random::<f64>() < click_ratio {
                push(CLICKED, 1);
            }
        }
    }
    out
}

/// The `data` field of one POST: entries keyed by message id (spec §5.4).
fn data_json(receipts: &[PendingReceipt]) -> Value {
    let mut by_msg: BTreeMap<&str, (Vec<&str>, u64, &PendingReceipt)> = BTreeMap::new();
    for r in receipts {
        let e = by_msg
            .entry(r.msg_id.as_str())
            .or_insert((Vec::new(), 0, r));
        e.0.push(&r.regid);
        e.1 = e.1.max(r.at_ms);
    }
    let mut data = Map::new();
    for (msg_id, (targets, at, first)) in by_msg {
        let mut entry = json!({
            "type": first.kind,
            "targets": targets.join(","),
            "timestamp": at,
            "extra": {},
        });
        if let (Some(p), Value::Object(o)) = (&first.param, &mut entry) {
            o.insert("param".into(), Value::String(p.clone()));
        }
        data.insert(msg_id.to_owned(), entry);
    }
    Value::Object(data)
}

/// Posts due receipts every `receipt_batch_ms` until the emulator stops: one POST per
/// (callback URL, type, param).
pub(crate) async fn run_poster(shared: Arc<Shared>) {
    let window = Duration::from_millis(shared.rules.receipt_batch_ms);
    post_due("xiaomi", Arc::clone(&shared.receipts), window, posts).await;
}

fn posts(due: Vec<PendingReceipt>) -> Vec<ReceiptPost> {
    let mut groups: BTreeMap<(String, i64, Option<String>), Vec<PendingReceipt>> = BTreeMap::new();
    for r in due {
        groups
            .entry((r.url.clone(), r.kind, r.param.clone()))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|((url, _, _), receipts)| ReceiptPost {
            url,
            content_type: "application/x-www-form-urlencoded;charset=UTF-8",
            headers: Vec::new(),
            body: serde_urlencoded::to_string([("data", data_json(&receipts).to_string())])
                .unwrap_or_default(),
            receipts: receipts.len() as u64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(kind: i64, msg: &str, regid: &str, at: u64) -> PendingReceipt {
        PendingReceipt {
            due_ms: 0,
            url: "http://x/cb".into(),
            param: Some("sec".into()),
            kind,
            msg_id: msg.into(),
            regid: regid.into(),
            at_ms: at,
        }
    }

    #[test]
    fn one_entry_per_message_with_its_targets_joined() {
        let data = data_json(&[
            pending(1, "scm1", "a", 5),
            pending(1, "scm1", "b", 7),
            pending(1, "scm2", "c", 6),
        ]);
        assert_eq!(
            data,
            json!({
                "scm1": {"type": 1, "targets": "a,b", "timestamp": 7, "param": "sec", "extra": {}},
                "scm2": {"type": 1, "targets": "c", "timestamp": 6, "param": "sec", "extra": {}},
            })
        );
    }

    #[test]
    fn type_masks_follow_the_spec() {
        for (mask, delivered, invalid) in [(3, true, false), (19, true, true), (16, false, true)] {
            assert_eq!(wants(mask, DELIVERED), delivered, "{mask}");
            assert_eq!(wants(mask, CLICKED), delivered, "{mask}");
            assert_eq!(wants(mask, TARGET_INVALID), invalid, "{mask}");
        }
        assert!(wants(1, DELIVERED) && !wants(1, CLICKED));
    }
}
