//! `CertSender`: one actix actor per certificate, on the sender arbiters. It batches the
//! notifications of its certificate (identical content → one `/v3/message/regid` call,
//! different content → `/v2/multi_messages/regids` calls), spends one token of the
//! certificate's bucket per vendor request, keeps a bounded number of requests in flight, and
//! acts on the one classification of each reply (`VendorReply`).

use super::bucket::TokenBucket;
use super::outcomes::{LastNotification, Outcomes};
use super::{PushContent, PushJob};
use crate::certs::{CertBook, CertEntry};
use crate::config::PushConfig;
use crate::domain::{now_millis, now_secs, Certificate, CertificateId};
use crate::metrics::Metrics;
use crate::providers::xiaomi::{
    next_china_midnight_unix, retry_delay, VendorReply, XiaomiApp, XiaomiClient, XiaomiMessage,
};
use crate::registry::Registry;
use crate::store::{StoreHandle, StoreOp};
use actix::prelude::*;
use dashmap::DashMap;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rate-limit answers retried before a notification counts as failed (they slow the bucket
/// each time, so this is a bound on a vendor that never recovers, not a normal path).
const MAX_RATE_LIMITED_ATTEMPTS: u32 = 20;

/// What every sender shares.
pub struct SenderCtx {
    pub registry: Arc<Registry>,
    pub certs: Arc<CertBook>,
    pub store: StoreHandle,
    pub metrics: Metrics,
    pub outcomes: Arc<Outcomes>,
    pub client: XiaomiClient,
    pub config: PushConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    #[error("no sender runs for this certificate")]
    NoSender,
    #[error("the certificate's push queue is full")]
    Full,
}

struct SenderHandle {
    addr: Addr<CertSender>,
    /// Notifications accepted and not yet finished: the queue bound, checked before sending.
    queued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// The senders of all certificates.
pub struct Senders {
    senders: DashMap<CertificateId, SenderHandle>,
    ctx: Arc<SenderCtx>,
    arbiters: Vec<ArbiterHandle>,
    /// Arbiters that run the vendor HTTP requests (form encoding, I/O, reply parsing).
    io: Vec<ArbiterHandle>,
    /// The arbiter threads, joined at shutdown.
    threads: std::sync::Mutex<Vec<Arbiter>>,
    next_arbiter: AtomicUsize,
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
    /// certificate (qps, secret, click action) from the book before each request.
    pub fn start(&self, entry: Arc<CertEntry>) {
        let id = entry.cert().id;
        let queued = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let i = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let ctx = self.ctx.clone();
        let io = self.io[i % self.io.len()].clone();
        let (q, s) = (queued.clone(), stop.clone());
        let capacity = self.ctx.config.queue_capacity;
        let addr = CertSender::start_in_arbiter(&self.arbiters[i], move |c| {
            // The mailbox never holds more than the queue bound (checked before each send).
            c.set_mailbox_capacity(capacity.saturating_add(16));
            CertSender::new(entry, ctx, q, s, io)
        });
        if let Some(old) = self.senders.insert(id, SenderHandle { addr, queued, stop }) {
            old.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Stops the sender of a deleted certificate; what it still holds fails as misconfigured.
    pub fn stop(&self, id: CertificateId) {
        if let Some((_, h)) = self.senders.remove(&id) {
            h.stop.store(true, Ordering::Relaxed);
            let _ = h.addr.try_send(Wake);
        }
    }

    /// Stops every sender and their arbiter threads (graceful shutdown).
    pub fn shutdown(&self) {
        let ids: Vec<CertificateId> = self.senders.iter().map(|e| *e.key()).collect();
        for id in ids {
            self.stop(id);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for a in threads {
            a.stop();
            let _ = a.join();
        }
    }

    /// A batch that collects the notifications of one message per certificate and hands each
    /// certificate's share to its sender in one actor message (sent when flushed or dropped).
    pub fn batch(&self) -> PushBatch<'_> {
        PushBatch {
            senders: self,
            groups: Vec::new(),
        }
    }

    /// Takes room for one notification of `cert` in its queue bound.
    fn reserve(&self, cert: CertificateId) -> Result<(), EnqueueError> {
        let h = self.senders.get(&cert).ok_or(EnqueueError::NoSender)?;
        if h.queued.fetch_add(1, Ordering::AcqRel) >= self.ctx.config.queue_capacity {
            h.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(EnqueueError::Full);
        }
        Ok(())
    }

    /// Accounts for notifications whose sender went away between reserve and send (their
    /// certificate was deleted meanwhile).
    fn sender_gone(&self, cert: CertificateId, jobs: Vec<PushJob>) {
        let n = jobs.len();
        if let Some(h) = self.senders.get(&cert) {
            h.queued.fetch_sub(n, Ordering::AcqRel);
        }
        if let Some(e) = self.ctx.certs.get(cert) {
            e.stats.fail("misconfigured", n as u64);
        }
        self.ctx
            .metrics
            .notifications
            .with_label_values(&["xiaomi", "misconfigured"])
            .inc_by(n as u64);
        for j in jobs {
            self.ctx.outcomes.record(
                &j.user,
                &j.device,
                LastNotification {
                    at: now_millis(),
                    message_id: j.message.id,
                    certificate_id: cert,
                    class: "misconfigured",
                    vendor_code: None,
                    trace_id: None,
                    msg_id: None,
                    detail: Cow::Borrowed(
                        "the certificate was deleted while the notification was queued",
                    ),
                },
            );
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

/// Several notifications of one certificate at once (a message to many recipients).
#[derive(actix::Message)]
#[rtype(result = "()")]
struct EnqueueMany(Vec<PushJob>);

/// Notifications of one dispatch, grouped by certificate. Room in each certificate's queue is
/// taken as each notification is added, so the caller learns at once when a queue is full.
pub struct PushBatch<'a> {
    senders: &'a Senders,
    groups: Vec<(CertificateId, Vec<PushJob>)>,
}

impl PushBatch<'_> {
    pub fn add(&mut self, job: PushJob) -> Result<(), EnqueueError> {
        self.senders.reserve(job.cert)?;
        match self.groups.iter_mut().find(|(c, _)| *c == job.cert) {
            Some((_, jobs)) => jobs.push(job),
            None => self.groups.push((job.cert, vec![job])),
        }
        Ok(())
    }

    /// Hands every group to its sender.
    pub fn flush(&mut self) {
        for (cert, jobs) in self.groups.drain(..) {
            let addr = self.senders.senders.get(&cert).map(|h| h.addr.clone());
            match addr {
                // The mailbox holds at most as many messages as the queue bound allows
                // notifications, so only a stopped sender refuses.
                Some(addr) => {
                    if let Err(e) = addr.try_send(EnqueueMany(jobs)) {
                        let jobs = match e {
                            SendError::Full(m) | SendError::Closed(m) => m.0,
                        };
                        self.senders.sender_gone(cert, jobs);
                    }
                }
                None => self.senders.sender_gone(cert, jobs),
            }
        }
    }
}

impl Drop for PushBatch<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Re-check timers, stop flags and the bucket.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct Wake;

/// One vendor request, built from pending notifications.
enum Request {
    Regid {
        msg: XiaomiMessage,
        jobs: Vec<PushJob>,
    },
    Multi {
        items: Vec<(XiaomiMessage, PushJob)>,
    },
}

impl Request {
    fn jobs(&self) -> Box<dyn Iterator<Item = &PushJob> + '_> {
        match self {
            Request::Regid { jobs, .. } => Box::new(jobs.iter()),
            Request::Multi { items } => Box::new(items.iter().map(|(_, j)| j)),
        }
    }

    fn into_jobs(self) -> Vec<PushJob> {
        match self {
            Request::Regid { jobs, .. } => jobs,
            Request::Multi { items } => items.into_iter().map(|(_, j)| j).collect(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Request::Regid { jobs, .. } => jobs.len(),
            Request::Multi { items } => items.len(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Request::Regid { .. } => "regid",
            Request::Multi { .. } => "multi_messages",
        }
    }

    fn attempt(&self) -> u32 {
        self.jobs().map(|j| j.attempt).max().unwrap_or(0)
    }

    fn bump_attempt(&mut self) {
        match self {
            Request::Regid { jobs, .. } => jobs.iter_mut().for_each(|j| j.attempt += 1),
            Request::Multi { items } => items.iter_mut().for_each(|(_, j)| j.attempt += 1),
        }
    }
}

/// The sender of one certificate.
pub struct CertSender {
    id: CertificateId,
    entry: Arc<CertEntry>,
    ctx: Arc<SenderCtx>,
    queued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    bucket: TokenBucket,
    /// The certificate as last read, to notice edits (qps, secret, click action).
    cert: Arc<Certificate>,
    app: XiaomiApp,
    /// Pending notifications grouped by identical content.
    groups: Vec<(XiaomiMessage, Vec<PushJob>)>,
    by_content: HashMap<XiaomiMessage, usize>,
    /// Message id → group, so content is built once per message, not once per recipient.
    by_message: HashMap<u64, usize>,
    linger_armed: bool,
    /// Requests built and waiting for a token or a free in-flight slot.
    ready: VecDeque<Request>,
    in_flight: usize,
    /// No request starts before this (rate-limit or transient back-off).
    hold_until: Option<Instant>,
    wake_armed: bool,
    /// `pushgate_notifications_total` children by outcome, resolved once.
    class_counters: Vec<(&'static str, prometheus::IntCounter)>,
    /// Where this sender's vendor requests run.
    io: ArbiterHandle,
}

impl Actor for CertSender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A slow tick notices stop flags and publishes the queue depth.
        ctx.run_interval(Duration::from_millis(500), |act, ctx| {
            act.ctx
                .metrics
                .push_queue_depth
                .with_label_values(&[&act.id.to_string()])
                .set(act.queued.load(Ordering::Relaxed) as i64);
            if act.stop.load(Ordering::Relaxed) {
                act.shutdown(ctx);
            }
        });
    }
}

fn app_of(cert: &Certificate) -> XiaomiApp {
    XiaomiApp {
        package_name: cert.package_name.clone(),
        app_secret: cert.app_secret.clone(),
    }
}

fn xiaomi_message(cert: &Certificate, content: &PushContent) -> XiaomiMessage {
    XiaomiMessage {
        title: content.title.clone(),
        description: content.desc.clone(),
        notify_id: XiaomiMessage::notify_id_for(&content.conversation),
        channel_id: content
            .channel_id
            .clone()
            .or_else(|| cert.channel_id.clone()),
        click: cert.click_action.clone(),
        ext: content.ext.clone(),
        payload: None,
    }
}

/// Which notifications of a request (by position) a `channel_exceed_quota` answer refused:
/// for each (channel, n), the last n of that channel. Xiaomi gives only counts, so which ones
/// it cut is UNCONFIRMED (spec §5.3); the tail is the emulator's choice and the likeliest one
/// for a server that counts in order. Channel `""` (a bare count) matches any; Xiaomi's
/// "default" matches messages without a channel.
fn over_quota_jobs(req: &Request, over: &[(String, u64)]) -> std::collections::HashSet<usize> {
    let channels: Vec<Option<&str>> = match req {
        Request::Regid { msg, jobs } => vec![msg.channel_id.as_deref(); jobs.len()],
        Request::Multi { items } => items.iter().map(|(m, _)| m.channel_id.as_deref()).collect(),
    };
    let mut picked = std::collections::HashSet::new();
    for (channel, n) in over {
        let matches = |c: Option<&str>| match c {
            _ if channel.is_empty() => true,
            Some(c) => c == channel,
            None => channel == "default",
        };
        let tail = (0..channels.len())
            .rev()
            .filter(|i| matches(channels[*i]) && !picked.contains(i))
            .take(usize::try_from(*n).unwrap_or(usize::MAX))
            .collect::<Vec<_>>();
        picked.extend(tail);
    }
    picked
}

impl CertSender {
    fn new(
        entry: Arc<CertEntry>,
        ctx: Arc<SenderCtx>,
        queued: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        io: ArbiterHandle,
    ) -> CertSender {
        let cert = entry.cert();
        CertSender {
            id: cert.id,
            bucket: TokenBucket::new(cert.qps, ctx.config.burst, Instant::now()),
            app: app_of(&cert),
            cert,
            entry,
            ctx,
            queued,
            stop,
            groups: Vec::new(),
            by_content: HashMap::new(),
            by_message: HashMap::new(),
            linger_armed: false,
            ready: VecDeque::new(),
            in_flight: 0,
            hold_until: None,
            wake_armed: false,
            class_counters: Vec::new(),
            io,
        }
    }

    /// Picks up an edited certificate: new qps at once, new secret and click action for the
    /// requests built from now on.
    fn refresh_cert(&mut self) {
        let cert = self.entry.cert();
        if !Arc::ptr_eq(&cert, &self.cert) {
            if cert.qps != self.cert.qps {
                self.bucket.set_qps(cert.qps, Instant::now());
            }
            self.app = app_of(&cert);
            self.cert = cert;
        }
    }

    fn add(&mut self, job: PushJob, ctx: &mut Context<Self>) {
        let content = match &job.message.push {
            Ok(c) => c,
            Err(_) => {
                // Dispatch never queues these; count defensively rather than send.
                self.finish(
                    &job,
                    "invalid_request",
                    None,
                    "the message has no notification",
                );
                return;
            }
        };
        let idx = match self.by_message.get(&job.message.id) {
            Some(i) => *i,
            None => {
                self.refresh_cert();
                let msg = xiaomi_message(&self.cert, content);
                let i = match self.by_content.get(&msg) {
                    Some(i) => *i,
                    None => {
                        self.groups.push((msg.clone(), Vec::new()));
                        self.by_content.insert(msg, self.groups.len() - 1);
                        self.groups.len() - 1
                    }
                };
                self.by_message.insert(job.message.id, i);
                i
            }
        };
        self.groups[idx].1.push(job);
        if self.groups[idx].1.len() >= self.ctx.config.regid_batch {
            let msg = self.groups[idx].0.clone();
            let jobs = std::mem::take(&mut self.groups[idx].1);
            self.ready.push_back(Request::Regid { msg, jobs });
            self.pump(ctx);
        }
        if !self.linger_armed {
            self.linger_armed = true;
            ctx.run_later(
                Duration::from_millis(self.ctx.config.linger_ms),
                |act, ctx| {
                    act.linger_armed = false;
                    act.flush();
                    act.pump(ctx);
                },
            );
        }
    }

    /// Turns every pending group into requests.
    fn flush(&mut self) {
        let regid_batch = self.ctx.config.regid_batch;
        let multi_batch = self.ctx.config.multi_batch;
        let mut singles: Vec<(XiaomiMessage, PushJob)> = Vec::new();
        for (msg, mut jobs) in self.groups.drain(..) {
            match jobs.len() {
                0 => {}
                1 => {
                    if let Some(j) = jobs.pop() {
                        singles.push((msg, j));
                    }
                }
                _ => {
                    while !jobs.is_empty() {
                        let rest = jobs.split_off(jobs.len().min(regid_batch));
                        self.ready.push_back(Request::Regid {
                            msg: msg.clone(),
                            jobs: std::mem::replace(&mut jobs, rest),
                        });
                    }
                }
            }
        }
        self.by_content.clear();
        self.by_message.clear();
        while !singles.is_empty() {
            let rest = singles.split_off(singles.len().min(multi_batch));
            let chunk = std::mem::replace(&mut singles, rest);
            if chunk.len() == 1 {
                if let Some((msg, job)) = chunk.into_iter().next() {
                    self.ready.push_back(Request::Regid {
                        msg,
                        jobs: vec![job],
                    });
                }
            } else {
                self.ready.push_back(Request::Multi { items: chunk });
            }
        }
    }

    fn arm_wake(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if self.wake_armed {
            return;
        }
        self.wake_armed = true;
        ctx.run_later(after.max(Duration::from_micros(200)), |act, ctx| {
            act.wake_armed = false;
            act.pump(ctx);
        });
    }

    /// Starts as many ready requests as the bucket, the in-flight bound and any hold allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.stop.load(Ordering::Relaxed) {
            self.shutdown(ctx);
            return;
        }
        while self.in_flight < self.ctx.config.max_in_flight.max(1) && !self.ready.is_empty() {
            let now = Instant::now();
            if let Some(until) = self.hold_until {
                if until > now {
                    self.arm_wake(until - now, ctx);
                    return;
                }
                self.hold_until = None;
            }
            if self.entry.is_broken() || self.entry.paused_until(now_secs()).is_some() {
                self.fail_all_held();
                return;
            }
            // An edited qps must bind this token already, not only the one after it.
            self.refresh_cert();
            if !self.bucket.try_take(now) {
                let wait = self.bucket.wait_time(now);
                self.arm_wake(wait, ctx);
                return;
            }
            let Some(req) = self.ready.pop_front() else {
                return;
            };
            self.send(req, ctx);
        }
    }

    fn send(&mut self, req: Request, ctx: &mut Context<Self>) {
        self.refresh_cert();
        self.in_flight += 1;
        let m = &self.ctx.metrics;
        m.vendor_batch_size
            .with_label_values(&["xiaomi", req.kind()])
            .observe(req.len() as f64);
        for j in req.jobs() {
            m.accept_to_vendor_seconds
                .observe(j.message.accepted_at.elapsed().as_secs_f64());
        }
        let client = self.ctx.client.clone();
        let app = self.app.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Form encoding, the HTTP exchange and reply parsing run on an I/O arbiter, so this
        // sender's thread only batches and accounts.
        let fut = async move {
            let started = Instant::now();
            let reply = match &req {
                Request::Regid { msg, jobs } => {
                    let regids: Vec<&str> = jobs.iter().map(|j| &*j.token).collect();
                    client.send_regid(&app, msg, &regids).await
                }
                Request::Multi { items } => {
                    let pairs: Vec<(&str, &XiaomiMessage)> =
                        items.iter().map(|(m, j)| (&*j.token, m)).collect();
                    client.send_multi(&app, &pairs).await
                }
            };
            let _ = tx.send((req, reply, started.elapsed()));
        };
        if !self.io.spawn(fut) {
            tracing::warn!(
                certificate = self.id,
                "the vendor I/O thread is gone (shutting down)"
            );
        }
        ctx.spawn(rx.into_actor(self).map(|done, act, ctx| {
            act.in_flight -= 1;
            match done {
                Ok((req, reply, took)) => act.on_reply(req, reply, took, ctx),
                // Only at shutdown: the I/O arbiter stopped with the request in flight.
                Err(_) => tracing::debug!("a vendor request was cancelled by shutdown"),
            }
            act.pump(ctx);
        }));
    }

    fn on_reply(
        &mut self,
        mut req: Request,
        reply: VendorReply,
        took: Duration,
        ctx: &mut Context<Self>,
    ) {
        let m = &self.ctx.metrics;
        m.vendor_requests
            .with_label_values(&["xiaomi", req.kind(), reply.class()])
            .inc();
        m.vendor_seconds
            .with_label_values(&["xiaomi"])
            .observe(took.as_secs_f64());
        let trace: Option<Arc<str>> = reply.trace_id().filter(|t| !t.is_empty()).map(Arc::from);
        match reply {
            VendorReply::Delivered {
                msg_id,
                bad_regids,
                over_quota,
                ..
            } => {
                self.bucket.recover();
                let msg_id: Arc<str> = Arc::from(msg_id.as_str());
                let bad: std::collections::HashSet<&str> =
                    bad_regids.iter().map(String::as_str).collect();
                let over = over_quota_jobs(&req, &over_quota);
                if !over_quota.is_empty() {
                    let until = next_china_midnight_unix(now_secs());
                    tracing::warn!(
                        certificate = self.id,
                        until,
                        "Xiaomi's daily quota used up (channel_exceed_quota); paused"
                    );
                    self.entry.pause_until(until);
                }
                for (i, j) in req.into_jobs().into_iter().enumerate() {
                    if over.contains(&i) {
                        self.finish_with(
                            &j,
                            "quota_exceeded",
                            None,
                            trace.clone(),
                            None,
                            "Xiaomi's daily quota is used up (channel_exceed_quota); not sent",
                        );
                    } else if bad.contains(&*j.token) {
                        self.unbind(&j.token);
                        self.finish_with(
                            &j,
                            "bad_token",
                            None,
                            trace.clone(),
                            None,
                            "Xiaomi listed this regId in bad_regids; the token was unbound",
                        );
                    } else {
                        self.finish_with(
                            &j,
                            "delivered",
                            Some(0),
                            trace.clone(),
                            Some(msg_id.clone()),
                            "accepted by Xiaomi",
                        );
                    }
                }
                if !over_quota.is_empty() {
                    self.fail_all_held();
                }
            }
            VendorReply::NoValidTargets { .. } => {
                for j in req.into_jobs() {
                    self.unbind(&j.token);
                    self.finish_with(
                        &j,
                        "no_valid_targets",
                        Some(20301),
                        trace.clone(),
                        None,
                        "Xiaomi answered 20301 No valid targets; the token was unbound",
                    );
                }
            }
            VendorReply::Misconfigured { code, reason, .. } => {
                tracing::warn!(
                    certificate = self.id,
                    code,
                    trace_id = trace.as_deref().unwrap_or(""),
                    "Xiaomi refused the certificate; marked broken until it is edited"
                );
                self.entry
                    .mark_broken(format!("Xiaomi answered {code}: {reason}"));
                let detail = format!("Xiaomi refused the certificate ({code}: {reason})");
                for j in req.into_jobs() {
                    self.finish_with(
                        &j,
                        "misconfigured",
                        Some(code),
                        trace.clone(),
                        None,
                        detail.clone(),
                    );
                }
                self.fail_all_held();
            }
            VendorReply::QuotaExceeded { reason, .. } => {
                let until = next_china_midnight_unix(now_secs());
                tracing::warn!(
                    certificate = self.id,
                    until,
                    "Xiaomi daily quota used up; paused"
                );
                self.entry.pause_until(until);
                let detail = format!("Xiaomi's daily quota is used up (200001: {reason})");
                for j in req.into_jobs() {
                    self.finish_with(
                        &j,
                        "quota_exceeded",
                        Some(200001),
                        trace.clone(),
                        None,
                        detail.clone(),
                    );
                }
                self.fail_all_held();
            }
            VendorReply::RateLimited { code, .. } => {
                self.entry
                    .stats
                    .rate_limited
                    .fetch_add(1, Ordering::Relaxed);
                self.bucket.slow_down(Instant::now());
                let attempt = req.attempt();
                if attempt + 1 >= MAX_RATE_LIMITED_ATTEMPTS {
                    for j in req.into_jobs() {
                        self.finish_with(
                            &j,
                            "rate_limited",
                            Some(code),
                            trace.clone(),
                            None,
                            "Xiaomi kept answering too fast (rate limited); gave up",
                        );
                    }
                } else {
                    req.bump_attempt();
                    self.hold(retry_delay(attempt), ctx);
                    self.ready.push_front(req);
                }
            }
            VendorReply::Transient { reason } => {
                let attempt = req.attempt();
                if attempt + 1 >= self.ctx.config.max_attempts.max(1) {
                    let detail = format!(
                        "Xiaomi unreachable after {} attempts: {reason}",
                        attempt + 1
                    );
                    for j in req.into_jobs() {
                        self.finish_with(&j, "transient", None, None, None, detail.clone());
                    }
                } else {
                    req.bump_attempt();
                    self.hold(retry_delay(attempt), ctx);
                    self.ready.push_front(req);
                }
            }
            VendorReply::InvalidRequest { code, reason, .. } => {
                tracing::warn!(
                    certificate = self.id,
                    code,
                    trace_id = trace.as_deref().unwrap_or(""),
                    "Xiaomi refused the request as invalid"
                );
                let detail = format!("Xiaomi refused the request ({code}: {reason})");
                for j in req.into_jobs() {
                    self.finish_with(
                        &j,
                        "invalid_request",
                        Some(code),
                        trace.clone(),
                        None,
                        detail.clone(),
                    );
                }
            }
            VendorReply::Unknown { code, reason, .. } => {
                tracing::warn!(certificate = self.id, code, trace_id = trace.as_deref().unwrap_or(""),
                    reason = %reason, "Xiaomi answered an unknown code; not retried");
                let detail = format!("Xiaomi answered an unknown code ({code}: {reason})");
                for j in req.into_jobs() {
                    self.finish_with(
                        &j,
                        "unknown",
                        Some(code),
                        trace.clone(),
                        None,
                        detail.clone(),
                    );
                }
            }
        }
    }

    fn hold(&mut self, d: Duration, ctx: &mut Context<Self>) {
        let until = Instant::now() + d;
        self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        self.arm_wake(d, ctx);
    }

    /// The certificate is broken, paused or deleted: everything it still holds fails now,
    /// with the reason, instead of waiting.
    fn fail_all_held(&mut self) {
        self.flush();
        let now = now_secs();
        let (class, detail) = if self.stop.load(Ordering::Relaxed) {
            ("misconfigured", "the certificate was deleted")
        } else if self.entry.is_broken() {
            ("misconfigured", "the certificate is marked broken")
        } else if self.entry.paused_until(now).is_some() {
            (
                "quota_exceeded",
                "the certificate is paused: daily quota used up",
            )
        } else {
            return;
        };
        let held: Vec<Request> = self.ready.drain(..).collect();
        for r in held {
            for j in r.into_jobs() {
                self.finish_with(&j, class, None, None, None, detail);
            }
        }
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        self.fail_all_held();
        if self.in_flight == 0 {
            ctx.stop();
        }
    }

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

    fn finish(
        &mut self,
        job: &PushJob,
        class: &'static str,
        code: Option<i64>,
        detail: &'static str,
    ) {
        self.finish_with(job, class, code, None, None, detail);
    }

    /// Accounts for one finished notification: stats, metrics, the device's last result.
    fn finish_with(
        &mut self,
        job: &PushJob,
        class: &'static str,
        code: Option<i64>,
        trace_id: Option<Arc<str>>,
        msg_id: Option<Arc<str>>,
        detail: impl Into<Cow<'static, str>>,
    ) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
        let stats = &self.entry.stats;
        if class == "delivered" {
            stats.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.fail(class, 1);
        }
        let counter = match self.class_counters.iter().find(|(c, _)| *c == class) {
            Some((_, counter)) => counter.clone(),
            None => {
                let counter = self
                    .ctx
                    .metrics
                    .notifications
                    .with_label_values(&["xiaomi", class]);
                self.class_counters.push((class, counter.clone()));
                counter
            }
        };
        counter.inc();
        self.ctx.outcomes.record(
            &job.user,
            &job.device,
            LastNotification {
                at: now_millis(),
                message_id: job.message.id,
                certificate_id: self.id,
                class,
                vendor_code: code,
                trace_id,
                msg_id,
                detail: detail.into(),
            },
        );
    }
}

impl Handler<EnqueueMany> for CertSender {
    type Result = ();

    fn handle(&mut self, msg: EnqueueMany, ctx: &mut Context<Self>) {
        for job in msg.0 {
            if self.stop.load(Ordering::Relaxed) {
                self.finish(&job, "misconfigured", None, "the certificate was deleted");
            } else {
                self.add(job, ctx);
            }
        }
    }
}

impl Handler<Wake> for CertSender {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.pump(ctx);
    }
}
