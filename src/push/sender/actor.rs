//! The loop of one certificate's sender: notifications join the pending groups; a request is
//! cut when it is due (full, or its oldest notification waited the linger) *and* the token
//! bucket grants a token and an in-flight slot is free; the exchange runs on an I/O arbiter;
//! the service's verdict is applied (certificate actions, retries with back-off, accounting).

use super::accounting::Accounting;
use super::batching::Pending;
use super::{EnqueueMany, SenderCtx, Wake};
use crate::certs::CertEntry;
use crate::domain::validate::FieldError;
use crate::domain::{now_secs, Certificate, CertificateId};
use crate::providers::{
    AccessCache, AccessError, Batch, BatchRule, CertAction, DeliveryClass, JobResult, JobVerdict,
    PushService, RetryBudget, RetryPlan, Verdict,
};
use crate::push::bucket::TokenBucket;
use crate::push::PushJob;
use actix::prelude::*;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Rate-limit answers retried before a notification counts as failed (they slow the bucket
/// each time, so this is a bound on a vendor that never recovers, not a normal path).
const MAX_RATE_LIMITED_ATTEMPTS: u32 = 20;

/// How often a fenced sender (cluster mode: its certificate's lease not renewed in time) looks
/// again whether it may send.
const FENCE_RECHECK: Duration = Duration::from_millis(50);

/// A request's end, sent back from the I/O arbiter to its sender.
struct Answered<S: PushService> {
    batch: Batch<S::Content>,
    verdict: Verdict,
    took: Duration,
    /// The lost-lease count and the certificate's edit count when it was sent (`apply`).
    sent_under: (u64, u64),
}

/// What the answers channel carries: `None` for a request the I/O arbiter dropped unanswered
/// (it stopped: shutdown).
type Answer<S> = Option<Answered<S>>;

/// A request on its way: answers its sender once, and tells it of a request dropped unanswered
/// (so the in-flight count always comes back down).
///
/// The channel holds as many answers as the sender keeps requests in flight: a request counts
/// as in flight until the sender has taken its answer, so a send never finds it full.
struct Unanswered<S: PushService> {
    to: mpsc::Sender<Answer<S>>,
    sent_under: (u64, u64),
    answered: bool,
}

impl<S: PushService> Unanswered<S> {
    async fn answer(mut self, batch: Batch<S::Content>, verdict: Verdict, took: Duration) {
        let answer = Answered {
            batch,
            verdict,
            took,
            sent_under: self.sent_under,
        };
        // Fails only when the sender is gone (stopped): its notifications stay journaled.
        let _ = self.to.send(Some(answer)).await;
        self.answered = true;
    }
}

impl<S: PushService> Drop for Unanswered<S> {
    fn drop(&mut self) {
        if !self.answered {
            // Room is there (see above); a stopped sender needs no word.
            let _ = self.to.try_send(None);
        }
    }
}

/// The sender's side of its answers channel, polled as one of the actor's futures: every
/// answer that arrived since the last wake is applied, then the loop pumps once. With 256
/// requests in flight (FCM, APNs) this is one wake and one pump per burst of replies, where a
/// future per request made actix poll all of them on every wake and pump after each reply.
struct Answers<S: PushService>(mpsc::Receiver<Answer<S>>);

impl<S: PushService> ActorFuture<CertSender<S>> for Answers<S> {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut CertSender<S>,
        ctx: &mut Context<CertSender<S>>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        let rx = &mut self.get_mut().0;
        let mut any = false;
        // Pending also when tokio's cooperative budget runs out: the task is woken again.
        let end = loop {
            match rx.poll_recv(task) {
                Poll::Ready(Some(answer)) => {
                    any = true;
                    act.answered(answer, ctx);
                }
                // The sender itself holds a handle: only when the actor is dropped.
                Poll::Ready(None) => break Poll::Ready(()),
                Poll::Pending => break Poll::Pending,
            }
        };
        if any {
            act.pump(ctx);
        }
        end
    }
}

/// The sender of one certificate.
pub struct CertSender<S: PushService> {
    id: CertificateId,
    service: Arc<S>,
    entry: Arc<CertEntry>,
    ctx: Arc<SenderCtx>,
    stop: Arc<AtomicBool>,
    bucket: TokenBucket,
    /// The certificate as last read, to notice edits (qps, credentials, click action).
    cert: Arc<Certificate>,
    /// How many edits `cert` has been through here: a request carries the count it was sent
    /// under, so a refusal of credentials edited since marks nothing broken.
    cert_rev: u64,
    credentials: Result<S::Credentials, FieldError>,
    /// The certificate's access token, shared by all its requests.
    access: Arc<AccessCache<S::Access>>,
    pending: Pending<S::Content>,
    /// Requests to send again, before anything new (their back-off is `hold_until`).
    retries: VecDeque<Batch<S::Content>>,
    in_flight: usize,
    /// No request starts before this (rate-limit or transient back-off).
    hold_until: Option<Instant>,
    /// The earliest wake-up already scheduled.
    wake_at: Option<Instant>,
    books: Accounting,
    /// Where this sender's vendor requests run.
    io: ArbiterHandle,
    /// Where they answer (the I/O arbiter sends each request's verdict here).
    answers: mpsc::Sender<Answer<S>>,
    /// The receiving end until `started` spawns it as the actor's `Answers` future.
    answers_rx: Option<mpsc::Receiver<Answer<S>>>,
    /// The certificate's lost-lease count the notifications held here were taken under.
    lease_gen: u64,
    /// How many back-offs taken over from a previous owner this sender has applied (cluster
    /// mode, `CertEntry::adopt_rate_factor`).
    adopted_gen: u64,
}

impl<S: PushService> Actor for CertSender<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(rx) = self.answers_rx.take() {
            ctx.spawn(Answers(rx));
        }
        // A slow tick notices stop flags and publishes the queue depth.
        ctx.run_interval(Duration::from_millis(500), |act, ctx| {
            act.give_back_if_lease_lost();
            act.ctx
                .metrics
                .push_queue_depth
                .with_label_values(&[&act.id.to_string()])
                .set(act.pending.len() as i64 + act.in_retry() as i64);
            if act.stop.load(Ordering::Relaxed) {
                act.shutdown(ctx);
            } else if act.ctx.drain.deadline().is_some() {
                act.pump(ctx);
            }
        });
    }
}

fn rule_of<S: PushService>(service: &S, ctx: &SenderCtx) -> BatchRule {
    service
        .batch_rule()
        .narrowed(ctx.config.regid_batch, ctx.config.multi_batch)
}

impl<S: PushService> CertSender<S> {
    pub fn new(
        service: Arc<S>,
        entry: Arc<CertEntry>,
        ctx: Arc<SenderCtx>,
        queued: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        io: ArbiterHandle,
    ) -> CertSender<S> {
        let cert = entry.cert();
        let books = Accounting::new(ctx.clone(), entry.clone(), queued, service.name());
        let mut bucket = TokenBucket::new(cert.qps, ctx.config.burst, Instant::now());
        let (factor, adopted_gen) = entry.adopted_rate_factor();
        if adopted_gen > 0 {
            bucket.set_factor(factor, Instant::now());
        }
        let in_flight = service.max_in_flight(ctx.config.max_in_flight).max(1);
        let (answers, answers_rx) = mpsc::channel(in_flight);
        CertSender {
            answers,
            answers_rx: Some(answers_rx),
            lease_gen: entry.lease_gen(),
            adopted_gen,
            cert_rev: 0,
            id: cert.id,
            bucket,
            credentials: service.credentials(&cert),
            pending: Pending::new(rule_of(&*service, &ctx)),
            access: AccessCache::new(),
            service,
            cert,
            entry,
            ctx,
            stop,
            retries: VecDeque::new(),
            in_flight: 0,
            hold_until: None,
            wake_at: None,
            books,
            io,
        }
    }

    /// Cluster mode: the certificate's lease was lost since this sender last looked. What it
    /// holds was read from the certificate's durable queue under that lease and is still
    /// pending there: it goes back (neither sent nor counted nor acked), for the next owner.
    fn give_back_if_lease_lost(&mut self) {
        let gen = self.entry.lease_gen();
        if gen == self.lease_gen {
            return;
        }
        self.lease_gen = gen;
        let mut n: usize = self.retries.drain(..).map(|b| b.len()).sum();
        if !self.pending.is_empty() {
            n += self.pending.drain().len();
        }
        self.give_back(n);
    }

    /// `n` notifications go back to the durable queue unsent.
    fn give_back(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        tracing::info!(
            certificate = self.id,
            notifications = n,
            "certificate lease lost: unsent notifications left to the next owner"
        );
        self.ctx
            .metrics
            .cluster_events
            .with_label_values(&["lease_lost_unsent"])
            .inc_by(n as u64);
        self.books.release(n);
    }

    fn in_retry(&self) -> usize {
        self.retries.iter().map(Batch::len).sum()
    }

    /// Picks up an edited certificate: new qps at once, new credentials and click action for
    /// the requests built from now on (a new access token too).
    fn refresh_cert(&mut self) {
        let (factor, adopted) = self.entry.adopted_rate_factor();
        if adopted != self.adopted_gen {
            // This node just took the certificate over: start from the previous owner's
            // back-off rather than at full qps into the vendor's frequency control.
            self.adopted_gen = adopted;
            self.bucket.set_factor(factor, Instant::now());
            self.entry.set_rate_factor(self.bucket.factor());
        }
        let cert = self.entry.cert();
        if !Arc::ptr_eq(&cert, &self.cert) {
            if cert.qps != self.cert.qps {
                self.bucket.set_qps(cert.qps, Instant::now());
                self.entry.set_rate_factor(self.bucket.factor());
            }
            self.credentials = self.service.credentials(&cert);
            self.access = AccessCache::new();
            self.cert = cert;
            self.cert_rev += 1;
        }
    }

    /// Adds one notification, read at `now`, with `following` more of its message coming
    /// next; the caller refreshed the certificate (`refresh_cert`) once for all it adds.
    fn add(&mut self, job: PushJob, now: Instant, following: usize) {
        // The message, not its content, is held: `render` runs once per message, so cloning
        // the content for every notification (as this did) only cost allocations.
        let message = job.message.clone();
        let Ok(content) = &message.push else {
            // Dispatch never queues these; count defensively rather than send.
            self.books.finish(
                job,
                JobResult::new(
                    DeliveryClass::InvalidRequest,
                    "the message has no notification",
                ),
                None,
            );
            return;
        };
        let (service, cert) = (&self.service, &self.cert);
        self.pending
            .add(job, now, following, || service.render(cert, content));
    }

    /// Wakes the loop at `at` unless an earlier wake-up is already scheduled.
    fn wake_at(&mut self, at: Instant, ctx: &mut Context<Self>) {
        if self.wake_at.is_some_and(|w| w <= at) {
            return;
        }
        self.wake_at = Some(at);
        let after = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_micros(200));
        ctx.run_later(after, move |act, ctx| {
            if act.wake_at == Some(at) {
                act.wake_at = None;
            }
            act.pump(ctx);
        });
    }

    /// Starts as many requests as the bucket, the in-flight bound, any hold and the linger
    /// allow. The request is cut only once its token is granted, so the notifications that
    /// arrive while the bucket is empty still join it.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.pump_requests(ctx);
        // Every path that finishes notifications ends in a pump: they are counted and their
        // journal removals go to the store together.
        self.books.settle();
    }

    fn pump_requests(&mut self, ctx: &mut Context<Self>) {
        if self.stop.load(Ordering::Relaxed) {
            self.shutdown(ctx);
            return;
        }
        self.give_back_if_lease_lost();
        // Draining for a shutdown: send at once (no linger) until the deadline, then hand
        // over what is left for the outbox.
        let drain = self.ctx.drain.deadline();
        if let Some(deadline) = drain {
            if Instant::now() >= deadline {
                self.defer_all_held();
                return;
            }
            self.wake_at(deadline, ctx);
        }
        let linger = match drain {
            Some(_) => Duration::ZERO,
            None => Duration::from_millis(self.ctx.config.linger_ms),
        };
        while self.in_flight
            < self
                .service
                .max_in_flight(self.ctx.config.max_in_flight)
                .max(1)
        {
            let now = Instant::now();
            let due = if self.retries.is_empty() {
                match self.pending.due_at(linger) {
                    Some(due) => due,
                    None => return,
                }
            } else {
                now
            };
            if let Some(until) = self.hold_until {
                if until > now {
                    self.wake_at(until, ctx);
                    return;
                }
                self.hold_until = None;
            }
            if self.entry.is_broken() || self.entry.paused_until(now_secs()).is_some() {
                self.fail_all_held();
                return;
            }
            if due > now {
                self.wake_at(due, ctx);
                return;
            }
            // The fence (cluster mode): no request starts once the lease may have expired, so
            // the next owner never sends beside this node. Held, not dropped: a renewal lifts
            // the fence, a lost lease gives everything back.
            if !self.entry.may_send() {
                self.wake_at(now + FENCE_RECHECK, ctx);
                return;
            }
            // An edited qps must bind this token already, not only the one after it.
            self.refresh_cert();
            if !self.bucket.try_take(now) {
                let wait = self.bucket.wait_time(now);
                self.wake_at(now + wait, ctx);
                return;
            }
            let batch = match self.retries.pop_front() {
                Some(b) => b,
                None => match self.pending.cut() {
                    Some(b) => b,
                    None => return,
                },
            };
            self.send(batch);
        }
    }

    fn send(&mut self, batch: Batch<S::Content>) {
        let credentials = match &self.credentials {
            Ok(c) => c.clone(),
            Err(e) => {
                let reason = format!("the certificate's {} is not usable: {}", e.field, e.message);
                self.entry.mark_broken(reason.clone(), &self.cert);
                for j in batch.into_jobs() {
                    self.books.finish(
                        j,
                        JobResult::new(DeliveryClass::Misconfigured, reason.clone()),
                        None,
                    );
                }
                self.fail_all_held();
                return;
            }
        };
        self.in_flight += 1;
        self.books.request_sent(batch.kind, batch.len());
        let m = &self.ctx.metrics;
        // One clock read and one flush of atomics per request, not per notification.
        let now = Instant::now();
        let local = m.accept_to_vendor_seconds.local();
        for j in batch.jobs() {
            local.observe(
                now.saturating_duration_since(j.message.accepted_at)
                    .as_secs_f64(),
            );
        }
        local.flush();
        let service = self.service.clone();
        let access = self.access.clone();
        let id = self.id;
        let unanswered = Unanswered {
            to: self.answers.clone(),
            sent_under: (self.lease_gen, self.cert_rev),
            answered: false,
        };
        // Access, encoding, the HTTP exchange and reply classification run on an I/O arbiter,
        // so this sender's thread only batches and accounts. The answer comes back on the
        // sender's one channel (`Answers`), not a future of its own per request.
        let fut = async move {
            let started = Instant::now();
            let granted = access.get(|| service.acquire_access(&credentials)).await;
            let attempt = batch.attempt();
            let verdict = match granted {
                Ok(token) => {
                    let reply = service.exchange(&credentials, &token, &batch).await;
                    service.classify(id, &batch, reply, attempt)
                }
                Err(e) => access_verdict(e, batch.len(), attempt),
            };
            unanswered.answer(batch, verdict, started.elapsed()).await;
        };
        if !self.io.spawn(fut) {
            tracing::warn!(
                certificate = self.id,
                "the vendor I/O thread is gone (shutting down)"
            );
        }
    }

    /// One request's end, as the I/O arbiter sent it back.
    fn answered(&mut self, answer: Answer<S>, ctx: &mut Context<Self>) {
        self.in_flight -= 1;
        match answer {
            Some(Answered {
                batch,
                verdict,
                took,
                sent_under,
            }) => {
                self.books
                    .request_answered(batch.kind, verdict.reply_class, took);
                self.apply(batch, verdict, sent_under, ctx);
            }
            // Only at shutdown: the I/O arbiter stopped with the request in flight.
            None => tracing::debug!("a vendor request was cancelled by shutdown"),
        }
    }

    /// Applies a verdict: the certificate's action, then each notification's end or retry.
    /// `sent_under`: the lost-lease count when the request was sent (a retry of a request sent
    /// under a lease lost since goes back to the durable queue instead) and the edit count of
    /// the certificate it was sent with (a refusal of credentials edited since breaks nothing).
    fn apply(
        &mut self,
        batch: Batch<S::Content>,
        verdict: Verdict,
        (lease_gen, cert_rev): (u64, u64),
        ctx: &mut Context<Self>,
    ) {
        let Verdict {
            trace_id,
            jobs,
            retry,
            certificate,
            ..
        } = verdict;
        let mut stopped = false;
        let rate = self.bucket.rate();
        for action in certificate {
            match action {
                CertAction::SpeedUp => self.bucket.recover(),
                CertAction::SlowDown => {
                    self.entry
                        .stats
                        .rate_limited
                        .fetch_add(1, Ordering::Relaxed);
                    self.bucket.slow_down(Instant::now());
                }
                CertAction::Broken(reason) => {
                    // About the credentials the request was sent with: edited since (here, or
                    // in the book and not picked up yet), the new ones get their try.
                    if cert_rev == self.cert_rev && self.entry.mark_broken(reason, &self.cert) {
                        stopped = true;
                    } else {
                        tracing::info!(
                            certificate = self.id,
                            "refused credentials were edited since the request; not marked broken"
                        );
                    }
                }
                CertAction::PausedUntil(until) => {
                    self.entry.pause_until(until);
                    stopped = true;
                }
                // Before the retries below are queued, so none of them takes the refused token.
                CertAction::RenewAccess => self.access.invalidate(),
            }
        }
        if self.bucket.rate() != rate {
            self.entry.set_rate_factor(self.bucket.factor());
        }
        let attempt = batch.attempt();
        let mut verdicts = jobs.into_iter();
        let mut again: Vec<(S::Content, Vec<PushJob>)> = Vec::new();
        for (content, part) in batch.parts {
            let mut retried = Vec::new();
            for job in part {
                // A verdict shorter than its request finishes the rest as unknown, never drops.
                let v = verdicts.next().unwrap_or_else(|| {
                    JobVerdict::Done(JobResult::new(
                        DeliveryClass::Unknown,
                        "the vendor's answer did not cover this notification",
                    ))
                });
                match v {
                    JobVerdict::Done(result) => self.books.finish(job, result, trace_id.clone()),
                    JobVerdict::Retry => retried.push(job),
                }
            }
            if !retried.is_empty() {
                again.push((content, retried));
            }
        }
        if !again.is_empty() && lease_gen != self.entry.lease_gen() {
            let n = again.iter().map(|(_, jobs)| jobs.len()).sum();
            self.give_back(n);
        } else if !again.is_empty() {
            let plan = retry.unwrap_or_else(|| RetryPlan {
                after: Duration::from_secs(1),
                budget: RetryBudget::Transient,
                give_up: JobResult::new(
                    DeliveryClass::Transient,
                    "the vendor asked for a retry without a plan",
                ),
            });
            let again = Batch {
                kind: batch.kind,
                parts: again,
            };
            self.retry(again, plan, attempt, trace_id, ctx);
        }
        if stopped {
            self.fail_all_held();
        }
    }

    /// Sends `batch` again after the plan's back-off, or ends it when its budget is spent.
    fn retry(
        &mut self,
        mut batch: Batch<S::Content>,
        plan: RetryPlan,
        attempt: u32,
        trace_id: Option<std::sync::Arc<str>>,
        ctx: &mut Context<Self>,
    ) {
        let budget = match plan.budget {
            RetryBudget::RateLimited => MAX_RATE_LIMITED_ATTEMPTS,
            RetryBudget::Transient => self.ctx.config.max_attempts.max(1),
        };
        if attempt + 1 >= budget {
            // A rate-limit give-up keeps the vendor's trace; a transport failure has none.
            let trace = match plan.budget {
                RetryBudget::RateLimited => trace_id,
                RetryBudget::Transient => None,
            };
            for j in batch.into_jobs() {
                self.books.finish(j, plan.give_up.clone(), trace.clone());
            }
            return;
        }
        for (_, jobs) in batch.parts.iter_mut() {
            jobs.iter_mut().for_each(|j| j.attempt += 1);
        }
        let until = Instant::now() + plan.after;
        self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        self.wake_at(until, ctx);
        self.retries.push_front(batch);
    }

    /// The certificate is broken, paused or deleted: everything it still holds fails now,
    /// with the reason, instead of waiting.
    fn fail_all_held(&mut self) {
        let (class, detail) = if self.stop.load(Ordering::Relaxed) {
            (DeliveryClass::Misconfigured, "the certificate was deleted")
        } else if self.entry.is_broken() {
            (
                DeliveryClass::Misconfigured,
                "the certificate is marked broken",
            )
        } else if self.entry.paused_until(now_secs()).is_some() {
            (
                DeliveryClass::QuotaExceeded,
                "the certificate is paused: daily quota used up",
            )
        } else {
            return;
        };
        let mut held: Vec<PushJob> = self.retries.drain(..).flat_map(Batch::into_jobs).collect();
        if !self.pending.is_empty() {
            held.extend(self.pending.drain());
        }
        for j in held {
            self.books.finish(j, JobResult::new(class, detail), None);
        }
    }

    /// The shutdown's grace is over: everything held stays in the journal (counted `saved`),
    /// to be sent by the next start.
    fn defer_all_held(&mut self) {
        let mut held: Vec<PushJob> = self.retries.drain(..).flat_map(Batch::into_jobs).collect();
        if !self.pending.is_empty() {
            held.extend(self.pending.drain());
        }
        if held.is_empty() {
            return;
        }
        self.ctx
            .metrics
            .outbox
            .with_label_values(&["saved"])
            .inc_by(held.len() as u64);
        self.ctx.drain.hold(held.len());
        self.books.release(held.len());
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        self.fail_all_held();
        self.books.settle();
        if self.in_flight == 0 {
            ctx.stop();
        }
    }
}

/// No access token to send with: refused credentials break the certificate, an unreachable
/// token endpoint is retried like any transient failure.
fn access_verdict(e: AccessError, n: usize, attempt: u32) -> Verdict {
    match e {
        AccessError::Refused(reason) => Verdict::all_done(
            "access_refused",
            n,
            JobResult::new(
                DeliveryClass::Misconfigured,
                format!("the vendor refused the certificate's credentials: {reason}"),
            ),
        )
        .act(CertAction::Broken(format!(
            "the vendor refused the credentials: {reason}"
        ))),
        AccessError::Unavailable(reason) => Verdict::retry_all(
            "access_unavailable",
            n,
            RetryPlan {
                after: Duration::from_millis(500u64 << attempt.min(7)),
                budget: RetryBudget::Transient,
                give_up: JobResult::new(
                    DeliveryClass::Transient,
                    format!("no access token after {} attempts: {reason}", attempt + 1),
                ),
            },
        ),
    }
}

impl<S: PushService> Handler<EnqueueMany> for CertSender<S> {
    type Result = ();

    fn handle(&mut self, msg: EnqueueMany, ctx: &mut Context<Self>) {
        // Jobs held from before a lost lease go back before these (read under the new one).
        self.give_back_if_lease_lost();
        // Once per hand-over, not per notification: the certificate's lock and the clock.
        self.refresh_cert();
        let now = Instant::now();
        // How many notifications of the same message follow each one, so that its group's
        // queue grows once for the whole run rather than doubling its way there.
        let mut following = vec![0; msg.0.len()];
        for i in (0..msg.0.len().saturating_sub(1)).rev() {
            if msg.0[i].message.id == msg.0[i + 1].message.id {
                following[i] = following[i + 1] + 1;
            }
        }
        for (job, following) in msg.0.into_iter().zip(following) {
            if self.stop.load(Ordering::Relaxed) {
                self.books.finish(
                    job,
                    JobResult::new(DeliveryClass::Misconfigured, "the certificate was deleted"),
                    None,
                );
            } else {
                self.add(job, now, following);
            }
        }
        self.pump(ctx);
    }
}

impl<S: PushService> Handler<Wake> for CertSender<S> {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.pump(ctx);
    }
}
