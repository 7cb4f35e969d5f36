//! What a vendor reply comes to, classified once by its provider (pingora's error shape, vector's
//! `RetryAction::RetryPartial`): a delivery class per notification, an optional action on the
//! certificate, and which notifications may be sent again. The sender's retry logic, token
//! clean-up, statistics, metrics and diagnosis all read this one verdict.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// How one notification ended. The strings are the JSON values, metric labels and console
/// columns operators already know; they do not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryClass {
    /// The vendor accepted it.
    Delivered,
    /// The vendor named the token invalid (Xiaomi `bad_regids`); the token was unbound.
    BadToken,
    /// Every token of the request was invalid (Xiaomi 20301); the tokens were unbound.
    NoValidTargets,
    /// The certificate was refused, broken or deleted.
    Misconfigured,
    /// The vendor kept answering "too fast" until the retry budget ran out.
    RateLimited,
    /// The vendor's daily quota is used up.
    QuotaExceeded,
    /// The vendor refused our request as malformed; resending cannot help.
    InvalidRequest,
    /// The vendor stayed unreachable or busy for every attempt.
    Transient,
    /// An answer no rule covers; not retried.
    Unknown,
    /// The certificate's push queue was full; never sent.
    QueueFull,
}

impl DeliveryClass {
    /// Every class, in the order the console lists them.
    pub const ALL: [DeliveryClass; 10] = [
        DeliveryClass::Delivered,
        DeliveryClass::BadToken,
        DeliveryClass::NoValidTargets,
        DeliveryClass::Misconfigured,
        DeliveryClass::RateLimited,
        DeliveryClass::QuotaExceeded,
        DeliveryClass::InvalidRequest,
        DeliveryClass::Transient,
        DeliveryClass::Unknown,
        DeliveryClass::QueueFull,
    ];

    /// The classes counted as failures (everything but `delivered`).
    pub const FAILURES: [DeliveryClass; 9] = [
        DeliveryClass::BadToken,
        DeliveryClass::NoValidTargets,
        DeliveryClass::Misconfigured,
        DeliveryClass::RateLimited,
        DeliveryClass::QuotaExceeded,
        DeliveryClass::InvalidRequest,
        DeliveryClass::Transient,
        DeliveryClass::Unknown,
        DeliveryClass::QueueFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryClass::Delivered => "delivered",
            DeliveryClass::BadToken => "bad_token",
            DeliveryClass::NoValidTargets => "no_valid_targets",
            DeliveryClass::Misconfigured => "misconfigured",
            DeliveryClass::RateLimited => "rate_limited",
            DeliveryClass::QuotaExceeded => "quota_exceeded",
            DeliveryClass::InvalidRequest => "invalid_request",
            DeliveryClass::Transient => "transient",
            DeliveryClass::Unknown => "unknown",
            DeliveryClass::QueueFull => "queue_full",
        }
    }

    /// Position in [`DeliveryClass::FAILURES`]; `None` for `delivered`.
    pub fn failure_index(self) -> Option<usize> {
        match self {
            DeliveryClass::Delivered => None,
            DeliveryClass::BadToken => Some(0),
            DeliveryClass::NoValidTargets => Some(1),
            DeliveryClass::Misconfigured => Some(2),
            DeliveryClass::RateLimited => Some(3),
            DeliveryClass::QuotaExceeded => Some(4),
            DeliveryClass::InvalidRequest => Some(5),
            DeliveryClass::Transient => Some(6),
            DeliveryClass::Unknown => Some(7),
            DeliveryClass::QueueFull => Some(8),
        }
    }
}

impl std::fmt::Display for DeliveryClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for DeliveryClass {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The end of one notification, as its provider classified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    pub class: DeliveryClass,
    /// The vendor's own code, when it gave one.
    pub vendor_code: Option<i64>,
    /// The vendor's id of the accepted message.
    pub msg_id: Option<Arc<str>>,
    /// The vendor named this token invalid: unbind it from its device.
    pub unbind_token: bool,
    /// A sentence for diagnosis; never a secret.
    pub detail: Cow<'static, str>,
}

impl JobResult {
    pub fn new(class: DeliveryClass, detail: impl Into<Cow<'static, str>>) -> JobResult {
        JobResult {
            class,
            vendor_code: None,
            msg_id: None,
            unbind_token: false,
            detail: detail.into(),
        }
    }

    pub fn code(mut self, code: i64) -> JobResult {
        self.vendor_code = Some(code);
        self
    }

    pub fn msg_id(mut self, id: Arc<str>) -> JobResult {
        self.msg_id = Some(id);
        self
    }

    pub fn unbind(mut self) -> JobResult {
        self.unbind_token = true;
        self
    }
}

/// What to do with one notification of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobVerdict {
    /// Finished with this result.
    Done(JobResult),
    /// Send it again after the verdict's back-off.
    Retry,
}

/// Which retry budget a retry spends: it bounds a vendor that never recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryBudget {
    /// "Too fast" answers; each one also slows the bucket down.
    RateLimited,
    /// Busy answers, 5xx, timeouts: the configured `max_attempts`.
    Transient,
}

/// How the retried notifications of a verdict are sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPlan {
    /// No request of this certificate starts before this back-off has passed.
    pub after: Duration,
    pub budget: RetryBudget,
    /// How each retried notification ends when its budget is used up.
    pub give_up: JobResult,
}

/// An action on the certificate that sent the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertAction {
    /// The vendor accepted the request: the bucket may return to the configured rate.
    SpeedUp,
    /// The vendor answered "too fast": the bucket slows down.
    SlowDown,
    /// The vendor refused the credentials: nothing is sent until the certificate is edited.
    Broken(String),
    /// Nothing is sent until this Unix second (a daily quota used up).
    PausedUntil(u64),
    /// The cached access token was refused: acquire a new one before the next request.
    RenewAccess,
}

/// One reply, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The reply's class for `pushgate_vendor_requests_total` (no id, no token).
    pub reply_class: &'static str,
    /// The vendor's trace id, shared by every notification of the request.
    pub trace_id: Option<Arc<str>>,
    /// One per notification, in the order of [`super::Batch::jobs`].
    pub jobs: Vec<JobVerdict>,
    /// Present when some job is [`JobVerdict::Retry`].
    pub retry: Option<RetryPlan>,
    pub certificate: Vec<CertAction>,
}

impl Verdict {
    /// Every notification of a request of `n` ends the same way.
    pub fn all_done(reply_class: &'static str, n: usize, result: JobResult) -> Verdict {
        Verdict {
            reply_class,
            trace_id: None,
            jobs: vec![JobVerdict::Done(result); n],
            retry: None,
            certificate: Vec::new(),
        }
    }

    /// Every notification of a request of `n` is sent again.
    pub fn retry_all(reply_class: &'static str, n: usize, plan: RetryPlan) -> Verdict {
        Verdict {
            reply_class,
            trace_id: None,
            jobs: vec![JobVerdict::Retry; n],
            retry: Some(plan),
            certificate: Vec::new(),
        }
    }

    pub fn trace(mut self, trace_id: Option<Arc<str>>) -> Verdict {
        self.trace_id = trace_id;
        self
    }

    pub fn act(mut self, action: CertAction) -> Verdict {
        self.certificate.push(action);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_strings_are_the_known_ones() {
        let all: Vec<&str> = DeliveryClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            all,
            [
                "delivered",
                "bad_token",
                "no_valid_targets",
                "misconfigured",
                "rate_limited",
                "quota_exceeded",
                "invalid_request",
                "transient",
                "unknown",
                "queue_full"
            ]
        );
        for (i, c) in DeliveryClass::ALL.iter().enumerate() {
            assert_eq!(
                *c as usize, i,
                "ALL is in declaration order (indexes metric children)"
            );
        }
        for (i, c) in DeliveryClass::FAILURES.iter().enumerate() {
            assert_eq!(c.failure_index(), Some(i));
        }
        assert_eq!(DeliveryClass::Delivered.failure_index(), None);
    }
}
