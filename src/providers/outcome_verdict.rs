//! An [`Outcome`] of OPPO, vivo or Meizu turned into the sender's [`Verdict`]: one result or retry
//! per notification, the certificate's action (slow down, pause until the vendor's next day,
//! broken with the vendor's message, renew the auth token) and the retry plan.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::outcome::{Outcome, TargetFault};
use super::xiaomi::{next_china_midnight_unix, retry_delay};
use super::{CertAction, DeliveryClass, JobResult, JobVerdict, RetryBudget, RetryPlan, Verdict};
use crate::domain::CertificateId;

/// A renewed auth token is tried at once: the refusal said nothing about load.
const AFTER_RENEWAL: Duration = Duration::from_millis(50);

/// The verdict of one reply. `vendor` names the service in sentences ("OPPO"); `targets` are the
/// request's tokens in the order of its notifications; `now` is Unix seconds (quota pauses end
/// at the next midnight China time, the day of all three vendors).
pub fn verdict(
    vendor: &'static str,
    cert: CertificateId,
    targets: &[&str],
    outcome: Outcome,
    attempt: u32,
    now: u64,
) -> Verdict {
    let n = targets.len();
    let class = outcome.class();
    match outcome {
        Outcome::Accepted { msg_id, faults } => {
            accepted(vendor, cert, targets, msg_id, faults, attempt, now)
        }
        Outcome::AllInvalid { code, reason } if n == 1 => Verdict::all_done(
            class,
            n,
            JobResult::new(
                DeliveryClass::NoValidTargets,
                format!(
                    "{vendor} answered {code} ({reason}): the token is invalid and was unbound"
                ),
            )
            .code(code)
            .unbind(),
        ),
        // Several targets and one whole-request "invalid target" code: which one is unknown, so
        // no token is unbound on it.
        Outcome::AllInvalid { code, reason } => Verdict::all_done(
            "invalid_request",
            n,
            JobResult::new(
                DeliveryClass::InvalidRequest,
                format!(
                    "{vendor} refused the request ({code}: {reason}) without naming the target"
                ),
            )
            .code(code),
        ),
        Outcome::AuthExpired { code, reason } => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                after: AFTER_RENEWAL,
                budget: RetryBudget::Transient,
                give_up: JobResult::new(
                    DeliveryClass::Misconfigured,
                    format!("{vendor} kept refusing fresh auth tokens ({code}: {reason})"),
                )
                .code(code),
            },
        )
        .act(CertAction::RenewAccess),
        Outcome::Broken { code, reason } => {
            tracing::warn!(
                certificate = cert,
                code,
                vendor,
                "the vendor refused the certificate; marked broken until it is edited"
            );
            Verdict::all_done(
                class,
                n,
                JobResult::new(
                    DeliveryClass::Misconfigured,
                    format!("{vendor} refused the certificate ({code}: {reason})"),
                )
                .code(code),
            )
            .act(CertAction::Broken(format!(
                "{vendor} answered {code}: {reason}"
            )))
        }
        Outcome::RateLimited { code, reason } => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                after: retry_delay(attempt),
                budget: RetryBudget::RateLimited,
                give_up: JobResult::new(
                    DeliveryClass::RateLimited,
                    format!("{vendor} kept answering too fast ({code}: {reason}); gave up"),
                )
                .code(code),
            },
        )
        .act(CertAction::SlowDown),
        Outcome::QuotaExceeded { code, reason } => {
            let until = next_china_midnight_unix(now);
            tracing::warn!(
                certificate = cert,
                code,
                vendor,
                until,
                "the vendor's daily quota is used up; paused"
            );
            Verdict::all_done(
                class,
                n,
                JobResult::new(
                    DeliveryClass::QuotaExceeded,
                    format!("{vendor}'s daily quota is used up ({code}: {reason}); paused until midnight China time"),
                )
                .code(code),
            )
            .act(CertAction::PausedUntil(until))
        }
        Outcome::InvalidRequest { code, reason } => {
            tracing::warn!(certificate = cert, code, vendor, reason = %reason, "the vendor refused the request as invalid");
            Verdict::all_done(
                class,
                n,
                JobResult::new(
                    DeliveryClass::InvalidRequest,
                    format!("{vendor} refused the request ({code}: {reason})"),
                )
                .code(code),
            )
        }
        Outcome::Transient { reason } => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                after: retry_delay(attempt),
                budget: RetryBudget::Transient,
                give_up: JobResult::new(
                    DeliveryClass::Transient,
                    format!(
                        "{vendor} unreachable after {} attempts: {reason}",
                        attempt + 1
                    ),
                ),
            },
        ),
        Outcome::Unknown { code, reason } => {
            tracing::warn!(certificate = cert, code, vendor, reason = %reason, "the vendor answered an unknown code; not retried");
            Verdict::all_done(
                class,
                n,
                JobResult::new(
                    DeliveryClass::Unknown,
                    format!("{vendor} answered an unknown code ({code}: {reason})"),
                )
                .code(code),
            )
        }
    }
}

/// The detail of a delivered notification: a static text, as it is written into every device's
/// last result (a `format!` here was one allocation per notification).
fn accepted_by(vendor: &'static str) -> &'static str {
    match vendor {
        "OPPO" => "accepted by OPPO",
        "vivo" => "accepted by vivo",
        "Meizu" => "accepted by Meizu",
        _ => "accepted by the vendor",
    }
}

fn accepted(
    vendor: &'static str,
    cert: CertificateId,
    targets: &[&str],
    msg_id: String,
    faults: Vec<(String, TargetFault)>,
    attempt: u32,
    now: u64,
) -> Verdict {
    let msg_id: Arc<str> = Arc::from(msg_id.as_str());
    let faults: HashMap<String, TargetFault> = faults.into_iter().collect();
    let mut certificate = Vec::new();
    let (mut rate_limited, mut retried, mut over_quota) = (false, false, false);
    let jobs = targets
        .iter()
        .map(|target| match faults.get(*target) {
            None => JobVerdict::Done(
                JobResult::new(DeliveryClass::Delivered, accepted_by(vendor))
                    .msg_id(msg_id.clone()),
            ),
            Some(TargetFault::Invalid { code }) => JobVerdict::Done(
                JobResult::new(
                    DeliveryClass::BadToken,
                    format!("{vendor} named this token invalid ({code}); it was unbound"),
                )
                .code(*code)
                .unbind(),
            ),
            Some(TargetFault::SwitchedOff { code }) => JobVerdict::Done(
                JobResult::new(
                    DeliveryClass::BadToken,
                    format!("{vendor}: the user switched notifications off or uninstalled ({code}); token kept, as they may switch them on again"),
                )
                .code(*code),
            ),
            Some(TargetFault::Retry { .. }) => {
                retried = true;
                JobVerdict::Retry
            }
            Some(TargetFault::RateLimited { .. }) => {
                retried = true;
                rate_limited = true;
                JobVerdict::Retry
            }
            Some(TargetFault::Quota { code }) => {
                over_quota = true;
                JobVerdict::Done(
                    JobResult::new(
                        DeliveryClass::QuotaExceeded,
                        format!("{vendor}'s daily quota is used up for this message ({code})"),
                    )
                    .code(*code),
                )
            }
            Some(TargetFault::Refused { code }) => {
                certificate.push(CertAction::Broken(format!(
                    "{vendor} refused this app permission to send ({code})"
                )));
                JobVerdict::Done(
                    JobResult::new(
                        DeliveryClass::Misconfigured,
                        format!("{vendor} refused this app permission to send ({code})"),
                    )
                    .code(*code),
                )
            }
            Some(TargetFault::Rejected { code }) => JobVerdict::Done(
                JobResult::new(
                    DeliveryClass::InvalidRequest,
                    format!("{vendor} refused this target ({code})"),
                )
                .code(*code),
            ),
            Some(TargetFault::Unknown { code }) => JobVerdict::Done(
                JobResult::new(
                    DeliveryClass::Unknown,
                    format!("{vendor} answered an unknown code for this target ({code})"),
                )
                .code(*code),
            ),
        })
        .collect();
    certificate.dedup();
    certificate.insert(
        0,
        if rate_limited {
            CertAction::SlowDown
        } else {
            CertAction::SpeedUp
        },
    );
    if over_quota {
        let until = next_china_midnight_unix(now);
        tracing::warn!(
            certificate = cert,
            vendor,
            until,
            "the vendor's daily quota is used up; paused"
        );
        certificate.push(CertAction::PausedUntil(until));
    }
    let retry = retried.then(|| {
        let (budget, class) = if rate_limited {
            (RetryBudget::RateLimited, DeliveryClass::RateLimited)
        } else {
            (RetryBudget::Transient, DeliveryClass::Transient)
        };
        RetryPlan {
            after: retry_delay(attempt),
            budget,
            give_up: JobResult::new(class, format!("{vendor} kept failing this target; gave up")),
        }
    });
    Verdict {
        reply_class: "delivered",
        trace_id: (!msg_id.is_empty()).then(|| msg_id.clone()),
        jobs,
        retry,
        certificate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(v: &Verdict) -> Vec<&'static str> {
        v.jobs
            .iter()
            .map(|j| match j {
                JobVerdict::Done(r) => r.class.as_str(),
                JobVerdict::Retry => "retry",
            })
            .collect()
    }

    #[test]
    fn per_target_faults_become_per_notification_results() {
        let outcome = Outcome::Accepted {
            msg_id: "m".into(),
            faults: vec![
                ("b".into(), TargetFault::Invalid { code: 10000 }),
                ("c".into(), TargetFault::SwitchedOff { code: 2 }),
                ("d".into(), TargetFault::RateLimited { code: 518 }),
            ],
        };
        let v = verdict("OPPO", 1, &["a", "b", "c", "d"], outcome, 0, 0);
        assert_eq!(
            classes(&v),
            ["delivered", "bad_token", "bad_token", "retry"]
        );
        assert!(matches!(&v.jobs[1], JobVerdict::Done(r) if r.unbind_token));
        assert!(matches!(&v.jobs[2], JobVerdict::Done(r) if !r.unbind_token));
        assert_eq!(v.certificate, [CertAction::SlowDown]);
        assert_eq!(v.retry.map(|p| p.budget), Some(RetryBudget::RateLimited));
    }

    #[test]
    fn request_level_outcomes() {
        let v = verdict(
            "vivo",
            1,
            &["a"],
            Outcome::AuthExpired {
                code: 10000,
                reason: "x".into(),
            },
            0,
            0,
        );
        assert_eq!(classes(&v), ["retry"]);
        assert_eq!(v.certificate, [CertAction::RenewAccess]);
        let v = verdict(
            "vivo",
            1,
            &["a", "b"],
            Outcome::QuotaExceeded {
                code: 10070,
                reason: "x".into(),
            },
            0,
            0,
        );
        assert_eq!(classes(&v), ["quota_exceeded", "quota_exceeded"]);
        assert_eq!(v.certificate, [CertAction::PausedUntil(16 * 3600)]);
        let v = verdict(
            "Meizu",
            1,
            &["a"],
            Outcome::Broken {
                code: 1006,
                reason: "sign".into(),
            },
            0,
            0,
        );
        assert_eq!(
            v.certificate,
            [CertAction::Broken("Meizu answered 1006: sign".into())]
        );
        let one = verdict(
            "vivo",
            1,
            &["a"],
            Outcome::AllInvalid {
                code: 10302,
                reason: "x".into(),
            },
            0,
            0,
        );
        assert!(matches!(&one.jobs[0], JobVerdict::Done(r) if r.unbind_token));
        let two = verdict(
            "vivo",
            1,
            &["a", "b"],
            Outcome::AllInvalid {
                code: 10302,
                reason: "x".into(),
            },
            0,
            0,
        );
        assert!(two
            .jobs
            .iter()
            .all(|j| matches!(j, JobVerdict::Done(r) if !r.unbind_token)));
        let v = verdict(
            "OPPO",
            1,
            &["a"],
            Outcome::RateLimited {
                code: -2,
                reason: "x".into(),
            },
            0,
            0,
        );
        assert_eq!(v.certificate, [CertAction::SlowDown]);
        let v = verdict(
            "OPPO",
            1,
            &["a"],
            Outcome::Transient { reason: "x".into() },
            0,
            0,
        );
        assert_eq!(v.retry.map(|p| p.budget), Some(RetryBudget::Transient));
    }
}
