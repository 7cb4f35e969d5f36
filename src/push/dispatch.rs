//! The routing decision: for each recipient and each of its devices, the live connection, the
//! push queue of its certificate, or nothing with a reason.

use super::sender::{EnqueueError, PushBatch};
use super::{Message, PushJob};
use crate::certs::CertBook;
use crate::domain::CertificateId;
use crate::metrics::Metrics;
use crate::registry::{ConnId, Device, Registry, Route, SkipReason};
use crate::session::{Hub, SessionCommand};
use compact_str::CompactString;
use serde::Serialize;
use std::cell::RefCell;
use std::sync::Arc;

/// The outcome for one recipient (or one device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Online,
    PushQueued,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Online => "online",
            Outcome::PushQueued => "push_queued",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceOutcome {
    pub device: CompactString,
    pub platform: &'static str,
    pub outcome: Outcome,
    /// Also pushed while connected in the background.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub also_pushed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// One recipient's result: online if any device got it live, else push_queued if any device's
/// notification was queued, else skipped with the first device's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientResult {
    /// Inline up to 24 bytes: no allocation per recipient for typical names.
    pub user: CompactString,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Each device's outcome, when the request asked for `detail`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceOutcome>,
}

/// Where dispatch hands notifications: the certificates' senders in service, a recording
/// queue in the tests below. Nothing here awaits.
pub trait PushQueue {
    /// Why certificate `cert` takes no notification now, if it does not.
    fn refuses(&mut self, cert: CertificateId, now: u64) -> Option<SkipReason>;
    /// About `n` notifications follow (room is made for them at once); a hint only.
    fn expect(&mut self, _n: usize) {}
    /// Takes one notification; refuses it when its certificate's queue is full.
    fn add(&mut self, job: PushJob) -> Result<(), EnqueueError>;
    /// Hands the notifications taken so far on.
    fn flush(&mut self);
    /// Hands them on; done when their journal entries are on disk.
    fn journaled(&mut self) -> crate::store::CommitTicket {
        self.flush();
        crate::store::CommitTicket::done()
    }
}

/// The service's queue: certificate health from the book, notifications to the senders' batch.
pub struct SenderQueue<'a> {
    pub certs: &'a CertBook,
    pub batch: PushBatch<'a>,
    /// The certificate looked up last and its entry: a message's recipients mostly share one,
    /// so the book (a lock and a reference count each) is read once per certificate, not per
    /// notification. Its health is still read per notification.
    pub last: Option<(CertificateId, Option<Arc<crate::certs::CertEntry>>)>,
}

impl PushQueue for SenderQueue<'_> {
    fn refuses(&mut self, cert: CertificateId, now: u64) -> Option<SkipReason> {
        let entry = match &self.last {
            Some((c, entry)) if *c == cert => entry,
            _ => &self.last.insert((cert, self.certs.get(cert))).1,
        };
        let Some(entry) = entry else {
            return Some(SkipReason::CertificateMissing);
        };
        if entry.is_broken() {
            Some(SkipReason::CertificateBroken)
        } else if entry.paused_until(now).is_some() {
            Some(SkipReason::QuotaPaused)
        } else {
            None
        }
    }

    fn expect(&mut self, n: usize) {
        self.batch.expect(n);
    }

    fn add(&mut self, job: PushJob) -> Result<(), EnqueueError> {
        let cert = job.cert;
        self.batch.add(job).inspect_err(|_| {
            if let Some(entry) = self.certs.get(cert) {
                entry
                    .stats
                    .count(crate::providers::DeliveryClass::QueueFull, 1);
            }
        })
    }

    fn flush(&mut self) {
        self.batch.flush();
    }

    fn journaled(&mut self) -> crate::store::CommitTicket {
        self.batch.journaled()
    }
}

/// Online before push before skipped: the best device decides a recipient's outcome (also
/// the index of `Metrics::recipients_by_outcome`).
fn rank(o: Outcome) -> usize {
    match o {
        Outcome::Online => 0,
        Outcome::PushQueued => 1,
        Outcome::Skipped => 2,
    }
}

/// What one recipient's devices came to so far.
struct Tally {
    best: Outcome,
    first_skip: Option<SkipReason>,
    /// Each device's outcome, when the request asked for `detail`.
    devices: Vec<DeviceOutcome>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            best: Outcome::Skipped,
            first_skip: None,
            devices: Vec::new(),
        }
    }
}

/// What dispatch needs; all shared, nothing awaited. Notifications are handed to their
/// senders per certificate when the queue is dropped (or `flush`ed).
pub struct Dispatch<'a, Q: PushQueue = SenderQueue<'a>> {
    pub registry: &'a Registry,
    pub hub: &'a Hub,
    pub metrics: &'a Metrics,
    pub queue: RefCell<Q>,
    /// Also report each device's outcome (costs an allocation per recipient).
    pub detail: bool,
    /// Unix seconds of the routing decision, read once per message (not per recipient).
    pub now: u64,
}

impl<Q: PushQueue> Dispatch<'_, Q> {
    /// Hands the notifications collected so far to their senders.
    pub fn flush(&self) {
        self.queue.borrow_mut().flush();
    }

    /// Hands them to their senders; done when they are journaled (an accepted notification
    /// is answered `push_queued` only once it is on disk).
    pub fn journaled(&self) -> crate::store::CommitTicket {
        self.queue.borrow_mut().journaled()
    }

    /// Routes one message to one recipient.
    pub fn recipient(&self, user: &str, msg: &Arc<Message>) -> RecipientResult {
        let mut tally = Tally::new();
        let n = self.registry.route_with(user, self.now, |dev, route| {
            self.device(user, dev, route, msg, &mut tally)
        });
        let result = self.result(user, n, tally);
        self.metrics.recipients_by_outcome[rank(result.outcome)].inc();
        result
    }

    /// Routes one message to many recipients (distinct names): the results in the order of
    /// `users`. The registry is read a table shard at a time (`Registry::route_many`), so
    /// notifications are queued in that order rather than the request's.
    pub fn recipients<S: AsRef<str>>(
        &self,
        users: &[S],
        msg: &Arc<Message>,
    ) -> Vec<RecipientResult> {
        let mut tallies: Vec<Tally> = users.iter().map(|_| Tally::new()).collect();
        self.queue.borrow_mut().expect(users.len());
        let counts = self.registry.route_many(users, self.now, |i, dev, route| {
            if let (Some(user), Some(tally)) = (users.get(i), tallies.get_mut(i)) {
                self.device(user.as_ref(), dev, route, msg, tally);
            }
        });
        // Counted once per outcome for the whole message, not once per recipient.
        let mut by_outcome = [0u64; 3];
        let results = users
            .iter()
            .zip(counts)
            .zip(tallies)
            .map(|((user, n), tally)| {
                let result = self.result(user.as_ref(), n, tally);
                by_outcome[rank(result.outcome)] += 1;
                result
            })
            .collect();
        for (counter, n) in self.metrics.recipients_by_outcome.iter().zip(by_outcome) {
            if n > 0 {
                counter.inc_by(n);
            }
        }
        results
    }

    /// One device of a recipient: routed, its outcome added to the recipient's tally.
    fn device(
        &self,
        user: &str,
        dev: &Device,
        route: Route,
        msg: &Arc<Message>,
        tally: &mut Tally,
    ) {
        let now = self.now;
        let (outcome, also_pushed, reason) = match route {
            Route::Online { conn } => {
                let fallback = dev.token.clone().map(|t| (dev.cert, t));
                self.online(user, &dev.id, conn, fallback, msg, now)
            }
            Route::OnlineAndPush { conn, cert, token } => {
                let (o, _, r) = self.online(user, &dev.id, conn, None, msg, now);
                let (po, _, _) = self.push(user, &dev.id, cert, token, msg, now);
                (o, po == Outcome::PushQueued, r)
            }
            Route::Push { cert, token } => self.push(user, &dev.id, cert, token, msg, now),
            Route::Skip(r) => (Outcome::Skipped, false, Some(r)),
        };
        if outcome == Outcome::Skipped {
            if let Some(r) = reason {
                self.metrics.skip(r);
                tally.first_skip.get_or_insert(r);
            }
        }
        if rank(outcome) < rank(tally.best) {
            tally.best = outcome;
        }
        if self.detail {
            tally.devices.push(DeviceOutcome {
                device: dev.id.clone(),
                platform: dev.platform.as_str(),
                outcome,
                also_pushed,
                reason: reason.map(SkipReason::as_str),
            });
        }
    }

    /// A recipient's result from its `n` devices' tally (an unknown user's skip counted; the
    /// outcome is counted by the caller).
    fn result(&self, user: &str, n: usize, tally: Tally) -> RecipientResult {
        if n == 0 {
            self.metrics.skip(SkipReason::UnknownUser);
            RecipientResult {
                user: CompactString::from(user),
                outcome: Outcome::Skipped,
                reason: Some(SkipReason::UnknownUser.as_str()),
                devices: tally.devices,
            }
        } else {
            RecipientResult {
                user: CompactString::from(user),
                outcome: tally.best,
                reason: if tally.best == Outcome::Skipped {
                    tally.first_skip.map(SkipReason::as_str)
                } else {
                    None
                },
                devices: tally.devices,
            }
        }
    }

    /// Hands a message that a live connection of `dev` did not ack to the push path of that
    /// device, as routed now (the connection is gone).
    pub fn fallback(
        &self,
        user: &str,
        dev: &Device,
        route: Route,
        msg: &Arc<Message>,
        now: u64,
    ) -> DeviceOutcome {
        let (outcome, reason) = match route {
            Route::Push { cert, token } | Route::OnlineAndPush { cert, token, .. } => {
                let (o, _, r) = self.push(user, &dev.id, cert, token, msg, now);
                (o, r)
            }
            Route::Skip(r) => (Outcome::Skipped, Some(r)),
            // Reconnected meanwhile: the new connection gets history from the IM cluster.
            Route::Online { .. } => (Outcome::Online, None),
        };
        if outcome == Outcome::Skipped {
            if let Some(r) = reason {
                self.metrics.skip(r);
            }
        }
        DeviceOutcome {
            device: dev.id.clone(),
            platform: dev.platform.as_str(),
            outcome,
            also_pushed: false,
            reason: reason.map(SkipReason::as_str),
        }
    }

    fn online(
        &self,
        user: &str,
        device: &CompactString,
        conn: Option<ConnId>,
        fallback: Option<(u64, Arc<str>)>,
        msg: &Arc<Message>,
        now: u64,
    ) -> (Outcome, bool, Option<SkipReason>) {
        let Some(conn) = conn else {
            // The IM cluster holds this connection and delivers the message itself.
            return (Outcome::Online, false, None);
        };
        match self.hub.send(conn, SessionCommand::Deliver(msg.clone())) {
            Ok(()) => (Outcome::Online, false, None),
            Err(e) => {
                // The connection is going away or cannot keep up: the push path takes over
                // for this device, as it would for an unacked message.
                tracing::debug!(error = %e, "live delivery refused, falling back to push");
                self.metrics
                    .online_deliveries
                    .with_label_values(&["fell_back_to_push"])
                    .inc();
                // (The registry guard is held here: use the device's token as routed, never
                // look the device up again.)
                match fallback {
                    Some((cert, token)) => self.push(user, device, cert, token, msg, now),
                    None => (Outcome::Skipped, false, Some(SkipReason::NoToken)),
                }
            }
        }
    }

    fn push(
        &self,
        user: &str,
        device: &CompactString,
        cert: u64,
        token: Arc<str>,
        msg: &Arc<Message>,
        now: u64,
    ) -> (Outcome, bool, Option<SkipReason>) {
        if let Err(r) = &msg.push {
            return (Outcome::Skipped, false, Some(*r));
        }
        if let Some(r) = self.queue.borrow_mut().refuses(cert, now) {
            return (Outcome::Skipped, false, Some(r));
        }
        let job = PushJob {
            cert,
            token,
            user: CompactString::from(user),
            device: device.clone(),
            message: msg.clone(),
            attempt: 0,
            journal: None,
        };
        let queued = self.queue.borrow_mut().add(job);
        match queued {
            Ok(()) => (Outcome::PushQueued, false, None),
            Err(_) => (Outcome::Skipped, false, Some(SkipReason::QueueFull)),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The routing decision per device state and message, over a real registry and a queue that
    //! records what it is handed (no sender, no certificate, no network).
    use super::*;
    use crate::domain::message::PushContent;
    use crate::domain::{now_secs, DeviceEvent, MultiDevicePolicy, Platform};
    use std::time::Instant;
    use DeviceEvent::Disconnect;

    const CERT: CertificateId = 1001;
    const RETENTION: u64 = 7 * 86_400;

    /// Takes at most `capacity` notifications; refuses every certificate with `refuse`.
    struct Recorder {
        jobs: Vec<PushJob>,
        capacity: usize,
        refuse: Option<SkipReason>,
    }

    impl Recorder {
        fn open() -> Recorder {
            Recorder {
                jobs: Vec::new(),
                capacity: usize::MAX,
                refuse: None,
            }
        }
    }

    impl PushQueue for Recorder {
        fn refuses(&mut self, _: CertificateId, _: u64) -> Option<SkipReason> {
            self.refuse
        }

        fn add(&mut self, job: PushJob) -> Result<(), EnqueueError> {
            if self.jobs.len() >= self.capacity {
                return Err(EnqueueError::Full);
            }
            self.jobs.push(job);
            Ok(())
        }

        fn flush(&mut self) {}
    }

    struct World {
        registry: Registry,
        hub: Hub,
        metrics: Metrics,
    }

    impl World {
        fn new() -> World {
            World {
                registry: Registry::new(MultiDevicePolicy::Multi, RETENTION),
                hub: Hub::default(),
                metrics: Metrics::new(),
            }
        }

        /// `user`'s device `d1`, logged in now (`conn` None: the IM cluster holds the
        /// connection), with a token when `token` is set, then through `events`.
        fn device(&self, user: &str, conn: Option<ConnId>, token: bool, events: &[DeviceEvent]) {
            let now = now_secs();
            self.registry
                .login(user, Platform::Android, "d1", conn, now)
                .unwrap();
            if token {
                self.registry
                    .set_token(user, "d1", CERT, &format!("regid-{user}"))
                    .unwrap();
            }
            for ev in events {
                self.registry.apply(user, "d1", *ev, conn, now).unwrap();
            }
        }

        fn send(
            &self,
            queue: Recorder,
            user: &str,
            msg: &Arc<Message>,
        ) -> (RecipientResult, Recorder) {
            let d = Dispatch {
                registry: &self.registry,
                hub: &self.hub,
                metrics: &self.metrics,
                queue: RefCell::new(queue),
                detail: true,
                now: now_secs(),
            };
            let r = d.recipient(user, msg);
            (r, d.queue.into_inner())
        }

        fn skipped(&self, r: SkipReason) -> u64 {
            self.metrics.skipped_by_reason[r as usize].get()
        }
    }

    fn message(push: Result<(), SkipReason>) -> Arc<Message> {
        Arc::new(Message {
            id: 1,
            from: "carol".into(),
            text: "hi".into(),
            title: None,
            desc: None,
            ext: None,
            push: push.map(|()| PushContent {
                title: "carol".into(),
                desc: "hi".into(),
                ext: None,
                channel_id: None,
                hw: Default::default(),
                ovm: Default::default(),
                global: Default::default(),
                conversation: "c2c:carol".into(),
            }),
            accepted_at: Instant::now(),
        })
    }

    #[test]
    fn online_in_the_foreground_gets_the_connection_only() {
        let w = World::new();
        w.device("alice", None, true, &[]);
        let (r, q) = w.send(Recorder::open(), "alice", &message(Ok(())));
        assert_eq!(r.outcome, Outcome::Online);
        assert_eq!(r.reason, None);
        assert!(!r.devices[0].also_pushed);
        assert!(
            q.jobs.is_empty(),
            "a foreground device gets no notification"
        );
    }

    #[test]
    fn online_in_the_background_gets_the_connection_and_a_notification() {
        let w = World::new();
        w.device("alice", None, true, &[DeviceEvent::Background]);
        let (r, q) = w.send(Recorder::open(), "alice", &message(Ok(())));
        assert_eq!(r.outcome, Outcome::Online);
        assert!(r.devices[0].also_pushed);
        assert_eq!(q.jobs.len(), 1);
        assert_eq!(&*q.jobs[0].token, "regid-alice");
        assert_eq!(q.jobs[0].cert, CERT);
    }

    #[test]
    fn push_online_with_a_token_gets_a_notification() {
        let w = World::new();
        w.device("alice", None, true, &[DeviceEvent::Disconnect]);
        let (r, q) = w.send(Recorder::open(), "alice", &message(Ok(())));
        assert_eq!(r.outcome, Outcome::PushQueued);
        assert_eq!(q.jobs.len(), 1);
        assert_eq!(
            (q.jobs[0].user.as_str(), q.jobs[0].device.as_str()),
            ("alice", "d1")
        );
    }

    #[test]
    fn a_live_connection_that_is_gone_falls_back_to_the_push_path() {
        let w = World::new();
        // Connection 7 is routed to but not in the hub (it is closing).
        w.device("alice", Some(7), true, &[]);
        let (r, q) = w.send(Recorder::open(), "alice", &message(Ok(())));
        assert_eq!(r.outcome, Outcome::PushQueued);
        assert_eq!(q.jobs.len(), 1);
    }

    /// A user, whether its device has a token, its history, the message's push, the reason.
    type Case = (
        &'static str,
        bool,
        &'static [DeviceEvent],
        Result<(), SkipReason>,
        SkipReason,
    );

    #[test]
    fn devices_that_get_nothing_are_skipped_with_their_reason_and_counted() {
        use DeviceEvent::{Kicked, Logout};
        let cases: [Case; 6] = [
            (
                "no_token",
                false,
                &[Disconnect],
                Ok(()),
                SkipReason::NoToken,
            ),
            ("logged_out", true, &[Logout], Ok(()), SkipReason::LoggedOut),
            ("kicked", true, &[Kicked], Ok(()), SkipReason::Kicked),
            (
                "push_off",
                true,
                &[Disconnect],
                Err(SkipReason::PushDisabled),
                SkipReason::PushDisabled,
            ),
            (
                "online_only",
                true,
                &[Disconnect],
                Err(SkipReason::OnlineOnly),
                SkipReason::OnlineOnly,
            ),
            (
                "nothing",
                true,
                &[Disconnect],
                Err(SkipReason::NothingToShow),
                SkipReason::NothingToShow,
            ),
        ];
        for (user, token, events, push, reason) in cases {
            let w = World::new();
            w.device(user, None, token, events);
            let (r, q) = w.send(Recorder::open(), user, &message(push));
            assert_eq!(r.outcome, Outcome::Skipped, "{user}");
            assert_eq!(r.reason, Some(reason.as_str()), "{user}");
            assert_eq!(r.devices[0].reason, Some(reason.as_str()), "{user}");
            assert!(q.jobs.is_empty(), "{user}");
            assert_eq!(w.skipped(reason), 1, "{user}");
        }
    }

    #[test]
    fn push_online_past_the_retention_is_skipped_as_expired() {
        let w = World::new();
        let long_ago = now_secs() - RETENTION - 60;
        w.registry
            .login("alice", Platform::Android, "d1", None, long_ago)
            .unwrap();
        w.registry
            .set_token("alice", "d1", CERT, "regid-a")
            .unwrap();
        w.registry
            .apply("alice", "d1", DeviceEvent::Disconnect, None, long_ago)
            .unwrap();
        let (r, q) = w.send(Recorder::open(), "alice", &message(Ok(())));
        assert_eq!(r.reason, Some(SkipReason::Expired.as_str()));
        assert!(q.jobs.is_empty());
    }

    #[test]
    fn a_certificate_that_refuses_skips_with_its_reason() {
        for reason in [
            SkipReason::CertificateMissing,
            SkipReason::CertificateBroken,
            SkipReason::QuotaPaused,
        ] {
            let w = World::new();
            w.device("alice", None, true, &[DeviceEvent::Disconnect]);
            let queue = Recorder {
                refuse: Some(reason),
                ..Recorder::open()
            };
            let (r, q) = w.send(queue, "alice", &message(Ok(())));
            assert_eq!(r.reason, Some(reason.as_str()));
            assert!(q.jobs.is_empty());
            assert_eq!(w.skipped(reason), 1);
        }
    }

    #[test]
    fn a_full_queue_skips_the_device_and_counts_it() {
        let w = World::new();
        w.device("alice", None, true, &[DeviceEvent::Disconnect]);
        let full = Recorder {
            capacity: 0,
            ..Recorder::open()
        };
        let (r, _) = w.send(full, "alice", &message(Ok(())));
        assert_eq!(r.outcome, Outcome::Skipped);
        assert_eq!(r.reason, Some(SkipReason::QueueFull.as_str()));
        assert_eq!(w.skipped(SkipReason::QueueFull), 1);
        assert_eq!(w.metrics.recipients_by_outcome[2].get(), 1);
    }

    #[test]
    fn many_recipients_get_their_results_in_request_order() {
        let w = World::new();
        let users: Vec<String> = (0..64).map(|i| format!("user{i}")).collect();
        for (i, u) in users.iter().enumerate() {
            match i % 3 {
                0 => w.device(u, None, true, &[Disconnect]),
                1 => w.device(u, None, false, &[]),
                _ => {} // unknown
            }
        }
        let d = Dispatch {
            registry: &w.registry,
            hub: &w.hub,
            metrics: &w.metrics,
            queue: RefCell::new(Recorder::open()),
            detail: false,
            now: now_secs(),
        };
        let results = d.recipients(&users, &message(Ok(())));
        let queue = d.queue.into_inner();
        assert_eq!(results.len(), users.len());
        for (i, (u, r)) in users.iter().zip(&results).enumerate() {
            assert_eq!(&r.user, u);
            let want = [Outcome::PushQueued, Outcome::Online, Outcome::Skipped][i % 3];
            assert_eq!(r.outcome, want, "{u}");
        }
        let mut queued: Vec<&str> = queue.jobs.iter().map(|j| j.user.as_str()).collect();
        queued.sort_unstable();
        let mut want: Vec<&str> = users.iter().step_by(3).map(String::as_str).collect();
        want.sort_unstable();
        assert_eq!(queued, want, "one notification per push recipient");
        assert_eq!(w.skipped(SkipReason::UnknownUser), 21);
    }

    #[test]
    fn an_unknown_user_is_skipped_and_counted() {
        let w = World::new();
        let (r, _) = w.send(Recorder::open(), "nobody", &message(Ok(())));
        assert_eq!(r.reason, Some(SkipReason::UnknownUser.as_str()));
        assert_eq!(w.skipped(SkipReason::UnknownUser), 1);
    }

    #[test]
    fn the_best_device_decides_the_recipient_outcome() {
        let w = World::new();
        w.device("alice", None, false, &[Disconnect]);
        w.registry
            .login("alice", Platform::Web, "w1", None, now_secs())
            .unwrap();
        let (r, _) = w.send(Recorder::open(), "alice", &message(Ok(())));
        assert_eq!(r.outcome, Outcome::Online);
        assert_eq!(r.reason, None);
        assert_eq!(r.devices.len(), 2);
        // The device that got nothing is still counted with its reason.
        assert_eq!(w.skipped(SkipReason::NoToken), 1);
    }
}
