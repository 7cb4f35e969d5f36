//! Huawei behind the [`PushService`] seam: credentials from a certificate, identical content to
//! up to 1,000 tokens per request (distinct content never shares one), the OAuth token through
//! the certificate's access cache, and each [`HuaweiReply`] classified into a [`Verdict`].
//!
//! Two answers need memory across requests, kept per certificate in [`AuthMemory`]:
//! - 80200001 (token refused): renew the token and resend once; refused again with the new
//!   token, the certificate is broken (spec §2.1: the Go demo refreshes and re-sends once).
//! - 80300007 (all tokens invalid) also comes from a wrong app id (spec §5). Tokens are unbound
//!   only once this certificate, with this app id, has had a delivery accepted — proof that the
//!   app id is right; before that, nothing is unbound and the detail says to check the app id.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::client::{ClientError, HuaweiClient};
use super::reply::HuaweiReply;
use super::wire::{HuaweiApp, HuaweiMessage, MAX_TOKENS_PER_REQUEST};
use super::TokenError;
use crate::domain::CertificateId;
use crate::providers::xiaomi::retry_delay;
use crate::providers::{
    AccessError, Batch, BatchRule, CertAction, DeliveryClass, Grant, JobResult, JobVerdict,
    PushService, RetryBudget, RetryPlan, Verdict,
};

/// Tokens are renewed this much earlier than the seam's own margin: 120 s before expiry in
/// total, as mizhousoft's client does (spec §2.1).
const EXTRA_RENEW_MARGIN: Duration = Duration::from_secs(60);

/// What a certificate's past answers proved.
#[derive(Debug, Default, Clone)]
struct CertMemory {
    /// The app id (or project id) a delivery was accepted for.
    confirmed_app: Option<String>,
    /// The access token last refused with 80200001 / 401.
    refused_token: Option<Arc<str>>,
}

/// Per-certificate memory of answers, shared by every request of the process.
#[derive(Debug, Default)]
pub struct AuthMemory {
    certs: DashMap<CertificateId, CertMemory>,
}

/// Whether a refusal of the access token is the first since the last success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Renew the token and resend once.
    First,
    /// The renewed token was refused too: the credentials are wrong.
    Repeated,
}

impl AuthMemory {
    /// A delivery was accepted for `app_key`: the app id is right and the token works.
    pub fn delivered(&self, cert: CertificateId, app_key: &str) {
        let mut m = self.certs.entry(cert).or_default();
        m.confirmed_app = Some(app_key.to_owned());
        m.refused_token = None;
    }

    pub fn confirmed(&self, cert: CertificateId, app_key: &str) -> bool {
        self.certs
            .get(&cert)
            .is_some_and(|m| m.confirmed_app.as_deref() == Some(app_key))
    }

    /// Records a refusal of `token`; a refusal of a different (renewed) token is a repeat.
    pub fn refused(&self, cert: CertificateId, token: &Arc<str>) -> Refusal {
        let mut m = self.certs.entry(cert).or_default();
        match &m.refused_token {
            Some(before) if before != token => Refusal::Repeated,
            _ => {
                m.refused_token = Some(token.clone());
                Refusal::First
            }
        }
    }

    /// The certificate was edited or deleted: what was proved no longer holds.
    pub fn forget(&self, cert: CertificateId) {
        self.certs.remove(&cert);
    }
}

/// One exchange and what the certificate's memory says about it.
#[derive(Debug)]
pub struct HuaweiExchange {
    pub reply: HuaweiReply,
    /// A delivery was accepted for this certificate's app id (now or before).
    pub app_confirmed: bool,
    /// For a refused token: first refusal or repeat.
    pub refusal: Option<Refusal>,
}

/// Huawei Push Kit, one per process: its client's connection pool serves every certificate.
pub struct Huawei {
    client: HuaweiClient,
    memory: AuthMemory,
}

impl Huawei {
    pub fn new(base_url: &str, auth_url: &str, timeout: Duration) -> Result<Huawei, ClientError> {
        Ok(Huawei {
            client: HuaweiClient::new(base_url, auth_url, timeout)?,
            memory: AuthMemory::default(),
        })
    }
}

/// The key an app id is confirmed under: the URL id the sends go to.
pub fn app_key(app: &HuaweiApp) -> String {
    match app.project_id.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(p) => format!("v2/{p}"),
        None => format!("v1/{}", app.app_id),
    }
}

/// A token grant that expires a little before the vendor says, so it is renewed early.
pub fn grant_for(value: &str, lifetime: Duration) -> Grant<Arc<str>> {
    let life = lifetime.saturating_sub(EXTRA_RENEW_MARGIN).max(Duration::from_secs(1));
    Grant {
        value: Arc::from(value),
        expires_at: Some(Instant::now() + life),
    }
}

pub fn access_error(e: TokenError) -> AccessError {
    match e {
        TokenError::Refused(m) => AccessError::Refused(m),
        TokenError::Unavailable(m) => AccessError::Unavailable(m),
    }
}

/// The certificate of a batch (all its jobs share one).
pub fn batch_cert<C>(batch: &Batch<C>) -> Option<CertificateId> {
    batch.jobs().next().map(|j| j.cert)
}

impl PushService for Huawei {
    type Credentials = HuaweiApp;
    type Content = HuaweiMessage;
    type Access = Arc<str>;
    type Reply = HuaweiExchange;

    fn name(&self) -> &'static str {
        "huawei"
    }

    // credentials(), render(): see the certificate arm (phase B wiring).

    fn batch_rule(&self) -> BatchRule {
        BatchRule {
            same_content: MAX_TOKENS_PER_REQUEST,
            // Huawei's request carries one message: distinct content never shares a request.
            mixed_content: 1,
            same_kind: "token",
            mixed_kind: "token",
        }
    }

    fn acquire_access(
        &self,
        app: &HuaweiApp,
    ) -> impl Future<Output = Result<Grant<Arc<str>>, AccessError>> + Send {
        let client = self.client.clone();
        let app = app.clone();
        async move {
            let token = client.fetch_token(&app).await.map_err(access_error)?;
            Ok(grant_for(&token.value, token.lifetime))
        }
    }

    async fn exchange(
        &self,
        app: &HuaweiApp,
        access: &Arc<str>,
        batch: &Batch<HuaweiMessage>,
    ) -> HuaweiExchange {
        let reply = match batch.parts.as_slice() {
            [(msg, jobs)] => {
                let tokens: Vec<&str> = jobs.iter().map(|j| &*j.token).collect();
                self.client.send(app, access, msg, &tokens).await
            }
            _ => HuaweiReply::InvalidRequest {
                code: -1,
                msg: "a Huawei request carries one message; the batch mixed several".into(),
            },
        };
        let cert = batch_cert(batch).unwrap_or_default();
        let key = app_key(app);
        let mut refusal = None;
        match &reply {
            HuaweiReply::Delivered { .. } => self.memory.delivered(cert, &key),
            HuaweiReply::AccessRefused { .. } => refusal = Some(self.memory.refused(cert, access)),
            _ => {}
        }
        HuaweiExchange {
            app_confirmed: self.memory.confirmed(cert, &key),
            reply,
            refusal,
        }
    }

    fn classify(
        &self,
        cert: CertificateId,
        batch: &Batch<HuaweiMessage>,
        exchange: HuaweiExchange,
        attempt: u32,
    ) -> Verdict {
        classify_exchange(cert, batch, exchange, attempt)
    }
}

fn retry(class: &'static str, n: usize, after: Duration, budget: RetryBudget, give_up: JobResult) -> Verdict {
    Verdict::retry_all(
        class,
        n,
        RetryPlan {
            after,
            budget,
            give_up,
        },
    )
}

/// The verdict of one Huawei exchange (spec §4, §5).
pub fn classify_exchange(
    cert: CertificateId,
    batch: &Batch<HuaweiMessage>,
    exchange: HuaweiExchange,
    attempt: u32,
) -> Verdict {
    let n = batch.len();
    let HuaweiExchange {
        reply,
        app_confirmed,
        refusal,
    } = exchange;
    let class = reply.class();
    let trace: Option<Arc<str>> = reply.request_id().map(Arc::from);
    let verdict = match reply {
        HuaweiReply::Delivered {
            request_id,
            illegal_tokens,
        } => {
            let id: Arc<str> = Arc::from(request_id.as_str());
            let bad: HashSet<&str> = illegal_tokens.iter().map(String::as_str).collect();
            let jobs = batch
                .jobs()
                .map(|j| {
                    JobVerdict::Done(if bad.contains(&*j.token) {
                        JobResult::new(
                            DeliveryClass::BadToken,
                            "Huawei listed this token in illegal_tokens (80100000); unbound",
                        )
                        .code(80100000)
                        .unbind()
                    } else {
                        JobResult::new(DeliveryClass::Delivered, "accepted by Huawei")
                            .code(80000000)
                            .msg_id(id.clone())
                    })
                })
                .collect();
            Verdict {
                reply_class: class,
                trace_id: None,
                jobs,
                retry: None,
                certificate: vec![CertAction::SpeedUp],
            }
        }
        HuaweiReply::AllTokensInvalid { msg, .. } if app_confirmed => Verdict::all_done(
            class,
            n,
            JobResult::new(
                DeliveryClass::NoValidTargets,
                format!("Huawei answered 80300007 ({msg}); the token was unbound"),
            )
            .code(80300007)
            .unbind(),
        ),
        HuaweiReply::AllTokensInvalid { msg, .. } => {
            tracing::warn!(
                certificate = cert,
                "Huawei answered 80300007 before any delivery of this certificate; tokens kept \
                 (a wrong app id gives the same answer)"
            );
            Verdict::all_done(
                class,
                n,
                JobResult::new(
                    DeliveryClass::NoValidTargets,
                    format!(
                        "Huawei answered 80300007 ({msg}); not unbound because this certificate \
                         has had no delivery yet and a wrong app_id gives the same answer: \
                         check the certificate's app_id"
                    ),
                )
                .code(80300007),
            )
        }
        HuaweiReply::AccessExpired { code, msg } => retry(
            class,
            n,
            Duration::ZERO,
            RetryBudget::Transient,
            JobResult::new(
                DeliveryClass::Transient,
                format!("Huawei kept answering the access token expired ({code}: {msg})"),
            )
            .code(code),
        )
        .act(CertAction::RenewAccess),
        HuaweiReply::AccessRefused { code, msg } if refusal != Some(Refusal::Repeated) => retry(
            class,
            n,
            Duration::ZERO,
            RetryBudget::Transient,
            JobResult::new(
                DeliveryClass::Misconfigured,
                format!("Huawei refused the access token ({code}: {msg})"),
            )
            .code(code),
        )
        .act(CertAction::RenewAccess),
        HuaweiReply::AccessRefused { code, msg } | HuaweiReply::Misconfigured { code, msg } => {
            tracing::warn!(certificate = cert, code, "Huawei refused the certificate; broken");
            Verdict::all_done(
                class,
                n,
                JobResult::new(
                    DeliveryClass::Misconfigured,
                    format!("Huawei refused the certificate ({code}: {msg})"),
                )
                .code(code),
            )
            .act(CertAction::Broken(format!("Huawei answered {code}: {msg}")))
        }
        HuaweiReply::RateLimited { code, msg } => retry(
            class,
            n,
            retry_delay(attempt + 1),
            RetryBudget::RateLimited,
            JobResult::new(
                DeliveryClass::RateLimited,
                format!("Huawei kept answering flow control ({code}: {msg}); gave up"),
            )
            .code(code),
        )
        .act(CertAction::SlowDown),
        HuaweiReply::Transient { reason } => retry(
            class,
            n,
            retry_delay(attempt + 1),
            RetryBudget::Transient,
            JobResult::new(
                DeliveryClass::Transient,
                format!("Huawei unreachable or busy: {reason}"),
            ),
        ),
        HuaweiReply::InvalidRequest { code, msg } => Verdict::all_done(
            class,
            n,
            JobResult::new(
                DeliveryClass::InvalidRequest,
                format!("Huawei refused the request ({code}: {msg})"),
            )
            .code(code),
        ),
        HuaweiReply::Unknown { code, msg } => Verdict::all_done(
            class,
            n,
            JobResult::new(
                DeliveryClass::Unknown,
                format!("Huawei answered {code}: {msg}"),
            )
            .code(code),
        ),
    };
    verdict.trace(trace)
}
