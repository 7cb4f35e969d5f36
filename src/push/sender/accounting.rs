//! Finishing a notification: the certificate's figures, `pushgate_notifications_total`, the
//! device's last result for diagnosis, and the unbinding of a token the vendor named invalid.

use super::SenderCtx;
use crate::certs::CertEntry;
use crate::domain::now_millis;
use crate::providers::{DeliveryClass, JobResult};
use crate::push::outcomes::LastNotification;
use crate::push::PushJob;
use crate::store::StoreOp;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
        Accounting {
            ctx,
            entry,
            queued,
            counters,
        }
    }

    /// Accounts for one finished notification.
    pub fn finish(&self, job: &PushJob, result: JobResult, trace_id: Option<Arc<str>>) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
        self.entry.stats.count(result.class, 1);
        if let Some(i) = DeliveryClass::ALL.iter().position(|c| *c == result.class) {
            self.counters[i].inc();
        }
        if result.unbind_token {
            self.unbind(&job.token);
        }
        self.ctx
            .outcomes
            .record(&job.user, &job.device, last_result(job, result, trace_id));
    }

    /// Unbinds a token the vendor named invalid; the device keeps its state, without a token.
    fn unbind(&self, token: &str) {
        if let Some((user, device, record)) = self.ctx.registry.unbind_token(token) {
            self.ctx.metrics.tokens_unbound.inc();
            let store = self.ctx.store.clone();
            let op = StoreOp::PutDevice {
                user: user.to_string(),
                device: device.to_string(),
                record,
            };
            actix::spawn(async move {
                if let Err(e) = store.commit(vec![op]).await {
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
            &jobs[0],
            JobResult::new(Delivered, "accepted").msg_id(Arc::from("m1")),
            Some(Arc::from("trace-1")),
        );
        books.finish(&jobs[1], JobResult::new(Transient, "gave up"), None);
        books.finish(&jobs[2], JobResult::new(Transient, "gave up"), None);
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
        books.finish(&jobs[0], JobResult::new(BadToken, "listed").unbind(), None);
        books.finish(&jobs[1], JobResult::new(Delivered, "accepted"), None);
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
