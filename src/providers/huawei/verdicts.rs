//! The verdicts Huawei and Honor give alike. Honor's push API is Huawei's under another name
//! (spec/vendors/honor.md): the same reply kinds after a delivery-shaped answer, classified the
//! same way and worded with the vendor's name.

use std::time::Duration;

use crate::domain::CertificateId;
use crate::providers::xiaomi::retry_delay;
use crate::providers::{CertAction, DeliveryClass, JobResult, RetryBudget, RetryPlan, Verdict};

/// One request's reply: the vendor's name for the wording, the reply class for the metrics and
/// the number of notifications it carried.
pub struct Replies {
    pub vendor: &'static str,
    pub class: &'static str,
    pub n: usize,
}

impl Replies {
    /// The access token expired: renew it and send again at once (a renewed token that
    /// keeps expiring ends in the transient budget).
    pub fn access_expired(&self, code: i64, msg: &str) -> Verdict {
        self.retry(
            Duration::ZERO,
            RetryBudget::Transient,
            JobResult::new(
                DeliveryClass::Transient,
                format!(
                    "{} kept answering the access token expired ({code}: {msg})",
                    self.vendor
                ),
            )
            .code(code),
        )
        .act(CertAction::RenewAccess)
    }

    /// The access token was refused for the first time: renew it and send again once (a second
    /// refusal is [`Replies::certificate_refused`]).
    pub fn access_refused_once(&self, code: i64, msg: &str) -> Verdict {
        self.retry(
            Duration::ZERO,
            RetryBudget::Transient,
            JobResult::new(
                DeliveryClass::Misconfigured,
                format!("{} refused the access token ({code}: {msg})", self.vendor),
            )
            .code(code),
        )
        .act(CertAction::RenewAccess)
    }

    /// The certificate itself was refused: nothing more is sent until it is edited.
    pub fn certificate_refused(&self, cert: CertificateId, code: i64, msg: &str) -> Verdict {
        tracing::warn!(
            certificate = cert,
            code,
            "{} refused the certificate; broken",
            self.vendor
        );
        Verdict::all_done(
            self.class,
            self.n,
            JobResult::new(
                DeliveryClass::Misconfigured,
                format!("{} refused the certificate ({code}: {msg})", self.vendor),
            )
            .code(code),
        )
        .act(CertAction::Broken(format!(
            "{} answered {code}: {msg}",
            self.vendor
        )))
    }

    /// "Too fast" (`what` is the vendor's word for it): slow down and send again later.
    pub fn rate_limited(&self, attempt: u32, what: &str, code: i64, msg: &str) -> Verdict {
        self.retry(
            retry_delay(attempt + 1),
            RetryBudget::RateLimited,
            JobResult::new(
                DeliveryClass::RateLimited,
                format!(
                    "{} kept answering {what} ({code}: {msg}); gave up",
                    self.vendor
                ),
            )
            .code(code),
        )
        .act(CertAction::SlowDown)
    }

    /// Unreachable, busy or a 5xx: send again after a back-off.
    pub fn transient(&self, attempt: u32, reason: &str) -> Verdict {
        self.retry(
            retry_delay(attempt + 1),
            RetryBudget::Transient,
            JobResult::new(
                DeliveryClass::Transient,
                format!("{} unreachable or busy: {reason}", self.vendor),
            ),
        )
    }

    /// The request itself was refused (a payload problem): no token is unbound.
    pub fn invalid_request(&self, code: i64, msg: &str) -> Verdict {
        Verdict::all_done(
            self.class,
            self.n,
            JobResult::new(
                DeliveryClass::InvalidRequest,
                format!("{} refused the request ({code}: {msg})", self.vendor),
            )
            .code(code),
        )
    }

    /// A code the spec does not list.
    pub fn unknown(&self, code: i64, msg: &str) -> Verdict {
        Verdict::all_done(
            self.class,
            self.n,
            JobResult::new(
                DeliveryClass::Unknown,
                format!("{} answered {code}: {msg}", self.vendor),
            )
            .code(code),
        )
    }

    fn retry(&self, after: Duration, budget: RetryBudget, give_up: JobResult) -> Verdict {
        Verdict::retry_all(
            self.class,
            self.n,
            RetryPlan {
                after,
                budget,
                give_up,
            },
        )
    }
}
