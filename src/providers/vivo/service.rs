//! vivo behind the [`PushService`] seam: credentials from a certificate, the MD5-signed
//! `authToken` (24 h) cached per certificate by the sender's access cache — vivo's auth endpoint
//! takes about 10 calls/s, so concurrent requests share one fetch and never fetch per send —,
//! batching identical content into `saveListPayload` + `pushToList` (up to 1,000 regIds; one
//! device through `/message/send`), and the verdict of each reply.

use std::future::Future;
use std::time::{Duration, Instant};

use super::certificate;
use super::client::VivoClient;
use super::wire::{VivoApp, VivoNotification, MAX_REGIDS_PER_LIST};
use crate::domain::validate::FieldError;
use crate::domain::{now_millis, now_secs, Certificate, CertificateId};
use crate::providers::oppo::service::access_error;
use crate::providers::outcome::Outcome;
use crate::providers::outcome_verdict::verdict;
use crate::providers::text::notify_id_for;
use crate::providers::vendor_http::ClientError;
use crate::providers::{AccessError, Batch, BatchRule, Grant, PushService, Verdict};
use crate::push::PushContent;

/// Renewed a little before vivo's 24 h are up.
const RENEW_EARLY: Duration = Duration::from_secs(120);

/// vivo, one per process: its client's connection pool serves every certificate.
pub struct Vivo {
    client: VivoClient,
}

impl Vivo {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Vivo, ClientError> {
        Ok(Vivo {
            client: VivoClient::new(base_url, timeout)?,
        })
    }
}

impl PushService for Vivo {
    type Credentials = VivoApp;
    type Content = VivoNotification;
    /// The `authToken` header value.
    type Access = String;
    type Reply = Outcome;

    fn name(&self) -> &'static str {
        "vivo"
    }

    fn credentials(&self, cert: &Certificate) -> Result<VivoApp, FieldError> {
        certificate::app(cert)
    }

    fn render(&self, cert: &Certificate, content: &PushContent) -> VivoNotification {
        certificate::render(
            cert.credentials.vivo(),
            &cert.click_action,
            &content.title,
            &content.desc,
            content.ext.as_deref(),
            &content.ovm,
            notify_id_for(&content.conversation),
        )
    }

    /// A list send carries one content; distinct contents are separate requests.
    fn batch_rule(&self) -> BatchRule {
        BatchRule {
            same_content: MAX_REGIDS_PER_LIST,
            mixed_content: 1,
            same_kind: "push_to_list",
            mixed_kind: "send",
        }
    }

    fn acquire_access(
        &self,
        app: &VivoApp,
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
        app: &VivoApp,
        token: &String,
        batch: &Batch<VivoNotification>,
    ) -> Outcome {
        let Some((n, jobs)) = batch.parts.first() else {
            return Outcome::InvalidRequest {
                code: -1,
                reason: "an empty request".to_owned(),
            };
        };
        match jobs.as_slice() {
            [one] => self.client.send(app, token, &one.token, n).await,
            _ => {
                let reg_ids: Vec<&str> = jobs.iter().map(|j| &*j.token).collect();
                self.client.send_list(app, token, &reg_ids, n).await
            }
        }
    }

    fn classify(
        &self,
        cert: CertificateId,
        batch: &Batch<VivoNotification>,
        reply: Outcome,
        attempt: u32,
    ) -> Verdict {
        let targets: Vec<&str> = batch.jobs().map(|j| &*j.token).collect();
        verdict("vivo", cert, &targets, reply, attempt, now_secs())
    }
}
