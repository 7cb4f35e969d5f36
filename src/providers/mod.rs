//! Push services behind one seam. Each vendor is a folder here that implements [`PushService`]:
//! its credentials taken from a certificate, its batching rule, access-token acquisition where it
//! needs one, the HTTP exchange, and the classification of a reply into a [`Verdict`]. Nothing
//! outside this module matches on the vendor: [`Providers`] gives the service of a certificate,
//! and the generic sender (`push::sender`) does the rest.
//!
//! OPPO, vivo and Meizu share `outcome` (a reply classified once), `text` (cutting to a
//! vendor's limits), `vendor_http` (one pool and one POST) and `emulator_kit` (their emulators'
//! common machinery).

pub mod access;
pub mod apns;
pub mod emulator_kit;
pub mod fcm;
pub mod h2_emulator;
pub mod h2_pool;
pub mod honor;
pub mod huawei;
pub mod jwt;
pub mod key_file;
pub mod meizu;
pub mod oauth_emulator;
pub mod oppo;
pub mod outcome;
pub mod outcome_verdict;
pub mod ovm_sandbox;
pub mod receipt_poster;
pub mod text;
pub mod vendor_http;
pub mod verdict;
pub mod vivo;
pub mod xiaomi;

pub use access::{AccessCache, AccessError, Grant};
pub use verdict::{
    CertAction, DeliveryClass, JobResult, JobVerdict, RetryBudget, RetryPlan, Verdict,
};

/// Huawei's receipts and their HMAC (pure; the Huawei service's `read_receipts` uses them).
pub mod huawei_receipt;

use crate::config::Config;
use crate::domain::receipt::{Receipt, ReceiptError};
use crate::domain::validate::FieldError;
use crate::domain::{Certificate, CertificateId, Vendor};
use crate::push::{PushContent, PushJob};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// How pending notifications become requests, as data the generic batcher reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRule {
    /// Tokens one request may carry for identical content (Xiaomi 1,000; FCM/APNs 1).
    pub same_content: usize,
    /// Notifications of distinct content one request may carry (Xiaomi 100; 1 = never mixed).
    pub mixed_content: usize,
    /// Metric label of an identical-content request (`regid`).
    pub same_kind: &'static str,
    /// Metric label of a mixed request (`multi_messages`).
    pub mixed_kind: &'static str,
}

impl BatchRule {
    /// The vendor's limits, narrowed by the operator's settings (never widened).
    pub fn narrowed(self, same_content: usize, mixed_content: usize) -> BatchRule {
        BatchRule {
            same_content: self.same_content.min(same_content).max(1),
            mixed_content: self.mixed_content.min(mixed_content).max(1),
            ..self
        }
    }
}

/// One vendor request: content parts, each with the notifications that share it.
#[derive(Debug)]
pub struct Batch<C> {
    /// `BatchRule::same_kind` or `mixed_kind`.
    pub kind: &'static str,
    pub parts: Vec<(C, Vec<PushJob>)>,
}

impl<C> Batch<C> {
    /// The notifications in request order (the order of a [`Verdict`]'s `jobs`).
    pub fn jobs(&self) -> impl Iterator<Item = &PushJob> + '_ {
        self.parts.iter().flat_map(|(_, jobs)| jobs.iter())
    }

    /// Each notification with its content, in request order.
    pub fn items(&self) -> impl Iterator<Item = (&C, &PushJob)> + '_ {
        self.parts
            .iter()
            .flat_map(|(c, jobs)| jobs.iter().map(move |j| (c, j)))
    }

    pub fn into_jobs(self) -> impl Iterator<Item = PushJob> {
        self.parts.into_iter().flat_map(|(_, jobs)| jobs)
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(|(_, j)| j.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Attempts already made for this request (its most-tried notification).
    pub fn attempt(&self) -> u32 {
        self.jobs().map(|j| j.attempt).max().unwrap_or(0)
    }
}

/// A push service: everything that differs between vendors. The sender calls, per request:
/// [`PushService::credentials`] (when the certificate changes), [`PushService::render`] (once
/// per message), the batcher with [`PushService::batch_rule`] when a rate token is granted,
/// [`PushService::acquire_access`] through the certificate's [`AccessCache`],
/// [`PushService::exchange`] on an I/O thread, then [`PushService::classify`].
pub trait PushService: Send + Sync + Sized + 'static {
    /// What the vendor authenticates a certificate with, taken from the certificate.
    type Credentials: Clone + Send + Sync + Unpin + 'static;
    /// A notification as the vendor shows it; equal contents share a request.
    type Content: Clone + Eq + Hash + Send + Sync + Unpin + 'static;
    /// An access token (OAuth, signed JWT); `()` when the credentials sign each request.
    type Access: Clone + Send + Sync + 'static;
    /// The raw outcome of one exchange, classified by [`PushService::classify`].
    type Reply: Send + 'static;

    /// The metric label of this vendor (`xiaomi`).
    fn name(&self) -> &'static str;

    /// The credentials of a certificate, or the field that is wrong.
    fn credentials(&self, cert: &Certificate) -> Result<Self::Credentials, FieldError>;

    /// The vendor's notification for a message's push content under this certificate.
    fn render(&self, cert: &Certificate, content: &PushContent) -> Self::Content;

    fn batch_rule(&self) -> BatchRule;

    /// Requests of one certificate in flight at once, given the configured bound. Vendors that
    /// take one token per request (FCM, APNs) raise it: throughput there is streams in flight.
    fn max_in_flight(&self, configured: usize) -> usize {
        configured
    }

    /// Obtains an access token; called by the certificate's [`AccessCache`] when it holds
    /// none or the one it holds expired, so every request of a certificate shares it.
    fn acquire_access(
        &self,
        credentials: &Self::Credentials,
    ) -> impl Future<Output = Result<Grant<Self::Access>, AccessError>> + Send;

    /// Sends one request, once. Retry is the sender's, from the verdict.
    fn exchange<'a>(
        &'a self,
        credentials: &'a Self::Credentials,
        access: &'a Self::Access,
        batch: &'a Batch<Self::Content>,
    ) -> impl Future<Output = Self::Reply> + Send + 'a;

    /// Classifies a reply. `attempt` is the request's attempts so far (for the back-off).
    fn classify(
        &self,
        cert: CertificateId,
        batch: &Batch<Self::Content>,
        reply: Self::Reply,
        attempt: u32,
    ) -> Verdict;

    /// Whether notifications of `cert` ask the vendor for delivery receipts (then a notification
    /// without one is "sent, not confirmed"): the gateway has a public URL and, where the vendor
    /// needs it, the certificate carries its receipt settings (Huawei's callback HMAC key).
    fn asks_for_receipts(&self, cert: &Certificate) -> bool {
        let _ = cert;
        false
    }

    /// Parses and verifies a delivery-receipt request the vendor posted for `cert`
    /// (`POST /v1/receipts/{vendor}/{certificate}`): every receipt, or why none is believed.
    /// Vendors that send no receipts keep the default.
    fn read_receipts(
        &self,
        cert: &Certificate,
        request: &ReceiptRequest<'_>,
    ) -> Result<Vec<Receipt>, ReceiptError> {
        let _ = (cert, request);
        Err(ReceiptError::Unsupported(self.name()))
    }
}

/// A receipt request as it arrived, without the HTTP framework's types.
pub struct ReceiptRequest<'a> {
    pub body: &'a [u8],
    /// Header names in lower case, values as sent.
    pub headers: &'a [(String, String)],
    /// Unix milliseconds, for receipts without a timestamp and for signature freshness.
    pub now_ms: u64,
}

impl ReceiptRequest<'_> {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Something to do with the service of a certificate, whatever its vendor (the sender's start).
pub trait ServiceVisitor {
    type Output;
    fn visit<S: PushService>(self, service: Arc<S>) -> Self::Output;
}

/// Why the push services could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProvidersError {
    #[error("xiaomi: {0}")]
    Xiaomi(#[from] xiaomi::ClientError),
    #[error("huawei: {0}")]
    Huawei(huawei::ClientError),
    #[error("honor: {0}")]
    Honor(huawei::ClientError),
    /// OPPO, vivo or Meizu (the message names which).
    #[error("{0}: {1}")]
    Ovm(&'static str, vendor_http::ClientError),
    #[error("fcm: {0}")]
    Fcm(#[from] fcm::ClientError),
    #[error("apns: {0}")]
    Apns(#[from] apns::ClientError),
}

/// Every push service, built once from the configuration (base URLs, timeouts) and shared by
/// all certificates of its vendor (one connection pool per vendor).
#[derive(Clone)]
pub struct Providers {
    xiaomi: Arc<xiaomi::Xiaomi>,
    huawei: Arc<huawei::service::Huawei>,
    honor: Arc<honor::service::Honor>,
    oppo: Arc<oppo::service::Oppo>,
    vivo: Arc<vivo::service::Vivo>,
    meizu: Arc<meizu::service::Meizu>,
    fcm: Arc<fcm::Fcm>,
    apns: Arc<apns::Apns>,
}

impl Providers {
    pub fn from_config(config: &Config) -> Result<Providers, ProvidersError> {
        let timeout = Duration::from_millis(config.push.vendor_timeout_ms);
        Ok(Providers {
            xiaomi: Arc::new(
                xiaomi::Xiaomi::new(&config.xiaomi_base_url, timeout)?
                    .with_receipts(config.public_url.clone()),
            ),
            huawei: Arc::new(
                huawei::service::Huawei::new(
                    &config.huawei_base_url,
                    &config.huawei_auth_url,
                    timeout,
                )
                .map_err(ProvidersError::Huawei)?
                .with_receipts(config.public_url.clone()),
            ),
            honor: Arc::new(
                honor::service::Honor::new(&config.honor_base_url, &config.honor_auth_url, timeout)
                    .map_err(ProvidersError::Honor)?,
            ),
            oppo: Arc::new(
                oppo::service::Oppo::new(&config.oppo_base_url, timeout)
                    .map_err(|e| ProvidersError::Ovm("oppo", e))?,
            ),
            vivo: Arc::new(
                vivo::service::Vivo::new(&config.vivo_base_url, timeout)
                    .map_err(|e| ProvidersError::Ovm("vivo", e))?,
            ),
            meizu: Arc::new(
                meizu::service::Meizu::new(&config.meizu_base_url, timeout)
                    .map_err(|e| ProvidersError::Ovm("meizu", e))?,
            ),
            fcm: Arc::new(fcm::Fcm::new(&config.fcm_base_url, timeout)?),
            apns: Arc::new(apns::Apns::new(config.apns_base_url.as_deref(), timeout)?),
        })
    }

    /// The APNs badge counts, which session events set and reset.
    pub fn apns_badges(&self) -> Arc<apns::Badges> {
        self.apns.badges()
    }

    /// Runs `visitor` with the service of `vendor`: the one place a vendor is matched.
    pub fn with_service<V: ServiceVisitor>(&self, vendor: Vendor, visitor: V) -> V::Output {
        match vendor {
            Vendor::Xiaomi => visitor.visit(self.xiaomi.clone()),
            Vendor::Huawei => visitor.visit(self.huawei.clone()),
            Vendor::Honor => visitor.visit(self.honor.clone()),
            Vendor::Oppo => visitor.visit(self.oppo.clone()),
            Vendor::Vivo => visitor.visit(self.vivo.clone()),
            Vendor::Meizu => visitor.visit(self.meizu.clone()),
            Vendor::Fcm => visitor.visit(self.fcm.clone()),
            Vendor::Apns => visitor.visit(self.apns.clone()),
        }
    }
}
