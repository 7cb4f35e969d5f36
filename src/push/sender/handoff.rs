//! The hand-off from dispatch to the senders: room in a certificate's queue is taken as each
//! notification is added (so the caller learns at once when a queue is full), and each
//! certificate's share of one message goes to its sender in one actor message, after its
//! journal entries are queued for the store (so an entry is always queued before its removal).

use super::{EnqueueMany, Senders};
use crate::domain::CertificateId;

use crate::push::PushJob;
use crate::store::{CommitTicket, JournalSlot, StoreHandle, StoreOp};
use actix::prelude::{Recipient, SendError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    /// The sender's queue bound, looked up with the share's first notification: the rest take
    /// their room here without a lookup in the senders' map.
    queued: Arc<AtomicUsize>,
    jobs: Vec<PushJob>,
}

/// Notifications of one dispatch, grouped by certificate.
pub struct PushBatch<'a> {
    senders: &'a Senders,
    shares: Vec<Share>,
    /// The journal writes of the shares handed over so far.
    journaled: Vec<CommitTicket>,
    /// Notifications expected (`expect`): the first share is made that large at once.
    expected: usize,
}

impl PushBatch<'_> {
    /// About `n` notifications follow (a hint: the first share makes room for them at once
    /// instead of doubling its way there).
    pub fn expect(&mut self, n: usize) {
        self.expected = n;
    }

    pub fn add(&mut self, job: PushJob) -> Result<(), EnqueueError> {
        if let Some(s) = self.shares.iter_mut().find(|s| s.cert == job.cert) {
            take_room(&s.queued, self.senders.ctx.config.queue_capacity)?;
            s.jobs.push(job);
            return Ok(());
        }
        let (vendor, queued) = self.senders.reserve(job.cert)?;
        let mut jobs = Vec::with_capacity(std::mem::take(&mut self.expected).max(1));
        jobs.push(job);
        self.shares.push(Share {
            cert: jobs[0].cert,
            vendor,
            queued,
            jobs,
        });
        Ok(())
    }

    /// Journals every share and hands it to its sender.
    pub fn flush(&mut self) {
        for share in self.shares.drain(..) {
            let to = self.senders.senders.get(&share.cert).map(|h| Handover {
                enqueue: h.enqueue.clone(),
                queued: h.queued.clone(),
            });
            let Some(to) = to else {
                self.senders
                    .sender_gone(share.cert, share.vendor, share.jobs);
                continue;
            };
            if !self.senders.ctx.journal_accepted {
                to.hand(self.senders, share);
                continue;
            }
            let store = &self.senders.ctx.store;
            let mut share = share;
            let ops = journal(store, &mut share.jobs);
            if ops.is_empty() {
                // Each of them journaled already (queued again at start).
                to.hand(self.senders, share);
                continue;
            }
            match store.reserve() {
                Ok(permit) => {
                    self.journaled.push(permit.send(ops));
                    to.hand(self.senders, share);
                }
                Err(_) => {
                    // The store's queue is full: the share waits for room, then goes to its
                    // sender (its removals must not reach the store before its entries).
                    let (reply, ticket) = CommitTicket::pending();
                    self.journaled.push(ticket);
                    let store = store.clone();
                    let ctx = self.senders.ctx.clone();
                    actix_rt::spawn(async move {
                        let _ = reply.send(store.commit(ops).await);
                        if let Some(jobs) = to.try_hand(share.jobs) {
                            to.queued.fetch_sub(jobs.len(), Ordering::AcqRel);
                            super::accounting::gone(&ctx, share.vendor, jobs);
                        }
                    });
                }
            }
        }
    }

    /// Done when the journal entries of every share handed over so far are on disk.
    pub fn journaled(&mut self) -> CommitTicket {
        self.flush();
        CommitTicket::join(self.journaled.drain(..))
    }
}

/// The journal writes of `jobs` (one certificate's): each run of notifications of one message
/// not journaled yet becomes a share, encoded here rather than on the store's writer thread,
/// and each notification learns its slot in it. Notifications already journaled (queued again
/// at start) keep theirs.
fn journal(store: &StoreHandle, jobs: &mut [PushJob]) -> Vec<StoreOp> {
    let mut ops = Vec::new();
    let mut start = 0;
    while start < jobs.len() {
        if jobs[start].journal.is_some() {
            start += 1;
            continue;
        }
        let message = &jobs[start].message;
        let end = start
            + jobs[start..]
                .iter()
                .position(|j| j.journal.is_some() || !Arc::ptr_eq(&j.message, message))
                .unwrap_or(jobs.len() - start);
        let run = &mut jobs[start..end];
        start = end;
        // No notification in the message (never queued by dispatch): nothing to journal.
        let Some(record) = crate::push::outbox::encode_share(run) else {
            continue;
        };
        let (Ok(len), id) = (u32::try_from(run.len()), store.new_share_id()) else {
            continue;
        };
        for (index, job) in (0u32..).zip(run.iter_mut()) {
            job.journal = Some(JournalSlot { share: id, index });
        }
        ops.push(StoreOp::PutShare { id, len, record });
    }
    ops
}

/// Takes room for one notification in a queue bound of `capacity`.
fn take_room(queued: &AtomicUsize, capacity: usize) -> Result<(), EnqueueError> {
    if queued.fetch_add(1, Ordering::AcqRel) >= capacity {
        queued.fetch_sub(1, Ordering::AcqRel);
        return Err(EnqueueError::Full);
    }
    Ok(())
}

/// Where a share goes: its sender's mailbox and queue bound.
struct Handover {
    enqueue: Recipient<EnqueueMany>,
    queued: Arc<AtomicUsize>,
}

impl Handover {
    /// The jobs back when the sender is gone.
    fn try_hand(&self, jobs: Vec<PushJob>) -> Option<Vec<PushJob>> {
        // The mailbox holds at most as many messages as the queue bound allows notifications,
        // so only a stopped sender refuses.
        match self.enqueue.try_send(EnqueueMany(jobs)) {
            Ok(()) => None,
            Err(SendError::Full(m) | SendError::Closed(m)) => Some(m.0),
        }
    }

    fn hand(&self, senders: &Senders, share: Share) {
        if let Some(jobs) = self.try_hand(share.jobs) {
            senders.sender_gone(share.cert, share.vendor, jobs);
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
            journaled: Vec::new(),
            expected: 0,
        }
    }

    /// Takes room for one notification of `cert` in its queue bound; gives its vendor label
    /// and the bound's counter.
    fn reserve(
        &self,
        cert: CertificateId,
    ) -> Result<(&'static str, Arc<AtomicUsize>), EnqueueError> {
        let h = self.senders.get(&cert).ok_or(EnqueueError::NoSender)?;
        take_room(&h.queued, self.ctx.config.queue_capacity)?;
        Ok((h.vendor, h.queued.clone()))
    }

    /// Accounts for notifications whose sender went away between reserve and send (their
    /// certificate was deleted meanwhile).
    fn sender_gone(&self, cert: CertificateId, vendor: &'static str, jobs: Vec<PushJob>) {
        let n = jobs.len();
        if let Some(h) = self.senders.get(&cert) {
            h.queued.fetch_sub(n, Ordering::AcqRel);
        }
        super::accounting::gone(&self.ctx, vendor, jobs);
    }
}
