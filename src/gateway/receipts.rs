//! Delivery receipts: what the vendors tell us after they accepted a notification. A receipt
//! request is bounded (the API caps its size; here a token bucket per certificate caps its
//! rate), verified by the certificate's push service (Xiaomi: the receipt secret echoed in
//! `callback.param`; Huawei: the `X-HUAWEI-CALLBACK-ID` HMAC), and only then applied: delivered and clicked counts, the device's receipts
//! for diagnosis, and an invalid-token receipt unbinds the token the way a synchronous bad-regId
//! answer does. A refused request changes nothing. A request answered 503 partway (the store or
//! Redis failed) is posted again by the vendor: every step can be done again, and each delivered
//! or clicked receipt counts once within a window (its [`Receipt::id`] kept for an hour, at most
//! 100,000 per certificate; in Redis in cluster mode, `cluster::receipts`).

use super::*;
use crate::cluster::receipts::{RECEIPTS_REMEMBERED, RECEIPT_WINDOW_MS};
use crate::domain::receipt::{Receipt, ReceiptError, ReceiptKind, ReceiptSecret};
use crate::providers::{PushService, ReceiptRequest, ServiceVisitor};
use crate::push::bucket::TokenBucket;
use dashmap::DashMap;
use std::collections::{HashMap, HashSet, VecDeque};

/// Why a receipt request was refused. Nothing of a refused request is applied.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptRefusal {
    #[error("no {vendor} certificate with id {id}")]
    UnknownCertificate { vendor: String, id: String },
    #[error("{0}")]
    Refused(#[from] ReceiptError),
    #[error("certificate {id} posts receipts faster than receipts.requests_per_sec")]
    RateLimited { id: CertificateId, retry_after: u64 },
    #[error("{0}")]
    Store(#[from] GatewayError),
}

impl ReceiptRefusal {
    /// The metric label (`pushgate_receipts_refused_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            ReceiptRefusal::UnknownCertificate { .. } => "unknown_certificate",
            ReceiptRefusal::Refused(ReceiptError::Malformed { .. }) => "malformed",
            ReceiptRefusal::Refused(ReceiptError::Unverified(_)) => "unverified",
            ReceiptRefusal::Refused(ReceiptError::Unsupported(_)) => "unsupported",
            ReceiptRefusal::RateLimited { .. } => "rate_limited",
            ReceiptRefusal::Store(_) => "busy",
        }
    }
}

/// What one accepted receipt request changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReceiptSummary {
    /// Receipts (one per token) in the request.
    pub receipts: usize,
    pub delivered: usize,
    pub clicked: usize,
    /// Tokens unbound because the vendor says they are no longer valid.
    pub tokens_unbound: usize,
    /// Receipts that changed nothing: other kinds, resent ones, invalid-token receipts for
    /// tokens no longer bound to this certificate.
    pub ignored: usize,
}

/// The receipt endpoint's per-certificate state: its rate limit, and (embedded mode) the
/// receipts it counted lately.
#[derive(Default)]
pub(crate) struct ReceiptLimits {
    buckets: DashMap<CertificateId, TokenBucket>,
    counted: DashMap<CertificateId, CountedReceipts>,
}

/// The ids ([`Receipt::id`]) of a certificate's receipts counted within the last
/// [`RECEIPT_WINDOW_MS`], at most [`RECEIPTS_REMEMBERED`] (about 40 bytes each): a receipt
/// posted again within them is not counted again. Cluster mode keeps the same in Redis.
#[derive(Default)]
struct CountedReceipts {
    ids: HashSet<[u8; 8]>,
    /// When each was counted (unix ms), oldest first.
    order: VecDeque<(u64, [u8; 8])>,
}

impl CountedReceipts {
    fn first(&mut self, id: [u8; 8], now_ms: u64) -> bool {
        while let Some((at, old)) = self.order.front().copied() {
            let full = self.order.len() as u64 >= RECEIPTS_REMEMBERED;
            if !full && at + RECEIPT_WINDOW_MS > now_ms {
                break;
            }
            self.order.pop_front();
            self.ids.remove(&old);
        }
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back((now_ms, id));
        true
    }
}

impl ReceiptLimits {
    /// Takes one request from the certificate's bucket; the wait in whole seconds when empty.
    fn admit(&self, id: CertificateId, rate: u32, burst: u32) -> Result<(), u64> {
        let now = Instant::now();
        let mut b = self
            .buckets
            .entry(id)
            .or_insert_with(|| TokenBucket::new(rate, burst, now));
        if b.try_take(now) {
            Ok(())
        } else {
            Err(b.wait_time(now).as_secs().max(1))
        }
    }

    /// Whether receipt `id` of certificate `cert` is counted now: false when it was counted
    /// within the window (posted again).
    fn first_count(&self, cert: CertificateId, id: [u8; 8], now_ms: u64) -> bool {
        self.counted.entry(cert).or_default().first(id, now_ms)
    }

    pub(crate) fn forget(&self, id: CertificateId) {
        self.buckets.remove(&id);
        self.counted.remove(&id);
    }
}

/// Parses a receipt request with the certificate's push service.
struct ReadReceipts<'a> {
    cert: &'a Certificate,
    request: &'a ReceiptRequest<'a>,
}

impl ServiceVisitor for ReadReceipts<'_> {
    type Output = Result<Vec<Receipt>, ReceiptError>;

    fn visit<S: PushService>(self, service: Arc<S>) -> Self::Output {
        service.read_receipts(self.cert, self.request)
    }
}

/// Gives certificates stored before receipts existed their secret, and queues it for the
/// store (a lost write only means another secret at the next start).
pub(super) fn with_receipt_secrets(
    mut certificates: Vec<Certificate>,
    store: &StoreHandle,
) -> Vec<Certificate> {
    let mut ops = Vec::new();
    for c in certificates
        .iter_mut()
        .filter(|c| c.receipt_secret.is_none())
    {
        c.receipt_secret = Some(ReceiptSecret::generate());
        ops.push(StoreOp::PutCertificate(Box::new(c.clone())));
    }
    if !ops.is_empty() {
        match store.reserve() {
            Ok(permit) => drop(permit.send(ops)),
            Err(e) => tracing::warn!(error = %e, "storing new receipt secrets failed"),
        }
    }
    certificates
}

impl Gateway {
    /// A vendor's receipt request for certificate `id` (`POST /v1/receipts/{vendor}/{id}`):
    /// verified, then applied; answered once an unbound token is on disk.
    pub async fn receive_receipts(
        &self,
        vendor: &str,
        id: &str,
        request: &ReceiptRequest<'_>,
    ) -> Result<ReceiptSummary, ReceiptRefusal> {
        let result = self.read_and_apply(vendor, id, request).await;
        if let Err(e) = &result {
            // The path's vendor as a label only when it names a certificate's service: the
            // label set stays bounded whatever is posted.
            let label = id
                .parse()
                .ok()
                .and_then(|id| self.certs.get(id))
                .map(|e| self.vendor_name(&e.cert()))
                .filter(|name| *name == vendor)
                .unwrap_or("unknown");
            self.metrics
                .receipts_refused
                .with_label_values(&[label, e.reason()])
                .inc();
            // Debug, not info: a flood of forged requests must not flood the log (it is counted).
            tracing::debug!(vendor = label, reason = e.reason(), error = %e, "receipt request refused");
        }
        result
    }

    async fn read_and_apply(
        &self,
        vendor: &str,
        id: &str,
        request: &ReceiptRequest<'_>,
    ) -> Result<ReceiptSummary, ReceiptRefusal> {
        let unknown = || ReceiptRefusal::UnknownCertificate {
            vendor: vendor.chars().take(32).collect(),
            id: id.chars().take(32).collect(),
        };
        let cert_id: CertificateId = id.parse().map_err(|_| unknown())?;
        let entry = self.certs.get(cert_id).ok_or_else(unknown)?;
        let cert = entry.cert();
        let name = self.vendor_name(&cert);
        if name != vendor {
            return Err(unknown());
        }
        let limits = &self.config.receipts;
        self.receipt_limits
            .admit(cert_id, limits.requests_per_sec, limits.burst)
            .map_err(|retry_after| ReceiptRefusal::RateLimited {
                id: cert_id,
                retry_after,
            })?;
        let parsed = self.senders.ctx().providers.with_service(
            cert.vendor(),
            ReadReceipts {
                cert: &cert,
                request,
            },
        );
        let receipts = parsed?;
        self.apply_receipts(name, &cert, &entry, receipts).await
    }

    async fn apply_receipts(
        &self,
        vendor: &'static str,
        cert: &Certificate,
        entry: &CertEntry,
        receipts: Vec<Receipt>,
    ) -> Result<ReceiptSummary, ReceiptRefusal> {
        // Cluster mode: the shared directory holds the tokens, not this node's registry.
        if let Some(remote) = self.remote() {
            return self
                .apply_shared_receipts(remote.as_ref(), vendor, cert, receipts)
                .await;
        }
        let mut summary = ReceiptSummary {
            receipts: receipts.len(),
            ..ReceiptSummary::default()
        };
        // Reserved before anything changes: a full store refuses the request whole.
        let unbinds = receipts.iter().any(|r| r.kind == ReceiptKind::InvalidToken);
        let permit = if unbinds {
            Some(self.store.reserve().map_err(GatewayError::from)?)
        } else {
            None
        };
        let mut ops = Vec::new();
        // Each receipt with its device: the one its token is bound to under this certificate,
        // or, for an invalid-token receipt, the one it was unbound from.
        let mut applied = Vec::with_capacity(receipts.len());
        for r in receipts {
            let owner = self
                .registry
                .token_owner(&r.token)
                .filter(|(user, device)| {
                    self.registry
                        .devices(user)
                        .iter()
                        .any(|d| d.id == *device && d.cert == cert.id)
                });
            let owner = match r.kind {
                ReceiptKind::InvalidToken => owner
                    .and_then(|_| self.registry.unbind_token(&r.token))
                    .map(|(user, device, record)| {
                        self.metrics.tokens_unbound.inc();
                        // Noted with the unbinding: posted again after a failure, the token
                        // is bound nowhere any more.
                        self.outcomes.record_receipt(
                            &user,
                            &device,
                            r.kind,
                            r.msg_id.as_deref(),
                            r.at_ms,
                        );
                        ops.push(StoreOp::PutDevice {
                            user: user.to_string(),
                            device: device.to_string(),
                            record,
                        });
                        (user, device)
                    }),
                _ => owner,
            };
            applied.push((r, owner));
        }
        // Nothing is counted before the unbinding is on disk: a request answered 503 here is
        // posted again whole, and then counted once.
        if let Some(permit) = permit {
            permit.send(ops).wait().await.map_err(GatewayError::from)?;
        }
        let now = crate::domain::now_millis();
        let mut counted = Vec::with_capacity(applied.len());
        for (r, owner) in &applied {
            let counts = match r.kind {
                ReceiptKind::Delivered | ReceiptKind::Clicked => {
                    // A receipt the vendor resent for the same device and message counts once;
                    // so does one posted again within the window (for a token bound nowhere
                    // now too: the phone got it, and it counts).
                    let new = match owner {
                        Some((user, device)) => self.outcomes.record_receipt(
                            user,
                            device,
                            r.kind,
                            r.msg_id.as_deref(),
                            r.at_ms,
                        ),
                        None => true,
                    };
                    new && self.receipt_limits.first_count(cert.id, r.id(), now)
                }
                ReceiptKind::InvalidToken => {
                    if owner.is_some() {
                        summary.tokens_unbound += 1;
                    } else {
                        summary.ignored += 1;
                    }
                    continue;
                }
                ReceiptKind::Other => false,
            };
            counted.push((r.kind, counts));
        }
        self.count_receipts(vendor, cert, Some(entry), &mut summary, counted);
        Ok(summary)
    }

    /// Cluster mode: a vendor posts a certificate's receipts to any node, so each receipt's
    /// device comes from the shared token index, what it says about the device goes where
    /// every node's diagnosis reads it, and the figures are the cluster's (`cluster::receipts`).
    /// Every step can be done again: a request answered 503 partway — some of it applied — and
    /// posted again (to this node or another) counts each receipt once.
    async fn apply_shared_receipts(
        &self,
        remote: &dyn crate::registry::remote::RemoteDirectory,
        vendor: &'static str,
        cert: &Certificate,
        receipts: Vec<Receipt>,
    ) -> Result<ReceiptSummary, ReceiptRefusal> {
        use futures_util::{StreamExt, TryStreamExt};
        /// Token lookups and device notes in flight at once for one request.
        const AT_ONCE: usize = 32;
        let mut summary = ReceiptSummary {
            receipts: receipts.len(),
            ..ReceiptSummary::default()
        };
        let owners: Vec<Option<(String, String)>> =
            futures_util::stream::iter(receipts.iter().map(|r| async move {
                match r.kind {
                    ReceiptKind::Other => Ok(None),
                    _ => remote.receipt_owner(cert.id, &r.token).await,
                }
            }))
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        // Noted before the tokens are unbound: posted again after a failure, an unbound token
        // has no device any more, and its device's note would be lost.
        let mut by_user: HashMap<&str, Vec<(&str, &Receipt)>> = HashMap::new();
        for (r, owner) in receipts.iter().zip(owners.iter()) {
            if let Some((user, device)) = owner {
                by_user
                    .entry(user.as_str())
                    .or_default()
                    .push((device.as_str(), r));
            }
        }
        futures_util::stream::iter(
            by_user
                .iter()
                .map(|(user, noted)| remote.note_receipts(user, noted)),
        )
        .buffer_unordered(AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
        for r in receipts
            .iter()
            .filter(|r| r.kind == ReceiptKind::InvalidToken)
        {
            // Acknowledged there, and counted, by the path that unbinds the tokens the
            // vendors' answers name invalid; posted again, a token already unbound is ignored.
            match remote.unbind_invalid_token(self, cert.id, &r.token).await? {
                Some(_) => summary.tokens_unbound += 1,
                None => summary.ignored += 1,
            }
        }
        let now_counted = remote.count_receipts(cert.id, &receipts).await?;
        let counted = receipts
            .iter()
            .zip(now_counted)
            .filter(|(r, _)| r.kind != ReceiptKind::InvalidToken)
            .map(|(r, c)| (r.kind, c))
            .collect();
        // The figures are counted in Redis: this node's own (`entry.stats`) stay out of it.
        self.count_receipts(vendor, cert, None, &mut summary, counted);
        Ok(summary)
    }

    /// Counts receipts (kind, counted now) in the summary and `/metrics`, and in `entry`'s
    /// figures when given (embedded mode).
    fn count_receipts(
        &self,
        vendor: &'static str,
        cert: &Certificate,
        entry: Option<&CertEntry>,
        summary: &mut ReceiptSummary,
        counted: Vec<(ReceiptKind, bool)>,
    ) {
        let cert_label = cert.id.to_string();
        for (kind, counts) in counted {
            match kind {
                ReceiptKind::Delivered if counts => {
                    summary.delivered += 1;
                    if let Some(e) = entry {
                        e.stats.receipts_delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    self.metrics
                        .receipts_delivered
                        .with_label_values(&[vendor, &cert_label])
                        .inc();
                }
                ReceiptKind::Clicked if counts => {
                    summary.clicked += 1;
                    if let Some(e) = entry {
                        e.stats.receipts_clicked.fetch_add(1, Ordering::Relaxed);
                    }
                    self.metrics
                        .receipts_clicked
                        .with_label_values(&[vendor, &cert_label])
                        .inc();
                }
                _ => summary.ignored += 1,
            }
        }
    }

    /// Receipt counters of every certificate exist from its start, so a dashboard shows 0
    /// rather than no series before the first receipt (called at scrape).
    pub(super) fn touch_receipt_counters(&self) {
        for e in self.certs.all() {
            let c = e.cert();
            let vendor = self.vendor_name(&c);
            let id = c.id.to_string();
            self.metrics
                .receipts_delivered
                .with_label_values(&[vendor, &id]);
            self.metrics
                .receipts_clicked
                .with_label_values(&[vendor, &id]);
        }
    }

    /// Whether notifications of `cert` ask its vendor for delivery receipts.
    pub(super) fn asks_for_receipts(&self, cert: &Certificate) -> bool {
        struct Asks<'a>(&'a Certificate);
        impl ServiceVisitor for Asks<'_> {
            type Output = bool;
            fn visit<S: PushService>(self, service: Arc<S>) -> bool {
                service.asks_for_receipts(self.0)
            }
        }
        self.senders
            .ctx()
            .providers
            .with_service(cert.vendor(), Asks(cert))
    }

    fn vendor_name(&self, cert: &Certificate) -> &'static str {
        struct Name;
        impl ServiceVisitor for Name {
            type Output = &'static str;
            fn visit<S: PushService>(self, service: Arc<S>) -> &'static str {
                service.name()
            }
        }
        self.senders
            .ctx()
            .providers
            .with_service(cert.vendor(), Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_counts_once_within_the_window_and_the_window_is_bounded() {
        let mut c = CountedReceipts::default();
        let id = |n: u64| n.to_be_bytes();
        assert!(c.first(id(1), 1_000));
        assert!(!c.first(id(1), 2_000), "posted again");
        assert!(c.first(id(2), 2_000));
        // An hour later the first is forgotten: counted again.
        assert!(c.first(id(1), 1_000 + RECEIPT_WINDOW_MS));
        assert!(
            !c.first(id(2), 1_000 + RECEIPT_WINDOW_MS),
            "still in the window"
        );
        for n in 0..2 * RECEIPTS_REMEMBERED {
            c.first(id(100 + n), 1_000 + RECEIPT_WINDOW_MS);
        }
        assert!(c.order.len() as u64 <= RECEIPTS_REMEMBERED);
        assert_eq!(c.ids.len(), c.order.len());
    }
}
