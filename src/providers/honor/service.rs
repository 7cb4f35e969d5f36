//! Honor behind the [`PushService`] seam (spec/vendors/honor.md): identical content to up to
//! 1,000 tokens per request, the OAuth token through the certificate's access cache, and each
//! [`HonorReply`] classified into a [`Verdict`].
//!
//! `expireTokens` are unbound at once. `failTokens` do not say why (spec §5: format error and
//! transient failure look alike), so a token is unbound only after it has failed
//! [`FAILS_BEFORE_UNBIND`] times in a row (a documented client default; Honor's doc is
//! UNCONFIRMED). Refused tokens and "all tokens invalid" follow Huawei's rules (`AuthMemory`).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::client::HonorClient;
use super::fails::{FailStreaks, FAILS_BEFORE_UNBIND};
use super::reply::HonorReply;
use super::wire::{HonorApp, HonorMessage, DEFAULT_IMPORTANCE, MAX_TOKENS_PER_REQUEST};
use crate::domain::validate::FieldError;
use crate::domain::{Certificate, CertificateId};
use crate::providers::huawei::client::ClientError;
use crate::providers::huawei::memory::{AuthMemory, Refusal};
use crate::providers::huawei::service::{access_error, batch_cert, grant_for};
use crate::providers::huawei::verdicts::Replies;
use crate::providers::xiaomi::XiaomiMessage;
use crate::providers::{
    AccessError, Batch, BatchRule, CertAction, DeliveryClass, Grant, JobResult, JobVerdict,
    PushService, Verdict,
};
use crate::push::PushContent;

/// One exchange and what the certificate's memory says about it.
#[derive(Debug)]
pub struct HonorExchange {
    pub reply: HonorReply,
    pub app_confirmed: bool,
    pub refusal: Option<Refusal>,
    /// Per token of `failTokens`: its failures in a row, this one included.
    pub fail_counts: HashMap<String, u8>,
}

/// Honor Push, one per process.
pub struct Honor {
    client: HonorClient,
    memory: AuthMemory,
    fails: FailStreaks,
}

impl Honor {
    pub fn new(base_url: &str, auth_url: &str, timeout: Duration) -> Result<Honor, ClientError> {
        Ok(Honor {
            client: HonorClient::new(base_url, auth_url, timeout)?,
            memory: AuthMemory::default(),
            fails: FailStreaks::default(),
        })
    }
}

impl PushService for Honor {
    type Credentials = HonorApp;
    type Content = HonorMessage;
    type Access = Arc<str>;
    type Reply = HonorExchange;

    fn name(&self) -> &'static str {
        "honor"
    }

    fn credentials(&self, cert: &Certificate) -> Result<HonorApp, FieldError> {
        let Some(h) = cert.credentials.honor() else {
            return Err(FieldError {
                field: "vendor",
                message: format!("a {:?} certificate has no Honor credentials", cert.vendor()),
            });
        };
        if h.client_id.trim().is_empty() {
            return Err(FieldError {
                field: "client_id",
                message: "the Honor client id is required".into(),
            });
        }
        if h.client_secret.trim().is_empty() {
            return Err(FieldError {
                field: "client_secret",
                message: "the Honor client secret is required".into(),
            });
        }
        Ok(HonorApp {
            app_id: h.app_id.clone(),
            client_id: h.client_id.clone(),
            client_secret: h.client_secret.clone(),
        })
    }

    fn render(&self, cert: &Certificate, content: &PushContent) -> HonorMessage {
        HonorMessage {
            title: content.title.clone(),
            body: content.desc.clone(),
            // The message's `HonorImportance` overrides the certificate's.
            importance: content
                .hw
                .honor_importance
                .clone()
                .or_else(|| cert.credentials.honor().map(|h| h.importance.clone()))
                .unwrap_or_else(|| DEFAULT_IMPORTANCE.to_owned()),
            package_name: cert.package_name.clone(),
            click: cert.click_action.clone(),
            ext: content.ext.clone(),
            notify_id: XiaomiMessage::notify_id_for(&content.conversation),
            bi_tag: None,
        }
    }

    fn batch_rule(&self) -> BatchRule {
        BatchRule {
            same_content: MAX_TOKENS_PER_REQUEST,
            mixed_content: 1,
            same_kind: "token",
            mixed_kind: "token",
        }
    }

    fn acquire_access(
        &self,
        app: &HonorApp,
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
        app: &HonorApp,
        access: &Arc<str>,
        batch: &Batch<HonorMessage>,
    ) -> HonorExchange {
        let reply = match batch.parts.as_slice() {
            [(msg, jobs)] => {
                let tokens: Vec<&str> = jobs.iter().map(|j| &*j.token).collect();
                self.client.send(app, access, msg, &tokens).await
            }
            _ => HonorReply::InvalidRequest {
                code: -1,
                msg: "a Honor request carries one message; the batch mixed several".into(),
            },
        };
        let cert = batch_cert(batch).unwrap_or_default();
        let key = format!("honor/{}", app.app_id);
        let mut refusal = None;
        let mut fail_counts = HashMap::new();
        match &reply {
            HonorReply::Delivered { fail_tokens, .. } => {
                fail_counts = self
                    .fails
                    .record(cert, batch.jobs().map(|j| &j.token), fail_tokens);
                if batch.len() > fail_counts.len() {
                    self.memory.delivered(cert, &key);
                }
            }
            HonorReply::AccessRefused { .. } => refusal = Some(self.memory.refused(cert, access)),
            _ => {}
        }
        HonorExchange {
            app_confirmed: self.memory.confirmed(cert, &key),
            reply,
            refusal,
            fail_counts,
        }
    }

    fn classify(
        &self,
        cert: CertificateId,
        batch: &Batch<HonorMessage>,
        exchange: HonorExchange,
        attempt: u32,
    ) -> Verdict {
        classify_exchange(cert, batch, exchange, attempt)
    }
}

/// The verdict of one Honor exchange (spec §4, §5).
pub fn classify_exchange(
    cert: CertificateId,
    batch: &Batch<HonorMessage>,
    exchange: HonorExchange,
    attempt: u32,
) -> Verdict {
    let n = batch.len();
    let HonorExchange {
        reply,
        app_confirmed,
        refusal,
        fail_counts,
    } = exchange;
    let class = reply.class();
    let trace: Option<Arc<str>> = reply.request_id().map(Arc::from);
    let replies = Replies {
        vendor: "Honor",
        class,
        n,
    };
    let verdict = match reply {
        HonorReply::Delivered {
            request_id,
            expire_tokens,
            ..
        } => {
            let id: Arc<str> = Arc::from(request_id.as_str());
            let expired: HashSet<&str> = expire_tokens.iter().map(String::as_str).collect();
            let jobs = batch
                .jobs()
                .map(|j| {
                    JobVerdict::Done(if expired.contains(&*j.token) {
                        JobResult::new(
                            DeliveryClass::BadToken,
                            "Honor listed this token in expireTokens; unbound",
                        )
                        .unbind()
                    } else if let Some(count) = fail_counts.get(&*j.token) {
                        let r = JobResult::new(
                            DeliveryClass::BadToken,
                            format!(
                                "Honor listed this token in failTokens ({count} of \
                                 {FAILS_BEFORE_UNBIND} in a row before it is unbound)"
                            ),
                        );
                        if *count >= FAILS_BEFORE_UNBIND {
                            r.unbind()
                        } else {
                            r
                        }
                    } else {
                        JobResult::new(DeliveryClass::Delivered, "accepted by Honor")
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
        HonorReply::AllTokensInvalid { code, msg } => {
            let r = JobResult::new(
                DeliveryClass::NoValidTargets,
                if app_confirmed {
                    format!("Honor answered {code} ({msg}); the token was unbound")
                } else {
                    format!(
                        "Honor answered {code} ({msg}); not unbound because this certificate \
                         has had no delivery yet and a wrong app_id gives the same answer"
                    )
                },
            )
            .code(code);
            Verdict::all_done(class, n, if app_confirmed { r.unbind() } else { r })
        }
        HonorReply::AccessExpired { code, msg } => replies.access_expired(code, &msg),
        HonorReply::AccessRefused { code, msg } if refusal != Some(Refusal::Repeated) => {
            replies.access_refused_once(code, &msg)
        }
        HonorReply::AccessRefused { code, msg } | HonorReply::Misconfigured { code, msg } => {
            replies.certificate_refused(cert, code, &msg)
        }
        HonorReply::RateLimited { code, msg } => {
            replies.rate_limited(attempt, "rate limited", code, &msg)
        }
        HonorReply::Transient { reason } => replies.transient(attempt, &reason),
        HonorReply::InvalidRequest { code, msg } => replies.invalid_request(code, &msg),
        HonorReply::Unknown { code, msg } => replies.unknown(code, &msg),
    };
    verdict.trace(trace)
}
