//! Delivery receipts: what the vendors tell us after they accepted a notification. A receipt
//! request is bounded (the API caps its size; here a token bucket per certificate caps its
//! rate), verified by the certificate's push service (Xiaomi: the receipt secret echoed in
//! `callback.param`; Huawei: the `X-HUAWEI-CALLBACK-ID` HMAC), and only then applied: delivered and clicked counts, the device's receipts
//! for diagnosis, and an invalid-token receipt unbinds the token the way a synchronous bad-regId
//! answer does. A refused request changes nothing.

use super::*;
use crate::domain::receipt::{Receipt, ReceiptError, ReceiptKind, ReceiptSecret};
use crate::providers::{PushService, ReceiptRequest, ServiceVisitor};
use crate::push::bucket::TokenBucket;
use dashmap::DashMap;

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

/// The receipt endpoint's per-certificate rate limits.
#[derive(Default)]
pub(crate) struct ReceiptLimits {
    buckets: DashMap<CertificateId, TokenBucket>,
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

    pub(crate) fn forget(&self, id: CertificateId) {
        self.buckets.remove(&id);
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
        let mut summary = ReceiptSummary {
            receipts: receipts.len(),
            ..ReceiptSummary::default()
        };
        let cert_label = cert.id.to_string();
        // Cluster mode: the shared directory holds the tokens, not this node's registry.
        let remote = self.remote();
        // Reserved before anything changes: a full store refuses the request whole.
        let unbinds = receipts.iter().any(|r| r.kind == ReceiptKind::InvalidToken);
        let permit = if unbinds && remote.is_none() {
            Some(self.store.reserve().map_err(GatewayError::from)?)
        } else {
            None
        };
        let mut ops = Vec::new();
        for r in receipts {
            // The device the token is bound to now, if it is bound under this certificate.
            let owner = self
                .registry
                .token_owner(&r.token)
                .filter(|(user, device)| {
                    self.registry
                        .devices(user)
                        .iter()
                        .any(|d| d.id == *device && d.cert == cert.id)
                });
            match r.kind {
                ReceiptKind::Delivered | ReceiptKind::Clicked => {
                    // A receipt the vendor resent for the same device and message counts once;
                    // one for a token bound nowhere now still counts (the phone got it).
                    let new = match &owner {
                        Some((user, device)) => self.outcomes.record_receipt(
                            user,
                            device,
                            r.kind,
                            r.msg_id.as_deref(),
                            r.at_ms,
                        ),
                        None => true,
                    };
                    if !new {
                        summary.ignored += 1;
                    } else if r.kind == ReceiptKind::Delivered {
                        summary.delivered += 1;
                        entry
                            .stats
                            .receipts_delivered
                            .fetch_add(1, Ordering::Relaxed);
                        self.metrics
                            .receipts_delivered
                            .with_label_values(&[vendor, &cert_label])
                            .inc();
                    } else {
                        summary.clicked += 1;
                        entry.stats.receipts_clicked.fetch_add(1, Ordering::Relaxed);
                        self.metrics
                            .receipts_clicked
                            .with_label_values(&[vendor, &cert_label])
                            .inc();
                    }
                }
                ReceiptKind::InvalidToken => {
                    let unbound = match remote {
                        // Acknowledged there, and counted, by the path that unbinds the tokens
                        // the vendors' answers name invalid. A failure answers 503: the vendor
                        // posts again, and what was already unbound is then ignored.
                        Some(remote) => remote
                            .unbind_invalid_token(self, cert.id, &r.token)
                            .await?
                            .map(|(u, d)| (CompactString::from(u), CompactString::from(d))),
                        None => owner
                            .as_ref()
                            .and_then(|_| self.registry.unbind_token(&r.token))
                            .map(|(user, device, record)| {
                                self.metrics.tokens_unbound.inc();
                                ops.push(StoreOp::PutDevice {
                                    user: user.to_string(),
                                    device: device.to_string(),
                                    record,
                                });
                                (user, device)
                            }),
                    };
                    let Some((user, device)) = unbound else {
                        summary.ignored += 1;
                        continue;
                    };
                    summary.tokens_unbound += 1;
                    self.outcomes.record_receipt(
                        &user,
                        &device,
                        r.kind,
                        r.msg_id.as_deref(),
                        r.at_ms,
                    );
                }
                ReceiptKind::Other => summary.ignored += 1,
            }
        }
        if let Some(permit) = permit {
            permit.send(ops).wait().await.map_err(GatewayError::from)?;
        }
        Ok(summary)
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
