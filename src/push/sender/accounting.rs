//! Finishing a notification: the certificate's figures, `pushgate_notifications_total`, the
//! device's last result for diagnosis, the unbinding of a token the vendor named invalid, and
//! the removal of the notification from the store's journal of accepted notifications.

use super::SenderCtx;
use crate::certs::CertEntry;
use crate::domain::now_millis;
use crate::gateway::StoreJournal;
use crate::providers::{DeliveryClass, JobResult};
use crate::push::outcomes::{Kept, LastNotification, ResultBatch, SharedResult};
use crate::push::PushJob;
use crate::store::{JournalSlot, StoreOp};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Accounts for notifications whose sender went away before it took them (their certificate
/// was deleted meanwhile): counted misconfigured, and out of the journal.
pub fn gone(ctx: &SenderCtx, vendor: &'static str, jobs: Vec<PushJob>) {
    let n = jobs.len();
    let class = DeliveryClass::Misconfigured;
    if let Some(e) = ctx.certs.get(jobs.first().map_or(0, |j| j.cert)) {
        e.stats.count(class, n as u64);
    }
    ctx.metrics
        .notifications
        .with_label_values(&[vendor, class.as_str()])
        .inc_by(n as u64);
    let result = JobResult::new(
        class,
        "the certificate was deleted while the notification was queued",
    );
    let mut finished = Vec::with_capacity(n);
    for j in jobs {
        if ctx.journal_accepted {
            finished.extend(j.journal);
        }
        ctx.outcomes
            .record(&j.user, &j.device, last_result(&j, result.clone(), None));
    }
    remove(ctx, finished);
}

/// Queues removals from the journal without waiting: a removal the disk refuses is
/// remembered by the store and written again once it can (`Gateway::resync_store`).
fn remove(ctx: &SenderCtx, finished: Vec<JournalSlot>) {
    if finished.is_empty() {
        return;
    }
    let removals = vec![StoreOp::Finished(finished)];
    match ctx.store.reserve() {
        Ok(permit) => drop(permit.send(removals)),
        Err(_) => {
            let store = ctx.store.clone();
            actix_rt::spawn(async move {
                if let Err(e) = store.commit(removals).await {
                    tracing::warn!(error = %e, "finished notifications stay journaled");
                }
            });
        }
    }
}

/// A notification's end as diagnosis shows it.
pub fn last_result(
    job: &PushJob,
    result: JobResult,
    trace_id: Option<Arc<str>>,
) -> LastNotification {
    LastNotification {
        at: now_millis(),
        message_id: job.message.id,
        certificate_id: job.cert,
        class: result.class,
        vendor_code: result.vendor_code,
        trace_id,
        msg_id: result.msg_id,
        detail: result.detail,
    }
}

/// The books of one certificate's sender.
pub struct Accounting {
    ctx: Arc<SenderCtx>,
    entry: Arc<CertEntry>,
    /// The sender's queue bound, released as each notification finishes.
    queued: Arc<AtomicUsize>,
    /// `pushgate_notifications_total{vendor}` children by class, resolved once.
    counters: Vec<prometheus::IntCounter>,
    /// The vendor's label, for the per-request metrics below.
    vendor: &'static str,
    /// `pushgate_vendor_seconds{vendor}`.
    vendor_seconds: prometheus::Histogram,
    /// Per-request children resolved on first use: a label lookup hashes and locks, which for
    /// one-token-per-request vendors (FCM, APNs) was several per notification.
    batch_sizes: std::cell::RefCell<Vec<(&'static str, prometheus::Histogram)>>,
    requests: std::cell::RefCell<Vec<(&'static str, &'static str, prometheus::IntCounter)>>,
    /// Finished notifications to take out of the journal, sent to the store in one change by
    /// `settle` (one per vendor reply, not one per notification).
    removals: std::cell::RefCell<Vec<JournalSlot>>,
    /// Finished notifications' last results for diagnosis, noted by `settle` in one pass
    /// over the recent-results map (a shard lock per shard, not per notification).
    results: std::cell::RefCell<ResultBatch>,
    /// The result the last finished notification shares: the next one with the same result
    /// (the rest of its vendor reply, mostly) shares it too. Forgotten at each `settle`, so
    /// its time is at most one pump old.
    shared: std::cell::RefCell<Option<Arc<SharedResult>>>,
    /// Notifications finished since the last `settle`, by class in `DeliveryClass::ALL`
    /// order: the shared counters (queue bound, certificate figures, metric) are touched once
    /// per class per pump, not once per notification.
    finished: std::cell::Cell<[u64; DeliveryClass::ALL.len()]>,
}

impl Accounting {
    pub fn new(
        ctx: Arc<SenderCtx>,
        entry: Arc<CertEntry>,
        queued: Arc<AtomicUsize>,
        vendor: &'static str,
    ) -> Accounting {
        let counters = DeliveryClass::ALL
            .iter()
            .map(|c| {
                ctx.metrics
                    .notifications
                    .with_label_values(&[vendor, c.as_str()])
            })
            .collect();
        let results = std::cell::RefCell::new(ctx.outcomes.batch());
        Accounting {
            vendor_seconds: ctx.metrics.vendor_seconds.with_label_values(&[vendor]),
            ctx,
            entry,
            queued,
            counters,
            vendor,
            batch_sizes: Default::default(),
            requests: Default::default(),
            removals: Default::default(),
            results,
            shared: Default::default(),
            finished: Default::default(),
        }
    }

    /// A request of `kind` carrying `n` notifications is sent.
    pub fn request_sent(&self, kind: &'static str, n: usize) {
        let mut sizes = self.batch_sizes.borrow_mut();
        let i = match sizes.iter().position(|(k, _)| *k == kind) {
            Some(i) => i,
            None => {
                let h = self
                    .ctx
                    .metrics
                    .vendor_batch_size
                    .with_label_values(&[self.vendor, kind]);
                sizes.push((kind, h));
                sizes.len() - 1
            }
        };
        sizes[i].1.observe(n as f64);
    }

    /// A request of `kind` was answered (`class`: the reply's class) after `took`.
    pub fn request_answered(&self, kind: &'static str, class: &'static str, took: Duration) {
        self.vendor_seconds.observe(took.as_secs_f64());
        let mut requests = self.requests.borrow_mut();
        match requests.iter().find(|(k, c, _)| *k == kind && *c == class) {
            Some((_, _, counter)) => counter.inc(),
            None => {
                let counter =
                    self.ctx
                        .metrics
                        .vendor_requests
                        .with_label_values(&[self.vendor, kind, class]);
                counter.inc();
                requests.push((kind, class, counter));
            }
        }
    }

    /// Accounts for one finished notification (the counters once `settle` runs: every path
    /// that finishes notifications ends in one).
    pub fn finish(&self, job: PushJob, result: JobResult, trace_id: Option<Arc<str>>) {
        let mut finished = self.finished.get();
        // `ALL` lists the classes in declaration order.
        if let Some(n) = finished.get_mut(result.class as usize) {
            *n += 1;
        }
        self.finished.set(finished);
        if result.unbind_token {
            self.unbind(&job.token);
        }
        if let (true, Some(slot)) = (self.ctx.journal_accepted, job.journal) {
            self.removals.borrow_mut().push(slot);
        }
        let result = self.shared_result(job.cert, result, trace_id);
        let kept = Kept {
            message_id: job.message.id,
            result,
        };
        let PushJob { user, device, .. } = job;
        self.ctx
            .outcomes
            .add(&mut self.results.borrow_mut(), user, device, kept);
    }

    /// The result the last notification finished with when `result` says the same (the rest
    /// of a vendor reply's notifications share one), else a new one.
    fn shared_result(
        &self,
        cert: u64,
        result: JobResult,
        trace_id: Option<Arc<str>>,
    ) -> Arc<SharedResult> {
        let mut shared = self.shared.borrow_mut();
        let same_arc = |a: &Option<Arc<str>>, b: &Option<Arc<str>>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        if let Some(s) = shared.as_ref() {
            if s.class == result.class
                && s.certificate_id == cert
                && s.vendor_code == result.vendor_code
                && same_arc(&s.msg_id, &result.msg_id)
                && same_arc(&s.trace_id, &trace_id)
                && s.detail == result.detail
            {
                return s.clone();
            }
        }
        let s = Arc::new(SharedResult {
            at: now_millis(),
            certificate_id: cert,
            class: result.class,
            vendor_code: result.vendor_code,
            trace_id,
            msg_id: result.msg_id,
            detail: result.detail,
        });
        *shared = Some(s.clone());
        s
    }

    /// Counts the notifications finished since the last call (queue bound, certificate
    /// figures, `pushgate_notifications_total`) and sends their removals to the store.
    pub fn settle(&self) {
        let finished = self.finished.take();
        let total: u64 = finished.iter().sum();
        if total > 0 {
            self.queued.fetch_sub(total as usize, Ordering::AcqRel);
            for ((class, n), counter) in DeliveryClass::ALL.iter().zip(finished).zip(&self.counters)
            {
                if n > 0 {
                    self.entry.stats.count(*class, n);
                    counter.inc_by(n);
                }
            }
        }
        self.shared.take();
        self.ctx
            .outcomes
            .record_batch(&mut self.results.borrow_mut());
        let removals = self.removals.take();
        remove(&self.ctx, removals);
    }

    /// Gives back the queue room of `n` notifications that leave the sender unfinished (they
    /// stay journaled at shutdown, for the next start).
    pub fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }

    /// Unbinds a token the vendor named invalid; the device keeps its state, without a token.
    fn unbind(&self, token: &str) {
        // Cluster mode: the shared directory holds the token, not this node's registry.
        self.ctx.outcomes.token_invalid(token);
        let mut journal = StoreJournal::new(&self.ctx.store);
        if self
            .ctx
            .registry
            .unbind_token_journaled(token, &mut journal)
            .is_some()
        {
            self.ctx.metrics.tokens_unbound.inc();
        }
        if let Some(ticket) = journal.ticket() {
            actix::spawn(async move {
                if let Err(e) = ticket.wait().await {
                    tracing::error!(error = %e, "persisting an unbound token failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ctx_for_tests;
    use super::*;
    use crate::providers::DeliveryClass::*;

    #[actix_rt::test]
    async fn each_class_lands_in_stats_metrics_and_the_last_result() {
        let (ctx, entry, _dir) = ctx_for_tests();
        let queued = Arc::new(AtomicUsize::new(3));
        let books = Accounting::new(ctx.clone(), entry.clone(), queued.clone(), "xiaomi");
        let jobs = super::super::tests::jobs(3, entry.cert().id);
        books.finish(
            jobs[0].clone(),
            JobResult::new(Delivered, "accepted").msg_id(Arc::from("m1")),
            Some(Arc::from("trace-1")),
        );
        books.finish(jobs[1].clone(), JobResult::new(Transient, "gave up"), None);
        books.finish(jobs[2].clone(), JobResult::new(Transient, "gave up"), None);
        assert_eq!(queued.load(Ordering::Relaxed), 3, "counted when settled");
        books.settle();
        assert_eq!(
            queued.load(Ordering::Relaxed),
            0,
            "the queue bound is released"
        );
        assert_eq!(entry.stats.sent.load(Ordering::Relaxed), 1);
        let failed: Vec<(DeliveryClass, u64)> =
            entry.stats.failures().filter(|(_, n)| *n > 0).collect();
        assert_eq!(failed, [(Transient, 2)]);
        let count = |class: &str| {
            ctx.metrics
                .notifications
                .with_label_values(&["xiaomi", class])
                .get()
        };
        assert_eq!((count("delivered"), count("transient")), (1, 2));
        let last = ctx.outcomes.get("u0", "d").expect("a last result");
        assert_eq!(last.class, Delivered);
        assert_eq!(last.trace_id.as_deref(), Some("trace-1"));
        assert_eq!(last.msg_id.as_deref(), Some("m1"));
        assert_eq!(
            ctx.outcomes.get("u2", "d").map(|n| n.class),
            Some(Transient)
        );
    }

    #[actix_rt::test]
    async fn a_bad_token_is_unbound_from_its_device() {
        let (ctx, entry, _dir) = ctx_for_tests();
        let id = entry.cert().id;
        let jobs = super::super::tests::jobs(2, id);
        for j in &jobs {
            super::super::tests::bind(&ctx, j);
        }
        let books = Accounting::new(ctx.clone(), entry, Arc::new(AtomicUsize::new(2)), "xiaomi");
        books.finish(
            jobs[0].clone(),
            JobResult::new(BadToken, "listed").unbind(),
            None,
        );
        books.finish(jobs[1].clone(), JobResult::new(Delivered, "accepted"), None);
        let token_of = |user: &str| {
            ctx.registry
                .devices(user)
                .into_iter()
                .find(|d| d.id == "d")
                .and_then(|d| d.token.map(|t| t.to_string()))
        };
        assert_eq!(token_of("u0"), None, "unbound");
        assert_eq!(token_of("u1").as_deref(), Some("t1"), "kept");
        assert_eq!(ctx.metrics.tokens_unbound.get(), 1, "counted once");
    }
}
