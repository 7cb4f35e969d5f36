//! Huawei behind the [`PushService`] seam: credentials from a certificate, identical content to
//! up to 1,000 tokens per request (distinct content never shares one), the OAuth token — or the
//! JWT a service-account key signs (§2.2) — through the certificate's access cache, and each
//! [`HuaweiReply`] classified into a [`Verdict`]. A certificate with `api_version` v3 sends
//! HarmonyOS NEXT's v3 request (`harmony`) to its service account's project; replies are
//! classified alike.
//! A refused token is renewed and the request resent once, and 80300007 unbinds only after the
//! certificate's app id has proved itself (see `memory`). With a public URL and the
//! certificate's receipt callback settings, notifications ask for receipts (`receipt_id`) and
//! `read_receipts` believes those signed with the certificate's callback HMAC key (§6).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::account::{ServiceAccount, JWT_LIFETIME_SECS};
use super::client::{ClientError, HuaweiClient};
use super::memory::{AuthMemory, Refusal};
use super::reply::HuaweiReply;
use super::verdicts::Replies;
use super::wire::{
    ExtCarriage, HuaweiApp, HuaweiMessage, DEFAULT_CATEGORY, DEFAULT_IMPORTANCE,
    MAX_TOKENS_PER_REQUEST,
};
use super::TokenError;
use crate::domain::credentials::HuaweiApi;
use crate::domain::receipt::{Receipt, ReceiptError};
use crate::domain::validate::FieldError;
use crate::domain::{now_secs, Certificate, CertificateId};
use crate::providers::huawei_receipt::{parse_statuses, verify_callback_id, CallbackAuth};
use crate::providers::xiaomi::XiaomiMessage;
use crate::providers::{
    AccessError, Batch, BatchRule, CertAction, DeliveryClass, Grant, JobResult, JobVerdict,
    PushService, ReceiptRequest, Verdict,
};
use crate::push::PushContent;

/// Tokens are renewed this much earlier than the seam's own margin: 120 s before expiry in
/// total, as mizhousoft's client does (spec §2.1).
const EXTRA_RENEW_MARGIN: Duration = Duration::from_secs(60);

/// How a certificate proves itself to Huawei (spec §2).
#[derive(Clone, Debug)]
pub enum HuaweiAuth {
    /// OAuth client credentials: the app id and the `HuaweiApp::client_secret` (§2.1).
    OAuth,
    /// A service-account key that signs its own bearer JWTs (§2.2).
    ServiceAccount(Arc<ServiceAccount>),
}

/// A certificate's credentials as the sender holds them.
#[derive(Clone, Debug)]
pub struct HuaweiCert {
    pub app: HuaweiApp,
    pub auth: HuaweiAuth,
    /// v1, or v3 for HarmonyOS NEXT (then `auth` is a service account: its project is the URL's).
    pub api: HuaweiApi,
}

impl HuaweiCert {
    /// The v3 project id, when this certificate sends through v3.
    fn harmony_project(&self) -> Option<&str> {
        match (&self.api, &self.auth) {
            (HuaweiApi::V3, HuaweiAuth::ServiceAccount(account)) => Some(&account.project_id),
            _ => None,
        }
    }

    /// The key an app id is confirmed under: the URL id the sends go to.
    pub fn app_key(&self) -> String {
        match self.harmony_project() {
            Some(project) => format!("v3/{project}"),
            None => app_key(&self.app),
        }
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
    /// The gateway has a public URL, so Huawei can reach its receipt endpoint (the operator
    /// enters `<public URL>/v1/receipts/huawei/<id>` in AppGallery Connect: Huawei takes the
    /// address from there, not from the message).
    public_url: bool,
}

impl Huawei {
    pub fn new(base_url: &str, auth_url: &str, timeout: Duration) -> Result<Huawei, ClientError> {
        Ok(Huawei {
            client: HuaweiClient::new(base_url, auth_url, timeout)?,
            memory: AuthMemory::default(),
            public_url: false,
        })
    }

    /// Asks for delivery receipts when the gateway has a public URL (none when `None`).
    pub fn with_receipts(mut self, public_url: Option<String>) -> Huawei {
        self.public_url = public_url.is_some_and(|u| !u.is_empty());
        self
    }
}

/// What verifies a certificate's receipts: its callback user name and HMAC key.
fn callback_auth(cert: &Certificate) -> Option<CallbackAuth> {
    let (user_name, key) = cert.credentials.huawei()?.callback_auth()?;
    Some(CallbackAuth {
        user_name: user_name.to_owned(),
        key: key.to_owned(),
    })
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
    let life = lifetime
        .saturating_sub(EXTRA_RENEW_MARGIN)
        .max(Duration::from_secs(1));
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
    type Credentials = HuaweiCert;
    type Content = HuaweiMessage;
    type Access = Arc<str>;
    type Reply = HuaweiExchange;

    fn name(&self) -> &'static str {
        "huawei"
    }

    fn credentials(&self, cert: &Certificate) -> Result<HuaweiCert, FieldError> {
        let Some(h) = cert.credentials.huawei() else {
            return Err(FieldError {
                field: "vendor",
                message: format!(
                    "a {:?} certificate has no Huawei credentials",
                    cert.vendor()
                ),
            });
        };
        if h.api_version == HuaweiApi::V3 && h.service_account.is_none() {
            return Err(FieldError {
                field: "service_account",
                message: "the v3 API (HarmonyOS NEXT) authenticates only with a service-account \
                          JWT: give the service_account key file"
                    .into(),
            });
        }
        let auth = match &h.service_account {
            Some(file) => HuaweiAuth::ServiceAccount(Arc::new(ServiceAccount::from_json(file)?)),
            None if h.app_secret.trim().is_empty() => {
                return Err(FieldError {
                    field: "app_secret",
                    message: "the Huawei AppSecret (OAuth client secret) or a service_account \
                              key file is required"
                        .into(),
                })
            }
            None => HuaweiAuth::OAuth,
        };
        Ok(HuaweiCert {
            app: HuaweiApp {
                app_id: h.app_id.clone(),
                client_secret: h.app_secret.clone(),
                project_id: None,
            },
            auth,
            api: h.api_version,
        })
    }

    fn render(&self, cert: &Certificate, content: &PushContent) -> HuaweiMessage {
        // The message's TIM fields override the certificate's settings.
        let h = cert.credentials.huawei();
        let hw = &content.hw;
        HuaweiMessage {
            title: content.title.clone(),
            body: content.desc.clone(),
            category: hw
                .huawei_category
                .clone()
                .or_else(|| h.map(|h| h.category.clone()))
                .unwrap_or_else(|| DEFAULT_CATEGORY.to_owned()),
            importance: hw
                .huawei_importance
                .clone()
                .unwrap_or_else(|| DEFAULT_IMPORTANCE.to_owned()),
            channel_id: hw
                .huawei_channel_id
                .clone()
                .or_else(|| h.and_then(|h| h.channel_id.clone())),
            package_name: cert.package_name.clone(),
            click: cert.click_action.clone(),
            ext: content.ext.clone(),
            notify_id: XiaomiMessage::notify_id_for(&content.conversation),
            // TIM `AndroidInfo.Sound` (/v1 `offline_push.sound`): a file under `res/raw`.
            sound: content.global.sound.clone(),
            ext_carriage: ExtCarriage::from_flag(hw.ext_as_huawei_intent_param),
            bi_tag: None,
            receipt_id: self
                .asks_for_receipts(cert)
                .then(|| h.and_then(|h| h.receipt_id.clone()))
                .flatten(),
        }
    }

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
        cert: &HuaweiCert,
    ) -> impl Future<Output = Result<Grant<Arc<str>>, AccessError>> + Send {
        let client = self.client.clone();
        let cert = cert.clone();
        async move {
            match &cert.auth {
                HuaweiAuth::OAuth => {
                    let token = client.fetch_token(&cert.app).await.map_err(access_error)?;
                    Ok(grant_for(&token.value, token.lifetime))
                }
                // Signed here, no call: cached and renewed like a token so that a request does
                // not pay an RSA signature, and a fresh one is made after 80200005.
                HuaweiAuth::ServiceAccount(account) => {
                    let jwt = account.jwt(now_secs()).map_err(|e| {
                        AccessError::Refused(format!(
                            "the service account's key cannot sign a JWT: {e}"
                        ))
                    })?;
                    Ok(grant_for(&jwt, Duration::from_secs(JWT_LIFETIME_SECS)))
                }
            }
        }
    }

    async fn exchange(
        &self,
        cert: &HuaweiCert,
        access: &Arc<str>,
        batch: &Batch<HuaweiMessage>,
    ) -> HuaweiExchange {
        let reply = match batch.parts.as_slice() {
            [(msg, jobs)] => {
                let tokens: Vec<&str> = jobs.iter().map(|j| &*j.token).collect();
                match cert.harmony_project() {
                    Some(project) => {
                        self.client
                            .send_harmony(project, access, msg, &tokens)
                            .await
                    }
                    None => self.client.send(&cert.app, access, msg, &tokens).await,
                }
            }
            _ => HuaweiReply::InvalidRequest {
                code: -1,
                msg: "a Huawei request carries one message; the batch mixed several".into(),
            },
        };
        let key = cert.app_key();
        let cert = batch_cert(batch).unwrap_or_default();
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

    /// Only a certificate whose receipts can be verified asks for them: an unsigned receipt
    /// could unbind any token.
    /// A v3 certificate asks for none: the v3 body has no `receipt_id` we could confirm.
    fn asks_for_receipts(&self, cert: &Certificate) -> bool {
        let v3 = cert
            .credentials
            .huawei()
            .is_some_and(|h| h.api_version == HuaweiApi::V3);
        self.public_url && !v3 && callback_auth(cert).is_some()
    }

    fn read_receipts(
        &self,
        cert: &Certificate,
        request: &ReceiptRequest<'_>,
    ) -> Result<Vec<Receipt>, ReceiptError> {
        let (Some(h), Some(auth)) = (cert.credentials.huawei(), callback_auth(cert)) else {
            return Err(ReceiptError::Unverified(
                "this certificate has no receipt callback user name and HMAC key \
                 (callback_user_name, callback_hmac_key)"
                    .into(),
            ));
        };
        // The signature first: a forged request learns nothing about its body's problems.
        verify_callback_id(
            request.header(crate::providers::huawei_receipt::CALLBACK_HEADER),
            &auth,
            request.now_ms,
        )?;
        parse_statuses(request.body, &h.app_id, request.now_ms)
    }
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
    let replies = Replies {
        vendor: "Huawei",
        class,
        n,
    };
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
        HuaweiReply::AccessExpired { code, msg } => replies.access_expired(code, &msg),
        HuaweiReply::AccessRefused { code, msg } if refusal != Some(Refusal::Repeated) => {
            replies.access_refused_once(code, &msg)
        }
        HuaweiReply::AccessRefused { code, msg } | HuaweiReply::Misconfigured { code, msg } => {
            replies.certificate_refused(cert, code, &msg)
        }
        HuaweiReply::RateLimited { code, msg } => {
            replies.rate_limited(attempt, "flow control", code, &msg)
        }
        HuaweiReply::Transient { reason } => replies.transient(attempt, &reason),
        HuaweiReply::InvalidRequest { code, msg } => replies.invalid_request(code, &msg),
        HuaweiReply::Unknown { code, msg } => replies.unknown(code, &msg),
    };
    verdict.trace(trace)
}
