//! APNs behind the [`PushService`] seam: one device token per request over the certificate's
//! HTTP/2 pool. The "access" is the ES256 provider token, kept by [`TokenMemo`] inside Apple's
//! window; the seam's `AccessCache` asks for it again when it is due (50 minutes) or after APNs
//! answered `ExpiredProviderToken`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::badge::Badges;
use super::client::ApnsClient;
use super::key::{ApnsKey, ProviderToken, TokenMemo, RENEW_AFTER_SECS};
use super::reply::{classify as classify_reply, ApnsOutcome, ApnsReply};
use super::wire::{ApnsNotification, DEFAULT_EXPIRATION_SECS};
use crate::domain::validate::FieldError;
use crate::domain::{now_secs, Certificate, CertificateId};
use crate::providers::h2_pool::{backoff, H2Pool, CONNECTIONS_PER_CERTIFICATE, STREAMS_IN_FLIGHT};
use crate::providers::{
    AccessError, Batch, BatchRule, CertAction, DeliveryClass, Grant, JobResult, PushService,
    RetryBudget, RetryPlan, Verdict,
};
use crate::push::PushContent;

pub struct Apns {
    client: ApnsClient,
    /// Each device's badge count, kept up by the gateway's session events.
    badges: Arc<Badges>,
}

impl Apns {
    pub fn new(base_url: Option<&str>, timeout: Duration) -> Result<Apns, super::ClientError> {
        Ok(Apns {
            client: ApnsClient::new(base_url, timeout)?,
            badges: Arc::default(),
        })
    }

    /// The badge counts, for the session events that set and reset them.
    pub fn badges(&self) -> Arc<Badges> {
        self.badges.clone()
    }
}

/// What a certificate sends with: its key, its connections (one pool per key: APNs refuses a
/// second key id on a connection) and its provider token.
pub struct ApnsSession {
    pub key: ApnsKey,
    base_url: String,
    pool: H2Pool,
    tokens: TokenMemo,
    /// APNs answered `ExpiredProviderToken`: the next acquisition may re-sign early.
    renew: AtomicBool,
}

pub fn key_of(cert: &Certificate) -> Result<ApnsKey, FieldError> {
    let c = cert.credentials.apns().ok_or_else(|| FieldError {
        field: "vendor",
        message: "not an APNs certificate".into(),
    })?;
    ApnsKey::new(
        &c.key_id,
        &c.team_id,
        &c.private_key,
        &c.environment,
        &cert.package_name,
    )
    .map_err(|e| FieldError {
        field: e.field,
        message: e.message,
    })
}

impl PushService for Apns {
    type Credentials = Arc<ApnsSession>;
    /// Shared: each request of a message takes its content, a pointer copy (it was a deep
    /// copy of every string per notification, sent one token per request).
    type Content = Arc<ApnsNotification>;
    type Access = ProviderToken;
    type Reply = ApnsReply;

    fn name(&self) -> &'static str {
        "apns"
    }

    fn credentials(&self, cert: &Certificate) -> Result<Arc<ApnsSession>, FieldError> {
        let key = key_of(cert)?;
        let pool = H2Pool::new(CONNECTIONS_PER_CERTIFICATE, self.client.timeout).map_err(|e| {
            FieldError {
                field: "private_key",
                message: format!("no HTTP client could be built: {e}"),
            }
        })?;
        Ok(Arc::new(ApnsSession {
            base_url: self.client.base_url(key.environment).to_owned(),
            key,
            pool,
            tokens: TokenMemo::default(),
            renew: AtomicBool::new(false),
        }))
    }

    fn render(&self, _cert: &Certificate, content: &PushContent) -> Arc<ApnsNotification> {
        let apns = content.global.apns.clone();
        Arc::new(ApnsNotification {
            title: apns
                .title
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| content.title.clone()),
            subtitle: apns.sub_title,
            body: content.desc.clone(),
            sound: apns.sound,
            counts_badge: apns.badge_mode == 0,
            mutable_content: apns.mutable_content == 1,
            thread_id: Some(content.conversation.clone()).filter(|c| !c.is_empty()),
            ext: content.ext.clone(),
            expiration_secs: DEFAULT_EXPIRATION_SECS,
        })
    }

    fn batch_rule(&self) -> BatchRule {
        BatchRule {
            same_content: 1,
            mixed_content: 1,
            same_kind: "send",
            mixed_kind: "send",
        }
    }

    fn max_in_flight(&self, _configured: usize) -> usize {
        STREAMS_IN_FLIGHT
    }

    fn acquire_access(
        &self,
        creds: &Arc<ApnsSession>,
    ) -> impl Future<Output = Result<Grant<ProviderToken>, AccessError>> + Send {
        let now = now_secs();
        let renew = creds.renew.swap(false, Ordering::Relaxed);
        let token = creds
            .tokens
            .get(&creds.key, now, renew)
            .map_err(|e| AccessError::Refused(format!("the .p8 key could not sign: {e}")));
        std::future::ready(token.map(|t| {
            // Due at 50 minutes of age; the cache renews a minute early, so add it back.
            let left = (t.issued_at + RENEW_AFTER_SECS + 60).saturating_sub(now);
            Grant {
                value: t,
                expires_at: Some(Instant::now() + Duration::from_secs(left)),
            }
        }))
    }

    async fn exchange(
        &self,
        creds: &Arc<ApnsSession>,
        token: &ProviderToken,
        batch: &Batch<Arc<ApnsNotification>>,
    ) -> ApnsReply {
        let Some((content, job)) = batch.items().next() else {
            return ApnsReply::Transport("empty request".into());
        };
        // The message id as collapse id: a resend of one message replaces itself.
        let collapse = job.message.id.to_string();
        // Counted once per notification: a retry shows the count without adding to it.
        let badge = if !content.counts_badge {
            None
        } else if job.attempt == 0 {
            Some(self.badges.next_counted(&job.user, &job.device).await)
        } else {
            Some(self.badges.current_counted(&job.user, &job.device).await)
        };
        let reply = self
            .client
            .send(
                &creds.pool,
                &creds.base_url,
                token,
                &creds.key.bundle_id,
                &job.token,
                content,
                badge,
                Some(&collapse),
                now_secs(),
            )
            .await;
        if matches!(classify_reply(&reply), ApnsOutcome::ProviderTokenExpired) {
            creds.renew.store(true, Ordering::Relaxed);
        }
        reply
    }

    fn classify(
        &self,
        cert: CertificateId,
        batch: &Batch<Arc<ApnsNotification>>,
        reply: ApnsReply,
        attempt: u32,
    ) -> Verdict {
        verdict(cert, batch.len(), &reply, attempt)
    }
}

/// The verdict of one APNs reply (spec/vendors/apns.md §6).
fn verdict(cert: CertificateId, n: usize, reply: &ApnsReply, attempt: u32) -> Verdict {
    let outcome = classify_reply(reply);
    let class = outcome.class();
    let done = |r: JobResult| Verdict::all_done(class, n, r);
    let status = match reply {
        ApnsReply::Http { status, .. } => Some(i64::from(*status)),
        _ => None,
    };
    let with_code = |r: JobResult| match status {
        Some(s) => r.code(s),
        None => r,
    };
    match outcome {
        ApnsOutcome::Delivered { apns_id } => {
            let r = JobResult::new(DeliveryClass::Delivered, "accepted by APNs");
            let r = match apns_id {
                Some(id) => r.msg_id(Arc::from(id)),
                None => r,
            };
            done(with_code(r)).act(CertAction::SpeedUp)
        }
        ApnsOutcome::BadToken(reason) => done(with_code(
            JobResult::new(
                DeliveryClass::BadToken,
                format!("APNs answered {reason}; the token was unbound"),
            )
            .unbind(),
        )),
        ApnsOutcome::InvalidRequest(reason) => {
            tracing::warn!(certificate = cert, reason = %reason, "APNs refused the request");
            done(with_code(JobResult::new(
                DeliveryClass::InvalidRequest,
                format!("APNs refused the request: {reason}"),
            )))
        }
        ApnsOutcome::ProviderTokenExpired if attempt == 0 => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                after: Duration::ZERO,
                budget: RetryBudget::Transient,
                give_up: with_code(JobResult::new(
                    DeliveryClass::Misconfigured,
                    "APNs kept answering ExpiredProviderToken",
                )),
            },
        )
        .act(CertAction::RenewAccess),
        ApnsOutcome::ProviderTokenExpired => {
            let reason = "APNs answered ExpiredProviderToken again after renewing: check this server's clock".to_owned();
            done(with_code(JobResult::new(
                DeliveryClass::Misconfigured,
                reason.clone(),
            )))
            .act(CertAction::Broken(reason))
        }
        ApnsOutcome::AuthBroken(reason) => {
            tracing::warn!(certificate = cert, reason = %reason, "APNs refused the key; marked broken");
            done(with_code(JobResult::new(
                DeliveryClass::Misconfigured,
                format!("APNs: {reason}"),
            )))
            .act(CertAction::Broken(format!("APNs: {reason}")))
        }
        ApnsOutcome::RateLimited { retry_after } => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                after: retry_after.unwrap_or_else(|| backoff(attempt)),
                budget: RetryBudget::RateLimited,
                give_up: with_code(JobResult::new(
                    DeliveryClass::RateLimited,
                    "APNs kept answering TooManyRequests; gave up",
                )),
            },
        )
        .act(CertAction::SlowDown),
        ApnsOutcome::Retry {
            retry_after,
            detail,
        } => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                after: retry_after.unwrap_or_else(|| backoff(attempt)),
                budget: RetryBudget::Transient,
                give_up: with_code(JobResult::new(
                    DeliveryClass::Transient,
                    format!(
                        "APNs unreachable or busy after {} attempts: {detail}",
                        attempt + 1
                    ),
                )),
            },
        ),
        ApnsOutcome::Unknown(what) => done(with_code(JobResult::new(
            DeliveryClass::Unknown,
            format!("APNs: {what}"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::JobVerdict;

    fn http(status: u16, reason: &str) -> ApnsReply {
        ApnsReply::Http {
            status,
            apns_id: Some("id-1".into()),
            retry_after: None,
            body: if reason.is_empty() {
                bytes::Bytes::new()
            } else {
                format!("{{\"reason\":\"{reason}\"}}").into()
            },
        }
    }

    fn job(v: &Verdict) -> &JobVerdict {
        &v.jobs[0]
    }

    #[test]
    fn verdicts() {
        let ok = verdict(1, 1, &http(200, ""), 0);
        assert!(
            matches!(job(&ok), JobVerdict::Done(r) if r.class == DeliveryClass::Delivered && r.msg_id.as_deref() == Some("id-1"))
        );
        for r in [
            "Unregistered",
            "ExpiredToken",
            "BadDeviceToken",
            "DeviceTokenNotForTopic",
        ] {
            let v = verdict(
                1,
                1,
                &http(
                    if r.ends_with("Token") && r != "BadDeviceToken" || r == "Unregistered" {
                        410
                    } else {
                        400
                    },
                    r,
                ),
                0,
            );
            assert!(
                matches!(job(&v), JobVerdict::Done(x) if x.unbind_token),
                "{r}"
            );
        }
        let payload = verdict(1, 1, &http(413, "PayloadTooLarge"), 0);
        assert!(
            matches!(job(&payload), JobVerdict::Done(x) if !x.unbind_token && x.class == DeliveryClass::InvalidRequest)
        );
        let expired = verdict(1, 1, &http(403, "ExpiredProviderToken"), 0);
        assert_eq!(expired.certificate, vec![CertAction::RenewAccess]);
        let again = verdict(1, 1, &http(403, "ExpiredProviderToken"), 1);
        assert!(matches!(again.certificate[0], CertAction::Broken(_)));
        let bad_key = verdict(1, 1, &http(403, "InvalidProviderToken"), 0);
        assert!(
            matches!(&bad_key.certificate[0], CertAction::Broken(r) if r.contains("InvalidProviderToken"))
        );
        let slow = verdict(1, 1, &http(429, "TooManyRequests"), 0);
        assert!(slow.certificate.contains(&CertAction::SlowDown));
        assert_eq!(
            slow.retry.as_ref().unwrap().budget,
            RetryBudget::RateLimited
        );
        let busy = verdict(1, 1, &http(503, "ServiceUnavailable"), 0);
        assert_eq!(busy.retry.as_ref().unwrap().budget, RetryBudget::Transient);
    }
}
