//! Xiaomi behind the [`PushService`] seam: credentials from a certificate, its batching rule
//! (identical content → `/v3/message/regid` with up to 1,000 regIds, distinct content →
//! `/v2/multi_messages/regids` with up to 100), the exchange through [`XiaomiClient`] and the
//! classification of a [`VendorReply`] into a [`Verdict`].

use super::client::{ClientError, XiaomiClient};
use super::receipt::parse_receipts;
use super::reply::{next_china_midnight_unix, retry_delay, VendorReply};
use super::wire::{ReceiptCallback, XiaomiApp, XiaomiMessage, MAX_REGIDS_PER_REQUEST};
use crate::domain::receipt::{receipt_url, Receipt, ReceiptError};
use crate::domain::validate::FieldError;
use crate::domain::{now_secs, Certificate, CertificateId};
use crate::providers::{
    AccessError, Batch, BatchRule, CertAction, DeliveryClass, Grant, JobResult, JobVerdict,
    PushService, ReceiptRequest, RetryBudget, RetryPlan, Verdict,
};
use crate::push::PushContent;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Distinct messages per multi request: Xiaomi documents no limit; a third-party gateway caps
/// itself at 100 (spec §5, UNCONFIRMED), and so do we.
pub const MAX_MULTI_PER_REQUEST: usize = 100;

/// Xiaomi MiPush, one per process: its client's connection pool serves every certificate.
pub struct Xiaomi {
    client: XiaomiClient,
    /// The gateway's public URL; when set, every notification asks for receipts there.
    public_url: Option<String>,
}

impl Xiaomi {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Xiaomi, ClientError> {
        Ok(Xiaomi {
            client: XiaomiClient::new(base_url, timeout)?,
            public_url: None,
        })
    }

    /// Asks for delivery receipts at `public_url` (none when `None`).
    pub fn with_receipts(mut self, public_url: Option<String>) -> Xiaomi {
        self.public_url = public_url.filter(|u| !u.is_empty());
        self
    }

    fn callback(&self, cert: &Certificate) -> Option<ReceiptCallback> {
        let base = self.public_url.as_deref()?;
        let secret = cert.receipt_secret.as_ref()?;
        Some(ReceiptCallback {
            url: receipt_url(base, "xiaomi", cert.id),
            param: secret.expose().to_owned(),
        })
    }
}

/// The reply of one exchange; the request kind travels along for classification.
pub type XiaomiReply = VendorReply;

impl PushService for Xiaomi {
    type Credentials = XiaomiApp;
    type Content = XiaomiMessage;
    /// Xiaomi signs every request with `Authorization: key=<AppSecret>`: no token to acquire.
    type Access = ();
    type Reply = XiaomiReply;

    fn name(&self) -> &'static str {
        "xiaomi"
    }

    fn credentials(&self, cert: &Certificate) -> Result<XiaomiApp, FieldError> {
        let Some(x) = cert.credentials.xiaomi() else {
            return Err(FieldError {
                field: "vendor",
                message: format!(
                    "a {:?} certificate has no Xiaomi credentials",
                    cert.vendor()
                ),
            });
        };
        if x.app_secret.trim().is_empty() {
            return Err(FieldError {
                field: "app_secret",
                message: "the AppSecret is required".into(),
            });
        }
        Ok(XiaomiApp {
            package_name: cert.package_name.clone(),
            app_secret: x.app_secret.clone(),
        })
    }

    fn render(&self, cert: &Certificate, content: &PushContent) -> XiaomiMessage {
        XiaomiMessage {
            title: content.title.clone(),
            description: content.desc.clone(),
            notify_id: XiaomiMessage::notify_id_for(&content.conversation),
            channel_id: content
                .channel_id
                .clone()
                .or_else(|| cert.credentials.xiaomi().and_then(|x| x.channel_id.clone())),
            click: cert.click_action.clone(),
            ext: content.ext.clone(),
            payload: None,
            callback: self.callback(cert),
        }
    }

    fn batch_rule(&self) -> BatchRule {
        BatchRule {
            same_content: MAX_REGIDS_PER_REQUEST,
            mixed_content: MAX_MULTI_PER_REQUEST,
            same_kind: "regid",
            mixed_kind: "multi_messages",
        }
    }

    fn acquire_access(
        &self,
        _: &XiaomiApp,
    ) -> impl Future<Output = Result<Grant<()>, AccessError>> + Send {
        std::future::ready(Ok(Grant::forever(())))
    }

    async fn exchange(&self, app: &XiaomiApp, _: &(), batch: &Batch<XiaomiMessage>) -> XiaomiReply {
        match batch.parts.as_slice() {
            [(msg, jobs)] => {
                let regids: Vec<&str> = jobs.iter().map(|j| &*j.token).collect();
                self.client.send_regid(app, msg, &regids).await
            }
            _ => {
                let pairs: Vec<(&str, &XiaomiMessage)> =
                    batch.items().map(|(m, j)| (&*j.token, m)).collect();
                self.client.send_multi(app, &pairs).await
            }
        }
    }

    fn classify(
        &self,
        cert: CertificateId,
        batch: &Batch<XiaomiMessage>,
        reply: XiaomiReply,
        attempt: u32,
    ) -> Verdict {
        classify_reply(cert, batch, reply, attempt, now_secs())
    }

    fn asks_for_receipts(&self, cert: &Certificate) -> bool {
        self.callback(cert).is_some()
    }

    fn read_receipts(
        &self,
        cert: &Certificate,
        request: &ReceiptRequest<'_>,
    ) -> Result<Vec<Receipt>, ReceiptError> {
        let Some(secret) = cert.receipt_secret.as_ref() else {
            return Err(ReceiptError::Unverified(
                "this certificate has no receipt secret yet".into(),
            ));
        };
        parse_receipts(request.body, secret, request.now_ms)
    }
}

/// The verdict of one Xiaomi reply (spec §4, §6); `now` in Unix seconds for the quota pause.
fn classify_reply(
    cert: CertificateId,
    batch: &Batch<XiaomiMessage>,
    reply: VendorReply,
    attempt: u32,
    now: u64,
) -> Verdict {
    let n = batch.len();
    let class = reply.class();
    let trace: Option<Arc<str>> = reply.trace_id().filter(|t| !t.is_empty()).map(Arc::from);
    let verdict = match reply {
        VendorReply::Delivered {
            msg_id,
            bad_regids,
            over_quota,
            ..
        } => {
            let msg_id: Arc<str> = Arc::from(msg_id.as_str());
            let bad: HashSet<&str> = bad_regids.iter().map(String::as_str).collect();
            let over = over_quota_jobs(batch, &over_quota);
            let jobs = batch
                .jobs()
                .enumerate()
                .map(|(i, j)| {
                    JobVerdict::Done(if over.contains(&i) {
                        JobResult::new(
                            DeliveryClass::QuotaExceeded,
                            "Xiaomi's daily quota is used up (channel_exceed_quota); not sent",
                        )
                    } else if bad.contains(&*j.token) {
                        JobResult::new(
                            DeliveryClass::BadToken,
                            "Xiaomi listed this regId in bad_regids; the token was unbound",
                        )
                        .unbind()
                    } else {
                        JobResult::new(DeliveryClass::Delivered, "accepted by Xiaomi")
                            .code(0)
                            .msg_id(msg_id.clone())
                    })
                })
                .collect();
            let mut v = Verdict {
                reply_class: class,
                trace_id: None,
                jobs,
                retry: None,
                certificate: vec![CertAction::SpeedUp],
            };
            if !over_quota.is_empty() {
                let until = next_china_midnight_unix(now);
                tracing::warn!(
                    certificate = cert,
                    until,
                    "Xiaomi's daily quota used up (channel_exceed_quota); paused"
                );
                v.certificate.push(CertAction::PausedUntil(until));
            }
            v
        }
        VendorReply::NoValidTargets { .. } => Verdict::all_done(
            class,
            n,
            JobResult::new(
                DeliveryClass::NoValidTargets,
                "Xiaomi answered 20301 No valid targets; the token was unbound",
            )
            .code(20301)
            .unbind(),
        ),
        VendorReply::Misconfigured { code, reason, .. } => {
            tracing::warn!(
                certificate = cert,
                code,
                trace_id = trace.as_deref().unwrap_or(""),
                "Xiaomi refused the certificate; marked broken until it is edited"
            );
            Verdict::all_done(
                class,
                n,
                JobResult::new(
                    DeliveryClass::Misconfigured,
                    format!("Xiaomi refused the certificate ({code}: {reason})"),
                )
                .code(code),
            )
            .act(CertAction::Broken(format!(
                "Xiaomi answered {code}: {reason}"
            )))
        }
        VendorReply::QuotaExceeded { reason, .. } => {
            let until = next_china_midnight_unix(now);
            tracing::warn!(
                certificate = cert,
                until,
                "Xiaomi daily quota used up; paused"
            );
            Verdict::all_done(
                class,
                n,
                JobResult::new(
                    DeliveryClass::QuotaExceeded,
                    format!("Xiaomi's daily quota is used up (200001: {reason})"),
                )
                .code(200001),
            )
            .act(CertAction::PausedUntil(until))
        }
        VendorReply::RateLimited { code, .. } => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                after: retry_delay(attempt),
                budget: RetryBudget::RateLimited,
                give_up: JobResult::new(
                    DeliveryClass::RateLimited,
                    "Xiaomi kept answering too fast (rate limited); gave up",
                )
                .code(code),
            },
        )
        .act(CertAction::SlowDown),
        VendorReply::Transient { reason } => Verdict::retry_all(
            class,
            n,
            RetryPlan {
                after: retry_delay(attempt),
                budget: RetryBudget::Transient,
                give_up: JobResult::new(
                    DeliveryClass::Transient,
                    format!(
                        "Xiaomi unreachable after {} attempts: {reason}",
                        attempt + 1
                    ),
                ),
            },
        ),
        VendorReply::InvalidRequest { code, reason, .. } => {
            tracing::warn!(
                certificate = cert,
                code,
                trace_id = trace.as_deref().unwrap_or(""),
                "Xiaomi refused the request as invalid"
            );
            Verdict::all_done(
                class,
                n,
                JobResult::new(
                    DeliveryClass::InvalidRequest,
                    format!("Xiaomi refused the request ({code}: {reason})"),
                )
                .code(code),
            )
        }
        VendorReply::Unknown { code, reason, .. } => {
            tracing::warn!(certificate = cert, code, trace_id = trace.as_deref().unwrap_or(""),
                reason = %reason, "Xiaomi answered an unknown code; not retried");
            Verdict::all_done(
                class,
                n,
                JobResult::new(
                    DeliveryClass::Unknown,
                    format!("Xiaomi answered an unknown code ({code}: {reason})"),
                )
                .code(code),
            )
        }
    };
    verdict.trace(trace)
}

/// Which notifications of a request (by position) a `channel_exceed_quota` answer refused:
/// for each (channel, n), the last n of that channel. Xiaomi gives only counts, so which ones
/// it cut is UNCONFIRMED (spec §5.3); the tail is the emulator's choice and the likeliest one
/// for a server that counts in order. Channel `""` (a bare count) matches any; Xiaomi's
/// "default" matches messages without a channel.
fn over_quota_jobs(batch: &Batch<XiaomiMessage>, over: &[(String, u64)]) -> HashSet<usize> {
    let channels: Vec<Option<&str>> = batch
        .items()
        .map(|(m, _)| m.channel_id.as_deref())
        .collect();
    let mut picked = HashSet::new();
    for (channel, n) in over {
        let matches = |c: Option<&str>| match c {
            _ if channel.is_empty() => true,
            Some(c) => c == channel,
            None => channel == "default",
        };
        let tail = (0..channels.len())
            .rev()
            .filter(|i| matches(channels[*i]) && !picked.contains(i))
            .take(usize::try_from(*n).unwrap_or(usize::MAX))
            .collect::<Vec<_>>();
        picked.extend(tail);
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ClickAction;
    use crate::push::{Message, PushJob};
    use std::time::Instant;

    fn msg(text: &str, channel: Option<&str>) -> XiaomiMessage {
        XiaomiMessage {
            title: "t".into(),
            description: text.into(),
            notify_id: 1,
            channel_id: channel.map(str::to_owned),
            click: ClickAction::OpenApp,
            ext: None,
            payload: None,
            callback: None,
        }
    }

    fn job(token: &str) -> PushJob {
        PushJob {
            cert: 1,
            token: Arc::from(token),
            user: "u".into(),
            device: "d".into(),
            message: Arc::new(Message {
                id: 1,
                from: "f".into(),
                text: "x".into(),
                title: None,
                desc: None,
                ext: None,
                push: Err(crate::registry::SkipReason::PushDisabled),
                accepted_at: Instant::now(),
            }),
            attempt: 0,
            journal: None,
        }
    }

    fn multi(items: &[(&str, Option<&str>)]) -> Batch<XiaomiMessage> {
        Batch {
            kind: "multi_messages",
            parts: items
                .iter()
                .map(|(t, c)| (msg(t, *c), vec![job(t)]))
                .collect(),
        }
    }

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
    fn a_partly_good_reply_is_split_per_notification() {
        let b = multi(&[("a", Some("c1")), ("b", Some("c1")), ("c", None)]);
        let reply = VendorReply::Delivered {
            msg_id: "m1".into(),
            trace_id: "t1".into(),
            bad_regids: vec!["a".into()],
            over_quota: vec![("c1".into(), 1)],
        };
        let v = classify_reply(7, &b, reply, 0, 0);
        assert_eq!(classes(&v), ["bad_token", "quota_exceeded", "delivered"]);
        assert!(matches!(&v.jobs[0], JobVerdict::Done(r) if r.unbind_token));
        assert_eq!(v.trace_id.as_deref(), Some("t1"));
        assert_eq!(
            v.certificate,
            [CertAction::SpeedUp, CertAction::PausedUntil(57_600)]
        );
    }

    #[test]
    fn too_fast_retries_everything_and_slows_down() {
        let b = multi(&[("a", None), ("b", None)]);
        let reply = VendorReply::RateLimited {
            code: 10027,
            reason: "too fast".into(),
            trace_id: String::new(),
        };
        let v = classify_reply(7, &b, reply, 3, 0);
        assert_eq!(classes(&v), ["retry", "retry"]);
        let plan = v.retry.expect("a retry plan");
        assert_eq!(plan.budget, RetryBudget::RateLimited);
        assert_eq!(plan.give_up.class, DeliveryClass::RateLimited);
        assert_eq!(v.certificate, [CertAction::SlowDown]);
        assert_eq!(v.trace_id, None);
    }

    #[test]
    fn a_refused_secret_breaks_the_certificate() {
        let b = multi(&[("a", None)]);
        let reply = VendorReply::Misconfigured {
            code: 21301,
            reason: "auth failed".into(),
            trace_id: "t".into(),
        };
        let v = classify_reply(7, &b, reply, 0, 0);
        assert_eq!(classes(&v), ["misconfigured"]);
        assert_eq!(
            v.certificate,
            [CertAction::Broken(
                "Xiaomi answered 21301: auth failed".into()
            )]
        );
    }

    #[test]
    fn a_blank_secret_is_refused_naming_the_field() {
        let x = Xiaomi::new("http://127.0.0.1:1", Duration::from_secs(1)).expect("client");
        let cert = Certificate::xiaomi_for_tests(1, " ", 1);
        assert_eq!(
            x.credentials(&cert).map(|_| ()).unwrap_err().field,
            "app_secret"
        );
    }
}
