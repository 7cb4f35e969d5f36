//! Delivery receipts in cluster mode (shared/cluster.md §1, §7.7): a vendor posts them to any
//! node behind the load balancer, so everything a receipt changes lives in Redis.
//!
//! - The token's device comes from the shared token index (`pg:t:{h}`), bound under the
//!   receipt's certificate.
//! - What the receipts said about a device (diagnosis) goes to `pg:{u:<user>}:rcpt`: per
//!   device the vendor's message id they are about and when it was delivered, tapped, or the
//!   token named invalid (at most four fields per device; 7-day TTL, as `:last`). Unconfirmed,
//!   as `:last`: losing one in a failover costs a line of diagnosis.
//! - Delivered and clicked receipts are counted in the certificate's figures by one script
//!   that also keeps each counted receipt's id for an hour (at most [`RECEIPTS_REMEMBERED`] per
//!   certificate), so a receipt the vendor posts again after a 503 — some of its request
//!   applied, some not — is counted once, whichever node it reaches.

use super::shared::KEPT_MS;
use super::{eval, keys, scripts, Cluster, ClusterError};
use crate::domain::receipt::{Receipt, ReceiptKind};
use crate::domain::CertificateId;
use crate::push::outcomes::ReceiptsSeen;
use std::collections::HashMap;
use std::sync::Arc;

/// How long a counted receipt's id is kept: a vendor posting a request again after a 503 does
/// so within minutes.
pub const RECEIPT_WINDOW_MS: u64 = 3_600_000;

/// How many counted receipts' ids a certificate keeps at most (about 100 bytes each in Redis):
/// under a heavy receipt rate the window is shorter than [`RECEIPT_WINDOW_MS`].
pub const RECEIPTS_REMEMBERED: u64 = 100_000;

/// Receipts counted per script call: one call stays short for the Redis server.
const COUNT_CHUNK: usize = 1_000;

/// The figure a counted receipt adds to.
fn figure(kind: ReceiptKind) -> Option<&'static str> {
    match kind {
        ReceiptKind::Delivered => Some("receipts_delivered"),
        ReceiptKind::Clicked => Some("receipts_clicked"),
        ReceiptKind::InvalidToken | ReceiptKind::Other => None,
    }
}

fn kind_field(kind: ReceiptKind) -> Option<&'static str> {
    match kind {
        ReceiptKind::Delivered => Some("d"),
        ReceiptKind::Clicked => Some("c"),
        ReceiptKind::InvalidToken => Some("i"),
        ReceiptKind::Other => None,
    }
}

impl Cluster {
    /// The (user, device) `token` is bound to under `cert`, per the shared token index.
    pub async fn receipt_owner(
        &self,
        cert: CertificateId,
        token: &str,
    ) -> Result<Option<(String, String)>, ClusterError> {
        let (o, c, k): (Option<String>, Option<u64>, Option<String>) = self
            .run(
                redis::cmd("HMGET")
                    .arg(keys::token(token))
                    .arg("o")
                    .arg("c")
                    .arg("k"),
            )
            .await?;
        // `k` guards against two tokens sharing the 64-bit tag (an entry without it is older).
        if c != Some(cert) || k.is_some_and(|k| k != token) {
            return Ok(None);
        }
        Ok(o.and_then(|o| keys::split_owner(&o).map(|(u, d)| (u.to_string(), d.to_string()))))
    }

    /// Notes what receipts said about some of `user`'s devices (device, receipt), for
    /// diagnosis on every node. Writing the same receipts again changes nothing.
    pub async fn note_receipts(
        &self,
        user: &str,
        receipts: &[(&str, &Receipt)],
    ) -> Result<(), ClusterError> {
        let mut c = eval(scripts::RECEIPTS_NOTE, &[&keys::user_receipts(user)]);
        c.arg(KEPT_MS);
        let mut any = false;
        for (device, r) in receipts {
            let Some(kind) = kind_field(r.kind) else {
                continue;
            };
            c.arg(*device)
                .arg(kind)
                .arg(r.msg_id.as_deref().unwrap_or(""))
                .arg(r.at_ms);
            any = true;
        }
        if !any {
            return Ok(());
        }
        let _: i64 = self.run(&c).await?;
        Ok(())
    }

    /// Counts the delivered and clicked `receipts` of `cert` in its figures, each once
    /// (see the module's notes). Per receipt, whether it was counted now (false: counted
    /// before, or a kind that is not counted).
    pub async fn count_receipts(
        &self,
        cert: CertificateId,
        receipts: &[Receipt],
    ) -> Result<Vec<bool>, ClusterError> {
        let mut counted = vec![false; receipts.len()];
        let counting: Vec<(usize, &'static str)> = receipts
            .iter()
            .enumerate()
            .filter_map(|(i, r)| figure(r.kind).map(|f| (i, f)))
            .collect();
        let (ids_key, meta) = (keys::cert_receipts(cert), keys::cert_meta(cert));
        for chunk in counting.chunks(COUNT_CHUNK) {
            let mut c = eval(scripts::RECEIPTS_COUNT, &[&ids_key, &meta]);
            c.arg(RECEIPT_WINDOW_MS).arg(RECEIPTS_REMEMBERED);
            for (i, f) in chunk {
                c.arg(&receipts[*i].id()[..]).arg(*f);
            }
            let new: Vec<i64> = self.run(&c).await?;
            for ((i, _), n) in chunk.iter().zip(new) {
                counted[*i] = n == 1;
            }
        }
        Ok(counted)
    }

    /// What the receipts said last about each of `user`'s devices.
    pub async fn device_receipts(
        &self,
        user: &str,
    ) -> Result<HashMap<String, ReceiptsSeen>, ClusterError> {
        let all: HashMap<String, String> = self
            .run(redis::cmd("HGETALL").arg(keys::user_receipts(user)))
            .await?;
        Ok(receipts_of(all))
    }
}

/// The devices' entries of a `pg:{u:<user>}:rcpt` hash (fields that are not one are skipped).
fn receipts_of(all: HashMap<String, String>) -> HashMap<String, ReceiptsSeen> {
    let mut by_device: HashMap<String, ReceiptsSeen> = HashMap::new();
    for (field, value) in all {
        let Some((kind, device)) = field.split_once(':') else {
            continue;
        };
        if !matches!(kind, "m" | "d" | "c" | "i") {
            continue;
        }
        let at = value.parse::<u64>().ok();
        let entry = by_device.entry(device.to_string()).or_default();
        match kind {
            "m" => entry.msg_id = Some(Arc::from(value.as_str())),
            "d" => entry.delivered_at = at,
            "c" => entry.clicked_at = at,
            _ => entry.invalid_token_at = at,
        }
    }
    by_device
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_receipt_hash_reads_back_per_device() {
        let all: HashMap<String, String> = [
            ("m:d1", "m-1"),
            ("d:d1", "10"),
            ("c:d1", "20"),
            ("i:d:2", "30"),
            ("x:d1", "?"),
            ("x:d3", "?"),
            ("nonsense", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let r = receipts_of(all);
        let d1 = &r["d1"];
        assert_eq!(
            (
                d1.msg_id.as_deref(),
                d1.delivered_at,
                d1.clicked_at,
                d1.invalid_token_at
            ),
            (Some("m-1"), Some(10), Some(20), None)
        );
        assert_eq!(
            r["d:2"].invalid_token_at,
            Some(30),
            "a device name with ':'"
        );
        assert_eq!(r.len(), 2);
    }
}
