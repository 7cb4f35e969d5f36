//! OPPO behind the [`PushService`] seam: credentials from a certificate, the signed
//! `auth_token` (24 h) cached per certificate by the sender's access cache, batching into
//! `unicast_batch` (up to 1,000 messages, identical or not), and the verdict of each reply.

use std::future::Future;
use std::time::{Duration, Instant};

use super::certificate;
use super::client::OppoClient;
use super::wire::{OppoApp, OppoNotification, MAX_MESSAGES_PER_BATCH};
use crate::domain::validate::FieldError;
use crate::domain::{now_millis, now_secs, Certificate, CertificateId};
use crate::providers::outcome::{AuthFailure, Outcome};
use crate::providers::outcome_verdict::verdict;
use crate::providers::text::notify_id_for;
use crate::providers::vendor_http::ClientError;
use crate::providers::{AccessError, Batch, BatchRule, Grant, PushService, Verdict};
use crate::push::PushContent;

/// The token is renewed this much before OPPO's 24 h are up (mizhousoft renews 120 s early,
/// spec §2); the access cache adds its own minute.
const RENEW_EARLY: Duration = Duration::from_secs(120);

/// OPPO, one per process: its client's connection pool serves every certificate.
pub struct Oppo {
    client: OppoClient,
}

impl Oppo {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Oppo, ClientError> {
        Ok(Oppo {
            client: OppoClient::new(base_url, timeout)?,
        })
    }
}

pub(crate) fn access_error(e: AuthFailure) -> AccessError {
    match e {
        AuthFailure::Refused(m) => AccessError::Refused(m),
        AuthFailure::Unavailable(m) => AccessError::Unavailable(m),
    }
}

impl PushService for Oppo {
    type Credentials = OppoApp;
    type Content = OppoNotification;
    /// The `auth_token`, sent as a form field on every call.
    type Access = String;
    type Reply = Outcome;

    fn name(&self) -> &'static str {
        "oppo"
    }

    fn credentials(&self, cert: &Certificate) -> Result<OppoApp, FieldError> {
        certificate::app(cert)
    }

    fn render(&self, cert: &Certificate, content: &PushContent) -> OppoNotification {
        certificate::render(
            cert.credentials.oppo(),
            &cert.click_action,
            &content.title,
            &content.desc,
            content.ext.as_deref(),
            &content.ovm,
            notify_id_for(&content.conversation),
        )
    }

    fn batch_rule(&self) -> BatchRule {
        BatchRule {
            same_content: MAX_MESSAGES_PER_BATCH,
            mixed_content: MAX_MESSAGES_PER_BATCH,
            same_kind: "unicast_batch",
            mixed_kind: "unicast_batch",
        }
    }

    fn acquire_access(
        &self,
        app: &OppoApp,
    ) -> impl Future<Output = Result<Grant<String>, AccessError>> + Send {
        let client = self.client.clone();
        let app = app.clone();
        async move {
            let token = client
                .authenticate(&app, now_millis())
                .await
                .map_err(access_error)?;
            Ok(Grant {
                value: token.token,
                expires_at: Some(Instant::now() + token.valid_for.saturating_sub(RENEW_EARLY)),
            })
        }
    }

    async fn exchange(
        &self,
        _: &OppoApp,
        token: &String,
        batch: &Batch<OppoNotification>,
    ) -> Outcome {
        let items: Vec<(&str, &OppoNotification)> =
            batch.items().map(|(n, j)| (&*j.token, n)).collect();
        self.client.unicast_batch(token, &items).await
    }

    fn classify(
        &self,
        cert: CertificateId,
        batch: &Batch<OppoNotification>,
        reply: Outcome,
        attempt: u32,
    ) -> Verdict {
        let targets: Vec<&str> = batch.jobs().map(|j| &*j.token).collect();
        verdict("OPPO", cert, &targets, reply, attempt, now_secs())
    }
}
