//! `CertSender`: one actix actor per certificate, generic over its push service, on the sender
//! arbiters. Split by role, as vector's sinks are:
//! - `handoff`: dispatch → sender (`PushBatch`, the queue bound);
//! - `actor`: the loop (token bucket, in-flight bound, linger, retries with back-off, stop);
//! - `batching`: pending notifications → requests by the service's rule, cut when a rate
//!   token is granted;
//! - `accounting`: finishing a notification (figures, metric, last result, token clean-up).
//!
//! This file keeps the senders of all certificates. Nothing here knows a vendor: the
//! certificate's service comes from [`Providers`].

mod accounting;
mod actor;
mod batching;
mod handoff;

pub use handoff::{EnqueueError, PushBatch};

use crate::certs::{CertBook, CertEntry};
use crate::config::PushConfig;
use crate::domain::CertificateId;
use crate::metrics::Metrics;
use crate::providers::{Providers, PushService, ServiceVisitor};
use crate::push::outcomes::Outcomes;
use crate::push::PushJob;
use crate::registry::Registry;
use crate::store::StoreHandle;
use actix::prelude::*;
use actor::CertSender;
use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// What every sender shares.
pub struct SenderCtx {
    pub registry: Arc<Registry>,
    pub certs: Arc<CertBook>,
    pub store: StoreHandle,
    pub metrics: Metrics,
    pub outcomes: Arc<Outcomes>,
    /// The push service of each vendor.
    pub providers: Providers,
    pub config: PushConfig,
    /// A shutdown in progress: its deadline and what is left unsent.
    pub drain: crate::push::outbox::Drain,
    /// Accepted notifications are written to the local store's journal until their final
    /// outcome (embedded mode). Off in cluster mode: there the certificate's Redis queue is the
    /// durable record, and a local copy would be sent again by this node's next start after
    /// another owner had already claimed it.
    pub journal_accepted: bool,
}

/// Several notifications of one certificate at once (a message to many recipients).
#[derive(actix::Message)]
#[rtype(result = "()")]
struct EnqueueMany(Vec<PushJob>);

/// Re-check timers, stop flags and the bucket.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct Wake;

struct SenderHandle {
    enqueue: Recipient<EnqueueMany>,
    wake: Recipient<Wake>,
    /// Notifications accepted and not yet finished: the queue bound, checked before sending.
    queued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// The service's metric label.
    vendor: &'static str,
}

/// The senders of all certificates.
pub struct Senders {
    senders: DashMap<CertificateId, SenderHandle>,
    ctx: Arc<SenderCtx>,
    arbiters: Vec<ArbiterHandle>,
    /// Arbiters that run the vendor HTTP requests (encoding, I/O, reply parsing).
    io: Vec<ArbiterHandle>,
    /// The arbiter threads, joined at shutdown.
    threads: std::sync::Mutex<Vec<Arbiter>>,
    next_arbiter: AtomicUsize,
}

/// Starts the sender of one certificate with its vendor's service.
struct Start {
    arbiter: ArbiterHandle,
    io: ArbiterHandle,
    entry: Arc<CertEntry>,
    ctx: Arc<SenderCtx>,
    queued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl ServiceVisitor for Start {
    type Output = (Recipient<EnqueueMany>, Recipient<Wake>, &'static str);

    fn visit<S: PushService>(self, service: Arc<S>) -> Self::Output {
        let vendor = service.name();
        let capacity = self.ctx.config.queue_capacity;
        let Start {
            arbiter,
            io,
            entry,
            ctx,
            queued,
            stop,
        } = self;
        let addr = CertSender::start_in_arbiter(&arbiter, move |c| {
            // The mailbox never holds more than the queue bound (checked before each send).
            c.set_mailbox_capacity(capacity.saturating_add(16));
            CertSender::new(service, entry, ctx, queued, stop, io)
        });
        (addr.clone().recipient(), addr.recipient(), vendor)
    }
}

impl Senders {
    /// Starts the sender arbiters (threads). Must run inside an actix system.
    pub fn new(ctx: SenderCtx) -> Senders {
        let n = ctx.config.arbiters.max(1);
        // Sender arbiters first, then as many I/O arbiters.
        let threads: Vec<Arbiter> = (0..2 * n).map(|_| Arbiter::new()).collect();
        let arbiters = threads[..n].iter().map(|a| a.handle()).collect();
        let io = threads[n..].iter().map(|a| a.handle()).collect();
        Senders {
            senders: DashMap::new(),
            ctx: Arc::new(ctx),
            arbiters,
            io,
            threads: std::sync::Mutex::new(threads),
            next_arbiter: AtomicUsize::new(0),
        }
    }

    pub fn ctx(&self) -> &Arc<SenderCtx> {
        &self.ctx
    }

    /// Starts the sender of a new certificate. Edits need no call: the sender reads the
    /// certificate (qps, credentials, click action) from the book before each request.
    pub fn start(&self, entry: Arc<CertEntry>) {
        let cert = entry.cert();
        let queued = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let i = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let start = Start {
            arbiter: self.arbiters[i].clone(),
            io: self.io[i % self.io.len()].clone(),
            entry,
            ctx: self.ctx.clone(),
            queued: queued.clone(),
            stop: stop.clone(),
        };
        let (enqueue, wake, vendor) = self.ctx.providers.with_service(cert.vendor(), start);
        let handle = SenderHandle {
            enqueue,
            wake,
            queued,
            stop,
            vendor,
        };
        if let Some(old) = self.senders.insert(cert.id, handle) {
            old.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Stops the sender of a deleted certificate; what it still holds fails as misconfigured.
    pub fn stop(&self, id: CertificateId) {
        if let Some((_, h)) = self.senders.remove(&id) {
            h.stop.store(true, Ordering::Relaxed);
            let _ = h.wake.try_send(Wake);
        }
    }

    /// Lets every sender send what it holds until `grace` has passed; what is still unsent
    /// stays journaled for the next start (returned: how many). Waits for requests in flight at
    /// the deadline to finish (each is bounded by the vendor timeout), so every notification
    /// ends sent, failed or left in the journal.
    pub async fn drain(&self, grace: std::time::Duration) -> usize {
        let deadline = std::time::Instant::now() + grace;
        self.ctx.drain.start(deadline);
        let queued = || -> usize {
            self.senders
                .iter()
                .map(|h| h.queued.load(Ordering::Acquire))
                .sum()
        };
        for h in self.senders.iter() {
            let _ = h.wake.try_send(Wake);
        }
        let hard = deadline
            + std::time::Duration::from_millis(self.ctx.config.vendor_timeout_ms)
            + std::time::Duration::from_secs(1);
        while queued() > 0 && std::time::Instant::now() < hard {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let left = queued();
        if left > 0 {
            tracing::error!(
                notifications = left,
                "notifications were still in flight when the senders stopped"
            );
        }
        self.ctx.drain.held()
    }

    /// Stops the sender arbiter threads (graceful shutdown, after `drain`).
    pub fn shutdown(&self) {
        for h in self.senders.iter() {
            h.stop.store(true, Ordering::Relaxed);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for a in threads {
            a.stop();
            let _ = a.join();
        }
    }

    /// Notifications waiting in a certificate's sender.
    pub fn depth(&self, id: CertificateId) -> usize {
        self.senders
            .get(&id)
            .map(|h| h.queued.load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Fixtures shared by the role modules' tests.
    use super::*;
    use crate::config::Config;
    use crate::domain::{Certificate, Platform};
    use crate::push::Message;
    use crate::store::{FjallStore, StoreMetrics};
    use std::time::Instant;

    pub fn cert() -> Certificate {
        Certificate::xiaomi_for_tests(1001, "s", 10)
    }

    /// A sender context on a temporary store, with one certificate in the book.
    pub fn ctx_for_tests() -> (Arc<SenderCtx>, Arc<CertEntry>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(FjallStore::open(dir.path()).expect("store"));
        let (store, _writer) =
            StoreHandle::start(store, 64, 16, StoreMetrics::default()).expect("writer");
        let config = Config::default();
        let certs = Arc::new(CertBook::default());
        let entry = certs.insert(cert());
        let ctx = SenderCtx {
            registry: Arc::new(Registry::new(
                config.sessions.multi_device_policy,
                config.sessions.push_online_retention_secs,
            )),
            certs,
            store,
            metrics: Metrics::new(),
            outcomes: Arc::new(Outcomes::default()),
            providers: Providers::from_config(&config).expect("providers"),
            config: config.push.clone(),
            drain: Default::default(),
            journal_accepted: true,
        };
        (Arc::new(ctx), entry, dir)
    }

    /// `n` notifications of one message, to users u0.. with tokens t0..
    pub fn jobs(n: usize, cert: CertificateId) -> Vec<PushJob> {
        let message = Arc::new(Message {
            id: 42,
            from: "f".into(),
            text: "hi".into(),
            title: None,
            desc: None,
            ext: None,
            push: Err(crate::registry::SkipReason::PushDisabled),
            accepted_at: Instant::now(),
        });
        (0..n)
            .map(|i| PushJob {
                cert,
                token: Arc::from(format!("t{i}").as_str()),
                user: format!("u{i}").into(),
                device: "d".into(),
                message: message.clone(),
                attempt: 0,
                journal: None,
            })
            .collect()
    }

    /// Logs the job's device in and binds its token.
    pub fn bind(ctx: &SenderCtx, job: &PushJob) {
        ctx.registry
            .login(&job.user, Platform::Android, &job.device, None, 1)
            .expect("login");
        ctx.registry
            .set_token(&job.user, &job.device, job.cert, &job.token)
            .expect("token");
    }
}
