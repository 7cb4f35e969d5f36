//! The certificate book: every certificate with its health and delivery figures, read by
//! dispatch on the hot path (atomics only) and by the console.

use crate::domain::{Certificate, CertificateId};
use dashmap::DashMap;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Failure classes counted per certificate (the console's "failed by class").
pub const FAILURE_CLASSES: [&str; 9] = [
    "bad_token",
    "no_valid_targets",
    "misconfigured",
    "rate_limited",
    "quota_exceeded",
    "invalid_request",
    "transient",
    "unknown",
    "queue_full",
];

/// Delivery figures of one certificate since start.
#[derive(Debug, Default)]
pub struct CertStats {
    pub sent: AtomicU64,
    /// Vendor answers of "too fast" (10027 and kin), each followed by a back-off.
    pub rate_limited: AtomicU64,
    pub failed: [AtomicU64; 9],
}

impl CertStats {
    pub fn fail(&self, class: &str, n: u64) {
        if let Some(i) = FAILURE_CLASSES.iter().position(|c| *c == class) {
            self.failed[i].fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// One certificate and its state.
pub struct CertEntry {
    cert: RwLock<Arc<Certificate>>,
    /// Set by an auth or package error from the vendor; cleared when the certificate is edited.
    broken: AtomicBool,
    broken_reason: RwLock<Option<String>>,
    /// Unix seconds until which the daily quota is exhausted (0 = not paused).
    paused_until: AtomicU64,
    pub stats: CertStats,
}

/// The health a certificate shows in the API, console and diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertStatus {
    pub state: &'static str,
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
            stats: CertStats::default(),
        }
    }

    pub fn cert(&self) -> Arc<Certificate> {
        self.cert.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the certificate (an edit); an edit clears the broken mark so a fixed secret is
    /// tried again.
    pub fn replace(&self, cert: Certificate) {
        *self.cert.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cert);
        self.broken.store(false, Ordering::Relaxed);
        *self
            .broken_reason
            .write()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn mark_broken(&self, reason: String) {
        *self
            .broken_reason
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason);
        self.broken.store(true, Ordering::Relaxed);
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    pub fn pause_until(&self, unix_secs: u64) {
        self.paused_until.store(unix_secs, Ordering::Relaxed);
    }

    pub fn paused_until(&self, now: u64) -> Option<u64> {
        let p = self.paused_until.load(Ordering::Relaxed);
        (p > now).then_some(p)
    }

    pub fn status(&self, now: u64) -> CertStatus {
        if self.is_broken() {
            return CertStatus {
                state: "broken",
                reason: self
                    .broken_reason
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
                paused_until: None,
            };
        }
        if let Some(until) = self.paused_until(now) {
            return CertStatus {
                state: "quota_paused",
                reason: Some("the vendor's daily quota is used up (200001)".into()),
                paused_until: Some(until),
            };
        }
        CertStatus {
            state: "healthy",
            reason: None,
            paused_until: None,
        }
    }
}

/// All certificates by id.
#[derive(Default)]
pub struct CertBook {
    certs: DashMap<CertificateId, Arc<CertEntry>>,
}

impl CertBook {
    pub fn get(&self, id: CertificateId) -> Option<Arc<CertEntry>> {
        self.certs.get(&id).map(|e| e.value().clone())
    }

    pub fn insert(&self, cert: Certificate) -> Arc<CertEntry> {
        let id = cert.id;
        let e = Arc::new(CertEntry::new(cert));
        self.certs.insert(id, e.clone());
        e
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
