//! The routing decision: for each recipient and each of its devices, the live connection, the
//! push queue of its certificate, or nothing with a reason.

use super::sender::PushBatch;
use super::{Message, PushJob};
use crate::certs::CertBook;
use crate::domain::now_secs;
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
    pub user: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Each device's outcome, when the request asked for `detail`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceOutcome>,
}

/// What dispatch needs; all shared, nothing awaited. Notifications are handed to their
/// senders per certificate when the `Dispatch` is dropped (or `flush`ed).
pub struct Dispatch<'a> {
    pub registry: &'a Registry,
    pub certs: &'a CertBook,
    pub hub: &'a Hub,
    pub metrics: &'a Metrics,
    pub batch: RefCell<PushBatch<'a>>,
    /// Also report each device's outcome (costs an allocation per recipient).
    pub detail: bool,
}

impl Dispatch<'_> {
    /// Hands the notifications collected so far to their senders.
    pub fn flush(&self) {
        self.batch.borrow_mut().flush();
    }

    /// Routes one message to one recipient.
    pub fn recipient(&self, user: &str, msg: &Arc<Message>) -> RecipientResult {
        let now = now_secs();
        let mut devices = Vec::new();
        let rank = |o: Outcome| match o {
            Outcome::Online => 0,
            Outcome::PushQueued => 1,
            Outcome::Skipped => 2,
        };
        let mut best = Outcome::Skipped;
        let mut first_skip: Option<SkipReason> = None;
        let n = self.registry.route_with(user, now, |dev, route| {
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
                    first_skip.get_or_insert(r);
                }
            }
            if rank(outcome) < rank(best) {
                best = outcome;
            }
            if self.detail {
                devices.push(DeviceOutcome {
                    device: dev.id.clone(),
                    platform: dev.platform.as_str(),
                    outcome,
                    also_pushed,
                    reason: reason.map(SkipReason::as_str),
                });
            }
        });
        let result = if n == 0 {
            self.metrics.skip(SkipReason::UnknownUser);
            RecipientResult {
                user: user.to_string(),
                outcome: Outcome::Skipped,
                reason: Some(SkipReason::UnknownUser.as_str()),
                devices,
            }
        } else {
            RecipientResult {
                user: user.to_string(),
                outcome: best,
                reason: if best == Outcome::Skipped {
                    first_skip.map(SkipReason::as_str)
                } else {
                    None
                },
                devices,
            }
        };
        let i = match result.outcome {
            Outcome::Online => 0,
            Outcome::PushQueued => 1,
            Outcome::Skipped => 2,
        };
        self.metrics.recipients_by_outcome[i].inc();
        result
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
        let Some(entry) = self.certs.get(cert) else {
            return (
                Outcome::Skipped,
                false,
                Some(SkipReason::CertificateMissing),
            );
        };
        if entry.is_broken() {
            return (Outcome::Skipped, false, Some(SkipReason::CertificateBroken));
        }
        if entry.paused_until(now).is_some() {
            return (Outcome::Skipped, false, Some(SkipReason::QuotaPaused));
        }
        let job = PushJob {
            cert,
            token,
            user: CompactString::from(user),
            device: device.clone(),
            message: msg.clone(),
            attempt: 0,
        };
        let queued = self.batch.borrow_mut().add(job);
        match queued {
            Ok(()) => (Outcome::PushQueued, false, None),
            Err(_) => {
                entry
                    .stats
                    .count(crate::providers::DeliveryClass::QueueFull, 1);
                (Outcome::Skipped, false, Some(SkipReason::QueueFull))
            }
        }
    }
}
