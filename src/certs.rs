//! The certificate book: every certificate with its health and delivery figures, read by
//! dispatch on the hot path (atomics only) and by the console.

use crate::domain::{Certificate, CertificateId};
use crate::providers::DeliveryClass;
use dashmap::DashMap;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Delivery figures of one certificate since start.
#[derive(Debug, Default)]
pub struct CertStats {
    pub sent: AtomicU64,
    /// Vendor answers of "too fast" (10027 and kin), each followed by a back-off.
    pub rate_limited: AtomicU64,
    /// Indexed by [`DeliveryClass::failure_index`].
    failed: [AtomicU64; DeliveryClass::FAILURES.len()],
    /// Notifications the vendor's receipts say reached the phone.
    pub receipts_delivered: AtomicU64,
    /// Notifications the vendor's receipts say the user tapped.
    pub receipts_clicked: AtomicU64,
    /// Cluster mode: the figures of every node together, as last read from Redis (shown
    /// instead of this node's own).
    cluster: RwLock<Option<CertFigures>>,
    /// Cluster mode: how much of this node's own figures is already added to Redis's.
    flushed: std::sync::Mutex<CertFigures>,
}

/// The delivery figures of one certificate as plain numbers: one node's, or the cluster's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFigures {
    pub sent: u64,
    pub rate_limited: u64,
    /// Indexed by [`DeliveryClass::failure_index`].
    pub failed: [u64; DeliveryClass::FAILURES.len()],
    pub receipts_delivered: u64,
    pub receipts_clicked: u64,
}

impl CertFigures {
    /// Each figure with its name as Redis's certificate meta hash keeps it (`failed:<class>`).
    pub fn fields(&self) -> Vec<(String, u64)> {
        let mut v = vec![
            ("sent".to_string(), self.sent),
            ("rate_limited".to_string(), self.rate_limited),
            ("receipts_delivered".to_string(), self.receipts_delivered),
            ("receipts_clicked".to_string(), self.receipts_clicked),
        ];
        for (c, n) in DeliveryClass::FAILURES.iter().zip(self.failed.iter()) {
            v.push((format!("failed:{}", c.as_str()), *n));
        }
        v
    }

    /// The figures named in `fields` (other names are ignored, a missing one is 0).
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, u64)>) -> CertFigures {
        let mut f = CertFigures::default();
        for (name, n) in fields {
            match name {
                "sent" => f.sent = n,
                "rate_limited" => f.rate_limited = n,
                "receipts_delivered" => f.receipts_delivered = n,
                "receipts_clicked" => f.receipts_clicked = n,
                _ => {
                    let Some(class) = name.strip_prefix("failed:") else {
                        continue;
                    };
                    if let Some(i) = DeliveryClass::FAILURES
                        .iter()
                        .position(|c| c.as_str() == class)
                    {
                        f.failed[i] = n;
                    }
                }
            }
        }
        f
    }

    fn minus(&self, o: &CertFigures) -> CertFigures {
        let mut failed = self.failed;
        for (a, b) in failed.iter_mut().zip(o.failed.iter()) {
            *a = a.saturating_sub(*b);
        }
        CertFigures {
            sent: self.sent.saturating_sub(o.sent),
            rate_limited: self.rate_limited.saturating_sub(o.rate_limited),
            failed,
            receipts_delivered: self.receipts_delivered.saturating_sub(o.receipts_delivered),
            receipts_clicked: self.receipts_clicked.saturating_sub(o.receipts_clicked),
        }
    }

    fn plus(&self, o: &CertFigures) -> CertFigures {
        let mut failed = self.failed;
        for (a, b) in failed.iter_mut().zip(o.failed.iter()) {
            *a = a.saturating_add(*b);
        }
        CertFigures {
            sent: self.sent.saturating_add(o.sent),
            rate_limited: self.rate_limited.saturating_add(o.rate_limited),
            failed,
            receipts_delivered: self.receipts_delivered.saturating_add(o.receipts_delivered),
            receipts_clicked: self.receipts_clicked.saturating_add(o.receipts_clicked),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == CertFigures::default()
    }

    /// Failures by class, in [`DeliveryClass::FAILURES`] order.
    pub fn failures(&self) -> impl Iterator<Item = (DeliveryClass, u64)> + '_ {
        DeliveryClass::FAILURES
            .iter()
            .zip(self.failed.iter())
            .map(|(c, n)| (*c, *n))
    }
}

impl CertStats {
    /// This node's own figures.
    pub fn local(&self) -> CertFigures {
        let mut failed = [0; DeliveryClass::FAILURES.len()];
        for (f, a) in failed.iter_mut().zip(self.failed.iter()) {
            *f = a.load(Ordering::Relaxed);
        }
        CertFigures {
            sent: self.sent.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            failed,
            receipts_delivered: self.receipts_delivered.load(Ordering::Relaxed),
            receipts_clicked: self.receipts_clicked.load(Ordering::Relaxed),
        }
    }

    /// The figures the API and console show: in cluster mode, once read from Redis, the
    /// cluster's totals and what this node counted since it last added its own; else this
    /// node's.
    pub fn shown(&self) -> CertFigures {
        let cluster = self
            .cluster
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match cluster {
            Some(c) => c.plus(&self.unflushed()),
            None => self.local(),
        }
    }

    /// Cluster mode: Redis's totals as just read (this node's unflushed figures not in them).
    pub fn read_cluster(&self, cluster: CertFigures) {
        *self.cluster.write().unwrap_or_else(|e| e.into_inner()) = Some(cluster);
    }

    /// Cluster mode: this node's figures not yet added to Redis's.
    pub fn unflushed(&self) -> CertFigures {
        let flushed = self.flushed.lock().unwrap_or_else(|e| e.into_inner());
        self.local().minus(&flushed)
    }

    /// Cluster mode: `added` (from [`CertStats::unflushed`]) is now in Redis, whose totals are
    /// `cluster`.
    pub fn flushed(&self, added: &CertFigures, cluster: CertFigures) {
        let mut flushed = self.flushed.lock().unwrap_or_else(|e| e.into_inner());
        *flushed = flushed.plus(added);
        *self.cluster.write().unwrap_or_else(|e| e.into_inner()) = Some(cluster);
    }

    /// Counts `n` notifications that ended in `class`.
    pub fn count(&self, class: DeliveryClass, n: u64) {
        match class.failure_index() {
            None => self.sent.fetch_add(n, Ordering::Relaxed),
            Some(i) => self.failed[i].fetch_add(n, Ordering::Relaxed),
        };
    }

    /// Failures by class, in [`DeliveryClass::FAILURES`] order (the console's "failed by class").
    pub fn failures(&self) -> impl Iterator<Item = (DeliveryClass, u64)> + '_ {
        DeliveryClass::FAILURES
            .iter()
            .zip(self.failed.iter())
            .map(|(c, n)| (*c, n.load(Ordering::Relaxed)))
    }
}

/// One certificate and its state.
pub struct CertEntry {
    cert: RwLock<Arc<Certificate>>,
    /// Set by an auth or package error from the vendor; cleared when the certificate is edited.
    broken: AtomicBool,
    /// Why, and which version of the certificate the vendor refused (None: as another node
    /// published it). Its write lock also orders an edit against a concurrent mark.
    broken_reason: RwLock<Option<BrokenMark>>,
    /// Unix seconds until which the daily quota is exhausted (0 = not paused).
    paused_until: AtomicU64,
    /// Counts this node's own health changes (broken, paused): cluster mode publishes the
    /// health when it moved, so every node shows what the certificate's owner learned.
    health_gen: AtomicU64,
    /// The send fence (cluster mode): the sender starts no vendor request once
    /// [`lease_clock_ms`] reaches this. `u64::MAX` = no lease needed (embedded mode); 0 = this
    /// node does not own the certificate. Set by the lease renewer, read before each request.
    owned_until: AtomicU64,
    /// Incremented each time the lease is lost: what the sender held under an older value goes
    /// back to the durable queue (not sent, not counted, not acked) for the next owner.
    lease_gen: AtomicU64,
    /// The share of its qps this node's sender allows itself now (`f64` bits): 1, or less
    /// while it backs off after "too fast" answers (10027). Written by the sender when it
    /// changes; cluster mode shares it with the next owner.
    rate_factor: AtomicU64,
    /// Cluster mode: the back-off the certificate's previous owner had reached (`f64` bits),
    /// set when this node takes the lease, and how many were set (the sender starts from each
    /// once).
    adopted_factor: AtomicU64,
    adopted_gen: AtomicU64,
    pub stats: CertStats,
}

/// Why a certificate is broken, and the version of it the vendor refused.
#[derive(Debug, Clone)]
struct BrokenMark {
    reason: String,
    about: Option<Arc<Certificate>>,
}

/// Milliseconds of a monotonic clock (it keeps counting while the process is stopped), the
/// clock of the send fence.
pub fn lease_clock_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// Whether a certificate sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertHealth {
    Healthy,
    /// The vendor refused the credentials; nothing is sent until the certificate is edited.
    Broken,
    /// The vendor's daily quota is used up; nothing is sent until it renews.
    QuotaPaused,
}

impl CertHealth {
    pub const ALL: [CertHealth; 3] = [
        CertHealth::Healthy,
        CertHealth::Broken,
        CertHealth::QuotaPaused,
    ];

    /// The JSON value and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CertHealth::Healthy => "healthy",
            CertHealth::Broken => "broken",
            CertHealth::QuotaPaused => "quota_paused",
        }
    }
}

/// The health a certificate shows in the API, console and diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertStatus {
    pub state: CertHealth,
    pub reason: Option<String>,
    pub paused_until: Option<u64>,
}

impl CertEntry {
    pub fn new(cert: Certificate) -> CertEntry {
        CertEntry {
            cert: RwLock::new(Arc::new(cert)),
            broken: AtomicBool::new(false),
            broken_reason: RwLock::new(None),
            paused_until: AtomicU64::new(0),
            health_gen: AtomicU64::new(0),
            owned_until: AtomicU64::new(u64::MAX),
            lease_gen: AtomicU64::new(0),
            rate_factor: AtomicU64::new(1f64.to_bits()),
            adopted_factor: AtomicU64::new(1f64.to_bits()),
            adopted_gen: AtomicU64::new(0),
            stats: CertStats::default(),
        }
    }

    /// The share of its qps the sender allows itself now (see `rate_factor`).
    pub fn rate_factor(&self) -> f64 {
        f64::from_bits(self.rate_factor.load(Ordering::Relaxed))
    }

    /// The sender's rate changed (a back-off, a recovery, an edited qps).
    pub fn set_rate_factor(&self, factor: f64) {
        self.rate_factor.store(factor.to_bits(), Ordering::Relaxed);
    }

    /// Cluster mode: this node takes the lease; its sender starts from `factor`, the back-off
    /// the previous owner published.
    pub fn adopt_rate_factor(&self, factor: f64) {
        self.adopted_factor
            .store(factor.to_bits(), Ordering::Relaxed);
        self.rate_factor.store(factor.to_bits(), Ordering::Relaxed);
        self.adopted_gen.fetch_add(1, Ordering::AcqRel);
    }

    /// The last back-off adopted (see `adopt_rate_factor`) and how many were adopted so far.
    pub fn adopted_rate_factor(&self) -> (f64, u64) {
        let gen = self.adopted_gen.load(Ordering::Acquire);
        (
            f64::from_bits(self.adopted_factor.load(Ordering::Relaxed)),
            gen,
        )
    }

    /// This node holds the certificate's lease; its sender may start requests until `until`
    /// ([`lease_clock_ms`]), a margin before the lease can expire in Redis.
    pub fn lease_held_until(&self, until: u64) {
        self.owned_until.store(until, Ordering::Release);
    }

    /// This node no longer owns the certificate: its sender stops and gives back what it holds.
    pub fn lease_lost(&self) {
        self.owned_until.store(0, Ordering::Release);
        self.lease_gen.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether a vendor request may start now (always, outside cluster mode).
    pub fn may_send(&self) -> bool {
        let until = self.owned_until.load(Ordering::Acquire);
        until == u64::MAX || lease_clock_ms() < until
    }

    /// The count of leases lost so far (see `lease_gen`).
    pub fn lease_gen(&self) -> u64 {
        self.lease_gen.load(Ordering::Acquire)
    }

    pub fn cert(&self) -> Arc<Certificate> {
        self.cert.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the certificate (an edit); an edit clears the broken mark so a fixed secret is
    /// tried again.
    pub fn replace(&self, cert: Certificate) {
        let mut mark = self
            .broken_reason
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *self.cert.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cert);
        self.broken.store(false, Ordering::Relaxed);
        *mark = None;
    }

    /// The vendor refused the certificate's credentials as they were in `about` (the version a
    /// request was sent with). False, and nothing marked, when the certificate was edited since:
    /// the refusal is about credentials no longer in use, and the edited ones get their try.
    pub fn mark_broken(&self, reason: String, about: &Arc<Certificate>) -> bool {
        let mut mark = self
            .broken_reason
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&self.cert(), about) {
            return false;
        }
        *mark = Some(BrokenMark {
            reason,
            about: Some(about.clone()),
        });
        self.broken.store(true, Ordering::Relaxed);
        self.health_gen.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// The count of this node's own health changes (see `health_gen`).
    pub fn health_gen(&self) -> u64 {
        self.health_gen.load(Ordering::Acquire)
    }

    /// Cluster mode: the health another node (the owner) published — `broken` with its reason,
    /// and the pause's end (0: none). Not counted as a change of this node's own.
    pub fn set_shared_health(&self, broken: Option<String>, paused_until: u64) {
        let is_broken = broken.is_some();
        *self
            .broken_reason
            .write()
            .unwrap_or_else(|e| e.into_inner()) = broken.map(|reason| BrokenMark {
            reason,
            about: None,
        });
        self.broken.store(is_broken, Ordering::Relaxed);
        self.paused_until.store(paused_until, Ordering::Relaxed);
    }

    /// The broken reason (if broken) and the pause's end (0: none), as published.
    pub fn health_marks(&self) -> (Option<String>, u64) {
        let (broken, _, paused) = self.health_to_publish();
        (broken, paused)
    }

    /// `health_marks`, with the version of the certificate the broken mark is about (None: not
    /// broken, or not marked by this node), read together.
    pub fn health_to_publish(&self) -> (Option<String>, Option<Arc<Certificate>>, u64) {
        let mark = self
            .broken_reason
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|_| self.is_broken());
        let paused = self.paused_until.load(Ordering::Relaxed);
        match mark {
            Some(m) => (Some(m.reason), m.about, paused),
            None => (None, None, paused),
        }
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    pub fn pause_until(&self, unix_secs: u64) {
        self.paused_until.store(unix_secs, Ordering::Relaxed);
        self.health_gen.fetch_add(1, Ordering::AcqRel);
    }

    pub fn paused_until(&self, now: u64) -> Option<u64> {
        let p = self.paused_until.load(Ordering::Relaxed);
        (p > now).then_some(p)
    }

    pub fn status(&self, now: u64) -> CertStatus {
        if self.is_broken() {
            return CertStatus {
                state: CertHealth::Broken,
                reason: self
                    .broken_reason
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(|m| m.reason.clone()),
                paused_until: None,
            };
        }
        if let Some(until) = self.paused_until(now) {
            return CertStatus {
                state: CertHealth::QuotaPaused,
                reason: Some("the vendor's daily quota is used up (200001)".into()),
                paused_until: Some(until),
            };
        }
        CertStatus {
            state: CertHealth::Healthy,
            reason: None,
            paused_until: None,
        }
    }
}

/// All certificates by id.
#[derive(Default)]
pub struct CertBook {
    certs: DashMap<CertificateId, Arc<CertEntry>>,
    /// Cluster mode: a certificate sends only while this node holds its lease, so every entry
    /// starts fenced.
    leased: AtomicBool,
}

impl CertBook {
    pub fn get(&self, id: CertificateId) -> Option<Arc<CertEntry>> {
        self.certs.get(&id).map(|e| e.value().clone())
    }

    pub fn insert(&self, cert: Certificate) -> Arc<CertEntry> {
        let id = cert.id;
        let e = Arc::new(CertEntry::new(cert));
        if self.leased.load(Ordering::Acquire) {
            e.owned_until.store(0, Ordering::Release);
        }
        self.certs.insert(id, e.clone());
        e
    }

    /// From now on a certificate sends only while its lease is held here (cluster mode): every
    /// entry, present and future, starts fenced.
    pub fn require_leases(&self) {
        self.leased.store(true, Ordering::Release);
        for e in self.certs.iter() {
            let _ = e.value().owned_until.compare_exchange(
                u64::MAX,
                0,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    pub fn remove(&self, id: CertificateId) -> Option<Arc<CertEntry>> {
        self.certs.remove(&id).map(|(_, e)| e)
    }

    pub fn contains(&self, id: CertificateId) -> bool {
        self.certs.contains_key(&id)
    }

    /// All certificates, ordered by id.
    pub fn all(&self) -> Vec<Arc<CertEntry>> {
        let mut v: Vec<_> = self.certs.iter().map(|e| e.value().clone()).collect();
        v.sort_by_key(|e| e.cert().id);
        v
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_is_counted_where_the_console_reads_it() {
        let stats = CertStats::default();
        for (i, c) in DeliveryClass::ALL.iter().enumerate() {
            stats.count(*c, i as u64 + 1);
        }
        assert_eq!(stats.sent.load(Ordering::Relaxed), 1);
        let failed: Vec<(&str, u64)> = stats.failures().map(|(c, n)| (c.as_str(), n)).collect();
        assert_eq!(failed.len(), 9);
        assert_eq!(failed[0], ("bad_token", 2));
        assert_eq!(failed[8], ("queue_full", 10));
    }

    #[test]
    fn figures_round_trip_through_their_field_names_and_flush_by_difference() {
        let stats = CertStats::default();
        stats.count(DeliveryClass::Delivered, 3);
        stats.count(DeliveryClass::Misconfigured, 2);
        let f = stats.local();
        let names: Vec<(String, u64)> = f.fields().into_iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(
            names,
            [
                ("sent".to_string(), 3),
                ("failed:misconfigured".to_string(), 2)
            ]
        );
        let back = CertFigures::from_fields(names.iter().map(|(k, n)| (k.as_str(), *n)));
        assert_eq!(back, f);
        let d = stats.unflushed();
        assert_eq!(d, f);
        let mut cluster = f.clone();
        cluster.sent += 10;
        stats.flushed(&d, cluster.clone());
        assert!(stats.unflushed().is_zero());
        assert_eq!(stats.shown(), cluster, "the cluster's figures once read");
        stats.count(DeliveryClass::Delivered, 1);
        assert_eq!(stats.unflushed().sent, 1, "only what is new goes to Redis");
        assert_eq!(stats.shown().sent, 14, "shown at once, with the cluster's");
        let mut read = cluster.clone();
        read.sent = 20;
        stats.read_cluster(read);
        assert_eq!(stats.shown().sent, 21);
    }

    #[test]
    fn shared_health_is_shown_without_counting_as_a_change_here() {
        let e = CertEntry::new(Certificate::xiaomi_for_tests(1001, "s", 10));
        e.set_shared_health(Some("21301 bad secret".into()), 0);
        assert_eq!(e.status(1).state, CertHealth::Broken);
        assert_eq!(e.health_gen(), 0);
        e.set_shared_health(None, 50);
        assert_eq!(e.status(1).state, CertHealth::QuotaPaused);
        assert!(e.mark_broken("x".into(), &e.cert()));
        assert_eq!(e.health_gen(), 1);
        assert_eq!(e.health_marks(), (Some("x".to_string()), 50));
        let (_, about, _) = e.health_to_publish();
        assert!(about.is_some_and(|c| Arc::ptr_eq(&c, &e.cert())));
    }

    #[test]
    fn a_refusal_of_credentials_edited_since_marks_nothing() {
        let e = CertEntry::new(Certificate::xiaomi_for_tests(1001, "old", 10));
        let sent_with = e.cert();
        e.replace(Certificate::xiaomi_for_tests(1001, "new", 10));
        assert!(!e.mark_broken("21301".into(), &sent_with));
        assert_eq!(e.status(1).state, CertHealth::Healthy);
        assert_eq!(e.health_gen(), 0, "nothing to publish");
    }

    #[test]
    fn health_serializes_as_before() {
        let s: Vec<String> = CertHealth::ALL
            .iter()
            .map(|h| serde_json::to_string(h).unwrap_or_default())
            .collect();
        assert_eq!(s, ["\"healthy\"", "\"broken\"", "\"quota_paused\""]);
        for h in CertHealth::ALL {
            assert_eq!(
                serde_json::to_string(&h).ok(),
                Some(format!("\"{}\"", h.as_str()))
            );
        }
    }
}
