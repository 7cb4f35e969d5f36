//! Meizu behind the [`PushService`] seam: credentials from a certificate, no token (every
//! request is signed with the AppSecret), batching identical content into one request of up to
//! 1,000 comma-separated push ids, and the verdict of each reply.

use std::future::Future;
use std::time::Duration;

use super::certificate;
use super::client::MeizuClient;
use super::wire::{MeizuApp, MeizuNotification, MAX_PUSH_IDS_PER_REQUEST};
use crate::domain::validate::FieldError;
use crate::domain::{now_secs, Certificate, CertificateId};
use crate::providers::outcome::Outcome;
use crate::providers::outcome_verdict::verdict;
use crate::providers::text::notify_id_for;
use crate::providers::vendor_http::ClientError;
use crate::providers::{AccessError, Batch, BatchRule, Grant, PushService, Verdict};
use crate::push::PushContent;

/// Meizu, one per process: its client's connection pool serves every certificate.
pub struct Meizu {
    client: MeizuClient,
}

impl Meizu {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Meizu, ClientError> {
        Ok(Meizu {
            client: MeizuClient::new(base_url, timeout)?,
        })
    }
}

impl PushService for Meizu {
    type Credentials = MeizuApp;
    type Content = MeizuNotification;
    /// Meizu signs every request: no token to acquire.
    type Access = ();
    type Reply = Outcome;

    fn name(&self) -> &'static str {
        "meizu"
    }

    fn credentials(&self, cert: &Certificate) -> Result<MeizuApp, FieldError> {
        certificate::app(cert)
    }

    fn render(&self, cert: &Certificate, content: &PushContent) -> MeizuNotification {
        certificate::render(
            cert.credentials.meizu(),
            &cert.click_action,
            &content.title,
            &content.desc,
            content.ext.as_deref(),
            &content.ovm,
            notify_id_for(&content.conversation),
        )
    }

    /// One request carries one content; distinct contents are separate requests.
    fn batch_rule(&self) -> BatchRule {
        BatchRule {
            same_content: MAX_PUSH_IDS_PER_REQUEST,
            mixed_content: 1,
            same_kind: "push_by_push_id",
            mixed_kind: "push_by_push_id",
        }
    }

    fn acquire_access(
        &self,
        _: &MeizuApp,
    ) -> impl Future<Output = Result<Grant<()>, AccessError>> + Send {
        std::future::ready(Ok(Grant::forever(())))
    }

    async fn exchange(&self, app: &MeizuApp, _: &(), batch: &Batch<MeizuNotification>) -> Outcome {
        let Some((n, jobs)) = batch.parts.first() else {
            return Outcome::InvalidRequest {
                code: -1,
                reason: "an empty request".to_owned(),
            };
        };
        let ids: Vec<&str> = jobs.iter().map(|j| &*j.token).collect();
        self.client.push(app, &ids, n).await
    }

    fn classify(
        &self,
        cert: CertificateId,
        batch: &Batch<MeizuNotification>,
        reply: Outcome,
        attempt: u32,
    ) -> Verdict {
        let targets: Vec<&str> = batch.jobs().map(|j| &*j.token).collect();
        verdict("Meizu", cert, &targets, reply, attempt, now_secs())
    }
}
