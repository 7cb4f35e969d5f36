//! The hand-off from dispatch to the senders: room in a certificate's queue is taken as each
//! notification is added (so the caller learns at once when a queue is full), and each
//! certificate's share of one message goes to its sender in one actor message.

use super::accounting::last_result;
use super::{EnqueueMany, Senders};
use crate::domain::CertificateId;
use crate::providers::{DeliveryClass, JobResult};
use crate::push::PushJob;
use actix::prelude::SendError;
use std::sync::atomic::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    #[error("no sender runs for this certificate")]
    NoSender,
    #[error("the certificate's push queue is full")]
    Full,
}

/// Notifications of one certificate in a [`PushBatch`].
struct Share {
    cert: CertificateId,
    /// The vendor's metric label, read when room was taken (the sender may be gone at flush).
    vendor: &'static str,
    jobs: Vec<PushJob>,
}

/// Notifications of one dispatch, grouped by certificate.
pub struct PushBatch<'a> {
    senders: &'a Senders,
    shares: Vec<Share>,
}

impl PushBatch<'_> {
    pub fn add(&mut self, job: PushJob) -> Result<(), EnqueueError> {
        let vendor = self.senders.reserve(job.cert)?;
        match self.shares.iter_mut().find(|s| s.cert == job.cert) {
            Some(s) => s.jobs.push(job),
            None => self.shares.push(Share {
                cert: job.cert,
                vendor,
                jobs: vec![job],
            }),
        }
        Ok(())
    }

    /// Hands every share to its sender.
    pub fn flush(&mut self) {
        for share in self.shares.drain(..) {
            let to = self
                .senders
                .senders
                .get(&share.cert)
                .map(|h| h.enqueue.clone());
            match to {
                // The mailbox holds at most as many messages as the queue bound allows
                // notifications, so only a stopped sender refuses.
                Some(to) => {
                    if let Err(e) = to.try_send(EnqueueMany(share.jobs)) {
                        let jobs = match e {
                            SendError::Full(m) | SendError::Closed(m) => m.0,
                        };
                        self.senders.sender_gone(share.cert, share.vendor, jobs);
                    }
                }
                None => self
                    .senders
                    .sender_gone(share.cert, share.vendor, share.jobs),
            }
        }
    }
}

impl Drop for PushBatch<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Senders {
    /// A batch that collects the notifications of one message per certificate and hands each
    /// certificate's share to its sender in one actor message (sent when flushed or dropped).
    pub fn batch(&self) -> PushBatch<'_> {
        PushBatch {
            senders: self,
            shares: Vec::new(),
        }
    }

    /// Takes room for one notification of `cert` in its queue bound; gives its vendor label.
    fn reserve(&self, cert: CertificateId) -> Result<&'static str, EnqueueError> {
        let h = self.senders.get(&cert).ok_or(EnqueueError::NoSender)?;
        if h.queued.fetch_add(1, Ordering::AcqRel) >= self.ctx.config.queue_capacity {
            h.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(EnqueueError::Full);
        }
        Ok(h.vendor)
    }

    /// Accounts for notifications whose sender went away between reserve and send (their
    /// certificate was deleted meanwhile).
    fn sender_gone(&self, cert: CertificateId, vendor: &'static str, jobs: Vec<PushJob>) {
        let n = jobs.len();
        if let Some(h) = self.senders.get(&cert) {
            h.queued.fetch_sub(n, Ordering::AcqRel);
        }
        let class = DeliveryClass::Misconfigured;
        if let Some(e) = self.ctx.certs.get(cert) {
            e.stats.count(class, n as u64);
        }
        self.ctx
            .metrics
            .notifications
            .with_label_values(&[vendor, class.as_str()])
            .inc_by(n as u64);
        let result = JobResult::new(
            class,
            "the certificate was deleted while the notification was queued",
        );
        for j in jobs {
            self.ctx
                .outcomes
                .record(&j.user, &j.device, last_result(&j, result.clone(), None));
        }
    }
}
