//! FCM behind the [`PushService`] seam: one token per request, so the batch rule is 1 and
//! throughput comes from streams in flight over the certificate's HTTP/2 pool. The access token
//! comes from the account's `token_uri`, is shared by every request of the certificate (the
//! seam's `AccessCache` makes concurrent requests wait for one acquisition), is renewed before
//! it expires, and once at once after a 401.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::account::ServiceAccount;
use super::client::FcmClient;
use super::reply::{classify as classify_reply, FcmOutcome, FcmReply, TokenFailure};
use super::wire::{click_action_of, send_body, FcmNotification, Priority, DEFAULT_TTL_SECS};
use crate::domain::validate::FieldError;
use crate::domain::{now_secs, Certificate, CertificateId};
use crate::providers::h2_pool::{H2Pool, CONNECTIONS_PER_CERTIFICATE};
use crate::providers::{
    AccessError, Batch, BatchRule, CertAction, DeliveryClass, Grant, JobResult, PushService,
    RetryBudget, RetryPlan, Verdict,
};
use crate::push::PushContent;

/// The longest `Retry-After` honoured; a longer one is cut (the request retries, slowly).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

pub struct Fcm {
    client: FcmClient,
}

impl Fcm {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Fcm, super::ClientError> {
        Ok(Fcm {
            client: FcmClient::new(base_url, timeout)?,
        })
    }
}

/// The token last acquired: to tell a refused old token from a refused fresh one, and to hand
/// the same token again when the seam's cache was emptied by a 401 that a renewal already
/// answered (many requests in flight get the 401; one renewal serves them all).
#[derive(Default)]
struct TokenMemo {
    /// (token, acquired at, expires at)
    current: Option<(Arc<str>, Instant, Instant)>,
    /// FCM refused `current`.
    refused: bool,
    /// `current` was fetched because FCM refused the one before: if FCM refuses it too, the
    /// account cannot send (a second renewal would not help).
    after_refusal: bool,
}

/// A remembered token is handed out again only while it has this long to live (more than the
/// seam cache's own renewal margin, so an expiring token is always fetched anew).
const REUSE_MARGIN: Duration = Duration::from_secs(120);

/// What a certificate sends with: its account, its connections and its token memo.
pub struct FcmSession {
    pub account: ServiceAccount,
    pool: H2Pool,
    memo: Mutex<TokenMemo>,
}

/// One exchange's reply, and whether it refused the token fetched after a first refusal.
pub struct FcmExchange {
    pub reply: FcmReply,
    pub fresh_token_refused: bool,
}

/// The service account of a certificate, or the field that is wrong.
pub fn account_of(cert: &Certificate) -> Result<ServiceAccount, FieldError> {
    let Some(c) = cert.credentials.fcm() else {
        return Err(FieldError {
            field: "vendor",
            message: "not an FCM certificate".into(),
        });
    };
    ServiceAccount::from_json(&c.service_account)
}

impl PushService for Fcm {
    type Credentials = Arc<FcmSession>;
    /// Shared: each request of a message takes its content, a pointer copy (it was a deep
    /// copy of every string per notification, sent one token per request).
    type Content = Arc<FcmNotification>;
    type Access = Arc<str>;
    type Reply = FcmExchange;

    fn name(&self) -> &'static str {
        "fcm"
    }

    fn credentials(&self, cert: &Certificate) -> Result<Arc<FcmSession>, FieldError> {
        let account = account_of(cert)?;
        let pool = H2Pool::new(CONNECTIONS_PER_CERTIFICATE, self.client.timeout).map_err(|e| {
            FieldError {
                field: "service_account",
                message: format!("no HTTP client could be built: {e}"),
            }
        })?;
        Ok(Arc::new(FcmSession {
            account,
            pool,
            memo: Mutex::default(),
        }))
    }

    fn render(&self, cert: &Certificate, content: &PushContent) -> Arc<FcmNotification> {
        Arc::new(FcmNotification {
            title: content.title.clone(),
            body: content.desc.clone(),
            channel_id: content
                .global
                .google_channel_id
                .clone()
                .or_else(|| cert.credentials.fcm().and_then(|c| c.channel_id.clone())),
            priority: Priority::High,
            ttl_secs: DEFAULT_TTL_SECS,
            ext: content.ext.clone(),
            sound: content.global.sound.clone(),
            package: cert.package_name.clone(),
            click_action: click_action_of(&cert.click_action),
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
        crate::providers::h2_pool::STREAMS_IN_FLIGHT
    }

    fn acquire_access(
        &self,
        creds: &Arc<FcmSession>,
    ) -> impl Future<Output = Result<Grant<Arc<str>>, AccessError>> + Send {
        let creds = Arc::clone(creds);
        async move {
            {
                let memo = creds.memo.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((token, _, expires)) = &memo.current {
                    if !memo.refused && Instant::now() + REUSE_MARGIN < *expires {
                        return Ok(Grant {
                            value: Arc::clone(token),
                            expires_at: Some(*expires),
                        });
                    }
                }
            }
            let grant = self
                .client
                .fetch_token(&creds.account, now_secs())
                .await
                .map_err(|e| match e {
                    TokenFailure::Refused(r) => AccessError::Refused(r),
                    TokenFailure::Unavailable(r) => AccessError::Unavailable(r),
                })?;
            let token: Arc<str> = Arc::from(grant.access_token.as_str());
            let now = Instant::now();
            let expires = now + Duration::from_secs(grant.expires_in);
            let mut memo = creds.memo.lock().unwrap_or_else(PoisonError::into_inner);
            memo.after_refusal = memo.refused;
            memo.current = Some((Arc::clone(&token), now, expires));
            memo.refused = false;
            Ok(Grant {
                value: token,
                expires_at: Some(expires),
            })
        }
    }

    async fn exchange(
        &self,
        creds: &Arc<FcmSession>,
        access: &Arc<str>,
        batch: &Batch<Arc<FcmNotification>>,
    ) -> FcmExchange {
        let Some((content, job)) = batch.items().next() else {
            return FcmExchange {
                reply: FcmReply::Transport("empty request".into()),
                fresh_token_refused: false,
            };
        };
        let tag = job.message.id.to_string();
        let body = send_body(&job.token, content, Some(&tag)).to_string();
        let reply = self
            .client
            .send(
                &creds.pool,
                &creds.account.project_id,
                access,
                body.as_bytes(),
            )
            .await;
        let mut fresh_token_refused = false;
        // A 200 is always delivered: only other answers are parsed here (and again by
        // `classify`) to see whether they refused the token.
        let delivered = matches!(reply, FcmReply::Http { status: 200, .. });
        if !delivered && matches!(classify_reply(&reply), FcmOutcome::AccessRefused) {
            let mut memo = creds.memo.lock().unwrap_or_else(PoisonError::into_inner);
            if memo.current.as_ref().is_some_and(|(t, _, _)| t == access) {
                memo.refused = true;
                fresh_token_refused = memo.after_refusal;
            }
        }
        FcmExchange {
            reply,
            fresh_token_refused,
        }
    }

    fn classify(
        &self,
        cert: CertificateId,
        batch: &Batch<Arc<FcmNotification>>,
        reply: FcmExchange,
        attempt: u32,
    ) -> Verdict {
        verdict(cert, batch.len(), reply, attempt)
    }
}

fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(d) => d.min(MAX_RETRY_AFTER),
        None => crate::providers::h2_pool::backoff(attempt),
    }
}

/// The verdict of one FCM reply (spec/vendors/fcm.md §5).
fn verdict(cert: CertificateId, n: usize, x: FcmExchange, attempt: u32) -> Verdict {
    let outcome = classify_reply(&x.reply);
    let class = outcome.class();
    let done = |r: JobResult| Verdict::all_done(class, n, r);
    match outcome {
        FcmOutcome::Delivered { name } => done(
            JobResult::new(DeliveryClass::Delivered, "accepted by FCM").msg_id(Arc::from(name)),
        )
        .act(CertAction::SpeedUp),
        FcmOutcome::Unregistered => done(
            JobResult::new(DeliveryClass::BadToken, "FCM answered 404 UNREGISTERED; the token was unbound")
                .code(404)
                .unbind(),
        ),
        FcmOutcome::InvalidToken => done(
            JobResult::new(DeliveryClass::BadToken, "FCM: not a valid FCM registration token; the token was unbound")
                .code(400)
                .unbind(),
        ),
        FcmOutcome::SenderMismatch => done(
            JobResult::new(DeliveryClass::BadToken, "FCM answered SENDER_ID_MISMATCH (the token belongs to another project); the token was unbound")
                .code(403)
                .unbind(),
        ),
        FcmOutcome::InvalidRequest(msg) => {
            tracing::warn!(certificate = cert, reason = %msg, "FCM refused the request as malformed");
            done(JobResult::new(DeliveryClass::InvalidRequest, format!("FCM refused the message: {msg}")).code(400))
        }
        FcmOutcome::QuotaExceeded { retry_after } => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                after: backoff(attempt, retry_after),
                budget: RetryBudget::RateLimited,
                give_up: JobResult::new(DeliveryClass::RateLimited, "FCM kept answering 429 QUOTA_EXCEEDED; gave up").code(429),
            },
        )
        .act(CertAction::SlowDown),
        FcmOutcome::Unavailable { retry_after, detail } => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                after: backoff(attempt, retry_after),
                budget: RetryBudget::Transient,
                give_up: JobResult::new(
                    DeliveryClass::Transient,
                    format!("FCM unreachable or busy after {} attempts: {detail}", attempt + 1),
                ),
            },
        ),
        FcmOutcome::AccessRefused if !x.fresh_token_refused => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                // At once: only the token was wrong, and a new one is fetched first.
                after: Duration::ZERO,
                budget: RetryBudget::Transient,
                give_up: JobResult::new(DeliveryClass::Misconfigured, "FCM kept refusing the access token").code(401),
            },
        )
        .act(CertAction::RenewAccess),
        FcmOutcome::AccessRefused => {
            let reason = "FCM refused a freshly issued access token (401): the service account cannot send".to_owned();
            done(JobResult::new(DeliveryClass::Misconfigured, reason.clone()).code(401))
                .act(CertAction::Broken(reason))
        }
        FcmOutcome::AuthBroken(reason) => {
            tracing::warn!(certificate = cert, reason = %reason, "FCM refused the certificate; marked broken");
            done(JobResult::new(DeliveryClass::Misconfigured, format!("FCM: {reason}")))
                .act(CertAction::Broken(format!("FCM: {reason}")))
        }
        FcmOutcome::Unspecified if attempt == 0 => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                after: backoff(attempt, None),
                budget: RetryBudget::Transient,
                give_up: JobResult::new(DeliveryClass::Unknown, "FCM answered UNSPECIFIED_ERROR twice"),
            },
        ),
        FcmOutcome::Unspecified => done(JobResult::new(DeliveryClass::Unknown, "FCM answered UNSPECIFIED_ERROR twice")),
        FcmOutcome::Unknown(what) => done(JobResult::new(DeliveryClass::Unknown, format!("FCM: {what}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::JobVerdict;

    fn http(status: u16, body: &str, retry_after: Option<u64>) -> FcmExchange {
        FcmExchange {
            reply: FcmReply::Http {
                status,
                retry_after: retry_after.map(Duration::from_secs),
                body: body.to_owned().into(),
            },
            fresh_token_refused: false,
        }
    }

    fn only(v: &Verdict) -> &JobVerdict {
        &v.jobs[0]
    }

    #[test]
    fn verdicts() {
        let ok = verdict(
            1,
            1,
            http(200, r#"{"name":"projects/p/messages/9"}"#, None),
            0,
        );
        assert!(
            matches!(only(&ok), JobVerdict::Done(r) if r.class == DeliveryClass::Delivered && r.msg_id.as_deref() == Some("projects/p/messages/9"))
        );
        let gone = verdict(
            1,
            1,
            http(
                404,
                r#"{"error":{"status":"NOT_FOUND","details":[{"errorCode":"UNREGISTERED"}]}}"#,
                None,
            ),
            0,
        );
        assert!(
            matches!(only(&gone), JobVerdict::Done(r) if r.unbind_token && r.class == DeliveryClass::BadToken)
        );
        let payload = verdict(
            1,
            1,
            http(
                400,
                r#"{"error":{"status":"INVALID_ARGUMENT","message":"Message is too big","details":[{"errorCode":"INVALID_ARGUMENT"}]}}"#,
                None,
            ),
            0,
        );
        assert!(
            matches!(only(&payload), JobVerdict::Done(r) if !r.unbind_token && r.class == DeliveryClass::InvalidRequest)
        );
        let slow = verdict(
            1,
            1,
            http(
                429,
                r#"{"error":{"details":[{"errorCode":"QUOTA_EXCEEDED"}]}}"#,
                Some(30),
            ),
            0,
        );
        assert_eq!(slow.retry.as_ref().unwrap().after, Duration::from_secs(30));
        assert!(slow.certificate.contains(&CertAction::SlowDown));
        let busy = verdict(1, 1, http(503, "", None), 2);
        assert_eq!(busy.retry.as_ref().unwrap().budget, RetryBudget::Transient);
        let expired = verdict(
            1,
            1,
            http(401, r#"{"error":{"status":"UNAUTHENTICATED"}}"#, None),
            0,
        );
        assert_eq!(expired.certificate, vec![CertAction::RenewAccess]);
        assert_eq!(expired.retry.as_ref().unwrap().after, Duration::ZERO);
        let mut fresh = http(401, r#"{"error":{"status":"UNAUTHENTICATED"}}"#, None);
        fresh.fresh_token_refused = true;
        let broken = verdict(1, 1, fresh, 1);
        assert!(matches!(broken.certificate[0], CertAction::Broken(_)));
        let denied = verdict(
            1,
            1,
            http(
                403,
                r#"{"error":{"status":"PERMISSION_DENIED","message":"denied"}}"#,
                None,
            ),
            0,
        );
        assert!(matches!(&denied.certificate[0], CertAction::Broken(r) if r.contains("denied")));
    }
}
